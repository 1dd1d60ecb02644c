"""The deployer's release records as the Releases view reads them, read only: each environment's through its
site's release store (``platforms.factory.site_for``: on a Docker host the file ``release.json`` under the state
directory, on Kubernetes the ConfigMap ``<service>-release`` through the environment's connection). A record
that is missing is no record yet; one that cannot be read (a partial file, a cluster the API server cannot
reach, or one that does not answer in time) is a sentence saying why, never an error of the page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from deployflow.airflow.releases_view.in_flight import RecordReading
from deployflow.catalog import Service
from deployflow.platforms.base import Clients, StackSettings
from deployflow.platforms.factory import site_for


def _kubernetes_client(connection_id: str) -> object:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook  # the API server's, when asked

    return KubernetesHook(conn_id=connection_id).api_client


class SiteRecords:
    """Each environment's release record, read through its site. :param settings: the stack's (its state
    directory); :param clients: how a site reaches its platform (the stores need no Docker engine);
    :param wait_s: how long an answer waits for one read (a cluster's API may not answer at all): a read
    still waiting is not asked again, the answer says so."""

    def __init__(self, settings: Callable[[], StackSettings], clients: Clients | None = None, *, wait_s: float = 3.0) -> None:
        self.settings = settings
        self.clients = clients or Clients(kubernetes=_kubernetes_client)
        self.wait_s = wait_s
        self._reads: dict[tuple[str, str], Future[RecordReading]] = {}  # at most one read a record at a time
        self._pool = ThreadPoolExecutor(thread_name_prefix="release-record")
        self._lock = threading.Lock()

    def read(self, service: Service, environment: str) -> RecordReading:
        key = (service.name, environment)
        with self._lock:
            pending = self._reads.get(key)
            if pending is None or pending.done():
                pending = self._reads[key] = self._pool.submit(self._read, service, environment)
        try:
            return pending.result(timeout=self.wait_s)
        except TimeoutError:
            return RecordReading(problem=f"the release record is not reachable from here: no answer in {self.wait_s:g} s")

    def _read(self, service: Service, environment: str) -> RecordReading:
        try:
            store = site_for(service, environment, clients=self.clients, settings=self.settings()).store()
            return RecordReading(store.load())
        except ValueError as exc:  # not JSON (a partial file), or a field of the wrong kind
            return RecordReading(problem=f"the release record cannot be read: {_first_line(exc)}")
        except (KeyError, TypeError) as exc:  # a record missing a field it needs
            return RecordReading(problem=f"the release record is incomplete: {type(exc).__name__} {_first_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - a cluster or connection this process cannot reach: say so, go on
            return RecordReading(problem=f"the release record is not reachable from here: {_first_line(exc)}")


def _first_line(exc: Any) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
