"""After the Docker engine restarts (a host reboot, a daemon upgrade), every environment serves its live
version again by itself: instances, proxies, the registry and Prometheus restart with the engine.

The engine is restarted for real: stopped (its containers with it) and started again with the command
line it had (CI's is `dockerd --bridge=none ...`, started by .ci/run), or by systemd where systemd runs it.
The file's name puts it last among the end-to-end tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

import stack

from tests.e2e.harness import PORTS, PROMETHEUS_PORT, release, served_version

pytestmark = pytest.mark.e2e


def restart_engine(docker_client, timeout: float = 120) -> float:
    """Stop the Docker engine and start it again; the seconds until it answered again."""
    started = time.monotonic()
    if shutil.which("systemctl") and subprocess.run(["systemctl", "is-active", "--quiet", "docker"]).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=timeout)
    else:
        found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
        if len(found) != 1:
            pytest.fail(f"cannot restart the Docker engine: expected one dockerd process, found {found or 'none'}")
        pid = int(found[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGTERM)
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() - started > timeout:
                pytest.fail(f"dockerd (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.5)
        log = open("/tmp/deployflow-dockerd.log", "ab")  # noqa: SIM115 - the new engine keeps writing to it
        subprocess.Popen([a.decode() for a in argv], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            docker_client.ping()
            return time.monotonic() - started
        except Exception:  # noqa: BLE001 - any error means: not back yet
            if time.monotonic() - started > timeout:
                pytest.fail(f"the Docker engine did not answer within {timeout:.0f} s of its restart")
            time.sleep(0.5)


def serving(environment: str) -> str | None:
    try:
        return served_version(environment)
    except (requests.RequestException, ValueError, KeyError):
        return None


def test_after_an_engine_restart_every_environment_serves_its_live_version_again(airflow, docker_client):
    for environment in PORTS:
        if serving(environment) is None:  # give every environment a live version first
            assert release(airflow, environment, "main")["state"] == "success", environment
    live = {environment: serving(environment) for environment in PORTS}
    assert all(live.values()), live

    took = restart_engine(docker_client)

    deadline = time.monotonic() + 120
    while {e: serving(e) for e in PORTS} != live and time.monotonic() < deadline:
        time.sleep(1)
    assert {e: serving(e) for e in PORTS} == live, f"the engine answered again after {took:.0f} s"
    assert requests.get(f"http://{stack.REGISTRY_ADDR}/v2/", timeout=5).status_code == 200, "the registry is back"
    ready = requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=5)
    assert ready.status_code == 200, "Prometheus is back"
    # And the next release goes through on the restarted engine, over the live version.
    assert release(airflow, "dev", "main")["state"] == "success"
    assert serving("dev") == live["dev"]
