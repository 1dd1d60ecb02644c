"""CanaryAnalysisSensor's interval: the guards first (the canary and its baseline as the platform and
Prometheus see them, and their requests in the interval), then the judge; poked in the task or judged in
the triggerer, with the same verdicts, messages and XComs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException, TaskDeferred

from deployflow.airflow import analysis_interval, sensors
from deployflow.airflow.analysis_interval import Judging
from deployflow.airflow.analysis_trigger import CanaryAnalysisTrigger
from deployflow.airflow.sensors import CanaryAnalysisSensor
from deployflow.analysis.progress import AnalysisProgress
from deployflow.catalog import parse_service
from deployflow.metrics.base import Series
from deployflow.platforms.base import InstanceSet
from deployflow.record import Target


def shop(intervals: int = 1):
    return parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
        "staging": {"port": 18997, "strategy": "canary", "replicas": 2, "analysis": {"interval_s": 10, "intervals": intervals}}}})


SERVICE = shop()
JUDGING = Judging(service="shop", environment="staging", strategy="canary", colour="green", prometheus_url="http://prom")
GOOD_UP, GOOD_REQUESTS = {"canary": 1.0, "baseline": 1.0}, {"canary": 151.0, "baseline": 149.0}


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


@pytest.fixture(autouse=True)
def ledger(tmp_path, monkeypatch) -> str:
    """The ledger the sensor keeps a failing verdict in: SQLite in a fresh state directory."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    monkeypatch.delenv("DEPLOYFLOW_LEDGER_URL", raising=False)
    return str(tmp_path)


class TI:
    dag_id, task_id = "release_shop", "analysis"

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> dict:
        return {"resolve": {"strategy": "canary"}, "shift": {"analysis": True, "colour": "green"}}[task_ids]

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def fake_world(monkeypatch, prometheus: Prometheus, alive: dict[str, int]) -> list[str]:
    """The platform and Prometheus as the interval reads them; the list of load stops the sensor asked for."""
    sets = {"green": InstanceSet("green", Target("v2", "i"), size=1, alive=alive["green"]),
            "baseline": InstanceSet("baseline", Target("v1", "i"), size=1, alive=alive["baseline"])}
    plan = SimpleNamespace(first_instances=lambda replicas: 1)

    def strategy(name):
        assert name == "canary", "the run's strategy, which may override the environment's"
        return plan

    site = SimpleNamespace(strategy=strategy, workload=lambda given: SimpleNamespace(get=lambda colour: sets[colour]))
    monkeypatch.setattr(analysis_interval, "environment_site", lambda service, environment: site)
    monkeypatch.setattr(analysis_interval, "PrometheusProvider", lambda url, session: prometheus)
    stopped: list[str] = []
    monkeypatch.setattr(sensors, "stop_load", lambda service, environment, log: stopped.append(environment))
    return stopped


def poke(monkeypatch, prometheus: Prometheus, alive: dict[str, int]) -> tuple[bool | Exception, TI, list[str]]:
    stopped = fake_world(monkeypatch, prometheus, alive)
    sensor = CanaryAnalysisSensor(task_id="analysis", service=SERVICE, environment_name="staging", deferrable=False)
    sensor._judging = JUDGING
    sensor._progress = AnalysisProgress(started=1000.0, interval_s=10, intervals=1, scrape_lag_s=3.0)
    monkeypatch.setattr(sensors.time, "time", lambda: 1013.5)
    ti = TI()
    try:
        return sensor.poke({"ti": ti, "run_id": "r1"}), ti, stopped
    except AirflowFailException as exc:
        return exc, ti, stopped


def test_a_live_canary_with_its_share_goes_on_to_the_judge(monkeypatch):
    prometheus = Prometheus(GOOD_UP, GOOD_REQUESTS)
    passed, ti, stopped = poke(monkeypatch, prometheus, {"green": 1, "baseline": 1})
    assert passed is True and ti.pushed["verdict"]["final"] is True and stopped == []
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
    failed, ti, stopped = poke(monkeypatch, prometheus, alive)
    assert isinstance(failed, AirflowFailException) and says in str(failed)
    assert ti.pushed["verdict"]["result"] == "fail" and says.split(": ", 1)[-1] in ti.pushed["verdict"]["guard"]
    assert not any("by (code)" in q for q in prometheus.queries), "the judge never ran"
    assert stopped == ["staging"], "a failed analysis stops the load"


