"""``python -m deployflow.client abort``: the release in flight in an environment is found, the abort is written where
the record task reads it, each unfinished task but the rollback and the record is marked failed with who and why;
nothing in flight, a release already ending, a bad reason: one line and the exit code, nothing changed."""

from __future__ import annotations

import json

import pytest

from deployflow.airflow.record import aborted_by
from deployflow.airflow.task_ids import ABORTED
from deployflow.client import steering
from tests.unit.fake_airflow import FakeAirflow, run_client

DAG = "/api/v2/dags/release_shop"
STAGING_RUN, PROD_RUN = "staging__main__20261206T210000", "prod__main__20261206T200000"
TIS = f"{DAG}/dagRuns/{STAGING_RUN}/taskInstances"
XCOMS = f"{TIS}/resolve/xcomEntries"


def runs(airflow: FakeAirflow, *listed: dict) -> None:
    airflow.answer(("GET", f"{DAG}/dagRuns"), 200, {"dag_runs": list(listed), "total_entries": len(listed)})


def a_run(run_id: str, environment: str, state: str = "running", run_after: str = "2026-12-06T21:00:00Z") -> dict:
    return {"dag_run_id": run_id, "conf": {"environment": environment}, "state": state, "run_after": run_after}


def tasks(airflow: FakeAirflow, states: dict[str, str], *, then: dict[str, str] | None = None) -> None:
    body = {"task_instances": [{"task_id": t, "state": s} for t, s in states.items()]}
    later = [(200, {"task_instances": [{"task_id": t, "state": s} for t, s in then.items()]})] if then else None
    airflow.answer(("GET", TIS), 200, body, then=later)


CANARY_ANALYSING = {"resolve": "success", "lock": "success", "build": "success", "prepare": "success",
                    "health": "success", "shift": "success", "analysis": "deferred", "load": "running",
                    "promote": None, "rollback": None, "record": None}


def in_flight(airflow: FakeAirflow) -> None:
    airflow.logs_in()
    runs(airflow, a_run(PROD_RUN, "prod", run_after="2026-12-06T20:00:00Z"), a_run(STAGING_RUN, "staging"),
         a_run("staging__old", "staging", state="failed", run_after="2026-12-06T19:00:00Z"))
    airflow.answer(("POST", XCOMS), 201, {"key": ABORTED})
    for task in ("analysis", "load"):
        airflow.answer(("PATCH", f"{TIS}/{task}"), 200, {"task_instances": []})


def test_abort_marks_the_unfinished_steps_failed_with_who_and_why_and_leaves_the_rollback_to_run(capsys, airflow, passwords):
    in_flight(airflow)
    tasks(airflow, CANARY_ANALYSING)
    ran = run_client(capsys, airflow, passwords, "abort", "shop", "--environment", "staging", "--reason", "wrong config",
                     "--no-wait")
    assert ran.code == 0, ran.err
    [written] = airflow.requests("POST", XCOMS)
    assert written.body["key"] == ABORTED
    assert {k: written.body["value"][k] for k in ("by", "reason")} == {"by": "admin", "reason": "wrong config"}
    patched = {s.path.rsplit("/", 1)[1]: s.body for s in airflow.sent if s.method == "PATCH"}
    assert patched == {t: {"new_state": "failed", "note": "aborted by admin: wrong config"} for t in ("analysis", "load")}
    assert "SERVICE  ENVIRONMENT  RUN_ID" in ran.out and "analysis, load" in ran.out


def test_abort_follows_the_run_to_its_rollback_and_says_where_traffic_went(capsys, airflow, passwords):
    in_flight(airflow)
    ended = {**CANARY_ANALYSING, "analysis": "failed", "load": "failed", "promote": "upstream_failed",
             "rollback": "success", "record": "failed"}
    tasks(airflow, CANARY_ANALYSING, then=ended)
    airflow.answer(("GET", f"{DAG}/dagRuns/{STAGING_RUN}"), 200, {**a_run(STAGING_RUN, "staging"), "state": "failed"})
    airflow.answer(("GET", f"{TIS}/rollback/xcomEntries/return_value"), 200,
                   {"value": {"rolled_back": True, "to": "1a2b3c4d5e6f"}})
    ran = run_client(capsys, airflow, passwords, "abort", "shop", "--environment", "staging", "--json")
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert (report["rolled_back_to"], report["rollback"], report["state"]) == ("1a2b3c4d5e6f", "success", "failed")


def test_a_rollback_that_fails_after_an_abort_exits_1(capsys, airflow, passwords):
    in_flight(airflow)
    tasks(airflow, CANARY_ANALYSING, then={**CANARY_ANALYSING, "analysis": "failed", "rollback": "failed", "record": "failed"})
    airflow.answer(("GET", f"{DAG}/dagRuns/{STAGING_RUN}"), 200, {**a_run(STAGING_RUN, "staging"), "state": "failed"})
    assert run_client(capsys, airflow, passwords, "abort", "shop", "--environment", "staging").code == 1


