"""``approve`` and ``reject``: answer the approval gate that waits in a service's release to an environment, as the
UI's Required Actions does, through Airflow's human-in-the-loop endpoint (``PATCH .../hitlDetails``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from deployflow.client.api import AirflowClient, ApiError, BadInput, NothingToDo, Refused
from deployflow.client.output import emit
from deployflow.errors import ConfigError
from deployflow.release import check_reason

APPROVE, REJECT = "Approve", "Reject"  # the options of Airflow's ApprovalOperator
WAITING = ("awaiting_input", "deferred")  # a gate waiting for its answer (deferred: Airflow before awaiting_input)
# Airflow 3.3.2 can fail a gate answered within seconds of asking (docs/concepts/governance.md, "Approval gates"): answer no sooner.
SETTLE_S = 10.0
COLUMNS = ("service", "environment", "run_id", "gate", "answer", "by", "at")


@dataclass(frozen=True)
class Gate:
    """A gate waiting for its answer: its request (Airflow's HITL detail) and its run."""

    detail: dict[str, Any]
    run: dict[str, Any]
    environment: str

    @property
    def run_id(self) -> str:
        return self.detail["task_instance"]["dag_run_id"]

    @property
    def task_id(self) -> str:
        return self.detail["task_instance"]["task_id"]


def approve(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    return answer(args, connect, APPROVE)


def reject(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    return answer(args, connect, REJECT)


def answer(args: argparse.Namespace, connect: Callable[[], AirflowClient], option: str) -> int:
    """Answer ``option`` to the gate waiting in ``args.service``'s release to ``args.environment`` (in ``args.run``)."""
    row = answer_gate(connect, args.service, args.environment, option, reason=args.reason or "", user=args.user,
                      run_id=args.run)
    emit(row, as_json=args.json, rows=[row], columns=COLUMNS)
    return 0


def answer_gate(connect: Callable[[], AirflowClient], service: str, environment: str, option: str, *, reason: str,
                user: str, run_id: str | None = None) -> dict[str, Any]:
    """Answer ``option`` to the gate waiting in ``service``'s release to ``environment`` as ``user`` (the one signed
    in: Airflow records its own answerer), with ``reason`` as the gate's comment; what was answered.

    :raises BadInput: a bad reason. :raises NothingToDo: no gate waits there. :raises Refused: the requester's own
        gate, or Airflow refused the answer.
    """
    try:
        comment = check_reason(reason, "--reason")
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    client = connect()
    dag_id = f"release_{service}"
    gate = waiting_gate(client, dag_id, environment, run_id)
    if gate.run.get("triggering_user_name") == user:
        raise Refused(f"{user} triggered run {gate.run_id}, and a gate never counts its requester's answer: "
                      f"someone else must {option.lower()} it")
    settle(gate.detail.get("created_at"), datetime.now(timezone.utc))
    try:
        answered = client.answer(dag_id, gate.run_id, gate.task_id, option, comment)
    except ApiError as exc:
        if exc.status == 404:
            raise NothingToDo(f"{gate.task_id} of run {gate.run_id} waits no more: {exc.detail}") from None
        if exc.status in (400, 409):  # an option the gate does not offer; an answer given since
            raise Refused(f"{gate.task_id} of run {gate.run_id} refused the answer: {exc.detail}") from None
        raise
    by = answered.get("responded_by") or {}
    return {"service": service, "environment": gate.environment, "run_id": gate.run_id, "gate": gate.task_id,
            "answer": option, "by": by.get("name") or by.get("id"), "at": answered.get("responded_at"), "comment": comment}


def waiting_gate(client: AirflowClient, dag_id: str, environment: str, run_id: str | None) -> Gate:
    """The gate waiting in the newest run of ``dag_id`` to ``environment`` (in ``run_id`` only, if given).

    :raises NothingToDo: none waits there.
    """
    waiting = [d for d in client.waiting_gates(dag_id, run_id or "~")
               if (d.get("task_instance") or {}).get("state") in WAITING]
    waiting.sort(key=lambda d: d["task_instance"].get("run_after") or "", reverse=True)
    elsewhere = set()
    for detail in waiting:
        run = client.dag_run(dag_id, detail["task_instance"]["dag_run_id"])
        found = run_environment(client, dag_id, run)
        if found == environment:
            return Gate(detail, run, found)
        elsewhere.add(f"{found} (run {run.get('dag_run_id')})")
    where = f"run {run_id} of {dag_id}" if run_id else dag_id
    others = f"; gates wait in {', '.join(sorted(elsewhere))}" if elsewhere else ""
    raise NothingToDo(f"no gate of {where} waits for an answer in {environment}{others}")


def run_environment(client: AirflowClient, dag_id: str, run: dict[str, Any]) -> str:
    """The run's environment: its conf's, else resolve's (the nightly schedule's runs name none)."""
    named = (run.get("conf") or {}).get("environment")
    if named:
        return named
    try:
        return (client.xcom(dag_id, run["dag_run_id"], "resolve") or {}).get("environment") or "?"
    except ApiError:
        return "?"


def settle(created_at: str | None, now: datetime) -> None:
    """Wait until the gate has been asking for SETTLE_S (at most that long, whatever the clocks say)."""
    if not created_at:
        return
    asked = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    wait = min(SETTLE_S, SETTLE_S - (now - asked).total_seconds())
    if wait > 0:
        print(f"waiting {wait:.0f} s: the gate started asking {SETTLE_S - wait:.0f} s ago, and Airflow can lose an "
              "answer given within seconds of it", file=sys.stderr, flush=True)
        time.sleep(wait)
