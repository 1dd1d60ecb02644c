"""Triggers: waiting done in the triggerer instead of a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import requests
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from deployflow import health


class HealthCheckTrigger(BaseTrigger):
    """Probe instances until ``consecutive`` good rounds in a row, or ``timeout_s``.

    Healthy, it ends the task from the triggerer (``TaskSuccessEvent``, the reason in the task's log): no worker
    process starts again only to say so (measured: a process start, a DAG file parse and Airflow API calls per
    release, for a log line). Unhealthy, it fires ``{"healthy": False, "reason": str}``, and the task resumes to
    fail with the reason, leave it for the record and never retry. Probes run in a thread (``requests`` is
    synchronous) so the triggerer's loop never blocks.
    """

    def __init__(self, *, urls: list[str], paths: list[str], consecutive: int, interval_s: float, timeout_s: float) -> None:
        super().__init__()
        self.urls = list(urls)
        self.paths = list(paths)
        self.consecutive = consecutive
        self.interval_s = interval_s
        self.timeout_s = timeout_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "deployflow.airflow.triggers.HealthCheckTrigger",
            {"urls": self.urls, "paths": self.paths, "consecutive": self.consecutive,
             "interval_s": self.interval_s, "timeout_s": self.timeout_s},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        streak = health.HealthStreak(self.consecutive)
        with requests.Session() as session:
            while True:
                probes = await asyncio.to_thread(health.probe_round, session, self.urls, self.paths)
                elapsed = time.monotonic() - started
                if streak.record(probes):
                    self.log.info("%s", health.HealthVerdict(True, streak.rounds, elapsed, ()).reason())
                    yield TaskSuccessEvent()
                    return
                if elapsed + self.interval_s > self.timeout_s:
                    verdict = health.HealthVerdict(False, streak.rounds, elapsed, streak.last_failures)
                    yield TriggerEvent({"healthy": False, "reason": verdict.reason()})
                    return
                await asyncio.sleep(self.interval_s)
