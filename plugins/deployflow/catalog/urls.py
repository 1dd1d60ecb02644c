"""Where a service's versions are reached: every URL shape of the catalog in one place.

On a Docker host each proxy and container listens on loopback; on Kubernetes a
Service is reached through the environment's ``url`` template (by default cluster
DNS), and clients through its ``front_url``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployflow.catalog.model import Environment, Service

DOCKER_HOST = "127.0.0.1"
IN_CLUSTER_URL = "http://{name}.{namespace}.svc.cluster.local"


def docker_url(port: int) -> str:
    """A proxy or container on the Docker host, which binds loopback only."""
    return f"http://{DOCKER_HOST}:{port}"


def service_url(template: str, name: str, namespace: str) -> str:
    """A Kubernetes Service's URL from a ``url`` template with ``{name}`` and ``{namespace}``, no trailing slash."""
    return template.format(name=name, namespace=namespace).rstrip("/")


def in_cluster_url(name: str, namespace: str) -> str:
    """How a pod in the cluster (the deployer) reaches a Service: cluster DNS, whatever the catalog's ``url``."""
    return service_url(IN_CLUSTER_URL, name, namespace)


def front_url(service: Service, env: Environment) -> str:
    """Where clients reach the environment's live version: its proxy on a Docker host, its front URL on Kubernetes."""
    k8s = env.kubernetes
    if k8s is None:
        return docker_url(env.port)
    return (k8s.front_url or service_url(k8s.url, service.name, k8s.namespace)).rstrip("/")
