"""Aborting a canary while its analysis runs (issue 23), as the CLI and the Releases view do it: the abort goes
through Airflow's REST API as the signed-in user, the rollback puts every request back on the stable version, and
the release ends rolled back, "aborted by <user>: <why>", with no failed request on staging's front port.
The seconds from the abort to the stable version serving alone are printed (a figure, not an assertion)."""

from __future__ import annotations

import time

import pytest

from deployflow.analysis.loadgen import LoadGenerator
from deployflow.client.steering import abort_release
from tests.e2e.harness import DAG_ID, PORTS, branch, finished, log_text, release, served_version

pytestmark = pytest.mark.e2e

ENVIRONMENT = "staging"  # a canary with three analysis intervals of 5 s


def test_an_abort_during_canary_analysis_restores_the_stable_version(airflow, sample_repo):
    if release(airflow, ENVIRONMENT, "main")["state"] != "success":  # the stable version (a no-op if it is live)
        pytest.fail("staging has no stable version to abort to")
    stable = served_version(ENVIRONMENT)
    canary = branch(sample_repo, "abort-canary")
    assert canary != stable

    with LoadGenerator(f"http://127.0.0.1:{PORTS[ENVIRONMENT]}/", rate=20, threads=2) as probe:
        run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": "abort-canary"})["dag_run_id"]
        _wait_for_analysis(airflow, run_id)
        aborted = abort_release(airflow, "sample-app", ENVIRONMENT, by="admin", reason="e2e: wrong config")
        started = time.monotonic()
        assert aborted.run_id == run_id and "analysis" in aborted.stopped, aborted
        while not all(served_version(ENVIRONMENT) == stable for _ in range(5)):
            if time.monotonic() - started > 300:
                pytest.fail(f"{stable} never served staging alone after the abort")
            time.sleep(0.2)
        back = time.monotonic() - started
        run = finished(airflow, run_id)
    print(f"abort during analysis: {stable} served staging alone {back:.1f} s after the abort")

    assert run["state"] == "failed"
    assert (run["tasks"]["analysis"], run["tasks"]["rollback"]) == ("failed", "success"), run["tasks"]
    assert run["tasks"]["promote"] != "success", run["tasks"]
    assert "aborted by admin: e2e: wrong config" in log_text(airflow, run_id, "record")
    assert probe.report.sent > 0 and probe.report.failures == [], probe.report.summary()
    assert served_version(ENVIRONMENT) == stable


def _wait_for_analysis(airflow, run_id: str) -> None:
    """Until the canary's analysis judges (deferred between its intervals, or running one)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti.get("state") for ti in airflow.task_instances(DAG_ID, run_id)}
        if states.get("analysis") in ("deferred", "running"):
            return
        if airflow.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            pytest.fail(f"the release ended before its analysis: {states}")
        time.sleep(0.3)
    pytest.fail("the canary's analysis never started")
