"""What ``python -m deployflow.ledger report`` prints from a real (SQLite) ledger: a table whose columns line up
whatever the values' lengths, the figures as one JSON document with ``--json``, and one line, not an empty
table, when there is nothing to show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from deployflow.ledger import Ledger
from deployflow.ledger.figures import figures
from deployflow.ledger.report import main, nothing_found
from tests.db.test_report import PERIOD, fill

IN_PERIOD = ["--since", "2026-11-02", "--until", "2026-11-08"]
LONG = "a-service-whose-name-is-longer-than-its-header"


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(url) -> Iterator[Ledger]:
    made = Ledger(url)
    yield made
    made.dispose()


def report(capsys, url: str, *argv: str) -> str:
    assert main(["--url", url, *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_the_report_is_a_table_of_one_row_per_service_and_environment(ledger, url, capsys):
    fill(ledger)
    assert report(capsys, url, *IN_PERIOD).splitlines() == [
        "Releases finished 2026-11-02 to 2026-11-08 (UTC, 7 days)",
        "SERVICE  ENVIRONMENT  RELEASES  CHANGES  PROMOTED  REJECTED  DEPLOYS/DAY  DEPLOYS/WEEK  LEAD MEDIAN  LEAD MEAN"
        "  CHANGE FAIL  SUCCESS  RESTORE ROLLBACK  RESTORE TO GOOD  OPEN  DEPLOY MEAN  ROLLBACK MEAN",
        "shop     prod               11        7         3         1         0.43           3.0        1.5 h   73.3 min"
        "         57 %     43 %              12 s           17.0 h     0      2.0 min           13 s",
        "shop     staging             6        6         4         0         0.57           4.0     30.0 min   30.0 min"
        "         33 %     67 %               9 s            2.0 d     1         68 s            9 s",
    ]


def test_a_long_name_widens_its_column_and_every_other_column_stays_in_line(ledger, url, capsys):
    fill(ledger)
    fill(ledger, LONG)
    header, *rows = report(capsys, url, *IN_PERIOD, "--environment", "prod").splitlines()[1:]
    assert [r.split()[:2] for r in rows] == [[LONG, "prod"], ["shop", "prod"]]
    assert {r.index("prod") for r in rows} == {header.index("ENVIRONMENT")} == {len(LONG) + 2}
    # Numbers are aligned right: each column's values end where its header ends, the last one too.
    assert {len(r) for r in rows} == {len(header)}
    releases_end = header.index("RELEASES") + len("RELEASES")
    assert {r[:releases_end].split()[-1] for r in rows} == {"11"}


def test_json_is_the_period_and_the_figures_in_their_own_units(ledger, url, capsys):
    fill(ledger)
    document = json.loads(report(capsys, url, *IN_PERIOD, "--service", "shop", "--json"))
    assert document == {"since": "2026-11-02", "until": "2026-11-08", "days": 7, "service": "shop", "environment": None,
                        "figures": [asdict(f) for f in figures(ledger.engine, PERIOD, service="shop")]}
    assert [(f["environment"], f["releases"], round(f["lead_median_s"])) for f in document["figures"]] == [
        ("prod", 11, 5400), ("staging", 6, 1800)]


def test_json_names_the_charts_and_the_page_it_wrote(ledger, url, capsys, tmp_path):
    fill(ledger)
    document = json.loads(report(capsys, url, *IN_PERIOD, "--json", "--charts", str(tmp_path / "c"),
                                 "--html", str(tmp_path / "r.html")))
    assert document["charts"] == [str(tmp_path / "c" / f"{n}.png") for n in ("releases_per_day", "lead_time", "durations")]
    assert document["page"] == str(tmp_path / "r.html") and (tmp_path / "r.html").exists()


def test_an_empty_ledger_is_one_line_not_an_empty_table(ledger, url, capsys):
    assert ledger.entries() == []  # its table made (as by the stack's first lock), no release in it
    assert report(capsys, url, *IN_PERIOD) == f"No releases in the ledger yet ({url})\n"
    assert json.loads(report(capsys, url, *IN_PERIOD, "--json"))["figures"] == []


def test_a_period_with_no_release_is_one_line_naming_it(ledger, url, capsys):
    fill(ledger)
    assert report(capsys, url, "--since", "2027-01-01", "--until", "2027-01-07", "--service", "shop") == (
        "No releases finished 2027-01-01 to 2027-01-07 (UTC, 7 days), service shop\n")


def test_the_empty_ledger_s_line_hides_its_password(ledger):
    assert ledger.entries() == []
    line = nothing_found(ledger.engine, "postgresql://deployflow:s3cret@db:5432/ledger", PERIOD, "")
    assert line == "No releases in the ledger yet (postgresql://deployflow:***@db:5432/ledger)"
