"""Where the e2e stack's notification channels go: a real HTTP receiver (the webhook at ``/events``, the
Slack-compatible one at ``/slack``) and a real SMTP server (aiosmtpd), both on 127.0.0.1, keeping what they got."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.harness import OFFSET  # each e2e stack its own receivers (harness SHARD)

WEBHOOK_PORT, SMTP_PORT, DOWN_PORT = 28190 + OFFSET, 28191 + OFFSET, 28192 + OFFSET  # DOWN_PORT: nothing listens there


def connections() -> dict[str, str]:
    """The channels' Airflow connections, as the stack's environment variables."""
    http = {"conn_type": "http", "host": f"http://127.0.0.1:{WEBHOOK_PORT}"}
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": SMTP_PORT,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "deployflow@example.invalid"}}
    return {
        "AIRFLOW_CONN_DF_WEBHOOK": json.dumps({**http, "schema": "events"}),
        "AIRFLOW_CONN_DF_SLACK": json.dumps({**http, "schema": "slack"}),
        "AIRFLOW_CONN_DF_SMTP": json.dumps(smtp),
        "AIRFLOW_CONN_DF_DOWN": json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{DOWN_PORT}", "schema": "events"}),
    }


CHANNELS = [
    {"kind": "webhook", "connection": "df_webhook"},
    {"kind": "slack", "connection": "df_slack", "events": ["promoted", "rolled_back", "rejected", "failed"]},
    {"kind": "email", "connection": "df_smtp", "to": ["oncall@example.invalid"], "events": ["awaiting_approval", "rolled_back", "failed"]},
    {"kind": "webhook", "connection": "df_down"},  # a receiver that is down
]


class Receivers:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with received.lock:
                    received.posts.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Mailbox:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                message = message_from_bytes(envelope.content, policy=policy.default)
                part = message.get_body(("plain", "html"))
                with received.lock:
                    received.messages.append({"to": list(envelope.rcpt_tos), "subject": str(message["subject"]),
                                              "body": part.get_content() if part else ""})
                return "250 OK"

        self.http = ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
        self.smtp = Controller(Mailbox(), hostname="127.0.0.1", port=SMTP_PORT)

    def __enter__(self) -> Receivers:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.smtp.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()

    def webhook(self, run_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for path, p in self.posts if path == "/events" and p.get("run_id") == run_id]

    def slack(self) -> list[str]:
        with self.lock:
            return [p.get("text", "") for path, p in self.posts if path == "/slack"]

    def mails(self, run_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if run_id in m["body"]]
