"""The grants file: where it is, reading it (re-read when it changes), and its validation, every error naming
its field (``services.shop.connections[0]``). What the grants mean is ``deployflow.catalog.grants``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployflow.catalog.documents import read_yaml
from deployflow.catalog.fields import Fields
from deployflow.catalog.grants import GRANTS_ENV, KINDS, RESERVED, SCHEDULE, Grant, Grants
from deployflow.catalog.model import ENVIRONMENTS
from deployflow.errors import ConfigError, shown
from deployflow.settings import Settings, absolute

_ENTRY = re.compile(r"[A-Za-z0-9_.@:/~+-]{1,250}\*?|\*")
_USER = re.compile(r"@schedule|[^\s@][^\s]{0,255}")


_cache: dict[str, tuple[tuple[int, int], Grants]] = {}


def load_grants(catalog: Path) -> Grants:
    """The grants of the services in the directory ``catalog`` (the file re-read when it changes), or the
    defaults alone where there is no file (a :envvar:`DEPLOYFLOW_GRANTS` naming none is an error). The file is
    ``$DEPLOYFLOW_GRANTS``, else ``grants.yaml`` beside the catalog directory."""
    directory = absolute(catalog)
    named = Settings.from_environ().grants_file
    path = named or directory.parent / "grants.yaml"
    try:
        stat = path.stat()
    except FileNotFoundError:
        if named:
            raise ConfigError("(grants)", f"{GRANTS_ENV} names {path}, which does not exist") from None
        return Grants(source=f"{path} (no such file: the defaults only)")
    if directory in path.parents:
        raise ConfigError("(grants)", f"{path} is inside the catalog directory {directory}, which the teams write; "
                                      "the grants live outside it")
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(str(path))
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        grants = parse_grants(read_yaml(path.read_text()), str(path))
    except ConfigError as exc:
        raise exc.in_source(str(path)) from None
    _cache[str(path)] = (stamp, grants)
    return grants


def parse_grants(raw: Any, source: str) -> Grants:
    top = Fields(raw or {}, "", ("services", "teams"))
    services = {name: _grant(entry, f"services.{name}") for name, entry in _named_entries(top, "services")}
    teams = {}
    for name, entry in _named_entries(top, "teams"):
        f = Fields(entry, f"teams.{name}", ("services", *_GRANT_FIELDS))
        members = f.strings("services", pattern=re.compile(r"[a-z0-9][a-z0-9-]{0,62}\*?|\*"),
                            hint="must be a service name, or a prefix ending in '*'")
        teams[name] = (members, _grant({k: v for k, v in entry.items() if k != "services"}, f"teams.{name}"))
    return Grants(source=source, services=services, teams=teams)


_GRANT_FIELDS = ("connections", "variables", "docker_hosts", "queues", "kubernetes", "repositories", "deployers",
                 "build_network")


def _named_entries(top: Fields, key: str) -> list[tuple[str, Any]]:
    block = top.get(key) or {}
    if not isinstance(block, Mapping):
        raise ConfigError(top.at(key), f"must be a mapping of names to grants, got {type(block).__name__}")
    return [(str(name), entry or {}) for name, entry in block.items()]


def _grant(raw: Any, path: str) -> Grant:
    f = Fields(raw, path, _GRANT_FIELDS)
    hint = "must be an id or a prefix ending in '*'"
    patterns = {kind: f.strings(kind, pattern=_ENTRY, hint=hint) for kind in KINDS if "." not in kind}
    kube = Fields(f.get("kubernetes") or {}, f.at("kubernetes"), ("connections", "namespaces", "service_accounts"))
    for kind in ("connections", "namespaces", "service_accounts"):
        patterns[f"kubernetes.{kind}"] = kube.strings(kind, pattern=_ENTRY, hint=hint)
    for kind in ("connections", "variables"):
        for i, pattern in enumerate(patterns[kind]):
            if pattern.startswith(RESERVED):
                raise ConfigError(f"{path}.{kind}[{i}]", f"{shown(pattern)} names the stack's own secrets (ids starting "
                                                         f"with {' or '.join(RESERVED)}), which no service can be granted")
    for i, prefix in enumerate(patterns["repositories"]):
        if not (prefix.startswith("/") or re.match(r"(https|ssh)://[^/@]+/", prefix) or re.match(r"git@[^/:]+:", prefix)):
            raise ConfigError(f"{path}.repositories[{i}]", f"{shown(prefix)} is not valid; a repository grant is an absolute "
                                                           "path or an https://, ssh:// or git@ URL prefix naming a host")
    deployers = f.get("deployers") or {}
    if not isinstance(deployers, Mapping):
        raise ConfigError(f.at("deployers"), "must map environments to lists of user names")
    users: dict[str, tuple[str, ...]] = {}
    for env, names in deployers.items():
        if env not in ENVIRONMENTS:
            raise ConfigError(f"{f.at('deployers')}.{env}", f"unknown environment; valid values are {', '.join(ENVIRONMENTS)}")
        users[env] = Fields({"users": names}, f.at("deployers"), ("users",)).strings(
            "users", pattern=_USER, hint=f"must be an Airflow user name, or {SCHEDULE}")
    return Grant(patterns=patterns, deployers=users, build_network=f.choice("build_network", ("none", "host"), "none"))
