"""The grants, checked again where a task reads what they grant: a grant withdrawn since the DAG was
parsed stops the next release at its first step that needs it (resolve, before any build)."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from deployflow.catalog import Service, catalog_dir
from deployflow.catalog.grants import ServiceGrants, check_service
from deployflow.catalog.grants_file import load_grants
from deployflow.errors import ConfigError


def require_grants(service: Service) -> ServiceGrants:
    """The service's grants as the file says now; AirflowFailException (not retried) naming the field and
    the missing grant when the service names anything it is no longer granted."""
    try:
        grants = load_grants(catalog_dir()).of(service.name)
        check_service(service, grants)
    except ConfigError as exc:
        raise AirflowFailException(f"{service.name}: {exc}") from None
    return grants
