"""Waiting, by the scheduler's log, until a parked human-in-the-loop task may be answered safely.

Airflow 3.3.2 fails a gate answered too soon. The worker that parks the task in AWAITING_INPUT exits
cleanly some seconds later (about 5 s here), and the executor reports that exit as a success for the
same try. An answer given before the scheduler has taken that report resumes the task at once (the
API server moves it to SCHEDULED); the scheduler queues it, then takes the stale success for a task it
sees QUEUED and marks it FAILED ("finished with state success, but the task instance's state attribute
is queued"). Its guard for a resume covers SCHEDULED only: the defer path's same race, apache/airflow
#66374 and #67287. Answered through the REST API right after AWAITING_INPUT, 3 gates of 4 failed here;
after this wait, 6 of 6 passed. A person rarely answers within seconds; a test always does.

No API shows that the scheduler has taken the report; its log does, and deployflow.stack writes that log to
``AIRFLOW_HOME/logs/scheduler.out``.
"""

from __future__ import annotations

import time
from pathlib import Path

EVENT = ("Received executor event with state success for task instance TaskInstanceKey(dag_id='{dag_id}', "
         "task_id='{task_id}', run_id='{run_id}', try_number={try_number},")


def scheduler_log(home: Path) -> Path:
    """Where ``deployflow.stack.local.airflow_up`` writes the scheduler's output for the Airflow at ``home``."""
    return home / "logs" / "scheduler.out"


def wait_for_parked_exit(log: Path, dag_id: str, run_id: str, task_id: str, try_number: int, *,
                         parks: int = 1, timeout: float = 60, poll: float = 0.5) -> float:
    """Return (the seconds waited) once the scheduler has taken the executor's report of the exit of the
    worker that parked ``task_id`` (try ``try_number``) for the ``parks``-th time (a gate that refused an
    answer parks again in the same try); AssertionError after ``timeout`` seconds."""
    event = EVENT.format(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number)
    started = time.monotonic()
    seen, taken = "", 0
    with log.open(errors="replace") as lines:
        while True:
            seen += lines.read()  # only what was added since, after a tail too short to hold a whole line
            taken += seen.count(event)
            seen = seen[-(len(event) - 1):]
            if taken >= parks:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the scheduler did not take parking exit {parks} of {task_id} (try {try_number}) of "
                                     f"{dag_id} {run_id} within {timeout:.0f} s: no line with {event!r} in {log}")
            time.sleep(poll)
