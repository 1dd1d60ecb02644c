"""Load `/` from 8 keep-alive clients and hold the server's own time per request to a budget."""
from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter

import requests

REQUESTS = 300
CLIENTS = 8
# Generous on purpose: this catches a slow handler, not the noise of a busy CI
# machine. Held against the server's own time (its histogram's mean), not the
# clients': on a busy machine the 8 client threads wait for the CPU and the GIL
# beside the server, and their p95 measured that wait (over 250 ms seen on a
# 2-core machine running other tests) rather than the handler. Tighten with
# PERF_BUDGET_MS.
BUDGET_MS = float(os.environ.get("PERF_BUDGET_MS") or 250)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)]


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0


def test_root_latency_within_budget(running, parse_metrics, capsys):
    latencies: list[float] = []
    errors: list[str] = []
    answered: Counter[str] = Counter()  # status codes of every answer the clients got, warm-ups included
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)
    shares = [REQUESTS // CLIENTS + (i < REQUESTS % CLIENTS) for i in range(CLIENTS)]

    def client(count: int) -> None:
        mine, failed, codes = [], [], Counter()
        with requests.Session() as session:
            codes[str(session.get(running.url + "/", timeout=10).status_code)] += 1  # warm-up: connect outside the measurement
            barrier.wait(timeout=30)
            for _ in range(count):
                started = time.perf_counter()
                try:
                    response = session.get(running.url + "/", timeout=10)
                    codes[str(response.status_code)] += 1
                    if response.status_code != 200:
                        failed.append(f"HTTP {response.status_code}")
                except requests.RequestException as exc:
                    failed.append(repr(exc))
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors.extend(failed)
            answered.update(codes)

    threads = [threading.Thread(target=client, args=(n,)) for n in shares]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=120)
    wall = time.perf_counter() - started

    ordered = sorted(latencies)
    p50, p95 = percentile(ordered, 50) * 1000, percentile(ordered, 95) * 1000
    with capsys.disabled():
        print(f"\n[perf] {len(ordered)} requests, {CLIENTS} clients: p50={p50:.1f} ms p95={p95:.1f} ms "
              f"max={ordered[-1] * 1000:.1f} ms throughput={len(ordered) / wall:.0f} req/s "
              f"errors={len(errors)} (the clients' view)")

    assert len(ordered) == REQUESTS
    assert errors == [], f"{len(errors)} failed requests, e.g. {errors[:3]}"
    # Every answer a client holds is already counted by the server, under its
    # status code, and timed: the measured requests and one warm-up per client,
    # no more and no fewer.
    assert answered == {"200": REQUESTS + CLIENTS}, dict(answered)
    metrics = parse_metrics(requests.get(running.url + "/metrics", timeout=10).text)
    counted = {labels["code"]: n for labels, n in metrics.series("http_requests_total")
               if labels["method"] == "GET" and labels["path"] == "/"}
    assert counted == answered, f"the server counted {counted}, the clients were answered {dict(answered)}"
    handled = metrics.value("http_request_duration_seconds_count", path="/")
    assert handled == REQUESTS + CLIENTS
    mean_ms = metrics.value("http_request_duration_seconds_sum", path="/") / handled * 1000
    with capsys.disabled():
        print(f"[perf] the server's own time: mean {mean_ms:.2f} ms per request, budget {BUDGET_MS:g} ms")
    assert mean_ms < BUDGET_MS, f"the server took {mean_ms:.1f} ms per request on average, over the {BUDGET_MS:g} ms budget"
