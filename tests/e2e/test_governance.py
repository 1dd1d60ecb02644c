"""Release governance end to end, on ``gov-app`` (tests/scenarios.py ``write_governed``): prod requires staging
and waits for an approval by admin or the approver; dev is in a freeze window; every release is told to a webhook,
a Slack-compatible webhook and an e-mail address, and to a webhook that is down. admin triggers every run, so it
may never answer their gates: the approver does (fixture ``approver``).

The tests run in order and build on each other (what staging promoted, prod then takes).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from deployflow.client import AirflowClient, ApiError
from deployflow.ledger import Ledger, ReleaseEntry, default_url
from tests.browser.scheduler_log import scheduler_log, wait_for_parked_exit
from tests.e2e.harness import APPROVER, GOV_DAG, GOV_PORTS, log_text, short_sha

pytestmark = pytest.mark.timeout(1200)
GATE = "approve_deploy"


def trigger(airflow: AirflowClient, environment: str, **conf: str) -> str:
    return airflow.trigger(GOV_DAG, {"environment": environment, **conf})["dag_run_id"]


def finished(airflow: AirflowClient, run_id: str) -> dict:
    run = airflow.wait(GOV_DAG, run_id, timeout=900)
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(GOV_DAG, run_id)}
    return {"run_id": run_id, "state": run["state"], "tasks": {t: ti["state"] for t, ti in tis.items()}, "tis": tis}


def awaiting(airflow: AirflowClient, home: Path, run_id: str, task_id: str = GATE, timeout: float = 600, *,
             parks: int = 1) -> dict:
    """Wait until the gate asks for an answer (for the ``parks``-th time: it asks again after an answer it refused)
    and may be answered (tests/browser/scheduler_log.py: Airflow 3.3.2 fails a gate answered within seconds of
    parking); its request (subject, body, options) as Airflow keeps it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = {ti["task_id"]: ti for ti in airflow.task_instances(GOV_DAG, run_id)}
        if tis.get(task_id, {}).get("state") == "awaiting_input":
            wait_for_parked_exit(scheduler_log(home), GOV_DAG, run_id, task_id, tis[task_id]["try_number"], parks=parks)
            return airflow.approval(GOV_DAG, run_id, task_id)
        states = {t: ti["state"] for t, ti in tis.items()}
        assert airflow.dag_run(GOV_DAG, run_id)["state"] in ("queued", "running"), (run_id, states)
        time.sleep(1)
    raise AssertionError(f"{task_id} of {run_id} never waited for an answer")


def ledger_row(state: Path, run_id: str) -> ReleaseEntry:
    [entry] = [e for e in Ledger(default_url(state)).entries(service="gov-app") if e.run_id == run_id]
    return entry


def served(environment: str) -> str:
    return requests.get(f"http://127.0.0.1:{GOV_PORTS[environment]}/", timeout=5).json()["version"][:12]


def test_prod_refuses_a_version_staging_never_promoted(airflow):
    done = finished(airflow, trigger(airflow, "prod"))
    assert done["state"] == "failed" and done["tasks"]["resolve"] == "failed"
    assert done["tasks"]["build"] in ("upstream_failed", None)
    text = log_text(airflow, done["run_id"], "resolve", dag_id=GOV_DAG)
    assert "params.promote_from: staging has never promoted any release of gov-app" in text


