"""Traffic router by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.factory import implementation

IMPLEMENTATIONS = {
    "haproxy": "deployflow.routers.haproxy_traffic:HAProxyTraffic",
    "selector": "deployflow.routers.selector:SelectorSwitch",
    "gateway": "deployflow.routers.gateway:GatewayWeights",
    "replicas": "deployflow.routers.replicas:ReplicaRatio",
}


def router_class(name: str) -> type:
    return implementation("router", name, IMPLEMENTATIONS)
