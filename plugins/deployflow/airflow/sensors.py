"""Sensors: the release waits on what it can see, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from deployflow import health
from deployflow.airflow import task_ids
from deployflow.airflow.triggers import HealthCheckTrigger
from deployflow.airflow.deploy import environment_rollout
from deployflow.airflow.deployer_step import prometheus_url
from deployflow.analysis import CanaryAnalysis, render, selector
from deployflow.analysis_guards import GuardVerdict, guard, observe
from deployflow.platforms.base import BASELINE, other_colour
from deployflow.analysis_progress import AnalysisProgress, Outcome
from deployflow.catalog import Health, Service
from deployflow.metrics.prometheus import PrometheusProvider

if TYPE_CHECKING:
    from airflow.sdk import Context


class HealthCheckSensor(BaseSensorOperator):
    """Succeed when every instance answers 2xx on every health path ``consecutive`` rounds in a row.

    Poke mode by default: a release's health check lasts seconds, and a poke
    every ``interval_s`` in the task answers fastest. With ``deferrable=True``
    the waiting moves to the triggerer (for long warm-ups). Reschedule mode is
    not offered: the streak of good rounds lives in the sensor. On timeout
    the task fails with the last failing answers (status code, body excerpt).

    The paths, streak, interval and timeout are the catalog's ``health`` of
    the environment the run targets, chosen when the task runs.

    :param urls: base URLs of the new version's instances (templated; from the prepare step).
    :param service: the catalog entry.
    :param environment_name: the run's environment (templated).
    :param deferrable: wait in the triggerer instead of the worker.
    """

    template_fields: Sequence[str] = ("urls", "environment_name")
    ui_color = "#fff8e1"

    def __init__(
        self, *, urls: str | list[str], service: Service, environment_name: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False), **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("timeout", 3600)  # the catalog's timeout_s ends the wait first, with a reason
        super().__init__(**kwargs)
        self.urls = urls
        self.service = service
        self.environment_name = environment_name
        self.deferrable = deferrable
        self._streak: health.HealthStreak | None = None
        self._session: requests.Session | None = None
        self._started: float | None = None

    @property
    def _health(self) -> Health:
        if self.environment_name not in self.service.environments:
            raise AirflowFailException(f"environment {self.environment_name!r} is not in the catalog of {self.service.name}")
        return self.service.environments[self.environment_name].health

    def _urls(self) -> list[str]:
        urls = self.urls
        if isinstance(urls, str):  # rendered from XCom as text
            import ast

            urls = ast.literal_eval(urls)
        if not urls:
            raise AirflowFailException("no instances to check: the prepare step started none")
        return list(urls)

    def execute(self, context: Context) -> Any:
        h = self._health
        self.poke_interval = h.interval_s
        self.log.info("checking %s on %s: %d good rounds in a row, every %.1f s, for at most %d s",
                      ", ".join(h.paths()), ", ".join(self._urls()), h.consecutive, h.interval_s, h.timeout_s)
        if self.deferrable:
            self.defer(
                trigger=HealthCheckTrigger(urls=self._urls(), paths=list(h.paths()), consecutive=h.consecutive,
                                           interval_s=h.interval_s, timeout_s=h.timeout_s),
                method_name="execute_complete",
            )
        return super().execute(context)

    def poke(self, context: Context) -> bool:
        h = self._health
        self._session = self._session or requests.Session()
        self._started = self._started or time.monotonic()
        self._streak = self._streak or health.HealthStreak(h.consecutive)
        probes = health.probe_round(self._session, self._urls(), list(h.paths()))
        if self._streak.record(probes):
            self.log.info("healthy: %d good rounds in a row (%d rounds, %.1f s)",
                          h.consecutive, self._streak.rounds, time.monotonic() - self._started)
            return True
        elapsed = time.monotonic() - self._started
        for probe in probes:
            if not probe.ok:
                self.log.info("not yet: %s", probe.describe())
        if elapsed + h.interval_s > h.timeout_s:
            verdict = health.HealthVerdict(False, self._streak.rounds, elapsed, self._streak.last_failures)
            context["ti"].xcom_push(key=task_ids.FAILURE, value=f"health check failed: {verdict.reason()}")  # for the record
            raise AirflowFailException(verdict.reason())
        return False

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if not event.get("healthy"):
            reason = event.get("reason", "health check failed")
            context["ti"].xcom_push(key=task_ids.FAILURE, value=f"health check failed: {reason}")  # for the record
            raise AirflowFailException(reason)
        self.log.info("%s", event.get("reason"))


class CanaryAnalysisSensor(BaseSensorOperator):
    """Judge the canary against its baseline every interval; pass after N passing intervals.

    Each interval reads the catalog's metrics for the canary and baseline
    tracks from Prometheus (everything since the analysis began), calls the
    judge, logs the verdict table and pushes it to XCom (``verdict``). A
    failing interval, or a failing critical metric, fails the task at once,
    which sends the release to rollback; ``intervals`` passing ones succeed
    and the release goes on to promote. A marginal interval counts neither
    way; after twice the intervals without enough passes the analysis fails
    as inconclusive. Skips itself when the shift step ran no analysed step
    (another strategy, or a first deploy with nothing to compare with).

    Its progress between pokes is one ``AnalysisProgress`` (plain, JSON-safe
    data): the counting and the deciding are that class's, not the sensor's.

    :param service: the catalog entry.
    :param environment_name: the run's environment (templated).
    :param scrape_lag_s: how far behind now to end each window, so the last scrape is in.
    """

    template_fields: Sequence[str] = ("environment_name",)
    ui_color = "#e8eaf6"

    def __init__(self, *, service: Service, environment_name: str, scrape_lag_s: float = 3.0, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("poke_interval", 1.0)
        kwargs.setdefault("timeout", 3600)
        super().__init__(**kwargs)
        self.service = service
        self.environment_name = environment_name
        self.scrape_lag_s = scrape_lag_s
        self._progress: AnalysisProgress | None = None  # all the sensor keeps between pokes

    def _canary_analysis(self, session: requests.Session) -> CanaryAnalysis:
        config = self.service.environments[self.environment_name].analysis
        return CanaryAnalysis(PrometheusProvider(prometheus_url(), session), service=self.service.name,
                              environment=self.environment_name, config=config)

    def execute(self, context: Context) -> Any:
        shifted = context["ti"].xcom_pull(task_ids=task_ids.SHIFT) or {}
        if not shifted.get("analysis"):
            raise AirflowSkipException("no analysed canary step in this release (another strategy, or a first deploy)")
        with requests.Session() as session:
            analysis = self._canary_analysis(session)
        config = analysis.config
        self._progress = AnalysisProgress(started=time.time(), interval_s=config.interval_s, intervals=config.intervals,
                                          scrape_lag_s=self.scrape_lag_s)
        self.log.info("canary analysis of %s in %s: %d passing interval(s) of %d s needed, baseline track %r, no-data policy %r",
                      self.service.name, self.environment_name, config.intervals, config.interval_s,
                      analysis.control, config.no_data)
        return super().execute(context)

    def poke(self, context: Context) -> bool:
        progress = self._progress
        now = time.time()
        if not progress.due(now):
            return False
        with requests.Session() as session:
            analysis = self._canary_analysis(session)
            checked = self._guard(context, analysis, progress, now)
            guarded = time.time()
            if not checked.ok:
                context["ti"].xcom_push(key="verdict", value={"interval": progress.number, "result": "fail", "guard": checked.reason})
                raise AirflowFailException(f"canary analysis failed at interval {progress.number}: {checked.reason}")
            self.log.info("interval %d guards (%.2f s): %s", progress.number, guarded - now, checked.reason)
            report = analysis.judge(progress.number, *progress.window(now))
        self.log.info("interval %d (judged in %.2f s):\n%s", report.number, time.time() - guarded, report.table())
        context["ti"].xcom_push(key="verdict", value=report.to_dict())
        decision, self._progress = progress.advance(report.result, report.verdict.reasons)
        if decision.outcome is Outcome.FAIL:
            raise AirflowFailException(decision.reason)
        self.log.info("%s", decision.reason)
        if decision.outcome is Outcome.PASS:
            context["ti"].xcom_push(key="verdict", value={**report.to_dict(), "final": True})
            return True
        return False

    def _guard(self, context: Context, analysis: CanaryAnalysis, progress: AnalysisProgress, now: float) -> GuardVerdict:
        """Before the judge: the canary and its control run, are scraped, and got their share in this interval."""
        env = self.service.environments[self.environment_name]
        shifted = context["ti"].xcom_pull(task_ids=task_ids.SHIFT) or {}
        strategy = (context["ti"].xcom_pull(task_ids=task_ids.RESOLVE) or {}).get("strategy")  # the run's, not the catalog's
        rollout = environment_rollout(self.service, self.environment_name, strategy)
        count = rollout.strategy.first_instances(env.replicas)
        canary = rollout.workload.get(shifted["colour"])
        if analysis.control == BASELINE:
            control, expected, share = rollout.workload.get(BASELINE), count, 0.5
        else:  # the whole stable track beside the canary's share
            control, expected, share = rollout.workload.get(other_colour(shifted["colour"])), env.replicas, env.canary.steps[0] / 100
        start, end = progress.started + (progress.number - 1) * progress.interval_s, now - progress.scrape_lag_s
        requests_query = next(m.query for m in env.analysis.metrics if m.kind == "errors")
        views = [
            observe(analysis.provider, track=track, selector=sel, requests_query=render(requests_query, selector=sel, window_s=end - start),
                    start=start, end=end, expected=expected_count, running=found.alive)
            for track, found, expected_count in (("canary", canary, count), (analysis.control, control, expected))
            for sel in [selector(self.service.name, self.environment_name, track)]
        ]
        return guard(*views, share=share)
