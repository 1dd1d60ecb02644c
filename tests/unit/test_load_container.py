"""The analysis load runs as a detached container on the environment's Docker engine: the load task starts it
and returns; the record task stops it, reads its report and removes it."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from deployflow.analysis import load_container, loadgen
from deployflow.airflow import sites
from deployflow.airflow.load import AnalysisLoadOperator, finish_load, stop_load
from deployflow.catalog import parse_service
from deployflow.platforms.hardening import LOAD_LIMITS, hardening
from tests.unit.fakes import FakeDockerClient, image_id

LOG = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)


def shop(watch: dict | None = None):
    return parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {
        "port": 18996, "analysis": {"load_rate": 5, "interval_s": 10, "intervals": 3}, "post_promotion": watch or {"enabled": False}}}})


class ReleaseTI:
    def __init__(self, returned: dict[str, object]) -> None:
        self.returned = returned
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.returned.get(task_ids) if key == "return_value" else None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


@pytest.fixture
def engine(monkeypatch) -> FakeDockerClient:
    client = FakeDockerClient()
    monkeypatch.setattr(sites, "docker_client", lambda service, environment: client)
    monkeypatch.setenv("DEPLOYFLOW_STACK", "e2e")
    return client


def test_the_load_container_runs_the_load_generator_of_the_deployer_image_on_the_host_network():
    assert load_container.run_kwargs(image="deployflow/deployer:abc", url="http://127.0.0.1:18996/", rate=5,
                                     max_seconds=180, stack="e2e", service="shop", environment="prod") == {
        "image": "deployflow/deployer:abc",
        "entrypoint": ["python3", "-m", "deployflow.analysis.loadgen"],
        "command": ["http://127.0.0.1:18996/", "--rate", "5", "--max-seconds", "180", "--threads", "2"],
        "name": "df-e2e-shop-prod-load",
        "detach": True,
        "network_mode": "host",
        "labels": {"io.deployflow.stack": "e2e", "io.deployflow.role": "load", "io.deployflow.service": "shop",
                   "io.deployflow.environment": "prod"},
        "restart_policy": {"Name": "no"},
        **hardening(LOAD_LIMITS),
    }


def test_the_load_task_starts_a_detached_container_and_returns(engine):
    task = AnalysisLoadOperator(task_id="load", service=shop(), environment_name="prod", image="deployflow/deployer:abc")
    result = task.execute({"ti": ReleaseTI({"shift": {"analysis": True, "previous": "a"}})})
    assert result == {"container": "df-e2e-shop-prod-load", "max_seconds": 2 * 3 * 10 + 120}
    [(_, image, command, kwargs)] = engine.calls_of("run")
    assert (image, command[0], kwargs["detach"], kwargs["network_mode"]) == (
        image_id("deployflow/deployer:abc"), "http://127.0.0.1:18996/", True, "host")  # the tag's image, by ID
    assert list(engine.by_name) == ["df-e2e-shop-prod-load"]


def test_a_retried_load_task_replaces_the_running_load_never_adds_a_second(engine):
    engine.add("df-e2e-shop-prod-load", labels={"io.deployflow.role": "load"})
    task = AnalysisLoadOperator(task_id="load", service=shop(), environment_name="prod", image="deployflow/deployer:abc")
    task.execute({"ti": ReleaseTI({"shift": {"analysis": True, "previous": "a"}})})
    assert [c[0] for c in engine.calls if c[0] in ("remove", "run")] == ["remove", "run"]
    assert list(engine.by_name) == ["df-e2e-shop-prod-load"]


NO_WATCH = "nothing to drive traffic for: no canary analysis, no post-promotion watch"


@pytest.mark.parametrize(
    ("watch", "shifted", "skipped"),
    [
        ({"enabled": True}, {"analysis": False, "previous": "a"}, None),  # blue-green: traffic for the watch
        ({"enabled": True}, {"analysis": False, "previous": None}, f"{NO_WATCH} (a first deploy)"),
        ({"enabled": False}, {"analysis": False, "previous": "a"}, f"{NO_WATCH} (post_promotion is off in prod)"),
        ({"enabled": False}, {"analysis": True, "previous": "a"}, None),  # canary analysis
    ],
)
def test_the_load_runs_only_while_something_is_judged_and_says_why_not(engine, watch, shifted, skipped):
    task = AnalysisLoadOperator(task_id="load", service=shop(watch), environment_name="prod", image="img")
    ti = ReleaseTI({"shift": shifted})
    if skipped:
        with pytest.raises(AirflowSkipException, match=re.escape(skipped)):
            task.execute({"ti": ti})
        assert engine.calls_of("run") == [] and ti.pushed == {"skipped": skipped}
        return
    assert task.execute({"ti": ti})["container"] == "df-e2e-shop-prod-load"


def test_no_load_where_the_load_rate_is_0(engine):
    service = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {
        "port": 18996, "analysis": {"load_rate": 0}}}})
    ti = ReleaseTI({"shift": {"analysis": True, "previous": "a"}})
    with pytest.raises(AirflowSkipException):
        AnalysisLoadOperator(task_id="load", service=service, environment_name="prod", image="img").execute({"ti": ti})
    assert ti.pushed == {"skipped": "analysis.load_rate is 0 in prod: no synthetic traffic"}


LOAD_LOG = b"load: 5 requests/s to http://127.0.0.1:18996/ for up to 180 s\n" \
           b"load: 300 requests in 59.8 s, 0 failed, served by {'v2': 300}\n" \
           b'{"requests": 300, "failed": 0}\n'


def test_the_record_stops_the_load_reads_its_report_and_removes_it(engine):
    engine.add("df-e2e-shop-prod-load", logs=LOAD_LOG)
    report = finish_load(shop(), "prod", LOG)
    assert report == {"requests": 300, "failed": 0, "summary": "300 requests in 59.8 s, 0 failed, served by {'v2': 300}"}
    assert ("stop", "df-e2e-shop-prod-load", load_container.STOP_TIMEOUT_S) in engine.calls
    assert engine.by_name == {}


def test_a_failed_analysis_stops_the_load_and_keeps_it_for_the_records_report(engine):
    engine.add("df-e2e-shop-prod-load", logs=LOAD_LOG)
    stop_load(shop(), "prod", LOG)
    assert engine.by_name["df-e2e-shop-prod-load"].status == "exited"
    assert finish_load(shop(), "prod", LOG)["requests"] == 300


def test_no_load_container_is_nothing_to_finish(engine):
    assert finish_load(shop(), "prod", LOG) is None and finish_load(shop(), "qa", LOG) is None


def test_the_load_command_stops_at_its_bound_and_prints_its_report_last(capsys):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert loadgen.main([f"http://127.0.0.1:{server.server_address[1]}/", "--rate", "20", "--max-seconds", "0.5"]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    report = load_container.report_of(out)
    assert report["requests"] == json.loads(out.splitlines()[-1])["requests"] and report["requests"] > 0
    assert report["failed"] == 0 and " requests in " in report["summary"]
