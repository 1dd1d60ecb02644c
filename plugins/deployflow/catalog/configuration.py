"""The ``config`` and ``resources`` blocks of an environment: values, flags, files, secrets by reference, limits.

    config:
      values:  {LOG_LEVEL: info, GREETING: hello}          # environment variables
      flags:   {new_checkout: true}                        # FLAG_NEW_CHECKOUT=true|false
      secrets:                                             # environment variables, by reference only
        DATABASE_PASSWORD: {connection: sample_db, field: password}
        API_KEY: {variable: sample_api_key}
        TOKEN: {kubernetes_secret: sample-token, key: token}   # kubernetes only
      files:                                               # files in /run/deployflow/config
        settings.json: '{"greeting": "hello"}'
        tls.key: {secret: {variable: sample_tls_key}}
    resources: {cpu: 500m, memory: 1Gi, pids: 512}

A secret's value is never in the catalog: a mapping with a value where a
reference belongs is refused, so is a plain value that names a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import CONNECTION_ID, QUANTITY
from deployflow.configuration import (
    CONNECTION_FIELDS,
    ENV_NAME,
    FILE_NAME,
    FLAG_NAME,
    RESERVED_ENV,
    Config,
    Resources,
    SecretRef,
    flag_env,
)
from deployflow.errors import ConfigError, shown

MAX_FILE_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 768 * 1024  # a Kubernetes Secret holds at most 1 MiB, base64 and keys included
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}\Z")
ENV_HINT = "use upper-case letters, digits and '_', starting with a letter or '_'"


def config(raw: Any, path: str, *, platform: str) -> Config:
    f = Fields(raw, path, ("values", "flags", "secrets", "files"))
    values = {name: _plain(value, f"{path}.values.{name}") for name, value in _mapping(f, "values", ENV_NAME, ENV_HINT).items()}
    flags = {}
    for name, value in _mapping(f, "flags", FLAG_NAME, "use lower-case letters, digits and '_'").items():
        if not isinstance(value, bool):
            raise ConfigError(f"{path}.flags.{name}", f"{shown(value)} is not valid; a flag is true or false")
        flags[name] = value
    secrets = {name: _reference(value, f"{path}.secrets.{name}", platform=platform)
               for name, value in _mapping(f, "secrets", ENV_NAME, ENV_HINT).items()}
    files: dict[str, str | SecretRef] = {}
    total = 0
    for name, value in _mapping(f, "files", FILE_NAME, "use letters, digits, '.', '_' and '-' (a file name, no directory)").items():
        at = f"{path}.files.{name}"
        if isinstance(value, Mapping):
            inner = Fields(value, at, ("secret",))
            files[name] = _reference(inner.required("secret"), inner.at("secret"), platform=platform, in_file=True)
            continue
        content = _plain(value, at)
        size = len(content.encode())
        if size > MAX_FILE_BYTES:
            raise ConfigError(at, f"is {size} bytes; a configuration file holds at most {MAX_FILE_BYTES}")
        total += size
        files[name] = content
    if total > MAX_TOTAL_BYTES:
        raise ConfigError(f"{path}.files", f"hold {total} bytes; an environment's files hold at most {MAX_TOTAL_BYTES} together")
    seen: dict[str, str] = {}
    for block, names in (("values", values), ("secrets", secrets), ("flags", {flag_env(n): n for n in flags})):
        for name, original in ((n, n if block != "flags" else names[n]) for n in names):
            at = f"{path}.{block}.{original}"
            if name in RESERVED_ENV:
                raise ConfigError(at, f"{name} is set by deployflow in every instance; reserved names are {', '.join(RESERVED_ENV)}")
            if name in seen:
                raise ConfigError(at, f"{name} is already set by {path}.{seen[name]}")
            seen[name] = f"{block}.{original}"
    return Config(values=values, secrets=secrets, files=files, flags=flags)


def resources(raw: Any, path: str) -> Resources:
    f = Fields(raw, path, ("cpu", "memory", "pids"))
    return Resources(
        cpu=f.string("cpu", Resources.cpu, pattern=QUANTITY, hint="must be a quantity of CPUs such as 500m or 1"),
        memory=f.string("memory", Resources.memory, pattern=QUANTITY, hint="must be a quantity of bytes such as 512Mi or 1Gi"),
        pids=f.integer("pids", Resources.pids, low=16, high=65536),
    )


def _mapping(f: Fields, key: str, pattern: Any, hint: str) -> dict[str, Any]:
    raw = f.get(key, {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f.at(key), f"must be a mapping of names to values, got {type(raw).__name__}")
    for name in raw:
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise ConfigError(f"{f.at(key)}.{name}", f"{name!r} is not a valid name; {hint}")
    return dict(raw)


def _plain(value: Any, at: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Mapping):
        raise ConfigError(at, "must be a plain value; a secret goes under 'secrets' (or a file's 'secret'), by reference")
    if not isinstance(value, str):
        raise ConfigError(at, f"must be a string, number or true/false, got {type(value).__name__}")
    if "\0" in value:
        raise ConfigError(at, "must not contain a NUL character")
    return value


def _reference(raw: Any, at: str, *, platform: str, in_file: bool = False) -> SecretRef:
    kinds = ("connection", "variable") if in_file or platform != "kubernetes" else ("connection", "variable", "kubernetes_secret")
    if not isinstance(raw, Mapping):
        raise ConfigError(at, f"must be a reference, one of {{{': ..., '.join(kinds)}: ...}}; a secret's value never goes "
                          "in the catalog")
    given = [k for k in ("connection", "variable", "kubernetes_secret") if k in raw]
    if len(given) != 1 or given[0] not in kinds:
        where = "a file" if in_file else f"the {platform} platform"
        raise ConfigError(at, f"must name exactly one of {', '.join(kinds)} (for {where}), got {', '.join(map(str, raw)) or 'none'}")
    kind = given[0]
    if kind == "connection":
        f = Fields(raw, at, ("connection", "field"))
        key = f.string("field", "password")
        if key not in CONNECTION_FIELDS and not (key.startswith("extra.") and len(key) > 6):
            raise ConfigError(f.at("field"), f"{shown(key)} is not valid; valid values are {', '.join(CONNECTION_FIELDS)}, extra.<key>")
        return SecretRef(kind, f.string("connection", pattern=CONNECTION_ID, hint="must be an Airflow connection id"), key)
    if kind == "variable":
        f = Fields(raw, at, ("variable",))
        return SecretRef(kind, f.string("variable", pattern=CONNECTION_ID, hint="must be an Airflow variable key"))
    f = Fields(raw, at, ("kubernetes_secret", "key"))
    dns = "use lower-case letters, digits, '-' and '.'"
    name = f.string("kubernetes_secret", pattern=_SECRET_NAME, hint=dns)
    return SecretRef(kind, name, f.string("key", pattern=_SECRET_KEY, hint="use letters, digits, '-', '_' and '.'"))
