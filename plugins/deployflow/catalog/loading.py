"""Where the catalog is, and loading it: every file validated, every error naming its file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from deployflow.catalog.model import Service
from deployflow.catalog.parsing import parse_service
from deployflow.errors import ConfigError

# libyaml's safe loader where PyYAML was built with it (PyPI's wheels are): a catalog file loads about ten
# times faster, which every DAG file parse pays.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 64 * 1024  # a service's file is a few KB; the sample's is 2
MAX_NODES = 20_000  # values of a file as expanded: the sample has about 100


def read_yaml(text: str) -> Any:
    """A catalog file's YAML as plain data; ConfigError (path ``(file)``) for one that is not.

    The file is untrusted input, read by the scheduler's routing policy, the dag-processor and every task:
    anything that makes reading it costly is refused before it is built. An alias (``*name``) is the node it
    names again, so a few hundred bytes of nested aliases stand for gigabytes to anything that walks or prints
    the value: the document is composed (aliases stay shared), its size as expanded is counted once per node,
    and one over :data:`MAX_NODES` is refused. A file over :data:`MAX_FILE_BYTES` is refused unread. (PyYAML's
    own dumper writes anchors and aliases for a value it meets twice: a generated file may have some.)
    """
    size = len(text.encode())
    if size > MAX_FILE_BYTES:
        raise ConfigError("(file)", f"is {size:,} bytes; a catalog file is at most {MAX_FILE_BYTES:,}")
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > MAX_NODES:
            raise ConfigError("(file)", f"stands for more than {MAX_NODES:,} values once its YAML aliases are expanded "
                              "(a catalog file is at most that: write the values out, or alias less)")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"is not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded, counted without expanding (each node once;
    past :data:`MAX_NODES` the count stops growing)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done or not children:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


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
