"""``abort`` and ``promote``: stop a service's release in flight in an environment, or promote it now, with
Airflow's own handles.

Argo Rollouts' ``abort`` puts all traffic back on the stable version and leaves the rollout degraded; here:

1. the abort is written where the run's record task reads it: an XCom ``aborted`` of the run's ``resolve`` task,
   ``{"by": <user>, "reason": <why>, "at": <UTC time>}`` (``POST .../xcomEntries``);
2. each task of the run still to finish, but the rollback and the record, is marked failed with the note
   "aborted by <user>: <why>" (``PATCH .../taskInstances/{task_id}``). Airflow stops a running one (its deployer
   is stopped by the rollback's fencing token in any case) and drops a deferred one's trigger;
3. the rollback task, whose trigger rule is ``one_failed``, puts all traffic back on the version that was live, and
   the record task writes the release as rolled back, "aborted by <user>: <why>".

``promote`` (Argo Rollouts' ``promote``: skip the pauses) once the canary passed its analysis (or had none to pass):
the XCom ``promote_now`` of resolve, then the promote step, if it runs already, is cleared (``POST
.../clearTaskInstances``): Airflow stops it and runs it again at once, and its new try, which takes the step over
with a newer fencing token, goes through the remaining steps with no pause between them. The post-promotion watch
and the scale-down delay still hold. A promote step that has not started yet reads the XCom when it does.

Each call is Airflow's REST API as the signed-in user: Airflow checks the user's role and writes its audit log. The
same function serves the CLI and the Releases view (which calls it with the user's own token).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from deployflow.client.api import AirflowClient, ApiError, BadInput, NothingToDo, Refused, RunTimedOut
from deployflow.client.gates import run_environment
from deployflow.client.output import emit
from deployflow.errors import ConfigError
from deployflow.release import check_reason

# The release DAG's task ids (deployflow.airflow.task_ids: the client does not import Airflow's side).
RESOLVE, ANALYSIS, PROMOTE, ROLLBACK, RECORD = "resolve", "analysis", "promote", "rollback", "record"
ABORTED = "aborted"  # the XCom key of resolve that the record task reads
PROMOTE_NOW = "promote_now"  # the XCom key of resolve that the promote step reads
IN_FLIGHT = ("queued", "running")  # a run's states while it goes on
# A task's states before it is done: what an abort stops.
UNFINISHED = ("scheduled", "queued", "running", "deferred", "up_for_reschedule", "up_for_retry", "restarting",
              "awaiting_input")
ENDING = (ROLLBACK, RECORD)  # what an abort leaves to run: it is how the release ends
NOTE_MAX = 1000  # Airflow's notes are at most 1000 characters
COLUMNS = ("service", "environment", "run_id", "stopped", "by", "rolled_back_to")


@dataclass(frozen=True)
class Aborted:
    """An abort as it was done: the run, the tasks marked failed, by whom and why."""

    dag_id: str
    run_id: str
    environment: str
    stopped: tuple[str, ...]
    by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "environment": self.environment,
                "stopped": list(self.stopped), "by": self.by, "reason": self.reason}


def abort_release(client: AirflowClient, service: str, environment: str, *, by: str, reason: str,
                  run_id: str | None = None, now: datetime | None = None) -> Aborted:
    """Abort ``service``'s release in flight to ``environment`` (the newest, or ``run_id``) as ``by``, for ``reason``.

    :raises BadInput: the reason is not one line of text.
    :raises NothingToDo: no release is in flight there, or it is already ending (its rollback or record runs).
    """
    dag_id, run_id, reason = _steered(client, service, environment, run_id, reason)
    tasks = [ti for ti in client.task_instances(dag_id, run_id)
             if ti.get("state") in UNFINISHED and ti["task_id"] not in ENDING]
    if not tasks:
        raise NothingToDo(f"run {run_id} of {dag_id} is already ending in {environment} (only its rollback or "
                          "record is left to run): nothing to abort")
    at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    client.set_xcom(dag_id, run_id, RESOLVE, ABORTED, {"by": by, "reason": reason, "at": at})
    note = f"aborted by {by}" + (f": {reason}" if reason else "")
    stopped = []
    for ti in tasks:
        try:
            client.set_task_state(dag_id, run_id, ti["task_id"], "failed", note=note[:NOTE_MAX])
        except ApiError as exc:
            if exc.status != 404:  # 404: the task finished on its own in between
                raise
        stopped.append(ti["task_id"])
    return Aborted(dag_id, run_id, environment, tuple(stopped), by, reason)


@dataclass(frozen=True)
class PromotedNow:
    """A "promote now" as it was done: the run, whether its running promote step was restarted, by whom and why."""

    dag_id: str
    run_id: str
    environment: str
    restarted: bool
    by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "environment": self.environment,
                "restarted": self.restarted, "by": self.by, "reason": self.reason}


def promote_release(client: AirflowClient, service: str, environment: str, *, by: str, reason: str,
                    run_id: str | None = None, now: datetime | None = None) -> PromotedNow:
    """Promote ``service``'s release in flight to ``environment`` now: no more pauses between its remaining steps.

    :raises BadInput: the reason is not one line of text.
    :raises NothingToDo: no release is in flight there, or it is promoted already.
    :raises Refused: its analysis has not passed (it still judges, or failed), or it is rolling back.
    """
    dag_id, run_id, reason = _steered(client, service, environment, run_id, reason)
    states = {ti["task_id"]: ti.get("state") for ti in client.task_instances(dag_id, run_id)}
    if states.get(PROMOTE) == "success":
        raise NothingToDo(f"run {run_id} of {dag_id} promoted already: its watch or record is what is left")
    if states.get(ROLLBACK) not in (None, "skipped") or states.get(PROMOTE) in ("failed", "upstream_failed"):
        raise Refused(f"run {run_id} of {dag_id} is rolling back in {environment}: nothing to promote")
    if states.get(ANALYSIS) not in ("success", "skipped"):
        raise Refused(f"the analysis of run {run_id} has not passed (it is {states.get(ANALYSIS) or 'not started'}): "
                      "promote now skips the pauses after a passed analysis, never the analysis itself")
    at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    client.set_xcom(dag_id, run_id, RESOLVE, PROMOTE_NOW, {"by": by, "reason": reason, "at": at})
    restarted = states.get(PROMOTE) == "running"
    if restarted:
        client.clear_task(dag_id, run_id, PROMOTE, note=f"promote now, by {by}" + (f": {reason}" if reason else ""))
    return PromotedNow(dag_id, run_id, environment, restarted, by, reason)


def _steered(client: AirflowClient, service: str, environment: str, run_id: str | None,
             reason: str) -> tuple[str, str, str]:
    """The DAG and the run in flight a handle acts on, and its reason checked.

    :raises BadInput: the reason is not one line of text. :raises NothingToDo: no release is in flight there.
    """
    try:
        reason = check_reason(reason, "reason")
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    dag_id = f"release_{service}"
    return dag_id, in_flight_run(client, dag_id, environment, run_id)["dag_run_id"], reason


def in_flight_run(client: AirflowClient, dag_id: str, environment: str, run_id: str | None) -> dict[str, Any]:
    """The newest run of ``dag_id`` still going on in ``environment`` (``run_id`` only, if given).

    :raises NothingToDo: there is none.
    """
    runs = [client.dag_run(dag_id, run_id)] if run_id else client.dag_runs(dag_id)
    going = sorted((r for r in runs if r.get("state") in IN_FLIGHT), key=lambda r: r.get("run_after") or "", reverse=True)
    elsewhere = []
    for run in going:
        found = run_environment(client, dag_id, run)
        if found == environment:
            return run
        elsewhere.append(f"{found} (run {run['dag_run_id']})")
    where = f"run {run_id} of {dag_id}" if run_id else dag_id
    others = f"; releases go on in {', '.join(elsewhere)}" if elsewhere else ""
    raise NothingToDo(f"no release of {where} is in flight in {environment}{others}")


def promote(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """The CLI's ``promote``: promote now, then follow the run to its end (``--no-wait``: don't)."""
    client = connect()
    done = promote_release(client, args.service, args.environment, by=args.user, reason=args.reason or "",
                           run_id=args.run)
    print(f"promote now: run {done.run_id}'s promote step " + ("restarted with no pause between its steps"
                                                               if done.restarted else "will skip its pauses when it starts"),
          file=sys.stderr if args.json else sys.stdout, flush=True)
    row: dict[str, Any] = {"service": args.service, **done.to_dict()}
    if args.wait:
        row["state"] = client.wait(done.dag_id, done.run_id, timeout=args.timeout)["state"]
    emit(row, as_json=args.json, rows=[row], columns=("service", "environment", "run_id", "restarted", "by", "state"))
    return 0 if not args.wait or row["state"] == "success" else 1


def abort(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """The CLI's ``abort``: abort, then follow the run to its end (``--no-wait``: don't) and say where traffic is."""
    client = connect()
    done = abort_release(client, args.service, args.environment, by=args.user, reason=args.reason or "",
                         run_id=args.run)
    print(f"aborted {done.dag_id} run {done.run_id}: {', '.join(done.stopped)} marked failed; the rollback follows",
          file=sys.stderr if args.json else sys.stdout, flush=True)
    row: dict[str, Any] = {"service": args.service, **done.to_dict(), "rolled_back_to": None}
    if args.wait:
        try:
            run = client.wait(done.dag_id, done.run_id, timeout=args.timeout)
        except RunTimedOut:
            emit(row, as_json=args.json, rows=[row], columns=COLUMNS)
            raise
        states = {ti["task_id"]: ti.get("state") for ti in client.task_instances(done.dag_id, done.run_id)}
        try:
            rollback = client.xcom(done.dag_id, done.run_id, ROLLBACK) or {}
        except ApiError:
            rollback = {}
        row.update(state=run["state"], rollback=states.get(ROLLBACK),
                   rolled_back_to=rollback.get("to") if rollback.get("rolled_back") else None)
    emit(row, as_json=args.json, rows=[row], columns=COLUMNS)
    # The rollback ran to its end (it says "nothing to roll back" where no deploy step had started): the abort is done.
    return 0 if not args.wait or row["rollback"] == "success" else 1
