"""Health probing of a version's instances: /health, /ready, /live over HTTP.

One probe is one GET; an instance is healthy when every path answers 2xx.
A version is healthy after ``consecutive`` rounds in a row where every
instance is. The session and the clock are passed in, so the rules are
unit-tested without sockets or sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

EXCERPT = 200


class Session(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Probe:
    url: str
    status: int | None
    body: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.error:
            return f"{self.url}: no answer ({self.error})"
        return f"{self.url}: HTTP {self.status} {self.body!r}"


def probe(session: Session, url: str, timeout: float = 2.0) -> Probe:
    try:
        response = session.get(url, timeout=timeout)
    except Exception as exc:  # any transport error is an unhealthy answer, not a crash
        return Probe(url, None, "", f"{type(exc).__name__}: {exc}"[:EXCERPT])
    return Probe(url, response.status_code, response.text[:EXCERPT].strip())


def probe_round(session: Session, base_urls: Sequence[str], paths: Sequence[str], timeout: float = 2.0) -> list[Probe]:
    """One GET per instance and path."""
    return [probe(session, f"{base.rstrip('/')}{path}", timeout) for base in base_urls for path in paths]


@dataclass(frozen=True)
class HealthVerdict:
    healthy: bool
    rounds: int
    seconds: float
    last_failures: tuple[Probe, ...]

    def reason(self) -> str:
        if self.healthy:
            return f"healthy after {self.rounds} rounds in {self.seconds:.1f} s"
        failures = "; ".join(p.describe() for p in self.last_failures[:3])
        return f"not healthy after {self.seconds:.1f} s ({self.rounds} rounds); last failures: {failures}"


@dataclass
class HealthStreak:
    """Counts consecutive all-good rounds; any bad answer starts it again."""

    consecutive: int
    streak: int = 0
    rounds: int = 0
    last_failures: tuple[Probe, ...] = ()

    def record(self, probes: Sequence[Probe]) -> bool:
        self.rounds += 1
        failures = tuple(p for p in probes if not p.ok)
        if failures:
            self.streak = 0
            self.last_failures = failures
        else:
            self.streak += 1
        return self.streak >= self.consecutive


def wait_healthy(
    session: Session,
    base_urls: Sequence[str],
    paths: Sequence[str],
    *,
    consecutive: int,
    interval_s: float,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HealthVerdict:
    """Probe until ``consecutive`` good rounds in a row, or ``timeout_s`` passes."""
    started = clock()
    streak = HealthStreak(consecutive)
    while True:
        if streak.record(probe_round(session, base_urls, paths)):
            return HealthVerdict(True, streak.rounds, clock() - started, ())
        if clock() - started + interval_s > timeout_s:
            return HealthVerdict(False, streak.rounds, clock() - started, streak.last_failures)
        sleep(interval_s)


def watch(
    session: Session,
    base_urls: Sequence[str],
    paths: Sequence[str],
    *,
    seconds: float,
    interval_s: float,
    failures_allowed: int = 1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HealthVerdict:
    """Keep probing live instances for ``seconds``; fail at the first run of bad rounds.

    ``failures_allowed`` bad rounds in a row are tolerated (one slow answer is
    not an outage); one more fails the watch at once.
    """
    started = clock()
    rounds = bad = 0
    while clock() - started < seconds:
        probes = probe_round(session, base_urls, paths)
        rounds += 1
        failures = tuple(p for p in probes if not p.ok)
        bad = bad + 1 if failures else 0
        if bad > failures_allowed:
            return HealthVerdict(False, rounds, clock() - started, failures)
        sleep(interval_s)
    return HealthVerdict(True, rounds, clock() - started, ())