def test_by_default_the_analysis_defers_to_the_triggerer_with_what_it_judges_and_no_interval_judged(monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_PROMETHEUS_URL", "http://prom")
    monkeypatch.setattr(sensors.time, "time", lambda: 1000.0)
    sensor = CanaryAnalysisSensor(task_id="analysis", service=SERVICE, environment_name="staging")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": TI(), "run_id": "r1"})
    trigger = deferred.value.trigger
    assert isinstance(trigger, CanaryAnalysisTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.serialize()[1] == {
        "judging": JUDGING.to_dict(),
        "progress": {"started": 1000.0, "interval_s": 10, "intervals": 1, "scrape_lag_s": 3.0, "no_data": "fail",
                     "judged": 0, "passed": 0, "nodata": 0},
    }


def event(outcome: str, verdict: dict, progress: AnalysisProgress, reason: str) -> dict:
    return {"judging": JUDGING.to_dict(), "verdict": verdict, "outcome": outcome, "reason": reason,
            "progress": progress.to_dict()}


def completed(monkeypatch, payload: dict, intervals: int = 3) -> tuple[object, TI, list[str]]:
    stopped: list[str] = []
    monkeypatch.setattr(sensors, "stop_load", lambda service, environment, log: stopped.append(environment))
    sensor = CanaryAnalysisSensor(task_id="analysis", service=shop(intervals), environment_name="staging")
    ti = TI()
    try:
        return sensor.execute_complete({"ti": ti, "run_id": "r1"}, payload), ti, stopped
    except (AirflowFailException, TaskDeferred) as exc:
        return exc, ti, stopped


STARTED = AnalysisProgress(started=1000.0, interval_s=10, intervals=3, scrape_lag_s=3.0)


def test_a_passing_last_interval_from_the_triggerer_succeeds_with_the_final_verdict(monkeypatch):
    verdict = {"interval": 3, "result": "pass", "score": 100.0}
    done = STARTED.__class__(**{**STARTED.to_dict(), "judged": 3, "passed": 3})
    result, ti, stopped = completed(monkeypatch, event("pass", verdict, done, "canary analysis passed: 3 of 3 interval(s)"))
    assert result is None and ti.pushed["verdict"] == {**verdict, "final": True} and stopped == []


def test_a_failing_interval_from_the_triggerer_fails_as_a_poke_would_and_stops_the_load(monkeypatch):
    verdict = {"interval": 2, "result": "fail", "guard": "canary: 0 of 1 instance(s) running (and never restarted)"}
    reason = "canary analysis failed at interval 2: canary: 0 of 1 instance(s) running (and never restarted)"
    at_two = AnalysisProgress(**{**STARTED.to_dict(), "judged": 1, "passed": 1})
    result, ti, stopped = completed(monkeypatch, event("fail", verdict, at_two, reason))
    assert isinstance(result, AirflowFailException) and str(result) == reason
    assert ti.pushed["verdict"] == verdict and stopped == ["staging"]


def test_an_interval_that_decides_nothing_defers_again_with_the_advanced_progress(monkeypatch, capsys):
    monkeypatch.setattr(sensors.time, "time", lambda: 1014.0)
    verdict = {"interval": 1, "result": "pass", "score": 100.0}
    after_one = AnalysisProgress(**{**STARTED.to_dict(), "judged": 1, "passed": 1})
    payload = {**event("continue", verdict, after_one, "interval 1: pass; 1 passing of 1 so far"),
               "notes": ["interval 1 (judged in 0.02 s):\nmetric  label\nscore 100/100: pass"]}
    result, ti, stopped = completed(monkeypatch, payload)
    assert "triggerer: interval 1 (judged in 0.02 s)" in capsys.readouterr().out, "the task's log keeps every interval's table"
    assert isinstance(result, TaskDeferred) and result.method_name == "execute_complete"
    assert result.trigger.serialize()[1] == {"judging": JUDGING.to_dict(), "progress": after_one.to_dict()}
    assert ti.pushed["verdict"] == verdict and "final" not in ti.pushed["verdict"]


def test_an_interval_the_triggerer_could_not_judge_fails_the_task_with_why(monkeypatch):
    sensor = CanaryAnalysisSensor(task_id="analysis", service=SERVICE, environment_name="staging")
    with pytest.raises(AirflowException, match="canary analysis interval 2 could not be judged: ConnectionError: prom down"):
        sensor.execute_complete({"ti": TI()}, {"judging": JUDGING.to_dict(), "error": "ConnectionError: prom down", "interval": 2})


def test_each_interval_s_trigger_goes_to_the_triggerer_of_the_queue_the_analysis_was_routed_to(monkeypatch):
    from airflow.sdk.execution_time.task_runner import _defer_task

    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "True")
    monkeypatch.setenv("DEPLOYFLOW_PROMETHEUS_URL", "http://prom")
    sensor = CanaryAnalysisSensor(task_id="analysis", service=SERVICE, environment_name="staging")
    ti = TI()
    ti.queue, ti.task, ti.dag_id, ti.task_id, ti.run_id = "host-b", sensor, "release_shop", "analysis", "r1"
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti, "run_id": "r1"})
    message, _ = _defer_task(deferred.value, ti, SimpleNamespace(info=lambda *args, **kwargs: None))
    assert message.queue == "host-b"


