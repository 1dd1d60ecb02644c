"""The release DAG's code, imported once in a process that forks task processes, so each task starts warm.

Every task runs in a process forked from its executor's worker (the LocalExecutor's workers are forked from the
scheduler, a Celery worker's pool from the worker), and parses its DAG file there before it runs: the catalog
bundle, deployflow's operators and the Docker provider, imported again in every task process (measured by
``make bench-release``: 0.3 to 0.8 s of each task's start, most of its DAG file's parse). Imported here, before
the first fork (``airflow_local_settings.py`` registers it with ``os.register_at_fork``), they are in the forked
processes already and each parse only builds the DAG. The dag-processor warms itself the same way
(``catalog_bundle.warm``).

A process that imported them keeps that code until it restarts: restart the scheduler and the workers after
upgrading deployflow, as Airflow asks for its plugins.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

# What a task process imports to parse its DAG file and run its task.
MODULES = (
    "airflow.dag_processing.dagbag",
    "airflow.dag_processing.bundles.local",
    "airflow.providers.docker.operators.docker",
    "deployflow.airflow.catalog_bundle",
    "deployflow.airflow.dag_factory",
    "deployflow.airflow.deployer_operator",
    "deployflow.airflow.notifications",  # announce: the http and smtp providers' notifiers
    "deployflow.platforms.docker",  # the health check's and the record's Docker host
)
_done = False


def preload() -> None:
    """Import :data:`MODULES` once in this process (a no-op after the first call). Best effort: a module that
    fails to import here fails the same way in the task's own parse, which says why."""
    global _done
    if _done:
        return
    _done = True
    started = time.monotonic()
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - only a slower task start: never the scheduler's or the worker's failure
            log.warning("could not preload %s for the task processes", name, exc_info=True)
    log.info("preloaded the release DAG's code for the task processes in %.2f s", time.monotonic() - started)
