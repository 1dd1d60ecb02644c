"""The report's figures, computed in SQL, against what Python computes from ``ledger.entries()`` on the same
ledger, on SQLite and a real PostgreSQL server; its charts are PNG images with something drawn on them."""

from __future__ import annotations

import io
import statistics
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest

from deployflow.ledger import Ledger, ReleaseEntry
from deployflow.ledger.figures import Period, figures
from deployflow.ledger.report import main
from deployflow.outcomes import Outcome

PERIOD = Period(date(2026, 11, 2), date(2026, 11, 8))  # 7 days
START = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
CHANGE_FAILURES = (Outcome.ROLLED_BACK, Outcome.FAILED)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def ledger(url) -> Iterator[Ledger]:
    """The ledger with the mix in it; its connections closed after (PostgreSQL drops a database no one is in)."""
    made = Ledger(url)
    fill(made)
    yield made
    made.dispose()


# (day after START, hour, environment, outcome, deploy s, rollback s, lead time s | None, commit offset)
MIX = [
    (0, 10, "prod", "promoted", 100.0, None, 3600.0, "+00:00"),  # the day before the period: left out
    (1, 9, "prod", "promoted", 120.0, None, 5400.0, "+02:00"),  # a committer's local time, as git %cI writes it
    (1, 11, "prod", "rolled_back", 80.0, 12.5, None, None),
    (1, 14, "prod", "promoted", 110.5, None, 7200.0, "+00:00"),  # restores the rollback of 11:00: 3 h
    (2, 9, "prod", "refused", None, None, None, None),
    (2, 10, "prod", "failed_before_deploy", 4.0, None, None, None),
    (2, 11, "prod", "rejected", 50.0, 3.0, None, None),  # the gate's rollback: not a change, nor a rollback's time
    (2, 13, "prod", "already_live", 2.5, None, 900.0, "+00:00"),  # the live version again: no deploy, no lead time
    (3, 8, "prod", "failed", 30.0, None, None, None),
    (3, 9, "prod", "rolled_back", 40.0, 7.25, None, None),
    (4, 16, "prod", "promoted", 130.0, None, 600.0, "-05:00"),  # restores both failures of day 3
    (7, 23, "prod", "rolled_back", 90.0, 20.0, None, None),  # the last day: restored only after the period
    (8, 1, "prod", "promoted", 100.0, None, 300.0, "+00:00"),  # the day after the period: left out, but it restores
    (1, 12, "staging", "promoted", 60.0, None, 1800.0, "+00:00"),
    (2, 12, "staging", "promoted", 65.0, None, 2700.0, "+00:00"),
    (3, 12, "staging", "rolled_back", 50.0, 9.0, None, None),
    (5, 12, "staging", "promoted", 70.0, None, 900.0, "+00:00"),
    (6, 12, "staging", "promoted", 75.0, None, None, None),  # no commit time: no lead time
    (6, 18, "staging", "failed", 20.0, None, None, None),  # never restored
]


def _iso(moment: datetime, offset: str | None) -> str:
    hours = int(offset[:3]) if offset else 0
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()


def fill(ledger: Ledger, service: str = "shop") -> None:
    for n, (day, hour, environment, outcome, seconds, rollback, lead, offset) in enumerate(MIX):
        finished = START + timedelta(days=day, hours=hour - START.hour, microseconds=123456 * (n % 2))
        ledger.record(ReleaseEntry(
            service=service, environment=environment, strategy="canary", version=f"v{n}", commit=f"{n:040x}", image=None,
            previous=None, requested_by="alice", reason="", run_id=f"run-{n}", outcome=outcome,
            started_at=(finished - timedelta(seconds=seconds or 1)).isoformat(), finished_at=finished.isoformat(),
            seconds=seconds, rollback_seconds=rollback,
            committed_at=_iso(finished - timedelta(seconds=lead), offset) if lead is not None else None))


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def expected(ledger: Ledger, service: str, environment: str) -> dict:
    """The figures by their definitions, in Python, from the entries (not from SQL)."""
    since, until = PERIOD.bounds
    mine = ledger.entries(service=service, environment=environment, since=since, until=until)
    every = ledger.entries(service=service, environment=environment)
    promoted = [e for e in mine if e.outcome == "promoted"]
    failures = [e for e in mine if e.outcome in CHANGE_FAILURES]
    rolled_back = [e for e in mine if e.outcome is Outcome.ROLLED_BACK]
    changes = len(promoted) + len(failures)
    leads = [_seconds(e.committed_at, e.finished_at) for e in promoted if e.committed_at]
    restores = []
    for failure in failures:
        later = [e for e in every if e.outcome == "promoted" and e.finished_at > failure.finished_at]
        if later:
            restores.append(_seconds(failure.finished_at, later[0].finished_at))
    rollbacks = [e.rollback_seconds for e in rolled_back if e.rollback_seconds is not None]
    return {
        "releases": len(mine), "changes": changes, "promoted": len(promoted),
        "rejected": sum(e.outcome is Outcome.REJECTED for e in mine), "deploys_per_day": len(promoted) / 7,
        "deploys_per_week": float(len(promoted)), "lead_median_s": statistics.median(leads),
        "lead_mean_s": statistics.mean(leads), "change_failure_rate": len(failures) / changes,
        "success_rate": len(promoted) / changes, "restore_rollback_median_s": statistics.median(rollbacks),
        "restore_next_good_median_s": statistics.median(restores), "unrestored": len(failures) - len(restores),
        "deploy_mean_s": statistics.mean(e.seconds for e in promoted),
        "rollback_mean_s": statistics.mean(rollbacks),
    }


