"""Where the catalog is, and loading it: every file validated, every error naming its file."""

from __future__ import annotations

from pathlib import Path

from deployflow.catalog.documents import MAX_FILE_BYTES, read_yaml
from deployflow.catalog.grants import Grants, check_service
from deployflow.catalog.grants_file import load_grants
from deployflow.catalog.model import Service
from deployflow.catalog.parsing import parse_service
from deployflow.errors import ConfigError
from deployflow.settings import Settings

__all__ = ["MAX_FILE_BYTES", "catalog_dir", "load_catalog", "load_service", "project_root", "read_yaml"]


def project_root() -> Path:
    """The deployflow checkout: ``$DEPLOYFLOW_HOME``, else the one holding this package (``deployflow.settings``)."""
    return Settings.from_environ().home


def catalog_dir() -> Path:
    """Where service files live: ``$DEPLOYFLOW_CATALOG``, else ``include/services`` in the checkout."""
    return Settings.from_environ().catalog_dir


def load_service(path: Path, grants: Grants | None = None, *, check_grants: bool = True) -> Service:
    """Load and validate one catalog file, and refuse what it names but is not granted (``grants``, else the
    grants file of its directory; not with ``check_grants=False``); every error names the file."""
    try:
        service = parse_service(read_yaml(path.read_text()))
    except ConfigError as exc:
        raise exc.in_source(str(path)) from None
    if service.name != path.stem:
        raise ConfigError("name", f"{service.name!r} must match the file name {path.stem!r}", source=str(path))
    if not check_grants:
        return service
    grants = grants or load_grants(path.parent)  # its own errors name the grants file
    try:
        check_service(service, grants.of(service.name))
    except ConfigError as exc:
        raise exc.in_source(str(path)) from None
    return service


def load_catalog(directory: Path | None = None) -> dict[str, Service]:
    """Every ``*.yaml`` service in ``directory``, by name. Raises on the first bad file."""
    directory = directory or catalog_dir()
    if not directory.is_dir():
        raise ConfigError("(catalog)", f"directory {directory} does not exist (set DEPLOYFLOW_CATALOG)")
    grants = load_grants(directory)
    services = [load_service(p, grants) for p in sorted(directory.glob("*.yaml"))]
    owners: dict[int, str] = {}
    for service in services:
        for env in service.environments.values():
            if env.port is None:
                continue
            if env.port in owners:
                raise ConfigError(
                    f"environments.{env.name}.port", f"{env.port} is already the port of {owners[env.port]}",
                    source=str(directory / f"{service.name}.yaml"),
                )
            owners[env.port] = f"{service.name}/{env.name}"
    return {s.name: s for s in services}
