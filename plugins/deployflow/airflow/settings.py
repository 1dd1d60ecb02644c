"""Where the Airflow adapters find the stack: its state directory, the Docker engine, the workspace, the
stack's name and proxy image, Prometheus. A leaf: it imports no other adapter, so every adapter can import it.

Each comes from ``deployflow.settings`` (its one reading of the environment and its defaults), read from the
environment Airflow's processes run with (``make up`` and the Celery setup set it) when a task asks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from airflow.sdk import Variable

from deployflow.platforms.base import StackSettings
from deployflow.settings import DEFAULT_PROMETHEUS_URL, PROMETHEUS_VARIABLE, Settings

DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"


def settings() -> Settings:
    """The stack's settings as this process's environment gives them."""
    return Settings.from_environ()


def docker_url() -> str:
    """The local Docker engine's address: ``$DOCKER_HOST``, else its socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def state_dir() -> Path:
    """The routers' state directory, absolute (the deployer container mounts it by that path)."""
    return settings().state_dir


def stack_settings() -> StackSettings:
    """The stack every Docker site of this Airflow belongs to: its name, state directory and proxy image."""
    return StackSettings.of(settings())


def workspace_root() -> Path:
    """Where releases check out code."""
    return settings().workspace


def run_workspace(service: str, run_id: str) -> Path:
    return workspace_root() / service / re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def prometheus_url() -> str:
    """Where canary analysis and the post-promotion watch read metrics: $DEPLOYFLOW_PROMETHEUS_URL, else the
    Airflow Variable ``deployflow_prometheus_url``. Read when a task runs, never at DAG parse."""
    return settings().prometheus_url or Variable.get(PROMETHEUS_VARIABLE, default=DEFAULT_PROMETHEUS_URL)
