"""The kubernetes platform: each set is a Deployment, ``<service>-blue``, ``<service>-green`` or
``<service>-baseline``, in the environment's namespace; ``KubernetesSite`` makes an environment's parts.

A set's size is its Deployment's replicas; ready means the rollout is complete
(observedGeneration, updated, ready and available replicas) and no
ProgressDeadlineExceeded. The Services in front of the sets belong to the
traffic routers (routers/selector.py, gateway.py, replicas.py); ``urls`` names
the one a set stands behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from deployflow.analysis.loadgen import InProcessLoad
from deployflow.catalog import Environment, Service
from deployflow.catalog.urls import service_url
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import GROUP, Manifests
from deployflow.platforms.base import BASELINE, Clients, InstanceSet, StackSettings
from deployflow.record import StepFailed, Target
from deployflow.routers.factory import router_class
from deployflow.stores.configmap import ConfigMapStore
from deployflow.strategies.base import Strategy
from deployflow.strategies.factory import strategy_for

log = logging.getLogger("deployflow.deployer")


def target_of(deployment: dict) -> Target:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return Target(labels[f"{GROUP}/version"], deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def rollout_state(deployment: dict) -> tuple[bool, str, str | None]:
    """Whether the Deployment's rollout is complete and every pod ready, what it waits for, and the
    progress-deadline message if Kubernetes gave up on it."""
    want = deployment["spec"].get("replicas", 1)
    status = deployment.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, "", f"Deployment {deployment['metadata']['name']} exceeded its progress deadline: {condition.get('message')}"
    counts = {k: status.get(k) or 0 for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    observed = (status.get("observedGeneration") or 0) >= (deployment["metadata"].get("generation") or 0)
    done = observed and counts["replicas"] == want and all(counts[k] >= want for k in ("updatedReplicas", "readyReplicas", "availableReplicas"))
    return done, f"{counts['updatedReplicas']} updated, {counts['readyReplicas']} ready of {want} ({counts['replicas']} pods)", None


class KubernetesWorkload:
    """One service's Deployments in one kubernetes environment.

    :param in_place: the rolling strategy: a Deployment takes a new template and replaces its pods
        ``batch_size`` at a time (maxSurge), ``max_unavailable`` below its size at most.
    """

    def __init__(self, cluster: Cluster, manifests: Manifests, *, in_place: bool = False, poll_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.cluster = cluster
        self.m = manifests
        self.in_place = in_place
        self.poll_s = poll_s
        self.sleep = sleep
        self.clock = clock

    def _set(self, colour: str, deployment: dict | None) -> InstanceSet:
        if deployment is None:
            return InstanceSet(colour, None)
        replicas = deployment["spec"].get("replicas", 0)
        status = deployment.get("status") or {}
        return InstanceSet(colour, target_of(deployment), size=replicas, ready=not replicas or rollout_state(deployment)[0],
                           detail={"replicas": replicas, "ready": status.get("readyReplicas") or 0},
                           alive=min(replicas, status.get("readyReplicas") or 0))

    def get(self, colour: str) -> InstanceSet:
        return self._set(colour, self.cluster.get("Deployment", self.m.deployment_name(colour)))

    def scale(self, colour: str, count: int, target: Target, track: str) -> InstanceSet:
        manifest = self.m.deployment(colour, track, target.version, target.image, count, rolling=self.in_place)
        return self._set(colour, self.cluster.apply(manifest))

    def wait_ready(self, instances: InstanceSet, *, restarts_fail: bool = True) -> None:
        # A crash-looping pod never stays ready: the Deployment's status says so, restarts need no count here.
        started = self.clock()
        name = self.m.deployment_name(instances.colour)
        timeout = self.m.env.health.timeout_s
        while True:
            deployment = self.cluster.get("Deployment", name)
            if deployment is None:
                raise StepFailed(f"Deployment {name} is gone")
            done, progress, gave_up = rollout_state(deployment)
            if gave_up:
                raise StepFailed(gave_up)
            if done:
                log.info("%s: %s in %.1f s", name, progress, self.clock() - started)
                return
            if self.clock() - started >= timeout:
                raise StepFailed(f"Deployment {name} not ready after {timeout} s: {progress}")
            self.sleep(self.poll_s)

    def remove(self, colour: str) -> None:
        self.cluster.delete("Deployment", self.m.deployment_name(colour))

    def urls(self, colour: str, track: str, *, serving: bool, external: bool = False) -> list[str]:
        role = "" if serving else {"canary": "canary", BASELINE: BASELINE}.get(track, "preview")
        name = self.m.service_name(role)
        return [self.m.env.kubernetes.service_url(name) if external else self.m.in_cluster_url(name)]


def traffic_name(env: Environment, plan: Strategy) -> str:
    """The router of a plan: one that splits traffic between versions by the environment's ``kubernetes.traffic``
    (Gateway API weights, replica ratio); one that moves it at once, a selector switch."""
    splits = any(0 < step.percent < 100 for step in plan.steps(env.replicas))
    return env.kubernetes.traffic if splits else "selector"


class KubernetesSite:
    """One service's environment in its Kubernetes namespace.

    :param clients: ``clients.kubernetes(connection_id)`` is the ApiClient (asked for once, when a part first needs it).
    :param settings, session: a Docker stack's, unused here (a cluster keeps its own state and probes its own pods).
    :param cluster: the API as the parts use it (default: from that client; tests pass the FAKE API's).
    """

    def __init__(self, service: Service, env: Environment, *, clients: Clients, settings: StackSettings | None = None,
                 session: object = None, cluster: Cluster | None = None, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service, self.env, self.clients = service, env, clients
        self.manifests = Manifests(service, env)
        self._cluster = cluster
        self.poll_s, self.sleep, self.clock = poll_s, sleep, clock

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            client = self.clients.kubernetes(self.env.kubernetes.connection_id)
            self._cluster = Cluster.from_api_client(client, self.manifests.namespace)
        return self._cluster

    def strategy(self, name: str | None = None) -> Strategy:
        # A Deployment replaces its own pods (maxSurge = batch size): rolling happens in place.
        return strategy_for(name or self.env.strategy, self.env, in_place_rolling=True)

    def workload(self, plan: Strategy) -> KubernetesWorkload:
        return KubernetesWorkload(self.cluster, self.manifests, in_place=plan.in_place, poll_s=self.poll_s,
                                  sleep=self.sleep, clock=self.clock)

    def traffic(self, plan: Strategy, workload: KubernetesWorkload):
        return router_class(traffic_name(self.env, plan))(self.cluster, self.manifests)

    def store(self) -> ConfigMapStore:
        return ConfigMapStore(self.cluster, self.manifests)

    def load(self) -> InProcessLoad:
        return InProcessLoad()

    def front_url(self) -> str:
        k8s = self.env.kubernetes
        return service_url(k8s.front_url or k8s.url, self.service.name, k8s.namespace)

    def check_recoverable(self, docker_host: str | None) -> None:
        raise StepFailed("a kubernetes environment: recover brings back Docker hosts only (a cluster keeps its "
                         "Deployments, release ConfigMap and configuration Secrets; release it again through Airflow)")
