"""Guards that run before the judge, each analysis interval: is the canary still there, and getting its share?

A canary that dies after its health checks passed is taken out by the router,
so no request fails and a judge of everything since the start sees only its
early, good requests. So each interval first checks, per track (canary and
its baseline):

- every instance still runs (the platform's view) and is scraped (Prometheus ``up``);
- its requests *in this interval* agree with the share the router gives it:
  on the analysed step canary and baseline weigh the same, so their counts
  must agree within chance (a sample-ratio-mismatch test, two-sided binomial
  at a small alpha); a track with no request while the other has some is a
  mismatch too.

Only a service quiet on both tracks is "no data", for the no-data policy to decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from deployflow.metrics.base import MetricsProvider

SRM_ALPHA = 0.001  # a true 50/50 split trips it once in a thousand intervals


@dataclass(frozen=True)
class TrackView:
    """One track in one interval: its instances as the platform and Prometheus see them, and its requests."""

    track: str
    expected: int  # instances the release runs on this track
    running: int  # of those, running now (the platform's view)
    scraped: int  # targets Prometheus has for the track
    up: int  # of those, answering its scrapes (up == 1)
    requests: int  # requests served in this interval (probes left out)


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    quiet: bool  # no request on either track: the no-data policy decides
    reason: str


def guard(canary: TrackView, control: TrackView, *, share: float = 0.5, alpha: float = SRM_ALPHA) -> GuardVerdict:
    """The interval's guards, cheapest first; the first that fails says which track and by how much.

    :param share: the canary's part of the two tracks' requests the router gives it: 0.5 beside a baseline of
        the same weight; the step's percent beside the whole stable track (no baseline).
    """
    for view in (canary, control):
        if view.running < view.expected:
            return GuardVerdict(False, False, f"{view.track}: {view.running} of {view.expected} instance(s) running (and never restarted)")
        if view.up < max(view.expected, view.scraped):
            return GuardVerdict(False, False, f"{view.track}: {view.up} of {max(view.expected, view.scraped)} instance(s) "
                                              "answering Prometheus' scrapes (up)")
    total = canary.requests + control.requests
    if total == 0:
        return GuardVerdict(True, True, "no request on either track in this interval")
    p = stats.binomtest(canary.requests, total, share).pvalue
    weight = "at equal weight" if share == 0.5 else f"where the router gives the canary {share:.0%}"
    split = f"{canary.track} {canary.requests} vs {control.track} {control.requests} requests in this interval {weight}"
    if min(canary.requests, control.requests) == 0:
        empty = canary if canary.requests == 0 else control
        return GuardVerdict(False, False, f"{empty.track} got no request in this interval: {split}")
    if p < alpha:
        return GuardVerdict(False, False, f"sample ratio mismatch: {split} (binomial p={p:.2g} < {alpha:g})")
    return GuardVerdict(True, False, f"{split} (p={p:.2g})")


def observe(provider: MetricsProvider, *, track: str, selector: str, requests_query: str, start: float, end: float,
            expected: int, running: int) -> TrackView:
    """A track's view from Prometheus: its scrape targets, how many are up, and its requests in [start, end]."""
    window = f"{max(1, round(end - start))}s"
    up = [s.points[-1][1] for s in provider.query_range(f"up{{{selector}}}", end, end, 1.0) if s.points]
    served = provider.query_range(f"sum(increase({requests_query}[{window}]))", end, end, 1.0)
    last = served[0].points[-1][1] if served and served[0].points else math.nan
    requests = 0 if math.isnan(last) else round(last)
    return TrackView(track, expected, running, scraped=len(up), up=sum(1 for v in up if v == 1), requests=requests)
