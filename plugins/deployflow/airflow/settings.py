"""Where the Airflow adapters find the stack: its state directory, the Docker engine, the workspace, the
stack's name and proxy image, Prometheus. A leaf: it imports no other adapter, so every adapter can import it.

Each is read from the environment Airflow's processes run with (``make up`` and the Celery setup set them)
when a task asks, with one default each, written here once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from airflow.sdk import Variable

from deployflow.catalog import project_root
from deployflow.metrics.prometheus import DEFAULT_URL as DEFAULT_PROMETHEUS_URL
from deployflow.platforms.base import StackSettings

DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"


def docker_url() -> str:
    """The local Docker engine's address: ``$DOCKER_HOST``, else its socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def state_dir() -> Path:
    """The routers' state directory: ``$DEPLOYFLOW_STATE``, else ``.state`` in the project (absolute either way:
    the deployer container mounts it by that path)."""
    return Path(os.environ.get("DEPLOYFLOW_STATE") or project_root() / ".state").absolute()


def stack_settings() -> StackSettings:
    """The stack every Docker site of this Airflow belongs to: ``$DEPLOYFLOW_STACK``, the state directory, and
    ``$DEPLOYFLOW_HAPROXY_IMAGE``."""
    return StackSettings.from_environ(state_dir=state_dir())


def workspace_root() -> Path:
    """Where releases check out code: ``$DEPLOYFLOW_WORKSPACE``, else ``.workspace`` in the project."""
    return Path(os.environ.get("DEPLOYFLOW_WORKSPACE") or project_root() / ".workspace")


def run_workspace(service: str, run_id: str) -> Path:
    return workspace_root() / service / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def prometheus_url() -> str:
    """Where canary analysis and the post-promotion watch read metrics: $DEPLOYFLOW_PROMETHEUS_URL, else the
    Airflow Variable ``deployflow_prometheus_url``. Read when a task runs, never at DAG parse."""
    return os.environ.get("DEPLOYFLOW_PROMETHEUS_URL") or Variable.get("deployflow_prometheus_url", default=DEFAULT_PROMETHEUS_URL)
