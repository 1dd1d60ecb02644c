"""Release notifications through Airflow's notifiers, to real receivers on 127.0.0.1 (http.server, aiosmtpd),
the connections in ``AIRFLOW_CONN_<ID>`` (JSON or URI); a receiver down or silent costs one bounded attempt."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.sdk import DAG, BaseOperator

from deployflow.airflow.notifications import (
    TIMEOUT_S,
    BoundedSmtpHook,
    email_body,
    notifier_for,
    notify,
    url_secrets,
    webhook_endpoint,
)
from deployflow.governance.notifications import Channel, ReleaseEvent

BOUND_S = 30  # generous: the point is "bounded", not how fast
ROLLED_BACK = ReleaseEvent(
    event="rolled_back", service="sample-app", environment="prod", version="3f2a1b0c9d8e", previous="1a2b3c4d5e6f",
    strategy="blue-green", run_id="manual__2025-06-01T11:58:00+00:00", requested_by="alice",
    reason="canary analysis failed at interval 2: error_rate 12 % vs 0 %",
    url="http://localhost:8080/dags/release_sample-app/runs/manual__2025-06-01T11:58:00+00:00", at="2025-06-01T12:00:00Z",
)
SUBJECT = ("sample-app 3f2a1b0c9d8e rolled back in prod (blue-green) to 1a2b3c4d5e6f: "
           "canary analysis failed at interval 2: error_rate 12 % vs 0 %")


class Log:
    """The task's log as notify() uses it: what was said, formatted."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(("info", message % args))

    def warning(self, message: str, *args: object) -> None:
        self.lines.append(("warning", message % args))


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records each POST (path, JSON body) and answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, object]] = []
        self.status = 200

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.server.posts.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.send_response(self.server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]


class Mailbox:
    """aiosmtpd's handler: keeps every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    connect(monkeypatch, "smtp_default", f"smtp://127.0.0.1:{controller.port}?disable_ssl=true&disable_tls=true"
            "&from_email=deployflow%40example.com")
    yield box
    controller.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def free_port() -> int:
    """A port nobody listens on: bound, then closed (a receiver that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: str | dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value))


