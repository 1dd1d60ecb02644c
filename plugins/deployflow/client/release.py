"""``release``: trigger a release run under a readable id and note, and follow it to its end, saying what it resolved,
where a waiting gate is answered and why a step did not run; its exit code is the run's outcome (cli.py's table)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from deployflow.client.api import AirflowClient, ApiError, UnexpectedAnswer
from deployflow.client.runs import duration_seconds, failure_reason, run_seconds, timings
from deployflow.terminal import table
from deployflow.release import release_run_id, run_note

# The release DAG's task ids and XCom keys (deployflow.airflow.task_ids: the client does not import Airflow's side).
RESOLVE, BUILD, PROMOTE, RECORD = "resolve", "build", "promote", "record"
SKIPPED, LIVE = "skipped", "live"
ALREADY_LIVE, REUSE = "already_live", "reuse"  # what resolve found live (deployflow.governance.rerelease)
AWAITING_INPUT = "awaiting_input"  # a human-in-the-loop task waiting for its answer
RUN_ID_TRIES = 3  # a second release of the same ref to the same environment in the same second gets ``.2``
DEFAULT_TIMEOUT_S = 1800.0  # where the DAG says no run timeout
QUEUED_MARGIN_S = 60.0  # a run may wait for a slot before it starts, which the DAG's run timeout does not count
REFUSED = (400, 404, 409, 422)
POLL_S = 2.0  # how often the run's state is read


def release(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    client = connect()
    dag_id = f"release_{args.service}"
    conf = {"environment": args.environment, "git_ref": args.git_ref, "strategy": args.strategy, "reason": args.reason,
            "promote_from": args.promote_from, "freeze_override": args.freeze_override,
            "rollback_to": getattr(args, "rollback_to", None), "force": getattr(args, "force", None)}
    conf = {k: v for k, v in conf.items() if v is not None}
    try:
        run = trigger(client, dag_id, conf, run_note({**conf, "requested_by": args.user}), datetime.now(timezone.utc))
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise  # a login refused (4) or Airflow failing (6), not a refused release
        print(f"release refused: {exc.detail}", file=sys.stderr)
        return 2
    follower = Follower(client, args, dag_id, run["dag_run_id"], note=run.get("note") or "")
    say = follower.say
    say(f"triggered {dag_id} run {follower.run_id} with {json.dumps(conf)}")
    timeout = args.timeout if args.timeout is not None else follow_timeout(client, dag_id, say)
    run = client.wait(dag_id, follower.run_id, timeout=timeout, poll=POLL_S, on_change=follower.heard)
    report = follower.report(run)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else text(report))
    return 0 if run["state"] == "success" else 1


def trigger(client: AirflowClient, dag_id: str, conf: dict[str, Any], note: str, now: datetime) -> dict[str, Any]:
    """A run named ``<environment>__<ref>__<time>`` (``deployflow.release.release_run_id``), with its note."""
    base = release_run_id(conf.get("environment"), conf.get("git_ref") or (
        f"rollback-{conf['rollback_to']}" if conf.get("rollback_to") else None), now)
    for attempt in range(1, RUN_ID_TRIES + 1):
        try:
            return client.trigger(dag_id, conf, note, run_id=base if attempt == 1 else f"{base}.{attempt}")
        except ApiError as exc:
            if exc.status != 409 or attempt == RUN_ID_TRIES:  # 409: a run of that id exists
                raise
    raise AssertionError("unreachable")


def follow_timeout(client: AirflowClient, dag_id: str, say: Callable[[str], None]) -> float:
    """How long to follow a run when ``--timeout`` is not given: as long as Airflow lets it run (the DAG's run
    timeout, which counts the longest approval gate), and the time it may wait to start."""
    try:
        limit = duration_seconds(client.dag_details(dag_id).get("dag_run_timeout"))
    except (ApiError, UnexpectedAnswer) as exc:  # the run is triggered: follow it all the same
        say(f"following the run for up to {DEFAULT_TIMEOUT_S:.0f} s (the DAG's run timeout is not known: {exc})")
        return DEFAULT_TIMEOUT_S
    if limit is None:
        say(f"following the run for up to {DEFAULT_TIMEOUT_S:.0f} s (the DAG sets no run timeout)")
        return DEFAULT_TIMEOUT_S
    say(f"following the run for up to {limit + QUEUED_MARGIN_S:.0f} s (the DAG's run timeout, {limit:.0f} s, "
        f"and {QUEUED_MARGIN_S:.0f} s to start)")
    return limit + QUEUED_MARGIN_S


class Follower:
    """What the release says while its run goes on: each task's new state, what resolve resolved, where a waiting
    gate is answered (once a gate); and the run's note made exact as resolve (the strategy) and build (the commit it
    checked out) tell more. With ``--json`` it says all that on stderr: stdout is the report's alone."""

    def __init__(self, client: AirflowClient, args: argparse.Namespace, dag_id: str, run_id: str, *, note: str) -> None:
        self.client, self.args, self.dag_id, self.run_id = client, args, dag_id, run_id
        self.note = note
        self.resolved: dict[str, Any] = {}
        self.asked: set[str] = set()
        self.started = time.monotonic()

    def say(self, line: str) -> None:
        print(line, file=sys.stderr if self.args.json else sys.stdout, flush=True)

    def heard(self, task_id: str, state: str) -> None:
        # Why a step resolve skipped did (no canary to judge, no approval asked), as it skips: the report says it again.
        why = (self.resolved.get(SKIPPED) or {}).get(task_id) if state == "skipped" else None
        if task_id == RESOLVE and state == "up_for_reschedule":  # resolve takes the environment's lock
            why = "waiting for the environment, which another release holds (resolve's log names it)"
        self.say(f"  [{time.monotonic() - self.started:6.1f}s] {task_id:<24} {state}" + (f": {why}" if why else ""))
        if state == AWAITING_INPUT and task_id not in self.asked:
            self.asked.add(task_id)
            self._ask(task_id)
        if state != "success":
            return
        if task_id == RESOLVE:
            self.resolved = self._xcom(RESOLVE) or {}
            self._tell_resolved()
            self._note((self.resolved.get("artifact") or {}).get("short_sha"))
        elif task_id == BUILD and self.resolved:
            self._note((self._xcom(BUILD) or {}).get("short_sha"))

    def report(self, run: dict[str, Any]) -> dict[str, Any]:
        """The run as it ended: its tasks, why those that skipped did, the watch after promotion, what is live."""
        tis = self.client.task_instances(self.dag_id, self.run_id)
        if not self.resolved:  # a run over before the first poll saw resolve succeed
            self.resolved = self._xcom(RESOLVE) or {}
        decided = self.resolved.get(SKIPPED) or {}  # the skips resolve decided, before those tasks would start
        skipped = {ti["task_id"]: why for ti in tis if ti.get("state") == "skipped"
                   if (why := decided.get(ti["task_id"]) or self._xcom(ti["task_id"], SKIPPED))}
        failed = {ti["task_id"]: failure_reason(self.client.task_log(self.dag_id, self.run_id, ti["task_id"],
                                                                      ti.get("try_number") or 1)) or "(see the task log)"
                  for ti in tis if ti.get("state") == "failed"}
        return {
            "dag_id": self.dag_id, "run_id": self.run_id, "state": run["state"], "seconds": run_seconds(run),
            "note": self.note, "strategy": self.resolved.get("strategy"), "environment": self.resolved.get("environment"),
            "tasks": [{"task_id": t.task_id, "state": t.state, "seconds": t.seconds, "try_number": t.try_number}
                      for t in timings(tis)],
            "skipped": skipped, "watch": (self._xcom(PROMOTE) or {}).get("watch"), "failed": failed,
            "live": self._xcom(RECORD, LIVE), "outcome": (self._xcom(RECORD) or {}).get("outcome"),
            "already_live": self.resolved.get(ALREADY_LIVE),
        }

    def _tell_resolved(self) -> None:
        r = self.resolved
        whose = "as asked" if self.args.strategy not in (None, "catalog") else "the catalog's"
        self.say(f"  resolved: {r.get('environment')} with {r.get('strategy')} ({whose}), ref {r.get('git_ref')}")
        if r.get(ALREADY_LIVE):
            self.say(f"  already live: {r[ALREADY_LIVE]}")
        elif r.get(REUSE):
            self.say(f"  reusing the live image: {r[REUSE]}: no checkout, build or tests")
        elif artifact := r.get("artifact"):
            doing = "rolling back to" if r.get("rollback_to") else "promoting"
            self.say(f"  {doing} {artifact.get('short_sha')} as {artifact.get('source')} promoted it "
                     f"(run {artifact.get('run_id')}): no checkout, build or tests")
        if freeze := r.get("freeze"):
            self.say(f"  freeze overridden: {freeze.get('message')}; the release waits for an approval")

    def _ask(self, task_id: str) -> None:
        """Where and how to answer the gate ``task_id``."""
        try:
            gate = self.client.approval(self.dag_id, self.run_id, task_id)
        except ApiError:
            gate = {}
        who = ", ".join(u.get("name") or u.get("id") for u in gate.get("assigned_users") or []) or "anyone allowed"
        environment = self.resolved.get("environment") or self.args.environment
        url = f"{self.client.base_url}/dags/{self.dag_id}/runs/{quote(self.run_id, safe='')}/tasks/{task_id}/required_actions"
        command = (f"python -m deployflow.client --url {self.client.base_url} approve {self.args.service} "
                   f"--environment {environment} --run {self.run_id} --reason '...'")
        self.say(f"  {task_id} waits for an answer{': ' + gate['subject'] if gate.get('subject') else ''} "
                 f"(who may answer: {who}, never whoever triggered the run)")
        self.say(f"    in Airflow: {url}")
        self.say(f"    or here:    {command}   (reject: the same with reject)")

    def _xcom(self, task_id: str, key: str = "return_value") -> Any:
        try:
            return self.client.xcom(self.dag_id, self.run_id, task_id, key=key)
        except ApiError:
            return None

    def _note(self, version: str | None) -> None:
        note = run_note(self.resolved, version)
        if note == self.note:
            return
        try:
            self.client.set_note(self.dag_id, self.run_id, note)
        except ApiError as exc:  # the release goes on: the note only names it
            self.say(f"  (the run's note is left as it was: {exc})")
            return
        self.note = note


