"""Router by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.factory import implementation

IMPLEMENTATIONS = {
    "haproxy": "deployflow.routers.haproxy:HAProxyRouter",
}


def router_class(name: str) -> type:
    return implementation("router", name, IMPLEMENTATIONS)
