"""``python -m deployflow.client release``: the run's id and note, the options a release takes, what the client says
while the run goes on (the strategy resolved, where a waiting gate is answered) and at its end (the tasks, why a step
was skipped, the watch after promotion), as a table or as JSON, and the exit code of its outcome."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from deployflow.client import release as release_command
from tests.unit.fake_airflow import FakeAirflow, run_client

DAG = "/api/v2/dags/release_shop"
TRIGGER = ("POST", f"{DAG}/dagRuns")
RUN_ID = "dev__main__20261206T174300"
RUN = f"{DAG}/dagRuns/{RUN_ID}"
TASKS = ("GET", f"{RUN}/taskInstances")
RESOLVED = {"service": "shop", "environment": "dev", "git_ref": "main", "strategy": "blue-green", "reason": "CI build 42",
            "requested_by": "admin", "promote_from": "", "freeze_override": ""}


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(release_command, "POLL_S", 0.01)


def follow(airflow: FakeAirflow, *states: str, tasks: list[list[dict]] | None = None, timeout: str | None = "PT35M") -> None:
    """A run that goes through ``states`` (one a poll), its task instances ``tasks`` (one list a poll)."""
    airflow.logs_in()
    airflow.answer(TRIGGER, 200, {"dag_run_id": RUN_ID, "note": "dev · the catalog's strategy · main · by admin"})
    airflow.answer(("GET", f"{DAG}/details"), 200, {"dag_id": "release_shop", "dag_run_timeout": timeout})
    run = [{"state": s, "start_date": "2026-12-06T17:43:01Z", "end_date": "2026-12-06T17:45:31Z"} for s in states]
    airflow.answer(("GET", RUN), 200, run[0], then=[(200, r) for r in run[1:]])
    lists = tasks or [[]]
    airflow.answer(TASKS, 200, {"task_instances": lists[0]}, then=[(200, {"task_instances": t}) for t in lists[1:]])
    airflow.answer(("PATCH", RUN), 200, {})


def xcom(airflow: FakeAirflow, task_id: str, value: object, key: str = "return_value") -> None:
    airflow.answer(("GET", f"{RUN}/taskInstances/{task_id}/xcomEntries/{key}"), 200, {"value": value})


def ti(task_id: str, state: str, seconds: float | None = 1.0, start: str = "2026-12-06T17:43:02Z") -> dict:
    return {"task_id": task_id, "state": state, "duration": seconds, "try_number": 1 if seconds is not None else 0,
            "start_date": start if seconds is not None else None}


def release(capsys, airflow: FakeAirflow, passwords, *extra: str):
    return run_client(capsys, airflow, passwords, "release", "shop", "--environment", "dev", *extra)


# ---- the run's id and note ---------------------------------------------------------------------------------------

def test_a_release_runs_under_a_readable_id_and_note(capsys, airflow, passwords):
    follow(airflow, "success")
    assert release(capsys, airflow, passwords, "--git-ref", "feature/login", "--reason", "CI build 42").code == 0
    [sent] = airflow.requests(*TRIGGER)
    assert sent.body["conf"] == {"environment": "dev", "git_ref": "feature/login", "reason": "CI build 42"}
    assert sent.body["note"] == "dev · the catalog's strategy · feature/login · by admin: CI build 42"
    made, _, stamp = sent.body["dag_run_id"].rpartition("__")
    assert made == "dev__feature-login"
    at = datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - at).total_seconds()) < 60


def test_a_run_id_taken_in_the_same_second_gets_a_suffix(capsys, airflow, passwords):
    follow(airflow, "success")
    airflow.answer(TRIGGER, 409, {"detail": "Unique constraint violation"}, then=[(200, {"dag_run_id": RUN_ID})])
    assert release(capsys, airflow, passwords).code == 0
    first, second = (s.body["dag_run_id"] for s in airflow.requests(*TRIGGER))
    assert second == f"{first}.2"


def test_the_note_is_made_exact_once_resolve_and_build_tell_more(capsys, airflow, passwords):
    follow(airflow, "success", tasks=[[ti("resolve", "success"), ti("build", "success")]])
    xcom(airflow, "resolve", RESOLVED)
    xcom(airflow, "build", {"sha": "3f2a9c1d" * 5, "short_sha": "3f2a9c1d", "ref": "127.0.0.1:5000/shop:3f2a9c1d"})
    assert release(capsys, airflow, passwords, "--git-ref", "main").code == 0
    patched = airflow.requests("PATCH", RUN)
    assert [p.body for p in patched] == [{"note": "dev · blue-green · main · by admin: CI build 42"},
                                         {"note": "dev · blue-green · main@3f2a9c1d · by admin: CI build 42"}]
    assert patched[0].query == {"update_mask": ["note"]}


def test_a_note_airflow_refuses_leaves_the_release_going(capsys, airflow, passwords):
    follow(airflow, "success", tasks=[[ti("resolve", "success")]])
    xcom(airflow, "resolve", RESOLVED)
    airflow.answer(("PATCH", RUN), 403, {"detail": "Forbidden"})
    ran = release(capsys, airflow, passwords)
    assert ran.code == 0 and "(the run's note is left as it was: HTTP 403: Forbidden)" in ran.out


# ---- what a release asks for, and what it says while it goes on ----------------------------------------------------

def test_a_promotion_and_a_freeze_override_go_into_the_conf_and_resolve_says_what_they_became(capsys, airflow, passwords):
    follow(airflow, "success", tasks=[[ti("resolve", "success")]])
    xcom(airflow, "resolve", {**RESOLVED, "environment": "prod", "strategy": "canary", "promote_from": "staging",
                              "freeze_override": "hotfix", "artifact": {"short_sha": "3f2a9c1d", "source": "staging",
                                                                        "run_id": "staging__main__20261205T100000"},
                              "freeze": {"message": "prod is frozen by window 'weekend' until 2026-12-07 08:00 UTC"}})
    ran = run_client(capsys, airflow, passwords, "release", "shop", "--environment", "prod", "--promote-from", "staging",
                     "--freeze-override", "hotfix")
    assert airflow.requests(*TRIGGER)[0].body["conf"] == {"environment": "prod", "promote_from": "staging",
                                                          "freeze_override": "hotfix"}
    assert "  resolved: prod with canary (the catalog's), ref main\n" in ran.out
    assert ("  promoting 3f2a9c1d as staging promoted it (run staging__main__20261205T100000): no checkout, build or tests\n"
            in ran.out)
    assert ("  freeze overridden: prod is frozen by window 'weekend' until 2026-12-07 08:00 UTC; the release waits for an "
            "approval\n") in ran.out
    assert airflow.requests("PATCH", RUN)[-1].body == {
        "note": "prod · canary · main@3f2a9c1d from staging · freeze overridden · by admin: CI build 42"}


def test_a_waiting_gate_says_once_where_and_how_to_answer_it(capsys, airflow, passwords):
    waiting = [ti("resolve", "success"), ti("approve_deploy", "awaiting_input")]
    follow(airflow, "running", "running", "running", "success",
           tasks=[waiting, [*waiting[:1], ti("approve_deploy", "running")], waiting, [*waiting[:1], ti("approve_deploy", "success")]])
    xcom(airflow, "resolve", RESOLVED)
    airflow.answer(("GET", f"{RUN}/taskInstances/approve_deploy/-1/hitlDetails"), 200, {
        "subject": "Release shop 3f2a9c1 to dev?", "assigned_users": [{"id": "bob", "name": "bob"}]})
    ran = release(capsys, airflow, passwords)
    asked = (f"  approve_deploy waits for an answer: Release shop 3f2a9c1 to dev? (who may answer: bob, never whoever "
             f"triggered the run)\n"
             f"    in Airflow: {airflow.url}/dags/release_shop/runs/{RUN_ID}/tasks/approve_deploy/required_actions\n"
             f"    or here:    python -m deployflow.client --url {airflow.url} approve shop --environment dev --run {RUN_ID} "
             f"--reason '...'   (reject: the same with reject)\n")
    assert ran.code == 0 and ran.out.count(asked) == 1, ran.out  # once, though the gate parked twice


# ---- how long it follows ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("timeout", "says"), [
    ("PT1H30M", "following the run for up to 5460 s (the DAG's run timeout, 5400 s, and 60 s to start)"),
    (None, "following the run for up to 1800 s (the DAG sets no run timeout)"),
])
def test_by_default_it_follows_as_long_as_airflow_lets_the_run_go_on(capsys, airflow, passwords, timeout, says):
    follow(airflow, "success", timeout=timeout)
    assert says in release(capsys, airflow, passwords).out


def test_a_run_timeout_that_cannot_be_read_is_the_default_the_run_is_followed_all_the_same(capsys, airflow, passwords):
    follow(airflow, "success")
    airflow.answer(("GET", f"{DAG}/details"), 403, {"detail": "Forbidden"})
    ran = release(capsys, airflow, passwords)
    assert ran.code == 0
    assert "following the run for up to 1800 s (the DAG's run timeout is not known: HTTP 403: Forbidden)" in ran.out


def test_a_run_that_outlasts_the_timeout(capsys, airflow, passwords):
    follow(airflow, "running")
    ran = release(capsys, airflow, passwords, "--timeout", "0")
    assert (ran.code, ran.err) == (7, f"deployflow.client: release_shop run {RUN_ID} still running after 0 s (it goes on in Airflow)")
    assert airflow.requests("GET", f"{DAG}/details") == []  # a timeout given is not asked for


@pytest.mark.parametrize(("state", "code"), [("success", 0), ("failed", 1)])
def test_a_run_that_ends_exits_by_its_outcome(capsys, airflow, passwords, state, code):
    follow(airflow, state)
    ran = release(capsys, airflow, passwords)
    assert ran.code == code and f"release_shop {RUN_ID}: {state.upper()}" in ran.out and ran.err == ""


# ---- the end: a table, or JSON ---------------------------------------------------------------------------------------

ENDED = [ti("resolve", "success", 0.4), ti("build", "success", 2.0, "2026-12-06T17:43:03Z"),
         ti("analysis", "skipped", 0.1, "2026-12-06T17:44:00Z"), ti("load", "skipped", 0.1, "2026-12-06T17:44:01Z"),
         ti("promote", "success", 21.5, "2026-12-06T17:44:02Z"), ti("rollback", "skipped", None)]
LIVE = {"environment": "dev", "url": "http://127.0.0.1:18101",
        "sets": {"blue": {"versions": ["3f2a9c1d"], "traffic_percent": 100, "instances": ["a", "b"]}}}


def ended(airflow: FakeAirflow) -> None:
    follow(airflow, "success", tasks=[ENDED])
    xcom(airflow, "resolve", RESOLVED)
    xcom(airflow, "analysis", "blue-green has no canary step to judge", key="skipped")
    xcom(airflow, "load", "analysis.load_rate is 0 in dev: no synthetic traffic", key="skipped")
    xcom(airflow, "promote", {"version": "3f2a9c1d", "watch": {"skipped": "post_promotion is off in dev"}})
    xcom(airflow, "record", LIVE, key="live")


def test_the_end_is_a_table_of_tasks_with_why_steps_were_skipped_the_watch_and_what_is_live(capsys, airflow, passwords):
    ended(airflow)
    ran = release(capsys, airflow, passwords)
    assert ran.code == 0
    assert ran.out[ran.out.index(f"\nrelease_shop {RUN_ID}"):] == f"""
