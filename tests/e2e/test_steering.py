"""Steering a canary in flight in staging (issue 23), as the CLI and the Releases view do it, through Airflow's REST
API as the signed-in user:

- abort while its analysis runs: the rollback puts every request back on the stable version, and the release ends
  rolled back, "aborted by <user>: <why>", with no failed request on staging's front port (the seconds from the
  abort to the stable version serving alone are printed: a figure, not an assertion);
- promote now while its promote step waits out a long pause: the step is restarted, its new try goes through the
  remaining steps with no pause, and the canary is live.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from deployflow.analysis.loadgen import LoadGenerator
from deployflow.client.steering import abort_release, promote_release
from tests.e2e.harness import DAG_ID, PORTS, branch, environment_with, finished, log_text, release, served_version

pytestmark = pytest.mark.e2e

ENVIRONMENT = "staging"  # a canary (steps 20, 50, 100) with analysis


def test_an_abort_during_canary_analysis_restores_the_stable_version(airflow, sample_repo, catalog):
    if release(airflow, ENVIRONMENT, "main")["state"] != "success":  # the stable version (a no-op if it is live)
        pytest.fail("staging has no stable version to abort to")
    stable = served_version(ENVIRONMENT)
    canary = branch(sample_repo, "abort-canary")
    assert canary != stable

    # An analysis that outlasts the test and passes an interval without data: on a busy machine the canary's own
    # analysis could otherwise end (pass, or fail on an interval with no request) before the abort.
    analysis = {**staging(catalog)["analysis"], "intervals": 60, "no_data": "pass"}
    with environment_with(catalog, ENVIRONMENT, analysis=analysis), \
            LoadGenerator(f"http://127.0.0.1:{PORTS[ENVIRONMENT]}/", rate=20, threads=2) as probe:
        run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": "abort-canary"})["dag_run_id"]
        _wait_for(airflow, run_id, "analysis", ("deferred", "running"))
        aborted = abort_release(airflow, "sample-app", ENVIRONMENT, by="admin", reason="e2e: wrong config")
        started = time.monotonic()
        assert aborted.run_id == run_id and "analysis" in aborted.stopped, aborted
        # 30 answers in a row from the stable version: with the canary's 20 % still routed, that happens by chance
        # about once in 800 tries
        while not all(served_version(ENVIRONMENT) == stable for _ in range(30)):
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


LONG_PAUSE_S = 600  # longer than the test may take: only "promote now" ends the promote step's pause in time


def test_promote_now_skips_the_pause_of_a_promote_step_that_waits(airflow, sample_repo, catalog):
    if release(airflow, ENVIRONMENT, "main")["state"] != "success":
        pytest.fail("staging has no stable version to promote over")
    canary = branch(sample_repo, "promote-now")
    # each task reads the catalog when it starts
    with environment_with(catalog, ENVIRONMENT, canary={**staging(catalog)["canary"], "pause_s": LONG_PAUSE_S}):
        run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": "promote-now"})["dag_run_id"]
        _wait_for(airflow, run_id, "promote", ("running",))
        _wait_for_log(airflow, run_id, "promote", "50 % of traffic on")  # in the step's pause of 600 s now
        done = promote_release(airflow, "sample-app", ENVIRONMENT, by="admin", reason="e2e: metrics look fine")
        assert done.restarted and done.run_id == run_id, done
        run = finished(airflow, run_id)
    assert run["state"] == "success", run["tasks"]
    assert run["tries"]["promote"] >= 2, run["tries"]  # the try in its pause was stopped, the next one promoted
    last = log_text(airflow, run_id, "promote")
    assert "promote now, asked by admin (e2e: metrics look fine)" in last, last
    assert f"{canary} is live in staging" in last, last
    assert served_version(ENVIRONMENT) == canary


def staging(catalog: Path) -> dict:
    """staging's entry in sample-app's catalog file, as it is now."""
    return yaml.safe_load((catalog / "sample-app.yaml").read_text())["environments"][ENVIRONMENT]


def _wait_for_log(airflow, run_id: str, task_id: str, text: str) -> None:
    """Until the task's running try has logged ``text`` (the deployer's lines reach the task's log as they come)."""
    deadline = time.monotonic() + 300
    while text not in log_text(airflow, run_id, task_id):
        assert time.monotonic() < deadline, f"{task_id} never logged {text!r}"
        time.sleep(0.5)


def _wait_for(airflow, run_id: str, task_id: str, states: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        tis = {ti["task_id"]: ti.get("state") for ti in airflow.task_instances(DAG_ID, run_id)}
        if tis.get(task_id) in states:
            return
        if airflow.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            pytest.fail(f"the release ended before {task_id} was {'/'.join(states)}: {tis}")
        time.sleep(0.3)
    pytest.fail(f"{task_id} was never {'/'.join(states)}")
