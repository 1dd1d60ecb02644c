"""What the end-to-end tests share besides fixtures: names, git, reading task logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deployflow.client import AirflowClient

ROOT = Path(__file__).resolve().parents[2]
PORT = 28080
DAG_ID = "release_sample-app"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def log_text(client: AirflowClient, run_id: str, task_id: str, try_number: int = 1) -> str:
    """A task's log as text, exception messages included."""
    lines = []
    for entry in client.task_log(DAG_ID, run_id, task_id, try_number):
        lines.append(str(entry.get("event", "")))
        for detail in entry.get("error_detail") or []:
            lines.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
    return "\n".join(lines)
