"""Resolve in the release DAG, measuring the request against what the ledger says is live (issue 23): the live
commit and configuration again has the scheduler skip every task but the record, which writes "already live";
the live commit with a new configuration takes the live image, and build (which checks out first) skips saying why;
another commit runs the whole pipeline.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowSkipException, DownstreamTasksSkipped

from deployflow.airflow.dag_factory import release_dag
from deployflow.airflow.operators import ImageBuildOperator
from deployflow.airflow.record import ReleaseRecordOperator
from deployflow.catalog import parse_service
from deployflow.ledger import Ledger, ReleaseEntry, default_url
from deployflow.outcomes import Outcome


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "one")
    git(path, "branch", "next")
    git(path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "two")
    return path


class RunTI:
    """One run's XComs, pushed by any task and pulled back by task id and key."""

    map_index = -1

    def __init__(self) -> None:
        self.pushed: dict[tuple[str, str], object] = {}
        self.task_id = "resolve"
        self.dag_id = "release_shop"

    def get_first_reschedule_date(self, context: dict) -> None:  # resolve, a sensor, asks: its first poke
        return None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.pushed.get((task_ids, key))


def live_row(commit: str, config: str | None = None) -> ReleaseEntry:
    return ReleaseEntry(
        service="shop", environment="dev", strategy="rolling", version=commit[:12], commit=commit,
        image=f"127.0.0.1:5000/shop:{commit[:12]}", previous=None, requested_by="ci", reason="", run_id="manual__0",
        outcome=Outcome.PROMOTED, started_at=None, finished_at="2026-12-01T10:00:00+00:00", seconds=55.0,
        rollback_seconds=None, digest="sha256:" + "d" * 64, config=config, tests={"unit": {"suite": "unit", "ok": True}})


@pytest.fixture
def world(tmp_path, monkeypatch, repo):
    """The shop's DAG over a real repository, a ledger in which ``main`` is live in dev (no configuration), and the
    service's other runs counted as none."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    Ledger(default_url(tmp_path / "state")).record(live_row(git(repo, "rev-parse", "main")))
    monkeypatch.setattr("deployflow.airflow.rerelease._others_running", lambda dag_id: 0)
    service = parse_service({"name": "shop", "source": {"repo": str(repo), "default_ref": "main"},
                             "environments": {"dev": {"port": 18101}}})
    return SimpleNamespace(dag=release_dag(service, tmp_path / "shop.yaml"), service=service, repo=repo, ti=RunTI())


# What a rolling release to dev does without, whatever it releases (airflow/skips.py).
DECIDED = ["analysis", "approve_deploy", "load"]


def resolve(world, git_ref: str, **params: object) -> dict:
    """Resolve's result, and the tasks it had skipped (empty when it skipped none)."""
    dag_run = SimpleNamespace(triggering_user_name="alice", run_type="manual", start_date=datetime.now(timezone.utc))
    context = {"ti": world.ti, "dag_run": dag_run, "params": {"environment": "dev", "git_ref": git_ref, **params},
               "run_id": "manual__1"}
    try:
        result = world.dag.get_task("resolve").execute(context)
        world.ti.xcom_push("return_value", result)  # as the task runner does with what execute returns
        skipped = []
    except DownstreamTasksSkipped as exc:
        result, skipped = world.ti.xcom_pull("resolve"), exc.tasks
    return {**result, "skipped_tasks": sorted(skipped)}


def test_the_live_commit_and_configuration_again_skips_everything_but_the_record(world, tmp_path):
    resolved = resolve(world, "main")
    assert "is live in dev (run manual__0) with the same configuration (none)" in resolved["already_live"]
    assert resolved["skipped_tasks"] == sorted(t for t in world.dag.task_ids if t not in ("resolve", "record"))
    assert resolved["artifact"]["digest"] == "sha256:" + "d" * 64
    assert world.ti.pushed[("resolve", "note")].endswith("· already live · by alice")

    world.ti.task_id = "record"
    context = {"ti": world.ti, "run_id": "manual__1",
               "dag_run": SimpleNamespace(start_date=datetime.now(timezone.utc), triggering_user_name="alice", run_type="manual")}
    with mock.patch.object(ReleaseRecordOperator, "_live") as live, mock.patch("deployflow.airflow.record.finish_load") as load, \
            mock.patch("deployflow.airflow.record.release_environment_lock") as unlock:
        world.dag.get_task("record").execute(context)  # succeeds: the run ends success
    assert not (live.called or load.called or unlock.called)  # no load, lock or deployer of this run's: seconds saved
    row = Ledger(default_url(tmp_path / "state")).entries()[-1]
    assert (row.run_id, row.outcome, row.commit, row.digest, row.config) == (
        "manual__1", Outcome.ALREADY_LIVE, git(world.repo, "rev-parse", "main"), "sha256:" + "d" * 64, None)
    assert row.outcome_detail.startswith("already live: ") and row.failure is None


def test_the_live_commit_with_a_new_configuration_reuses_its_image_and_build_says_why(world, monkeypatch):
    monkeypatch.setattr("deployflow.airflow.rerelease.config_version", lambda env: "c0ffee00c0de")
    resolved = resolve(world, git(world.repo, "rev-parse", "main"))  # a full SHA names itself
    # resolve skips what the image stands for at once (from build, the skip would take a scheduler loop per level)
    assert resolved["skipped_tasks"] == sorted(["build", *DECIDED, *(
        t for t in world.dag.task_ids if t.startswith("test."))]) and "already_live" not in resolved
    assert "with configuration none: releasing configuration c0ffee00c0de with its image, unbuilt" in resolved["reuse"]
    assert (resolved["artifact"]["ref"], resolved["artifact"]["digest"]) == ("127.0.0.1:5000/shop:" + resolved["artifact"]["sha"][:12],
                                                                            "sha256:" + "d" * 64)
    assert "checkout" not in world.dag.task_ids
    build = world.dag.get_task("build")
    assert isinstance(build, ImageBuildOperator)
    world.ti.task_id = "build"
    with pytest.raises(AirflowSkipException, match="unbuilt: nothing to check out, build or test"):
        build.execute({"ti": world.ti, "run_id": "manual__1"})  # should it run all the same


@pytest.mark.parametrize(("ref", "params"), [("next", {}), ("no-such-branch", {}), ("main", {"force": True})])
def test_another_commit_one_only_a_checkout_can_tell_or_a_forced_release_runs_the_whole_pipeline(world, ref, params):
    resolved = resolve(world, ref, **params)
    assert resolved["skipped_tasks"] == DECIDED and "artifact" not in resolved  # only what dev's rolling does without
    assert not {"already_live", "reuse"} & set(resolved)
