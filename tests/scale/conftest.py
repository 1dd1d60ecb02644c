"""One Celery setup for the scale tests (scripts/celery_stack.py): PostgreSQL, Redis, Airflow's processes
and two Celery workers, each in its own home under a temporary directory, started once per session.

Needs Docker, PostgreSQL and Redis from Debian: without one of them these tests fail; they never skip.
The catalog is the e2e tests' sample-app (a scratch repository, scripts/scenarios.py) on ports of its own;
its dev environment's deploy steps go to the queue ``host-b`` (worker-b's). Where the catalog knows
``docker_host`` (environments.<env>.docker_host: {connection, queue}), that is what routes them, to the
second engine where scripts/engines.py can start one; until then a stand-in hook (tests/scale/routing)
routes them, and the tests say so.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

import celery_stack
import scenarios
from deployflow.client import AirflowClient
from tests.scale.harness import DAG_ID, HOST_B_QUEUE, PORTS, ROOT, Setup

ROUTING = Path(__file__).parent / "routing"


def catalog_knows_docker_host() -> bool:
    from deployflow.catalog import model

    return hasattr(model, "DockerHost")


def second_engine() -> str | None:
    """The second Docker engine's URL, with the stack's deployer and proxy images (scripts/engines.py, when it
    is there), else None."""
    try:
        import engines
    except ImportError:
        return None
    socket = engines.engine_up("host-b")
    engines.copy_images("host-b", engines.stack_images())
    return socket if "://" in socket else f"unix://{socket}"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the scale tests need a Docker engine and none answers ({exc}); .ci/run starts one", pytrace=False)
    return client


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
    extra = {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(tmp_path_factory.mktemp("scale-ws"))}
    engine = None
    if catalog_knows_docker_host():
        celery_stack.stack.ensure_images(docker_client)  # before copying the deployer's and the proxy's
        engine = second_engine()
        entry["environments"]["dev"]["docker_host"] = {"connection": "docker_host_b", "queue": HOST_B_QUEUE}
        extra["AIRFLOW_CONN_DOCKER_HOST_B"] = json.dumps({"conn_type": "docker", "host": engine or "unix:///var/run/docker.sock"})
        routing = "the catalog's docker_host" + (f" (engine {engine})" if engine else " (the local engine: no scripts/engines.py)")
    else:
        extra["PYTHONPATH"] = f"{ROUTING}:{ROOT / 'plugins'}"
        extra["DEPLOYFLOW_TEST_ROUTES"] = f"dev={HOST_B_QUEUE}"
        routing = "the stand-in hook tests/scale/routing (the catalog has no docker_host yet)"
    print(f"\n[scale] dev's deploy steps are routed to {HOST_B_QUEUE} by {routing}", file=sys.stderr)
    (catalog / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    try:
        celery_stack.up(top, celery_stack.PORT, extra)
        client = AirflowClient(f"http://127.0.0.1:{celery_stack.PORT}", timeout=90)
        client.login("admin", celery_stack.stack.admin_password(top / "secrets"))
        celery_stack.stack.wait_for_dag(client, DAG_ID)
        yield Setup(client=client, top=top, extra=extra, repo=sample_repo, routing=routing, engine=engine)
    finally:
        celery_stack.down(top)
        if engine:  # dev's proxy and instances ran on the second engine
            celery_stack.stack.containers_down(docker.DockerClient(base_url=engine), celery_stack.NAME)
        shutil.rmtree(top, ignore_errors=True)
