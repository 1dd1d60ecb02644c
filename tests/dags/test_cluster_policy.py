"""Airflow imports deployflow's cluster policy as ``airflow_local_settings`` in every process, and it routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
from types import SimpleNamespace
import airflow.settings as settings
import airflow_local_settings
ti = SimpleNamespace(dag_id="release_shop", task_id="prepare", queue="default")
build = SimpleNamespace(dag_id="release_shop", task_id="build", queue="default")
run = SimpleNamespace(conf={"environment": "staging"})
settings.task_instance_mutation_hook(ti, dag_run=run)
settings.task_instance_mutation_hook(build, dag_run=run)
print(json.dumps({"file": airflow_local_settings.__file__, "noop": settings.task_instance_mutation_hook.is_noop,
                  "prepare": ti.queue, "build": build.queue}))
"""


def test_the_policy_is_imported_as_airflow_local_settings_and_routes_the_deploy_steps(tmp_path):
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({
        "name": "shop", "source": {"repo": "/srv/shop"},
        "environments": {"staging": {"port": 18102, "docker_host": {"connection": "df_stage", "queue": "stage-host"}}},
    }))
    # The project's environment, as the Makefile sets it for every Airflow process.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "DEPLOYFLOW_HOME": str(ROOT),
           "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"), "DEPLOYFLOW_CATALOG": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"file": str(ROOT / "plugins" / "airflow_local_settings.py"), "noop": False,
                   "prepare": "stage-host", "build": "default"}


def test_the_plugin_manager_is_not_given_the_policy_file():
    ignored = [line for line in (ROOT / "plugins" / ".airflowignore").read_text().splitlines() if not line.startswith("#")]
    # Glob syntax: nothing under plugins/, airflow_local_settings.py included, is a plugin module, but the Releases
    # view's one file (tests/unit/test_releases_plugin.py finds it alone through Airflow's own discovery).
    assert ignored == ["*", "!/deployflow_releases.py"]
