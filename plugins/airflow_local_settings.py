"""Airflow's cluster policies (imported by every Airflow process, plugins/ being on sys.path): deployflow's routing,
and the release DAG's code imported once in the processes that fork task processes."""
import os
import sys

from deployflow.airflow.routing import route


def task_instance_mutation_hook(task_instance, dag_run=None):
    route(task_instance, dag_run)


def _forks_tasks(argv: list[str]) -> bool:
    """Whether this process forks the processes that run tasks: the scheduler (the LocalExecutor's workers are
    forked from it, and fork each task) or a Celery worker (its pool's children fork each task)."""
    words = [os.path.basename(arg) for arg in argv[:4]]
    return "scheduler" in words or ("celery" in words and "worker" in words)


def _preload() -> None:
    """Import the release DAG's code before the first fork (see deployflow.airflow.preload)."""
    from deployflow.airflow.preload import preload

    preload()


if _forks_tasks(sys.argv):
    os.register_at_fork(before=_preload)
