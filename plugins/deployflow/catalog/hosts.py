"""``environments.<env>.docker_host``: the Docker engine a docker environment runs on, and its worker's queue.

Two spellings: a connection id alone (``docker_host: docker_stage``, the queue named alike), or
``{connection: docker_stage, queue: stage-host}``. Absent: the local engine, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import CONNECTION_ID, QUEUE_NAME, DockerHost
from deployflow.errors import ConfigError, shown

CONNECTION_HINT = "must be an Airflow connection id (letters, digits, '_', '.', '-')"
QUEUE_HINT = ("must be a Celery queue name: a letter or digit, then letters, digits, '_', '.' or '-', at most 200 "
              "characters (no comma or space: a worker lists its queues as -q a,b)")


def docker_host(raw: Any, path: str) -> DockerHost | None:
    """The environment's Docker host, or None for the local engine."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if not CONNECTION_ID.fullmatch(raw):
            raise ConfigError(path, f"{shown(raw)} is not valid; {CONNECTION_HINT}")
        if not QUEUE_NAME.fullmatch(raw):
            raise ConfigError(path, f"{shown(raw)} is a connection id but not a queue name, and the queue defaults to it; "
                                    f"write {{connection: {raw}, queue: ...}}: the queue {QUEUE_HINT}")
        return DockerHost(connection=raw, queue=raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be a connection id or a mapping with connection and queue, got {type(raw).__name__}")
    f = Fields(raw, path, ("connection", "queue"))
    connection = f.string("connection", pattern=CONNECTION_ID, hint=CONNECTION_HINT)
    return DockerHost(connection=connection, queue=f.string("queue", connection, pattern=QUEUE_NAME, hint=QUEUE_HINT))
