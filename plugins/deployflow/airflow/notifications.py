"""Release notifications through Airflow's own notifiers: HTTP (webhook, Slack) and SMTP (e-mail).

:func:`notify` is called from inside a task's ``execute`` with the task's
context. It tells every channel subscribed to the event and never fails or
holds up the release for long: each channel gets one attempt, every socket
operation of it bounded by :data:`TIMEOUT_S` (connecting, then each read), and
any error is a warning in the task log, its result ``ok=False``.

Where a channel goes is its Airflow connection:

- ``webhook`` and ``slack``: an HTTP connection, read by the provider's
  ``HttpHook``. The URL is the connection's ``host`` when it holds a whole URL
  (``{"conn_type": "http", "host": "https://hooks.slack.com/services/T0/B0/XXXX"}``),
  else ``schema://host:port`` (``http://127.0.0.1:8080``, ``schema`` the scheme).
  In URI form the path lands in ``schema``: when ``host`` holds its own scheme
  (``http://https://hooks.example.com/deployflow/events``), that ``schema`` is the
  endpoint deployflow posts to (``http://127.0.0.1:8080/events`` would not do:
  HttpHook reads ``events`` as the scheme). The connection's other extra keys
  are HTTP headers (an ``Authorization`` for a webhook that wants one).
- ``email``: an SMTP connection (``smtp://mail.example.com:465``), read by the
  provider's ``SmtpHook``; its extra ``from_email`` is the sender, ``disable_ssl``
  and ``disable_tls`` as the provider reads them (any non-empty value, "false"
  in a URI too, disables).

A silent receiver costs a channel about two bounds (connect, then read).

The notifiers' ``notify(context)`` is called, not ``notifier(context)``: the
latter renders the payload as a Jinja template, and a reason that holds
``{{`` would be rewritten or fail to send.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Connection
from airflow.sdk.log import mask_secret

from deployflow.governance.notifications import KINDS, Channel, ReleaseEvent, channels_for

if TYPE_CHECKING:
    from airflow.providers.common.compat.notifier import BaseNotifier
    from airflow.sdk import Context

TIMEOUT_S = 5.0


class BoundedSmtpHook(SmtpHook):
    """The provider's SMTP hook with one attempt of at most :data:`TIMEOUT_S` per operation.

    Its defaults (30 s, 5 retries) would let a silent mail server hold a release for minutes.
    """

    @property
    def timeout(self) -> float:
        return min(float(super().timeout), TIMEOUT_S)

    @property
    def smtp_retry_limit(self) -> int:
        return 0


class BoundedSmtpNotifier(SmtpNotifier):
    """``SmtpNotifier`` sending through :class:`BoundedSmtpHook`."""

    @cached_property
    def hook(self) -> SmtpHook:
        return BoundedSmtpHook(smtp_conn_id=self.smtp_conn_id, auth_type=self.auth_type)


def webhook_endpoint(host: str | None, schema: str | None) -> str | None:
    """The path to post to beside the connection's base URL.

    A URI's path is the connection's ``schema``; ``HttpHook`` takes ``schema`` for the URL's scheme unless
    ``host`` carries one, and then ignores it: that is when it is the endpoint.
    """
    if host and "://" in host and schema:
        return schema
    return None


def http_options() -> dict[str, Any]:
    """``HttpHook``'s extra_options: the bound on connecting and on reading (they win over the connection's)."""
    return {"timeout": (TIMEOUT_S, TIMEOUT_S), "check_response": True}


def webhook_notifier(channel: Channel, event: ReleaseEvent, endpoint: str | None) -> HttpNotifier:
    """Posts the event's JSON payload (``ReleaseEvent.payload``) to the channel's connection."""
    return HttpNotifier(http_conn_id=channel.connection, endpoint=endpoint, method="POST",
                        json=event.payload(), extra_options=http_options())


def slack_notifier(channel: Channel, event: ReleaseEvent, endpoint: str | None) -> HttpNotifier:
    """Posts ``{"text": <the event's sentence>}`` to a Slack-compatible incoming webhook."""
    return HttpNotifier(http_conn_id=channel.connection, endpoint=endpoint, method="POST",
                        json={"text": slack_text(event.text())}, extra_options=http_options())


def email_notifier(channel: Channel, event: ReleaseEvent) -> SmtpNotifier:
    """Mails the event's sentence as the subject, its fields and the run's URL as the body, to the channel's list."""
    return BoundedSmtpNotifier(to=list(channel.to), subject=event.text(), html_content=email_body(event),
                               smtp_conn_id=channel.connection)


def slack_text(text: str) -> str:
    # Slack reads '<' '>' '&' as control sequences (<!channel> pings everyone); its docs ask for these escapes.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_body(event: ReleaseEvent) -> str:
    """The fields, one per line, as the HTML part the SMTP notifier sends (escaped: a reason may hold '<')."""
    link = f'<p><a href="{html.escape(event.url)}">{html.escape(event.url)}</a></p>' if event.url else ""
    return f"<p>{html.escape(event.text())}</p><pre>{html.escape(event.details())}</pre>{link}"


def notifier_for(channel: Channel, event: ReleaseEvent) -> tuple[BaseNotifier, tuple[str, ...]]:
    """The provider's notifier for ``channel``, and the parts of its URL that are secret (a Slack token).

    Reads the channel's HTTP connection (for its endpoint); an unknown kind lists the valid ones.
    """
    if channel.kind == "email":
        return email_notifier(channel, event), ()
    if channel.kind not in ("webhook", "slack"):
        raise ValueError(f"notification kind {channel.kind!r} is not valid; valid values are {', '.join(KINDS)}")
    conn = Connection.get(channel.connection)
    endpoint = webhook_endpoint(conn.host, conn.schema)
    build = webhook_notifier if channel.kind == "webhook" else slack_notifier
    return build(channel, event, endpoint), url_secrets(conn.host, endpoint)


def url_secrets(host: str | None, endpoint: str | None) -> tuple[str, ...]:
    """What of a webhook's URL to keep out of logs: its path and query, where a token lives."""
    parts = [endpoint or ""]
    if host and "://" in host:
        split = urlsplit(host)
        parts += [split.path, split.query]
    return tuple(p for p in (p.strip("/") for p in parts) if len(p) >= 5)


def notify(event: ReleaseEvent, channels: Iterable[Channel], context: Context | dict[str, Any],
           log: logging.Logger) -> list[dict[str, Any]]:
    """Tell every channel subscribed to ``event``; never raises.

    :param context: the task's context, given to each notifier.
    :param log: where each channel's outcome is logged (the task's ``self.log``).
    :return: one ``{kind, connection, ok, seconds, error}`` per channel told, ``error`` "" when sent.
    """
    results = []
    for channel in channels_for(event.event, channels):
        started = time.monotonic()
        secrets: tuple[str, ...] = ()
        try:
            notifier, secrets = notifier_for(channel, event)
            for secret in secrets:
                mask_secret(secret)
            notifier.notify(context)
        except Exception as exc:  # noqa: BLE001 - a notification never fails a release
            seconds = time.monotonic() - started
            error = redact(f"{type(exc).__name__}: {exc}", secrets)
            log.warning("notification %s of %s failed after %.2f s: %s; the release goes on",
                        channel.describe(), event.event, seconds, error)
            results.append(_result(channel, False, seconds, error))
        else:
            seconds = time.monotonic() - started
            log.info("notification %s of %s sent in %.2f s", channel.describe(), event.event, seconds)
            results.append(_result(channel, True, seconds, ""))
    return results


def redact(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return " ".join(message.split())[:500]


def _result(channel: Channel, ok: bool, seconds: float, error: str) -> dict[str, Any]:
    return {"kind": channel.kind, "connection": channel.connection, "ok": ok, "seconds": round(seconds, 3), "error": error}
