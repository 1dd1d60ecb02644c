"""The registry's credentials as an Airflow worker finds them, for the build's push and the deploy's pull.

First the Airflow connection ``deployflow_registry``, of the docker provider's type ``docker`` (what DockerHook
logs in with: ``host`` and ``port`` the registry's, ``login``, ``password``): what a worker on another host
needs, and what the Celery setup defines. Else this host's file, which the local stack writes
(``deployflow.pipeline.registry.credentials_file``). Else none: a registry without auth (the engine's own
login, if any, applies). Read when a task runs, never at DAG parse; the password is masked in the task's log.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException
from airflow.sdk.log import mask_secret

from deployflow.pipeline.registry import REGISTRY_CONNECTION, RegistryCredentials, credentials_file


def credentials_of(conn: Any) -> RegistryCredentials:
    """The credentials of a ``docker`` connection; :class:`AirflowFailException` names the field that is wrong."""
    where = f"connection {REGISTRY_CONNECTION!r} (the registry's credentials)"
    if conn.conn_type != "docker":
        raise AirflowFailException(f"{where}.conn_type: {conn.conn_type!r} is not valid; must be 'docker'")
    for name in ("host", "login", "password"):
        if not getattr(conn, name):
            raise AirflowFailException(f"{where}.{name}: is required (host: the registry as images name it, "
                                       "e.g. 127.0.0.1 with port 5000)")
    registry = f"{conn.host}:{conn.port}" if conn.port else conn.host  # as DockerHook logs in
    return RegistryCredentials(registry=registry, username=conn.login, password=conn.password)


def registry_credentials() -> RegistryCredentials | None:
    """The registry's credentials for this worker (see the module), the password masked from now on."""
    try:
        found = credentials_of(Connection.get(REGISTRY_CONNECTION))
    except AirflowNotFoundException:
        found = RegistryCredentials.read(credentials_file())
    if found is not None:
        mask_secret(found.password)
    return found
