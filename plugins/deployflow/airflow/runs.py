"""What a DAG run says of itself: who asked for it, and whether the schedule did."""

from __future__ import annotations

from typing import Any


def requested_by(dag_run: Any) -> str:
    """Who asked for the run: the user who triggered it (UI or REST), else its run type (``scheduled``)."""
    return getattr(dag_run, "triggering_user_name", None) or str(dag_run.run_type)


def is_scheduled(dag_run: Any) -> bool:
    """The run is the nightly schedule's (``DagRunType.SCHEDULED``, whichever way it prints)."""
    return str(dag_run.run_type).lower().endswith("scheduled")