class SkippingTI(TI):
    def __init__(self, strategy: str, shifted: dict) -> None:
        super().__init__()
        self.returned = {"resolve": {"strategy": strategy}, "shift": shifted}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> dict:
        return self.returned[task_ids]


@pytest.mark.parametrize(("strategy", "shifted", "analysis", "why"), [
    ("blue-green", {"analysis": False, "previous": "v1"}, True, "blue-green has no canary step to judge"),
    ("canary", {"analysis": False, "previous": None}, True, "a first deploy: no old version to judge the canary against"),
    ("canary", {"analysis": False, "previous": "v1"}, False, "analysis is off in staging"),
    ("canary", {"analysis": False, "already_live": True, "version": "v1"}, True, "v1 is live already: nothing to judge"),
])
def test_no_analysis_says_why_in_the_log_and_in_xcom(strategy, shifted, analysis, why):
    service = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
        "staging": {"port": 18997, "strategy": "canary", "analysis": {"enabled": analysis}}}})
    ti = SkippingTI(strategy, shifted)
    with pytest.raises(AirflowSkipException, match=f"^{why}$"):
        CanaryAnalysisSensor(task_id="analysis", service=service, environment_name="staging").execute({"ti": ti})
    assert ti.pushed == {"skipped": why}


def test_a_failed_analysis_is_final_for_its_run_a_retry_fails_with_the_kept_verdict_without_judging(monkeypatch):
    """Airflow may retry an analysis that failed (apache/airflow#72716): the retry must not judge again (with
    ``no_data: pass`` it could pass a failed canary on the traffic left)."""
    verdict = {"interval": 2, "result": "fail", "guard": "canary: 0 of 1 instance(s) running (and never restarted)"}
    at_two = AnalysisProgress(**{**STARTED.to_dict(), "judged": 1, "passed": 1})
    failed, _, _ = completed(monkeypatch, event("fail", verdict, at_two, "canary analysis failed at interval 2: ..."))
    assert isinstance(failed, AirflowFailException)

    monkeypatch.setenv("DEPLOYFLOW_PROMETHEUS_URL", "http://prom")
    stopped: list[str] = []
    monkeypatch.setattr(sensors, "stop_load", lambda service, environment, log: stopped.append(environment))
    retry, other_run = TI(), TI()
    sensor = CanaryAnalysisSensor(task_id="analysis", service=shop(3), environment_name="staging")
    with pytest.raises(AirflowFailException, match="failed at interval 2 in an earlier try of this run"):
        sensor.execute({"ti": retry, "run_id": "r1"})  # never defers: no interval is judged again
    assert retry.pushed["verdict"] == verdict and stopped == ["staging"]  # the record's reason, the load stopped
    with pytest.raises(TaskDeferred):  # another run of the DAG judges as usual
        sensor.execute({"ti": other_run, "run_id": "r2"})


def test_each_interval_s_verdict_stays_under_its_own_key_for_the_releases_view(monkeypatch):
    monkeypatch.setattr(sensors.time, "time", lambda: 1014.0)
    after_one = AnalysisProgress(**{**STARTED.to_dict(), "judged": 1, "passed": 1})
    first = {"interval": 1, "result": "pass", "score": 100.0}
    _, ti, _ = completed(monkeypatch, event("continue", first, after_one, "interval 1: pass"))
    second = {"interval": 2, "result": "fail", "guard": "canary: 0 of 1 instance(s) running (and never restarted)"}
    sensor = CanaryAnalysisSensor(task_id="analysis", service=shop(3), environment_name="staging")
    monkeypatch.setattr(sensors, "stop_load", lambda service, environment, log: None)
    with pytest.raises(AirflowFailException):
        sensor.execute_complete({"ti": ti}, event("fail", second, after_one, "canary analysis failed at interval 2"))
    assert (ti.pushed["verdict_001"], ti.pushed["verdict_002"], ti.pushed["verdict"]) == (first, second, second)
