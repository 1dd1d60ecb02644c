"""`python3 app.py` as a real process: start-up line, SIGTERM, crash, errors after start, bad config."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

APP_PY = Path(__file__).resolve().parents[2] / "app.py"


def launch(**env: str) -> subprocess.Popen:
    # A clean environment: fault knobs baked into an image must not leak into
    # the process-level tests, which set exactly what they check.
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": "0", "BIND": "127.0.0.1", **env}
    return subprocess.Popen([sys.executable, str(APP_PY)], env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def first_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no start-up line within {timeout} s")
    return proc.stdout.readline()


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def test_sigterm_stops_gracefully_with_exit_0(processes):
    proc = launch(APP_VERSION="9.9.9", APP_COMMIT="c0ffee", FAULT_LATENCY_MS="5")
    processes.append(proc)
    line = first_line(proc)
    match = re.fullmatch(r"sample-app listening version=9\.9\.9 commit=c0ffee track=- bind=127\.0\.0\.1 "
                         r"port=(\d+) faults=latency_ms=5\n", line)
    assert match, line
    url = f"http://127.0.0.1:{match.group(1)}"
    assert requests.get(url + "/", timeout=5).json()["version"] == "9.9.9"

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert out.strip().endswith("sample-app stopped on SIGTERM")
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/live", timeout=2)


def test_crash_after_exits_1_and_is_live_until_then(processes):
    started = time.monotonic()
    proc = launch(FAULT_CRASH_AFTER_S="1")
    processes.append(proc)
    line = first_line(proc)
    assert "faults=crash_after_s=1" in line
    port = re.search(r"port=(\d+)", line).group(1)
    assert requests.get(f"http://127.0.0.1:{port}/live", timeout=0.5).status_code == 200
    assert proc.wait(timeout=6) == 1
    assert time.monotonic() - started >= 1.0
    assert "crashing on purpose: FAULT_CRASH_AFTER_S=1" in proc.stdout.read()


def test_crash_after_requests_answers_that_many_then_exits_1(processes):
    proc = launch(FAULT_CRASH_AFTER_REQUESTS="3")
    processes.append(proc)
    line = first_line(proc)
    assert "faults=crash_after_requests=3" in line
    url = "http://127.0.0.1:" + re.search(r"port=(\d+)", line).group(1)
    # Probes do not count: the version passes its health checks before it takes traffic.
    assert [requests.get(url + "/health", timeout=5).status_code for _ in range(5)] == [200] * 5
    assert [requests.get(url + "/", timeout=5).status_code for _ in range(3)] == [200] * 3
    assert proc.wait(timeout=5) == 1
    assert "crashing on purpose: FAULT_CRASH_AFTER_REQUESTS=3" in proc.stdout.read()


def test_errors_after_start_on_the_real_clock(processes):
    started = time.monotonic()
    proc = launch(FAULT_ERROR_RATE="1", FAULT_ERRORS_AFTER_S="1", FAULT_SLOW_FRACTION="0.01", FAULT_SLOW_MS="5")
    processes.append(proc)
    line = first_line(proc)
    assert line.endswith(" faults=error_rate=1,errors_after_s=1,slow_fraction=0.01,slow_ms=5\n"), line
    url = "http://127.0.0.1:" + re.search(r"port=(\d+)", line).group(1)
    codes = []
    while 500 not in codes and time.monotonic() - started < 30:
        codes.append(requests.get(url + "/", timeout=5).status_code)
        time.sleep(0.05)
    first_error_after = time.monotonic() - started
    # The process started after `started`, so its errors cannot come before
    # `started` + 1 s; once they come, every request fails.
    assert first_error_after >= 1.0
    assert codes[-1] == 500 and set(codes[:-1]) <= {200}, codes
    assert [requests.get(url + "/", timeout=5).status_code for _ in range(3)] == [500] * 3
    assert requests.get(url + "/health", timeout=5).status_code == 200


def test_bad_config_exits_2_naming_the_variable(processes):
    proc = launch(PORT="99999")
    processes.append(proc)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert "PORT='99999' is invalid: must be an integer between 0 and 65535" in err
