"""The release DAG's first half, run for real: build (a checkout, then docker build and push), pytest containers.

All three scenarios are triggered at once through the REST API (JWT from
/auth/token), as CI would, and followed to the end; the tests then read what
Airflow, the registry and the task logs say.
"""

from __future__ import annotations

import pytest
import requests

from deployflow.client import ApiError
from deployflow.pipeline.registry import RegistryCredentials, credentials_file
from tests.e2e.harness import DAG_ID, PORT, SUITES, git, log_text

pytestmark = pytest.mark.e2e

BUILD_AND_TEST = {"resolve", "build", *(f"test.{suite}" for suite in SUITES)}  # the e2e catalog's suites (harness SUITES)
DEPLOY = {"prepare", "health", "shift", "analysis", "load", "promote", "rollback"}
NOT_RUN = {"upstream_failed", "skipped", None}


@pytest.fixture(scope="module")
def runs(airflow, sample_repo):
    triggered = {
        # force: main is built and tested even where it is live already (an earlier module).
        ref: airflow.trigger(DAG_ID, {"environment": "dev", "git_ref": ref, "reason": f"e2e {ref}", "force": True})["dag_run_id"]
        for ref in ("main", "broken-unit", "broken-build", "no-such-ref")
    }
    results = {}
    for ref, run_id in triggered.items():
        run = airflow.wait(DAG_ID, run_id, timeout=900)
        states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
        sha = git(sample_repo, "rev-parse", ref) if ref != "no-such-ref" else None
        results[ref] = {"run_id": run_id, "state": run["state"], "tasks": states, "sha": sha}
    return results


def test_a_good_commit_builds_pushes_and_passes_all_suites(airflow, runs):
    run = runs["main"]
    assert run["state"] == "success", run["tasks"]
    # dev is a rolling release: no canary analysis, no load for it, no approval asked, nothing to roll back
    assert {t: s for t, s in run["tasks"].items() if s != "success"} == {
        "analysis": "skipped", "load": "skipped", "approve_deploy": "skipped", "rollback": "skipped"}
    assert "checkout" not in run["tasks"]  # build checks out first, in its own task process (issue 24)
    built = airflow.xcom(DAG_ID, run["run_id"], "build")
    assert (built["sha"], built["short_sha"], built["git_ref"]) == (run["sha"], run["sha"][:12], "main")
    assert built["coverage_dir"].endswith("/coverage") and built["checkout_seconds"] > 0
    assert built["ref"] == f"127.0.0.1:5000/sample-app:{run['sha'][:12]}"
    assert built["pushed"] and built["digest"].startswith("sha256:")
    registry = RegistryCredentials.read(credentials_file())  # the registry is locked: its user reads it
    login = (registry.username, registry.password)
    tags = requests.get("http://127.0.0.1:5000/v2/sample-app/tags/list", auth=login, timeout=10).json()["tags"]
    assert run["sha"][:12] in tags
    manifest = requests.head(
        f"http://127.0.0.1:5000/v2/sample-app/manifests/{run['sha'][:12]}", timeout=10, auth=login,
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.headers["Docker-Content-Digest"] == built["digest"]
    assert {t for t in run["tasks"] if t.startswith("test.")} == {f"test.{suite}" for suite in SUITES}
    for suite in SUITES:  # the integration suite: in gov-app's releases (test_governance)
        assert f"suite {suite}: PASSED" in log_text(airflow, run["run_id"], f"test.{suite}")
    # The last suite to pass ran the coverage gate over every suite's data (pipeline/suites.py): together they
    # cover at least what each covers alone, and at least the catalog's threshold.
    results = {suite: airflow.xcom(DAG_ID, run["run_id"], f"test.{suite}") for suite in SUITES}
    gated = [suite for suite, result in results.items() if result["gate"] is not None]
    assert gated, results
    for suite in gated:
        assert results[suite]["gate"] >= max(80, *(result["coverage"] for result in results.values()))
        assert "coverage gate: the suites together cover" in log_text(airflow, run["run_id"], f"test.{suite}")


def test_a_failing_unit_test_stops_the_release_at_the_test_stage(airflow, runs):
    run = runs["broken-unit"]
    assert run["state"] == "failed"
    assert run["tasks"]["build"] == "success"
    assert run["tasks"]["test.unit"] == "failed"
    deploy = {t: s for t, s in run["tasks"].items() if t in DEPLOY}
    assert deploy.keys() == DEPLOY and set(deploy.values()) <= NOT_RUN, deploy
    assert "failed before deploy at test.unit: test.unit failed: " in log_text(airflow, run["run_id"], "record")
    log = log_text(airflow, run["run_id"], "test.unit")
    assert "suite unit: FAILED" in log
    assert "tests/unit/test_release_blocker.py::test_release_blocker" in log


def test_a_broken_dockerfile_stops_the_release_at_build(airflow, runs):
    run = runs["broken-build"]
    assert run["state"] == "failed"
    assert run["tasks"]["build"] == "failed"
    later = {t: s for t, s in run["tasks"].items() if t not in {"resolve", "build", "record"}}
    assert later and set(later.values()) <= NOT_RUN, later
    log = log_text(airflow, run["run_id"], "build")
    assert "returned a non-zero code: 3" in log
    assert "this step breaks the build" in log
    # The checkout before the build left the commit in build's XCom (no image): the record names the commit.
    checked_out = airflow.xcom(DAG_ID, run["run_id"], "build")
    assert checked_out["sha"] == run["sha"] and "ref" not in checked_out


def test_a_ref_the_repository_lacks_fails_build_with_the_checkout_s_words_and_the_ledger_says_so(airflow, runs):
    run = runs["no-such-ref"]
    assert run["state"] == "failed"
    assert run["tasks"]["build"] == "failed"
    later = {t: s for t, s in run["tasks"].items() if t not in {"resolve", "build", "record"}}
    assert later and set(later.values()) <= NOT_RUN, later
    said = "checkout: ref 'no-such-ref' is not a branch, tag or commit of the repository"
    assert said in log_text(airflow, run["run_id"], "build")
    assert f"failed before deploy at build: build failed: {said}" in log_text(airflow, run["run_id"], "record")


@pytest.mark.parametrize(
    ("conf", "says"),
    [
        ({"environment": "qa"}, "Invalid input for param environment: 'qa' is not one of ['dev', 'staging', 'prod', '']"),
        ({"environment": "dev", "git_ref": "--upload-pack=touch /tmp/x"}, "Invalid input for param git_ref"),
        ({"environment": "dev", "strategy": "big-bang"}, "Invalid input for param strategy"),
    ],
)
def test_the_rest_api_refuses_bad_params_and_creates_no_run(airflow, conf, says):
    before = len(airflow.dag_runs(DAG_ID))
    with pytest.raises(ApiError) as caught:
        airflow.trigger(DAG_ID, conf)
    assert caught.value.status == 400
    assert says in caught.value.detail
    assert len(airflow.dag_runs(DAG_ID)) == before


def test_the_nightly_schedule_did_not_fire_on_deployment(airflow, runs):
    """A DAG that appears at 04:00 waits for the next 02:00; it does not release at once for the last one."""
    assert {run["run_type"] for run in airflow.dag_runs(DAG_ID)} == {"manual"}


def test_the_rest_api_wants_a_token():
    response = requests.post(f"http://127.0.0.1:{PORT}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, timeout=10)
    assert response.status_code == 401
