"""Where the catalog is, and loading it: every file validated, every error naming its file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from deployflow.catalog.model import Service
from deployflow.catalog.parsing import parse_service
from deployflow.errors import ConfigError, shown

# libyaml's safe loader where PyYAML was built with it (PyPI's wheels are): a catalog file loads about ten
# times faster, which every DAG file parse pays.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 64 * 1024  # a service's file is a few KB; the sample's is 2


def read_yaml(text: str) -> Any:
    """A catalog file's YAML as plain data; ConfigError (path ``(file)``) for one that is not.

    The file is untrusted input, read by the scheduler's routing policy, the dag-processor and every task:
    anything that makes reading it costly is refused before it is built. Anchors and aliases are refused
    (a few hundred bytes of nested aliases stand for gigabytes to anything that walks or prints the value),
    and so is a file over :data:`MAX_FILE_BYTES`.
    """
    size = len(text.encode())
    if size > MAX_FILE_BYTES:
        raise ConfigError("(file)", f"is {size:,} bytes; a catalog file is at most {MAX_FILE_BYTES:,}")
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):  # events only: an alias is a name here, never a copy
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                what = f"alias *{event.anchor}" if isinstance(event, yaml.AliasEvent) else f"anchor &{event.anchor}"
                raise ConfigError("(file)", f"line {event.start_mark.line + 1}: YAML anchors and aliases are not "
                                  f"allowed in a catalog file ({shown(what, 60)}); write the value out where it is used")
        return yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"is not valid YAML: {exc}") from exc


def project_root() -> Path:
    """The deployflow checkout: ``$DEPLOYFLOW_HOME``, else the one holding this file (``plugins/deployflow/catalog/``)."""
    return Path(os.environ.get("DEPLOYFLOW_HOME") or Path(__file__).resolve().parents[3])


def catalog_dir() -> Path:
    """Where service files live: ``$DEPLOYFLOW_CATALOG``, else ``include/services``."""
    configured = os.environ.get("DEPLOYFLOW_CATALOG")
    return Path(configured) if configured else project_root() / "include" / "services"


def load_service(path: Path) -> Service:
    """Load and validate one catalog file; every error names the file."""
    try:
        service = parse_service(read_yaml(path.read_text()))
    except ConfigError as exc:
        raise exc.in_source(str(path)) from None
    if service.name != path.stem:
        raise ConfigError("name", f"{service.name!r} must match the file name {path.stem!r}", source=str(path))
    return service


def load_catalog(directory: Path | None = None) -> dict[str, Service]:
    """Every ``*.yaml`` service in ``directory``, by name. Raises on the first bad file."""
    directory = directory or catalog_dir()
    if not directory.is_dir():
        raise ConfigError("(catalog)", f"directory {directory} does not exist (set DEPLOYFLOW_CATALOG)")
    services = [load_service(p) for p in sorted(directory.glob("*.yaml"))]
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
