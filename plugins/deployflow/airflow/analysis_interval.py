"""One canary analysis interval, the same in a poking sensor and in the triggerer: the guards, then the judge.

``judge_interval`` builds what it reads from where it runs (the platform's view
through ``environment_site``, Prometheus through ``PrometheusProvider``),
so a trigger re-created in another triggerer needs nothing but ``Judging`` and
the ``AnalysisProgress``, both plain JSON-safe data.

The judge (``deployflow.analysis.comparison``, the guards) is imported when an interval is
judged, not with this module: it brings numpy and scipy, about 0.9 s of
imports, and every task process of a release parses the DAG file, which
imports the sensors, which import this module.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import requests

from deployflow.airflow.sites import environment_site
from deployflow.analysis.progress import AnalysisProgress, Outcome
from deployflow.catalog import Service
from deployflow.metrics.prometheus import PrometheusProvider
from deployflow.platforms.base import BASELINE, other_colour

if TYPE_CHECKING:
    from deployflow.analysis.comparison import CanaryAnalysis
    from deployflow.analysis.guards import GuardVerdict


@dataclass(frozen=True)
class Judging:
    """What an analysis judges, fixed when it begins.

    :param service: the catalog entry's name.
    :param environment: the run's environment.
    :param strategy: the run's strategy (it may override the environment's); None: the environment's.
    :param colour: the colour the shift step put the canary on.
    :param prometheus_url: where the metrics are (resolved in the task, where Variables are at hand).
    """

    service: str
    environment: str
    strategy: str | None
    colour: str
    prometheus_url: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IntervalOutcome:
    """What one interval decided: the ``verdict`` XCom, the outcome and its sentence, the progress after it,
    and the lines to log (the guards' reason, the verdict table) wherever the interval was judged."""

    verdict: dict[str, Any]
    outcome: Outcome
    reason: str
    progress: AnalysisProgress
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a trigger's event."""
        return {"verdict": self.verdict, "outcome": self.outcome.value, "reason": self.reason,
                "progress": self.progress.to_dict(), "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalOutcome:
        return cls(verdict=data["verdict"], outcome=Outcome(data["outcome"]), reason=data["reason"],
                   progress=AnalysisProgress.from_dict(data["progress"]), notes=tuple(data.get("notes") or ()))


def canary_analysis(service: Service, environment: str, url: str, session: requests.Session) -> CanaryAnalysis:
    from deployflow.analysis.comparison import CanaryAnalysis  # the judge's numpy and scipy: see the module's docstring

    return CanaryAnalysis(PrometheusProvider(url, session), service=service.name, environment=environment,
                          config=service.environments[environment].analysis)


def judge_interval(service: Service, judging: Judging, progress: AnalysisProgress, now: float) -> IntervalOutcome:
    """Judge the interval due at ``now`` (synchronous: requests, the Docker API, scipy); the caller logs its notes."""
    with requests.Session() as session:
        analysis = canary_analysis(service, judging.environment, judging.prometheus_url, session)
        checked = guard_interval(service, judging, analysis, progress, now)
        guarded = time.time()
        if not checked.ok:
            return IntervalOutcome({"interval": progress.number, "result": "fail", "guard": checked.reason}, Outcome.FAIL,
                                   f"canary analysis failed at interval {progress.number}: {checked.reason}", progress)
        notes = [f"interval {progress.number} guards ({guarded - now:.2f} s): {checked.reason}"]
        report = analysis.judge(progress.number, *progress.window(now))
    notes.append(f"interval {report.number} (judged in {time.time() - guarded:.2f} s):\n{report.table()}")
    decision, after = progress.advance(report.result, report.verdict.reasons)
    # What the interval decided beside what it found: a nodata or marginal interval can end the analysis too.
    verdict = {**report.to_dict(), "decision": decision.outcome.value}
    return IntervalOutcome(verdict, decision.outcome, decision.reason, after, tuple(notes))


def guard_interval(service: Service, judging: Judging, analysis: CanaryAnalysis, progress: AnalysisProgress,
                   now: float) -> GuardVerdict:
    """Before the judge: the canary and its control run, are scraped, and got their share in this interval."""
    from deployflow.analysis.comparison import render, selector  # the judge's numpy and scipy: see the module's docstring
    from deployflow.analysis.guards import guard, observe

    env = service.environments[judging.environment]
    site = environment_site(service, judging.environment)
    plan = site.strategy(judging.strategy or None)  # the run's, if it overrides the environment's
    workload = site.workload(plan)  # which instances run: the workload alone, no router or release store
    count = plan.first_instances(env.replicas)
    canary = workload.get(judging.colour)
    if analysis.control == BASELINE:
        control, expected, share = workload.get(BASELINE), count, 0.5
    else:  # the whole stable track beside the canary's share
        control, expected, share = workload.get(other_colour(judging.colour)), env.replicas, env.canary.steps[0] / 100
    start, end = progress.started + (progress.number - 1) * progress.interval_s, now - progress.scrape_lag_s
    requests_query = next(m.query for m in env.analysis.metrics if m.kind == "errors")
    views = [
        observe(analysis.provider, track=track, selector=sel, requests_query=render(requests_query, selector=sel, window_s=end - start),
                start=start, end=end, expected=expected_count, running=found.alive)
        for track, found, expected_count in (("canary", canary, count), (analysis.control, control, expected))
        for sel in [selector(service.name, judging.environment, track)]
    ]
    return guard(*views, share=share)
