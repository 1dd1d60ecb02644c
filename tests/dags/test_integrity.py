"""Every DAG file imports cleanly, fast, with no network, and every task is configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
# CPU seconds of one DagBag fill, twice what it takes here (about 2 s with the Kubernetes client): a budget
# for import-time work (the dag-processor parses the file every 30 s), in CPU time so a busy machine does not fail it.
BUDGET_S = 4.0

# Runs in a fresh interpreter, as the DAG processor would: sockets are made to
# fail so that any network use at import time is an import error.
PROBE = r"""
import json, socket, sys, time
def refuse(*args, **kwargs):
    raise RuntimeError("network touched at DAG import: %r" % (args,))
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from airflow.dag_processing.dagbag import DagBag
started = time.process_time()  # CPU time: what the import costs, not how busy the machine is
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.process_time() - started
out = {"seconds": elapsed, "errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags),
        "tasks": {t.task_id: {"retries": t.retries, "downstream": sorted(t.downstream_task_ids),
                              "rule": str(t.trigger_rule.value)} for t in dag.tasks},
        "max_active_runs": dag.max_active_runs,
        "params": sorted(dag.params),
        "schedule": dag.timetable.description if hasattr(dag.timetable, "description") else str(dag.timetable),
        "cron": getattr(dag.timetable, "expression", None) or str(dag.schedule),
    }
print(json.dumps(out))
"""


def import_in_subprocess(path: Path, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def imported() -> dict[Path, dict]:
    return {path: import_in_subprocess(path) for path in DAG_FILES}


def test_there_are_dag_files():
    assert DAG_FILES, "no DAG files found under dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_imports_without_errors_or_network_within_budget(imported, path):
    result = imported[path]
    assert result["errors"] == {}
    assert result["dags"], f"{path.name} defines no DAG"
    assert result["seconds"] < BUDGET_S, f"{path.name} took {result['seconds']:.2f} s to import"


def test_every_dag_has_tags_and_every_task_retries_set(imported):
    for result in imported.values():
        for dag_id, dag in result["dags"].items():
            assert "deployflow" in dag["tags"], dag_id
            for task_id, task in dag["tasks"].items():
                assert task["retries"] is not None, f"{dag_id}.{task_id} has no retries set"


def test_release_dag_shape(imported):
    dag = imported[ROOT / "dags" / "release.py"]["dags"]["release_sample-app"]
    assert dag["params"] == ["environment", "freeze_override", "git_ref", "promote_from", "reason", "strategy"]
    assert dag["cron"] == "0 2 * * *"
    tasks = dag["tasks"]
    assert tasks["resolve"]["downstream"] == ["lock"]
    # The lock: then the build, or (a promotion, whose build and tests are skipped) straight to the gate.
    assert tasks["lock"]["downstream"] == ["approve_deploy", "checkout"]
    assert tasks["checkout"]["downstream"] == ["build"]
    assert tasks["build"]["downstream"] == ["test.integration", "test.performance", "test.unit"]
    for suite in ("unit", "integration", "performance"):
        assert tasks[f"test.{suite}"]["downstream"] == ["coverage_gate"]
        assert tasks[f"test.{suite}"]["retries"] == 0  # a failing suite is not retried
    assert tasks["coverage_gate"]["downstream"] == ["approve_deploy"]
    assert tasks["approve_deploy"]["downstream"] == ["prepare", "rollback"]
    assert (tasks["approve_deploy"]["rule"], tasks["approve_deploy"]["retries"]) == ("none_failed_min_one_success", 0)
    assert tasks["prepare"]["downstream"] == ["health", "rollback"]
    assert tasks["health"]["downstream"] == ["rollback", "shift"]
    assert tasks["shift"]["downstream"] == ["analysis", "load", "promote", "rollback"]
    assert tasks["analysis"]["downstream"] == ["promote", "rollback"]  # the branch: pass -> promote, fail -> rollback
    assert tasks["load"]["downstream"] == ["record"]
    assert tasks["promote"]["downstream"] == ["record", "rollback"]
    assert tasks["rollback"]["downstream"] == ["record"]
    assert (tasks["promote"]["rule"], tasks["rollback"]["rule"], tasks["record"]["rule"]) == (
        "none_failed_min_one_success", "one_failed", "all_done")
    assert "approve_promote" not in tasks  # no environment of the sample asks for a gate before promote
    # Releases to different environments run at once; the lock task keeps one environment's apart.
    assert dag["max_active_runs"] == 8


def test_a_gate_before_promote_stands_between_the_analysis_and_promote(tmp_path):
    entry = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())
    entry["environments"]["prod"]["approval"] = {"approvers": ["alice"], "before": "promote"}
    (tmp_path / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    dag = import_in_subprocess(ROOT / "dags" / "release.py", {"DEPLOYFLOW_CATALOG": str(tmp_path)})["dags"]["release_sample-app"]
    tasks = dag["tasks"]
    assert tasks["shift"]["downstream"] == ["analysis", "approve_promote", "load", "rollback"]
    assert tasks["analysis"]["downstream"] == ["approve_promote", "rollback"]
    assert tasks["approve_promote"]["downstream"] == ["promote", "rollback"]  # a rejection rolls back
    assert tasks["approve_promote"]["rule"] == "none_failed_min_one_success"


def test_a_bad_catalog_file_fails_import_naming_file_field_and_values(tmp_path):
    (tmp_path / "shop.yaml").write_text(
        "name: shop\nsource: {repo: /srv/shop}\nenvironments:\n  prod: {strategy: big-bang, port: 18900}\n"
    )
    result = import_in_subprocess(ROOT / "dags" / "release.py", {"DEPLOYFLOW_CATALOG": str(tmp_path)})
    [error] = result["errors"].values()
    assert f"{tmp_path / 'shop.yaml'}: environments.prod.strategy: 'big-bang' is not valid" in error
    assert "'rolling', 'canary', 'blue-green'" in error
    assert result["dags"] == {}