def test_prod_takes_the_digest_staging_promoted_after_an_approval_through_the_rest_api(airflow, approver, airflow_home, sample_repo,
                                                                                       stack_state, notified):
    staged = finished(airflow, trigger(airflow, "staging", git_ref="main"))
    assert staged["state"] == "success", staged["tasks"]
    # gov-app runs all three suites (sample-app's e2e catalog leaves the integration suite out: harness SUITES)
    assert {t: staged["tasks"][t] for t in ("test.unit", "test.integration", "test.performance")} == dict.fromkeys(
        ("test.unit", "test.integration", "test.performance"), "success")
    built = airflow.xcom(GOV_DAG, staged["run_id"], "build")
    run_id = trigger(airflow, "prod", reason="take what staging proved")
    asked = awaiting(airflow, airflow_home, run_id)
    sha = short_sha(sample_repo, "main")
    # What the approver sees: the version, where it comes from, the commits since the live version, the tests.
    assert sha in asked["subject"] and "prod" in asked["subject"]
    for part in (f"`{sha}`", "Promoted from staging", "Commits since the live version", "**Tests**", "unit: passed",
                 "prod asks for an approval before it deploys", "No answer within"):
        assert part in asked["body"], (part, asked["body"])
    # admin is an approver, but triggered the run: Airflow is told only the others, and refuses admin's answer.
    assert [u["id"] for u in asked["assigned_users"]] == [APPROVER]
    with pytest.raises(ApiError) as refused:
        airflow.answer(GOV_DAG, run_id, GATE, "Approve", comment="my own release")
    assert refused.value.status == 403
    answered = datetime.now(timezone.utc)
    approver.answer(GOV_DAG, run_id, GATE, "Approve", comment="looks good")
    done = finished(airflow, run_id)
    prepared = datetime.fromisoformat(done["tis"]["prepare"]["start_date"].replace("Z", "+00:00"))
    print(f"gate: the answer to prepare's start took {(prepared - answered).total_seconds():.1f} s; "
          f"the gate's try after the answer {done['tis'][GATE]['duration']:.1f} s")
    assert done["state"] == "success", done["tasks"]
    # Not rebuilt, not retested: the artifact staging promoted, by digest.
    assert {done["tasks"][t] for t in ("build", "test.unit")} == {"skipped"}
    assert served("prod") == served("staging") == sha
    entry = ledger_row(stack_state, run_id)
    assert (entry.digest, entry.commit[:12], entry.promoted_from) == (built["digest"], sha, "staging")
    assert (entry.approval, entry.approved_by, entry.outcome) == ("approved", APPROVER, "promoted")
    assert [(a["by"], a["counted"]) for a in entry.approval_answers] == [(APPROVER, "approved")]
    assert entry.tests and entry.tests["unit"]["ok"] is True
    # A channel that is down changed nothing: the release promoted, and the record says the channel failed.
    record = log_text(airflow, run_id, "record", dag_id=GOV_DAG)
    assert "df_down" in record and "the release goes on" in record
    assert [e["event"] for e in notified.webhook(run_id)] == ["started", "awaiting_approval", "promoted"]


def test_prod_refuses_a_commit_staging_never_promoted(airflow, sample_repo):
    other = short_sha(sample_repo, "slow")
    done = finished(airflow, trigger(airflow, "prod", git_ref=other))
    assert done["state"] == "failed" and done["tasks"]["resolve"] == "failed"
    text = log_text(airflow, done["run_id"], "resolve", dag_id=GOV_DAG)
    assert f"staging has never promoted commit {other}" in text


def test_a_rejected_release_leaves_prod_unchanged_and_names_who_rejected(airflow, approver, airflow_home, stack_state):
    before = served("prod")
    run_id = trigger(airflow, "prod")
    awaiting(airflow, airflow_home, run_id)
    approver.answer(GOV_DAG, run_id, GATE, "Reject", comment="not during the incident")
    done = finished(airflow, run_id)
    assert done["state"] == "failed" and done["tasks"][GATE] == "failed"
    assert done["tasks"]["prepare"] == "upstream_failed"
    assert served("prod") == before
    entry = ledger_row(stack_state, run_id)
    assert (entry.outcome, entry.approval, entry.approved_by) == ("rejected", "rejected", APPROVER)
    assert f"rejected before deploy by {APPROVER}" in entry.failure and "not during the incident" in entry.failure


