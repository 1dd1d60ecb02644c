"""Canary analysis in the triggerer: one trigger per interval, its progress in its serialized state.

Airflow stores a trigger's kwargs once, when the task defers, and never again
while it runs. So each trigger judges one interval and fires; the sensor's
``execute_complete`` acts on the verdict and, when the analysis goes on,
defers again with a trigger carrying the advanced ``AnalysisProgress``. A
triggerer that restarts (or another that takes over) re-creates the trigger
from those kwargs: the analysis resumes at the interval after the last one
judged, never starts over, and its windows (since the analysis began) and due
times (wall-clock) are the same as they would have been.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from deployflow.airflow.analysis_interval import Judging, judge_interval
from deployflow.analysis.progress import AnalysisProgress
from deployflow.catalog import Service, catalog_dir, load_service


def catalog_service(name: str) -> Service:
    """The catalog entry, read in the triggerer (a Service is not JSON; its name is)."""
    return load_service(catalog_dir() / f"{name}.yaml")


class CanaryAnalysisTrigger(BaseTrigger):
    """Sleep until the next interval is due, judge it in a thread, and fire once.

    The event: ``{"judging": ..., "verdict": ..., "outcome": "pass"|"fail"|"continue", "reason": ...,
    "progress": ..., "notes": [...]}`` (an ``IntervalOutcome``; the notes are the lines it logged), or ``{"judging": ..., "error": ...}`` when the interval
    could not be judged (Prometheus or the Docker engine did not answer).

    :param judging: a ``Judging`` as a dict: what is judged.
    :param progress: an ``AnalysisProgress`` as a dict: where the analysis stands.
    """

    def __init__(self, *, judging: dict[str, Any], progress: dict[str, Any]) -> None:
        super().__init__()
        self.judging = Judging(**judging)
        self.progress = AnalysisProgress.from_dict(progress)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "deployflow.airflow.analysis_trigger.CanaryAnalysisTrigger",
            {"judging": self.judging.to_dict(), "progress": self.progress.to_dict()},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        progress = self.progress
        wait = max(0.0, progress.next_due() - time.time())
        if progress.judged:
            opening = (f"resuming canary analysis at interval {progress.number} of at most {progress.max_intervals} "
                       f"({progress.passed} passing of {progress.judged} judged, {progress.intervals} needed); due in {wait:.1f} s")
        else:
            opening = f"canary analysis: interval 1 of at most {progress.max_intervals} due in {wait:.1f} s"
        self.log.info("%s", opening)
        await asyncio.sleep(wait)  # wall-clock due times: a trigger re-created late judges at once
        try:
            service = await asyncio.to_thread(catalog_service, self.judging.service)
            outcome = await asyncio.to_thread(judge_interval, service, self.judging, progress, time.time())
        except Exception as exc:  # data for the task to fail with, not a trigger crash that loses the reason
            self.log.exception("interval %d could not be judged", progress.number)
            yield TriggerEvent({"judging": self.judging.to_dict(), "error": f"{type(exc).__name__}: {exc}",
                                "interval": progress.number})
            return
        for note in outcome.notes:
            self.log.info("%s", note)
        # The task logs the notes again: each trigger's log file is rewritten by the next one on the same triggerer.
        event = outcome.to_dict()
        yield TriggerEvent({"judging": self.judging.to_dict(), **event, "notes": [opening, *event["notes"]]})
