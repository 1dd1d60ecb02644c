"""The release DAG's last task: record the release in the ledger, tell its channels, show what is live."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.announce import announce
from deployflow.airflow.approval import APPROVAL_XCOM, rejection, suite_results
from deployflow.airflow.configuration import RELEASE_XCOM
from deployflow.airflow.ledger import open_ledger, step_seconds
from deployflow.airflow.load import finish_load
from deployflow.airflow.lock import release_environment_lock
from deployflow.airflow.runs import requested_by
from deployflow.airflow.settings import state_dir
from deployflow.airflow.sites import live_status
from deployflow.airflow.task_ids import (
    ANALYSIS,
    APPROVE_DEPLOY,
    APPROVE_PROMOTE,
    BUILD,
    CHECKOUT,
    FAILURE,
    HEALTH,
    PREPARE,
    PROMOTE,
    REFUSED,
    RESOLVE,
    ROLLBACK,
    SHIFT,
)
from deployflow.catalog import Service
from deployflow.ledger import ReleaseEntry

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReleaseRecordOperator(BaseOperator):
    """The last task: record the release (who, what, where, outcome, timings) and show what is live.

    Fails when the release did not reach production, so the run's state says
    what happened to the release.

    :param service: the catalog entry.
    """

    ui_color = "#ede7f6"

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def execute(self, context: Context) -> dict[str, Any]:
        request = context["ti"].xcom_pull(task_ids=RESOLVE) or {}
        try:
            finish_load(self.service, request.get("environment", ""), self.log)  # the judging is over: its load too
            return self._finish(context, request)
        finally:  # whatever happened, the environment is free for the next release
            if request.get("environment") in self.service.environments:  # resolve took no lock when it refused
                release_environment_lock(self.service.name, request["environment"], context["run_id"], self.log)

    def _finish(self, context: Context, request: dict[str, Any]) -> dict[str, Any]:
        """Record the release, tell its channels, show what is live; fail unless it was promoted."""
        ti = context["ti"]
        entry = self._record(context)
        announce(self.service, notified_event(entry), request, context, version=entry.version,
                 reason=entry.failure or "", previous=entry.previous)
        outcome = entry.outcome
        if request.get("environment") in self.service.environments:
            live = self._live(request["environment"])
            if live is not None:
                ti.xcom_push(key="live", value=live)
        if outcome != "promoted":
            because = f": {entry.failure}" if entry.failure else ""
            version = f" {entry.version}" if entry.version else ""
            raise AirflowFailException(f"release of {self.service.name}{version}: {outcome}{because}")
        return entry.to_dict()

    def _record(self, context: Context) -> ReleaseEntry:
        """The release's ledger row, written (one per run: a retried record updates it)."""
        ti = context["ti"]
        pulled = {t: ti.xcom_pull(task_ids=t) for t in (RESOLVE, CHECKOUT, BUILD, PREPARE, PROMOTE, ROLLBACK)}
        refused = ti.xcom_pull(task_ids=RESOLVE, key=REFUSED)
        # A refused request has no resolved request; who asked is the run's own fact, and is recorded anyway.
        request = pulled[RESOLVE] or {"service": self.service.name, "requested_by": requested_by(context["dag_run"])}
        # A promotion's artifact stands for the checkout and the build it skipped.
        artifact = request.get("artifact") or {}
        built = artifact or pulled[BUILD] or {}
        source = artifact or pulled[CHECKOUT] or {}
        approval = next((d for d in (ti.xcom_pull(task_ids=g, key=APPROVAL_XCOM) for g in (APPROVE_DEPLOY, APPROVE_PROMOTE))
                         if d), None)
        rejected = approval is not None and approval["decision"] != "approved"
        outcome = "refused" if refused else self._outcome(pulled, bool(ti.xcom_pull(task_ids=PREPARE, key="started")), rejected)
        entry = ReleaseEntry.of(
            request=request, run_id=context["run_id"], outcome=outcome,
            commit=source.get("sha"), image=built.get("ref"),
            previous=(pulled[PREPARE] or {}).get("previous"),
            started=context["dag_run"].start_date, rollback=pulled[ROLLBACK],
            judged=refused or (rejection(approval) if rejected else None)
            or analysis_failure(ti.xcom_pull(task_ids=ANALYSIS, key="verdict"))
            or ti.xcom_pull(task_ids=HEALTH, key=FAILURE),
            config=(ti.xcom_pull(task_ids=PREPARE, key=RELEASE_XCOM) or {}).get("config"),
            committed_at=source.get("committed_at"),
            steps=step_seconds({**pulled, SHIFT: ti.xcom_pull(task_ids=SHIFT)}),
            digest=built.get("digest"),
            analysis_score=(ti.xcom_pull(task_ids=ANALYSIS, key="verdict") or {}).get("score"),
            cost=(pulled[PROMOTE] or pulled[ROLLBACK] or {}).get("cost"),
            approval=approval, tests=artifact.get("tests") if artifact else suite_results(ti, self.service),
        )
        ledger = open_ledger(state_dir())
        try:
            ledger.record(entry)
        finally:
            ledger.dispose()
        self.log.info("release %s", entry.summary())
        return entry

    @staticmethod
    def _outcome(pulled: dict[str, Any], deploy_started: bool, rejected: bool = False) -> str:
        if pulled[PROMOTE]:
            return "promoted"
        rollback = pulled[ROLLBACK] or {}
        if rejected:
            return "rejected" + (f", rolled back to {rollback['to']}" if rollback.get("rolled_back") and rollback.get("to") else "")
        if rollback.get("rolled_back"):
            return "rolled back" + (f" to {rollback['to']}" if rollback.get("to") else " (first deploy: nothing left)")
        if deploy_started:
            return "failed during deploy"
        return "failed before deploy"

    def _live(self, environment: str) -> dict[str, Any] | None:
        try:
            status = live_status(self.service, environment)
        except Exception as exc:  # the record must not fail on a status read
            self.log.warning("could not read what is live in %s: %s", environment, exc)
            return None
        self.log.info("live in %s: %s", environment, json.dumps(status))
        return status


def notified_event(entry: ReleaseEntry) -> str:
    """The channels' name for how the release ended."""
    for prefix, event in (("promoted", "promoted"), ("rejected", "rejected"), ("rolled back", "rolled_back")):
        if entry.outcome.startswith(prefix):
            return event
    return "failed"


def analysis_failure(verdict: dict[str, Any] | None) -> str | None:
    """Why canary analysis failed the release, from its last verdict (None: it did not)."""
    if not verdict or "fail" not in (verdict.get("result"), verdict.get("decision")):
        return None
    why = verdict.get("guard") or "; ".join((verdict.get("reasons") or [])[:2]) or "its verdict failed"
    return f"canary analysis failed at interval {verdict.get('interval')}: {why}"
