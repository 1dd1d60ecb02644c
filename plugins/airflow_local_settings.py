"""Airflow's cluster policies (imported by every Airflow process, plugins/ being on sys.path): deployflow's routing."""
from deployflow.airflow.routing import route


def task_instance_mutation_hook(task_instance, dag_run=None):
    route(task_instance, dag_run)