class NotifyingOperator(BaseOperator):
    """A task that tells the channels, as the release's tasks will: from execute, with its context and log."""

    def __init__(self, *, release_event: ReleaseEvent, channels: tuple[Channel, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.release_event, self.channels = release_event, channels

    def execute(self, context) -> list[dict]:
        return notify(self.release_event, self.channels, context, self.log)


def task_context() -> dict:
    dag = DAG("release_sample-app", schedule=None)
    task = NotifyingOperator(task_id="notify", dag=dag, release_event=ROLLED_BACK, channels=())
    return {"dag": dag, "task": task, "run_id": ROLLED_BACK.run_id, "params": {}}


def outcomes(results: list[dict]) -> list[tuple]:
    return [(r["kind"], r["connection"], r["ok"], r["error"]) for r in results]


@pytest.mark.parametrize("form,path", [
    ('{"conn_type": "http", "host": "http://127.0.0.1:PORT/deployflow/events"}', "/deployflow/events"),  # the URL in host
    ("webhook://http://127.0.0.1:PORT/deployflow/events", "/deployflow/events"),  # URI, the host with its scheme
    ("http://127.0.0.1:PORT", "/"),
    ('{"conn_type": "http", "schema": "http", "host": "127.0.0.1", "port": PORT}', "/"),
])
def test_the_webhook_receives_the_event_payload_as_json(form, path, receiver, monkeypatch):
    connect(monkeypatch, "deployflow_webhook", form.replace("PORT", str(receiver.port)))
    log = Log()
    results = notify(ROLLED_BACK, [Channel("webhook", "deployflow_webhook", ("rolled_back", "failed"))], task_context(), log)
    assert receiver.posts == [(path, {
        "schema": "deployflow.release-event/v1", "event": "rolled_back", "service": "sample-app", "environment": "prod",
        "version": "3f2a1b0c9d8e", "previous": "1a2b3c4d5e6f", "strategy": "blue-green",
        "run_id": "manual__2025-06-01T11:58:00+00:00", "requested_by": "alice",
        "reason": "canary analysis failed at interval 2: error_rate 12 % vs 0 %",
        "url": "http://localhost:8080/dags/release_sample-app/runs/manual__2025-06-01T11:58:00+00:00",
        "at": "2025-06-01T12:00:00Z", "text": SUBJECT,
    })]
    assert outcomes(results) == [("webhook", "deployflow_webhook", True, "")]
    assert 0 <= results[0]["seconds"] < BOUND_S
    assert log.lines[0][0] == "info" and log.lines[0][1].startswith("notification webhook deployflow_webhook of rolled_back sent in ")


def test_slack_receives_the_sentence_as_text_escaped_as_slack_asks(receiver, monkeypatch):
    connect(monkeypatch, "slack_releases", {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.port}/services/T0/B0/XXXX"})
    judged = dataclasses.replace(ROLLED_BACK, reason="p99 420 ms > 300 ms & Mann-Whitney p 0.003 < 0.05 <!channel>")
    results = notify(judged, [Channel("slack", "slack_releases")], {}, Log())
    assert receiver.posts == [("/services/T0/B0/XXXX", {"text": (
        "sample-app 3f2a1b0c9d8e rolled back in prod (blue-green) to 1a2b3c4d5e6f: "
        "p99 420 ms &gt; 300 ms &amp; Mann-Whitney p 0.003 &lt; 0.05 &lt;!channel&gt;")})]
    assert results[0]["ok"] is True


def test_a_reason_that_looks_like_a_template_arrives_as_written(receiver, monkeypatch):
    # notifier(context) would render it with Jinja ("{{ 7 * 6 }}" -> "42"); notify() calls notifier.notify(context).
    connect(monkeypatch, "deployflow_webhook", f"http://127.0.0.1:{receiver.port}")
    odd = dataclasses.replace(ROLLED_BACK, reason="check said {{ 7 * 6 }} and {% raw %}")
    assert notify(odd, [Channel("webhook", "deployflow_webhook")], task_context(), Log())[0]["ok"] is True
    assert receiver.posts[0][1]["reason"] == "check said {{ 7 * 6 }} and {% raw %}"


def test_the_email_goes_to_the_channel_list_with_the_sentence_as_subject_and_the_run_url(mailbox):
    channel = Channel("email", "smtp_default", ("awaiting_approval", "rolled_back", "failed"), ("oncall@example.com", "ops@example.com"))
    operator = NotifyingOperator(task_id="notify", release_event=ROLLED_BACK, channels=(channel,))
    results = operator.execute(task_context())
    assert outcomes(results) == [("email", "smtp_default", True, "")]
    [envelope] = mailbox.envelopes
    assert envelope.rcpt_tos == ["oncall@example.com", "ops@example.com"]
    assert envelope.mail_from == "deployflow@example.com"
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == SUBJECT
    assert message["To"] == "oncall@example.com, ops@example.com"
    body = message.get_body(("html", "plain")).get_content()
    assert ROLLED_BACK.url in body and "reason: canary analysis failed at interval 2" in body
    assert body == email_body(ROLLED_BACK)


def test_an_email_subject_with_non_ascii_text_is_sent_encoded(mailbox):
    cut = dataclasses.replace(ROLLED_BACK, reason="latency ≥ 300 ms " * 40)  # cut with '…'
    channel = Channel("email", "smtp_default", to=("oncall@example.com",))
    assert notify(cut, [channel], {}, Log())[0]["ok"] is True
    message = email.message_from_bytes(mailbox.envelopes[0].content, policy=email.policy.default)
    assert message["Subject"] == cut.text() and message["Subject"].endswith("…")


def test_an_event_a_channel_is_not_subscribed_to_sends_nothing(receiver, mailbox, monkeypatch):
    connect(monkeypatch, "deployflow_webhook", f"http://127.0.0.1:{receiver.port}")
    channels = [Channel("webhook", "deployflow_webhook", ("rolled_back", "failed")),
                Channel("email", "smtp_default", ("failed",), ("oncall@example.com",))]
    log = Log()
    assert notify(dataclasses.replace(ROLLED_BACK, event="promoted"), channels, {}, log) == []
    assert receiver.posts == [] and mailbox.envelopes == [] and log.lines == []
    assert [r["kind"] for r in notify(ROLLED_BACK, channels, {}, log)] == ["webhook"]
    assert len(receiver.posts) == 1 and mailbox.envelopes == []


def down_connections(monkeypatch: pytest.MonkeyPatch, port: int) -> list[Channel]:
    connect(monkeypatch, "deployflow_webhook", f"http://127.0.0.1:{port}")
    connect(monkeypatch, "slack_releases", {"conn_type": "http", "host": f"http://127.0.0.1:{port}/services/T0/B0/XXXXSECRET"})
    connect(monkeypatch, "smtp_default", f"smtp://127.0.0.1:{port}?disable_ssl=true&disable_tls=true&from_email=d%40example.com")
    return [Channel("webhook", "deployflow_webhook"), Channel("slack", "slack_releases"),
            Channel("email", "smtp_default", to=("oncall@example.com",))]


def test_a_receiver_that_is_down_or_missing_is_a_warning_and_the_release_goes_on(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    channels = [*down_connections(monkeypatch, free_port()), Channel("webhook", "nowhere")]
    log = Log()
    started = time.monotonic()
    results = notify(ROLLED_BACK, channels, task_context(), log)
    assert time.monotonic() - started < BOUND_S
    assert [(r["kind"], r["ok"]) for r in results] == [("webhook", False), ("slack", False), ("email", False), ("webhook", False)]
    assert "ConnectionRefusedError" in results[2]["error"] and "nowhere" in results[3]["error"]
    warnings = [line for level, line in log.lines if level == "warning"]
    names = ("webhook deployflow_webhook", "slack slack_releases", "email smtp_default", "webhook nowhere")
    assert len(warnings) == len(names)
    for warning, name, result in zip(warnings, names, results):
        assert warning.startswith(f"notification {name} of rolled_back failed after ")
        assert warning.endswith(f": {result['error']}; the release goes on")
    # requests names the URL it could not reach; the Slack token in it stays out of the log
    assert "Max retries exceeded with url: /***" in results[1]["error"] and "XXXXSECRET" not in str(log.lines)


@pytest.mark.timeout(120)  # unbounded, it would hang: fail instead
def test_a_receiver_that_never_answers_costs_one_bounded_attempt(monkeypatch, silent_port):
    channels = down_connections(monkeypatch, silent_port)[::2]  # webhook (read timeout) and e-mail (no greeting)
    started = time.monotonic()
    results = notify(ROLLED_BACK, channels, {}, Log())
    assert time.monotonic() - started < BOUND_S
    assert [(r["kind"], r["ok"]) for r in results] == [("webhook", False), ("email", False)]
    assert "timed out" in results[0]["error"].lower()
    assert all(TIMEOUT_S * 0.5 <= r["seconds"] < BOUND_S for r in results)  # it did wait, then gave up


def test_a_receiver_that_answers_an_error_is_a_failed_notification(receiver, monkeypatch):
    receiver.status = 500
    connect(monkeypatch, "deployflow_webhook", f"http://127.0.0.1:{receiver.port}")
    [result] = notify(ROLLED_BACK, [Channel("webhook", "deployflow_webhook")], {}, Log())
    assert (result["ok"], result["error"]) == (False, "AirflowException: 500:Internal Server Error")
    assert len(receiver.posts) == 1  # one attempt, no retry


@pytest.mark.parametrize("host,schema,endpoint", [
    ("http://127.0.0.1:8080/deployflow/events", "", None),  # HttpHook takes the host whole
    ("https://hooks.example.com", "services/T0/B0/X", "services/T0/B0/X"),  # a URI's path, beside a host with its scheme
    ("127.0.0.1", "https", None),  # schema is the scheme
    (None, None, None),
])
def test_the_endpoint_is_the_uri_path_only_where_httphook_would_drop_it(host, schema, endpoint):
    assert webhook_endpoint(host, schema) == endpoint


@pytest.mark.parametrize("host,endpoint,secrets", [
    ("https://hooks.slack.com/services/T0/B0/XXXX", None, ("services/T0/B0/XXXX",)),
    ("https://hooks.example.com", "services/T0/B0/X", ("services/T0/B0/X",)),
    ("https://hooks.example.com/in?token=abcdef", None, ("token=abcdef",)),  # under 5 characters is no secret (the masker's rule too)
    ("127.0.0.1", None, ()),
])
def test_the_secret_parts_of_a_webhook_url_are_its_path_and_query(host, endpoint, secrets):
    assert url_secrets(host, endpoint) == secrets


@pytest.mark.parametrize("call", ["notify", "__call__"])
def test_the_provider_notifier_works_called_either_way_from_a_task(call, receiver, monkeypatch):
    connect(monkeypatch, "deployflow_webhook", f"http://127.0.0.1:{receiver.port}")
    notifier, _ = notifier_for(Channel("webhook", "deployflow_webhook"), ROLLED_BACK)
    assert isinstance(notifier, HttpNotifier) and notifier.extra_options["timeout"] == (TIMEOUT_S, TIMEOUT_S)
    getattr(notifier, call)(task_context())
    assert receiver.posts == [("/", ROLLED_BACK.payload())]


def test_the_smtp_hook_is_bounded_whatever_the_connection_says(monkeypatch):
    connect(monkeypatch, "slow_smtp", {"conn_type": "smtp", "host": "127.0.0.1", "extra": {"timeout": 60, "retry_limit": 9}})
    hook = BoundedSmtpHook(smtp_conn_id="slow_smtp")
    hook.smtp_connection = hook.get_connection("slow_smtp")
    assert (hook.timeout, hook.smtp_retry_limit) == (TIMEOUT_S, 0)
    notifier, _ = notifier_for(Channel("email", "slow_smtp", to=("oncall@example.com",)), ROLLED_BACK)
    assert isinstance(notifier.hook, BoundedSmtpHook)
