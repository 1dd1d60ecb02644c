"""The Airflow adapters' own logic: the health trigger and sensor, deployer results, release outcome.

HTTP here is real: a tiny server on 127.0.0.1 answers as a healthy or an
unready instance would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.deploy import ReleaseRecordOperator, _last_error, _last_json
from deployflow.airflow.sensors import HealthCheckSensor
from deployflow.airflow.triggers import HealthCheckTrigger
from deployflow.catalog import parse_service


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


async def first_event(trigger: HealthCheckTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_trigger_fires_healthy_after_consecutive_good_rounds(healthy):
    trigger = HealthCheckTrigger(urls=[healthy], paths=["/health", "/ready"], consecutive=2, interval_s=0.05, timeout_s=5)
    event = asyncio.run(first_event(trigger))
    assert event["healthy"] is True
    assert "healthy after 2 rounds" in event["reason"]


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


def test_sensor_fails_at_its_deadline_quoting_the_last_answers(unready):
    check = sensor([unready])
    with pytest.raises(AirflowFailException, match=r"not healthy after .*HTTP 503"):
        for _ in range(100):  # 100 x 0.05 s: well past the 1 s timeout
            check.poke({})
            time.sleep(0.05)


def test_sensor_refuses_an_environment_missing_from_the_catalog(healthy):
    check = HealthCheckSensor(task_id="health", urls=[healthy], service=SERVICE, environment_name="qa")
    with pytest.raises(AirflowFailException, match="'qa' is not in the catalog of shop"):
        check.poke({})


def test_the_deployer_result_is_the_last_json_line_wherever_logs_fall():
    lines = [b'{"step": "shift", "ok": true}', b"2026-01-01 00:00:00,000 INFO shift: 100 % of traffic"]
    assert _last_json(lines) == {"step": "shift", "ok": True}
    assert _last_json(["no json here"]) is None
    # stdout and stderr interleave: a log line can follow the result on the same line
    merged = '{"step": "rollback", "ok": true, "to": "a"}2026-01-01 00:00:00,000 INFO rollback: 100 % of traffic on a'
    assert _last_json(["x", merged]) == {"step": "rollback", "ok": True, "to": "a"}
    assert _last_error(["x", "2026-01-01 00:00:00,000 ERROR environment: 'qa' is not valid"]) == "environment: 'qa' is not valid"
    assert _last_error([b"2026-01-01 00:00:00,000 ERROR bad input\n"]) == "bad input"  # DockerOperator hands bytes


@pytest.mark.parametrize(
    ("pulled", "started", "outcome"),
    [
        ({"promote": {"version": "b"}, "rollback": None}, True, "promoted"),
        ({"promote": None, "rollback": {"rolled_back": True, "to": "a"}}, True, "rolled back to a"),
        ({"promote": None, "rollback": {"rolled_back": True, "to": None}}, True, "rolled back (first deploy: nothing left)"),
        ({"promote": None, "rollback": None}, True, "failed during deploy"),
        ({"promote": None, "rollback": None}, False, "failed before deploy"),
    ],
)
def test_release_outcome(pulled, started, outcome):
    assert ReleaseRecordOperator._outcome(pulled, started) == outcome
