"""What the scale tests share: ports, names, the running setup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from deployflow.client import AirflowClient

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "release_sample-app"
PORTS = {"dev": 27101, "staging": 27102, "prod": 27103}  # the proxies' front ports (e2e: 281xx, local: 1800x)
HOST_B_QUEUE = "host-b"


@dataclass
class Setup:
    """The Celery setup of the session: its API client, its top directory, the env it was started with."""

    client: AirflowClient
    top: Path
    extra: dict[str, str]
    repo: Path
    engine: str  # the second engine's URL: dev's Docker host


def served_version(environment: str) -> str:
    return requests.get(f"http://127.0.0.1:{PORTS[environment]}/", timeout=5).json()["version"][:12]


def wait_for_task(client: AirflowClient, run_id: str, task_id: str, state: str, timeout: float = 600) -> dict:
    """The task instance once it is in ``state``; RuntimeError naming the states seen if it is not within ``timeout``
    or the run ends first."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        ti = next(t for t in client.task_instances(DAG_ID, run_id) if t["task_id"] == task_id)
        if not seen or seen[-1] != ti["state"]:
            seen.append(ti["state"])
        if ti["state"] == state:
            return ti
        if client.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            break
        time.sleep(0.3)
    raise RuntimeError(f"{task_id} of {run_id} was never {state} (states seen: {seen})")
