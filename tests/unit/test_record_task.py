"""The record task writes the whole release to the SQL ledger, once per run: who, what, the configuration
version, the digest, the commit time, each step's seconds and what the release cost (from rollback's or
promote's result)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout

from deployflow.airflow.deployer_operator import DeployerOperator
from deployflow.airflow.record import ReleaseRecordOperator, before_deploy, remember_failure
from deployflow.catalog import parse_service
from deployflow.ledger import Ledger, ReleaseEntry, default_url
from deployflow.outcomes import Outcome
from tests.unit.fakes import FakeDockerClient

SHOP = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18103}}})
COST = {"requests": 5200, "failed_requests": 1, "saved_by_router": 7, "restore_seconds": 0.05, "extra_instance_seconds": 62.5}
XCOMS = {
    ("resolve", "return_value"): {"service": "shop", "environment": "prod", "strategy": "blue-green", "git_ref": "main",
                                  "requested_by": "alice", "reason": "fix"},
    # Build's one result: the checkout it does first (its seconds as checkout_seconds), then the image.
    ("build", "return_value"): {"sha": "0123456789ab" * 3, "short_sha": "0123456789ab", "checkout_seconds": 0.4,
                                "committed_at": "2026-12-01T08:00:00+00:00", "git_ref": "main",
                                "ref": "127.0.0.1:5000/shop:0123456789ab", "digest": "sha256:" + "b" * 64, "seconds": 12.0},
    ("prepare", "return_value"): {"previous": "fedcba987654", "seconds": 3.5},
    ("prepare", "started"): True,
    ("prepare", "release"): {"version": "0123456789ab-cc0ffee00c0de", "image_version": "0123456789ab", "config": "c0ffee00c0de"},
    ("shift", "return_value"): {"seconds": 2.0},
    ("rollback", "return_value"): {"rolled_back": True, "to": "fedcba987654", "because": "crashed", "seconds": 4.0, "cost": COST},
}


@pytest.fixture(autouse=True)
def engine(monkeypatch) -> FakeDockerClient:
    """The environment's Docker engine, as the record task finds it: fake, with no container unless a test adds one."""
    client = FakeDockerClient()
    monkeypatch.setattr("deployflow.airflow.deployer_operator.docker_client", lambda service, environment: client)
    return client


class TI:
    def __init__(self, xcoms: dict[tuple[str, str], object] = XCOMS, task_id: str = "record") -> None:
        self.xcoms, self.task_id = dict(xcoms), task_id

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[(self.task_id, key)] = value


