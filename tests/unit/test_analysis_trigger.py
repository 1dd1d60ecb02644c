"""CanaryAnalysisTrigger: one interval judged in the triggerer, its progress in its serialized state, so a
trigger re-created from those kwargs (a triggerer restart) goes on at the right interval."""

from __future__ import annotations

import asyncio
import time

import pytest

from deployflow.airflow import analysis_trigger
from deployflow.airflow.analysis_trigger import CanaryAnalysisTrigger
from deployflow.analysis.progress import AnalysisProgress
from tests.unit.test_analysis_sensor import GOOD_REQUESTS, GOOD_UP, JUDGING, Prometheus, fake_world, shop


def trigger_at(judged: int, passed: int, intervals: int = 2) -> CanaryAnalysisTrigger:
    # started long enough ago that the interval is due: the trigger judges at once
    progress = AnalysisProgress(started=time.time() - 100, interval_s=10, intervals=intervals, scrape_lag_s=3.0,
                                judged=judged, passed=passed)
    return CanaryAnalysisTrigger(judging=JUDGING.to_dict(), progress=progress.to_dict())


def test_the_trigger_serializes_to_its_classpath_and_round_trips_its_progress():
    trigger = trigger_at(judged=1, passed=1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "deployflow.airflow.analysis_trigger.CanaryAnalysisTrigger"
    assert kwargs["judging"] == {"service": "shop", "environment": "staging", "strategy": "canary", "colour": "green",
                                 "prometheus_url": "http://prom"}
    assert kwargs["progress"]["judged"] == 1 and kwargs["progress"]["passed"] == 1
    again = CanaryAnalysisTrigger(**kwargs)
    assert again.serialize() == trigger.serialize() and again.progress == trigger.progress


async def first_event(trigger: CanaryAnalysisTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


@pytest.fixture
def world(monkeypatch):
    prometheus = Prometheus(GOOD_UP, GOOD_REQUESTS)
    fake_world(monkeypatch, prometheus, {"green": 1, "baseline": 1})
    monkeypatch.setattr(analysis_trigger, "catalog_service", lambda name: shop(intervals=2))
    return prometheus


def test_the_first_interval_is_judged_in_the_trigger_and_its_event_carries_the_verdict_and_advanced_progress(world):
    event = asyncio.run(first_event(trigger_at(judged=0, passed=0)))
    assert (event["outcome"], event["verdict"]["interval"], event["verdict"]["result"]) == ("continue", 1, "pass")
    assert (event["progress"]["judged"], event["progress"]["passed"]) == (1, 1)
    assert event["judging"] == JUDGING.to_dict()
    assert any("by (code)" in q for q in world.queries), "the judge ran"


def test_a_trigger_re_created_mid_analysis_judges_the_next_interval_not_the_first(world, capsys):
    _, kwargs = trigger_at(judged=1, passed=1).serialize()  # as the triggerer's database holds it
    event = asyncio.run(first_event(CanaryAnalysisTrigger(**kwargs)))
    assert (event["outcome"], event["verdict"]["interval"]) == ("pass", 2)
    assert event["reason"] == "canary analysis passed: 2 of 2 interval(s), 2 with data"
    assert (event["progress"]["judged"], event["progress"]["passed"]) == (2, 2)
    assert "resuming canary analysis at interval 2 of at most 4" in capsys.readouterr().out  # Airflow logs to stdout
    assert event["notes"][0].startswith("resuming canary analysis at interval 2 of at most 4 (1 passing of 1 judged")
    assert event["notes"][-1].startswith("interval 2 (judged in ") and "score 100/100: pass" in event["notes"][-1]


def test_a_failing_guard_in_the_trigger_fires_the_pokes_failure(monkeypatch):
    fake_world(monkeypatch, Prometheus(GOOD_UP, GOOD_REQUESTS), {"green": 0, "baseline": 1})
    monkeypatch.setattr(analysis_trigger, "catalog_service", lambda name: shop(intervals=2))
    event = asyncio.run(first_event(trigger_at(judged=1, passed=1)))
    assert event["outcome"] == "fail" and event["progress"]["judged"] == 1
    assert event["reason"] == "canary analysis failed at interval 2: canary: 0 of 1 instance(s) running (and never restarted)"
    assert event["verdict"] == {"interval": 2, "result": "fail", "guard": event["reason"].split(": ", 1)[1]}


def test_the_trigger_waits_for_the_interval_without_blocking_the_loop(world):
    progress = AnalysisProgress(started=time.time(), interval_s=3600, intervals=2)
    trigger = CanaryAnalysisTrigger(judging=JUDGING.to_dict(), progress=progress.to_dict())

    async def meanwhile() -> str:
        task = asyncio.ensure_future(first_event(trigger))
        await asyncio.sleep(0.05)  # the loop runs other coroutines while the trigger waits
        done = task.done()
        task.cancel()
        return "waiting" if not done else "judged early"

    assert asyncio.run(meanwhile()) == "waiting"
    assert world.queries == [], "nothing is read before the interval is due"


def test_an_interval_that_cannot_be_read_is_an_event_with_why_not_a_crash(monkeypatch, world):
    def broken(service, environment):
        raise ConnectionError("docker engine gone")

    monkeypatch.setattr("deployflow.airflow.analysis_interval.environment_site", broken)
    event = asyncio.run(first_event(trigger_at(judged=1, passed=0)))
    assert event == {"judging": JUDGING.to_dict(), "error": "ConnectionError: docker engine gone", "interval": 2}
