"""The release record in the ConfigMap ``<service>-release`` (Kubernetes: the deployer pod has no disk)."""

from __future__ import annotations

import json

from deployflow.kubernetes.cluster import UNREAD, Cluster
from deployflow.kubernetes.manifests import Manifests
from deployflow.record import Record

KEY = "release.json"


class ConfigMapStore:
    def __init__(self, cluster: Cluster, manifests: Manifests) -> None:
        self.cluster = cluster
        self.m = manifests
        self._read: dict | None | object = UNREAD  # the ConfigMap as last read: a save replaces it without reading again

    def load(self) -> Record | None:
        self._read = self.cluster.get("ConfigMap", self.m.record_name)
        data = (self._read or {}).get("data") or {}
        return Record.from_dict(json.loads(data[KEY])) if KEY in data else None

    def save(self, record: Record) -> None:
        self._read = self.cluster.apply(self.m.record(record.to_dict()), current=self._read)
