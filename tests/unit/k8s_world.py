"""One service's kubernetes environment on the FAKE Kubernetes API, and the release scenarios the
driver, schema and RBAC tests share."""

from __future__ import annotations

from collections.abc import Callable

from deployflow.catalog import parse_service
from deployflow.deployer.rollout import StepFailed, Target
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import Manifests
from deployflow.kubernetes.rollout import KubernetesRollout
from deployflow.strategies.factory import strategy_for
from tests.unit.fake_kubernetes import FakeKubernetesAPI
from tests.unit.fakes import FakeClock, FakeSession

NAMESPACE = "shop-prod"


class World:
    def __init__(self, strategy: str, *, replicas: int = 3, traffic: str = "gateway", analysis: bool = True,
                 scale_down_delay_s: int = 0, pause_s: int = 0) -> None:
        self.service = parse_service({"name": "shop", "port": 8080, "source": {"repo": "/srv/shop"}, "environments": {"prod": {
            "platform": "kubernetes", "strategy": strategy, "replicas": replicas, "health": {"timeout_s": 30},
            "blue_green": {"scale_down_delay_s": scale_down_delay_s},
            "canary": {"steps": [10, 25, 50, 100], "pause_s": pause_s, "replicas": 1},
            "rolling": {"batch_size": 2, "max_unavailable": 1},
            "analysis": {"enabled": analysis},
            "kubernetes": {"namespace": NAMESPACE, "traffic": traffic, "gateway": "edge", "gateway_namespace": "gateways",
                           "hostnames": ["shop.example.com"], "image_pull_secrets": ["registry-login"]},
        }}})
        self.env = self.service.environments["prod"]
        self.api = FakeKubernetesAPI(NAMESPACE)
        self.clock = FakeClock()
        self.session = FakeSession()
        self.manifests = Manifests(self.service, self.env)

    def rollout(self, version: str, strategy: str | None = None) -> KubernetesRollout:
        cluster = Cluster(namespace=NAMESPACE, apps=self.api.apps, core=self.api.core, custom=self.api.custom,
                          serialize=self.api.serialize)
        return KubernetesRollout(
            cluster=cluster, manifests=self.manifests, strategy=strategy_for(strategy or self.env.strategy, self.env),
            target=Target(version, image(version)), session=self.session, sleep=self.clock.sleep,
            clock=self.clock.monotonic, poll_s=0.5,
        )

    def release(self, version: str, *steps: str) -> dict:
        rollout, result = self.rollout(version), {}
        for step in steps:
            result = getattr(rollout, step)()
        return result


def image(version: str) -> str:
    return f"registry.example.com/shop:{version}"


def _attempt(world: World, version: str, *steps: str) -> None:
    """A release whose watched steps may fail, then the rollback task, as the DAG runs them."""
    try:
        world.release(version, *steps)
    except StepFailed:
        pass
    world.release(version, "rollback")


def scenarios(strategy: str, traffic: str = "gateway") -> dict[str, Callable[[], World]]:
    """Every path of one strategy: first deploy, a promoted second release, rollbacks after each step, a
    version that never gets ready, re-runs of each step; returns the world each leaves."""
    full = ("prepare", "shift", "promote")

    def world() -> World:
        w = World(strategy, traffic=traffic, scale_down_delay_s=5 if strategy == "blue-green" else 0)
        w.release("v1", *full)
        return w

    def promoted() -> World:
        w = world()
        w.release("v2", *full)
        return w

    def rollback_after(step: str) -> Callable[[], World]:
        def run() -> World:
            w = world()
            _attempt(w, "v2", *full[: full.index(step) + 1])
            return w
        return run

    def never_ready() -> World:
        w = world()
        w.api.unready.add(image("v2"))
        _attempt(w, "v2", *full)
        return w

    def rerun_each_step() -> World:
        w = world()
        for step in full:
            w.release("v2", step)
            w.release("v2", step)
        return w

    def first_deploy_rolled_back() -> World:
        w = World(strategy, traffic=traffic)
        _attempt(w, "v1", "prepare", "shift")
        return w

    return {"first deploy": world, "promoted": promoted, "rollback after prepare": rollback_after("prepare"),
            "rollback after shift": rollback_after("shift"), "never ready": never_ready,
            "re-run each step": rerun_each_step, "first deploy rolled back": first_deploy_rolled_back}


ALL = [(strategy, traffic) for strategy, traffic in
       [("blue-green", "gateway"), ("canary", "gateway"), ("canary", "replicas"), ("rolling", "gateway")]]
