"""The environment lock in a release DAG: taken by resolve (a sensor's poke, :func:`take_in_turn`), let go by the
record task (:func:`release_environment_lock`).

The lock is a row of the ledger's database (``deployflow.ledger.locks``), so it holds across workers and
across the tasks of a release: from resolve until the record task, whatever runs between. A release
waiting for it shows as resolve up for reschedule, with the run that holds the environment in its log.

A holder is stale when its run is no longer queued or running (it ended without releasing: a worker lost,
the record task killed) or no longer exists (deleted); the Task SDK tells, through the API server.

Runs take an environment in the order they were triggered: a run waits behind earlier runs in the queue,
and behind an earlier running run whose resolve (the task that takes the lock) has not asked yet
(:func:`earlier_run_on_its_way`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowRuntimeError, ErrorType
from sqlalchemy.engine import Engine

from deployflow.airflow.ledger import ledger_url
from deployflow.airflow.settings import state_dir
from deployflow.ledger import engine_for
from deployflow.ledger.fences import NotHeld, next_token
from deployflow.ledger.locks import EnvironmentLocks, Holder
from deployflow.ledger.schema import migrate

if TYPE_CHECKING:
    from airflow.sdk import Context

    from deployflow.stores.base import TokenHome

LIVE_STATES = ("queued", "running")
# Well above the seconds a worker takes to exit after a poke: Airflow 3.3.2 fails a rescheduled try that is
# queued again before the executor has reported the last one's exit ("finished with state success, but the
# task instance's state attribute is queued"); with 5 s pokes this hit 2 tries in a row on a loaded machine.
POKE_INTERVAL_S = 30  # a run in another state will never release the lock itself


def lock_engine() -> Engine:
    """The ledger's engine, its schema migrated (the lock table is one of its versions)."""
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
    state = _value(state)
    if state in LIVE_STATES:
        return False
    log.warning("run %s of %s holds the lock but is %s: taking the lock over", holder.run_id, holder.dag_id, state)
    return True


# A resolve task in one of these states has asked for its environment, or never will.
DONE_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def fetch_dag_run(dag_id: str, run_id: str) -> Any:
    """The Dag run as the Task SDK reads it from the API server (its state, conf and run_after)."""
    # The SDK's message for it has no public wrapper (Context has this run's, not another's).
    from airflow.sdk.execution_time.comms import GetDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return SUPERVISOR_COMMS.send(GetDagRun(dag_id=dag_id, run_id=run_id))


def stamp(when: datetime) -> str:
    """Fixed-width UTC, the queue's order (sorts as it reads)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _value(state: Any) -> str:
    return str(getattr(state, "value", state))  # an enum's str() is not its value


def earlier_run_on_its_way(dag_id: str, task_id: str, run_id: str, environment: str, queued: str, in_line: set[str],
                           log: logging.Logger) -> Holder | None:
    """The earliest running run of this DAG triggered before ``queued`` whose resolve (``task_id``: it takes the
    lock) has not asked yet and that may release to ``environment`` (its conf names it, or names none: a
    nightly's), or None.

    Two releases triggered a moment apart both start; the second's resolve may run first (tasks of two runs
    run in no set order) and must not take the environment from the first. A queued run is not waited for: the
    scheduler starts runs in the order they were triggered, and a running release waiting on one that waits
    for a free run slot could wait for its timeout. A state that cannot be read is not waited for (the lock
    still lets one release in at a time; only the order is at stake)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # a task's, not the DAG file's, import

    try:
        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, task_ids=[task_id])
        pending = sorted(run for run, tasks in states.items()
                         if run != run_id and run not in in_line and _value(tasks.get(task_id)) not in DONE_STATES)
        earlier = []
        for run in pending:
            dag_run = fetch_dag_run(dag_id, run)
            state = _value(dag_run.state)
            wants = (dag_run.conf or {}).get("environment")
            when = stamp(dag_run.run_after)
            if state == "running" and (when, run) < (queued, run_id) and wants in (environment, None):
                earlier.append(Holder(run, dag_id, when))
    except Exception as exc:  # noqa: BLE001 - the order is best effort; the lock itself is not
        log.warning("could not read the runs of %s triggered before this one (%s: %s): not waiting for them",
                    dag_id, type(exc).__name__, exc)
        return None
    return min(earlier, key=lambda h: (h.taken_at, h.run_id), default=None)


def queued_at(context: Context) -> str:
    """When the run was asked for (its ``run_after``: a trigger's time, a schedule's slot), fixed-width UTC, so
    that runs take an environment in the order they were triggered."""
    dag_run = context["dag_run"]
    when = getattr(dag_run, "run_after", None) or getattr(dag_run, "queued_at", None) or getattr(dag_run, "start_date", None)
    return stamp(when if when is not None else datetime.now(timezone.utc))


def _since(holder: Holder) -> str:
    return holder.since().astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def take_in_turn(service: str, environment: str, context: Context, task_id: str, log: logging.Logger) -> bool:
    """Take the lock of ``service``'s ``environment`` for this run, in the order runs were triggered: True once the
    run holds it (again, on a later poke); False while another run holds it, or was triggered first and has not
    asked yet (``task_id``: the task that asks, resolve), the reason logged. A holder whose run has ended without
    letting go is taken over. Another environment's lock never blocks this one."""
    run_id, dag_id = context["run_id"], context["ti"].dag_id
    engine = lock_engine()
    try:
        locks = EnvironmentLocks(engine)
        queued = queued_at(context)
        waiting = locks.acquire_in_turn(
            service, environment, run_id, dag_id, queued,
            is_stale=lambda h: holder_is_stale(h, log),
            on_its_way=lambda in_line: earlier_run_on_its_way(dag_id, task_id, run_id, environment, queued, in_line, log))
    finally:
        engine.dispose()
    if waiting is None:
        log.info("%s of %s is held by this run (%s): going ahead", environment, service, run_id)
        return True
    why, holder = waiting
    if why == "coming":
        log.info("%s: waiting for run %s (triggered at %s), which was triggered first and has not asked for it yet",
                 environment, holder.run_id, holder.taken_at)
    elif why == "behind":
        log.info("%s: waiting behind run %s (queued at %s), which was triggered first and waits for it too",
                 environment, holder.run_id, holder.taken_at)
    else:
        held = holder.held_for(datetime.now(timezone.utc))
        log.info("%s is held by run %s (since %s, %d s ago); waiting", environment, holder.run_id, _since(holder), held)
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


def take_step_token(service: str, environment: str, run_id: str, home: TokenHome, log: logging.Logger) -> int:
    """A deployer step's fencing token (``deployflow.ledger.fences``): the environment's next generation, taken in
    the ledger by the run that holds its lock, then made the newest in ``home`` (where the deployer reads it). From
    then on every older step's write is refused.

    :raises AirflowFailException: the run does not hold the lock (not retried: it will not get it back).
    """
    engine = lock_engine()
    try:
        token = next_token(engine, service, environment, run_id)
    except NotHeld as exc:
        raise AirflowFailException(str(exc)) from None
    finally:
        engine.dispose()
    home.hand_token(token)
    log.info("fencing token %d of %s in %s taken by run %s", token, service, environment, run_id)
    return token
