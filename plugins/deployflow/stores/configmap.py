"""The release record in the ConfigMap ``<service>-release`` (Kubernetes: the deployer pod has no disk), and the
environment's newest fencing token in its key ``fence`` (``TokenHome``): Airflow's side sets that key alone
(``Cluster.put_data``); the deployer reads it and never writes it (a replace of the record keeps it as it is)."""

from __future__ import annotations

import json

from deployflow.kubernetes.cluster import TOKEN_KEY, UNREAD, Cluster
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

    def token(self) -> int:
        self._read = self.cluster.get("ConfigMap", self.m.record_name)  # the freshest read: a save goes on from it
        return int(((self._read or {}).get("data") or {}).get(TOKEN_KEY) or 0)

    def hand_token(self, token: int) -> None:
        self.cluster.put_data(self.m.record_name, TOKEN_KEY, str(token), self.m.selector())
        self._read = UNREAD
