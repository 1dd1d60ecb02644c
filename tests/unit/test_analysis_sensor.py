"""CanaryAnalysisSensor's interval: the guards first (the canary and its baseline as the platform and
Prometheus see them, and their requests in the interval), then the judge."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow import sensors
from deployflow.airflow.sensors import CanaryAnalysisSensor
from deployflow.analysis_progress import AnalysisProgress
from deployflow.catalog import parse_service
from deployflow.metrics.base import Series
from deployflow.platforms.base import InstanceSet
from deployflow.rollout.record import Target

SERVICE = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
    "staging": {"port": 18997, "strategy": "canary", "replicas": 2, "analysis": {"interval_s": 10, "intervals": 1}}}})


class Prometheus:
    """Answers ``up`` and the interval's requests per track, and the judge's queries with equal data."""

    def __init__(self, up: dict[str, float], requests: dict[str, float]) -> None:
        self.up, self.requests, self.queries = up, requests, []

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.queries.append(query)
        track = query.split('track="')[1].split('"')[0]
        if query.startswith("up{"):
            return [Series({}, [(end, self.up[track])])]
        if query.startswith("sum(increase("):
            return [Series({}, [(end, self.requests[track])])]
        if "by (code)" in query:
            return [Series({"code": "200"}, [(end, 400.0)]), Series({"code": "500"}, [(end, 1.0)])]
        return [Series({"le": "0.005"}, [(end, 400.0)]), Series({"le": "+Inf"}, [(end, 401.0)])]

    def is_online(self) -> bool:
        return True


class TI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> dict:
        return {"resolve": {"strategy": "canary"}, "shift": {"analysis": True, "colour": "green"}}[task_ids]

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def poke(monkeypatch, prometheus: Prometheus, alive: dict[str, int]) -> tuple[bool | Exception, TI]:
    sets = {"green": InstanceSet("green", Target("v2", "i"), size=1, alive=alive["green"]),
            "baseline": InstanceSet("baseline", Target("v1", "i"), size=1, alive=alive["baseline"])}
    rollout = SimpleNamespace(strategy=SimpleNamespace(first_instances=lambda replicas: 1),
                              workload=SimpleNamespace(get=lambda colour: sets[colour]))
    def environment_rollout(service, environment, strategy):
        assert strategy == "canary", "the run's strategy, which may override the environment's"
        return rollout

    monkeypatch.setattr(sensors, "environment_rollout", environment_rollout)
    monkeypatch.setattr(sensors, "PrometheusProvider", lambda url, session: prometheus)
    sensor = CanaryAnalysisSensor(task_id="analysis", service=SERVICE, environment_name="staging")
    sensor._progress = AnalysisProgress(started=1000.0, interval_s=10, intervals=1, scrape_lag_s=3.0)
    monkeypatch.setattr(sensors.time, "time", lambda: 1013.5)
    ti = TI()
    try:
        return sensor.poke({"ti": ti}), ti
    except AirflowFailException as exc:
        return exc, ti


def test_a_live_canary_with_its_share_goes_on_to_the_judge(monkeypatch):
    prometheus = Prometheus({"canary": 1.0, "baseline": 1.0}, {"canary": 151.0, "baseline": 149.0})
    passed, ti = poke(monkeypatch, prometheus, {"green": 1, "baseline": 1})
    assert passed is True and ti.pushed["verdict"]["final"] is True
    assert 'sum(increase(http_requests_total{service="shop",environment="staging",track="canary",path!~"/(metrics|health|ready|live)"}[10s]))' in prometheus.queries


@pytest.mark.parametrize(("up", "requests", "alive", "says"), [
    ({"canary": 1.0, "baseline": 1.0}, {"canary": 60.0, "baseline": 150.0}, {"green": 0, "baseline": 1},
     "canary analysis failed at interval 1: canary: 0 of 1 instance(s) running (and never restarted)"),
    ({"canary": 0.0, "baseline": 1.0}, {"canary": 60.0, "baseline": 150.0}, {"green": 1, "baseline": 1},
     "canary: 0 of 1 instance(s) answering Prometheus' scrapes"),
    ({"canary": 1.0, "baseline": 1.0}, {"canary": 0.0, "baseline": 150.0}, {"green": 1, "baseline": 1},
     "canary got no request in this interval"),
    ({"canary": 1.0, "baseline": 1.0}, {"canary": 354.0, "baseline": 580.0}, {"green": 1, "baseline": 1},
     "sample ratio mismatch: canary 354 vs baseline 580 requests in this interval at equal weight"),
])
def test_a_canary_that_stopped_serving_fails_the_interval_before_any_judging(monkeypatch, up, requests, alive, says):
    prometheus = Prometheus(up, requests)
    failed, ti = poke(monkeypatch, prometheus, alive)
    assert isinstance(failed, AirflowFailException) and says in str(failed)
    assert ti.pushed["verdict"]["result"] == "fail" and says.split(": ", 1)[-1] in ti.pushed["verdict"]["guard"]
    assert not any("by (code)" in q for q in prometheus.queries), "the judge never ran"
