"""What a DAG run says of itself: who asked for it, and whether the schedule did; why a task of it skipped; and
whether this process is a task's."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk.exceptions import AirflowSkipException

from deployflow.airflow.task_ids import SKIPPED

if TYPE_CHECKING:
    from airflow.sdk import Context


def triggering_user(dag_run: Any) -> str | None:
    """The user who triggered the run (UI or REST); None for the schedule's runs and an asset event's."""
    return getattr(dag_run, "triggering_user_name", None) or None


def requested_by(dag_run: Any) -> str:
    """Who asked for the run: the user who triggered it, else its run type (``scheduled``)."""
    return triggering_user(dag_run) or str(dag_run.run_type)


def is_scheduled(dag_run: Any) -> bool:
    """The run is the nightly schedule's (``DagRunType.SCHEDULED``, whichever way it prints)."""
    return str(dag_run.run_type).lower().endswith("scheduled")


def skip(context: Context, reason: str) -> NoReturn:
    """Skip the task, leaving ``reason`` in its XCom (key ``skipped``) as well as in its log: the client reads it
    there to say why a release did without a step."""
    context["ti"].xcom_push(key=SKIPPED, value=reason)
    raise AirflowSkipException(reason)


def in_a_task() -> bool:
    """True in a task's process (Airflow's task runner, talking to its supervisor), where Airflow initializes
    the bundle before it parses the task's DAG file; False in the dag-processor."""
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None
