"""Release notifications: who hears of a release, and what they read.

A service (or one of its environments) names channels in its catalog entry:

    notifications:
      - {kind: webhook, connection: deployflow_webhook, events: [rolled_back, failed]}
      - {kind: slack, connection: slack_releases}
      - {kind: email, connection: smtp_default, to: [oncall@example.com], events: [awaiting_approval, failed]}

A :class:`Channel` is one of them: a kind, the Airflow connection that says
where it goes, and the events it is subscribed to (all of them by default).
A :class:`ReleaseEvent` is what happened, said once for every channel: a JSON
payload for a webhook (:meth:`ReleaseEvent.payload`) and one plain sentence for
a chat message or an e-mail subject (:meth:`ReleaseEvent.text`). It carries its
fields and nothing else, so nothing secret can reach a channel through it.

Sending is Airflow's (``deployflow.airflow.notifications``); nothing here
imports airflow, nor the catalog, so the catalog's model may hold channels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from deployflow.errors import ConfigError, one_of
from deployflow.outcomes import Outcome, one_line

EVENTS = ("started", "awaiting_approval", "promoted", "rolled_back", "rejected", "failed", "already_live")
KINDS = ("webhook", "slack", "email")
SCHEMA = "deployflow.release-event/v1"
# No ',' or ';' (the SMTP hook splits on them), no whitespace or newline (a header could be forged with one).
EMAIL_ADDRESS = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+")
MAX_TEXT = 400  # a chat line or a subject, not a log: the payload keeps the whole reason

# What each event reads as, after the service and its version; {strategy} only where how it went out matters.
_VERBS = {
    "started": "started in {environment} ({strategy})",
    "awaiting_approval": "is awaiting approval in {environment}",
    "promoted": "promoted in {environment}",
    "rolled_back": "rolled back in {environment} ({strategy})",
    "rejected": "rejected for {environment}",
    "failed": "failed in {environment} ({strategy})",
    "already_live": "is already live in {environment}: nothing released",
}

# The event each way a release ends is told as: a refusal and both failures are "failed" (a channel that hears
# of failures hears of them all); the ledger and the metrics keep them apart.
OUTCOME_EVENTS = {
    Outcome.PROMOTED: "promoted", Outcome.ROLLED_BACK: "rolled_back", Outcome.REJECTED: "rejected",
    Outcome.REFUSED: "failed", Outcome.FAILED_BEFORE_DEPLOY: "failed", Outcome.FAILED: "failed",
    Outcome.ALREADY_LIVE: "already_live",
}


def event_for(outcome: Outcome) -> str:
    """The event the channels hear of for a release that ended with ``outcome``."""
    return OUTCOME_EVENTS[outcome]


def utc_now() -> str:
    """Now, as :attr:`ReleaseEvent.at` holds it: ``2025-06-01T12:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Channel:
    """Where a release's events go: a webhook, a Slack-compatible incoming webhook, or e-mail.

    :param kind: one of :data:`KINDS`.
    :param connection: the Airflow connection id: the URL of a webhook, the SMTP server of e-mail.
    :param events: the events this channel hears of (a subset of :data:`EVENTS`), all of them by default.
    :param to: the e-mail recipients; required for ``email``, refused for the others.
    """

    kind: str
    connection: str
    events: tuple[str, ...] = EVENTS
    to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError("kind", one_of(self.kind, KINDS))
        if not isinstance(self.connection, str) or not self.connection.strip() or self.connection != self.connection.strip():
            raise ConfigError("connection", f"{self.connection!r} is not valid; must be an Airflow connection id")
        if isinstance(self.events, str) or not isinstance(self.events, Iterable):
            raise ConfigError("events", f"must be a list of events; valid values are {_names(EVENTS)}")
        object.__setattr__(self, "events", tuple(self.events))
        if not self.events:
            raise ConfigError("events", f"must name at least one event (or be left out for all); valid values are {_names(EVENTS)}")
        for i, event in enumerate(self.events):
            if event not in EVENTS:
                raise ConfigError(f"events[{i}]", one_of(event, EVENTS))
            if event in self.events[:i]:
                raise ConfigError(f"events[{i}]", f"{event!r} is already listed at events[{self.events.index(event)}]")
        if isinstance(self.to, str) or not isinstance(self.to, Iterable):
            raise ConfigError("to", "must be a list of e-mail addresses")
        object.__setattr__(self, "to", tuple(self.to))
        if self.kind != "email" and self.to:
            raise ConfigError("to", f"is for e-mail only; a {self.kind} channel sends to its connection")
        if self.kind == "email" and not self.to:
            raise ConfigError("to", "is required for an email channel: a list of e-mail addresses")
        for i, address in enumerate(self.to):
            if not isinstance(address, str) or not EMAIL_ADDRESS.fullmatch(address):
                raise ConfigError(f"to[{i}]", f"{address!r} is not valid; must be one e-mail address such as oncall@example.com")

    def hears(self, event: str) -> bool:
        return event in self.events

    def describe(self) -> str:
        """How logs name the channel: ``webhook deployflow_webhook``."""
        return f"{self.kind} {self.connection}"


