"""What the browser tests ask Airflow's REST API, beside the UI: the newest run, waiting for a task's
state, a gate's human-in-the-loop detail. Each takes a logged-in ``deployflow.client.AirflowClient``."""

from __future__ import annotations

import time
from typing import Any

from deployflow.client import AirflowClient

FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")


def newest_run_id(client: AirflowClient, dag_id: str) -> str:
    """The id of ``dag_id``'s run that was queued last."""
    answer = client.session.get(f"{client.base_url}/api/v2/dags/{dag_id}/dagRuns",
                                params={"order_by": "-run_after", "limit": 1}, timeout=client.timeout)
    answer.raise_for_status()
    runs = answer.json()["dag_runs"]
    if not runs:
        raise AssertionError(f"{dag_id} has no run")
    return runs[0]["dag_run_id"]


def wait_for_task_state(client: AirflowClient, dag_id: str, run_id: str, task_id: str, state: str, *,
                        timeout: float = 600, poll: float = 2) -> dict[str, Any]:
    """The task instance once it is in ``state``; AssertionError, with every task's state, when it finishes
    in another or the run ends first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        states = {ti["task_id"]: ti for ti in client.task_instances(dag_id, run_id)}
        current = states.get(task_id, {}).get("state")
        if current == state:
            return states[task_id]
        summary = {t: ti.get("state") for t, ti in states.items()}
        if current in FINISHED:
            raise AssertionError(f"{task_id} of {dag_id} {run_id} ended {current}, never {state}: {summary}")
        if client.dag_run(dag_id, run_id)["state"] in ("success", "failed"):
            raise AssertionError(f"{dag_id} {run_id} ended before {task_id} was {state}: {summary}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{task_id} of {dag_id} {run_id} not {state} within {timeout:.0f} s: {summary}")
        time.sleep(poll)


def hitl_detail(client: AirflowClient, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """The human-in-the-loop detail of a task: its options, params, and once answered chosen_options,
    params_input and responded_by_user ({"id", "name"})."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
    answer = client.session.get(client.base_url + path, timeout=client.timeout)
    answer.raise_for_status()
    return answer.json()
