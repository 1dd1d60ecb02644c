"""Shared test set-up: the project's paths, and Airflow pointed at a throw-away home."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Set before anything imports airflow: tests never touch the demo's state.
os.environ.setdefault("DEPLOYFLOW_HOME", str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
os.environ["AIRFLOW_CONFIG"] = str(ROOT / "airflow.cfg")


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The local Docker engine, for the end-to-end and scale tests: they fail, never skip, without one."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"end-to-end tests need a Docker engine and none answers ({exc}); .ci/run starts one", pytrace=False)
    return client
