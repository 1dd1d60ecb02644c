"""Metrics provider by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.factory import implementation

IMPLEMENTATIONS = {
    "prometheus": "deployflow.metrics.prometheus:PrometheusProvider",
}


def provider_class(name: str) -> type:
    return implementation("metrics provider", name, IMPLEMENTATIONS)
