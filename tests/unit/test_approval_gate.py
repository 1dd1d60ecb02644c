"""The approval gate and what the record makes of it: when the gate waits, what the approver reads, how an
answer (or none) becomes the ledger's decision, who may answer (never the requester; N of the approvers), and a
promotion recorded with its source's artifact."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from unittest import mock

import pytest
from markdown_it import MarkdownIt
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput

from deployflow.airflow.approval import APPROVAL_XCOM, ReleaseApprovalOperator, approval_body, rejection
from deployflow.airflow.record import ReleaseRecordOperator
from deployflow.airflow.governance import approval_needed
from deployflow.catalog import parse_service
from deployflow.ledger import Ledger, ReleaseEntry, default_url
from deployflow.outcomes import Outcome

SHOP = parse_service({
    "name": "shop", "source": {"repo": "/srv/shop"},
    "environments": {"dev": {"port": 18101}, "staging": {"port": 18102},
                     "prod": {"port": 18103, "requires": "staging",
                              "approval": {"approvers": ["alice"], "timeout_s": 600}}},
})
# Two of three must approve in prod; dev's gate (a freeze override's) names no approvers: anyone but the requester.
TEAM = parse_service({
    "name": "team", "source": {"repo": "/srv/team"},
    "environments": {"dev": {"port": 18111},
                     "prod": {"port": 18113, "approval": {"approvers": ["alice", "bob", "carol"], "min_approvals": 2}}},
})
RESOLVED = {"service": "shop", "environment": "prod", "strategy": "blue-green", "git_ref": "main", "requested_by": "ci",
            "reason": "weekly", "promote_from": "staging", "freeze_override": "",
            "artifact": {"ref": "127.0.0.1:5000/shop:0123456789ab", "digest": "sha256:" + "b" * 64, "sha": "0123456789ab" * 3,
                         "short_sha": "0123456789ab", "committed_at": None, "source": "staging", "run_id": "manual__s",
                         "tests": {"unit": {"suite": "unit", "ok": True, "counts": {"passed": 50}, "coverage": 91}}}}


class TI:
    id = "0190a8a0-0000-7000-8000-000000000001"  # what Airflow's HITLOperator.execute asks its request for

    def __init__(self, xcoms: dict) -> None:
        self.xcoms, self.pushed = xcoms, {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


@pytest.mark.parametrize(("environment", "resolved", "position", "why"), [
    ("prod", {}, "deploy", ["prod asks for an approval before it deploys"]),
    ("prod", {}, "promote", []),
    ("dev", {}, "deploy", []),
    ("dev", {"freeze": {"message": "dev is frozen by window 'w' until 10:00"}, "freeze_override": "hotfix"}, "deploy",
     ["the freeze is overridden: dev is frozen by window 'w' until 10:00 (reason: hotfix)"]),
    ("dev", {"freeze": {"message": "m"}, "freeze_override": "x"}, "promote", []),  # an override's gate stands before deploy
])
def test_the_gate_waits_only_where_asked(environment, resolved, position, why):
    assert approval_needed(SHOP, {"environment": environment, **resolved}, position) == why


def test_a_gate_with_nothing_to_ask_passes_at_once():
    task = ReleaseApprovalOperator(task_id="approve_deploy", service=SHOP, position="deploy")
    ti = TI({("resolve", "return_value"): {**RESOLVED, "environment": "dev"}})
    assert task.execute({"ti": ti}) == {"decision": "not needed"}
    assert list(task.params) == ["comment"]  # the form asks for a comment, nothing of the DAG's


def test_the_approver_reads_the_version_its_source_the_live_one_and_the_tests(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    ti = TI({})
    body = approval_body(SHOP, RESOLVED, {"ti": ti}, ["prod asks for an approval before it deploys"],
                         rule=SHOP.environments["prod"].approval)
    for part in ("**shop** `0123456789ab` to **prod** with blue-green, asked by ci: weekly",
                 "Live now: nothing (a first release)",
                 "Promoted from staging (run manual__s), not rebuilt: `127.0.0.1:5000/shop:0123456789ab`",
                 "- prod asks for an approval before it deploys", "- unit: passed, 50 passed, coverage 91 %",
                 "Needs 1 approval(s) by different people, never by whoever triggered the run",
                 "No answer within 600 s rejects the release."):
        assert part in body, part


def _context(ti: TI, requester: str | None = "ci") -> dict:
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(triggering_user_name=requester, run_type="manual")}


def _event(option: str, *, by: str | None = "alice", timedout: bool = False, comment: str = "") -> dict:
    return {"chosen_options": [option], "params_input": {"comment": comment}, "timedout": timedout,
            "responded_at": datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc),
            "responded_by_user": {"id": by, "name": by} if by else None}


@pytest.mark.parametrize(("event", "decision", "raises"), [
    (_event("Approve", comment="ok"), {"decision": "approved", "by": "alice", "comment": "ok"}, None),
    (_event("Reject", comment="not today"), {"decision": "rejected", "by": "alice"},
     "rejected before deploy by alice at 2026-12-02T09:30:00\\+00:00: not today"),
    (_event("Reject", by=None, timedout=True), {"decision": "timed out", "by": None},
     "not approved before deploy: no answer in time"),
])
def test_an_answer_becomes_the_decision_the_ledger_keeps(event, decision, raises):
    task = ReleaseApprovalOperator(task_id="approve_deploy", service=SHOP, position="deploy")
    ti = TI({("resolve", "return_value"): RESOLVED})
    if raises:
        with pytest.raises(AirflowFailException, match=raises):
            task.execute_complete(_context(ti), event)
    else:
        task.execute_complete(_context(ti), event)
    pushed = ti.pushed[APPROVAL_XCOM]
    assert {k: pushed[k] for k in decision} == decision and pushed["at"] == "2026-12-02T09:30:00+00:00"


def test_an_answer_that_is_no_option_is_refused():
    task = ReleaseApprovalOperator(task_id="approve_deploy", service=SHOP, position="deploy")
    with pytest.raises(ValueError, match="not in"):
        task.execute_complete({"ti": TI({})}, _event("Maybe"))


def test_a_rejected_promotion_is_recorded_with_who_and_the_artifact_it_would_have_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    decision = {"decision": "rejected", "by": "alice", "at": "2026-12-02T09:30:00+00:00", "comment": "wait",
                "position": "deploy"}
    ti = TI({("resolve", "return_value"): RESOLVED, ("approve_deploy", APPROVAL_XCOM): decision})
    context = {"ti": ti, "run_id": "manual__p",
               "dag_run": SimpleNamespace(start_date=datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc), dag_id="release_shop",
                                          triggering_user_name="ci", run_type="manual")}
    with mock.patch.object(ReleaseRecordOperator, "_live", return_value=None), \
            pytest.raises(AirflowFailException, match="rejected: rejected before deploy by alice"):
        ReleaseRecordOperator(task_id="record", service=SHOP).execute(context)
    [entry] = Ledger(default_url(tmp_path)).entries()
    assert (entry.outcome, entry.approval, entry.approved_by, entry.approved_at) == (
        "rejected", "rejected", "alice", "2026-12-02T09:30:00+00:00")
    assert (entry.promoted_from, entry.digest, entry.commit, entry.version) == (
        "staging", "sha256:" + "b" * 64, "0123456789ab" * 3, "0123456789ab")
    assert entry.tests == RESOLVED["artifact"]["tests"] and entry.failure == rejection(decision)


# Separation of duties, through the operator's own code: Airflow's request (upsert_hitl_detail) is faked, its
# park (TaskAwaitingInput, what Airflow 3.3 resumes into execute_complete with the park's kwargs) is real.

@pytest.fixture
def hitl(tmp_path, monkeypatch):
    """The requests the gate wrote to Airflow, one per wait."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    with mock.patch("airflow.providers.standard.operators.hitl.upsert_hitl_detail") as upsert:
        yield upsert


