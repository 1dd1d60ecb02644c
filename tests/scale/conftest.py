"""One Celery setup for the scale tests (deployflow.stack.celery): PostgreSQL, Redis, Airflow's processes
and two Celery workers, each in its own home under a temporary directory, started once per session.

Needs Docker, PostgreSQL and Redis from Debian: without one of them these tests fail; they never skip.
The catalog is the e2e tests' sample-app (a scratch repository, tests/scenarios.py) on ports of its own;
its dev environment names a Docker host (``docker_host: {connection: docker_host_b, queue: host-b}``): a
second engine (tests/engines.py, its own socket and data root) standing for host B. The scheduler's
routing policy sends dev's deploy steps to worker-b and their deferred waits to triggerer-b.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deployflow.client import AirflowClient
from deployflow.stack import celery as celery_stack
from deployflow.stack.containers import containers_down, ensure_images
from deployflow.stack.secrets import admin_password
from tests import engines, scenarios
from tests.scale.harness import DAG_ID, HOST_B_QUEUE, PORTS, Setup
from tests.stacks import wait_for_dag

ENGINE = "host-b"  # tests/engines.py's name of the second engine: /run/deployflow-host-b.sock


def second_engine() -> str:
    """The second Docker engine's URL, with the stack's deployer and proxy images (the service's own image
    comes from the registry, as on a real host)."""
    socket = engines.engine_up(ENGINE)
    engines.copy_images(ENGINE, engines.stack_images())
    return f"unix://{socket}"


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory) -> Path:
    return scenarios.make_repo(tmp_path_factory.mktemp("scale-repo"), crash_after_s=10)


@pytest.fixture(scope="session")
def setup(docker_client, sample_repo: Path, tmp_path_factory) -> Iterator[Setup]:
    # Not under pytest's directory (root's alone, 0700): the postgres user passes through this one (0711).
    top = Path(tempfile.mkdtemp(prefix="deployflow-celery-"))
    catalog = scenarios.write_catalog(tmp_path_factory.mktemp("scale-catalog"), sample_repo, PORTS)
    entry = yaml.safe_load((catalog / "sample-app.yaml").read_text())
    entry["environments"]["dev"]["replicas"] = 2
    # A health streak longer than the health check's first seconds in its task (health_check.INLINE_S): the rest
    # of the wait is deferred, and its trigger must run in host B's triggerer (the instances listen there).
    entry["environments"]["dev"]["health"] = {"health": "/health", "ready": "/ready", "live": "/live",
                                              "consecutive": 8, "interval_s": 1, "timeout_s": 60}
    extra = {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(tmp_path_factory.mktemp("scale-ws"))}
    ensure_images(docker_client)  # before copying the deployer's and the proxy's
    engine = second_engine()
    entry["environments"]["dev"]["docker_host"] = {"connection": "docker_host_b", "queue": HOST_B_QUEUE}
    extra["AIRFLOW_CONN_DOCKER_HOST_B"] = json.dumps({"conn_type": "docker", "host": engine})
    (catalog / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    try:
        celery_stack.up(top, celery_stack.PORT, extra)
        client = AirflowClient(f"http://127.0.0.1:{celery_stack.PORT}", timeout=90)
        client.login("admin", admin_password(top / "secrets"))
        wait_for_dag(client, DAG_ID)
        yield Setup(client=client, top=top, extra=extra, repo=sample_repo, engine=engine)
    finally:
        celery_stack.down(top)
        containers_down(engines.client(ENGINE), celery_stack.NAME)  # dev's proxy and instances
        engines.engine_down(ENGINE)
        shutil.rmtree(top, ignore_errors=True)
