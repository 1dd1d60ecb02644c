"""``release``: trigger a release run under a readable id and note, and follow it to its end; its exit code is the
run's outcome (cli.py's table)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from deployflow.client.api import AirflowClient, ApiError, failure_reason, run_seconds, timings
from deployflow.release import release_run_id, run_note

RESOLVE, CHECKOUT = "resolve", "checkout"  # the release DAG's task ids (deployflow.airflow.task_ids)
RUN_ID_TRIES = 3  # a second release of the same ref to the same environment in the same second gets ``.2``


def release(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    client = connect()
    dag_id = f"release_{args.service}"
    conf = {"environment": args.environment, "git_ref": args.git_ref, "strategy": args.strategy, "reason": args.reason}
    conf = {k: v for k, v in conf.items() if v is not None}
    try:
        run = trigger(client, dag_id, conf, run_note({**conf, "requested_by": args.user}), datetime.now(timezone.utc))
    except ApiError as exc:
        if exc.status not in (400, 404, 409, 422):
            raise  # a login refused (4) or Airflow failing (6), not a refused release
        print(f"release refused: {exc.detail}", file=sys.stderr)
        return 2
    run_id = run["dag_run_id"]
    print(f"triggered {dag_id} run {run_id} with {json.dumps(conf)}")
    follower = Follower(client, dag_id, run_id, note=run.get("note") or "")
    run = client.wait(dag_id, run_id, timeout=args.timeout, on_change=follower.heard)
    tis = client.task_instances(dag_id, run_id)
    print(f"\n{dag_id} {run_id}: {run['state'].upper()} in {run_seconds(run) or 0:.1f} s")
    print(f"  {'task':<24} {'state':<16} seconds")
    for t in timings(tis):
        print(f"  {t.task_id:<24} {t.state or '-':<16} {'' if t.seconds is None else f'{t.seconds:.1f}'}")
    try:
        live = client.xcom(dag_id, run_id, "record", key="live")
    except ApiError:
        live = None
    if live:
        print(f"\nlive in {live['environment']} at {live['url']}:")
        for colour, members in live["sets"].items():
            print(f"  {colour:<6} {', '.join(members['versions'])}: {members['traffic_percent']} % of traffic, "
                  f"{len(members['instances'])} instance(s)")
    for ti in tis:
        if ti.get("state") == "failed":
            entries = client.task_log(dag_id, run_id, ti["task_id"], ti.get("try_number") or 1)
            print(f"\n  {ti['task_id']} failed: {failure_reason(entries) or '(see the task log)'}")
    return 0 if run["state"] == "success" else 1


def trigger(client: AirflowClient, dag_id: str, conf: dict[str, Any], note: str, now: datetime) -> dict[str, Any]:
    """A run named ``<environment>__<ref>__<time>`` (``deployflow.release.release_run_id``), with its note."""
    base = release_run_id(conf.get("environment"), conf.get("git_ref"), now)
    for attempt in range(1, RUN_ID_TRIES + 1):
        try:
            return client.trigger(dag_id, conf, note, run_id=base if attempt == 1 else f"{base}.{attempt}")
        except ApiError as exc:
            if exc.status != 409 or attempt == RUN_ID_TRIES:  # 409: a run of that id exists
                raise
    raise AssertionError("unreachable")


class Follower:
    """What the release says while its run goes on: each task's new state, and the run's note made exact as resolve
    (the strategy) and checkout (the commit) tell more."""

    def __init__(self, client: AirflowClient, dag_id: str, run_id: str, *, note: str) -> None:
        self.client, self.dag_id, self.run_id = client, dag_id, run_id
        self.note = note
        self.resolved: dict[str, Any] = {}
        self.started = time.monotonic()

    def heard(self, task_id: str, state: str) -> None:
        print(f"  [{time.monotonic() - self.started:6.1f}s] {task_id:<24} {state}", flush=True)
        if state != "success":
            return
        if task_id == RESOLVE:
            self.resolved = self._xcom(RESOLVE) or {}
            self._note((self.resolved.get("artifact") or {}).get("short_sha"))
        elif task_id == CHECKOUT and self.resolved:
            self._note((self._xcom(CHECKOUT) or {}).get("short_sha"))

    def _xcom(self, task_id: str) -> Any:
        try:
            return self.client.xcom(self.dag_id, self.run_id, task_id)
        except ApiError:
            return None

    def _note(self, version: str | None) -> None:
        note = run_note(self.resolved, version)
        if note == self.note:
            return
        try:
            self.client.set_note(self.dag_id, self.run_id, note)
        except ApiError as exc:  # the release goes on: the note only names it
            print(f"  (the run's note is left as it was: {exc})", flush=True)
            return
        self.note = note
