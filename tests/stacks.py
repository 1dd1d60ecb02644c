"""The tests' and benchmarks' use of the embedded stack (deployflow.stack): a benchmark's own stack, and waiting
until Airflow has parsed a DAG."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import docker

from deployflow.stack.containers import containers_down, ensure_images, prometheus_up, registry_up
from deployflow.stack.local import airflow_down, airflow_up
from deployflow.stack.secrets import admin_password


@contextmanager
def bench_stack(work: Path, catalog: Path, *, name: str, port: int, prometheus_port: int, exporter_port: int):
    """A benchmark's own stack in ``work`` (Airflow on ``port``, containers named after ``name``), logged in, with
    the release DAG parsed; yields (the Airflow client, the Docker client) and takes everything down after."""
    from deployflow.client import AirflowClient

    client = docker.from_env()
    ensure_images(client)
    registry_up(client)
    containers_down(client, name)
    home, state = work / "airflow", work / "state"
    prometheus = prometheus_up(client, name, state, prometheus_port, exporter_port=exporter_port)
    airflow_up(home, port, {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(work / "ws"),
                            "DEPLOYFLOW_STACK": name, "DEPLOYFLOW_STATE": str(state), "DEPLOYFLOW_PROMETHEUS_URL": prometheus},
               exporter_port=exporter_port)
    try:
        airflow = AirflowClient(f"http://127.0.0.1:{port}")
        airflow.login("admin", admin_password(home))
        wait_for_dag(airflow, "release_sample-app")
        yield airflow, client
    finally:
        airflow_down(home)
        containers_down(client, name)


def wait_for_dag(airflow, dag_id: str, timeout: float = 120) -> None:
    """Return once Airflow (a deployflow.client.AirflowClient) has parsed ``dag_id``; RuntimeError naming the
    import errors if it has not within ``timeout``."""
    from deployflow.client import ApiError

    deadline = time.monotonic() + timeout
    while True:
        try:
            airflow.dag(dag_id)
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed within {timeout:.0f} s; import errors: {airflow.import_errors()}") from None
            time.sleep(1)