def run_record(tmp_path, monkeypatch, ti: TI, fails: str | None = "", **operator: Any) -> ReleaseEntry:
    """The record task over ``ti``'s XComs, once, failing with ``fails`` (None: it succeeds); the ledger's only row."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    context = {"ti": ti, "run_id": "manual__1",
               "dag_run": SimpleNamespace(start_date=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc), triggering_user_name="alice",
                                          run_type="manual")}
    ending = contextlib.nullcontext() if fails is None else pytest.raises(AirflowFailException, match=fails)
    with mock.patch.object(ReleaseRecordOperator, "_live", return_value=None), ending:
        ReleaseRecordOperator(task_id="record", service=SHOP, **operator).execute(context)
    [entry] = Ledger(default_url(tmp_path)).entries()
    return entry


def test_a_rolled_back_release_is_recorded_whole_and_a_retried_record_writes_no_second_row(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    context = {"ti": TI(), "run_id": "manual__1",
               "dag_run": SimpleNamespace(start_date=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc), triggering_user_name="alice",
                                          run_type="manual")}
    task = ReleaseRecordOperator(task_id="record", service=SHOP)
    with mock.patch.object(ReleaseRecordOperator, "_live", return_value=None):
        for _ in range(2):  # the task, then its retry
            with pytest.raises(AirflowFailException, match="rolled back to fedcba987654: crashed"):
                task.execute(context)
    [entry] = Ledger(default_url(tmp_path)).entries()
    assert (entry.requested_by, entry.outcome, entry.outcome_detail, entry.config, entry.digest, entry.committed_at) == (
        "alice", Outcome.ROLLED_BACK, "rolled back to fedcba987654", "c0ffee00c0de", "sha256:" + "b" * 64,
        "2026-12-01T08:00:00+00:00")
    assert entry.steps == {"checkout": 0.4, "build": 12.0, "prepare": 3.5, "shift": 2.0, "rollback": 4.0}
    assert {k: getattr(entry, k) for k in COST} == COST


def test_a_json_lines_ledger_beside_it_is_imported_once(tmp_path, monkeypatch):
    from deployflow.airflow.ledger import open_ledger

    (tmp_path / "ledger.jsonl").write_text('{"service": "shop", "environment": "prod", "strategy": "rolling", "version": null, '
                                           '"commit": null, "image": null, "previous": null, "requested_by": "bob", "reason": "", '
                                           '"run_id": "old", "outcome": "promoted", "started_at": null, '
                                           '"finished_at": "2026-11-01T00:00:00+00:00", "seconds": 1.0, "rollback_seconds": null}\n')
    assert [e.run_id for e in open_ledger(tmp_path).entries()] == ["old"]
    assert not (tmp_path / "ledger.jsonl").exists() and (tmp_path / "ledger.jsonl.imported").exists()
    assert [e.run_id for e in open_ledger(tmp_path).entries()] == ["old"]  # once


# Build's result before its build: the checkout's alone (pushed as soon as checked out, airflow/checkout_step.py).
CHECKED_OUT = {k: v for k, v in XCOMS[("build", "return_value")].items() if k not in ("ref", "digest", "seconds")}
BEFORE_DEPLOY = {**{k: v for k, v in XCOMS.items() if k[0] == "resolve"}, ("build", "return_value"): CHECKED_OUT}


def test_the_record_reads_why_in_the_order_the_tasks_before_the_deploy_run():
    # The same tasks carry remember_failure in the DAG (tests/dags/test_integrity.py: the release DAG's shape).
    assert before_deploy(SHOP) == ("resolve", "build", "test.unit", "test.integration", "test.performance",
                                   "prepare")


@pytest.mark.parametrize(("task", "error", "why"), [
    ("build", AirflowFailException("build: the Dockerfile's RUN step failed (exit 2)"),
     "build failed: build: the Dockerfile's RUN step failed (exit 2)"),
    # Build checks out first: a bad ref fails it with the checkout's words (tests/unit/test_build_task.py).
    ("build", AirflowFailException("checkout: ref 'mian' is not a branch, tag or commit of the repository"),
     "build failed: checkout: ref 'mian' is not a branch, tag or commit of the repository"),
    ("test.unit", DockerContainerFailedException("Docker container failed: {'StatusCode': 2}",
                                                 logs=[b"Name  Stmts\n", b"Killed\n"]),
     "test.unit failed: Docker container failed: {'StatusCode': 2}: Killed"),
    # The last suite to pass runs the coverage gate (pipeline/suites.py): its verdict is the suite's failure.
    ("test.performance", AirflowFailException("coverage gate: the suites together cover 72 %, under "
                                              "tests.coverage_threshold 80 %"),
     "test.performance failed: coverage gate: the suites together cover 72 %, under tests.coverage_threshold 80 %"),
    ("test.unit", AirflowTaskTimeout(), "test.unit failed: AirflowTaskTimeout"),
])
def test_why_a_task_before_the_deploy_failed_reaches_the_ledger(tmp_path, monkeypatch, task, error, why):
    ti = TI(BEFORE_DEPLOY, task_id=task)
    remember_failure({"ti": ti, "exception": error})  # the failed task's on_failure_callback
    entry = run_record(tmp_path, monkeypatch, ti, fails=f"failed before deploy at {task}: ")
    assert (entry.outcome, entry.outcome_detail, entry.failure) == (Outcome.FAILED_BEFORE_DEPLOY, f"failed before deploy at {task}", why)
    # The commit was checked out before anything failed: the ledger names it (no image, none was built).
    assert (entry.commit, entry.committed_at, entry.image) == ("0123456789ab" * 3, "2026-12-01T08:00:00+00:00", None)
    assert entry.steps == {"checkout": 0.4}


def test_a_release_that_failed_before_deploy_without_a_reason_says_so_plainly(tmp_path, monkeypatch):
    entry = run_record(tmp_path, monkeypatch, TI(BEFORE_DEPLOY), fails="failed before deploy$")
    assert (entry.outcome, entry.outcome_detail, entry.failure) == (Outcome.FAILED_BEFORE_DEPLOY, "failed before deploy", None)


def test_a_rejected_release_is_rejected_in_the_ledger(tmp_path, monkeypatch):
    decision = {"decision": "rejected", "by": "bob", "at": "2026-12-01T09:05:00+00:00", "comment": "not today",
                "position": "promote"}
    ti = TI({**XCOMS, ("approve_promote", "approval"): decision})
    entry = run_record(tmp_path, monkeypatch, ti, fails="rejected, rolled back to fedcba987654: rejected before promote by bob")
    assert (entry.outcome, entry.outcome_detail, entry.approval) == (Outcome.REJECTED, "rejected, rolled back to fedcba987654", "rejected")


def test_the_record_removes_the_run_s_finished_deployers_a_killed_task_left_and_nothing_else(tmp_path, monkeypatch, engine):
    # A shift task SIGKILLed on its last try: its deployer ran on and exited, and no retry came to remove it.
    def deployer(name: str, status: str, run_id: str = "manual__1", environment: str = "prod") -> None:
        engine.add(name, status=status, labels={
            "io.deployflow.stack": "local", "io.deployflow.role": "deployer", "io.deployflow.service": "shop",
            "io.deployflow.environment": environment, "io.deployflow.run-id": run_id, "io.deployflow.step": "shift"})

    deployer("orphan-of-this-run", "exited")
    deployer("running-still", "running")  # the next writing step stops it: never removed while it runs
    deployer("another-runs", "exited", run_id="manual__0")
    deployer("another-environments", "exited", environment="staging")
    run_record(tmp_path, monkeypatch, TI(), fails="rolled back", tidy=DeployerOperator.remove_finished)
    assert sorted(engine.by_name) == ["another-environments", "another-runs", "running-still"]


def test_the_release_dags_record_task_removes_what_its_deployer_steps_left(tmp_path):
    from deployflow.airflow.dag_factory import release_dag

    assert release_dag(SHOP, tmp_path / "shop.yaml").get_task("record").tidy == DeployerOperator.remove_finished


def test_a_rollback_is_recorded_with_who_why_and_the_release_it_put_back(tmp_path, monkeypatch):
    artifact = {"ref": "127.0.0.1:5000/shop:fedcba987654", "digest": "sha256:" + "f" * 64, "sha": "fedcba987654" * 3,
                "short_sha": "fedcba987654", "committed_at": None, "tests": {"unit": {"ok": True}}, "source": "prod",
                "run_id": "manual__0", "config": "c0ffee00c0de"}
    xcoms = {**{k: v for k, v in XCOMS.items() if k[0] not in ("build", "rollback")},
             ("resolve", "return_value"): {**XCOMS[("resolve", "return_value")], "rollback_to": "previous",
                                           "reason": "errors after 0123456", "artifact": artifact},
             ("promote", "return_value"): {"seconds": 1.0}}
    ti = TI(xcoms)
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    context = {"ti": ti, "run_id": "manual__2",
               "dag_run": SimpleNamespace(start_date=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc), triggering_user_name="alice",
                                          run_type="manual")}
    with mock.patch.object(ReleaseRecordOperator, "_live", return_value=None):
        ReleaseRecordOperator(task_id="record", service=SHOP).execute(context)
    [entry] = Ledger(default_url(tmp_path)).entries()
    assert (entry.outcome, entry.requested_by, entry.reason, entry.promoted_from) == (
        Outcome.PROMOTED, "alice", "errors after 0123456", "prod")  # its own environment's earlier release
    assert (entry.commit, entry.digest, entry.tests) == (artifact["sha"], artifact["digest"], artifact["tests"])
    assert "build" not in entry.steps and "checkout" not in entry.steps


ABORTED = {"by": "carol", "reason": "wrong config", "at": "2026-12-01T09:03:00+00:00"}


def test_an_aborted_release_is_rolled_back_aborted_by_who_and_why(tmp_path, monkeypatch):
    ti = TI({**XCOMS, ("resolve", "aborted"): ABORTED})
    entry = run_record(tmp_path, monkeypatch, ti, fails="aborted, rolled back to fedcba987654: aborted by carol: wrong config")
    assert (entry.outcome, entry.outcome_detail, entry.failure) == (
        Outcome.ROLLED_BACK, "aborted, rolled back to fedcba987654", "aborted by carol: wrong config")


def test_an_abort_that_came_after_promote_finished_changes_nothing(tmp_path, monkeypatch):
    promoted = {k: v for k, v in XCOMS.items() if k[0] != "rollback"}
    ti = TI({**promoted, ("promote", "return_value"): {"seconds": 5.0}, ("resolve", "aborted"): ABORTED})
    entry = run_record(tmp_path, monkeypatch, ti, fails=None)
    assert (entry.outcome, entry.failure) == (Outcome.PROMOTED, None)
