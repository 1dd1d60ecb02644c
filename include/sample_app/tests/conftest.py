"""Shared fixtures: app import path, an in-process server, a /metrics parser."""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

APP_DIR = Path(__file__).resolve().parent.parent
# So `python3 -m pytest tests/<suite>` works from the app dir (and from /app in
# the image) without installing anything.
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

import app as sample_app  # noqa: E402


@dataclass
class Running:
    url: str
    app: sample_app.App
    server: sample_app.Server


@pytest.fixture
def start_server() -> Iterator[Callable[..., Running]]:
    """Start the real server in a thread on 127.0.0.1 and a free port.

    The configuration is the process environment without its fault knobs,
    overlaid with the keyword arguments (FAULT_ERROR_RATE=1.0, ...), and
    ``clock`` for the app (default: the real monotonic clock). Knobs
    baked into an image (Dockerfile ARG -> ENV) are left out on purpose: they
    stand for regressions that unit tests miss, which the release must then
    catch at deploy time (health checks, canary analysis).
    """
    started: list[tuple[sample_app.Server, threading.Thread]] = []

    def start(clock: Callable[[], float] = time.monotonic, **overrides: object) -> Running:
        ambient = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
        env = {**ambient, **{k: str(v) for k, v in overrides.items()}, "PORT": "0", "BIND": "127.0.0.1"}
        server = sample_app.make_server(sample_app.Config.from_env(env), clock,
                                        settings=sample_app.settings_view(env, env.get("CONFIG_DIR")))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        return Running(f"http://127.0.0.1:{server.server_address[1]}", server.app, server)

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def running(start_server: Callable[..., Running]) -> Running:
    return start_server()


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(?:,|$)')


class Exposition:
    """A strict-enough parser of Prometheus text format 0.0.4 for assertions."""

    def __init__(self, text: str) -> None:
        assert text.endswith("\n"), "exposition must end with a newline"
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                assert name not in self.types, f"TYPE given twice for {name}"
                self.types[name] = kind
                continue
            if line.startswith("# HELP "):
                continue
            match = _SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name, raw_labels, value = match.groups()
            family = name if name in self.types else re.sub(r"_(bucket|sum|count)$", "", name)
            assert family in self.types, f"sample before its TYPE line: {line!r}"
            key = (name, tuple(sorted(self._labels(raw_labels or "").items())))
            assert key not in self.samples, f"duplicate series: {line!r}"
            self.samples[key] = float(value)

    @staticmethod
    def _labels(raw: str) -> dict[str, str]:
        labels, pos = {}, 0
        while pos < len(raw):
            match = _LABEL.match(raw, pos)
            assert match, f"bad label set: {raw!r}"
            labels[match.group(1)] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2))
            pos = match.end()
        return labels

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(labels), v) for (n, labels), v in self.samples.items() if n == name]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def parse_metrics() -> Callable[[str], Exposition]:
    return Exposition
