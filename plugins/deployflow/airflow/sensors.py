"""Sensors: the release waits on what it can see, never on a fixed sleep (the health check: health_check.py).

They wait in the triggerer by default, holding no worker slot while they wait:
``[deployflow] deferrable_waits`` in airflow.cfg (or
``AIRFLOW__DEPLOYFLOW__DEFERRABLE_WAITS``) sets the default, and each sensor's
``deferrable`` keyword overrides it; poke mode (the wait in the worker) stays
an option, with the same verdicts, messages and XComs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from deployflow.airflow import task_ids
from deployflow.airflow.analysis_interval import IntervalOutcome, Judging, judge_interval
from deployflow.airflow.analysis_trigger import CanaryAnalysisTrigger
from deployflow.airflow.settings import prometheus_url
from deployflow.airflow.load import stop_load
from deployflow.airflow.verdicts import failed_verdict, keep_failed_verdict
from deployflow.analysis.progress import AnalysisProgress, Outcome
from deployflow.airflow.runs import skip
from deployflow.airflow.skips import no_analysis
from deployflow.catalog import Environment, Service

if TYPE_CHECKING:
    from airflow.sdk import Context


def defer_on_this_queue(sensor: BaseSensorOperator, context: Context) -> None:
    """Send the trigger to the triggerer of the queue this try runs on.

    With ``[triggerer] queues_enabled``, Airflow files a trigger under ``ti.task.queue``, the queue the DAG
    gave the task, not the one the routing policy (routing.py) gave this task instance. A Docker host's
    health probes must run on that host's triggerer, since the instances listen on its 127.0.0.1 only.
    """
    queue = getattr(context.get("ti"), "queue", None)
    if queue and sensor.queue != queue:
        sensor.queue = queue


def deferrable_waits() -> bool:
    """The sensors' default: wait in the triggerer (``[deployflow] deferrable_waits``, True unless set)."""
    return conf.getboolean("deployflow", "deferrable_waits", fallback=True)


def not_analysed(shifted: dict[str, Any], strategy: str | None, environment: Environment) -> str:
    """Why a release has no canary analysis, from shift's result (no analysed step) and the run's strategy."""
    if shifted.get("already_live"):
        return f"{shifted.get('version')} is live already: nothing to judge"
    if why := no_analysis(strategy, environment):
        return why
    if not shifted.get("previous"):
        return "a first deploy: no old version to judge the canary against"
    return "shift reached no analysed step"