@dataclass(frozen=True)
class ReleaseEvent:
    """One thing that happened to a release, as every channel is told it.

    :param event: one of :data:`EVENTS`.
    :param version: the version released (``None`` when the release failed before it had one).
    :param previous: the version live before it, the one a rollback returns to (``None`` on a first release).
    :param reason: why, in plain language: the judge's or the failing check's reason, or the approver's comment.
    :param url: the run in the Airflow UI.
    :param at: when, ISO 8601 in UTC (now, by default).
    """

    event: str
    service: str
    environment: str
    version: str | None
    previous: str | None
    strategy: str
    run_id: str
    requested_by: str
    reason: str = ""
    url: str = ""
    at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ConfigError("event", one_of(self.event, EVENTS))
        for name in ("service", "environment", "strategy", "run_id", "requested_by", "reason", "url"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, f"must be a string, got {getattr(self, name)!r}")
        for name in ("version", "previous"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(name, f"must be a string or None, got {getattr(self, name)!r}")
        if not _is_utc(self.at):
            raise ConfigError("at", f"{self.at!r} is not valid; must be an ISO 8601 time in UTC such as 2025-06-01T12:00:00Z")

    def text(self) -> str:
        """One plain sentence: ``sample-app 3f2a1b0c9d8e rolled back in prod (blue-green) to 1a2b3c4d5e6f: <reason>``."""
        who = f"{self.service} {self.version}" if self.version else self.service
        sentence = f"{who} {_VERBS[self.event].format(environment=self.environment, strategy=self.strategy)}"
        if self.event == "rolled_back" and self.previous:
            sentence += f" to {self.previous}"
        if self.event == "started" and self.requested_by:
            sentence += f", requested by {self.requested_by}"
        if self.reason:
            sentence += f": {self.reason}"
        return one_line(sentence, MAX_TEXT)

    def payload(self) -> dict[str, str | None]:
        """The webhook's JSON: the schema, every field, and :meth:`text`."""
        return {"schema": SCHEMA, **asdict(self), "text": self.text()}

    def details(self) -> str:
        """The fields one per line, for an e-mail's body: the run's URL on the last line."""
        rows = [
            ("service", self.service), ("environment", self.environment), ("event", self.event.replace("_", " ")),
            ("version", self.version or "none"), ("previous", self.previous or "none"), ("strategy", self.strategy),
            ("requested by", self.requested_by), ("reason", self.reason or "-"), ("run", self.run_id), ("at", self.at),
            ("url", self.url or "-"),
        ]
        return "\n".join(f"{name}: {value}" for name, value in rows)


def channels_for(event: str, channels: Iterable[Channel]) -> tuple[Channel, ...]:
    """The channels subscribed to ``event``, in their catalog order; an unknown event is refused, not unheard."""
    if event not in EVENTS:
        raise ConfigError("event", one_of(event, EVENTS))
    return tuple(channel for channel in channels if channel.hears(event))


def _is_utc(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return False
    return moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0


def _names(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)
