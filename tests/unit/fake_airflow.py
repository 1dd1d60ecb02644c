"""A fake Airflow REST API on a real socket (127.0.0.1, port 0) for the client's tests: it answers from a table,
keeps every request it was sent, and "unreachable" is a port just closed."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from deployflow.client import cli

PASSWORD = "s3cret-pw"
TOKEN = ("POST", "/auth/token")
NOT_FOUND = (404, "application/json", b'{"detail": "Not Found"}', 0.0)


@dataclass(frozen=True)
class Sent:
    """A request the fake was sent: its method, path, query (each name's values), JSON body and authorization."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None = field(default=None, compare=False)


class FakeAirflow:
    """``answer(route, status, body, then=[(status, body), ...])``: what ``route`` = (method, path) answers, whatever
    the query; with ``then``, each later call answers the next one (the last one again and again)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, str, bytes, float]]] = {}
        self.sent: list[Sent] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                outer.sent.append(Sent(self.command, parts.path, parse_qs(parts.query), json.loads(raw) if raw else None,
                                        self.headers.get("Authorization")))
                queue = outer.answers.get((self.command, parts.path), [NOT_FOUND])
                status, kind, body, delay = queue.pop(0) if len(queue) > 1 else queue[0]
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that stopped waiting (the timeout tests): nothing to tell, and no later test's stderr

            do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, route: tuple[str, str], status: int, body: object, *, kind: str = "application/json",
               delay: float = 0, then: list[tuple[int, object]] | None = None) -> None:
        def raw(value: object) -> bytes:
            return value if isinstance(value, bytes) else b"" if value is None else json.dumps(value).encode()

        self.answers[route] = [(code, kind, raw(b), delay) for code, b in ((status, body), *(then or []))]

    def logs_in(self) -> None:
        self.answer(TOKEN, 201, {"access_token": "jwt"})

    def requests(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if (s.method, s.path) == (method, path)]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Ran:
    """A run of the client: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def run_client(capsys: Any, airflow: FakeAirflow, passwords: Any, *argv: str) -> Ran:
    """``python -m deployflow.client --url <the fake> --password-file <passwords> <argv>``. A failure of the command
    (exit 2 and up) is one line on stderr, its last (with ``--json`` the run's progress comes before it)."""
    code = cli.main(["--url", airflow.url, "--password-file", str(passwords), *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and PASSWORD not in out + err, err
    if code >= 2 and "--json" not in argv:
        assert err.count("\n") == 1, err
    return Ran(code, out, err.strip())
