"""The Releases view's API and pages (deployflow.airflow.releases_view) through FastAPI's TestClient, signed in
by Airflow's own auth manager as the stack runs it (the simple one: real JWTs, checked by Airflow's get_user,
revocation included: tests/airflow_auth.py), over a SQLite ledger of two services in three environments, their
catalog files and a fake of what Airflow's database says of the runs (tests/unit/fakes.py)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from deployflow.airflow.releases_view import URL_PREFIX
from deployflow.airflow.releases_view.app import releases_app
from deployflow.airflow.releases_view.board import Gate, RunStatus
from deployflow.airflow.releases_view.view import Readers
from deployflow.catalog.watching import WatchedCatalog
from deployflow.ledger import Ledger, ReleaseEntry, default_url, engine_for
from deployflow.ledger.locks import EnvironmentLocks
from deployflow.outcomes import Outcome
from tests.airflow_auth import signed_in_airflow
from tests.parse_figures import generate
from tests.unit.fakes import FakeAirflowState

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
A, B = "svc-0000", "svc-0001"
HOLDER, WAITER = "manual__2026-12-06T11:50:00+00:00", "manual__2026-12-06T11:55:00+00:00"
SECRET_REASON = "<script>alert('reason')</script>"


def entry(service: str, environment: str, outcome: Outcome, version: str, finished_at: str, **more) -> ReleaseEntry:
    return ReleaseEntry(
        service=service, environment=environment, strategy={"dev": "rolling", "staging": "canary", "prod": "blue-green"}[environment],
        version=version, commit=version + "0" * 28, image=f"127.0.0.1:5000/{service}:{version}", previous=None,
        requested_by=more.pop("requested_by", "alice"), reason=more.pop("reason", "weekly release"),
        run_id=f"run-{service}-{environment}-{version}", outcome=outcome, started_at=None, finished_at=finished_at,
        seconds=60.0, rollback_seconds=more.pop("rollback_seconds", None), digest=f"sha256:{version * 5}"[:71],
        config="c0ffee00c0de", **more)


RELEASES = [
    entry(A, "dev", Outcome.PROMOTED, "aaaaaaaaaaa1", "2026-12-01T10:00:00+00:00"),
    entry(A, "dev", Outcome.PROMOTED, "aaaaaaaaaaa2", "2026-12-02T10:00:00+00:00", requested_by="bob", failed_requests=0),
    # After the live version: a rollback, which must leave aaaaaaaaaaa2 live.
    entry(A, "dev", Outcome.ROLLED_BACK, "aaaaaaaaaaa3", "2026-12-03T10:00:00+00:00", failure="canary analysis failed",
          rollback_seconds=4.0, failed_requests=3, reason=SECRET_REASON),
    entry(A, "staging", Outcome.PROMOTED, "aaaaaaaaaaa2", "2026-12-02T11:00:00+00:00"),
    entry(A, "prod", Outcome.PROMOTED, "aaaaaaaaaaa2", "2026-12-02T12:00:00+00:00", promoted_from="staging", approved_by="carol"),
    entry(B, "dev", Outcome.PROMOTED, "bbbbbbbbbbb1", "2026-12-04T10:00:00+00:00"),
    entry(B, "staging", Outcome.PROMOTED, "bbbbbbbbbbb1", "2026-12-04T11:00:00+00:00"),
    entry(B, "prod", Outcome.REJECTED, "bbbbbbbbbbb1", "2026-12-05T11:00:00+00:00", approval="rejected"),
]


@pytest.fixture
def tokens(tmp_path):
    with signed_in_airflow(tmp_path) as made:
        yield made


@pytest.fixture
def catalog(tmp_path) -> Path:
    directory = tmp_path / "catalog"
    generate(2, directory)
    return directory


@pytest.fixture
def ledger(tmp_path) -> str:
    url = default_url(tmp_path / "state")
    written = Ledger(url)
    for release in RELEASES:
        written.record(release)
    # B's prod: a release under way holds the lock and waits at its approval gate; another is queued behind it.
    locks = EnvironmentLocks(written.engine, clock=lambda: NOW)
    assert locks.acquire(B, "prod", HOLDER, f"release_{B}", is_stale=lambda holder: False) is None
    assert locks.acquire_in_turn(B, "prod", WAITER, f"release_{B}", "2026-12-06T11:55:00.000000+00:00",
                                 is_stale=lambda holder: False)[0] == "held"
    written.dispose()
    return url


@pytest.fixture
def airflow() -> FakeAirflowState:
    return FakeAirflowState(runs={
        (f"release_{B}", HOLDER): RunStatus("running", (Gate("approve_deploy", "2026-12-06T11:52:00+00:00"),)),
        (f"release_{B}", WAITER): RunStatus("running"),
    })


@pytest.fixture
def client(tokens, catalog, ledger, airflow) -> TestClient:
    readers = Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine_for(ledger, reader=True),
                      airflow=airflow, clock=lambda: NOW)
    return TestClient(releases_app(readers, airflow_base="/airflow"))


def routes(client: TestClient) -> list[tuple[str, str]]:
    """Every route of the app, (method, path), its path parameters filled."""
    filled = {"{service}": A, "{chart}": "lead_time", "{environment}": "prod"}
    return [(method, re.sub(r"\{\w+\}", lambda m: filled[m.group(0)], r.path)) for r in client.app.routes
            if isinstance(r, APIRoute) for method in r.methods]


def test_the_app_has_the_routes_the_docs_name_and_no_docs_or_openapi(client):
    assert sorted(r.path for r in client.app.routes if isinstance(r, APIRoute)) == [
        "/", "/api/freeze", "/api/grid", "/api/services/{service}", "/api/services/{service}/changes",
        "/api/services/{service}/charts/{chart}.png",
        *(f"/api/services/{{service}}/environments/{{environment}}/{h}" for h in ("abort", "approve", "promote", "reject", "rollback")),
        "/api/services/{service}/in-flight", "/api/unfreeze", "/services/{service}", "/services/{service}/changes"]
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code in (401, 404)


def test_every_route_refuses_a_request_without_a_sign_in_and_gives_no_data(client):
    for method, path in routes(client):
        answer = client.request(method, path, json={})
        assert answer.status_code == 401, (path, answer.status_code)
        leaked = [d for d in ("aaaaaaaaaaa2", "bbbbbbbbbbb1", "platform-team", "weekly release", B) if d in answer.text]
        assert leaked == [], (path, leaked)


def test_a_page_without_a_sign_in_says_where_to_sign_in(client):
    answer = client.get("/")
    assert answer.status_code == 401 and "text/html" in answer.headers["content-type"]
    assert 'href="/auth/login?next=' in answer.text


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer " + "e30.e30.e30"])
def test_a_bad_token_is_refused(client, header):
    for method, path in routes(client):
        assert client.request(method, path, headers={"Authorization": header}, json={}).status_code == 403, path


def test_a_revoked_token_is_refused(client, tokens):
    token = tokens.token("admin", "admin")
    assert client.get("/api/grid", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    tokens.revoke(token)
    assert client.get("/api/grid", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_the_ui_s_cookie_signs_in_as_the_header_does(client, tokens):
    client.cookies.set("_token", tokens.token("viewer1", "viewer"))
    answer = client.get("/api/grid")
    assert answer.status_code == 200 and answer.json()["user"] == "viewer1"


def test_the_grid_s_shape(client, tokens):
    grid = client.get("/api/grid", headers=tokens.header("admin", "admin")).json()
    assert set(grid) == {"generated_at", "user", "environments", "services", "problems", "freeze_problem"}
    assert grid["environments"] == ["dev", "staging", "prod"] and grid["problems"] == [] and grid["freeze_problem"] is None
    assert [row["service"] for row in grid["services"]] == [A, B]
    row = grid["services"][0]
    assert set(row) == {"service", "dag_id", "can_act", "in_catalog", "catalog_problem", "owner", "cells"}
    assert row["dag_id"] == f"release_{A}" and row["in_catalog"] and row["owner"] == "platform-team"
    assert [cell["environment"] for cell in row["cells"]] == ["dev", "staging", "prod"]
    dev = row["cells"][0]
    assert set(dev) == {"environment", "in_catalog", "live", "newest", "waits"}
    assert dev["live"] == {
        "version": "aaaaaaaaaaa2", "commit": "aaaaaaaaaaa2" + "0" * 28, "digest": "sha256:" + "aaaaaaaaaaa2" * 5,
        "config": "c0ffee00c0de", "since": "2026-12-02T10:00:00+00:00", "by": "bob", "strategy": "rolling",
        "run_id": f"run-{A}-dev-aaaaaaaaaaa2", "promoted_from": None, "approved_by": None, "reason": "weekly release"}
    assert dev["newest"] == {"outcome": "rolled_back", "detail": None, "failure": "canary analysis failed",
                             "version": "aaaaaaaaaaa3", "finished_at": "2026-12-03T10:00:00+00:00", "by": "alice",
                             "run_id": f"run-{A}-dev-aaaaaaaaaaa3"}
    assert dev["waits"] == {"lock": None, "queued": [], "freeze": None}
    prod = row["cells"][2]
    assert prod["live"]["promoted_from"] == "staging" and prod["live"]["approved_by"] == "carol" and prod["newest"] is None


def test_a_rolled_back_or_rejected_release_leaves_the_live_version(client, tokens):
    rows = {row["service"]: row for row in client.get("/api/grid", headers=tokens.header("admin", "admin")).json()["services"]}
    live = {(s, c["environment"]): (c["live"] or {}).get("version") for s, row in rows.items() for c in row["cells"]}
    assert live == {(A, "dev"): "aaaaaaaaaaa2", (A, "staging"): "aaaaaaaaaaa2", (A, "prod"): "aaaaaaaaaaa2",
                    (B, "dev"): "bbbbbbbbbbb1", (B, "staging"): "bbbbbbbbbbb1", (B, "prod"): None}
    assert rows[B]["cells"][2]["newest"]["outcome"] == "rejected"


def test_what_waits_the_release_holding_the_lock_its_approval_the_queue_and_a_freeze(client, tokens, airflow):
    airflow.freeze = '{"name": "incident-4711", "reason": "db failover", "environments": ["prod"]}'
    rows = client.get("/api/grid", headers=tokens.header("admin", "admin")).json()["services"]
    waits = rows[1]["cells"][2]["waits"]
    assert waits["lock"] == {"run_id": HOLDER, "dag_id": f"release_{B}", "since": NOW.isoformat(), "state": "running",
                             "approvals": [{"task_id": "approve_deploy", "since": "2026-12-06T11:52:00+00:00"}]}
    assert waits["queued"] == [{"run_id": WAITER, "dag_id": f"release_{B}", "queued_at": "2026-12-06T11:55:00.000000+00:00",
                                "state": "running", "approvals": []}]
    assert waits["freeze"]["name"] == "incident-4711" and waits["freeze"]["source"] == "freeze variable"
    assert [c["waits"]["freeze"] for c in rows[0]["cells"][:2]] == [None, None]  # dev and staging are not frozen
    assert airflow.asked[-1] == {(f"release_{B}", HOLDER), (f"release_{B}", WAITER)}


def test_a_freeze_variable_that_cannot_be_read_is_said_and_the_grid_still_answers(client, tokens, airflow):
    airflow.freeze = "{not json"
    grid = client.get("/api/grid", headers=tokens.header("admin", "admin")).json()
    assert grid["freeze_problem"].startswith("deployflow_freeze: is not valid JSON") and len(grid["services"]) == 2


@pytest.mark.parametrize("role, can_act", [("viewer", False), ("user", True), ("op", True), ("admin", True)])
def test_can_act_follows_the_user_s_airflow_role(client, tokens, role, can_act):
    headers = tokens.header(f"a-{role}", role)
    grid = client.get("/api/grid", headers=headers).json()
    assert [row["can_act"] for row in grid["services"]] == [can_act, can_act]
    assert client.get(f"/api/services/{A}", headers=headers).json()["can_act"] is can_act
    assert ("may release" if can_act else "read only") in client.get("/", headers=headers).text


def test_a_user_without_a_role_sees_no_service_and_may_not_read_one(client, tokens):
    headers = tokens.header("nobody", None)
    assert client.get("/api/grid", headers=headers).json()["services"] == []
    assert client.get(f"/api/services/{A}", headers=headers).status_code == 403
    assert client.get(f"/api/services/{A}/charts/lead_time.png", headers=headers).status_code == 403
    assert client.get(f"/services/{A}", headers=headers).status_code == 403


def test_the_service_s_history_a_page_at_a_time(client, tokens):
    headers = tokens.header("v", "viewer")
    page = client.get(f"/api/services/{A}", params={"limit": 2}, headers=headers).json()
    history = page["history"]
    assert (history["total"], history["limit"], history["offset"]) == (5, 2, 0)
    assert [r["finished_at"][:10] for r in history["releases"]] == ["2026-12-03", "2026-12-02"]  # newest first
    older = client.get(f"/api/services/{A}", params={"limit": 2, "offset": 4}, headers=headers).json()["history"]
    assert [r["version"] for r in older["releases"]] == ["aaaaaaaaaaa1"]
    dev = client.get(f"/api/services/{A}", params={"environment": "dev"}, headers=headers).json()["history"]
    assert dev["total"] == 3 and {r["environment"] for r in dev["releases"]} == {"dev"}
    first = history["releases"][0]
    assert (first["outcome"], first["seconds"], first["failed_requests"], first["requested_by"], first["reason"]) == (
        "rolled_back", 60.0, 3, "alice", SECRET_REASON)


def test_the_service_s_figures_per_environment_and_its_setup(client, tokens):
    page = client.get(f"/api/services/{A}", headers=tokens.header("v", "viewer")).json()
    assert page["period"] == {"since": "2026-11-07", "until": "2026-12-06", "days": 30}
    figures = {f["environment"]: f for f in page["figures"]}
    assert (figures["dev"]["releases"], figures["dev"]["promoted"], figures["dev"]["rolled_back"]) == (3, 2, 1)
    assert figures["dev"]["change_failure_rate"] == pytest.approx(1 / 3)
    assert [e["setup"]["strategy"] for e in page["environments"]] == ["rolling", "canary", "blue-green"]
    assert page["environments"][0]["live"]["version"] == "aaaaaaaaaaa2"
    narrow = client.get(f"/api/services/{A}", params={"since": "2026-12-03", "until": "2026-12-03"},
                        headers=tokens.header("v", "viewer")).json()
    assert [(f["environment"], f["releases"]) for f in narrow["figures"]] == [("dev", 1)]


@pytest.mark.parametrize("params, status, says", [
    ({"environment": "qa"}, 400, "'qa' is not valid; valid values are 'dev', 'staging', 'prod'"),
    ({"since": "yesterday"}, 400, "--since 'yesterday' is not an ISO date"),
    ({"limit": 0}, 422, "greater than or equal to 1"),
    ({"limit": 501}, 422, "less than or equal to 500"),
])
def test_a_bad_option_is_refused_naming_it(client, tokens, params, status, says):
    answer = client.get(f"/api/services/{A}", params=params, headers=tokens.header("v", "viewer"))
    assert answer.status_code == status and says in answer.text


def test_a_service_neither_the_catalog_nor_the_ledger_knows_is_404(client, tokens):
    assert client.get("/api/services/nope", headers=tokens.header("v", "viewer")).status_code == 404
    assert client.get("/services/nope", headers=tokens.header("v", "viewer")).status_code == 404


def test_a_chart_is_a_png_of_the_report_s_and_an_unknown_one_404(client, tokens):
    headers = tokens.header("v", "viewer")
    answer = client.get(f"/api/services/{A}/charts/releases_per_day.png", params={"environment": "dev"}, headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png" and answer.content[:4] == b"\x89PNG"
    assert client.get(f"/api/services/{A}/charts/pie.png", headers=headers).status_code == 404


def test_the_page_names_the_report_s_charts():
    from deployflow.airflow.releases_view.app import CHART_NAMES
    from deployflow.ledger.charts import CHARTS

    assert CHART_NAMES == tuple(CHARTS)


def test_the_grid_page_shows_each_live_version_and_links_to_the_runs(client, tokens):
    page = client.get("/", headers=tokens.header("v", "viewer"))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    cell = re.search(rf'data-testid="cell-{A}-dev" data-commit="([0-9a-f]+)"\s+data-version="([0-9a-f]+)"', page.text)
    assert cell and cell.groups() == ("aaaaaaaaaaa2" + "0" * 28, "aaaaaaaaaaa2")
    assert f'href="/airflow/dags/release_{A}/runs/run-{A}-dev-aaaaaaaaaaa2"' in page.text
    assert f'href="http://testserver/services/{A}"' in page.text
    assert "approval waits" in page.text and "1 queued" in page.text


def test_the_service_page_escapes_what_the_ledger_holds(client, tokens):
    page = client.get(f"/services/{A}", headers=tokens.header("v", "viewer")).text
    assert SECRET_REASON not in page and "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in page
    assert f'/api/services/{A}/charts/lead_time.png"' in page


def test_a_bad_catalog_file_is_its_own_service_s_problem_and_is_read_again_once_fixed(client, tokens, catalog):
    good = (catalog / f"{B}.yaml").read_text()
    (catalog / f"{B}.yaml").write_text(good.replace("strategy: canary", "strategy: yolo"))
    grid = client.get("/api/grid", headers=tokens.header("v", "viewer")).json()
    assert [p["service"] for p in grid["problems"]] == [B] and "environments.staging.strategy" in grid["problems"][0]["message"]
    rows = {row["service"]: row for row in grid["services"]}
    assert not rows[B]["in_catalog"] and rows[B]["catalog_problem"] and rows[B]["cells"][0]["live"]["version"] == "bbbbbbbbbbb1"
    assert rows[A]["in_catalog"]
    (catalog / f"{B}.yaml").write_text(good + "\n")  # another size: read again
    assert client.get("/api/grid", headers=tokens.header("v", "viewer")).json()["problems"] == []


def test_a_ledger_that_cannot_be_read_is_503_naming_it(tokens, catalog, tmp_path):
    (tmp_path / "ledger.db").write_bytes(b"not a database, " * 512)
    readers = Readers(catalog=WatchedCatalog(catalog).read, airflow=FakeAirflowState(), clock=lambda: NOW,
                      ledger=lambda: engine_for(default_url(tmp_path), reader=True))
    client = TestClient(releases_app(readers))
    for path in ("/api/grid", f"/api/services/{A}", f"/api/services/{A}/charts/lead_time.png"):
        answer = client.get(path, headers=tokens.header("v", "viewer"))
        assert answer.status_code == 503 and answer.json()["detail"].startswith("the ledger cannot be read: "), path


def test_a_stack_with_no_release_yet_shows_its_catalog(tokens, catalog, tmp_path):
    readers = Readers(catalog=WatchedCatalog(catalog).read, airflow=FakeAirflowState(), clock=lambda: NOW,
                      ledger=lambda: engine_for(default_url(tmp_path), reader=True))
    (tmp_path / "ledger.db").touch()  # there, with no table yet
    grid = TestClient(releases_app(readers)).get("/api/grid", headers=tokens.header("v", "viewer")).json()
    assert [(row["service"], [c["live"] for c in row["cells"]]) for row in grid["services"]] == [
        (A, [None, None, None]), (B, [None, None, None])]


def test_mounted_as_airflow_mounts_it_the_pages_link_under_the_prefix_and_the_api_answers_json(client, tokens):
    root = FastAPI()
    root.mount(URL_PREFIX, client.app)
    mounted = TestClient(root)
    refused = mounted.get(f"{URL_PREFIX}/api/grid")
    assert refused.status_code == 401 and refused.json() == {"detail": "Not authenticated"}
    assert "Sign in to Airflow" in mounted.get(f"{URL_PREFIX}/services/{A}").text
    page = mounted.get(f"{URL_PREFIX}/", headers=tokens.header("v", "viewer")).text
    assert f'href="http://testserver{URL_PREFIX}/services/{A}"' in page
    service = mounted.get(f"{URL_PREFIX}/services/{A}", headers=tokens.header("v", "viewer")).text
    assert f'src="http://testserver{URL_PREFIX}/api/services/{A}/charts/lead_time.png"' in service


def test_a_stack_whose_ledger_file_is_not_made_yet_shows_its_catalog_and_no_chart(tokens, catalog, tmp_path):
    readers = Readers(catalog=WatchedCatalog(catalog).read, airflow=FakeAirflowState(), clock=lambda: NOW,
                      ledger=lambda: engine_for(default_url(tmp_path / "state-not-made"), reader=True))
    client = TestClient(releases_app(readers))
    headers = tokens.header("v", "viewer")
    assert [row["service"] for row in client.get("/api/grid", headers=headers).json()["services"]] == [A, B]
    page = client.get(f"/api/services/{A}", headers=headers).json()
    assert (page["history"]["total"], page["figures"]) == (0, [])
    assert client.get(f"/api/services/{A}/charts/lead_time.png", headers=headers).status_code == 404
    assert not (tmp_path / "state-not-made").exists()  # a reader makes no file
