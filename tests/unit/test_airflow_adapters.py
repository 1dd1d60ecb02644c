"""The Airflow adapters' own logic: the health trigger and sensor, deployer results, release outcome.

HTTP here is real: a tiny server on 127.0.0.1 answers as a healthy or an
unready instance would. The Docker engine is not: a deployer container runs
on a fake API client.
"""

from __future__ import annotations

import json
import logging

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent
from docker.errors import APIError

from deployflow.airflow.deployer_operator import DeployerOperator
from deployflow.airflow.record import ending
from deployflow.airflow.deployer_step import last_error, last_result
from deployflow.airflow.lock import lock_engine
from deployflow.airflow.health_check import HealthCheckSensor
from deployflow.airflow.triggers import HealthCheckTrigger
from deployflow.catalog import parse_service
from deployflow.ledger.locks import EnvironmentLocks
from deployflow.outcomes import Outcome
from tests.unit.fakes import FakeDockerAPI


def serve(status: int) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b'{"status": "unavailable"}' if status >= 500 else b'{"status": "ok"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def healthy() -> Iterator[str]:
    server, url = serve(200)
    yield url
    server.shutdown()


@pytest.fixture
def unready() -> Iterator[str]:
    server, url = serve(503)
    yield url
    server.shutdown()


def test_trigger_serializes_to_its_classpath_and_arguments():
    trigger = HealthCheckTrigger(urls=["http://a"], paths=["/ready"], consecutive=2, interval_s=0.5, timeout_s=9)
    assert trigger.serialize() == (
        "deployflow.airflow.triggers.HealthCheckTrigger",
        {"urls": ["http://a"], "paths": ["/ready"], "consecutive": 2, "interval_s": 0.5, "timeout_s": 9},
    )
    classpath, kwargs = trigger.serialize()
    assert HealthCheckTrigger(**kwargs).serialize() == trigger.serialize()


async def first_event(trigger: HealthCheckTrigger, *, payload: bool = True) -> Any:
    async for event in trigger.run():
        return event.payload if payload else event
    raise AssertionError("the trigger ended without an event")


def test_trigger_ends_the_task_healthy_after_consecutive_good_rounds_with_no_worker_resume(healthy, caplog):
    trigger = HealthCheckTrigger(urls=[healthy], paths=["/health", "/ready"], consecutive=2, interval_s=0.05, timeout_s=5)
    trigger._log = logging.getLogger("health-trigger-test")  # the triggerer's logger goes to the task's log
    with caplog.at_level(logging.INFO, logger="health-trigger-test"):
        event = asyncio.run(first_event(trigger, payload=False))
    assert isinstance(event, TaskSuccessEvent)  # the triggerer ends the task: no process starts to say so
    assert "healthy after 2 rounds" in caplog.text


def test_trigger_fires_unhealthy_with_the_last_answer_on_timeout(unready):
    trigger = HealthCheckTrigger(urls=[unready], paths=["/ready"], consecutive=1, interval_s=0.05, timeout_s=0.3)
    event = asyncio.run(first_event(trigger))
    assert event["healthy"] is False
    assert f"{unready}/ready: HTTP 503" in event["reason"] and "unavailable" in event["reason"]


SERVICE = parse_service({
    "name": "shop", "source": {"repo": "/srv/shop"},
    "environments": {"prod": {"port": 18999, "health": {"consecutive": 2, "interval_s": 0.1, "timeout_s": 1}}},
})


def sensor(urls: object) -> HealthCheckSensor:
    return HealthCheckSensor(task_id="health", urls=urls, service=SERVICE, environment_name="prod")


def test_sensor_pokes_until_the_streak_is_long_enough(healthy):
    check = sensor([healthy])
    assert check.poke({}) is False  # one good round of two
    assert check.poke({}) is True


def test_sensor_reads_urls_rendered_from_xcom_as_text(healthy):
    check = sensor(str([healthy]))
    assert check.poke({}) is False and check.poke({}) is True


def test_sensor_fails_at_its_deadline_quoting_the_last_answers_and_tells_the_record_why(unready):
    check = sensor([unready])
    pushed: dict = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    with pytest.raises(AirflowFailException, match=r"not healthy after .*HTTP 503"):
        for _ in range(100):  # 100 x 0.05 s: well past the 1 s timeout
            check.poke({"ti": ti})
            time.sleep(0.05)
    assert pushed["failure"].startswith("health check failed: ") and "HTTP 503" in pushed["failure"]


