"""A failed canary analysis is final for its run (``deployflow.ledger.verdicts``): the analysis keeps its failing
verdict in the ledger before it fails, and every try of it reads that first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deployflow.airflow.lock import lock_engine
from deployflow.ledger.verdicts import failed_before, keep_failure

if TYPE_CHECKING:
    from airflow.sdk import Context


def failed_verdict(context: Context) -> dict[str, Any] | None:
    """The failing verdict an earlier try of this run's analysis kept (``deployflow.ledger.verdicts``), if any."""
    ti = context["ti"]
    engine = lock_engine()
    try:
        return failed_before(engine, ti.dag_id, context["run_id"], ti.task_id)
    finally:
        engine.dispose()


def keep_failed_verdict(context: Context, verdict: dict[str, Any], log: Any) -> None:
    """Keep the failing verdict for the run before the task fails, so that a retry fails with it too."""
    ti = context["ti"]
    try:
        engine = lock_engine()
        try:
            keep_failure(engine, ti.dag_id, context["run_id"], ti.task_id, verdict)
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - the task fails all the same; only a retry's verdict is at stake
        log.warning("the failing verdict could not be kept in the ledger (%s: %s): a retry would judge again",
                    type(exc).__name__, exc)
