"""Freeze windows: when a release to an environment must wait (GitLab's deploy freezes).

A catalog window is two crons in a time zone: the freeze starts at each ``start`` and lifts at the next
``end`` (``0 18 * * 5`` to ``0 8 * * 1``: the weekend). It is on at ``now`` when the latest start at or
before ``now`` is later than the latest end at or before it: a start is inclusive, an end exclusive.

The crons are read on the zone's wall clock, so ``0 18 * * 5`` is 18:00 in Paris in summer and in winter.
A start or end in the hour a spring-forward skips takes effect when the clock jumps; one in the hour a
fall-back repeats takes effect the first time the clock shows it.

An ad-hoc freeze (an incident) is the Airflow Variable :data:`ADHOC_VARIABLE`, JSON read by
:func:`parse_adhoc`; it applies to every service, until its ``until`` or until it is deleted.
:func:`frozen` says which freeze, if any, holds an environment now.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from deployflow.errors import ConfigError, one_of, shown
from deployflow.policies import ENVIRONMENTS

ADHOC_VARIABLE = "deployflow_freeze"
ADHOC_FIELDS = ("name", "reason", "until", "environments")
SOURCES = ("window", "freeze variable")
FREEZE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_HINT = "use letters, digits, '-', '_' and '.', at most 64 characters"
CRON_HINT = "five fields: minute hour day-of-month month day-of-week, e.g. '0 18 * * 5'"
_SEARCH_FROM = datetime(2026, 1, 1)


def check_name(value: object, path: str) -> str:
    if not isinstance(value, str) or not FREEZE_NAME.fullmatch(value):
        raise ConfigError(path, f"{shown(value)} is not valid; {NAME_HINT}")
    return value


def check_cron(value: object, path: str) -> str:
    """A five-field cron that fires: seconds, years and ``H`` hashes are refused, and so is ``0 0 30 2 *``."""
    if not isinstance(value, str) or len(value.split()) != 5:
        raise ConfigError(path, f"{shown(value)} is not a valid cron expression ({CRON_HINT})")
    try:
        croniter(value, _SEARCH_FROM).get_next(datetime)
        croniter(value, _SEARCH_FROM).get_prev(datetime)
    except ValueError as exc:  # croniter's errors, the bad-date one too (a day that never comes), in every version
        raise ConfigError(path, f"{shown(value)} is not a valid cron expression ({exc}; {CRON_HINT})") from None
    return value


def check_zone(value: object, path: str) -> ZoneInfo:
    """An IANA time zone; an unknown one is named, with the nearest known names."""
    hint = "use an IANA time zone name such as UTC, Europe/Paris or America/New_York"
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"{shown(value)} is not a time zone; {hint}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(available_timezones()), n=3)
        maybe = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(path, f"{shown(value)} is not a known time zone{maybe}; {hint}") from None


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{now!r} has no time zone: freezes are judged at an aware time")
    return now


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """What the zone's clock shows at ``instant``, as a naive time."""
    # Through UTC: astimezone() to the zone a time already has returns it as it is, even a wall time that never was.
    return instant.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None, fold=0)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The moment the zone's clock first shows ``wall``; in a skipped hour, the moment the clock jumps past it."""
    first = wall.replace(tzinfo=zone, fold=0)
    if _wall(first, zone) == wall:
        return first.astimezone(timezone.utc)
    # In a gap fold=1 reads the wall time with the offset after the jump (an instant before it), fold=0 with the
    # offset before (after it): the jump is between, found to the second (tzdata's transitions are whole seconds).
    low, high = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, timezone.utc), zone) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, timezone.utc)


