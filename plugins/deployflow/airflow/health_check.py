"""The health check of a release's new instances: a sensor that waits on what it can see, never on a fixed sleep.

A short wait it does itself: most new instances are healthy within a second or two, and handing a wait that
short to the triggerer and back costs more than it saves (measured by ``make bench-release``: about 2.5 s
of the release's critical path, and a trigger's run). Past ``INLINE_S`` it defers to the triggerer, holding
no worker slot through a slow warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from deployflow import health
from deployflow.airflow import task_ids
from deployflow.airflow.sensors import deferrable_waits, defer_on_this_queue
from deployflow.airflow.triggers import HealthCheckTrigger
from deployflow.catalog import Health, Service

if TYPE_CHECKING:
    from airflow.sdk import Context

# How long the task probes itself before it hands the rest of the wait to the triggerer.
INLINE_S = 5.0


class HealthCheckSensor(BaseSensorOperator):
    """Succeed when every instance answers 2xx on every health path ``consecutive`` rounds in a row.

    Deferrable by default (``[deployflow] deferrable_waits``): past its first
    ``INLINE_S`` the probing runs in the triggerer (``HealthCheckTrigger``),
    holding no worker slot through a slow warm-up. With ``deferrable=False`` the task pokes every ``interval_s``
    itself. Reschedule mode is not offered: the streak of good rounds lives in
    the sensor (or the trigger). On timeout the task fails with the last
    failing answers (status code, body excerpt), and leaves that reason in
    XCom (``failure``) for the record, in either mode.

    The paths, streak, interval and timeout are the catalog's ``health`` of
    the environment the run targets, chosen when the task runs.

    :param urls: base URLs of the new version's instances (templated; from the prepare step).
    :param service: the catalog entry.
    :param environment_name: the run's environment (templated).
    :param deferrable: wait in the triggerer (None: ``[deployflow] deferrable_waits``, True unless set).
    """

    template_fields: Sequence[str] = ("urls", "environment_name")
    ui_color = "#fff8e1"

    def __init__(
        self, *, urls: str | list[str], service: Service, environment_name: str,
        deferrable: bool | None = None, **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("timeout", 3600)  # the catalog's timeout_s ends the wait first, with a reason
        super().__init__(**kwargs)
        self.urls = urls
        self.service = service
        self.environment_name = environment_name
        self.deferrable = deferrable_waits() if deferrable is None else deferrable
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
            if self._healthy_within(context, INLINE_S):
                return None
            defer_on_this_queue(self, context)
            self.log.info("not healthy within %g s: the triggerer waits for the rest", INLINE_S)
            self.defer(
                trigger=HealthCheckTrigger(urls=self._urls(), paths=list(h.paths()), consecutive=h.consecutive,
                                           interval_s=h.interval_s,
                                           timeout_s=max(h.timeout_s - (time.monotonic() - self._started), h.interval_s)),
                method_name="execute_complete",
            )
        return super().execute(context)

    def _healthy_within(self, context: Context, seconds: float) -> bool:
        """Probe as a poke does, for up to ``seconds``: whether the streak was reached. A failed check fails here
        as in a poke (its timeout is the catalog's, which bounds the whole check)."""
        self._started = time.monotonic()
        while not self.poke(context):
            if time.monotonic() - self._started + self._health.interval_s > seconds:
                return False
            time.sleep(self._health.interval_s)
        return True

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
        """Resumed only when unhealthy: a healthy trigger ends the task itself (``TaskSuccessEvent``)."""
        reason = event.get("reason", "health check failed")
        context["ti"].xcom_push(key=task_ids.FAILURE, value=f"health check failed: {reason}")  # for the record
        raise AirflowFailException(reason)
