"""A steady HTTP load through the proxy, counting every failed request.

Used by the end-to-end tests and the deploy benchmark to prove "no failed
request", and by the release DAG to drive traffic during canary analysis (the
idea of Flagger's load tester). Requests are paced open-loop at ``rate`` per
second from a few threads with keep-alive sessions; each answer's status and
the version that served it (the sample service's JSON ``version``) are kept
with a timestamp, so a test can see when traffic moved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass(frozen=True)
class Sample:
    at: float  # wall-clock time, to line samples up with other logs
    status: int | None  # None: no HTTP answer at all
    version: str | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class LoadReport:
    samples: list[Sample] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]

    def by_version(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        return Counter(s.version or "?" for s in self.samples if since <= s.at < until and not s.failed)

    def summary(self) -> str:
        errors = Counter(s.error or str(s.status) for s in self.failures)
        seconds = (self.samples[-1].at - self.samples[0].at) if self.samples else 0.0
        return (
            f"{self.sent} requests in {seconds:.1f} s, {len(self.failures)} failed"
            + (f" ({dict(errors)})" if errors else "")
            + f", served by {dict(self.by_version())}"
        )


class LoadGenerator:
    """``rate`` requests per second to ``url`` until stopped (or ``max_seconds``)."""

    def __init__(self, url: str, *, rate: float = 100.0, threads: int = 4, timeout: float = 5.0, max_seconds: float = 900) -> None:
        self.url = url
        self.rate = rate
        self.threads = threads
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.report = LoadReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.started = 0.0

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True, name=f"load-{index}")
            worker.start()
            self._workers.append(worker)

    def stop(self) -> LoadReport:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 1)
        with self._lock:
            self.report.samples.sort(key=lambda s: s.at)
        return self.report

    def _run(self, index: int) -> None:
        period = self.threads / self.rate
        next_at = self.started + index * (1 / self.rate)
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() - self.started < self.max_seconds:
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                next_at += period
                sample = self._one(session)
                with self._lock:
                    self.report.samples.append(sample)

    def _one(self, session: requests.Session) -> Sample:
        at = time.time()
        try:
            response = session.get(self.url, timeout=self.timeout)
        except requests.RequestException as exc:
            return Sample(at, None, None, type(exc).__name__)
        version = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                version = response.json().get("version")
            except ValueError:
                pass
        return Sample(at, response.status_code, version)


class InProcessLoad:
    """The analysis load in the calling task (a Kubernetes environment's front URL is the cluster's, which a
    container on a Docker host need not reach): ``start`` returns when the judging is over or at the bound."""

    def __init__(self, *, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.poll_s, self.sleep = poll_s, sleep

    def start(self, *, image: str, url: str, rate: float, max_seconds: int,
              judging_over: Callable[[], bool]) -> dict[str, Any]:
        with LoadGenerator(url, rate=rate, threads=2, max_seconds=max_seconds) as load:
            while time.monotonic() - load.started < max_seconds and not judging_over():
                self.sleep(self.poll_s)
        logging.getLogger("deployflow.analysis").info("load: %s", load.report.summary())
        return {"requests": load.report.sent, "failed": len(load.report.failures)}

    def stop(self) -> bool:
        return False  # it ran in its task, which has ended

    def finish(self) -> dict[str, Any] | None:
        return None  # its task logged its report


def main(argv: list[str] | None = None) -> int:
    """``python -m deployflow.analysis.loadgen URL --rate R --max-seconds S``: run until the bound or SIGTERM, then print the
    report as a last JSON line (``docker stop`` sends SIGTERM; whoever stops the container reads that line)."""
    import argparse
    import json
    import signal

    parser = argparse.ArgumentParser(prog="python -m deployflow.analysis.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long, whatever happens")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # as PID 1 in a container, only a handled signal stops it
    load = LoadGenerator(args.url, rate=args.rate, threads=args.threads, max_seconds=args.max_seconds)
    print(f"load: {args.rate:g} requests/s to {args.url} for up to {args.max_seconds:.0f} s", flush=True)
    try:
        load.start()
        stopped.wait(args.max_seconds)
        report = load.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"load: {report.summary()}", flush=True)
    print(json.dumps({"requests": report.sent, "failed": len(report.failures)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