def last_at_or_before(cron: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The latest moment at or before ``now`` the cron fires on the zone's clock (UTC)."""
    # The clock may have shown later times than now's if it fell back within the day: start past them.
    offset_now, offset_before = now.astimezone(zone).utcoffset(), (now - timedelta(days=1)).astimezone(zone).utcoffset()
    fell_back = max(timedelta(0), offset_before - offset_now)
    fires = croniter(cron, _wall(now, zone) + fell_back + timedelta(minutes=1))
    while True:  # instants grow with wall times (a skipped hour maps to its jump), so the first at or before wins
        at = _instant(fires.get_prev(datetime), zone)
        if at <= now:
            return at


def first_after(cron: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The first moment after ``now`` the cron fires on the zone's clock (UTC)."""
    fires = croniter(cron, _wall(now, zone))
    while True:  # after a fall-back the clock repeats wall times whose first showing is already past
        at = _instant(fires.get_next(datetime), zone)
        if at > now:
            return at


def _when(at: datetime, zone_name: str) -> str:
    """``2026-12-07 08:00 CET (07:00 UTC)``; a UTC time once; seconds only when there are some."""
    clock = "%H:%M:%S" if at.second else "%H:%M"
    local = at.astimezone(ZoneInfo(zone_name))
    utc = at.astimezone(timezone.utc)
    text = local.strftime(f"%Y-%m-%d {clock} %Z")
    if local.utcoffset() == timedelta(0) and local.tzname() == "UTC":
        return text
    same_day = local.date() == utc.date()
    return f"{text} ({utc.strftime(clock if same_day else f'%Y-%m-%d {clock}')} UTC)"


@dataclass(frozen=True)
class Frozen:
    """A freeze holding an environment: which, since and until when (None: not known, not set).

    :param detail: the window's crons and zone, or the variable's reason.
    :param timezone: the zone its times are told in.
    """

    name: str
    started_at: datetime | None
    ends_at: datetime | None
    source: str
    detail: str = ""
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(one_of(self.source, SOURCES))

    def message(self, environment: str) -> str:
        """What a person reads on a refused release."""
        why = f" ({self.detail})" if self.detail else ""
        until = _when(self.ends_at, self.timezone) if self.ends_at else f"the Airflow Variable {ADHOC_VARIABLE} is deleted"
        text = f"{environment} is frozen by {self.source} '{self.name}'{why} until {until}"
        if self.source == "freeze variable" and self.ends_at is not None:
            text += f"; deleting the Airflow Variable {ADHOC_VARIABLE} lifts it sooner"
        return text


@dataclass(frozen=True)
class FreezeWindow:
    """A recurring freeze of one environment: from each ``start`` to the next ``end``, crons in ``timezone``."""

    name: str
    start: str
    end: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_cron(self.start, "start")
        check_cron(self.end, "end")
        check_zone(self.timezone, "timezone")
        if " ".join(self.start.split()) == " ".join(self.end.split()):
            raise ConfigError("end", f"{self.end!r} is the start too: the window would never be on")

    def active_at(self, now: datetime) -> Frozen | None:
        zone = ZoneInfo(self.timezone)
        started = last_at_or_before(self.start, zone, _aware(now))
        if started <= last_at_or_before(self.end, zone, now):  # an end at the very moment of a start wins: off
            return None
        return Frozen(name=self.name, started_at=started.astimezone(zone), ends_at=first_after(self.end, zone, now).astimezone(zone),
                      source="window", detail=f"{self.start} to {self.end}, {self.timezone}", timezone=self.timezone)


@dataclass(frozen=True)
class AdHocFreeze:
    """The freeze variable: every service, in ``environments`` (None: all), until ``until`` (None: its deletion)."""

    name: str
    reason: str = ""
    until: datetime | None = None
    environments: tuple[str, ...] | None = None

    def active_at(self, now: datetime, environment: str) -> Frozen | None:
        if self.until is not None and _aware(now) >= self.until:
            return None
        if self.environments is not None and environment not in self.environments:
            return None
        return Frozen(name=self.name, started_at=None, ends_at=self.until, source="freeze variable", detail=self.reason)


def parse_adhoc(text: str | None, now: datetime) -> AdHocFreeze | None:
    """The freeze variable's JSON; None when there is none, or when its ``until`` is past at ``now`` (a
    forgotten variable freezes nothing). Raises :class:`ConfigError` naming the field (``deployflow_freeze.until``)."""
    if text is None or not text.strip():
        return None
    example = '{"name": "incident-4711", "reason": "...", "until": "2026-12-03T08:00:00Z", "environments": ["prod"]}'
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(ADHOC_VARIABLE, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                                          f"expected e.g. {example}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(ADHOC_VARIABLE, f"must be a JSON object, got {type(raw).__name__}; expected e.g. {example}")
    unknown = sorted(set(raw) - set(ADHOC_FIELDS))
    if unknown:
        raise ConfigError(f"{ADHOC_VARIABLE}.{unknown[0]}", f"unknown field; valid fields are {', '.join(ADHOC_FIELDS)}")
    if raw.get("name") in (None, ""):
        raise ConfigError(f"{ADHOC_VARIABLE}.name", "is required: it names the freeze in every refusal")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise ConfigError(f"{ADHOC_VARIABLE}.reason", f"must be a string, got {reason!r}")
    freeze = AdHocFreeze(name=check_name(raw["name"], f"{ADHOC_VARIABLE}.name"), reason=reason.strip(),
                         until=_until(raw.get("until")), environments=_environments(raw.get("environments")))
    if freeze.until is not None and _aware(now) >= freeze.until:
        return None
    return freeze


def _until(value: Any) -> datetime | None:
    path, hint = f"{ADHOC_VARIABLE}.until", "write an ISO 8601 time with its zone, e.g. 2026-12-03T08:00:00Z or 2026-12-03T09:00:00+01:00"
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(path, f"{shown(value)} is not valid; {hint}")
    try:
        until = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(path, f"{shown(value)} is not an ISO 8601 time; {hint}") from None
    if until.tzinfo is None:
        raise ConfigError(path, f"{shown(value)} has no time zone; {hint}")
    return until.astimezone(timezone.utc)


def _environments(value: Any) -> tuple[str, ...] | None:
    path = f"{ADHOC_VARIABLE}.environments"
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"must be a non-empty list drawn from {', '.join(ENVIRONMENTS)} (omit it to freeze them all)")
    for i, name in enumerate(value):
        if name not in ENVIRONMENTS:
            raise ConfigError(f"{path}[{i}]", f"{name!r} is not valid; valid values are {', '.join(repr(e) for e in ENVIRONMENTS)}")
    return tuple(value)


def frozen(windows: Iterable[FreezeWindow], adhoc: AdHocFreeze | None, environment: str, now: datetime) -> Frozen | None:
    """The freeze holding ``environment`` at ``now``: the freeze variable first, then the windows in their order."""
    if adhoc is not None and (found := adhoc.active_at(now, environment)) is not None:
        return found
    for window in windows:
        if (found := window.active_at(now)) is not None:
            return found
    return None
