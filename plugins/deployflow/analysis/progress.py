"""Where a canary analysis stands, as data: when the next interval is due and what its result decides.

The sensor keeps nothing else between pokes, so the analysis can stop and go
on elsewhere (a retry, a trigger) from ``to_dict()``. Times are wall-clock
seconds since the epoch, like Prometheus's; nothing here reads a clock.

The rules: an interval is due ``interval_s`` after the previous one (plus
``scrape_lag_s``, so its last scrape is in) and judges everything since the
analysis started. A failing interval fails the analysis at once; ``intervals``
passing ones pass it; a marginal one counts neither way; after twice
``intervals`` judged without enough passes the analysis is inconclusive, which
fails it too. A "nodata" interval (no metric had data) is what the analysis'
``no_data`` policy makes it: "fail" a failing one, "pass" a passing one,
"extend" a marginal one (the analysis waits for data, up to its bound); the
sentences say how many of the intervals had data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from deployflow.errors import one_of
from deployflow.policies import NODATA_POLICIES

RESULTS = ("pass", "marginal", "fail", "nodata")  # what the judge's verdict can say of an interval
AS_RESULT = {"fail": "fail", "pass": "pass", "extend": "marginal"}  # what a nodata interval counts as, by policy


class Outcome(Enum):
    CONTINUE = "continue"
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    """What one judged interval decided, and the sentence the sensor logs or fails with."""

    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class AnalysisProgress:
    """A canary analysis between two intervals.

    :param started: when the analysis began; every window starts there.
    :param interval_s: seconds between two judged intervals.
    :param intervals: passing intervals needed; twice as many may be judged.
    :param scrape_lag_s: how far behind now each window ends, so the last scrape is in.
    :param no_data: the analysis' no-data policy: what a nodata interval counts as.
    :param judged: intervals judged so far.
    :param passed: of those, the passing ones (a nodata one under the "pass" policy included).
    :param nodata: of those, the ones where no metric had data.
    """

    started: float
    interval_s: float
    intervals: int
    scrape_lag_s: float = 0.0
    no_data: str = "fail"
    judged: int = 0
    passed: int = 0
    nodata: int = 0

    def __post_init__(self) -> None:
        for name in ("started", "interval_s", "scrape_lag_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: {value!r} is not a finite number of seconds")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s: {self.interval_s!r} must be > 0")
        if self.scrape_lag_s < 0:
            raise ValueError(f"scrape_lag_s: {self.scrape_lag_s!r} must be >= 0")
        if self.no_data not in NODATA_POLICIES:
            raise ValueError(f"no_data: {one_of(self.no_data, NODATA_POLICIES)}")
        for name in ("intervals", "judged", "passed", "nodata"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: {value!r} is not a whole number")
        if self.intervals < 1:
            raise ValueError(f"intervals: {self.intervals!r} must be >= 1")
        if not 0 <= self.judged <= self.max_intervals:
            raise ValueError(f"judged: {self.judged!r} must be between 0 and {self.max_intervals} (twice intervals)")
        if not 0 <= self.passed <= self.judged:
            raise ValueError(f"passed: {self.passed!r} must be between 0 and judged ({self.judged})")
        if not 0 <= self.nodata <= self.judged:
            raise ValueError(f"nodata: {self.nodata!r} must be between 0 and judged ({self.judged})")

    @property
    def max_intervals(self) -> int:
        """How many intervals may be judged before the analysis is inconclusive."""
        return 2 * self.intervals

    @property
    def number(self) -> int:
        """The number of the next interval to judge, from 1."""
        return self.judged + 1

    def next_due(self) -> float:
        return self.started + self.number * self.interval_s + self.scrape_lag_s

    def due(self, now: float) -> bool:
        return now >= self.next_due()

    def window(self, now: float) -> tuple[float, float]:
        """(start, end) of the interval judged at ``now``: since the analysis began, up to the last scrape."""
        return self.started, now - self.scrape_lag_s

    def advance(self, result: str, reasons: Sequence[str] = ()) -> tuple[Decision, AnalysisProgress]:
        """Count the next interval's ``result`` (with the verdict's ``reasons``); the decision and the new state."""
        if result not in RESULTS:
            raise ValueError(f"result: {one_of(result, RESULTS)}")
        silent = result == "nodata"
        counted = AS_RESULT[self.no_data] if silent else result
        judged = self.judged + 1
        passed = self.passed + (counted == "pass")
        after = replace(self, judged=judged, passed=passed, nodata=self.nodata + silent)
        why = "; ".join(reasons) + (f"; no-data policy {self.no_data!r}" if silent else "")
        had = f"{judged - after.nodata} with data"
        if counted == "fail":
            return Decision(Outcome.FAIL, f"canary analysis failed at interval {judged}: {why}"), after
        if passed >= self.intervals:
            return Decision(Outcome.PASS, f"canary analysis passed: {passed} of {judged} interval(s), {had}"), after
        if judged >= self.max_intervals:
            return Decision(Outcome.FAIL, f"canary analysis inconclusive: {passed} passing of {judged} intervals, {had}; "
                                          f"{why}"), after
        shown = f"nodata, counted as {counted} (no-data policy {self.no_data!r})" if silent else result
        return Decision(Outcome.CONTINUE, f"interval {judged}: {shown}; {passed} passing of {judged} so far, "
                                          f"{self.intervals} needed within {self.max_intervals}"), after

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, safe for JSON (XCom, a trigger's kwargs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisProgress:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a field of the analysis progress; valid fields are {', '.join(names)}")
        missing = [n for n in ("started", "interval_s", "intervals") if n not in data]
        if missing:
            raise ValueError(f"{missing[0]}: missing from the analysis progress")
        return cls(**data)