def text(report: dict[str, Any]) -> str:
    """The report for a person: the tasks, then what was skipped and why, the watch, what is live, the failures."""
    lines = [f"\n{report['dag_id']} {report['run_id']}: {report['state'].upper()} in {report['seconds'] or 0:.1f} s"
             + (f" ({report['strategy']})" if report.get("strategy") else ""),
             table(report["tasks"], ("task_id", "state", "seconds"), indent="  ")]
    if report.get("already_live"):
        lines.append(f"\nalready live, nothing ran after resolve (no checkout, build, tests or deploy): "
                     f"{report['already_live']}")
    if report["skipped"]:
        lines += ["\nskipped:", table([{"task_id": t, "why": w} for t, w in report["skipped"].items()], ("task_id", "why"),
                                      indent="  ")]
    watch = report["watch"]
    if watch:
        lines.append(f"\npost-promotion watch: {watch['seconds']:.0f} s" if "seconds" in watch
                     else f"\npost-promotion watch skipped: {watch.get('skipped')}")
    live = report["live"]
    if live:
        lines.append(f"\nlive in {live['environment']} at {live['url']}:")
        lines += [f"  {colour:<6} {', '.join(members['versions'])}: {members['traffic_percent']} % of traffic, "
                  f"{len(members['instances'])} instance(s)" for colour, members in live["sets"].items()]
    lines += [f"\n  {task_id} failed: {why}" for task_id, why in report["failed"].items()]
    return "\n".join(lines)
