"""The stack's own secrets on the real stack: no process's environment holds one, the home is private,
connections are encrypted.

While one release runs (tasks forked from the scheduler, what they start), every process of the
stack's four sessions is sampled from /proc. Caveat: a process that calls setproctitle (the api-server,
LocalExecutor workers, task supervisors and runners) has the original block of /proc/<pid>/environ
zeroed, so for those the sample shows nothing; what they hold is a copy of their parent's environment,
and the parents (scheduler, dag-processor, triggerer) and what tasks exec (git) show theirs.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from deployflow.stack.local import COMPONENTS
from deployflow.stack.secrets import admin_password, secret_command
from tests.e2e.harness import PROMETHEUS_PORT, release

pytestmark = pytest.mark.e2e

JWT_CMD = "AIRFLOW__API_AUTH__JWT_SECRET_CMD"
FERNET_CMD = "AIRFLOW__CORE__FERNET_KEY_CMD"
TASK_RUNNER = re.compile(rb"^airflow worker -- [0-9a-f-]{36}")


def _session_of(pid: str) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[3])  # after the name: state, ppid, pgrp, session


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def sample(sessions: dict[int, str], seen: dict[tuple[str, bytes], dict]) -> None:
    """One look at every process of the stack's sessions: its title and its environment block."""
    for pid in os.listdir("/proc"):
        session = _session_of(pid) if pid.isdigit() else None
        if session not in sessions:
            continue
        title = _read(f"/proc/{pid}/cmdline").split(b"\0")[0]
        environ = _read(f"/proc/{pid}/environ")
        entry = seen.setdefault((pid, title), {"component": sessions[session], "environ": b""})
        if environ.strip(b"\0"):
            entry["environ"] = environ


@pytest.fixture(scope="module")
def during_a_release(airflow, airflow_home: Path) -> dict:
    """Every process seen while a release of main to dev ran, and the run."""
    sessions = {int((airflow_home / "pids" / f"{name}.pid").read_text()): name for name in COMPONENTS}
    seen: dict[tuple[str, bytes], dict] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            sample(sessions, seen)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = release(airflow, "dev", "main", reason="e2e stack secrets", force=True)  # a whole release, even where main is live
    finally:
        done.set()
        watcher.join()
    return {"run": run, "seen": seen}


def secrets_of(home: Path) -> dict[str, bytes]:
    files = {"jwt secret": home / "jwt_secret", "fernet key": home / "fernet_key"}
    found = {name: path.read_bytes() for name, path in files.items() if path.exists()}
    return {**found, "admin password": admin_password(home).encode()}


def test_no_process_of_the_stack_has_a_secret_in_its_environment(during_a_release, airflow_home):
    assert during_a_release["run"]["state"] == "success", during_a_release["run"]["tasks"]
    seen = during_a_release["seen"]
    assert any(TASK_RUNNER.match(title) for _, title in seen), "no task process was seen running"
    readable = [entry for entry in seen.values() if entry["environ"]]
    assert {entry["component"] for entry in readable} >= {"scheduler", "dag-processor", "triggerer"}
    for (pid, title), entry in seen.items():
        for name, value in secrets_of(airflow_home).items():
            assert value not in entry["environ"], f"the {name} is in the environment of {pid} {title!r}"


def environment(entry: dict) -> dict[str, str]:
    pairs = (item.decode().split("=", 1) for item in entry["environ"].split(b"\0") if b"=" in item)
    return dict(pairs)


def test_only_the_processes_that_need_a_secret_can_read_it(airflow, during_a_release, airflow_home):
    mains = {int((airflow_home / "pids" / f"{name}.pid").read_text()): name for name in COMPONENTS}
    found = {}
    for (pid, _), entry in during_a_release["seen"].items():
        if int(pid) in mains and entry["environ"]:
            found[mains[int(pid)]] = environment(entry)
    pointers = {name: {key for key in env if "JWT_SECRET" in key or "FERNET_KEY" in key} for name, env in found.items()}
    # the api-server's block is zeroed by its setproctitle; the unit tests pin its environment
    assert pointers == {"scheduler": {JWT_CMD}, "dag-processor": {FERNET_CMD}, "triggerer": {FERNET_CMD}}
    assert found["scheduler"][JWT_CMD] == secret_command(airflow_home / "jwt_secret")
    # both live without the JWT secret: their heartbeats are fresh
    health = airflow.health()
    assert health["dag_processor"]["status"] == health["triggerer"]["status"] == "healthy", health


def test_the_home_its_database_logs_and_the_state_are_private(airflow, during_a_release, airflow_home, stack_state):
    open_to_others = []
    for directory, _, files in os.walk(airflow_home):
        for path in (directory, *(os.path.join(directory, name) for name in files)):
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
                open_to_others.append(f"{oct(stat.S_IMODE(info.st_mode))} {path}")
    assert not open_to_others
    logs = list((airflow_home / "logs").rglob("*.log"))
    assert logs and (airflow_home / "airflow.db").exists()  # what was checked exists
    assert stat.S_IMODE(stack_state.stat().st_mode) == 0o700
    # Prometheus, root in its container, still reads the targets the deployer wrote there
    targets = requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/targets", timeout=10).json()["data"]
    dev = [t for t in targets["activeTargets"] if t["labels"].get("environment") == "dev"]
    assert dev and "sample-app" in {t["labels"]["service"] for t in dev}


def test_a_connection_password_is_encrypted_in_the_database(airflow, airflow_home):
    conn_id, password = "deployflow_e2e_secret", "clear-text-kubeconfig-token"
    airflow._call("POST", "/api/v2/connections", json={
        "connection_id": conn_id, "conn_type": "http", "host": "127.0.0.1", "password": password,
        "extra": f'{{"token": "{password}"}}'})
    try:
        with sqlite3.connect(f"file:{airflow_home / 'airflow.db'}?mode=ro", uri=True) as db:
            stored, encrypted, extra, extra_encrypted = db.execute(
                "SELECT password, is_encrypted, extra, is_extra_encrypted FROM connection WHERE conn_id = ?",
                (conn_id,)).fetchone()
        assert password not in stored and password not in extra
        assert encrypted and extra_encrypted
        fernet = Fernet((airflow_home / "fernet_key").read_bytes())
        assert fernet.decrypt(stored.encode()).decode() == password
    finally:
        airflow._call("DELETE", f"/api/v2/connections/{conn_id}")

