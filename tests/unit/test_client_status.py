"""``python -m deployflow.client status [SERVICE]`` and ``history SERVICE``: the Releases view's JSON (made here by the
view's own board, from a generated catalog and ledger entries) served by the fake Airflow, printed as tables in
100 columns or as the document itself; an unknown service, a missing view, Airflow unreachable; what the ledger
holds of anyone's text never reaches the terminal as an escape sequence."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from deployflow.airflow.releases_view import URL_PREFIX
from deployflow.airflow.releases_view.board import Gate, Moment, RunStatus, Seen, grid, row_of, service_page
from deployflow.catalog.watching import WatchedCatalog
from deployflow.client import cli
from deployflow.client.api import RELEASES_API
from deployflow.client.status import MAX_LIMIT, waits, worth_a_row
from deployflow.governance.freeze import parse_adhoc
from deployflow.ledger import ReleaseEntry
from deployflow.ledger.figures import Period
from deployflow.ledger.live import MAX_PAGE, Cell, LockState, Page
from deployflow.ledger.locks import Holder
from deployflow.outcomes import Outcome
from tests.parse_figures import generate
from tests.unit.fake_airflow import TOKEN, FakeAirflow, closed_port, run_client

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
A, B = "svc-0000", "svc-0001"
GRID = ("GET", f"{RELEASES_API}/grid")
HOLDER, WAITER = "prod__main__20261206T115000", "prod__main__20261206T115500"
HOSTILE = "\x1b[2J\x1b]0;owned\x07fix \x1b[31mred\x1b[0m\u202etxt.exe"  # clears the screen, retitles, colours, flips


def route(service: str) -> tuple[str, str]:
    return ("GET", f"{RELEASES_API}/services/{service}")


def entry(service: str, environment: str, outcome: Outcome, commit: str, finished_at: str, **more) -> ReleaseEntry:
    return ReleaseEntry(
        service=service, environment=environment, strategy={"dev": "rolling", "staging": "canary", "prod": "blue-green"}[environment],
        version=commit[:12], commit=commit + "0" * (40 - len(commit)), image=f"127.0.0.1:5000/{service}:{commit[:12]}",
        previous=None, requested_by=more.pop("requested_by", "alice"), reason=more.pop("reason", "weekly release"),
        run_id=f"{environment}__main__{finished_at[:10]}", outcome=outcome, started_at=None, finished_at=finished_at,
        seconds=more.pop("seconds", 95.0), rollback_seconds=None, digest=f"sha256:{commit[::-1] * 4}"[:71],
        config=more.pop("config", "c0ffee00c0de"), **more)


LIVE = {
    (A, "dev"): entry(A, "dev", Outcome.PROMOTED, "3f2a9c1d4e5f", "2026-12-02T10:00:00+00:00", requested_by="bob"),
    (A, "staging"): entry(A, "staging", Outcome.PROMOTED, "3f2a9c1d4e5f", "2026-12-02T11:00:00+00:00"),
    (A, "prod"): entry(A, "prod", Outcome.PROMOTED, "0a1b2c3d4e5f", "2026-11-30T09:15:00+01:00", requested_by="carol",
                       promoted_from="staging", approved_by="dave"),
    (B, "dev"): entry(B, "dev", Outcome.PROMOTED, "bbbbbbbb1111", "2026-12-04T10:00:00+00:00", requested_by=HOSTILE),
}
NEWEST = {
    (A, "dev"): entry(A, "dev", Outcome.ROLLED_BACK, "77e1d2c3b4a5", "2026-12-03T10:00:00+00:00", failed_requests=3,
                      failure="canary analysis failed: error rate 4.2 % over 1 %", seconds=200.0, reason=HOSTILE),
    (B, "prod"): entry(B, "prod", Outcome.REJECTED, "bbbbbbbb1111", "2026-12-05T11:00:00+00:00", approval="rejected"),
}
LOCKS = LockState({(B, "prod"): Holder(HOLDER, f"release_{B}", "2026-12-06T11:50:00+00:00")},
                  {(B, "prod"): [Holder(WAITER, f"release_{B}", "2026-12-06T11:55:00+00:00")]})
RUNS = {(f"release_{B}", HOLDER): RunStatus("running", (Gate("approve_deploy", "2026-12-06T11:52:00+00:00"),)),
        (f"release_{B}", WAITER): RunStatus("queued")}


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> Seen:
    """What the view reads: two generated services (sample-app's environments), their cells, locks and runs, and a
    freeze of prod."""
    directory = tmp_path_factory.mktemp("catalog")
    generate(2, directory)
    cells = {key: Cell(live=LIVE.get(key), newest=NEWEST.get(key) or LIVE[key]) for key in {*LIVE, *NEWEST}}
    adhoc = parse_adhoc('{"name": "incident-4711", "reason": "db failover", "environments": ["prod"]}', NOW)
    return Seen(WatchedCatalog(directory).read(), cells, LOCKS, RUNS, Moment(NOW, adhoc))


def grid_answer(seen: Seen) -> dict:
    """``GET /deployflow/api/grid`` as the view answers it (view.py: ``ReleasesReading.grid``)."""
    rows = [row_of(name, seen, dag_id=f"release_{name}", can_act=True) for name in (A, B)]
    return json.loads(json.dumps(grid(rows, seen, user="admin", freeze_problem=None)))


def service_answer(seen: Seen, name: str, releases: list[ReleaseEntry], *, total: int, limit: int,
                   environment: str | None = None) -> dict:
    """``GET /deployflow/api/services/<name>`` as the view answers it (view.py: ``ReleasesReading.service``)."""
    row = row_of(name, seen, dag_id=f"release_{name}", can_act=True)
    page = service_page(row, seen.reading.services[name], page=Page(total, limit, 0, releases), environment=environment,
                        period=Period(date(2026, 11, 7), date(2026, 12, 6)), found=[])
    return json.loads(json.dumps({**page, "generated_at": NOW.isoformat(), "user": "admin", "freeze_problem": None}))


def status(capsys, airflow: FakeAirflow, passwords, *args: str):
    return run_client(capsys, airflow, passwords, "status", *args)


def history(capsys, airflow: FakeAirflow, passwords, *args: str):
    return run_client(capsys, airflow, passwords, "history", *args)


def test_the_client_asks_where_the_view_answers_and_for_no_more_than_it_gives():
    assert RELEASES_API == f"{URL_PREFIX}/api" and MAX_LIMIT == MAX_PAGE


def test_status_of_every_service_is_a_table_per_environment(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(GRID, 200, grid_answer(seen))
    ran = status(capsys, airflow, passwords)
    assert ran.code == 0 and ran.err == ""
    assert ran.out == (
        "dev:\n"
        "  SERVICE   VERSION   DIGEST    CONFIG    SINCE (UTC)       BY            STRATEGY  WAITS\n"
        "  svc-0000  3f2a9c1d  f5e4d1c9  c0ffee00  2026-12-02 10:00  bob           rolling   newest rolled_b…\n"
        "  svc-0001  bbbbbbbb  1111bbbb  c0ffee00  2026-12-04 10:00  fix redtxt.…  rolling   -\n"
        "\n"
        "staging:\n"
        "  SERVICE   VERSION   DIGEST    CONFIG    SINCE (UTC)       BY     STRATEGY  WAITS\n"
        "  svc-0000  3f2a9c1d  f5e4d1c9  c0ffee00  2026-12-02 11:00  alice  canary    -\n"
        "  svc-0001  -         -         -         -                 -      -         -\n"
        "\n"
        "prod:\n"
        "  SERVICE   VERSION   DIGEST    CONFIG    SINCE (UTC)       BY     STRATEGY    WAITS\n"
        "  svc-0000  0a1b2c3d  f5e4d3c2  c0ffee00  2026-11-30 08:15  carol  blue-green  frozen: incident-4711\n"
        "  svc-0001  -         -         -         -                 -      -           approval, 1 queued, …\n")
    assert max(len(line) for line in ran.out.splitlines()) == 100
    [asked] = airflow.requests(*GRID)
    assert asked.query == {}


def test_status_of_one_service_is_a_row_per_environment(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(route(B), 200, service_answer(seen, B, [NEWEST[(B, "prod")]], total=2, limit=1))
    ran = status(capsys, airflow, passwords, B)
    assert ran.code == 0
    assert ran.out == (
        "svc-0001 (owner: platform-team):\n"
        "  ENVIRONMENT  VERSION   DIGEST    CONFIG    SINCE (UTC)       BY            STRATEGY  WAITS\n"
        "  dev          bbbbbbbb  1111bbbb  c0ffee00  2026-12-04 10:00  fix redtxt.…  rolling   -\n"
        "  staging      -         -         -         -                 -             -         -\n"
        "  prod         -         -         -         -                 -             -         approval, 1 que…\n")
    [asked] = airflow.requests(*route(B))
    assert asked.query == {"limit": ["1"], "offset": ["0"]}


@pytest.mark.parametrize(("key", "waiting"), [
    ((A, "dev"), "newest rolled_back"),
    ((A, "staging"), ""),
    ((A, "prod"), "frozen: incident-4711"),
    ((B, "prod"), "approval, 1 queued, frozen: incident-4711, newest rejected"),
])
def test_what_waits_the_most_pressing_first(seen, key, waiting):
    [cell] = [c for c in row_of(key[0], seen, dag_id=f"release_{key[0]}", can_act=True)["cells"] if c["environment"] == key[1]]
    assert waits(json.loads(json.dumps(cell))) == waiting


@pytest.mark.parametrize(("lock", "waiting"), [
    ({"state": "running", "approvals": []}, "releasing"),
    ({"state": "queued", "approvals": []}, "releasing (queued)"),
    ({"state": None, "approvals": []}, "releasing (a run Airflow does not know)"),
])
def test_the_release_holding_the_lock(lock, waiting):
    cell = {"environment": "dev", "in_catalog": True, "live": None, "newest": None,
            "waits": {"lock": {"run_id": HOLDER, "dag_id": "release_x", "since": "2026-12-06T11:50:00+00:00", **lock},
                      "queued": [], "freeze": None}}
    assert waits(cell) == waiting


def test_a_cell_outside_the_catalog_says_so_and_is_left_out_of_the_grid_when_it_has_nothing_else():
    cell = {"environment": "prod", "in_catalog": False, "live": None, "newest": None,
            "waits": {"lock": None, "queued": [], "freeze": None}}
    assert waits(cell) == "not in the catalog" and not worth_a_row(cell)
    assert worth_a_row({**cell, "waits": {**cell["waits"], "queued": [{"run_id": WAITER}]}})


def test_status_json_is_the_view_s_document(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(GRID, 200, grid_answer(seen))
    ran = status(capsys, airflow, passwords, "--json")
    assert ran.code == 0 and json.loads(ran.out) == grid_answer(seen)
    assert "\x1b" not in ran.out and "\\u001b" in ran.out  # JSON escapes it: the value is whole, and inert


def test_history_is_a_table_of_the_page_and_says_how_many_there_are(capsys, airflow, passwords, seen):
    releases = [NEWEST[(A, "dev")], LIVE[(A, "dev")]]
    airflow.logs_in()
    airflow.answer(route(A), 200, service_answer(seen, A, releases, total=3, limit=2, environment="dev"))
    ran = history(capsys, airflow, passwords, A, "--environment", "dev", "--limit", "2")
    assert ran.code == 0
    assert ran.out == (
        "WHEN (UTC)        ENV  VERSION   OUTCOME      TOOK     FAILED REQ  WHO    WHY\n"
        "2026-12-03 10:00  dev  77e1d2c3  rolled_back  3.3 min  3           alice  fix redtxt.exe (canary an…\n"
        "2026-12-02 10:00  dev  3f2a9c1d  promoted     1.6 min  -           bob    weekly release\n"
        "1 to 2 of 3 releases of svc-0000 in dev; --limit 3 shows them all\n")
    assert max(len(line) for line in ran.out.splitlines()) == 100
    [asked] = airflow.requests(*route(A))
    assert asked.query == {"limit": ["2"], "offset": ["0"], "environment": ["dev"]}


def test_history_json_is_the_view_s_document(capsys, airflow, passwords, seen):
    document = service_answer(seen, A, [NEWEST[(A, "dev")]], total=5, limit=20)
    airflow.logs_in()
    airflow.answer(route(A), 200, document)
    ran = history(capsys, airflow, passwords, A, "--json")
    assert ran.code == 0 and json.loads(ran.out) == document
    assert json.loads(ran.out)["history"]["releases"][0]["reason"] == HOSTILE


def test_no_release_yet(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(route(B), 200, service_answer(seen, B, [], total=0, limit=20, environment="staging"))
    ran = history(capsys, airflow, passwords, B, "--environment", "staging")
    assert (ran.code, ran.out) == (0, "no release of svc-0001 in staging recorded\n")


@pytest.mark.parametrize("argv", [("status", "svc-000"), ("history", "svc-000")])
def test_an_unknown_service_is_named_with_the_closest_ones_and_exits_2(capsys, airflow, passwords, seen, argv):
    airflow.logs_in()
    airflow.answer(route("svc-000"), 404, {"detail": "no service 'svc-000' in the catalog or the ledger"})
    airflow.answer(GRID, 200, grid_answer(seen))
    ran = run_client(capsys, airflow, passwords, *argv)
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == "deployflow.client: no service 'svc-000' in the catalog or the ledger; did you mean svc-0001, svc-0000?"


def test_an_unknown_service_like_none_known(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(route("payments"), 404, {"detail": "no service 'payments' in the catalog or the ledger"})
    airflow.answer(GRID, 200, grid_answer(seen))
    ran = status(capsys, airflow, passwords, "payments")
    assert (ran.code, ran.err) == (2, "deployflow.client: no service 'payments' in the catalog or the ledger; status "
                                      "lists the services")


@pytest.mark.parametrize("argv", [("status",), ("status", A), ("history", A)])
def test_an_airflow_without_the_releases_view_exits_6(capsys, airflow, passwords, argv):
    airflow.logs_in()  # every other route answers Airflow's own 404
    ran = run_client(capsys, airflow, passwords, *argv)
    assert (ran.code, ran.err) == (6, f"deployflow.client: Airflow at {airflow.url} has no Releases view "
                                      "(/deployflow/api/grid answered HTTP 404): is deployflow's plugin loaded?")


@pytest.mark.parametrize("argv", [("status",), ("status", A), ("history", A)])
def test_airflow_unreachable_exits_5(capsys, passwords, argv):
    port = closed_port()
    code = cli.main(["--url", f"http://127.0.0.1:{port}", "--password-file", str(passwords), *argv])
    err = capsys.readouterr().err
    assert (code, err) == (5, f"deployflow.client: cannot reach Airflow at http://127.0.0.1:{port}: Connection refused\n")


@pytest.mark.parametrize(("status_code", "detail", "code"), [
    (401, "Not authenticated", 4),
    (403, "v may not read the runs of release_svc-0000", 4),
    (503, "the ledger cannot be read: \x1b[31mdatabase is locked\x1b[0m", 6),
])
def test_the_view_refusing_or_failing_is_one_line_and_its_code(capsys, airflow, passwords, status_code, detail, code):
    airflow.logs_in()
    airflow.answer(route(A), status_code, {"detail": detail})
    ran = history(capsys, airflow, passwords, A)
    shown = detail.replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert (ran.code, ran.err) == (code, f"deployflow.client: HTTP {status_code}: {shown}")


def test_a_refused_login_exits_4_before_the_view_is_asked(capsys, airflow, passwords):
    airflow.answer(TOKEN, 401, {"detail": "Invalid credentials"})
    ran = status(capsys, airflow, passwords)
    assert (ran.code, ran.err) == (4, "deployflow.client: HTTP 401: Invalid credentials") and airflow.requests(*GRID) == []


@pytest.mark.parametrize(("args", "says"), [
    (("--environment", "qa"), "--environment: 'qa' is not valid; valid values are 'dev', 'staging', 'prod'"),
    (("--limit", "0"), "--limit: 0 is not valid; give 1 to 500"),
    (("--limit", "501"), "--limit: 501 is not valid; give 1 to 500"),
])
def test_bad_history_options_exit_2_and_ask_nothing(capsys, airflow, passwords, args, says):
    ran = history(capsys, airflow, passwords, A, *args)
    assert (ran.code, ran.err) == (2, f"deployflow.client: {says}") and airflow.sent == []


@pytest.mark.parametrize(("argv", "body"), [
    (("status",), {"environments": ["dev"], "services": [{"service": A, "cells": [{"environment": "dev"}]}]}),
    (("status", A), ["not", "a", "page"]),
    (("history", A), {"service": A, "history": {"releases": [{"outcome": "promoted"}]}}),
])
def test_an_answer_of_another_shape_exits_6(capsys, airflow, passwords, argv, body):
    airflow.logs_in()
    airflow.answer(GRID if argv == ("status",) else route(A), 200, body)
    ran = run_client(capsys, airflow, passwords, *argv)
    assert ran.code == 6 and ran.err.startswith("deployflow.client: Airflow's answer is not what its API gives ("), ran.err


def test_nothing_the_ledger_holds_reaches_the_terminal_as_a_control(capsys, airflow, passwords, seen):
    answer = grid_answer(seen)
    answer["services"][0]["service"] = "svc\x1b[8m-hidden\x9b2J"
    answer["problems"] = [{"service": "bad\x07", "message": "line 3:\nnot\x1b[1A yaml"}]
    answer["freeze_problem"] = "deployflow_freeze: \x1b]8;;http://evil\x1b\\is not valid JSON"
    airflow.logs_in()
    airflow.answer(GRID, 200, answer)
    ran = status(capsys, airflow, passwords)
    assert ran.code == 0
    assert not any(c in ran.out for c in "\x1b\x07\x9b\u202e") and all(c.isprintable() for line in ran.out.splitlines() for c in line)
    assert "  svc-hidden  3f2a9c1d" in ran.out and "  svc-0001    bbbbbbbb  1111bbbb  c0ffee00  2026-12-04 10:00  fix redtxt.…" in ran.out
    assert ran.out.endswith("catalog problem: bad: line 3: not yaml\n"
                            "the freeze Variable cannot be read, and every release is refused: deployflow_freeze: is not "
                            "valid JSON\n")


def test_options_the_view_refuses_exit_2(capsys, airflow, passwords):
    airflow.logs_in()
    airflow.answer(route(A), 400, {"detail": "--since 'yesterday' is not an ISO date"})
    ran = history(capsys, airflow, passwords, A)
    assert (ran.code, ran.err) == (2, "deployflow.client: the Releases view refused the options: --since 'yesterday' is "
                                      "not an ISO date")


def test_a_grid_with_no_service_says_so(capsys, airflow, passwords, seen):
    airflow.logs_in()
    airflow.answer(GRID, 200, {**grid_answer(seen), "services": [], "problems": [{"service": "(catalog)", "message": "gone"}]})
    ran = status(capsys, airflow, passwords)
    assert (ran.code, ran.out) == (0, "no service: the catalog and the ledger name none you may read\n"
                                      "catalog problem: (catalog): gone\n")
