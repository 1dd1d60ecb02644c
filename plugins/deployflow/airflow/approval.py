"""The approval gate: Airflow's human-in-the-loop ApprovalOperator, standing before deploy or before promote.

It waits only where the catalog asks (``approval: {required, approvers, min_approvals, timeout_s, before}``)
or where the release overrides a freeze; otherwise it passes at once. Whoever triggered the run never answers
it, and ``min_approvals`` different people must approve (``deployflow.governance.approvals``): the gate waits
again after an answer that does not count or that leaves approvals missing. The approver sees what is being
released: the version, the commits since the live version, the tests' and the analysis' summary, and why the
gate stands.
Approving works from the UI's Required Actions and through the REST API (``PATCH .../hitlDetails``).
A rejection, or no decision within ``timeout_s``, fails the gate: nothing is deployed, or (before promote) the
rollback puts all traffic back on the old version. Who answered, how each answer counted, and when, go to
the ledger.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput
from airflow.sdk.timezone import utcnow

from deployflow.airflow.announce import announce
from deployflow.airflow.governance import approval_needed
from deployflow.airflow.task_ids import ANALYSIS, BUILD, RESOLVE, TEST
from deployflow.airflow.ledger import releases_in
from deployflow.airflow.runs import triggering_user
from deployflow.catalog import Service, project_root
from deployflow.catalog.model import Approval
from deployflow.governance.approvals import Count, answerers, literal_markdown, shortfall, tally
from deployflow.pipeline.checkout import commits_between
from deployflow.governance.promotion import promoted

if TYPE_CHECKING:
    from airflow.sdk import Context

# The gate's decision: {decision, by, at, comment, position, answers}: approved (by: every approver), rejected,
# timed out, refused (it could never pass: reason); answers: each answer the gate took, and how it counted.
APPROVAL_XCOM = "approval"
COMMITS_SHOWN = 20
MIN_WAIT = timedelta(seconds=1)  # a wait after an answer that came at the deadline: the timeout then rejects


class ReleaseApprovalOperator(ApprovalOperator):
    """Wait for a person to approve the release where the environment asks for it.

    :param service: the catalog entry.
    :param position: ``deploy`` (the gate before prepare) or ``promote`` (before promote).
    """

    ui_color = "#fff8e1"
    # The gate never skips what follows it: anything but an approval fails it (_decide), and the rollback and the
    # record follow. ApprovalOperator says it may (a rejection there skips downstream), and then the scheduler
    # looks up the gate's skip XCom for each task after it (prepare, rollback) in every loop, a database query
    # each, for the whole run: about a quarter of the scheduler's CPU in make bench-scale.
    inherits_from_skipmixin = False

    def __init__(self, *, service: Service, position: str, **kwargs: Any) -> None:
        # The DAG's params come merged in kwargs; the gate's form is its own ("task") params, the comment.
        params = kwargs.pop("params", None)
        params = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
        # Optional (a plain string param would be required by the form and keep Approve disabled until typed).
        params["comment"] = Param(None, type=["null", "string"], maxLength=500, title="Comment", source="task",
                                  description="Why (recorded with the decision and told to the channels)")
        super().__init__(
            subject=f"Release of {service.name}",  # replaced at run time by what is being released
            defaults=[ApprovalOperator.REJECT],  # no answer in time rejects
            fail_on_reject=True,  # the rollback and the record follow a failed gate
            params=params,
            **kwargs,
        )
        self.service = service
        self.position = position

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        resolved = ti.xcom_pull(task_ids=RESOLVE) or {}
        why = approval_needed(self.service, resolved, self.position)
        if not why:
            self.log.info("no approval needed before %s in %s", self.position, resolved.get("environment"))
            return {"decision": "not needed"}
        rule = self._rule(context)
        requester = triggering_user(context["dag_run"])
        if cannot := shortfall(rule, requester):
            return self._decide(context, {"decision": "refused", "by": None, "at": utcnow().isoformat(), "comment": "",
                                          "reason": cannot, "answers": []})
        version = _version(ti, resolved)
        self.subject = f"Release {self.service.name} {version} to {resolved['environment']}?"
        self.body = approval_body(self.service, resolved, context, why, rule=rule)
        # Airflow's API then refuses (403) anyone else; with no approvers listed, execute_complete refuses the requester.
        self.assigned_users = [{"id": name, "name": name} for name in answerers(rule, requester)] or None
        self.log.info("awaiting %d approval(s) before %s (%s); approvers: %s, never %s; times out (rejects) in %d s",
                      rule.min_approvals, self.position, "; ".join(why), ", ".join(rule.approvers) or "anyone allowed",
                      requester or "(no user triggered the run)", rule.timeout_s)
        announce(self.service, "awaiting_approval", resolved, context, version=version,
                 reason="; ".join(why))
        self._wait(context, [], utcnow() + timedelta(seconds=rule.timeout_s))

    def execute_complete(self, context: Context, event: dict[str, Any], answers: list[dict[str, Any]] | None = None,
                         deadline: str | None = None) -> Any:
        """Count the answer (``answers``: the ones before it, carried from park to park); wait again for one that
        does not count or where more approvals are needed, else decide."""
        chosen = list(event.get("chosen_options") or [])
        self.validate_chosen_options(chosen)
        answers = list(answers or [])
        at = event.get("responded_at")
        at = at.isoformat() if hasattr(at, "isoformat") else at
        if event.get("timedout"):
            return self._decide(context, {"decision": "timed out", "by": None, "at": at, "comment": "", "answers": answers})
        user = event.get("responded_by_user") or {}
        answer = {"by": user.get("name") or user.get("id"), "answer": chosen[0] if chosen else None, "at": at,
                  "comment": str((event.get("params_input") or {}).get("comment") or "")}
        rule = self._rule(context)
        approved_so_far = [a["by"] for a in answers if a["counted"] in (Count.WAITING.value, Count.APPROVED.value)]
        counted = tally(rule, triggering_user(context["dag_run"]), approved_so_far, by=answer["by"],
                        approves=chosen == [self.APPROVE])
        answers.append({**answer, "counted": counted.count.value, "reason": counted.reason})
        if counted.count in (Count.REFUSED, Count.WAITING):
            self.log.log(logging.WARNING if counted.count is Count.REFUSED else logging.INFO,
                         "%s answered %s: %s", answer["by"], answer["answer"], counted.reason)
            limit = datetime.fromisoformat(deadline) if deadline else utcnow() + timedelta(seconds=rule.timeout_s)
            self._wait(context, answers, limit)
        approved = counted.count is Count.APPROVED
        decision = {"decision": counted.count.value, "by": ", ".join(counted.approved_by) if approved else answer["by"],
                    "at": answer["at"], "comment": answer["comment"], "answers": answers}
        self._decide(context, decision)
        self.log.info("%s at %s%s", counted.reason, decision["at"], _said(decision))
        return super().execute_complete(context, event)

    def _rule(self, context: Context) -> Approval:
        resolved = context["ti"].xcom_pull(task_ids=RESOLVE) or {}
        return self.service.environments[resolved["environment"]].approval

    def _wait(self, context: Context, answers: list[dict[str, Any]], deadline: datetime) -> None:
        """Ask (again: Airflow clears the last answer of a task that asks anew) and park until an answer or the
        deadline; the answers so far ride along with the park to ``execute_complete``."""
        self.response_timeout = max(deadline - utcnow(), MIN_WAIT)
        try:
            super().execute(context)
        except TaskAwaitingInput as parked:
            parked.kwargs = {"answers": answers, "deadline": deadline.isoformat()}
            raise

    def _decide(self, context: Context, decision: dict[str, Any]) -> dict[str, Any]:
        """Keep the decision for the record task; anything but an approval fails the gate."""
        decision = {**decision, "position": self.position}
        context["ti"].xcom_push(key=APPROVAL_XCOM, value=decision)
        if decision["decision"] != "approved":
            raise AirflowFailException(rejection(decision))
        return decision


def rejection(decision: dict[str, Any]) -> str:
    """The reason the ledger and the channels get for a gate that did not approve."""
    if decision["decision"] == "timed out":
        return f"not approved before {decision['position']}: no answer in time (the gate rejects on timeout)"
    if decision["decision"] == "refused":
        return f"not approved before {decision['position']}: {decision['reason']}"
    return f"rejected before {decision['position']} by {decision['by']} at {decision['at']}{_said(decision)}"


def _said(decision: dict[str, Any]) -> str:
    return f": {decision['comment']}" if decision.get("comment") else ""


def _version(ti: Any, resolved: dict[str, Any]) -> str:
    source = resolved.get("artifact") or ti.xcom_pull(task_ids=BUILD) or {}
    return source.get("short_sha") or "(unknown)"


def approval_body(service: Service, resolved: dict[str, Any], context: Context, why: list[str], *, rule: Approval) -> str:
    """What the approver reads (Markdown): the release, the commits since the live version, tests, analysis.
    Words from outside (the trigger's reason, who asked, a freeze override's reason, commit subjects) show as
    they are written: never a link, an image or HTML of their own."""
    ti = context["ti"]
    artifact = resolved.get("artifact") or {}
    source = artifact or ti.xcom_pull(task_ids=BUILD) or {}
    environment = resolved["environment"]
    live = _live(service.name, environment)
    lines = [
        f"**{service.name}** `{source.get('short_sha', '?')}` to **{environment}** with {resolved.get('strategy')}, "
        f"asked by {literal_markdown(resolved.get('requested_by'))}"
        + (f": {literal_markdown(resolved['reason'])}" if resolved.get("reason") else ""),
        "",
        f"- Live now: `{live.commit[:12]}` (run {live.run_id})" if live else "- Live now: nothing (a first release)",
    ]
    if artifact:
        taken = "The live image, for a new configuration" if resolved.get("reuse") else f"Promoted from {artifact['source']}"
        lines.append(f"- {taken} (run {artifact['run_id']}), not rebuilt: `{artifact['ref']}`"
                     + (f" `{artifact['digest']}`" if artifact.get("digest") else ""))
    lines += ["", "**Why this gate**", *[f"- {literal_markdown(w)}" for w in why], "",
              "**Commits since the live version**", *_commits(service, ti, source, live), "",
              "**Tests**", *_tests(ti, service, artifact)]
    verdict = ti.xcom_pull(task_ids=ANALYSIS, key="verdict")
    if verdict:
        lines += ["", "**Canary analysis**", f"- {verdict.get('result')} with score {verdict.get('score')} at interval "
                  f"{verdict.get('interval')}" + "".join(f"\n- {r}" for r in (verdict.get("reasons") or [])[:3])]
    lines += ["", f"Needs {rule.min_approvals} approval(s) by different people, never by whoever triggered the run; "
                  "one rejection rejects.", f"No answer within {rule.timeout_s} s rejects the release."]
    return "\n".join(lines)


def _live(service: str, environment: str):  # -> ReleaseEntry | None
    rows = promoted(releases_in(service, environment))
    return rows[0] if rows else None


def _commits(service: Service, ti: Any, source: dict[str, Any], live: Any) -> list[str]:
    if live is None or not source.get("sha"):
        return ["- (no live version to compare with)"]
    built = ti.xcom_pull(task_ids=BUILD) or {}  # build checked the ref out into its workspace first
    repo = Path(built["workspace"]) / "src" if built.get("workspace") else Path(service.source.location(project_root()))
    try:
        commits = commits_between(repo, live.commit, source["sha"], limit=COMMITS_SHOWN)
    except Exception as exc:  # noqa: BLE001 - the gate must still ask: say why the list is missing
        return [f"- (not listed: {str(exc).strip()[:200]})"]
    if not commits:
        return ["- none: the same commit (a configuration release) or an older one"]
    return [f"- `{sha}` {literal_markdown(subject)}" for sha, _, subject in (c.partition(" ") for c in commits)]


def _tests(ti: Any, service: Service, artifact: dict[str, Any]) -> list[str]:
    results = artifact.get("tests") if artifact else suite_results(ti, service)
    if not results:
        return ["- (no test results)"]
    return [f"- {suite}: {'passed' if r.get('ok') else 'FAILED'}, "
            + ", ".join(f"{n} {word}" for word, n in (r.get("counts") or {}).items())
            + (f", coverage {r['coverage']} %" if r.get("coverage") is not None else "")
            for suite, r in sorted(results.items())]


def suite_results(ti: Any, service: Service) -> dict[str, Any]:
    """Each suite's result from its task's XCom (the task group ``test``), by suite name."""
    pulled = (ti.xcom_pull(task_ids=f"{TEST}.{suite}") for suite in service.tests.suites)
    return {r["suite"]: r for r in pulled if isinstance(r, dict) and r.get("suite")}
