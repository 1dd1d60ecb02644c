"""The deployflow.client CLI: every failure is one line on stderr and its documented exit code.

Airflow is played by a real HTTP server on 127.0.0.1 (tests/unit/fake_airflow.py) answering from a table.
"""

from __future__ import annotations

import pytest

from deployflow.client import cli as client
from tests.unit.fake_airflow import TOKEN, closed_port, run_client

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


@pytest.mark.parametrize(("route", "body", "argv"), [
    (("GET", "/api/v2/dags/release_shop/dagRuns/~/hitlDetails"), {"details": []}, ("approve", "shop", "--environment", "prod")),
    (("GET", "/api/v2/variables/deployflow_freeze"), {"key": "deployflow_freeze"}, ("unfreeze",)),
    (("POST", "/api/v2/dags/release_shop/dagRuns"), ["not", "a", "run"], ("release", "shop", "--environment", "dev")),
])
def test_an_answer_of_another_shape_is_one_line_and_exit_6(capsys, airflow, passwords, route, body, argv):
    airflow.logs_in()
    airflow.answer(route, 200, body)
    ran = run_client(capsys, airflow, passwords, *argv)
    assert ran.code == 6 and ran.err.startswith("deployflow.client: Airflow's answer is not what its API gives ("), ran.err
