from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployflow.analysis.loadgen import LoadGenerator, LoadReport, Sample


@pytest.mark.parametrize(
    ("status", "failed"),
    [(None, True), (200, False), (302, False), (404, False), (499, False), (500, True), (503, True)],
)
def test_sample_failed_means_no_answer_or_a_server_error(status, failed):
    assert Sample(at=1.0, status=status, version=None).failed is failed


REPORT = LoadReport([
    Sample(0.0, 200, "v1"),
    Sample(0.5, 200, "v1"),
    Sample(1.0, 502, None),
    Sample(1.5, None, None, "ConnectionError"),
    Sample(2.0, 200, "v2"),
    Sample(2.5, 404, None),
    Sample(3.0, 200, "v2"),
    Sample(4.0, None, None, "ConnectionError"),
])


def test_report_counts_sent_and_failures():
    assert REPORT.sent == 8
    assert [s.at for s in REPORT.failures] == [1.0, 1.5, 4.0]


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (0.0, float("inf"), {"v1": 2, "v2": 2, "?": 1}),
        (0.0, 1.0, {"v1": 2}),
        (0.5, 2.0, {"v1": 1}),  # since is inclusive, until is not
        (2.0, 3.0, {"v2": 1, "?": 1}),
        (5.0, 9.0, {}),
    ],
)
def test_report_by_version_counts_answers_in_a_window(since, until, expected):
    assert REPORT.by_version(since, until) == Counter(expected)


def test_report_summary():
    assert REPORT.summary() == (
        "8 requests in 4.0 s, 3 failed ({'502': 1, 'ConnectionError': 2}), served by {'v1': 2, 'v2': 2, '?': 1}")
    assert LoadReport().summary() == "0 requests in 0.0 s, 0 failed, served by {}"


class VersionHandler(BaseHTTPRequestHandler):
    """Answers every GET with the sample service's JSON: {"version": "v7"}."""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"version": "v7"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), VersionHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_load_generator_counts_answers_then_failures_once_the_server_is_gone(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with LoadGenerator(url, rate=50, threads=2, timeout=1.0) as load:
        time.sleep(1.0)
        going = time.time()  # Sample.at is wall-clock time
        server.shutdown()
        server.server_close()
        gone = time.time()
        time.sleep(0.5)
    report = load.report
    # a request sent a moment before the shutdown may still be cut off: leave it out
    before = [s for s in report.samples if s.at < going - 0.1]
    after = [s for s in report.samples if s.at > gone]
    # paced at 50 per second: about 45 in the first 0.9 s, never a burst far above the rate
    assert 20 <= len(before) <= 50
    assert [s for s in before if s.failed] == []
    assert report.by_version(until=going - 0.1) == Counter({"v7": len(before)})
    assert after and all(s.failed and s.error == "ConnectionError" for s in after)
    assert len(report.failures) >= len(after)
    assert [s.at for s in report.samples] == sorted(s.at for s in report.samples)


def test_load_generator_stops_by_itself_after_max_seconds(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    load = LoadGenerator(url, rate=50, threads=2, max_seconds=0.3)
    load.start()
    time.sleep(0.8)
    assert not any(w.is_alive() for w in load._workers)
    report = load.stop()
    assert 5 <= report.sent <= 20
    assert report.failures == []