release_shop {RUN_ID}: SUCCESS in 150.0 s (blue-green)
  TASK_ID   STATE    SECONDS
  resolve   success  0.4
  build     success  2.0
  analysis  skipped  0.1
  load      skipped  0.1
  promote   success  21.5
  rollback  skipped  -

skipped:
  TASK_ID   WHY
  analysis  blue-green has no canary step to judge
  load      analysis.load_rate is 0 in dev: no synthetic traffic

post-promotion watch skipped: post_promotion is off in dev

live in dev at http://127.0.0.1:18101:
  blue   3f2a9c1d: 100 % of traffic, 2 instance(s)
"""


def test_with_json_the_end_is_one_document_and_the_progress_goes_to_stderr(capsys, airflow, passwords):
    ended(airflow)
    ran = release(capsys, airflow, passwords, "--json")
    report = json.loads(ran.out)
    assert ran.code == 0 and "resolved: dev with blue-green" in ran.err
    assert report == {
        "dag_id": "release_shop", "run_id": RUN_ID, "state": "success", "seconds": 150.0, "environment": "dev",
        "strategy": "blue-green", "note": "dev · blue-green · main · by admin: CI build 42",
        "tasks": [{"task_id": t["task_id"], "state": t["state"], "seconds": t["duration"], "try_number": t["try_number"]}
                  for t in ENDED],
        "skipped": {"analysis": "blue-green has no canary step to judge",
                    "load": "analysis.load_rate is 0 in dev: no synthetic traffic"},
        "watch": {"skipped": "post_promotion is off in dev"}, "failed": {}, "live": LIVE, "outcome": None,
        "already_live": None,
    }


def test_the_steps_resolve_skipped_say_why_from_resolves_result(capsys, airflow, passwords):
    # Skipped by resolve through the scheduler (airflow/skips.py), analysis and load never ran: no XCom of theirs.
    follow(airflow, "success", tasks=[ENDED])
    xcom(airflow, "resolve", {**RESOLVED, "skipped": {"analysis": "blue-green has no canary step to judge",
                                                      "load": "analysis.load_rate is 0 in dev: no synthetic traffic",
                                                      "approve_deploy": "no approval asked for before deploy in dev"}})
    ran = release(capsys, airflow, passwords, "--json")
    assert json.loads(ran.out)["skipped"] == {"analysis": "blue-green has no canary step to judge",
                                              "load": "analysis.load_rate is 0 in dev: no synthetic traffic"}


def test_a_failed_task_says_why_from_its_log(capsys, airflow, passwords):
    follow(airflow, "failed", tasks=[[ti("resolve", "success"), ti("build", "failed")]])
    airflow.answer(("GET", f"{RUN}/taskInstances/build/logs/1"), 200, {"content": [
        {"event": "Task failed", "error_detail": [{"exc_type": "AirflowFailException", "exc_value": "build: no Dockerfile"}]}]})
    ran = release(capsys, airflow, passwords)
    assert ran.code == 1 and ran.out.endswith("\n  build failed: AirflowFailException: build: no Dockerfile\n")


def test_a_rollback_asks_for_the_earlier_release_and_says_which_it_puts_back(capsys, airflow, passwords):
    follow(airflow, "success", tasks=[[ti("resolve", "success")]])
    xcom(airflow, "resolve", {**RESOLVED, "environment": "prod", "rollback_to": "previous",
                              "artifact": {"short_sha": "0ld0ld0ld0ld", "source": "prod", "run_id": "prod__main__20261205T100000"}})
    ran = run_client(capsys, airflow, passwords, "rollback", "shop", "--environment", "prod", "--reason", "errors after 3f2a9c1")
    trigger = airflow.requests(*TRIGGER)[0].body
    assert trigger["conf"] == {"environment": "prod", "reason": "errors after 3f2a9c1", "rollback_to": "previous"}
    assert trigger["dag_run_id"].startswith("prod__rollback-previous__")
    assert ("  rolling back to 0ld0ld0ld0ld as prod promoted it (run prod__main__20261205T100000): no checkout, build or "
            "tests\n") in ran.out
    assert ran.code == 0


def test_a_release_of_what_is_live_says_so_and_why_nothing_ran(capsys, airflow, passwords):
    why = "3f2a9c1d0e4b is live in dev (run dev__main__20261206T170000) with the same configuration (none): nothing to build, test or deploy"
    follow(airflow, "success", tasks=[[ti("resolve", "success"), ti("build", "skipped", None), ti("record", "success")]])
    xcom(airflow, "resolve", {**RESOLVED, "already_live": why, "artifact": {"short_sha": "3f2a9c1d0e4b", "source": "dev"}})
    xcom(airflow, "record", {"outcome": "already_live"})
    ran = release(capsys, airflow, passwords)
    assert ran.code == 0 and f"  already live: {why}\n" in ran.out
    assert f"\nalready live, nothing ran after resolve (no checkout, build, tests or deploy): {why}" in ran.out
    assert "promoting" not in ran.out


def test_force_goes_into_the_conf_only_when_asked(capsys, airflow, passwords):
    follow(airflow, "success")
    assert release(capsys, airflow, passwords, "--force").code == 0
    assert airflow.requests(*TRIGGER)[0].body["conf"] == {"environment": "dev", "force": True}
