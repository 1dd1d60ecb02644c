"""The ``notifications`` list of a service or an environment: the channels a release's events go to.

    notifications:
      - {kind: webhook, connection: deployflow_webhook, events: [rolled_back, failed]}
      - {kind: slack, connection: slack_releases}                 # every event
      - {kind: email, connection: smtp_default, to: [oncall@example.com], events: [awaiting_approval, failed]}

``connection`` is an Airflow connection id: the URL of a webhook (an HTTP
connection), or the SMTP server of e-mail; a URL or an address never goes in
the catalog. ``events`` defaults to every event (``deployflow.governance.notifications.EVENTS``);
``to`` is for e-mail only, where it is required.
"""

from __future__ import annotations

from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import CONNECTION_ID
from deployflow.errors import ConfigError, shown
from deployflow.governance.notifications import EVENTS, KINDS, Channel

_FIELDS = ("kind", "connection", "events", "to")


def parse_channels(raw: Any, path: str) -> tuple[Channel, ...]:
    """The channels of a ``notifications`` list at ``path``; missing or ``None`` is none.

    Every refusal names the item's field (``environments.prod.notifications[1].events[0]``) and the valid values.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(path, f"must be a list of channels, each a mapping of {', '.join(_FIELDS)}; got {type(raw).__name__}")
    channels: list[Channel] = []
    for i, item in enumerate(raw):
        channel = _channel(item, f"{path}[{i}]")
        if channel in channels:
            # The same channel twice would send every event twice.
            raise ConfigError(f"{path}[{i}]", f"repeats {path}[{channels.index(channel)}] ({channel.describe()})")
        channels.append(channel)
    return tuple(channels)


def _channel(raw: Any, at: str) -> Channel:
    f = Fields(raw, at, _FIELDS)
    kind = f.choice("kind", KINDS)
    connection = f.string("connection", pattern=CONNECTION_ID,
                          hint="must be an Airflow connection id (letters, digits, '_', '.' and '-')")
    events = _list(f, "events", EVENTS, f"valid values are {', '.join(repr(e) for e in EVENTS)}")
    to = _list(f, "to", (), "a list of e-mail addresses such as [oncall@example.com]")
    try:
        return Channel(kind, connection, events, to)
    except ConfigError as error:  # the channel's own rules, said of this item
        raise ConfigError(f.at(error.path), error.message) from None


def _list(f: Fields, key: str, default: tuple[str, ...], hint: str) -> tuple[str, ...]:
    value = f.get(key)
    if value is None:
        return default
    if not isinstance(value, list):
        raise ConfigError(f.at(key), f"must be a list, got {shown(value)}; {hint}")
    return tuple(value)