def test_an_unanswered_gate_times_out_and_rejects(airflow, airflow_home, stack_state):
    before = served("prod")
    run_id = trigger(airflow, "prod")
    awaiting(airflow, airflow_home, run_id)
    done = finished(airflow, run_id)  # nobody answers
    assert done["state"] == "failed" and done["tasks"]["prepare"] == "upstream_failed"
    assert served("prod") == before
    entry = ledger_row(stack_state, run_id)
    assert (entry.outcome, entry.approval, entry.approved_by) == ("rejected", "timed out", None)


def test_a_frozen_environment_refuses_a_release_naming_the_window_and_an_approved_override_goes_through(airflow, approver, airflow_home,
                                                                                                         stack_state):
    refused = finished(airflow, trigger(airflow, "dev", git_ref="main"))
    assert refused["state"] == "failed" and refused["tasks"]["resolve"] == "failed"
    text = log_text(airflow, refused["run_id"], "resolve", dag_id=GOV_DAG)
    assert "dev is frozen by window 'e2e-window'" in text and "until" in text
    assert ledger_row(stack_state, refused["run_id"]).outcome == "refused"

    run_id = trigger(airflow, "dev", git_ref="main", freeze_override="hotfix for the checkout outage")
    asked = awaiting(airflow, airflow_home, run_id)
    assert "the freeze is overridden" in asked["body"] and "hotfix for the checkout outage" in asked["body"]
    # dev names no approvers: Airflow lets anyone answer, admin too; the gate refuses its own requester and asks again.
    assert not asked["assigned_users"]
    airflow.answer(GOV_DAG, run_id, GATE, "Approve", comment="my own hotfix")
    again = awaiting(airflow, airflow_home, run_id, parks=2)
    assert not again["response_received"]
    assert "admin triggered the run and may not answer its approval" in log_text(airflow, run_id, GATE, dag_id=GOV_DAG)
    approver.answer(GOV_DAG, run_id, GATE, "Approve")
    done = finished(airflow, run_id)
    assert done["state"] == "success", done["tasks"]
    entry = ledger_row(stack_state, run_id)
    assert (entry.freeze_override, entry.approval, entry.approved_by) == ("hotfix for the checkout outage", "approved", APPROVER)
    assert [(a["by"], a["counted"]) for a in entry.approval_answers] == [("admin", "refused"), (APPROVER, "approved")]


def test_an_adhoc_freeze_of_every_service_refuses_naming_it(airflow):
    airflow._call("POST", "/api/v2/variables", json={
        "key": "deployflow_freeze", "value": '{"name": "incident-4711", "reason": "database failover", "environments": ["staging"]}'})
    try:
        done = finished(airflow, trigger(airflow, "staging", git_ref="main"))
    finally:
        airflow._call("DELETE", "/api/v2/variables/deployflow_freeze")
    assert done["state"] == "failed" and done["tasks"]["resolve"] == "failed"
    text = log_text(airflow, done["run_id"], "resolve", dag_id=GOV_DAG)
    assert "incident-4711" in text


def test_a_rollback_is_told_once_with_its_reason_by_webhook_and_email(airflow, stack_state, notified):
    done = finished(airflow, trigger(airflow, "staging", git_ref="ready-never"))
    assert done["state"] == "failed" and done["tasks"]["rollback"] == "success"
    entry = ledger_row(stack_state, done["run_id"])
    assert entry.outcome == "rolled_back"
    told = [e for e in notified.webhook(done["run_id"]) if e["event"] == "rolled_back"]
    assert len(told) == 1 and told[0]["reason"] == entry.failure and told[0]["reason"]
    assert told[0]["version"] == entry.version and told[0]["url"].endswith(quote(done["run_id"]))
    [mail] = [m for m in notified.mails(done["run_id"]) if "rolled back" in m["subject"]]
    assert mail["to"] == ["oncall@example.invalid"] and entry.failure[:40] in mail["body"]
    assert any(f"{entry.version} rolled back in staging" in text for text in notified.slack())
