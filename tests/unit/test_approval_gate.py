"""The approval gate and what the record makes of it: when the gate waits, what the approver reads, how an
answer (or none) becomes the ledger's decision, and a promotion recorded with its source's artifact."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.approval import APPROVAL_XCOM, ReleaseApprovalOperator, approval_body, rejection
from deployflow.airflow.record import ReleaseRecordOperator, notified_event
from deployflow.airflow.governance import approval_needed
from deployflow.catalog import parse_service
from deployflow.ledger import Ledger, ReleaseEntry, default_url

SHOP = parse_service({
    "name": "shop", "source": {"repo": "/srv/shop"},
    "environments": {"dev": {"port": 18101}, "staging": {"port": 18102},
                     "prod": {"port": 18103, "requires": "staging",
                              "approval": {"approvers": ["alice"], "timeout_s": 600}}},
})
RESOLVED = {"service": "shop", "environment": "prod", "strategy": "blue-green", "git_ref": "main", "requested_by": "ci",
            "reason": "weekly", "promote_from": "staging", "freeze_override": "",
            "artifact": {"ref": "127.0.0.1:5000/shop:0123456789ab", "digest": "sha256:" + "b" * 64, "sha": "0123456789ab" * 3,
                         "short_sha": "0123456789ab", "committed_at": None, "source": "staging", "run_id": "manual__s",
                         "tests": {"unit": {"suite": "unit", "ok": True, "counts": {"passed": 50}, "coverage": 91}}}}


class TI:
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
    body = approval_body(SHOP, RESOLVED, {"ti": ti}, ["prod asks for an approval before it deploys"], timeout_s=600)
    for part in ("**shop** `0123456789ab` to **prod** with blue-green, asked by ci: weekly",
                 "Live now: nothing (a first release)",
                 "Promoted from staging (run manual__s), not rebuilt: `127.0.0.1:5000/shop:0123456789ab`",
                 "- prod asks for an approval before it deploys", "- unit: passed, 50 passed, coverage 91 %",
                 "No answer within 600 s rejects the release."):
        assert part in body, part


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
    ti = TI({})
    if raises:
        with pytest.raises(AirflowFailException, match=raises):
            task.execute_complete({"ti": ti}, event)
    else:
        task.execute_complete({"ti": ti}, event)
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


@pytest.mark.parametrize(("outcome", "event"), [
    ("promoted", "promoted"), ("rejected", "rejected"), ("rejected, rolled back to abc", "rejected"),
    ("rolled back to abc", "rolled_back"), ("failed before deploy", "failed"), ("refused", "failed"),
])
def test_each_outcome_is_told_as_one_event(outcome, event):
    entry = ReleaseEntry(service="s", environment="prod", strategy="rolling", version=None, commit=None, image=None,
                         previous=None, requested_by="a", reason="", run_id="r", outcome=outcome, started_at=None,
                         finished_at="2026-12-02T00:00:00+00:00", seconds=None, rollback_seconds=None)
    assert notified_event(entry) == event