def test_sensor_refuses_an_environment_missing_from_the_catalog(healthy):
    check = HealthCheckSensor(task_id="health", urls=[healthy], service=SERVICE, environment_name="qa")
    with pytest.raises(AirflowFailException, match="'qa' is not in the catalog of shop"):
        check.poke({})


def test_a_health_check_healthy_within_its_first_seconds_ends_in_the_task_with_no_trigger(healthy):
    assert sensor([healthy]).execute({}) is None  # two good rounds 0.1 s apart: no hand-off to the triggerer


def test_a_health_check_not_healthy_within_its_first_seconds_defers_the_rest_of_its_wait(unready, monkeypatch):
    monkeypatch.setattr("deployflow.airflow.health_check.INLINE_S", 0.35)
    with pytest.raises(TaskDeferred) as deferred:
        sensor([unready]).execute({})
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "deployflow.airflow.triggers.HealthCheckTrigger"
    assert {k: v for k, v in kwargs.items() if k != "timeout_s"} == {
        "urls": [unready], "paths": ["/health", "/ready", "/live"], "consecutive": 2, "interval_s": 0.1}
    assert 0.1 <= kwargs["timeout_s"] < 1  # what is left of the catalog's 1 s after probing in the task


def test_a_deferred_health_check_that_timed_out_fails_with_the_pokes_message_and_tells_the_record(unready):
    check = sensor([unready])
    trigger = HealthCheckTrigger(urls=[unready], paths=["/ready"], consecutive=2, interval_s=0.05, timeout_s=0.3)
    event = asyncio.run(first_event(trigger))
    pushed: dict = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    with pytest.raises(AirflowFailException, match=r"^not healthy after .*HTTP 503") as failed:
        check.execute_complete({"ti": ti}, event)
    assert str(failed.value) == event["reason"]
    assert pushed["failure"] == f"health check failed: {event['reason']}"


def test_the_deployer_result_is_the_last_json_line_wherever_logs_fall():
    lines = [b'{"step": "shift", "ok": true}', b"2026-01-01 00:00:00,000 INFO shift: 100 % of traffic"]
    assert last_result(lines) == {"step": "shift", "ok": True}
    assert last_result(["no json here"]) is None
    # stdout and stderr interleave: a log line can follow the result on the same line
    merged = '{"step": "rollback", "ok": true, "to": "a"}2026-01-01 00:00:00,000 INFO rollback: 100 % of traffic on a'
    assert last_result(["x", merged]) == {"step": "rollback", "ok": True, "to": "a"}
    assert last_error(["x", "2026-01-01 00:00:00,000 ERROR environment: 'qa' is not valid"]) == "environment: 'qa' is not valid"
    assert last_error([b"2026-01-01 00:00:00,000 ERROR bad input\n"]) == "bad input"  # DockerOperator hands bytes


NOTHING_BACK = {"rolled_back": False, "reason": "nothing deployed by this release", "seconds": 0.0}


@pytest.mark.parametrize(
    ("promote", "rollback", "how", "outcome", "said"),
    [
        ({"version": "b"}, None, {"deploy_started": True}, Outcome.PROMOTED, "promoted"),
        (None, {"rolled_back": True, "to": "a"}, {"deploy_started": True}, Outcome.ROLLED_BACK, "rolled back to a"),
        (None, {"rolled_back": True, "to": None}, {"deploy_started": True}, Outcome.ROLLED_BACK,
         "rolled back (first deploy: nothing left)"),
        (None, None, {"deploy_started": True}, Outcome.FAILED, "failed during deploy, the rollback did not finish"),
        (None, NOTHING_BACK, {"deploy_started": True}, Outcome.FAILED, "failed during deploy, nothing to roll back"),
        (None, NOTHING_BACK, {}, Outcome.FAILED_BEFORE_DEPLOY, "failed before deploy"),
        (None, {"rolled_back": True, "to": "a"}, {"rejected": True, "deploy_started": True}, Outcome.REJECTED,
         "rejected, rolled back to a"),
        (None, NOTHING_BACK, {"rejected": True}, Outcome.REJECTED, "rejected"),
        (None, None, {"refused": True}, Outcome.REFUSED, "refused"),
    ],
)
def test_how_a_release_ended_is_an_outcome_and_a_sentence(promote, rollback, how, outcome, said):
    how = {"refused": False, "rejected": False, "deploy_started": False, **how}
    assert ending({"promote": promote, "rollback": rollback}, **how) == (outcome, said)


