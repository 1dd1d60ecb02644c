"""Router by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from importlib import import_module

IMPLEMENTATIONS = {
    "haproxy": "deployflow.routers.haproxy:HAProxyRouter",
}


def router_class(name: str) -> type:
    if name not in IMPLEMENTATIONS:
        valid = ", ".join(repr(n) for n in IMPLEMENTATIONS)
        raise ValueError(f"router {name!r} is not known; valid values are {valid}")
    module, cls = IMPLEMENTATIONS[name].split(":")
    return getattr(import_module(module), cls)