class Gate:
    """One gate of ``service`` in ``environment``, run as Airflow runs it: execute, then each answer resumes it
    with what the last park carried."""

    def __init__(self, service, environment: str, requester: str | None, *, freeze_override: str = "") -> None:
        self.task = ReleaseApprovalOperator(task_id="approve_deploy", service=service, position="deploy")
        resolved = {**RESOLVED, "service": service.name, "environment": environment, "freeze_override": freeze_override,
                    "freeze": {"message": f"{environment} is frozen"} if freeze_override else None}
        self.ti = TI({("resolve", "return_value"): resolved})
        self.context = _context(self.ti, requester)
        self.parked = self._park(lambda: self.task.execute(self.context))

    @staticmethod
    def _park(call) -> TaskAwaitingInput:
        with pytest.raises(TaskAwaitingInput) as parked:
            call()
        return parked.value

    def waits_after(self, option: str, by: str) -> TaskAwaitingInput:
        """The answer does not decide: the gate waits again, carrying the answers so far."""
        self.parked = self._park(lambda: self.answer(option, by))
        return self.parked

    def answer(self, option: str, by: str):
        return self.task.execute_complete(self.context, _event(option, by=by), **self.parked.kwargs)

    @property
    def decision(self) -> dict | None:
        return self.ti.pushed.get(APPROVAL_XCOM)


