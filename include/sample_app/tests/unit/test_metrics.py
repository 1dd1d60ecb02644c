"""Metrics: counters, cumulative histogram buckets and the text format."""
from __future__ import annotations

import pytest

import app


@pytest.fixture
def metrics():
    return app.Metrics(version="1.2.3", commit="abc123", start_time=1700000000.5)


def test_empty_registry_still_has_info_and_start_time(metrics, parse_metrics):
    parsed = parse_metrics(metrics.render())
    assert parsed.types == {"http_requests_total": "counter", "http_request_duration_seconds": "histogram",
                            "app_info": "gauge", "process_start_time_seconds": "gauge"}
    assert parsed.series("http_requests_total") == []
    assert parsed.value("app_info", version="1.2.3", commit="abc123") == 1
    assert parsed.value("process_start_time_seconds") == 1700000000.5


def test_counts_by_code_method_and_path(metrics, parse_metrics):
    for code in (200, 200, 500):
        metrics.observe("GET", "/", code, 0.001)
    metrics.observe("HEAD", "/", 200, 0.001)
    metrics.observe("GET", "/health", 200, 0.001)
    parsed = parse_metrics(metrics.render())
    assert parsed.value("http_requests_total", code="200", method="GET", path="/") == 2
    assert parsed.value("http_requests_total", code="500", method="GET", path="/") == 1
    assert parsed.value("http_requests_total", code="200", method="HEAD", path="/") == 1
    assert parsed.value("http_requests_total", code="200", method="GET", path="/health") == 1
    assert len(parsed.series("http_requests_total")) == 4


def test_unknown_paths_and_methods_are_folded_into_other(metrics, parse_metrics):
    metrics.observe("GET", "/wp-admin", 404, 0.001)
    metrics.observe("GET", "/etc/passwd", 404, 0.001)
    metrics.observe("BREW", "/", 405, 0.001)
    parsed = parse_metrics(metrics.render())
    assert parsed.value("http_requests_total", code="404", method="GET", path="other") == 2
    assert parsed.value("http_requests_total", code="405", method="other", path="/") == 1


def test_histogram_buckets_are_cumulative(metrics, parse_metrics):
    # One observation per interesting spot: below the first bucket, exactly on
    # a bound (le is inclusive), between bounds, and above the last bound.
    durations = [0.001, 0.005, 0.007, 0.3, 1.0, 7.0]
    for seconds in durations:
        metrics.observe("GET", "/", 200, seconds)
    metrics.observe("GET", "/metrics", 200, 0.002)
    parsed = parse_metrics(metrics.render())

    expected = {"0.005": 2, "0.01": 3, "0.025": 3, "0.05": 3, "0.1": 3, "0.25": 3,
                "0.5": 4, "1.0": 5, "2.5": 5, "5.0": 5, "+Inf": 6}
    buckets = {labels["le"]: v for labels, v in parsed.series("http_request_duration_seconds_bucket")
               if labels["path"] == "/"}
    assert buckets == expected
    assert parsed.value("http_request_duration_seconds_count", path="/") == 6
    assert parsed.value("http_request_duration_seconds_sum", path="/") == pytest.approx(sum(durations))
    # /metrics has its own series and does not leak into the one for /.
    assert parsed.value("http_request_duration_seconds_count", path="/metrics") == 1
    assert parsed.value("http_request_duration_seconds_bucket", path="/metrics", le="0.005") == 1


def test_bucket_lines_are_in_ascending_le_order(metrics):
    metrics.observe("GET", "/", 200, 0.2)
    les = [line.split('le="')[1].split('"')[0] for line in metrics.render().splitlines()
           if line.startswith('http_request_duration_seconds_bucket{path="/",')]
    assert les == [repr(b) for b in app.BUCKETS] + ["+Inf"]


def test_info_label_values_are_escaped(parse_metrics):
    metrics = app.Metrics(version='1.0 "beta"\\x', commit="line1\nline2")
    parsed = parse_metrics(metrics.render())
    assert parsed.value("app_info", version='1.0 "beta"\\x', commit="line1\nline2") == 1


def test_concurrent_observations_are_not_lost(metrics, parse_metrics):
    import threading

    def hammer():
        for _ in range(500):
            metrics.observe("GET", "/", 200, 0.001)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parsed = parse_metrics(metrics.render())
    assert parsed.value("http_requests_total", code="200", method="GET", path="/") == 4000
    assert parsed.value("http_request_duration_seconds_count", path="/") == 4000
