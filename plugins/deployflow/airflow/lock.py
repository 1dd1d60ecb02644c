"""The environment lock in a release DAG: a sensor that waits for it, and its release by the record task.

The lock is a row of the ledger's database (``deployflow.ledger.locks``), so it holds across workers and
across the tasks of a release: from this sensor until the record task, whatever runs between. A release
waiting for it shows as a sensor up for reschedule, with the run that holds the environment in its log.

A holder is stale when its run is no longer queued or running (it ended without releasing: a worker lost,
the record task killed) or no longer exists (deleted); the Task SDK tells, through the API server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
from sqlalchemy.engine import Engine

from deployflow.airflow.ledger import ledger_url
from deployflow.ledger import engine_for
from deployflow.ledger.locks import EnvironmentLocks, Holder
from deployflow.ledger.schema import migrate

if TYPE_CHECKING:
    from airflow.sdk import Context

LIVE_STATES = ("queued", "running")
# Well above the seconds a worker takes to exit after a poke: Airflow 3.3.2 fails a rescheduled try that is
# queued again before the executor has reported the last one's exit ("finished with state success, but the
# task instance's state attribute is queued"); with 5 s pokes this hit 2 tries in a row on a loaded machine.
POKE_INTERVAL_S = 30  # a run in another state will never release the lock itself


def lock_engine() -> Engine:
    """The ledger's engine, its schema migrated (the lock table is one of its versions)."""
    # Imported here: deploy.py, whose record task releases the lock, imports this module.
    from deployflow.airflow.deploy import state_dir

    engine = engine_for(ledger_url(state_dir()))
    migrate(engine)
    return engine


def run_not_found(error: AirflowRuntimeError) -> bool:
    """True if the API server answered 404: the Dag run does not exist (deleted, or never did)."""
    detail = error.error.detail or {}
    return error.error.error == ErrorType.API_SERVER_ERROR and detail.get("status_code") == 404


def holder_is_stale(holder: Holder, log: logging.Logger) -> bool:
    """True if the holder's run is over or gone; a state that cannot be read is not stale (wait and look again)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # a task's, not the DAG file's, import

    try:
        state = RuntimeTaskInstance.get_dagrun_state(holder.dag_id, holder.run_id)
    except AirflowRuntimeError as exc:
        if run_not_found(exc):
            log.warning("run %s of %s holds the lock but does not exist (deleted?): taking the lock over",
                        holder.run_id, holder.dag_id)
            return True
        log.warning("could not read the state of run %s of %s (%s): waiting", holder.run_id, holder.dag_id, exc)
        return False
    state = str(getattr(state, "value", state))
    if state in LIVE_STATES:
        return False
    log.warning("run %s of %s holds the lock but is %s: taking the lock over", holder.run_id, holder.dag_id, state)
    return True


def queued_at(context: Context) -> str:
    """When the run was asked for (its ``run_after``: a trigger's time, a schedule's slot), fixed-width UTC, so
    that runs take an environment in the order they were triggered."""
    dag_run = context["dag_run"]
    when = getattr(dag_run, "run_after", None) or getattr(dag_run, "queued_at", None) or getattr(dag_run, "start_date", None)
    when = when.astimezone(timezone.utc) if when is not None else datetime.now(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _since(holder: Holder) -> str:
    return holder.since().astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class EnvironmentLockSensor(BaseSensorOperator):
    """Succeed once this run holds the lock of its service's environment; wait while another run holds it.

    Reschedule mode by default: a release waiting behind another holds no worker slot between pokes. The
    record task lets go (:func:`release_environment_lock`); a holder whose run has ended without that is taken
    over. Another environment's lock never blocks this one.

    :param service: the service's name.
    :param environment_name: the run's environment (templated).
    """

    template_fields: Sequence[str] = ("environment_name",)
    ui_color = "#eceff1"

    def __init__(self, *, service: str, environment_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", POKE_INTERVAL_S)
        super().__init__(**kwargs)
        self.service = service
        self.environment_name = environment_name

    def poke(self, context: Context) -> bool:
        run_id, dag_id = context["run_id"], context["ti"].dag_id
        engine = lock_engine()
        try:
            locks = EnvironmentLocks(engine)
            waiting = locks.acquire_in_turn(self.service, self.environment_name, run_id, dag_id, queued_at(context),
                                            is_stale=lambda h: holder_is_stale(h, self.log))
        finally:
            engine.dispose()
        if waiting is None:
            self.log.info("%s of %s is held by this run (%s): going ahead", self.environment_name, self.service, run_id)
            return True
        why, holder = waiting
        if why == "behind":
            self.log.info("%s: waiting behind run %s (queued at %s), which was triggered first and waits for it too",
                          self.environment_name, holder.run_id, holder.taken_at)
            return False
        held = holder.held_for(datetime.now(timezone.utc))
        self.log.info("%s is held by run %s (since %s, %d s ago); waiting", self.environment_name, holder.run_id,
                      _since(holder), held)
        return False


def release_environment_lock(service: str, environment: str, run_id: str, log: logging.Logger) -> bool:
    """Let go of the lock if ``run_id`` holds it; True if it did. Never raises (the record task must record):
    on an error it logs a warning, and the next release takes the lock over once this run has ended."""
    try:
        engine = lock_engine()
        try:
            released = EnvironmentLocks(engine).release(service, environment, run_id)
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - a lock left behind is taken over; a record lost is not recovered
        log.warning("could not release the lock of %s in %s held by run %s (%s: %s); the next release takes it over "
                    "once this run has ended", service, environment, run_id, type(exc).__name__, exc)
        return False
    if released:
        log.info("lock of %s in %s released", service, environment)
    else:
        log.info("lock of %s in %s was not this run's (%s) to release: released already, or taken over", service, environment, run_id)
    return released