def test_the_ledger_keeps_why_a_release_was_rolled_back_and_imports_lines_written_before(tmp_path):
    from deployflow.ledger import Ledger, ReleaseEntry, default_url

    because = "b failed its post-promotion watch at interval 2: only 0 of 2 instance(s) serve; traffic restored to a in 0.01 s"
    entry = ReleaseEntry.of(request={"service": "shop", "environment": "prod", "strategy": "blue-green"}, run_id="r1",
                            outcome=Outcome.ROLLED_BACK, said="rolled back to a", commit="c", image="reg/shop:b",
                            previous="a", started=None, rollback={"rolled_back": True, "to": "a", "because": because, "seconds": 1.5})
    assert entry.failure == because and entry.summary().endswith(f"rolled back to a ({because})")
    ledger = Ledger(default_url(tmp_path))
    ledger.record(entry)
    older = {k: v for k, v in entry.to_dict().items() if k not in ("failure", "config", "steps", "outcome_detail")}
    older["outcome"] = "rolled back to a"  # a line from before: the outcome was a sentence
    (tmp_path / "ledger.jsonl").write_text(json.dumps({**older, "run_id": "r0"}) + "\n")
    assert ledger.import_jsonl(tmp_path / "ledger.jsonl") == (1, 0)
    assert sorted((e.run_id, e.failure, e.outcome, e.outcome_detail) for e in ledger.entries()) == [
        ("r0", None, Outcome.ROLLED_BACK, "rolled back to a"), ("r1", because, Outcome.ROLLED_BACK, "rolled back to a")]


# ---- a deployer container on a fake Docker engine ---------------------------------------------

class StepTI:
    """The task instance of a run whose prepare started; records pushes."""

    def __init__(self, try_number: int = 1) -> None:
        self.pushed: list[tuple[str, object]] = []
        self.try_number = try_number

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return True if (task_ids, key) == ("prepare", "started") else None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))


def step_context(environment: str, run_id: str = "run-1", try_number: int = 1) -> dict[str, object]:
    """A deploy step's context in a run that holds ``environment``'s lock (its lock task ran), in the ledger of
    $DEPLOYFLOW_STATE."""
    engine = lock_engine()
    try:
        EnvironmentLocks(engine).acquire("shop", environment, run_id, "release_shop", is_stale=lambda holder: False)
    finally:
        engine.dispose()
    return {"ti": StepTI(try_number), "run_id": run_id}


LOG = b"2026-01-01 00:00:00,000 INFO shift: 25 % of traffic on green\n"
SHIFT_ARGS = ["shift", "--service-file", "/etc/deployflow/shop.yaml", "--environment", "prod", "--version", "v2",
              "--image", "127.0.0.1:5000/shop:v2", "--strategy", "canary"]
DEPLOYER_LABELS = {"io.deployflow.stack": "local", "io.deployflow.role": "deployer", "io.deployflow.service": "shop",
                   "io.deployflow.step": "shift", "io.deployflow.environment": "prod", "io.deployflow.run-id": "run-1",
                   "io.deployflow.task-id": "shift", "io.deployflow.try": "1"}
FIND = ("containers", ["io.deployflow.environment=prod", "io.deployflow.role=deployer", "io.deployflow.service=shop",
                       "io.deployflow.stack=local"])
RAN = [FIND, ("create_container", [*SHIFT_ARGS, "--fence", "1"], DEPLOYER_LABELS),
       ("start", "c0ffee"), ("wait", "c0ffee"), ("inspect_container", "c0ffee"), ("remove_container", "c0ffee", True)]


def deployer_step(api: FakeDockerAPI, tmp_path, monkeypatch: pytest.MonkeyPatch) -> DeployerOperator:
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    task = DeployerOperator(
        task_id="shift", step="shift", service=SERVICE, service_file=str(tmp_path / "shop.yaml"), environment_name="prod",
        version="v2", image_ref="127.0.0.1:5000/shop:v2", strategy="canary",
    )
    task.__dict__["hook"] = SimpleNamespace(api_client=api, client_created=True)  # DockerOperator.cli is hook.api_client
    return task


