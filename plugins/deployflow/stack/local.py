"""The local stack's Airflow: its four processes (scheduler, dag-processor, api-server, triggerer; SQLite,
LocalExecutor), as ``airflow standalone`` would run them but each started here, so that its PID is known and
``airflow_down`` can stop every one of them, and so that the scheduler and triggerer run with
``--skip-serve-logs`` (Airflow binds log servers to every interface; on one machine the API server reads the
log files directly); and the release exporter beside them.

Each process gets, through an ``AIRFLOW__..._CMD`` variable, a way to read only the secrets it needs
(``secrets.SECRETS_OF``), never a value in its environment. The processes run under a umask of 077, and the
home and the deployer's state directory are 0700.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from deployflow.settings import BASE_IMAGE_VARIABLE, DEPLOYER_IMAGE_VARIABLE, REGISTRY_VARIABLE, Settings, variable_env
from deployflow.stack import ROOT
from deployflow.stack.containers import HAPROXY_IMAGE, LOCAL_EXPORTER_PORT, LOCAL_PROMETHEUS_PORT, deployer_image
from deployflow.stack.processes import _wait_http, say, start_process, stop_process, wait_for_airflow
from deployflow.stack.secrets import PRIVATE_FILE, PRIVATE_UMASK, component_env, ensure_secrets, make_private, password_file, private_dir

EXPORTER = "exporter"  # one more process of the stack, beside Airflow's
COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "api-server": ["api-server"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What every Airflow process of the stack at ``home`` shares; ``extra`` wins. No secret is in it:
    ``component_env`` adds, per process, a pointer to the file of each secret that process needs."""
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings.from_environ()
    return {
        **os.environ,
        "DEPLOYFLOW_HOME": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "PYTHONPATH": str(ROOT / "plugins"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        variable_env(REGISTRY_VARIABLE): settings.registry,
        variable_env(BASE_IMAGE_VARIABLE): settings.base_image,
        variable_env(DEPLOYER_IMAGE_VARIABLE): deployer_image(),
        "DEPLOYFLOW_HAPROXY_IMAGE": HAPROXY_IMAGE,
        "DEPLOYFLOW_STACK": "local",
        "DEPLOYFLOW_STATE": str(ROOT / ".state"),
        "DEPLOYFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{LOCAL_PROMETHEUS_PORT}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    }


def _commands(exporter_port: int) -> dict[str, list[str]]:
    """Each process of the stack and its command line: Airflow's four, then the release exporter."""
    exporter = [sys.executable, "-m", "deployflow.ledger", "exporter", "--port", str(exporter_port)]
    return {**{name: ["airflow", *args] for name, args in COMPONENTS.items()}, EXPORTER: exporter}


def airflow_up(home: Path, port: int, extra_env: dict[str, str] | None = None,
               exporter_port: int = LOCAL_EXPORTER_PORT) -> None:
    """Airflow's processes and the release exporter (on 127.0.0.1:``exporter_port``: a stack's own)."""
    make_private(private_dir(home))
    env = airflow_env(home, port, extra_env)
    private_dir(Path(env["DEPLOYFLOW_STATE"]))
    ensure_secrets(home)
    if not (home / "airflow.db").exists() or not (home / ".migrated").exists():
        started = time.monotonic()
        subprocess.run(["airflow", "db", "migrate"], env=component_env("db-migrate", home, env), check=True,
                       stdout=subprocess.DEVNULL, umask=PRIVATE_UMASK)
        with sqlite3.connect(home / "airflow.db") as db:  # WAL: readers never block the writer
            db.execute("PRAGMA journal_mode=WAL")
        (home / ".migrated").touch(mode=PRIVATE_FILE)
        say(f"Airflow database ready in {time.monotonic() - started:.0f} s")
    private_dir(home / "pids")
    private_dir(home / "logs")
    for name, command in _commands(exporter_port).items():
        start_process(home, name, command, component_env(name, home, env))
    wait_for_airflow(port)
    _wait_http(f"http://127.0.0.1:{exporter_port}/metrics", "the release exporter", timeout=30)
    say(f"release metrics on http://127.0.0.1:{exporter_port}/metrics")
    say(f"Airflow on http://127.0.0.1:{port} (user admin; its password is in {password_file(home)}, "
        f"which `python -m deployflow.stack password --home {home}` prints)")


def airflow_down(home: Path) -> None:
    """Stop every component by its PID, its whole process group (task runners included), and the exporter."""
    for name in (*COMPONENTS, EXPORTER):
        stop_process(home, name)
