"""Trigger and follow releases through Airflow's REST API (v2), as CI does.

    python -m deployflow.client --url http://127.0.0.1:8080 --user admin \\
        --password-file .airflow/simple_auth_manager_passwords.json \\
        release sample-app --environment dev --git-ref main --reason "CI build 42"

Exits 0 when the release succeeded, 1 when it failed, 2 on bad input. The
session is passed in, so tests can point it anywhere; the token comes from
``/auth/token`` (Airflow's simple auth manager).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

FINISHED = ("success", "failed")


class ApiError(RuntimeError):
    """Airflow's API answered with an error; the message carries its detail."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


@dataclass(frozen=True)
class TaskTiming:
    task_id: str
    state: str | None
    seconds: float | None
    try_number: int


class AirflowClient:
    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def login(self, username: str, password: str) -> None:
        """Get a JWT from ``/auth/token`` and send it with every later call."""
        token = self._call("POST", "/auth/token", json={"username": username, "password": password})["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail if isinstance(detail, str) else json.dumps(detail))
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/api/v2/monitor/health")

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v2/dags/{dag_id}")

    def import_errors(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v2/importErrors")["import_errors"]

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if note:
            body["note"] = note
        return self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value; ApiError 404 when the task pushed none."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path, params={"deserialize": "true", "stringify": "false"})["value"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[dict[str, Any]]:
        """The task's structured log entries (Airflow 3 logs are JSON events)."""
        data = self._call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"}, headers={"Accept": "application/json"},
        )
        content = data.get("content", [])
        if isinstance(content, str):
            return [{"event": line} for line in content.splitlines()]
        return [e if isinstance(e, dict) else {"event": str(e)} for e in content]

    def wait(
        self, dag_id: str, run_id: str, *, timeout: float = 1800, poll: float = 2.0,
        on_change: Callable[[str, str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the run finishes; ``on_change(task_id, state)`` hears each task's new state."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            run = self.dag_run(dag_id, run_id)
            if on_change is not None:
                for ti in self.task_instances(dag_id, run_id):
                    state = ti.get("state")
                    if state and seen.get(ti["task_id"]) != state:
                        seen[ti["task_id"]] = state
                        on_change(ti["task_id"], state)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(poll)


def timings(task_instances: list[dict[str, Any]]) -> list[TaskTiming]:
    """Per-task timings in start order (tasks that never started last)."""
    def start(ti: dict[str, Any]) -> str:
        return ti.get("start_date") or "9999"

    return [
        TaskTiming(ti["task_id"], ti.get("state"), ti.get("duration"), ti.get("try_number", 0))
        for ti in sorted(task_instances, key=start)
    ]


def failure_reason(entries: list[dict[str, Any]]) -> str | None:
    """The message of the exception that failed the task, from its log entries."""
    for entry in reversed(entries):
        for detail in entry.get("error_detail") or []:
            return f"{detail.get('exc_type')}: {detail.get('exc_value')}"
    return None


def run_seconds(run: dict[str, Any]) -> float | None:
    if not (run.get("start_date") and run.get("end_date")):
        return None
    parse = datetime.fromisoformat
    return (parse(run["end_date"].replace("Z", "+00:00")) - parse(run["start_date"].replace("Z", "+00:00"))).total_seconds()


def read_password(path: Path, user: str) -> str:
    """The simple auth manager's password file is JSON: ``{"admin": "..."}``."""
    return json.loads(path.read_text())[user]


def _release(args: argparse.Namespace) -> int:
    client = AirflowClient(args.url)
    client.login(args.user, args.password or read_password(Path(args.password_file), args.user))
    dag_id = f"release_{args.service}"
    conf = {"environment": args.environment, "git_ref": args.git_ref, "strategy": args.strategy, "reason": args.reason}
    conf = {k: v for k, v in conf.items() if v is not None}
    try:
        run = client.trigger(dag_id, conf)
    except ApiError as exc:
        print(f"release refused: {exc.detail}", file=sys.stderr)
        return 2
    run_id = run["dag_run_id"]
    print(f"triggered {dag_id} run {run_id} with {json.dumps(conf)}")
    started = time.monotonic()

    def progress(task_id: str, state: str) -> None:
        print(f"  [{time.monotonic() - started:6.1f}s] {task_id:<24} {state}", flush=True)

    run = client.wait(dag_id, run_id, timeout=args.timeout, on_change=progress)
    tis = client.task_instances(dag_id, run_id)
    print(f"\n{dag_id} {run_id}: {run['state'].upper()} in {run_seconds(run) or 0:.1f} s")
    print(f"  {'task':<24} {'state':<16} seconds")
    for t in timings(tis):
        print(f"  {t.task_id:<24} {t.state or '-':<16} {'' if t.seconds is None else f'{t.seconds:.1f}'}")
    try:
        live = client.xcom(dag_id, run_id, "record", key="live")
    except ApiError:
        live = None
    if live:
        print(f"\nlive in {live['environment']} at {live['url']}:")
        for colour, members in live["sets"].items():
            print(f"  {colour:<6} {', '.join(members['versions'])}: {members['traffic_percent']} % of traffic, "
                  f"{len(members['instances'])} instance(s)")
    for ti in tis:
        if ti.get("state") == "failed":
            entries = client.task_log(dag_id, run_id, ti["task_id"], ti.get("try_number") or 1)
            print(f"\n  {ti['task_id']} failed: {failure_reason(entries) or '(see the task log)'}")
    return 0 if run["state"] == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="prefer --password-file: a password here shows in the process list")
    parser.add_argument("--password-file", default=".airflow/simple_auth_manager_passwords.json")
    sub = parser.add_subparsers(dest="command", required=True)
    release = sub.add_parser("release", help="trigger a release and follow it to the end")
    release.add_argument("service")
    release.add_argument("--environment", default=None)
    release.add_argument("--git-ref", default=None)
    release.add_argument("--strategy", default=None)
    release.add_argument("--reason", default=None)
    release.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    return _release(args)


if __name__ == "__main__":
    sys.exit(main())
