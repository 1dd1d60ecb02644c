"""An environment's site as Airflow reaches it: the environment's Docker engine (its ``docker_host``'s, else the
local one) or its cluster through the environment's Airflow connection, to read what runs and drive the load
(releasing is the deployer's work, never a task's)."""

from __future__ import annotations

from typing import Any

from deployflow.airflow.docker_hosts import docker_client
from deployflow.airflow.settings import stack_settings
from deployflow.catalog import Service
from deployflow.platforms.base import Clients, Site
from deployflow.platforms.factory import site_for
from deployflow.rollout.status import status


def airflow_clients(service: Service, environment: str) -> Clients:
    return Clients(docker=lambda: docker_client(service, environment), kubernetes=_kubernetes_client)


def _kubernetes_client(connection_id: str) -> object:
    # Imported when a Kubernetes site asks: the provider's client adds most of a second to every DAG file import.
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=connection_id).api_client


def environment_site(service: Service, environment: str) -> Site:
    return site_for(service, environment, clients=airflow_clients(service, environment), settings=stack_settings())


def live_status(service: Service, environment: str) -> dict[str, Any]:
    """What the environment runs and what takes its traffic, read from its workload and router (never released)."""
    site = environment_site(service, environment)
    workload = site.workload(plan := site.strategy())
    live = status(workload, site.traffic(plan, workload), service=service.name, environment=environment)
    return {**live, "url": f"{site.front_url()}/"}
