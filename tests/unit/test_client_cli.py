"""The deployflow.client CLI: every failure is one line on stderr and its documented exit code.

Airflow is played by a real HTTP server on 127.0.0.1 (port 0) answering from a table; "unreachable" is
a port just closed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployflow.client import cli as client

TOKEN = ("POST", "/auth/token")
TRIGGER = ("POST", "/api/v2/dags/release_shop/dagRuns")


class Airflow:
    """A fake Airflow API on a real socket: ``answers[(method, path)] = (status, content type, body, delay s)``."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, str, bytes, float]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, kind, body, delay = outer.answers.get((self.command, self.path.split("?")[0]),
                                                              (404, "application/json", b'{"detail": "Not Found"}', 0))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, route: tuple[str, str], status: int, body: object, *, kind: str = "application/json", delay: float = 0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[route] = (status, kind, raw, delay)


@pytest.fixture
def airflow() -> Iterator[Airflow]:
    fake = Airflow()
    threading.Thread(target=fake.server.serve_forever, daemon=True).start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def passwords(tmp_path):
    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({"admin": "s3cret-pw"}))
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def follow(airflow: Airflow, state: str) -> None:
    airflow.answer(TOKEN, 201, {"access_token": "jwt"})
    airflow.answer(TRIGGER, 200, {"dag_run_id": "manual__1"})
    airflow.answer(("GET", "/api/v2/dags/release_shop/dagRuns/manual__1"), 200, {"state": state})
    airflow.answer(("GET", "/api/v2/dags/release_shop/dagRuns/manual__1/taskInstances"), 200, {"task_instances": []})


def release(airflow: Airflow, passwords, *extra: str) -> int:
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
