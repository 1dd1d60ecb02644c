"""The interval guards before the judge (deployflow/analysis/guards.py): a dead or unscraped instance, an
empty interval, a split that is not the router's, and a service that is genuinely quiet."""

from __future__ import annotations

import pytest

from deployflow.analysis.guards import TrackView, guard, observe
from deployflow.metrics.base import Series


def view(track: str, requests: int, *, expected: int = 1, running: int = 1, scraped: int = 1, up: int = 1) -> TrackView:
    return TrackView(track, expected, running, scraped, up, requests)


@pytest.mark.parametrize(("canary", "baseline", "ok", "quiet", "says"), [
    (view("canary", 150), view("baseline", 162), True, False, "canary 150 vs baseline 162 requests in this interval"),
    # the canary died after its health checks passed: the platform no longer runs it
    (view("canary", 40, running=0), view("baseline", 150), False, False, "canary: 0 of 1 instance(s) running"),
    # it runs but does not answer Prometheus (hung, or its port gone)
    (view("canary", 40, up=0), view("baseline", 150), False, False, "canary: 0 of 1 instance(s) answering Prometheus' scrapes"),
    (view("canary", 150), view("baseline", 150, expected=2, running=2, scraped=1), False, False, "baseline: 1 of 2 instance(s) answering"),
    # HAProxy took the dead canary out: no request reached it in this interval
    (view("canary", 0), view("baseline", 290), False, False, "canary got no request in this interval: canary 0 vs baseline 290"),
    # the incident of the issue: 354 against 580 at equal weight
    (view("canary", 354), view("baseline", 580), False, False, "sample ratio mismatch: canary 354 vs baseline 580 requests"),
    # a genuinely quiet service: both tracks alive, neither served anything: the no-data policy decides
    (view("canary", 0), view("baseline", 0), True, True, "no request on either track"),
])
def test_each_guard(canary, baseline, ok, quiet, says):
    verdict = guard(canary, baseline)
    assert (verdict.ok, verdict.quiet) == (ok, quiet), verdict.reason
    assert says in verdict.reason


def test_a_fair_split_passes_at_the_guards_alpha_a_thousand_times_in_a_thousand_and_one():
    import random

    rng = random.Random(7)
    tripped = 0
    for _ in range(2000):
        canary = sum(rng.random() < 0.5 for _ in range(300))
        tripped += not guard(view("canary", canary), view("baseline", 300 - canary)).ok
    assert tripped <= 10, f"{tripped} false alarms in 2000 fair intervals (expected about 2)"


class Prometheus:
    """A fake provider: ``up`` and request counts by query; records each query."""

    def __init__(self, up: list[float], requests: float | None) -> None:
        self.up, self.requests, self.queries = up, requests, []

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.queries.append(query)
        if query.startswith("up{"):
            return [Series({"instance": f"i{n}"}, [(end, v)]) for n, v in enumerate(self.up)]
        return [] if self.requests is None else [Series({}, [(end, self.requests)])]

    def is_online(self) -> bool:
        return True


@pytest.mark.parametrize(("up", "requests", "expected"), [
    ([1.0, 1.0], 123.6, TrackView("canary", 2, 2, 2, 2, 124)),
    ([1.0, 0.0], None, TrackView("canary", 2, 2, 2, 1, 0)),
    ([], float("nan"), TrackView("canary", 2, 2, 0, 0, 0)),
])
def test_observe_reads_up_and_the_intervals_requests(up, requests, expected):
    prometheus = Prometheus(up, requests)
    sel = 'service="shop",environment="staging",track="canary"'
    got = observe(prometheus, track="canary", selector=sel, requests_query=f"http_requests_total{{{sel}}}",
                  start=1000.0, end=1010.0, expected=2, running=2)
    assert got == expected
    assert prometheus.queries == [f"up{{{sel}}}", f"sum(increase(http_requests_total{{{sel}}}[10s]))"]