@pytest.mark.parametrize("exit_code, logs, raised, message", [
    (1, [LOG, b'{"step": "shift", "ok": false, "error": "canary analysis failed: errors 4.1 % > 1 %"}\n'],
     AirflowFailException, "canary analysis failed: errors 4.1 % > 1 %"),
    (2, [b"2026-01-01 00:00:00,000 ERROR environment: 'qa' is not valid\n"],
     AirflowFailException, "environment: 'qa' is not valid"),
    (137, [LOG], AirflowException, "deployer shift exited with 137 (may be retried)"),  # killed (OOM) mid-step
    (0, [LOG], AirflowFailException, "deployer shift printed no result"),
])
def test_the_deployer_containers_exit_code_decides_how_the_task_ends(tmp_path, monkeypatch, exit_code, logs, raised, message):
    api = FakeDockerAPI(exit_code, logs)
    task = deployer_step(api, tmp_path, monkeypatch)
    with pytest.raises(AirflowException) as caught:
        task.execute(step_context("prod"))
    assert caught.type is raised  # exactly: AirflowFailException is not retried, AirflowException may be
    assert str(caught.value) == message
    assert api.calls == RAN  # the exit code read from the stopped container, then the container removed
    assert task.container is None


def test_a_deployer_container_that_exits_0_returns_its_result(tmp_path, monkeypatch):
    api = FakeDockerAPI(0, [b'{"step": "shift", "ok": true, "weight": 25}\n', LOG])
    task = deployer_step(api, tmp_path, monkeypatch)
    assert task.execute(step_context("prod")) == {"step": "shift", "ok": True, "weight": 25}
    assert api.calls == RAN


@pytest.mark.parametrize("fail_on, ran", [("start", 3), ("wait", 4), ("inspect_container", 5)])
def test_the_deployer_container_is_removed_whatever_fails(tmp_path, monkeypatch, fail_on, ran):
    api = FakeDockerAPI(0, [LOG], fail_on=fail_on)
    task = deployer_step(api, tmp_path, monkeypatch)
    with pytest.raises(APIError, match=f"^{fail_on} failed$"):
        task.execute(step_context("prod"))
    assert api.calls == [*RAN[:ran], ("remove_container", "c0ffee", True)]


class ReleaseTI:
    """The task instance of a run: ``returned`` maps task ids to what they pushed."""

    def __init__(self, returned: dict[str, object]) -> None:
        self.returned = returned

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.returned.get(task_ids) if key == "return_value" else None


@pytest.mark.parametrize(
    ("verdict", "failure"),
    [
        (None, None),
        ({"interval": 3, "result": "pass", "final": True}, None),
        ({"interval": 1, "result": "fail", "guard": "canary: 0 of 1 instance(s) running (and never restarted)"},
         "canary analysis failed at interval 1: canary: 0 of 1 instance(s) running (and never restarted)"),
        ({"interval": 2, "result": "fail", "reasons": ["fail: score 50", "latency: high: the tail is heavier", "groups: x"]},
         "canary analysis failed at interval 2: fail: score 50; latency: high: the tail is heavier"),
        # a nodata interval fails the analysis when its no-data policy says so, and only then
        ({"interval": 1, "result": "nodata", "decision": "fail", "reasons": [
            "nodata (no request reached the canary track in the window judged)", "error_rate: no data: no traffic"]},
         "canary analysis failed at interval 1: nodata (no request reached the canary track in the window judged); "
         "error_rate: no data: no traffic"),
        ({"interval": 2, "result": "nodata", "decision": "pass", "final": True, "reasons": ["nodata (...)"]}, None),
    ],
)
def test_the_ledger_says_why_canary_analysis_failed_a_release(verdict, failure):
    from deployflow.airflow.record import analysis_failure

    assert analysis_failure(verdict) == failure


def test_a_deferred_health_check_goes_to_the_triggerer_of_the_queue_its_try_was_routed_to(healthy, monkeypatch):
    """Airflow files the trigger under ``ti.task.queue`` (the DAG's), not the routed instance's queue: the
    probes of a Docker host's instances must run on that host's triggerer."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import _defer_task

    monkeypatch.setenv("AIRFLOW__TRIGGERER__QUEUES_ENABLED", "True")
    monkeypatch.setattr("deployflow.airflow.health_check.INLINE_S", 0)  # defer at once
    check = sensor([healthy])
    assert check.queue == "default"
    ti = SimpleNamespace(queue="host-b", task=check, dag_id="release_shop", task_id="health", run_id="r1")
    with pytest.raises(TaskDeferred) as deferred:
        check.execute({"ti": ti})
    message, _ = _defer_task(deferred.value, ti, SimpleNamespace(info=lambda *args, **kwargs: None))
    assert message.queue == "host-b"
