"""The real server, in-process on 127.0.0.1, exercised over HTTP."""
from __future__ import annotations

import hashlib
import http.client
import socket
import time

import pytest
import requests

import app

JSON = "application/json"
TIMEOUT = 5


def get(running, path, session=requests):
    return session.get(running.url + path, timeout=TIMEOUT)


def test_root_describes_the_build(start_server):
    running = start_server(APP_VERSION="1.2.3", APP_COMMIT="abc123", APP_TRACK="canary")
    response = get(running, "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.json() == {"service": "sample-app", "version": "1.2.3", "commit": "abc123",
                               "track": "canary", "hostname": socket.gethostname(), "config_version": "", "flags": {}}


def test_config_shows_flags_and_digests_of_settings_and_files_never_their_values(start_server, tmp_path):
    (tmp_path / "tls.key").write_text("-----BEGIN KEY-----")
    running = start_server(CONFIG_VERSION="c0ffee00c0de", FLAG_NEW_CHECKOUT="true", SAMPLE_API_KEY="k-123",
                           SAMPLE_GREETING="hello", CONFIG_DIR=str(tmp_path))
    response = get(running, "/config")
    assert response.status_code == 200 and "k-123" not in response.text and "BEGIN" not in response.text
    assert response.json() == {
        "config_version": "c0ffee00c0de", "flags": {"FLAG_NEW_CHECKOUT": "true"},
        "sha256": {"SAMPLE_API_KEY": hashlib.sha256(b"k-123").hexdigest(), "SAMPLE_GREETING": hashlib.sha256(b"hello").hexdigest()},
        "files": {"tls.key": hashlib.sha256(b"-----BEGIN KEY-----").hexdigest()},
    }
    root = get(running, "/").json()
    assert (root["config_version"], root["flags"]) == ("c0ffee00c0de", {"FLAG_NEW_CHECKOUT": "true"})


