"""Release store by name; an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.factory import implementation

IMPLEMENTATIONS = {
    "file": "deployflow.stores.file:FileStore",
    "configmap": "deployflow.stores.configmap:ConfigMapStore",
}


def store_class(name: str) -> type:
    return implementation("release store", name, IMPLEMENTATIONS)
