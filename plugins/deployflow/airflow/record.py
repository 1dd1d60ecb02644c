"""The release DAG's last task: record the release in the ledger, tell its channels, show what is live."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.announce import announce
from deployflow.airflow.approval import APPROVAL_XCOM, rejection, suite_results
from deployflow.airflow.configuration import RELEASE_XCOM
from deployflow.airflow.deployer_step import log_lines
from deployflow.airflow.ledger import open_ledger, step_seconds
from deployflow.airflow.load import finish_load
from deployflow.airflow.lock import release_environment_lock
from deployflow.airflow.runs import requested_by
from deployflow.airflow.settings import state_dir
from deployflow.airflow.sites import live_status
from deployflow.airflow.task_ids import (
    ABORTED,
    ANALYSIS,
    APPROVE_DEPLOY,
    APPROVE_PROMOTE,
    BUILD,
    FAILURE,
    HEALTH,
    PREPARE,
    PROMOTE,
    REFUSED,
    REQUEST,
    RESOLVE,
    ROLLBACK,
    SHIFT,
    TEST,
)
from deployflow.catalog import Service
from deployflow.governance.notifications import event_for
from deployflow.governance.rerelease import ALREADY_LIVE
from deployflow.ledger import ReleaseEntry
from deployflow.outcomes import Outcome, one_line

Tidy = Callable[[Service, str, str, Any], None]  # (service, environment, run id, log)
MAX_FAILURE = 1000  # a task's reason in the ledger: its first words say why; its log keeps the rest

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReleaseRecordOperator(BaseOperator):
    """The last task: record the release (who, what, where, outcome, timings) and show what is live.

    Fails when the release did not reach production (nor found it there already: "already live"), so the run's
    state says what happened to the release.

    :param service: the catalog entry.
    :param tidy: removes the run's finished deployers of an environment (the deployer operator's ``remove_finished``);
        None: nothing to remove.
    """

    ui_color = "#ede7f6"

    def __init__(self, *, service: Service, tidy: Tidy | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.tidy = tidy

    def execute(self, context: Context) -> dict[str, Any]:
        request = context["ti"].xcom_pull(task_ids=RESOLVE) or {}
        if request.get(ALREADY_LIVE):
            # Nothing ran after resolve: no load, deployer or lock of this run's to end, and what is live is what resolve
            # read in the ledger (the live status, a second or so of router and engine reads, is left out too).
            return self._finish(context, request, show_live=False)
        try:
            finish_load(self.service, request.get("environment", ""), self.log)  # the judging is over: its load too
            return self._finish(context, request)
        finally:  # whatever happened, nothing of the run's steps is left and the environment is free for the next release
            if request.get("environment") in self.service.environments:  # resolve took no lock when it refused
                if self.tidy is not None:
                    self.tidy(self.service, request["environment"], context["run_id"], self.log)
                release_environment_lock(self.service.name, request["environment"], context["run_id"], self.log)

    def _finish(self, context: Context, request: dict[str, Any], *, show_live: bool = True) -> dict[str, Any]:
        """Record the release, tell its channels, show what is live; fail unless it was promoted or already live."""
        ti = context["ti"]
        entry = self._record(context)
        announce(self.service, event_for(entry.outcome), request, context, version=entry.version,
                 reason=entry.failure or "", previous=entry.previous)
        if show_live and request.get("environment") in self.service.environments:
            live = self._live(request["environment"])
            if live is not None:
                ti.xcom_push(key="live", value=live)
        if entry.outcome not in (Outcome.PROMOTED, Outcome.ALREADY_LIVE):
            because = f": {entry.failure}" if entry.failure else ""
            version = f" {entry.version}" if entry.version else ""
            raise AirflowFailException(f"release of {self.service.name}{version}: {entry.outcome_detail}{because}")
        return entry.to_dict()

    def _record(self, context: Context) -> ReleaseEntry:
        """The release's ledger row, written (one per run: a retried record updates it)."""
        ti = context["ti"]
        pulled = {t: ti.xcom_pull(task_ids=t) for t in (RESOLVE, BUILD, PREPARE, PROMOTE, ROLLBACK)}
        refused = ti.xcom_pull(task_ids=RESOLVE, key=REFUSED)
        # A refused request has no resolved request; who asked is the run's own fact, and is recorded anyway.
        # One that timed out waiting for the environment's lock left its request on its last poke.
        request = pulled[RESOLVE] or ti.xcom_pull(task_ids=RESOLVE, key=REQUEST) or {
            "service": self.service.name, "requested_by": requested_by(context["dag_run"])}
        # A promotion's artifact stands for the build it skipped (the commit, the image); build's XCom holds the
        # commit it checked out even when the build itself failed afterwards (no image then).
        artifact = request.get("artifact") or {}
        built = artifact or pulled[BUILD] or {}
        approval = next((d for d in (ti.xcom_pull(task_ids=g, key=APPROVAL_XCOM) for g in (APPROVE_DEPLOY, APPROVE_PROMOTE))
                         if d), None)
        rejected = approval is not None and approval["decision"] != "approved"
        aborted = aborted_by(ti.xcom_pull(task_ids=RESOLVE, key=ABORTED))
        outcome, said = ending(pulled, refused=bool(refused), rejected=rejected,
                               deploy_started=bool(ti.xcom_pull(task_ids=PREPARE, key="started")))
        if aborted and outcome not in (Outcome.PROMOTED, Outcome.ALREADY_LIVE):  # an abort after the end changed nothing
            said = f"aborted, {said}"
        # Nothing was prepared: the configuration is the live release's, as the image is.
        config = artifact.get("config") if outcome is Outcome.ALREADY_LIVE else (
            ti.xcom_pull(task_ids=PREPARE, key=RELEASE_XCOM) or {}).get("config")
        early = first_failure(ti, before_deploy(self.service)) if outcome is Outcome.FAILED_BEFORE_DEPLOY else None
        entry = ReleaseEntry.of(
            request=request, run_id=context["run_id"], outcome=outcome, said=f"{said} at {early[0]}" if early else said,
            commit=built.get("sha"), image=built.get("ref"),
            previous=(pulled[PREPARE] or {}).get("previous"),
            started=context["dag_run"].start_date, rollback=pulled[ROLLBACK],
            judged=(aborted if outcome not in (Outcome.PROMOTED, Outcome.ALREADY_LIVE) else None) or refused or (rejection(approval) if rejected else None)
            or analysis_failure(ti.xcom_pull(task_ids=ANALYSIS, key="verdict"))
            or ti.xcom_pull(task_ids=HEALTH, key=FAILURE) or (early[1] if early else None),
            config=config,
            committed_at=built.get("committed_at"),
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

    def _live(self, environment: str) -> dict[str, Any] | None:
        try:
            status = live_status(self.service, environment)
        except Exception as exc:  # the record must not fail on a status read
            self.log.warning("could not read what is live in %s: %s", environment, exc)
            return None
        self.log.info("live in %s: %s", environment, json.dumps(status))
        return status


def ending(pulled: dict[str, Any], *, refused: bool, rejected: bool, deploy_started: bool) -> tuple[Outcome, str]:
    """How the release ended, and the sentence that says so, from what resolve, the gates, promote and rollback left."""
    if refused:
        return Outcome.REFUSED, "refused"
    if already_live := (pulled.get(RESOLVE) or {}).get(ALREADY_LIVE):
        return Outcome.ALREADY_LIVE, f"already live: {already_live}"
    if pulled[PROMOTE]:
        return Outcome.PROMOTED, "promoted"
    rollback = pulled[ROLLBACK] or {}
    back = "rolled back" + (f" to {rollback['to']}" if rollback.get("to") else " (first deploy: nothing left)")
    if rejected:
        return Outcome.REJECTED, "rejected" + (f", {back}" if rollback.get("rolled_back") else "")
    if rollback.get("rolled_back"):
        return Outcome.ROLLED_BACK, back
    if deploy_started:
        return Outcome.FAILED, "failed during deploy, " + ("nothing to roll back" if rollback else "the rollback did not finish")
    return Outcome.FAILED_BEFORE_DEPLOY, "failed before deploy"


def aborted_by(abort: dict[str, Any] | None) -> str | None:
    """Why the release failed when a person aborted it (``deployflow.client.steering``): "aborted by <user>: <why>"."""
    if not abort:
        return None
    reason = one_line(str(abort.get("reason") or ""), MAX_FAILURE)
    return f"aborted by {abort.get('by') or 'someone'}" + (f": {reason}" if reason else "")


def before_deploy(service: Service) -> tuple[str, ...]:
    """The tasks before the deploy, in the order they run: each leaves why it failed (:func:`remember_failure`)."""
    return (RESOLVE, BUILD, *(f"{TEST}.{suite}" for suite in service.tests.suites), PREPARE)


def remember_failure(context: Context) -> None:
    """``on_failure_callback`` of the tasks before the deploy: why the task failed, for the ledger's ``failure``
    (the task's log has it whole). It runs for every way a task fails: a refusal, a timeout, a crash."""
    ti, error = context["ti"], context.get("exception")
    why = str(error) or type(error).__name__  # a timeout may say nothing but its kind
    logs = log_lines(getattr(error, "logs", None))  # a container's last line says why
    if logs:
        why += f": {logs[-1]}"
    ti.xcom_push(key=FAILURE, value=one_line(f"{ti.task_id} failed: {why}", MAX_FAILURE))


def first_failure(ti: Any, tasks: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of ``tasks`` that left why it failed: (task id, why); None when none did (a task killed outright)."""
    for task in tasks:
        why = ti.xcom_pull(task_ids=task, key=FAILURE)
        if why:
            return task, why
    return None


def analysis_failure(verdict: dict[str, Any] | None) -> str | None:
    """Why canary analysis failed the release, from its last verdict (None: it did not)."""
    if not verdict or "fail" not in (verdict.get("result"), verdict.get("decision")):
        return None
    why = verdict.get("guard") or "; ".join((verdict.get("reasons") or [])[:2]) or "its verdict failed"
    return f"canary analysis failed at interval {verdict.get('interval')}: {why}"
