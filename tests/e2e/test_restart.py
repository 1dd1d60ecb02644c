"""After the Docker engine restarts (a host reboot, a daemon upgrade), every environment serves its live
version again by itself: instances, proxies, the registry and Prometheus restart with the engine.

The engine is restarted for real: stopped (its containers with it) and started again with the command
line it had (CI's is `dockerd --bridge=none ...`, started by .ci/run), or by systemd where systemd runs it.
"""

from __future__ import annotations

import time

import pytest
import requests

from deployflow.pipeline.registry import RegistryCredentials, credentials_file
from deployflow.stack.containers import Registry
from tests.engines import restart_engine

from tests.e2e.harness import PORTS, PROMETHEUS_PORT, release, served_version, short_sha

pytestmark = pytest.mark.e2e


def serving(environment: str) -> str | None:
    try:
        return served_version(environment)
    except (requests.RequestException, ValueError, KeyError):
        return None


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
    ready = requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=5)
    assert ready.status_code == 200, "Prometheus is back"
    # And the next release goes through on the restarted engine, over the live version (whatever an
    # earlier module left there: main, or another commit).
    assert release(airflow, "dev", "main", force=True)["state"] == "success"  # a deploy, even where main is live
    assert serving("dev") == short_sha(sample_repo, "main")