def test_a_second_abort_replaces_the_first_ones_words(airflow):
    in_flight(airflow)
    tasks(airflow, CANARY_ANALYSING)
    airflow.answer(("POST", XCOMS), 409, {"detail": "exists"})
    airflow.answer(("PATCH", f"{XCOMS}/{ABORTED}"), 200, {})
    client = steering.AirflowClient(airflow.url)
    steering.abort_release(client, "shop", "staging", by="bob", reason="again")
    [replaced] = airflow.requests("PATCH", f"{XCOMS}/{ABORTED}")
    assert replaced.body["value"]["by"] == "bob"


@pytest.mark.parametrize("listed, states, says", [
    ([a_run(PROD_RUN, "prod")], CANARY_ANALYSING, "no release of release_shop is in flight in staging; releases go on in "
                                                  f"prod (run {PROD_RUN})"),
    ([a_run(STAGING_RUN, "staging", state="success")], CANARY_ANALYSING, "no release of release_shop is in flight in staging"),
    ([a_run(STAGING_RUN, "staging")], {**CANARY_ANALYSING, "analysis": "failed", "load": "failed", "rollback": "running"},
     "is already ending in staging"),
])
def test_nothing_in_flight_is_exit_8_and_changes_nothing(capsys, airflow, passwords, listed, states, says):
    airflow.logs_in()
    runs(airflow, *listed)
    tasks(airflow, states)
    ran = run_client(capsys, airflow, passwords, "abort", "shop", "--environment", "staging", "--no-wait")
    assert ran.code == 8 and says in ran.err, ran.err
    assert [s for s in airflow.sent if s.method in ("POST", "PATCH") and s.path != "/auth/token"] == []


def test_a_reason_that_is_a_template_is_refused_before_anything_is_asked(capsys, airflow, passwords):
    airflow.logs_in()
    ran = run_client(capsys, airflow, passwords, "abort", "shop", "--environment", "staging", "--reason", "{{ conf }}")
    assert ran.code == 2 and "reason" in ran.err and "template" in ran.err
    assert [s.path for s in airflow.sent if s.path != "/auth/token"] == []


def test_the_record_says_who_aborted_and_why_on_one_line():
    assert aborted_by(None) is None
    assert aborted_by({"by": "alice", "reason": "wrong\nconfig", "at": "x"}) == "aborted by alice: wrong config"
    assert aborted_by({"by": "alice", "reason": ""}) == "aborted by alice"


# ---- promote now

PROMOTING = {**CANARY_ANALYSING, "analysis": "success", "load": "success", "promote": "running"}


@pytest.mark.parametrize("states, restarted", [(PROMOTING, True), ({**PROMOTING, "promote": None}, False)])
def test_promote_now_after_a_passed_analysis_is_written_and_a_running_promote_restarted(capsys, airflow, passwords,
                                                                                        states, restarted):
    airflow.logs_in()
    runs(airflow, a_run(STAGING_RUN, "staging"))
    tasks(airflow, states)
    airflow.answer(("POST", XCOMS), 201, {})
    airflow.answer(("POST", f"{DAG}/clearTaskInstances"), 200, {"task_instances": []})
    ran = run_client(capsys, airflow, passwords, "promote", "shop", "--environment", "staging", "--reason", "looks fine",
                     "--no-wait")
    assert ran.code == 0, ran.err
    [written] = airflow.requests("POST", XCOMS)
    assert written.body["key"] == "promote_now" and written.body["value"]["by"] == "admin"
    cleared = airflow.requests("POST", f"{DAG}/clearTaskInstances")
    if restarted:
        [clear] = cleared
        assert {k: clear.body[k] for k in ("dry_run", "dag_run_id", "task_ids", "only_failed", "include_downstream")} == {
            "dry_run": False, "dag_run_id": STAGING_RUN, "task_ids": ["promote"], "only_failed": False,
            "include_downstream": False}
    else:
        assert cleared == []


@pytest.mark.parametrize("states, code, says", [
    (CANARY_ANALYSING, 2, "has not passed (it is deferred)"),
    ({**CANARY_ANALYSING, "analysis": "failed", "rollback": "running"}, 2, "is rolling back"),
    ({**PROMOTING, "promote": "success", "record": "running"}, 8, "promoted already"),
])
def test_promote_now_is_refused_before_a_passed_analysis_and_after_promotion(capsys, airflow, passwords, states, code,
                                                                             says):
    airflow.logs_in()
    runs(airflow, a_run(STAGING_RUN, "staging"))
    tasks(airflow, states)
    ran = run_client(capsys, airflow, passwords, "promote", "shop", "--environment", "staging", "--no-wait")
    assert ran.code == code and says in ran.err, ran.err
    assert [s for s in airflow.sent if s.method in ("POST", "PATCH") and s.path != "/auth/token"] == []
