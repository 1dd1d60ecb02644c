"""The deployflow.client CLI: every failure is one line on stderr and its documented exit code; a release runs
under a readable id and note.

Airflow is played by a real HTTP server on 127.0.0.1 (tests/unit/fake_airflow.py) answering from a table.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from deployflow.client import cli as client
from tests.unit.fake_airflow import TOKEN, FakeAirflow, closed_port

TRIGGER = ("POST", "/api/v2/dags/release_shop/dagRuns")


def run(capsys, url: str, password_file, *extra: str) -> tuple[int, str]:
    code = client.main(["--url", url, "--password-file", str(password_file), *extra,
                        "release", "shop", "--environment", "dev", "--git-ref", "main"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err  # one line
    assert "s3cret-pw" not in err
    return code, err.strip()


def test_a_password_file_that_is_missing(capsys, airflow, tmp_path):
    assert run(capsys, airflow.url, tmp_path / "nowhere.json") == (
        3, f"deployflow.client: password file {tmp_path / 'nowhere.json'} does not exist (Airflow writes it at first start)")


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "is not JSON"),
    ('{"someone": "else"}', "has no password for user 'admin'"),
    ('["admin"]', "has no password for user 'admin'"),
])
def test_a_password_file_that_is_not_usable(capsys, airflow, tmp_path, content, says):
    path = tmp_path / "passwords.json"
    path.write_text(content)
    assert run(capsys, airflow.url, path) == (3, f"deployflow.client: password file {path} {says}")


def test_a_password_file_that_cannot_be_read(capsys, airflow, tmp_path):
    # A directory: unreadable as a file even for root (a mode of 000 is not, to root).
    assert run(capsys, airflow.url, tmp_path) == (
        3, f"deployflow.client: password file {tmp_path} cannot be read: IsADirectoryError: Is a directory")


@pytest.mark.parametrize(("status", "detail"), [(401, "Invalid credentials"), (403, "Forbidden")])
def test_a_refused_login(capsys, airflow, passwords, status, detail):
    airflow.answer(TOKEN, status, {"detail": detail})
    assert run(capsys, airflow.url, passwords) == (4, f"deployflow.client: HTTP {status}: {detail}")


def test_airflow_unreachable(capsys, passwords):
    port = closed_port()
    assert run(capsys, f"http://127.0.0.1:{port}", passwords) == (
        5, f"deployflow.client: cannot reach Airflow at http://127.0.0.1:{port}: Connection refused")


@pytest.mark.parametrize(("url", "says"), [
    ("127.0.0.1:8080", "--url '127.0.0.1:8080' is not valid; give Airflow's address as http(s)://host:port"),
    ("http://", "--url 'http://' is not valid; give Airflow's address as http(s)://host:port"),
    ("ftp://127.0.0.1", "--url 'ftp://127.0.0.1' is not valid; give Airflow's address as http(s)://host:port"),
    ("http://127.0.0.1:port", "--url 'http://127.0.0.1:port' is not a valid URL: Port could not be cast to integer value as 'port'"),
])
def test_a_malformed_url(capsys, passwords, url, says):
    assert run(capsys, url, passwords) == (2, f"deployflow.client: {says}")


def test_no_answer_in_time(capsys, airflow, passwords):
    airflow.answer(TOKEN, 201, {"access_token": "jwt"}, delay=2)
    assert run(capsys, airflow.url, passwords, "--http-timeout", "0.3") == (
        5, f"deployflow.client: no answer from {airflow.url}/auth/token within 0.3 s")


@pytest.mark.parametrize(("status", "kind", "body", "says"), [
    (200, "text/html", b"<html><body>proxy login</body></html>",
     "POST {url}/auth/token answered HTTP 200 with text/html, not JSON: '<html><body>proxy login</body></html>'"),
    (201, "application/json", b'{"token": "jwt"}', "{url}/auth/token answered without an access_token"),
    (502, "text/html", b"<html>Bad Gateway</html>", "HTTP 502: <html>Bad Gateway</html>"),
])
def test_an_answer_that_is_not_airflows(capsys, airflow, passwords, status, kind, body, says):
    airflow.answer(TOKEN, status, body, kind=kind)
    assert run(capsys, airflow.url, passwords) == (6, "deployflow.client: " + says.format(url=airflow.url))


def test_a_refused_trigger(capsys, airflow, passwords):
    airflow.answer(TOKEN, 201, {"access_token": "jwt"})
    airflow.answer(TRIGGER, 400, {"detail": "Invalid input for param environment: No value passed"})
    assert run(capsys, airflow.url, passwords) == (2, "release refused: Invalid input for param environment: No value passed")


def follow(airflow: FakeAirflow, state: str) -> None:
    airflow.answer(TOKEN, 201, {"access_token": "jwt"})
    airflow.answer(TRIGGER, 200, {"dag_run_id": "manual__1"})
    airflow.answer(("GET", "/api/v2/dags/release_shop/dagRuns/manual__1"), 200, {"state": state})
    airflow.answer(("GET", "/api/v2/dags/release_shop/dagRuns/manual__1/taskInstances"), 200, {"task_instances": []})


def release(airflow: FakeAirflow, passwords, *extra: str) -> int:
    return client.main(["--url", airflow.url, "--password-file", str(passwords), "release", "shop", "--environment", "dev", *extra])


def test_a_run_that_outlasts_the_timeout(capsys, airflow, passwords):
    follow(airflow, "running")
    code = release(airflow, passwords, "--timeout", "0")
    err = capsys.readouterr().err.strip()
    assert (code, err) == (7, "deployflow.client: release_shop run manual__1 still running after 0 s (it goes on in Airflow)")


@pytest.mark.parametrize(("state", "code"), [("success", 0), ("failed", 1)])
def test_a_run_that_ends_exits_by_its_outcome(capsys, airflow, passwords, state, code):
    follow(airflow, state)
    assert release(airflow, passwords) == code
    captured = capsys.readouterr()
    assert f"release_shop manual__1: {state.upper()}" in captured.out and captured.err == ""


RUN = "/api/v2/dags/release_shop/dagRuns/manual__1"


def xcom(airflow: FakeAirflow, task_id: str, value: object, key: str = "return_value") -> None:
    airflow.answer(("GET", f"{RUN}/taskInstances/{task_id}/xcomEntries/{key}"), 200, {"value": value})


def test_a_release_runs_under_a_readable_id_and_note(capsys, airflow, passwords):
    follow(airflow, "success")
    assert release(airflow, passwords, "--git-ref", "feature/login", "--reason", "CI build 42") == 0
    [sent] = airflow.requests(*TRIGGER)
    assert sent.body["conf"] == {"environment": "dev", "git_ref": "feature/login", "reason": "CI build 42"}
    assert sent.body["note"] == "dev · the catalog's strategy · feature/login · by admin: CI build 42"
    stamp = datetime.strptime(sent.body["dag_run_id"].rpartition("__")[2], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    assert sent.body["dag_run_id"].startswith("dev__feature-login__")
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60


def test_a_run_id_taken_in_the_same_second_gets_a_suffix(capsys, airflow, passwords):
    follow(airflow, "success")
    airflow.answer(TRIGGER, 409, {"detail": "Unique constraint violation"}, then=[(200, {"dag_run_id": "manual__1"})])
    assert release(airflow, passwords) == 0
    first, second = (s.body["dag_run_id"] for s in airflow.requests(*TRIGGER))
    assert second == f"{first}.2"


def test_the_note_is_made_exact_once_resolve_and_checkout_tell_more(capsys, airflow, passwords):
    follow(airflow, "success")
    airflow.answer(("GET", f"{RUN}/taskInstances"), 200, {"task_instances": [
        {"task_id": "resolve", "state": "success"}, {"task_id": "checkout", "state": "success"}]})
    xcom(airflow, "resolve", {"environment": "dev", "strategy": "rolling", "git_ref": "main", "requested_by": "admin",
                              "reason": "", "promote_from": "", "freeze_override": ""})
    xcom(airflow, "checkout", {"sha": "3f2a9c1d" * 5, "short_sha": "3f2a9c1d"})
    airflow.answer(("PATCH", RUN), 200, {})
    assert release(airflow, passwords, "--git-ref", "main") == 0
    patched = airflow.requests("PATCH", RUN)
    assert [p.body for p in patched] == [{"note": "dev · rolling · main · by admin"}, {"note": "dev · rolling · main@3f2a9c1d · by admin"}]
    assert patched[0].query == {"update_mask": ["note"]}


def test_a_note_airflow_refuses_leaves_the_release_going(capsys, airflow, passwords):
    follow(airflow, "success")
    airflow.answer(("GET", f"{RUN}/taskInstances"), 200, {"task_instances": [{"task_id": "resolve", "state": "success"}]})
    xcom(airflow, "resolve", {"environment": "dev", "strategy": "rolling", "git_ref": "main"})
    airflow.answer(("PATCH", RUN), 403, {"detail": "Forbidden"})
    assert release(airflow, passwords) == 0
    assert "(the run's note is left as it was: HTTP 403: Forbidden)" in capsys.readouterr().out
