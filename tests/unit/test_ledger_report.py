"""The report command's options: a bad one is a one-line error naming it and the valid form, exit 2; the
period and the ledger's default place; durations written as a person reads them."""

from __future__ import annotations

from datetime import date

import pytest

from deployflow.ledger.figures import Period
from deployflow.ledger.report import duration, main, period_of


@pytest.mark.parametrize(("argv", "message"), [
    (["--since", "2026-13-01"], "report: --since '2026-13-01' is not an ISO date: valid values are YYYY-MM-DD (UTC)"),
    (["--until", "yesterday"], "report: --until 'yesterday' is not an ISO date: valid values are YYYY-MM-DD (UTC)"),
    (["--since", "2026-12-02", "--until", "2026-12-01"],
     "report: --since 2026-12-02 is after --until 2026-12-01: the period must run forwards"),
    (["--url", "mysql://u@h/db"], "report: --url: ledger URL scheme 'mysql' is not valid; valid values are sqlite, postgresql"),
])
def test_a_bad_option_is_one_line_naming_it_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [message]
    assert captured.out == ""


def test_a_missing_sqlite_ledger_is_named_and_not_created(tmp_path, capsys):
    where = tmp_path / "nothing" / "ledger.db"
    assert main(["--url", f"sqlite:///{where}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"report: --url: no ledger at {where} (set --url or $DEPLOYFLOW_LEDGER_URL)"]
    assert not where.exists()


@pytest.mark.parametrize(("since", "until", "period"), [
    (None, None, Period(date(2026, 11, 3), date(2026, 12, 2))),  # the last 30 days, today included
    ("2026-11-01", "2026-11-30", Period(date(2026, 11, 1), date(2026, 11, 30))),
    (None, "2026-02-28", Period(date(2026, 1, 30), date(2026, 2, 28))),
])
def test_the_period(since, until, period):
    found = period_of(since, until, today=date(2026, 12, 2))
    assert found == period and found.days == 30


def test_the_period_bounds_take_in_the_whole_last_day():
    assert Period(date(2026, 11, 1), date(2026, 11, 30)).bounds == ("2026-11-01", "2026-12-01")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0.4, "0 s"), (42.0, "42 s"), (89.0, "89 s"), (90.0, "1.5 min"), (3000.0, "50.0 min"),
    (5400.0, "1.5 h"), (86400.0, "24.0 h"), (129600.0, "1.5 d"),
])
def test_durations_read_in_their_unit(seconds, text):
    assert duration(seconds) == text


def test_period_of_names_the_option_it_refuses():
    with pytest.raises(ValueError, match=r"^--since '1/11/2026' is not an ISO date: valid values are YYYY-MM-DD \(UTC\)$"):
        period_of("1/11/2026", "2026-11-30")
