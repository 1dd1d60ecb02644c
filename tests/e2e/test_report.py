"""The report over real DAG runs: four releases of the sample to dev (promoted, rolled back, failed before
deploy, promoted again), then the figures the report computes in SQL against the ledger's own rows."""

from __future__ import annotations

import statistics
from datetime import datetime, timezone

import pytest

from deployflow.ledger import Ledger, default_url
from deployflow.ledger.figures import Period, figures
from deployflow.ledger.report import main
from deployflow.outcomes import Outcome
from tests.scenarios import branch
from tests.e2e.harness import release


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@pytest.fixture(scope="module")
def runs(airflow, sample_repo):
    branch(sample_repo, "report-2")  # a new commit: the release that restores dev
    # force: main may be live in dev already (an earlier module); each release here must deploy.
    return [release(airflow, "dev", ref, reason=f"e2e report {ref}", force=True)
            for ref in ("main", "ready-never", "broken-build", "report-2")]


def test_the_report_over_real_runs(runs, stack_state, tmp_path, capsys):
    assert [r["state"] for r in runs] == ["success", "failed", "failed", "success"], [r["tasks"] for r in runs]
    url = default_url(stack_state)
    ledger = Ledger(url)
    mine = {e.run_id: e for e in ledger.entries(service="sample-app", environment="dev")}
    entries = [mine[r["run_id"]] for r in runs]
    outcomes = [e.outcome for e in entries]
    assert outcomes == ["promoted", "rolled_back", "failed_before_deploy", "promoted"], outcomes
    assert entries[2].failure.startswith("build failed: "), entries[2].failure  # the build's reason, not only its log
    today = datetime.now(timezone.utc).date()
    [found] = figures(ledger.engine, Period(today, today), service="sample-app", environment="dev")
    every = ledger.entries(service="sample-app", environment="dev", since=today.isoformat())
    promoted = [e for e in every if e.outcome == "promoted"]
    failed = [e for e in every if e.outcome in (Outcome.ROLLED_BACK, Outcome.FAILED)]
    assert (found.releases, found.promoted, found.changes) == (len(every), len(promoted), len(promoted) + len(failed))
    assert found.change_failure_rate == pytest.approx(len(failed) / found.changes)
    leads = [_seconds(e.committed_at, e.finished_at) for e in promoted if e.committed_at]
    assert found.lead_median_s == pytest.approx(statistics.median(leads), abs=1e-3)  # the record's git commit time
    assert entries[1].rollback_seconds is not None and found.rollback_mean_s is not None
    assert found.unrestored == 0  # the last release restored dev
    assert main(["--url", url, "--service", "sample-app", "--charts", str(tmp_path)]) == 0
    assert "sample-app  dev" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["durations.png", "lead_time.png", "releases_per_day.png"]
    ledger.dispose()
