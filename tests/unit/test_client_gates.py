"""``python -m deployflow.client approve|reject``: the gate waiting in a service's release to an environment is found
and answered through Airflow's HITL endpoint; each refusal is one line and its exit code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from deployflow.client import gates
from tests.unit.fake_airflow import FakeAirflow, run_client

DAG = "/api/v2/dags/release_shop"
WAITING = ("GET", f"{DAG}/dagRuns/~/hitlDetails")
PROD_RUN, STAGING_RUN = "prod__main__20261206T174300", "staging__main__20261206T170000"
ASKED = "2026-12-06T17:45:00Z"


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    monkeypatch.setattr(gates, "SETTLE_S", 0.0)


def gate(run_id: str, task_id: str = "approve_deploy", state: str = "awaiting_input", run_after: str = ASKED) -> dict:
    return {"subject": "Release shop?", "options": ["Approve", "Reject"], "created_at": ASKED, "response_received": False,
            "task_instance": {"dag_run_id": run_id, "task_id": task_id, "state": state, "run_after": run_after}}


def run(airflow: FakeAirflow, run_id: str, conf: dict, by: str = "alice") -> None:
    airflow.answer(("GET", f"{DAG}/dagRuns/{run_id}"), 200, {"dag_run_id": run_id, "conf": conf, "triggering_user_name": by,
                                                             "state": "running"})


def patch_route(run_id: str, task_id: str = "approve_deploy") -> tuple[str, str]:
    return ("PATCH", f"{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")


def waiting_in_prod_and_staging(airflow: FakeAirflow) -> None:
    airflow.logs_in()
    airflow.answer(WAITING, 200, {"hitl_details": [gate(STAGING_RUN, run_after="2026-12-06T17:00:00Z"), gate(PROD_RUN)],
                                  "total_entries": 2})
    run(airflow, PROD_RUN, {"environment": "prod", "git_ref": "main"})
    run(airflow, STAGING_RUN, {"environment": "staging", "git_ref": "main"})
    for run_id in (PROD_RUN, STAGING_RUN):
        airflow.answer(patch_route(run_id), 200, {"responded_by": {"id": "admin", "name": "admin"},
                                                  "responded_at": "2026-12-06T17:46:00Z", "chosen_options": ["Approve"],
                                                  "params_input": {"comment": "CAB-1234"}})


def test_approve_answers_the_gate_waiting_in_that_environment_and_prints_a_table(capsys, airflow, passwords):
    waiting_in_prod_and_staging(airflow)
    ran = run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "prod", "--reason", "CAB-1234")
    assert ran.code == 0
    assert ran.out == (
        "SERVICE  ENVIRONMENT  RUN_ID                       GATE            ANSWER   BY     AT\n"
        f"shop     prod         {PROD_RUN}  approve_deploy  Approve  admin  2026-12-06T17:46:00Z\n")
    [sent] = airflow.requests(*patch_route(PROD_RUN))
    assert sent.body == {"chosen_options": ["Approve"], "params_input": {"comment": "CAB-1234"}}
    assert airflow.requests(*patch_route(STAGING_RUN)) == []
    assert airflow.requests(*WAITING)[0].query == {"response_received": ["false"], "limit": ["100"]}


def test_reject_with_json_prints_one_document(capsys, airflow, passwords):
    waiting_in_prod_and_staging(airflow)
    ran = run_client(capsys, airflow, passwords, "reject", "shop", "--environment", "staging", "--json")
    assert ran.code == 0
    assert json.loads(ran.out) == {"service": "shop", "environment": "staging", "run_id": STAGING_RUN, "gate": "approve_deploy",
                                   "answer": "Reject", "by": "admin", "at": "2026-12-06T17:46:00Z", "comment": ""}
    assert airflow.requests(*patch_route(STAGING_RUN))[0].body == {"chosen_options": ["Reject"], "params_input": {"comment": ""}}


def test_a_run_named_is_the_one_answered(capsys, airflow, passwords):
    waiting_in_prod_and_staging(airflow)
    airflow.answer(("GET", f"{DAG}/dagRuns/{PROD_RUN}/hitlDetails"), 200, {"hitl_details": [gate(PROD_RUN, "approve_promote")]})
    airflow.answer(patch_route(PROD_RUN, "approve_promote"), 200, {"responded_by": {"name": "admin"}, "responded_at": ASKED})
    ran = run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "prod", "--run", PROD_RUN)
    assert ran.code == 0 and "approve_promote" in ran.out and airflow.requests(*WAITING) == []


def test_the_nightly_runs_environment_comes_from_resolve(capsys, airflow, passwords):
    airflow.logs_in()
    airflow.answer(WAITING, 200, {"hitl_details": [gate("scheduled__2026-12-06T02:00:00+00:00")]})
    run(airflow, "scheduled__2026-12-06T02:00:00+00:00", {}, by=None)
    airflow.answer(("GET", f"{DAG}/dagRuns/scheduled__2026-12-06T02:00:00+00:00/taskInstances/resolve/xcomEntries/return_value"),
                   200, {"value": {"environment": "dev"}})
    airflow.answer(patch_route("scheduled__2026-12-06T02:00:00+00:00"), 200, {"responded_by": {"name": "admin"}})
    assert run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "dev").code == 0


@pytest.mark.parametrize(("details", "args", "says"), [
    ([], (), "no gate of release_shop waits for an answer in prod"),
    ([gate(STAGING_RUN)], (), f"no gate of release_shop waits for an answer in prod; gates wait in staging (run {STAGING_RUN})"),
    ([gate(PROD_RUN, state="running")], (), "no gate of release_shop waits for an answer in prod"),  # answered, resuming
])
def test_nothing_to_answer_exits_8(capsys, airflow, passwords, details, args, says):
    waiting_in_prod_and_staging(airflow)
    airflow.answer(WAITING, 200, {"hitl_details": details})
    ran = run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "prod", *args)
    assert (ran.code, ran.err) == (8, f"deployflow.client: {says}")


@pytest.mark.parametrize(("status", "detail", "code", "says"), [
    (403, "User=bob (id=bob) is not a respondent for the task.", 4, "HTTP 403: User=bob (id=bob) is not a respondent for the task."),
    (409, "Human-in-the-loop detail has already been updated", 2,
     f"approve_deploy of run {PROD_RUN} refused the answer: Human-in-the-loop detail has already been updated"),
    (404, "Human-in-the-loop detail does not exist", 8,
     f"approve_deploy of run {PROD_RUN} waits no more: Human-in-the-loop detail does not exist"),
])
def test_an_answer_airflow_refuses(capsys, airflow, passwords, status, detail, code, says):
    waiting_in_prod_and_staging(airflow)
    airflow.answer(patch_route(PROD_RUN), status, {"detail": detail})
    ran = run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "prod")
    assert (ran.code, ran.err) == (code, f"deployflow.client: {says}")


def test_the_requester_is_refused_before_answering(capsys, airflow, passwords):
    waiting_in_prod_and_staging(airflow)
    run(airflow, PROD_RUN, {"environment": "prod"}, by="admin")
    ran = run_client(capsys, airflow, passwords, "approve", "shop", "--environment", "prod")
    assert (ran.code, ran.err) == (2, f"deployflow.client: admin triggered run {PROD_RUN}, and a gate never counts its "
                                      "requester's answer: someone else must approve it")
    assert airflow.requests(*patch_route(PROD_RUN)) == []


def test_a_bad_reason_is_refused_before_any_call(capsys, airflow, passwords):
    ran = run_client(capsys, airflow, passwords, "reject", "shop", "--environment", "prod", "--reason", "x" * 501)
    assert (ran.code, ran.err) == (2, "deployflow.client: --reason: must be text of at most 500 characters")
    assert airflow.sent == []


def test_a_missing_environment_is_a_usage_error(capsys, airflow, passwords):
    with pytest.raises(SystemExit) as exited:
        run_client(capsys, airflow, passwords, "approve", "shop")
    assert exited.value.code == 2


@pytest.mark.parametrize(("asked_ago", "waited"), [(2.0, 8.0), (30.0, None), (-120.0, 10.0)])
def test_a_gate_that_just_asked_is_answered_once_it_settled(monkeypatch, asked_ago, waited):
    monkeypatch.setattr(gates, "SETTLE_S", 10.0)
    slept: list[float] = []
    monkeypatch.setattr(gates.time, "sleep", slept.append)
    now = datetime(2026, 12, 6, 17, 45, 0, tzinfo=timezone.utc)
    gates.settle((now - timedelta(seconds=asked_ago)).isoformat(), now)
    assert slept == ([] if waited is None else [pytest.approx(waited)])  # never longer than SETTLE_S, whatever the clocks