@pytest.mark.parametrize("path", ["/health", "/ready", "/live", "/health?verbose=1"])
def test_probes_pass_by_default(running, path):
    response = get(running, path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    assert response.json()["status"] == "ok"


def test_unknown_path_is_404_json(running):
    response = get(running, "/nope")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == JSON
    assert response.json() == {"error": "not found", "path": "/nope"}


def test_head_has_get_headers_and_no_body(running):
    get_response = get(running, "/health")
    head = requests.head(running.url + "/health", timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == get_response.headers["Content-Length"]


def test_other_methods_are_405_and_close_the_connection(running):
    response = requests.post(running.url + "/", data=b"payload", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["Connection"] == "close"
    assert get(running, "/").status_code == 200


def test_keep_alive_reuses_one_connection(running):
    conn = http.client.HTTPConnection("127.0.0.1", running.server.server_address[1], timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        assert first.version == 11 and not first.will_close
        conn.request("GET", "/metrics")
        second = conn.getresponse()
        second.read()
        assert second.status == 200
        assert conn.sock is sock  # http.client opens a new socket if the server closed it
    finally:
        conn.close()


def test_metrics_reflect_requests(running, parse_metrics):
    session = requests.Session()
    for _ in range(3):
        assert get(running, "/", session).status_code == 200
    session.head(running.url + "/", timeout=TIMEOUT)
    get(running, "/health", session)
    get(running, "/ready", session)
    get(running, "/nope", session)
    get(running, "/wp-login.php", session)

    response = get(running, "/metrics", session)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = parse_metrics(response.text)
    assert metrics.value("http_requests_total", code="200", method="GET", path="/") == 3
    assert metrics.value("http_requests_total", code="200", method="HEAD", path="/") == 1
    assert metrics.value("http_requests_total", code="200", method="GET", path="/health") == 1
    assert metrics.value("http_requests_total", code="200", method="GET", path="/ready") == 1
    assert metrics.value("http_requests_total", code="404", method="GET", path="other") == 2
    assert metrics.value("http_request_duration_seconds_count", path="/") == 4
    assert metrics.value("http_request_duration_seconds_bucket", path="/", le="+Inf") == 4
    # The scrape being answered is recorded after it is rendered.
    assert metrics.value("http_request_duration_seconds_count", path="/metrics") is None
    assert metrics.value("app_info", version=running.app.config.version, commit=running.app.config.commit) == 1
    assert time.time() - 60 < metrics.value("process_start_time_seconds") <= time.time()

    again = parse_metrics(get(running, "/metrics", session).text)
    assert again.value("http_requests_total", code="200", method="GET", path="/metrics") == 1
    assert again.value("http_request_duration_seconds_count", path="/") == 4


def test_a_client_holding_its_answer_finds_it_counted(running, parse_metrics, monkeypatch):
    # A handler thread slow to get the CPU after answering, made certain: had
    # the request been counted after its answer went out, the scrape below,
    # on a new connection, would come in first.
    metrics = running.app.metrics
    observe = metrics.observe

    def slow_observe(*args):
        time.sleep(0.5)
        observe(*args)

    monkeypatch.setattr(metrics, "observe", slow_observe)
    assert get(running, "/").status_code == 200
    monkeypatch.setattr(metrics, "observe", observe)
    scraped = parse_metrics(get(running, "/metrics").text)
    assert scraped.value("http_requests_total", code="200", method="GET", path="/") == 1
    assert scraped.value("http_request_duration_seconds_count", path="/") == 1


def test_ready_never_fails_only_readiness(start_server):
    running = start_server(FAULT_READY_NEVER="1")
    ready = get(running, "/ready")
    assert ready.status_code == 503
    assert ready.headers["Content-Type"] == JSON
    assert ready.json()["status"] == "unavailable"
    assert get(running, "/health").status_code == 200
    assert get(running, "/live").status_code == 200


def test_error_rate_one_fails_every_root_request(start_server, parse_metrics):
    running = start_server(FAULT_ERROR_RATE="1.0")
    codes = [get(running, "/").status_code for _ in range(5)]
    assert codes == [500] * 5
    assert get(running, "/health").status_code == 200
    metrics = parse_metrics(get(running, "/metrics").text)
    assert metrics.value("http_requests_total", code="500", method="GET", path="/") == 5
    assert metrics.value("http_requests_total", code="200", method="GET", path="/") is None


def test_seeded_error_rate_is_repeatable_over_http(start_server):
    running = start_server(FAULT_ERROR_RATE="0.5", FAULT_SEED="3")
    reference = app.Faults(0.5, seed=3)
    expected = [500 if reference.should_fail() else 200 for _ in range(40)]
    assert [get(running, "/").status_code for _ in range(40)] == expected
    assert 200 in expected and 500 in expected


def test_latency_is_added_to_root_only(start_server, parse_metrics):
    running = start_server(FAULT_LATENCY_MS="80")
    started = time.perf_counter()
    assert get(running, "/").status_code == 200
    assert time.perf_counter() - started >= 0.08
    get(running, "/health")
    metrics = parse_metrics(get(running, "/metrics").text)
    assert metrics.value("http_request_duration_seconds_bucket", path="/", le="0.05") == 0
    assert metrics.value("http_request_duration_seconds_sum", path="/") >= 0.08
    assert metrics.value("http_request_duration_seconds_sum", path="/health") < 0.08


def test_slow_fraction_slows_the_seeded_few_and_not_the_median(start_server, parse_metrics):
    running = start_server(FAULT_SLOW_FRACTION="0.05", FAULT_SLOW_MS="200", FAULT_SEED="21")
    reference = app.Faults(0.0, seed=21, slow_fraction=0.05)
    chosen = {i for i in range(200) if reference.is_slow()}
    assert 5 <= len(chosen) <= 15  # about 5 %: a property of the seed, not of timing
    session = requests.Session()
    took = []
    for _ in range(200):
        started = time.perf_counter()
        assert get(running, "/", session).status_code == 200
        took.append(time.perf_counter() - started)
    slow = {i for i, seconds in enumerate(took) if seconds >= 0.2}
    # The chosen ones slept 200 ms, so they are slow whatever the machine does;
    # a busy machine may make a few others slow too, never half of them.
    assert chosen <= slow
    assert len(slow - chosen) <= 20
    assert sorted(took)[100] < 0.2
    metrics = parse_metrics(get(running, "/metrics", session).text)
    assert metrics.value("http_request_duration_seconds_count", path="/") == 200
    over_100ms = 200 - metrics.value("http_request_duration_seconds_bucket", path="/", le="0.1")
    assert len(chosen) <= over_100ms <= len(chosen) + 20


def test_errors_start_after_the_delay_and_spare_the_probes(start_server, clock, parse_metrics):
    running = start_server(clock=clock, FAULT_ERROR_RATE="1.0", FAULT_ERRORS_AFTER_S="1")
    probes = ("/health", "/ready", "/live")
    assert running.app.errors_at == clock.now + 1
    assert [get(running, "/").status_code for _ in range(5)] == [200] * 5
    clock.now = running.app.errors_at - 0.001
    assert get(running, "/").status_code == 200
    assert [get(running, p).status_code for p in probes] == [200, 200, 200]
    clock.now = running.app.errors_at
    assert [get(running, "/").status_code for _ in range(5)] == [500] * 5
    assert [get(running, p).status_code for p in probes] == [200, 200, 200]
    metrics = parse_metrics(get(running, "/metrics").text)
    assert metrics.value("http_requests_total", code="200", method="GET", path="/") == 6
    assert metrics.value("http_requests_total", code="500", method="GET", path="/") == 5


def test_draining_fails_readiness_only(running):
    running.app.draining = True  # what SIGTERM sets before the server stops
    assert get(running, "/ready").status_code == 503
    assert get(running, "/live").status_code == 200
    assert get(running, "/").status_code == 200


def test_probes_fail_once_crash_deadline_passed(start_server):
    running = start_server(FAULT_CRASH_AFTER_S="0.3")
    assert [get(running, p).status_code for p in ("/live", "/health", "/ready")] == [200, 200, 200]
    time.sleep(max(0.0, running.app.crash_at - time.monotonic()) + 0.02)
    # make_server never arms the crash itself (only main() does), so we are
    # still here, but the probes must stop claiming the process is fine.
    assert [get(running, p).status_code for p in ("/live", "/health", "/ready")] == [503, 503, 503]


def test_ipv6_bind(start_server):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = app.make_server(app.Config.from_env({"BIND": "::1", "PORT": "0"}))
    try:
        assert server.address_family == socket.AF_INET6
        assert server.server_address[0] == "::1"
    finally:
        server.server_close()


def test_main_exits_1_when_port_is_taken(running, capsys):
    port = running.server.server_address[1]
    assert app.main({"PORT": str(port)}) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
