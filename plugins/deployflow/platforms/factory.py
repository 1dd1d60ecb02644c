"""Platform workload by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.factory import implementation

IMPLEMENTATIONS = {
    "docker": "deployflow.platforms.docker:DockerWorkload",
    "kubernetes": "deployflow.platforms.kubernetes:KubernetesWorkload",
}


def platform_class(name: str) -> type:
    return implementation("platform", name, IMPLEMENTATIONS)
