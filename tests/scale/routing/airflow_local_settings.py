"""A stand-in for the catalog's ``docker_host`` routing, used by tests/scale/conftest.py only while the catalog
does not know ``docker_host`` (another change of issue 14 brings it, with the real hook).

Airflow imports this module by name (``airflow_local_settings``) when its folder is on the path: the scale
tests put it there for every process of their stack. ``$DEPLOYFLOW_TEST_ROUTES`` is ``env=queue[,...]``:
the deployer's steps of a run for that environment go to that queue.
"""

from __future__ import annotations

import os

from deployflow.airflow.task_ids import DEPLOYER_STEPS

ROUTES = dict(pair.split("=", 1) for pair in os.environ.get("DEPLOYFLOW_TEST_ROUTES", "").split(",") if pair)


def task_instance_mutation_hook(task_instance, dag_run=None) -> None:
    environment = ((dag_run.conf if dag_run is not None else None) or {}).get("environment")
    if task_instance.task_id in DEPLOYER_STEPS and environment in ROUTES:
        task_instance.queue = ROUTES[environment]