@pytest.mark.parametrize(("service", "environment", "requester", "others", "assigned"), [
    # listed approvers: Airflow is told them all but the requester, so its API refuses the requester (403)...
    (TEAM, "prod", "alice", ["carol", "bob"], ["bob", "carol"]),
    # ...and the gate refuses them anyway where the API lets them through (the simple auth manager's all-admins mode)
    (SHOP, "prod", "ci", ["alice"], ["alice"]),
    # no approvers listed: Airflow lets anyone answer, and the gate alone refuses the requester
    (TEAM, "dev", "alice", ["bob"], None),
])
def test_a_self_approval_is_refused_and_the_gate_waits_for_someone_else(hitl, service, environment, requester, others,
                                                                        assigned):
    gate = Gate(service, environment, requester, freeze_override="hotfix" if environment == "dev" else "")
    assert hitl.call_args.kwargs["assigned_users"] == ([{"id": n, "name": n} for n in assigned] if assigned else None)
    assert gate.waits_after("Approve", requester).kwargs["answers"][0]["counted"] == "refused"
    assert gate.decision is None and hitl.call_count == 2  # asked anew: Airflow clears the refused answer
    for other in others[:-1]:
        gate.waits_after("Approve", other)
    gate.answer("Approve", others[-1])
    assert (gate.decision["decision"], gate.decision["by"]) == ("approved", ", ".join(others))
    refused = gate.decision["answers"][0]
    assert (refused["by"], refused["counted"]) == (requester, "refused")
    assert refused["reason"].startswith(f"{requester} triggered the run and may not answer its approval")


def test_a_requester_who_is_the_only_approver_fails_the_gate_at_once_naming_why(hitl):
    gate_task = ReleaseApprovalOperator(task_id="approve_deploy", service=SHOP, position="deploy")
    ti = TI({("resolve", "return_value"): RESOLVED})
    with pytest.raises(AirflowFailException, match="alice triggered the run and may not approve it; 0 other approver"):
        gate_task.execute(_context(ti, requester="alice"))
    assert ti.pushed[APPROVAL_XCOM]["decision"] == "refused" and not hitl.called


def test_two_of_three_pass_only_with_two_different_approvers_and_the_ledger_names_both(hitl, tmp_path):
    gate = Gate(TEAM, "prod", "ci")
    first = gate.waits_after("Approve", "alice")
    assert gate.waits_after("Approve", "alice").kwargs["answers"][-1]["reason"].startswith("alice approved already")
    assert gate.decision is None
    assert gate.parked.kwargs["deadline"] == first.kwargs["deadline"]  # waiting again does not extend the timeout
    assert gate.parked.timeout <= first.timeout <= timedelta(seconds=3600)
    gate.answer("Approve", "bob")
    decision = gate.decision
    assert (decision["decision"], decision["by"]) == ("approved", "alice, bob")
    assert [(a["by"], a["counted"]) for a in decision["answers"]] == [("alice", "waiting"), ("alice", "refused"),
                                                                      ("bob", "approved")]
    entry = ReleaseEntry.of(request=RESOLVED, run_id="manual__2of3", outcome=Outcome.PROMOTED, commit=None,
                            image=None, previous=None, started=None, rollback=None, approval=decision)
    ledger = Ledger(default_url(tmp_path))
    ledger.record(entry)
    [kept] = ledger.entries()
    assert (kept.approval, kept.approved_by) == ("approved", "alice, bob")
    assert kept.approval_answers == decision["answers"]


def test_one_rejection_fails_a_two_of_three_gate(hitl):
    gate = Gate(TEAM, "prod", "ci")
    gate.waits_after("Approve", "alice")
    with pytest.raises(AirflowFailException, match="rejected before deploy by carol"):
        gate.answer("Reject", "carol")
    assert gate.decision["decision"] == "rejected"
    assert [(a["by"], a["answer"]) for a in gate.decision["answers"]] == [("alice", "Approve"), ("carol", "Reject")]


def test_an_approval_short_of_the_count_then_no_answer_times_out(hitl):
    gate = Gate(TEAM, "prod", "ci")
    gate.waits_after("Approve", "alice")
    with pytest.raises(AirflowFailException, match="no answer in time"):
        gate.task.execute_complete(gate.context, _event("Reject", by=None, timedout=True), **gate.parked.kwargs)
    assert gate.decision["decision"] == "timed out" and gate.decision["answers"][0]["by"] == "alice"


def test_the_reason_and_commit_subjects_show_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    resolved = {**RESOLVED, "reason": "[click](http://evil) <img src=x> **now**"}
    subject = "0123abc fix: <script>alert(1)</script> ![pixel](http://evil/p.png)"
    live = SimpleNamespace(commit="f" * 40, run_id="manual__live")
    with mock.patch("deployflow.airflow.approval._live", return_value=live), \
            mock.patch("deployflow.airflow.approval.commits_between", return_value=[subject]):
        body = approval_body(SHOP, resolved, {"ti": TI({})}, ["x"], rule=SHOP.environments["prod"].approval)
    page = MarkdownIt("commonmark", {"html": True}).render(body)
    assert "<a " not in page and "<img" not in page and "<script" not in page and page.count("<strong>") == 5  # the body's own: shop, prod and three headings
    assert "[click](http://evil) &lt;img src=x&gt; **now**" in page
    assert "<code>0123abc</code> fix: &lt;script&gt;alert(1)&lt;/script&gt; ![pixel](http://evil/p.png)" in page
