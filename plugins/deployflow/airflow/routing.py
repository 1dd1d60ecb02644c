"""Which Celery queue a release task goes to: an environment's deploy steps to the worker of its Docker host.

Airflow's cluster policy ``task_instance_mutation_hook`` (``plugins/airflow_local_settings.py``) calls
:func:`route`, in the scheduler, for every task instance it creates or refreshes. The deploy steps of a
``release_<service>`` run (prepare, health, shift, analysis, load, promote, rollback, and record, which reads
the environment's release records and what runs there) go to the queue of the run's environment's
``docker_host``; every other task, every other DAG, and an environment without a docker_host keep the queue
they had. The run's environment is its conf's (UI, REST), else the nightly schedule's (a scheduled run's conf
is empty).

It runs inside the scheduler's transaction: no database, no Airflow import here, and never an exception
(a missing or broken catalog file leaves the task where it was, with a warning). Catalog files are read
once per change (their mtime and size).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployflow.airflow.task_ids import ANALYSIS, HEALTH, LOAD, PREPARE, PROMOTE, RECORD, ROLLBACK, SHIFT

if TYPE_CHECKING:
    from deployflow.catalog import Service

log = logging.getLogger(__name__)

RELEASE_DAG_PREFIX = "release_"
# What runs against the environment's engine, its proxy, its instances or its records: on that host.
ROUTED_TASKS = frozenset((PREPARE, HEALTH, SHIFT, ANALYSIS, LOAD, PROMOTE, ROLLBACK, RECORD))


def deploy_queue(dag_id: str, task_id: str, conf: Mapping[str, Any] | None,
                 service_of: Callable[[str], Service | None]) -> str | None:
    """The queue a release task must run on, or None to leave it where it is.

    :param conf: the run's conf (empty for a scheduled run).
    :param service_of: the catalog entry of a service name, None when there is none (or it does not load).
    """
    if not dag_id.startswith(RELEASE_DAG_PREFIX) or task_id not in ROUTED_TASKS:
        return None
    service = service_of(dag_id[len(RELEASE_DAG_PREFIX):])
    if service is None:
        return None
    environment = (conf or {}).get("environment") or (service.nightly.environment if service.nightly else None)
    env = service.environments.get(environment) if isinstance(environment, str) else None
    if env is None or env.docker_host is None:
        return None
    return env.docker_host.queue


class CatalogFiles:
    """Catalog entries by service name, each file parsed again only when its mtime or size changes."""

    def __init__(self, directory: Callable[[], Path] | None = None) -> None:
        self.directory = directory
        self._cache: dict[Path, tuple[tuple[int, int], Service | None]] = {}

    def __call__(self, name: str) -> Service | None:
        # Imported at the first question, not with the policy: every Airflow process imports the policy.
        from deployflow.catalog import catalog_dir, load_service

        path = (self.directory or catalog_dir)() / f"{name}.yaml"
        try:
            stat = path.stat()
        except OSError:
            return None  # not a catalog service (or its file is gone): nothing to route
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            service: Service | None = load_service(path)
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the scheduler
            log.warning("deployflow routing: %s does not load, its tasks keep their queue: %s", path, exc)
            service = None
        self._cache[path] = (stamp, service)
        return service


CATALOG = CatalogFiles()


def route(task_instance: Any, dag_run: Any | None, service_of: Callable[[str], Service | None] = CATALOG) -> None:
    """The cluster policy: set ``task_instance.queue`` for a deploy step of an environment with a docker_host."""
    if dag_run is None:
        return  # early construction, before the instance has a run: the hook runs again with it
    try:
        queue = deploy_queue(task_instance.dag_id, task_instance.task_id, dag_run.conf, service_of)
    except Exception as exc:  # noqa: BLE001 - never crash the scheduler over a routing question
        log.warning("deployflow routing: %s.%s keeps its queue: %s", task_instance.dag_id, task_instance.task_id, exc)
        return
    if queue is not None and task_instance.queue != queue:
        task_instance.queue = queue
