"""Every release DAG file imports cleanly, fast, with no network, and every task is configured.

The release DAGs come from the catalog bundle (deployflow/airflow/catalog_bundle.py): one generated DAG file
per catalog file. The probe does what the dag-processor does: the bundle writes its files, a DagBag fills
from them and from dags/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "include" / "services"
# CPU seconds of one DagBag fill, twice what it takes here (about 2 s with the Kubernetes client): a budget
# for import-time work (the dag-processor parses each file every 30 s), in CPU time so a busy machine does not fail it.
BUDGET_S = 4.0

# Runs in a fresh interpreter, as the DAG processor would: sockets are made to
# fail so that any network use at import time is an import error.
PROBE = r"""
import json, os, socket, sys, tempfile, time
def refuse(*args, **kwargs):
    raise RuntimeError("network touched at DAG import: %r" % (args,))
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from airflow.dag_processing.dagbag import DagBag
from deployflow.airflow.catalog_bundle import CatalogDagBundle
started = time.process_time()  # CPU time: what the import costs, not how busy the machine is
bundle = CatalogDagBundle(name="catalog", path=tempfile.mkdtemp(prefix="deployflow-dags-"))
bundle.initialize()  # writes one DAG file per catalog file, as on the dag-processor and every worker
bag = DagBag(dag_folder=str(bundle.path))
elapsed = time.process_time() - started
folder = DagBag(dag_folder=sys.argv[1])  # dags/: hand-written DAGs, beside the bundle's
out = {"seconds": elapsed, "errors": {os.path.basename(k): str(v) for k, v in bag.import_errors.items()},
       "files": sorted(p for p in os.listdir(bundle.path) if p.endswith(".py")),
       "folder": {"dags": sorted(folder.dag_ids), "errors": {k: str(v) for k, v in folder.import_errors.items()}},
       "heavy": sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "scipy", "pandas"}),
       "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "file": os.path.basename(dag.fileloc),
        "tags": sorted(dag.tags),
        "tasks": {t.task_id: {"retries": t.retries, "downstream": sorted(t.downstream_task_ids),
                              "rule": str(t.trigger_rule.value), "mode": getattr(t, "mode", None),
                              "command": c if isinstance(c := getattr(t, "command", None), list) else None,
                              "on_failure": sorted(c.__name__ for c in (t.on_failure_callback if isinstance(
                                  t.on_failure_callback, list) else [t.on_failure_callback]) if c)} for t in dag.tasks},
        "max_active_runs": dag.max_active_runs,
        "params": sorted(dag.params),
        "schedule": dag.timetable.description if hasattr(dag.timetable, "description") else str(dag.timetable),
        "cron": getattr(dag.timetable, "expression", None) or str(dag.schedule),
    }
print(json.dumps(out))
"""


def import_in_subprocess(catalog: Path = CATALOG, env: dict[str, str] | None = None) -> dict:
    """The release DAGs of ``catalog`` as the dag-processor gets them: errors and DAGs keyed by DAG file name."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "dags")], capture_output=True, text=True, check=True,
        env={**os.environ, "DEPLOYFLOW_CATALOG": str(catalog), **(env or {})}, cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_one_dag_or_error_per_catalog_file(catalog: Path, result: dict) -> None:
    """Every catalog file yields exactly its DAG, from its own DAG file, or that file's import error naming it."""
    services = sorted(p.stem for p in catalog.glob("*.yaml"))
    assert result["files"] == sorted(f"release_{name}.py" for name in services)
    for name in services:
        file = f"release_{name}.py"
        dags = [dag_id for dag_id, dag in result["dags"].items() if dag["file"] == file]
        if file in result["errors"]:
            assert dags == [], f"{file} has an import error and DAGs {dags}"
            assert str(catalog.resolve() / f"{name}.yaml") in result["errors"][file]
        else:
            assert dags == [f"release_{name}"], f"{file} yields {dags}"
    assert set(result["errors"]) <= set(result["files"])


@pytest.fixture(scope="module")
def imported() -> dict:
    return import_in_subprocess()


def test_every_catalog_file_has_its_dag_file_and_dag(imported):
    assert imported["files"], "the catalog bundle wrote no DAG file"
    assert_one_dag_or_error_per_catalog_file(CATALOG, imported)


def test_imports_without_errors_or_network_within_budget(imported):
    assert imported["errors"] == {}
    assert imported["seconds"] < BUDGET_S, f"the catalog's DAG files took {imported['seconds']:.2f} s to import"


def test_a_dag_file_parse_leaves_the_judges_numpy_and_scipy_unimported(imported):
    # Every task process of a release parses its DAG file first: scipy's import alone took about 0.9 s of
    # each task's start here (deployflow.airflow.analysis_interval imports the judge when it judges).
    assert imported["heavy"] == []


def test_dags_folder_holds_no_release_dag(imported):
    """The release DAGs are the bundle's only: one in dags/ too would be one DAG id in two files."""
    assert imported["folder"]["errors"] == {}
    assert not [dag_id for dag_id in imported["folder"]["dags"] if dag_id.startswith("release_")]


def test_every_dag_has_tags_and_every_task_retries_set(imported):
    for dag_id, dag in imported["dags"].items():
        assert "deployflow" in dag["tags"], dag_id
        for task_id, task in dag["tasks"].items():
            assert task["retries"] is not None, f"{dag_id}.{task_id} has no retries set"


