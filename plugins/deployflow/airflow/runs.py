"""What a DAG run says of itself: who asked for it, and whether the schedule did."""

from __future__ import annotations

from typing import Any


def triggering_user(dag_run: Any) -> str | None:
    """The user who triggered the run (UI or REST); None for the schedule's runs and an asset event's."""
    return getattr(dag_run, "triggering_user_name", None) or None


def requested_by(dag_run: Any) -> str:
    """Who asked for the run: the user who triggered it, else its run type (``scheduled``)."""
    return triggering_user(dag_run) or str(dag_run.run_type)


def is_scheduled(dag_run: Any) -> bool:
    """The run is the nightly schedule's (``DagRunType.SCHEDULED``, whichever way it prints)."""
    return str(dag_run.run_type).lower().endswith("scheduled")
