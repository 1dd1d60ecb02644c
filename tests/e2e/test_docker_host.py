"""An environment on its own Docker host: host-app's dev names a second engine (tests/engines.py), which
stands for another machine. Its proxy and instances run there; build and tests stay on the first engine.

The stack runs LocalExecutor, which ignores queues: this shows the engine half (and that the scheduler's
cluster policy put the deploy steps on the host's queue); the Celery setup runs them on that host's worker.
"""

from __future__ import annotations

import docker
import pytest
import requests

from deployflow.stack.containers import HAPROXY_IMAGE, containers_down, deployer_image
from tests import engines
from tests.e2e.harness import (
    HOST_CONNECTION, HOST_DAG, HOST_ENGINE, HOST_PORTS, HOST_QUEUE, STACK, branch, log_text, short_sha,
)

pytestmark = pytest.mark.e2e

SERVICE = "host-app"
DEPLOY_STEPS = ("prepare", "health", "shift", "promote", "record")


@pytest.fixture(scope="module")
def second_engine(airflow, docker_client) -> docker.DockerClient:
    """The second engine, with the deployer's and the proxy's images (the service's comes from the registry)."""
    engines.engine_up(HOST_ENGINE)
    engines.copy_images(HOST_ENGINE, [deployer_image(), HAPROXY_IMAGE])
    client = engines.client(HOST_ENGINE)
    containers_down(client, STACK)  # an earlier session's leftovers
    yield client
    containers_down(client, STACK)
    engines.engine_down(HOST_ENGINE)


def release(airflow, ref: str) -> dict:
    run_id = airflow.trigger(HOST_DAG, {"environment": "dev", "git_ref": ref})["dag_run_id"]
    run = airflow.wait(HOST_DAG, run_id, timeout=900)
    tis = airflow.task_instances(HOST_DAG, run_id)
    return {"run_id": run_id, "state": run["state"], "tasks": {ti["task_id"]: ti["state"] for ti in tis},
            "queues": {ti["task_id"]: ti["queue"] for ti in tis}}


def containers(client: docker.DockerClient, role: str) -> list:
    labels = [f"io.deployflow.stack={STACK}", f"io.deployflow.service={SERVICE}", f"io.deployflow.role={role}"]
    return client.containers.list(all=True, filters={"label": labels})


def served() -> str:
    return requests.get(f"http://127.0.0.1:{HOST_PORTS['dev']}/", timeout=5).json()["version"][:12]


def test_an_environment_with_a_docker_host_runs_its_proxy_and_instances_there(airflow, docker_client, second_engine,
                                                                               sample_repo):
    run = release(airflow, "main")
    assert run["state"] == "success", run["tasks"]
    main = short_sha(sample_repo, "main")
    assert served() == main  # through the proxy on the second engine

    # The scheduler's cluster policy put the deploy steps on the host's queue, the rest on the default one.
    assert {t: run["queues"][t] for t in DEPLOY_STEPS} == dict.fromkeys(DEPLOY_STEPS, HOST_QUEUE)
    assert {t: run["queues"][t] for t in ("resolve", "build", "test.unit")} == \
        dict.fromkeys(("resolve", "build", "test.unit"), "default")

    proxies, apps = containers(second_engine, "proxy"), containers(second_engine, "app")
    assert [c.status for c in proxies] == ["running"]
    assert sorted((c.status, c.labels["io.deployflow.version"]) for c in apps) == [("running", main)] * 2
    assert all(c.labels["io.deployflow.environment"] == "dev" for c in apps)
    # Nothing of host-app on the first engine: no proxy, no instance, no deployer left behind.
    everything = docker_client.containers.list(all=True, filters={"label": [f"io.deployflow.stack={STACK}", f"io.deployflow.service={SERVICE}"]})
    assert everything == []
    assert f"deployer prepare on connection '{HOST_CONNECTION}': unix:///run/deployflow-{HOST_ENGINE}.sock" in \
        log_text(airflow, run["run_id"], "prepare", dag_id=HOST_DAG)

    # A new version replaces it there; then one that never gets ready is rolled back, there too.
    new = branch(sample_repo, "host-2")
    run = release(airflow, "host-2")
    assert run["state"] == "success", run["tasks"]
    assert served() == new
    assert sorted(c.labels["io.deployflow.version"] for c in containers(second_engine, "app")) == [new, new]

    run = release(airflow, "ready-never")
    assert run["state"] == "failed" and run["tasks"]["rollback"] == "success", run["tasks"]
    assert (run["queues"]["health"], run["queues"]["rollback"]) == (HOST_QUEUE, HOST_QUEUE)
    assert served() == new
    assert sorted(c.labels["io.deployflow.version"] for c in containers(second_engine, "app")) == [new, new]
    assert docker_client.containers.list(all=True, filters={"label": [f"io.deployflow.stack={STACK}", f"io.deployflow.service={SERVICE}"]}) == []