def test_release_dag_shape(imported):
    dag = imported["dags"]["release_sample-app"]
    assert dag["params"] == ["environment", "force", "freeze_override", "git_ref", "promote_from", "reason", "rollback_to", "strategy"]
    assert dag["cron"] == "0 2 * * *"
    tasks = dag["tasks"]
    # Resolve (which takes the environment's lock): then the build, or (a promotion, whose build and tests are
    # skipped) straight to the gate, or to prepare where resolve skipped the gate too (airflow/skips.py).
    assert "lock" not in tasks  # taken by resolve, in its task process (airflow/resolve.py)
    assert tasks["resolve"]["downstream"] == ["approve_deploy", "build", "prepare"]
    assert (tasks["resolve"]["retries"], tasks["resolve"]["mode"]) == (3, "reschedule")
    assert "checkout" not in tasks  # build checks out first, in its task process (issue 24)
    assert tasks["build"]["downstream"] == ["test.integration", "test.performance", "test.unit"]
    for suite in ("unit", "integration", "performance"):
        # The last suite to pass runs the coverage gate in its container (pipeline/suites.py): no task of its own.
        assert tasks[f"test.{suite}"]["downstream"] == ["approve_deploy", "prepare"]
        assert tasks[f"test.{suite}"]["command"][:2] == ["sh", "-c"]  # pytest, then the gate where it passes last
        assert tasks[f"test.{suite}"]["retries"] == 0  # a failing suite is not retried
    assert tasks["approve_deploy"]["downstream"] == ["prepare", "rollback"]
    assert (tasks["approve_deploy"]["rule"], tasks["approve_deploy"]["retries"]) == ("none_failed_min_one_success", 0)
    assert tasks["prepare"]["downstream"] == ["health", "rollback"]
    assert tasks["prepare"]["rule"] == "none_failed_min_one_success"  # a skipped gate lets it run, a failed one not
    assert tasks["health"]["downstream"] == ["rollback", "shift"]
    # A wait failed from outside (a lost worker, apache/airflow#72716's resume race) is tried again; its own
    # verdicts raise AirflowFailException, which Airflow never retries (tests/unit: the sensors' failures).
    assert (tasks["health"]["retries"], tasks["analysis"]["retries"]) == (2, 3)
    assert tasks["shift"]["downstream"] == ["analysis", "load", "promote", "rollback"]
    assert tasks["analysis"]["downstream"] == ["promote", "rollback"]  # the branch: pass -> promote, fail -> rollback
    assert tasks["load"]["downstream"] == ["record"]
    assert tasks["promote"]["downstream"] == ["record", "rollback"]
    assert tasks["rollback"]["downstream"] == ["record"]
    assert (tasks["promote"]["rule"], tasks["rollback"]["rule"], tasks["record"]["rule"]) == (
        "none_failed_min_one_success", "one_failed", "all_done")
    assert "approve_promote" not in tasks  # no environment of the sample asks for a gate before promote
    # Each task before the deploy leaves why it failed, for the ledger's failure column (airflow/record.py).
    assert {t for t, task in tasks.items() if task["on_failure"] == ["remember_failure"]} == {
        "resolve", "build", "test.unit", "test.integration", "test.performance", "prepare"}
    # Releases to different environments run at once; resolve's lock keeps one environment's apart.
    assert dag["max_active_runs"] == 8


def test_a_gate_before_promote_stands_between_the_analysis_and_promote(tmp_path):
    entry = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())
    entry["environments"]["prod"]["approval"] = {"approvers": ["alice"], "before": "promote"}
    (tmp_path / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    dag = import_in_subprocess(tmp_path)["dags"]["release_sample-app"]
    tasks = dag["tasks"]
    assert tasks["shift"]["downstream"] == ["analysis", "approve_promote", "load", "promote", "rollback"]
    assert tasks["analysis"]["downstream"] == ["approve_promote", "promote", "rollback"]
    assert tasks["approve_promote"]["downstream"] == ["promote", "rollback"]  # a rejection rolls back
    # Where resolve skipped the gate (it asks for nothing in this environment), promote follows shift and the analysis.
    assert sorted(t for t, task in tasks.items() if "promote" in task["downstream"]) == ["analysis", "approve_promote", "shift"]
    assert tasks["approve_promote"]["rule"] == "none_failed_min_one_success"


def test_a_service_that_asks_for_no_coverage_runs_its_suites_without_the_gate(tmp_path):
    entry = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())
    entry["tests"] = {**entry["tests"], "coverage_threshold": 0}  # a gate at 0 % would check nothing
    (tmp_path / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    tasks = import_in_subprocess(tmp_path)["dags"]["release_sample-app"]["tasks"]
    for suite in ("unit", "integration", "performance"):
        assert tasks[f"test.{suite}"]["downstream"] == ["approve_deploy", "prepare"]
        assert tasks[f"test.{suite}"]["command"][:3] == ["python3", "-m", "pytest"]  # pytest alone, no gate script


def test_a_bad_catalog_file_fails_import_naming_file_field_and_values(tmp_path):
    (tmp_path / "shop.yaml").write_text(
        "name: shop\nsource: {repo: /srv/shop}\nenvironments:\n  prod: {strategy: big-bang, port: 18900}\n"
    )
    result = import_in_subprocess(tmp_path)
    [error] = result["errors"].values()
    assert f"{tmp_path / 'shop.yaml'}: environments.prod.strategy: 'big-bang' is not valid" in error
    assert "'rolling', 'canary', 'blue-green'" in error
    assert result["dags"] == {}
