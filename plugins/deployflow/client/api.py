"""Airflow's REST API (v2) as a release needs it: log in, trigger a run, follow it, read its tasks' timings
and failures; and the Releases view's JSON (what is live, a service's history), which Airflow's API server serves
behind the same sign-in. The session is passed in, so tests can point it anywhere; the token comes from ``/auth/token``
(Airflow's simple auth manager). Every failure is a ``ClientError`` whose class is the CLI's exit code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from deployflow.terminal import terminal_text

FINISHED = ("success", "failed")
# The Releases view's JSON API, where Airflow's API server mounts it (releases_view.URL_PREFIX; a test holds them equal).
RELEASES_API = "/deployflow/api"


class ClientError(RuntimeError):
    """A failure the CLI reports in one line, with its exit code (exit_codes.py lists them)."""

    exit_code = 6


class ApiError(ClientError):
    """Airflow's API answered with an error; the message carries its detail."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return 4 if self.status in (401, 403) else 6


class BadInput(ClientError):
    exit_code = 2


class Refused(ClientError):
    """What was asked cannot be done as asked (the gate never counts its requester's answer; a freeze is set)."""

    exit_code = 2


class PasswordUnreadable(ClientError):
    exit_code = 3


class Unreachable(ClientError):
    exit_code = 5


class UnexpectedAnswer(ClientError):
    exit_code = 6


class RunTimedOut(ClientError, TimeoutError):
    exit_code = 7


class NothingToDo(ClientError):
    """Nothing is there to act on: no gate waits for an answer, no freeze is set."""

    exit_code = 8


class AirflowClient:
    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def login(self, username: str, password: str) -> None:
        """Get a JWT from ``/auth/token`` and send it with every later call."""
        answer = self._call("POST", "/auth/token", json={"username": username, "password": password})
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise UnexpectedAnswer(f"{self.base_url}/auth/token answered without an access_token")
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as exc:
            raise BadInput(f"{self.base_url!r} is not a valid Airflow URL: {_one_line(exc)}") from None
        except requests.exceptions.Timeout:
            raise Unreachable(f"no answer from {url} within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"cannot reach Airflow at {self.base_url}: {_reason(exc)}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except (ValueError, AttributeError):
                detail = response.text
            raise ApiError(response.status_code, _one_line(detail if isinstance(detail, str) else json.dumps(detail)))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise UnexpectedAnswer(f"{method} {url} answered HTTP {response.status_code} with {kind}, not JSON: "
                                   f"{_one_line(response.text)[:80]!r}") from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/api/v2/monitor/health")

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v2/dags/{dag_id}")

    def import_errors(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v2/importErrors")["import_errors"]

    def dag_details(self, dag_id: str) -> dict[str, Any]:
        """The DAG with its details: ``dag_run_timeout`` (ISO 8601 duration), ``params``."""
        return self._call("GET", f"/api/v2/dags/{dag_id}/details")

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str | None = None, *, run_id: str | None = None,
                run_after: datetime | None = None) -> dict[str, Any]:
        """A new run; ``run_id``: its id (Airflow's default: ``manual__<time>``); ``run_after`` (aware): when it was
        asked for, which orders the releases waiting for one environment (Airflow's default: now)."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        if run_after is not None:
            body["run_after"] = run_after.isoformat()
        return self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def set_note(self, dag_id: str, run_id: str, note: str) -> dict[str, Any]:
        """Replace the run's note (what the run list shows of it), and nothing else of the run."""
        return self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", params={"update_mask": "note"},
                          json={"note": note})

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value; ApiError 404 when the task pushed none."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path, params={"deserialize": "true", "stringify": "false"})["value"]

    def set_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, value: Any) -> None:
        """Write a task's XCom ``key`` (create it, or replace the one there), as JSON."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        try:
            self._call("POST", path, json={"key": key, "value": value})
        except ApiError as exc:
            if exc.status != 409:  # 409: there is one already
                raise
            self._call("PATCH", f"{path}/{key}", json={"value": value})

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, *, note: str) -> Any:
        """Mark a task instance ``state`` (failed, success, skipped) with a note; Airflow stops it if it runs."""
        return self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
                          json={"new_state": state, "note": note})

    def clear_task(self, dag_id: str, run_id: str, task_id: str, *, note: str) -> Any:
        """Clear one task of a run, and nothing downstream: Airflow stops it if it runs and runs it again."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False, "only_running": False,
                "reset_dag_runs": False, "include_upstream": False, "include_downstream": False, "note": note[:1000]}
        return self._call("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def approval(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """A human-in-the-loop gate's request and answer (subject, body, options, responded_by, chosen_options)."""
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")

    def waiting_gates(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        """The human-in-the-loop requests of the DAG's runs (``~``: every run) that have no answer yet, each with its
        ``task_instance`` (``dag_run_id``, ``task_id``, ``state``)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails"
        return self._call("GET", path, params={"response_received": "false", "limit": 100})["hitl_details"]

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, comment: str = "") -> dict[str, Any]:
        """Answer a gate (``Approve`` or ``Reject``) as the logged-in user; HTTP 403 for one it does not assign."""
        body = {"chosen_options": [option], "params_input": {"comment": comment}}
        return self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
                          json=body)

    def variable(self, key: str) -> str | None:
        """An Airflow Variable's value as stored (text); None when there is none."""
        try:
            return self._call("GET", f"/api/v2/variables/{key}")["value"]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def set_variable(self, key: str, value: str, description: str, *, exists: bool) -> dict[str, Any]:
        """Create the Variable, or replace the one that ``exists``."""
        body = {"key": key, "value": value, "description": description}
        if exists:
            return self._call("PATCH", f"/api/v2/variables/{key}", json=body)
        return self._call("POST", "/api/v2/variables", json=body)

    def delete_variable(self, key: str) -> None:
        """Delete the Variable; ApiError 404 when there is none."""
        self._call("DELETE", f"/api/v2/variables/{key}")

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

    def releases_grid(self) -> dict[str, Any]:
        """The Releases view's grid: each service the user may read, in each environment (what is live, what waits)."""
        return self._call("GET", f"{RELEASES_API}/grid")

    def releases_service(self, service: str, *, environment: str | None = None, limit: int = 50,
                         offset: int = 0) -> dict[str, Any]:
        """The Releases view's answer for ``service``: its environments, a page of its history (newest first, of
        ``environment`` only if given), its figures; ApiError 404 when neither the catalog nor the ledger knows it."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if environment:
            params["environment"] = environment
        return self._call("GET", f"{RELEASES_API}/services/{quote(service, safe='')}", params=params)

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
                raise RunTimedOut(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s (it goes on in Airflow)")
            time.sleep(poll)


def _one_line(text: object) -> str:
    """One line, safe to print: Airflow's answers (an error's detail) are untrusted text."""
    return terminal_text(text)


def _reason(exc: requests.exceptions.ConnectionError) -> str:
    """The innermost reason of a connection failure ("Connection refused"), without urllib3's retry story."""
    inner: BaseException = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    reason = getattr(inner, "strerror", None) or str(inner)
    return _one_line(reason)
