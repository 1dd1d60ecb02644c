"""After the Docker engine restarts (a host reboot, a daemon upgrade), every environment serves its live
version again by itself: instances, proxies, the registry and Prometheus restart with the engine.

The engine is restarted for real: stopped (its containers with it) and started again with the command
line it had (CI's is `dockerd --bridge=none ...`, started by .ci/run), or by systemd where systemd runs it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from deployflow.pipeline.registry import RegistryCredentials, credentials_file
from deployflow.stack.containers import Registry
from tests.engines import restart_engine
from tests.runner import ALONE_AFTER  # a file written once every other test process has ended

from tests.e2e.harness import PORTS, PROMETHEUS_PORT, release, served_version, short_sha

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]  # the wait for the other test processes counts too


@pytest.fixture(autouse=True, scope="module")
def alone() -> None:
    """Under ``make test`` other test processes share this engine (the other shard's stack, the scale tests'): wait
    until they have ended, or the restart would be a fault injected into their tests too. Run by hand: no wait."""
    done = os.environ.get(ALONE_AFTER)
    if not done:
        return
    print("\n[harness] waiting for the other test processes to end: this test restarts the engine they share", flush=True)
    started = time.monotonic()
    while not Path(done).exists():
        if time.monotonic() - started > 3000:
            pytest.fail(f"the other test processes did not end within 3000 s ({done} was never written)")
        time.sleep(5)
    print(f"[harness] they ended after {time.monotonic() - started:.0f} s", flush=True)


def serving(environment: str) -> str | None:
    try:
        return served_version(environment)
    except (requests.RequestException, ValueError, KeyError):
        return None


def prometheus_ready() -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_after_an_engine_restart_every_environment_serves_its_live_version_again(airflow, docker_client, sample_repo):
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
    registry = RegistryCredentials.read(credentials_file())
    back = requests.get(f"http://{Registry().addr}/v2/", auth=(registry.username, registry.password), timeout=5)
    assert back.status_code == 200, "the registry is back"
    # Prometheus answers 503 until it has replayed its write-ahead log: back means ready within the deadline.
    while not prometheus_ready() and time.monotonic() < deadline:
        time.sleep(1)
    assert prometheus_ready(), "Prometheus is back"
    # And the next release goes through on the restarted engine, over the live version (whatever an
    # earlier module left there: main, or another commit).
    assert release(airflow, "dev", "main", force=True)["state"] == "success"  # a deploy, even where main is live
    assert serving("dev") == short_sha(sample_repo, "main")
