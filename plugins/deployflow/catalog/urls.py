"""Where a service's versions are reached: every URL shape of the catalog in one place.

On a Docker host each proxy and container listens on loopback; on Kubernetes a
Service is reached through the environment's ``url`` template (by default cluster
DNS), and clients through its ``front_url`` template. Both are ``str.format``
templates whose only fields are ``{name}`` and ``{namespace}``
(``check_url_template``): ``str.format`` would otherwise reach attributes and
items (``{name.__class__}``), convert (``{name!r}``) or pad (``{name:>99999}``).
"""

from __future__ import annotations

import string
from urllib.parse import urlsplit

from deployflow.errors import ConfigError, shown

DOCKER_HOST = "127.0.0.1"
IN_CLUSTER_URL = "http://{name}.{namespace}.svc.cluster.local"
PLACEHOLDERS = ("name", "namespace")


def check_url_template(template: object, path: str, *, require_name: bool = False) -> str:
    """``template`` if it is an http(s) URL template with no field but ``{name}`` and ``{namespace}``, bare
    (no attribute or index, conversion or format spec); else a :class:`ConfigError` at ``path``."""
    must = "must be an http(s) URL" + (" containing {name} (the Service's name)" if require_name else "")
    if not isinstance(template, str):
        raise ConfigError(path, f"{shown(template)} is not valid; {must}")
    only = "the only placeholders are {name} and {namespace}, as they are"
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # an unmatched brace
        raise ConfigError(path, f"{shown(template)} is not valid: {exc}; {only}") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(path, f"{shown(template)} is not valid: {written}; {only} (no attribute, index, "
                                    "conversion or format spec)")
    if require_name and "name" not in {name for name, _, _ in fields}:
        raise ConfigError(path, f"{shown(template)} is not valid; {must}")
    url = template.format(name="shop", namespace="prod")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(path, f"{shown(template)} is not valid; {must}")
    return template


def docker_url(port: int) -> str:
    """A proxy or container on the Docker host, which binds loopback only."""
    return f"http://{DOCKER_HOST}:{port}"


def service_url(template: str, name: str, namespace: str) -> str:
    """A Kubernetes Service's URL from a ``url`` template with ``{name}`` and ``{namespace}``, no trailing slash."""
    return template.format(name=name, namespace=namespace).rstrip("/")


def in_cluster_url(name: str, namespace: str) -> str:
    """How a pod in the cluster (the deployer) reaches a Service: cluster DNS, whatever the catalog's ``url``."""
    return service_url(IN_CLUSTER_URL, name, namespace)
