"""The Releases view's handles (releases_view/handles.py): signed in by Airflow's own auth manager (real JWTs), each
handle calls Airflow's REST API (a fake on a real socket) as the signed-in user with the user's own token; a viewer,
a page of another origin, a form body, an unknown environment are refused before Airflow is asked; what Airflow or
the client refuses comes back with its reason and status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deployflow.airflow.releases_view import handles
from deployflow.airflow.releases_view.app import earlier_commits, releases_app
from deployflow.airflow.releases_view.view import Readers
from deployflow.catalog.watching import WatchedCatalog
from deployflow.ledger import engine_for
from deployflow.governance.freeze import ADHOC_VARIABLE
from tests.unit.fake_airflow import FakeAirflow
from tests.unit.test_releases_view import A, B, HOLDER, NOW, catalog, ledger, tokens  # noqa: F401 - fixtures
from tests.unit.fakes import FakeAirflowState

DAG = f"/api/v2/dags/release_{A}"
RUNS = ("POST", f"{DAG}/dagRuns")


@pytest.fixture
def rest(monkeypatch):
    fake = FakeAirflow()
    fake.start()
    monkeypatch.setattr(handles, "airflow_api_url", lambda: fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def client(tokens, catalog, ledger, rest) -> TestClient:  # noqa: F811 - the fixtures imported above
    readers = Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine_for(ledger, reader=True),
                      airflow=FakeAirflowState(), clock=lambda: NOW)
    return TestClient(releases_app(readers, airflow_base="/airflow"))


def asked(rest: FakeAirflow) -> list[tuple[str, str]]:
    return [(s.method, s.path) for s in rest.sent]


HANDLES = [f"/api/services/{A}/environments/prod/{h}" for h in ("rollback", "abort", "promote", "approve", "reject")] + [
    "/api/freeze", "/api/unfreeze"]


@pytest.mark.parametrize("path", HANDLES)
def test_a_handle_without_a_sign_in_is_401_and_asks_airflow_nothing(client, rest, path):
    assert client.post(path, json={"reason": "x"}).status_code == 401
    assert asked(rest) == []


@pytest.mark.parametrize("path", HANDLES[:5])
def test_a_viewer_may_not_act_and_airflow_is_not_asked(client, tokens, rest, path):  # noqa: F811
    answer = client.post(path, json={"reason": "x"}, headers=tokens.header("vic", "viewer"))
    assert answer.status_code == 403 and "may read but not act" in answer.json()["detail"]
    assert asked(rest) == []


def test_a_rollback_triggers_a_release_with_rollback_to_as_the_user_with_their_own_token(client, tokens, rest):  # noqa: F811
    rest.answer(RUNS, 200, {"dag_run_id": "prod__rollback-previous__20261206T120000", "note": "n"})
    token = tokens.token("alice", "user")
    answer = client.post(f"/api/services/{A}/environments/prod/rollback", json={"reason": "errors since 1a2b"},
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["run_id"] == "prod__rollback-previous__20261206T120000"
    [sent] = rest.requests(*RUNS)
    assert sent.authorization == f"Bearer {token}"
    assert sent.body["conf"] == {"environment": "prod", "rollback_to": "previous", "reason": "errors since 1a2b"}
    assert "alice" in sent.body["note"] and sent.body["dag_run_id"].startswith("prod__rollback-previous__")


def test_the_ui_s_cookie_is_forwarded_as_the_user_s_token(client, tokens, rest):  # noqa: F811
    rest.answer(RUNS, 200, {"dag_run_id": "r1"})
    token = tokens.token("alice", "op")
    client.cookies.set("_token", token)
    assert client.post(f"/api/services/{A}/environments/dev/rollback", json={"to": "ab12cd3"}).status_code == 200
    [sent] = rest.requests(*RUNS)
    assert sent.authorization == f"Bearer {token}" and sent.body["conf"]["rollback_to"] == "ab12cd3"


def test_what_airflow_refuses_comes_back_with_its_status_and_reason(client, tokens, rest):  # noqa: F811
    rest.answer(RUNS, 400, {"detail": "rollback_to: 'zz' does not match '^(previous|[0-9a-f]{7,40})$'"})
    answer = client.post(f"/api/services/{A}/environments/prod/rollback", json={"to": "zz"},
                         headers=tokens.header("alice", "user"))
    assert answer.status_code == 400 and "rollback_to" in answer.json()["detail"]


def test_a_page_of_another_origin_is_refused(client, tokens, rest):  # noqa: F811
    answer = client.post(f"/api/services/{A}/environments/prod/rollback", json={},
                         headers={**tokens.header("alice", "admin"), "Origin": "https://evil.example"})
    assert answer.status_code == 403 and "evil.example" in answer.json()["detail"]
    assert asked(rest) == []


def test_a_form_body_is_refused_it_must_be_json(client, tokens, rest):  # noqa: F811
    answer = client.post(f"/api/services/{A}/environments/prod/rollback", data={"to": "previous"},
                         headers=tokens.header("alice", "admin"))
    assert answer.status_code == 422 and asked(rest) == []


def test_an_unknown_environment_is_400_naming_the_valid_ones(client, tokens, rest):  # noqa: F811
    answer = client.post(f"/api/services/{A}/environments/qa/abort", json={}, headers=tokens.header("alice", "admin"))
    assert answer.status_code == 400 and "'dev', 'staging', 'prod'" in answer.json()["detail"] and asked(rest) == []


def test_an_abort_with_nothing_in_flight_is_409_saying_so(client, tokens, rest):  # noqa: F811
    rest.answer(("GET", f"{DAG}/dagRuns"), 200, {"dag_runs": []})
    answer = client.post(f"/api/services/{A}/environments/staging/abort", json={"reason": "x"},
                         headers=tokens.header("alice", "admin"))
    assert answer.status_code == 409 and "no release of" in answer.json()["detail"]


def test_an_abort_is_recorded_as_the_signed_in_user_whatever_the_body_says(client, tokens, rest):  # noqa: F811
    run = "staging__main__20261206T115000"
    rest.answer(("GET", f"{DAG}/dagRuns"), 200, {"dag_runs": [
        {"dag_run_id": run, "state": "running", "conf": {"environment": "staging"}, "run_after": "2026-12-06T11:50:00Z"}]})
    rest.answer(("GET", f"{DAG}/dagRuns/{run}/taskInstances"), 200, {"task_instances": [
        {"task_id": "analysis", "state": "deferred"}, {"task_id": "rollback", "state": None}]})
    rest.answer(("POST", f"{DAG}/dagRuns/{run}/taskInstances/resolve/xcomEntries"), 201, {})
    rest.answer(("PATCH", f"{DAG}/dagRuns/{run}/taskInstances/analysis"), 200, {})
    answer = client.post(f"/api/services/{A}/environments/staging/abort", json={"reason": "bad canary", "by": "mallory"},
                         headers=tokens.header("alice", "op"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["stopped"] == ["analysis"] and answer.json()["by"] == "alice"
    [xcom] = rest.requests("POST", f"{DAG}/dagRuns/{run}/taskInstances/resolve/xcomEntries")
    assert xcom.body["value"]["by"] == "alice"


def test_the_requester_cannot_approve_their_own_release_from_the_page(client, tokens, rest, monkeypatch):  # noqa: F811
    from deployflow.client import gates

    monkeypatch.setattr(gates, "SETTLE_S", 0.0)
    run = "prod__main__20261206T115000"
    rest.answer(("GET", f"{DAG}/dagRuns/{run}/hitlDetails"), 200, {"hitl_details": []})
    rest.answer(("GET", f"{DAG}/dagRuns/~/hitlDetails"), 200, {"hitl_details": [
        {"created_at": "2026-12-06T11:52:00Z", "task_instance": {"dag_run_id": run, "task_id": "approve_deploy",
                                                                  "state": "awaiting_input"}}]})
    rest.answer(("GET", f"{DAG}/dagRuns/{run}"), 200, {"dag_run_id": run, "conf": {"environment": "prod"},
                                                       "triggering_user_name": "alice"})
    answer = client.post(f"/api/services/{A}/environments/prod/approve", json={"reason": "ok"},
                         headers=tokens.header("alice", "admin"))
    assert answer.status_code == 409 and "someone else must approve" in answer.json()["detail"]
    assert rest.requests("PATCH", f"{DAG}/dagRuns/{run}/taskInstances/approve_deploy/-1/hitlDetails") == []


def test_a_freeze_from_the_grid_sets_the_variable_as_the_user(client, tokens, rest):  # noqa: F811
    rest.answer(("GET", f"/api/v2/variables/{ADHOC_VARIABLE}"), 404, {"detail": "none"})
    rest.answer(("POST", "/api/v2/variables"), 200, {})
    answer = client.post("/api/freeze", json={"reason": "db failover", "environments": ["prod"]},
                         headers=tokens.header("olga", "op"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["environments"] == ["prod"] and answer.json()["reason"] == "db failover"
    [sent] = rest.requests("POST", "/api/v2/variables")
    assert sent.body["key"] == ADHOC_VARIABLE and '"reason": "db failover"' in sent.body["value"]


def test_a_freeze_without_a_reason_is_400_and_nothing_is_written(client, tokens, rest):  # noqa: F811
    answer = client.post("/api/freeze", json={"environments": ["prod"]}, headers=tokens.header("olga", "op"))
    assert answer.status_code == 400 and "reason" in answer.json()["detail"]
    assert [s for s in rest.sent if s.method != "GET"] == []


def test_the_service_page_shows_handles_to_who_may_act_and_says_read_only_to_a_viewer(client, tokens):  # noqa: F811
    acting = client.get(f"/services/{A}", headers=tokens.header("alice", "user")).text
    assert 'data-testid="rollback-prod"' in acting and 'data-testid="read-only"' not in acting
    watching = client.get(f"/services/{A}", headers=tokens.header("vic", "viewer")).text
    assert 'data-testid="read-only"' in watching and "<button" not in watching


def test_the_page_offers_an_abort_and_the_gate_of_a_release_in_flight(tokens, catalog, ledger, rest):  # noqa: F811
    from deployflow.airflow.releases_view.board import Gate, RunStatus

    state = FakeAirflowState(runs={(f"release_{B}", HOLDER): RunStatus("running", (Gate("approve_deploy", None),))})
    readers = Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine_for(ledger, reader=True),
                      airflow=state, clock=lambda: NOW)
    page = TestClient(releases_app(readers)).get(f"/services/{B}", headers=tokens.header("alice", "user")).text
    assert 'data-testid="abort-prod"' in page and f'data-run="{HOLDER}"' in page and 'data-testid="approve-prod"' in page
    assert 'data-testid="abort-dev"' not in page


def test_rollback_choices_are_the_environment_s_earlier_promoted_commits_newest_first_once():
    releases = [{"environment": "prod", "outcome": "promoted", "commit": c} for c in ("c3", "c2", "c2", "c1")] + [
        {"environment": "prod", "outcome": "rolled_back", "commit": "c9"},
        {"environment": "dev", "outcome": "promoted", "commit": "c8"}]
    assert earlier_commits(releases, "prod", "c3") == ["c2", "c1"]