def test_the_figures_match_their_definitions_computed_in_python(ledger):
    found = {(f.service, f.environment): f for f in figures(ledger.engine, PERIOD)}
    assert sorted(found) == [("shop", "prod"), ("shop", "staging")]
    for key, figure in found.items():
        want = expected(ledger, *key)
        got = {name: getattr(figure, name) for name in want}
        assert got == pytest.approx(want, abs=1e-3), key


@pytest.mark.parametrize(("environment", "numbers"), [
    # Counted by hand from MIX, so a definition both SQL and expected() got wrong still fails here.
    ("prod", {"releases": 11, "changes": 7, "promoted": 3, "rejected": 1, "change_failure_rate": 4 / 7, "success_rate": 3 / 7,
              "lead_median_s": 5400.0, "restore_rollback_median_s": 12.5, "unrestored": 0,
              # restores: 3 h, then 32 h and 31 h after day 3's two failures, 2 h after the last day's rollback
              "restore_next_good_median_s": (3 * 3600 + 31 * 3600) / 2}),
    ("staging", {"releases": 6, "changes": 6, "promoted": 4, "rejected": 0, "change_failure_rate": 2 / 6, "success_rate": 4 / 6,
                 "lead_median_s": 1800.0, "restore_rollback_median_s": 9.0, "unrestored": 1,
                 "restore_next_good_median_s": 48 * 3600.0}),
], ids=["prod", "staging"])
def test_hand_counted(ledger, environment, numbers):  # a short name: the database is named after the test
    [figure] = figures(ledger.engine, PERIOD, service="shop", environment=environment)
    # abs 0.2 s: fill() puts 0.123456 s on every other finish time, which hand counts in hours leave out
    assert {name: getattr(figure, name) for name in numbers} == pytest.approx(numbers, abs=0.2)


def test_services_and_environments_are_kept_apart_and_filtered(ledger):
    fill(ledger, "cart")
    assert [(f.service, f.environment) for f in figures(ledger.engine, PERIOD)] == [
        ("cart", "prod"), ("cart", "staging"), ("shop", "prod"), ("shop", "staging")]
    assert [(f.service, f.environment) for f in figures(ledger.engine, PERIOD, service="cart", environment="prod")] == [
        ("cart", "prod")]
    assert figures(ledger.engine, Period(date(2027, 1, 1), date(2027, 1, 31))) == []


def test_the_command_prints_one_row_per_service_and_environment(ledger, url, capsys):
    assert main(["--url", url, "--since", "2026-11-02", "--until", "2026-11-08"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Releases finished 2026-11-02 to 2026-11-08 (UTC, 7 days)"
    assert out[1].split()[:6] == ["SERVICE", "ENVIRONMENT", "RELEASES", "CHANGES", "PROMOTED", "REJECTED"]
    assert [line.split()[:6] for line in out[2:]] == [["shop", "prod", "11", "7", "3", "1"], ["shop", "staging", "6", "6", "4", "0"]]


def _image(png: bytes):
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_the_charts_are_png_images_with_something_drawn(ledger, url, tmp_path):
    page = tmp_path / "page" / "report.html"
    assert main(["--url", url, "--since", "2026-11-02", "--until", "2026-11-08", "--charts", str(tmp_path / "charts"),
                 "--html", str(page)]) == 0
    written = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert written == ["durations.png", "lead_time.png", "releases_per_day.png"]
    for name in written:
        png = (tmp_path / "charts" / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        pixels = _image(png)
        assert pixels.shape[:2] == (450, 1000), name  # 10 x 4.5 in at 100 dpi
        assert pixels.var() > 0, name
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3 and "<td>staging</td>" in text


def test_the_report_reads_while_a_record_holds_the_write_lock(sqlite_url, capsys):
    import sqlite3
    import time

    made = Ledger(sqlite_url)
    fill(made)
    made.dispose()
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a record task in the middle of its transaction
    try:
        started = time.monotonic()
        assert main(["--url", sqlite_url, "--since", "2026-11-02", "--until", "2026-11-08"]) == 0
        assert time.monotonic() - started < 5, "the report waited for the writer (it must not take the write lock)"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "shop" in capsys.readouterr().out