class CanaryAnalysisSensor(BaseSensorOperator):
    """Judge the canary against its baseline every interval; pass after N passing intervals.

    Each interval first runs the guards (every canary and control instance
    runs and is scraped, and got its share of requests in the interval), then
    reads the catalog's metrics for the canary and control tracks from
    Prometheus (everything since the analysis began), calls the judge, logs the
    verdict table and pushes it to XCom (``verdict``, the newest, and
    ``verdict_<nnn>``, each interval's: what the Releases view shows). A failing guard or
    interval, or a failing critical metric, fails the task at once, which sends
    the release to rollback (and stops the load); ``intervals`` passing ones
    succeed and the release goes on to promote. A marginal interval counts
    neither way; a nodata one (no metric had data) counts as the analysis'
    ``no_data`` policy says; after twice the intervals without enough passes
    the analysis fails as inconclusive. Skips itself when the shift step ran no analysed
    step (another strategy, or a first deploy with nothing to compare with).

    Deferrable by default (``[deployflow] deferrable_waits``): each interval is
    one ``CanaryAnalysisTrigger`` that sleeps in the triggerer until the
    interval is due, judges it there and fires; ``execute_complete`` acts on
    the verdict as a poke would and defers again with the advanced progress, so
    the worker holds a slot only for the seconds it takes to resume, and a
    triggerer restart resumes the analysis at the interval after the last one
    judged. With ``deferrable=False`` the task pokes every second until an
    interval is due and judges it itself. Both call ``judge_interval``: the
    same verdicts, failure messages and XComs.

    The progress between intervals is one ``AnalysisProgress`` (plain, JSON-safe
    data): the counting and the deciding are that class's, not the sensor's.

    :param service: the catalog entry.
    :param environment_name: the run's environment (templated).
    :param scrape_lag_s: how far behind now to end each window, so the last scrape is in.
    :param deferrable: judge in the triggerer (None: ``[deployflow] deferrable_waits``, True unless set).
    """

    template_fields: Sequence[str] = ("environment_name",)
    ui_color = "#e8eaf6"

    def __init__(self, *, service: Service, environment_name: str, scrape_lag_s: float = 3.0,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("poke_interval", 1.0)
        kwargs.setdefault("timeout", 3600)
        super().__init__(**kwargs)
        self.service = service
        self.environment_name = environment_name
        self.scrape_lag_s = scrape_lag_s
        self.deferrable = deferrable_waits() if deferrable is None else deferrable
        self._judging: Judging | None = None  # what is judged, fixed at the start
        self._progress: AnalysisProgress | None = None  # all the sensor keeps between pokes

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        shifted = ti.xcom_pull(task_ids=task_ids.SHIFT) or {}
        strategy = (ti.xcom_pull(task_ids=task_ids.RESOLVE) or {}).get("strategy") or None  # the run's
        if not shifted.get("analysis"):
            skip(context, not_analysed(shifted, strategy, self.service.environments[self.environment_name]))
        earlier = failed_verdict(context)
        if earlier is not None:  # final for the run: a retry never judges a failed canary again
            ti.xcom_push(key="verdict", value=earlier)
            stop_load(self.service, self.environment_name, self.log)
            raise AirflowFailException(f"canary analysis failed at interval {earlier.get('interval')} in an earlier try "
                                       "of this run; a failed analysis is final, a retry does not judge again")
        config = self.service.environments[self.environment_name].analysis
        progress = AnalysisProgress(started=time.time(), interval_s=config.interval_s, intervals=config.intervals,
                                    scrape_lag_s=self.scrape_lag_s, no_data=config.no_data)
        judging = Judging(service=self.service.name, environment=self.environment_name,
                          strategy=strategy,
                          colour=shifted["colour"], prometheus_url=prometheus_url())
        self.log.info("canary analysis of %s in %s: %d passing interval(s) of %d s needed, baseline track %r, no-data policy %r%s",
                      self.service.name, self.environment_name, config.intervals, config.interval_s,
                      "baseline" if config.baseline else "stable", config.no_data,
                      ", judged in the triggerer" if self.deferrable else "")
        if self.deferrable:
            self._defer(context, judging, progress)
        self._judging, self._progress = judging, progress
        return super().execute(context)

    def poke(self, context: Context) -> bool:
        now = time.time()
        if not self._progress.due(now):
            return False
        outcome = judge_interval(self.service, self._judging, self._progress, now)
        for note in outcome.notes:
            self.log.info("%s", note)
        self._progress = outcome.progress
        return self._settle(context, outcome)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """One interval judged in the triggerer: act on it as a poke would; defer again while the analysis goes on."""
        if "error" in event:
            raise AirflowException(f"canary analysis interval {event.get('interval')} could not be judged: {event['error']}")
        outcome = IntervalOutcome.from_dict(event)
        for note in outcome.notes:  # the interval's lines in the task's log (each trigger's own log is rewritten by the next)
            self.log.info("triggerer: %s", note)
        if self._settle(context, outcome):
            return
        self._defer(context, Judging(**event["judging"]), outcome.progress)

    def _defer(self, context: Context, judging: Judging, progress: AnalysisProgress) -> None:
        defer_on_this_queue(self, context)
        remaining = progress.started + self.timeout - time.time()  # the sensor's timeout bounds the whole analysis
        self.defer(trigger=CanaryAnalysisTrigger(judging=judging.to_dict(), progress=progress.to_dict()),
                   method_name="execute_complete", timeout=timedelta(seconds=max(remaining, progress.interval_s)))

    def _settle(self, context: Context, outcome: IntervalOutcome) -> bool:
        """Push the interval's verdict; fail on a failing one, True when the analysis passed."""
        ti = context["ti"]
        ti.xcom_push(key="verdict", value=outcome.verdict)
        # Each interval's own, kept through the analysis (a new try clears them): what the Releases view shows.
        ti.xcom_push(key=task_ids.interval_verdict_key(outcome.verdict["interval"]), value=outcome.verdict)
        if outcome.outcome is Outcome.FAIL:
            keep_failed_verdict(context, outcome.verdict, self.log)
            stop_load(self.service, self.environment_name, self.log)  # nothing is judged any more
            raise AirflowFailException(outcome.reason)
        self.log.info("%s", outcome.reason)
        if outcome.outcome is Outcome.PASS:
            ti.xcom_push(key="verdict", value={**outcome.verdict, "final": True})
            return True
        return False
