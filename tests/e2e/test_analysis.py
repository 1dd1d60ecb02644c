"""Canary analysis on the local stack: Prometheus, the judge, and the branch to promote or rollback.

staging is a canary judged at its first step (20 %) against a fresh baseline,
with the DAG's own load task driving traffic; prod, released as a canary on
request, has no load at all, so its analysis sees no data.
"""

from __future__ import annotations

import time

import pytest

from deployflow.analysis.loadgen import LoadGenerator
from tests.e2e.harness import (
    DAG_ID, PORTS, all_tries_text, app_containers, branch, finished, log_text, release, served_version, short_sha,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def staging_live(airflow, sample_repo):
    ref = branch(sample_repo, "analysis-base")
    run = release(airflow, "staging", ref)
    assert run["state"] == "success", run["tasks"]
    return short_sha(sample_repo, ref)


def test_a_good_canary_passes_analysis_and_is_promoted(airflow, sample_repo, staging_live):
    new = branch(sample_repo, "analysis-good")
    run = release(airflow, "staging", "analysis-good")
    assert run["state"] == "success", run["tasks"]
    assert (run["tasks"]["analysis"], run["tasks"]["load"], run["tasks"]["rollback"]) == ("success", "success", "skipped")
    log = log_text(airflow, run["run_id"], "analysis")
    assert "error_rate" in log and "latency" in log and "score" in log  # the verdict table
    assert "canary analysis passed" in log
    assert served_version("staging") == new


@pytest.mark.parametrize(("ref", "metric"), [("errors", "error_rate"), ("slow", "latency")])
def test_a_regressed_canary_is_rolled_back_by_analysis_before_full_traffic(airflow, airflow_home, docker_client, sample_repo, staging_live,
                                                                          ref, metric):
    before = served_version("staging")
    run = release(airflow, "staging", ref)
    assert run["state"] == "failed"
    assert run["tasks"]["analysis"] == "failed"
    assert run["tasks"]["promote"] == "upstream_failed"  # never past the analysed 20 % step
    assert run["tasks"]["rollback"] == "success"
    assert "canary analysis failed at interval" in log_text(airflow, run["run_id"], "analysis")
    # The tables of every try: Airflow 3.3's resume-after-defer race (apache/airflow#72716, see docs/concepts/release-dag.md)
    # may retry an analysis that failed; the retry judges again once the load is over (nodata) and fails again, the same end.
    log = all_tries_text(airflow_home, run["run_id"], "analysis")
    table = [line for line in log.splitlines() if line.startswith(metric)]
    assert any(" high " in f" {line} " for line in table), table  # the regressed metric, labelled in the table
    shift_log = log_text(airflow, run["run_id"], "shift")
    assert "shift: 20 % of traffic" in shift_log and "shift: 100 %" not in shift_log
    assert served_version("staging") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "staging")} == {before}


def test_a_canary_slower_on_a_few_percent_of_requests_is_rolled_back(airflow, airflow_home, docker_client, sample_repo, staging_live):
    # slow-tail: 5 % of requests 500 ms slower, the median unchanged (a slow code path). Latency comes back from
    # histogram buckets, every value tied to its bucket: the tail check has to see it there. More traffic than
    # the DAG's load task gives, so that the canary's share holds enough slow requests for a verdict at the
    # analysis' alpha (about 20 in 15 s).
    before = served_version("staging")
    with LoadGenerator(f"http://127.0.0.1:{PORTS['staging']}/", rate=100, threads=4):
        run = release(airflow, "staging", "slow-tail")
    assert run["tasks"]["analysis"] == "failed", run["tasks"]
    assert (run["tasks"]["promote"], run["tasks"]["rollback"]) == ("upstream_failed", "success")
    log = all_tries_text(airflow_home, run["run_id"], "analysis")  # every try's tables: see the test above
    table = [line for line in log.splitlines() if line.startswith("latency")]
    assert any(" high " in f" {line} " and "tail" in line for line in table), table
    assert served_version("staging") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "staging")} == {before}


def test_with_no_traffic_the_no_data_policy_decides_never_a_silent_pass(airflow, docker_client, sample_repo):
    first = release(airflow, "prod", "main")  # whatever is live there, main is the baseline
    assert first["state"] == "success", first["tasks"]
    before = served_version("prod")
    branch(sample_repo, "analysis-quiet")
    run = release(airflow, "prod", "analysis-quiet", strategy="canary")
    assert run["tasks"]["analysis"] == "failed"  # prod's policy is no_data: fail
    assert run["tasks"]["load"] == "skipped"  # prod asks for no load
    assert "nodata" in log_text(airflow, run["run_id"], "analysis")
    assert run["tasks"]["rollback"] == "success"
    assert served_version("prod") == before


def test_a_canary_that_dies_during_its_analysis_is_rolled_back(airflow, docker_client, sample_repo, staging_live):
    # Healthy through prepare, health and shift; then its instance is killed while the analysis runs, as a
    # version that crashes after its checks passed would be. HAProxy takes it out, so no request fails: only
    # the analysis' guards can see it.
    before = served_version("staging")
    new = branch(sample_repo, "analysis-dies")
    run_id = airflow.trigger(DAG_ID, {"environment": "staging", "git_ref": "analysis-dies"})["dag_run_id"]
    deadline = time.monotonic() + 600
    # Running while it starts, then deferred (the triggerer waits for the first interval, due after 8 s).
    while {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}.get("analysis") not in ("running", "deferred"):
        assert time.monotonic() < deadline, "the analysis never started"
        time.sleep(0.5)
    canaries = [c for c in app_containers(docker_client, "staging") if c.labels["io.deployflow.version"] == new
                and c.labels["io.deployflow.colour"] != "baseline"]
    assert canaries, "the canary runs while it is analysed"
    for container in canaries:
        container.kill()
    run = finished(airflow, run_id)
    assert (run["tasks"]["analysis"], run["tasks"]["promote"], run["tasks"]["rollback"]) == ("failed", "upstream_failed", "success")
    log = log_text(airflow, run_id, "analysis")
    assert "canary analysis failed at interval 1: canary: 0 of 1 instance(s) running (and never restarted)" in log
    assert served_version("staging") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "staging")} == {before}
