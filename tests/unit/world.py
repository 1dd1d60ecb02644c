"""One service's environment on either platform, for the rollout engine's tests: the Docker workload and
HAProxy traffic over a fake Docker platform and a fake proxy, or the kubernetes workload, routers and
ConfigMap store over the FAKE Kubernetes API; and the release scenarios the tests share.

Every world answers the same questions: what share of traffic each version gets, which version serves,
and how many instances of each version run. That is what the contract suite (test_rollout_contract.py)
asserts, the same way on both platforms.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from deployflow.catalog import parse_service
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import Manifests
from deployflow.platforms.base import BASELINE, COLOURS, Clients, Site, StackSettings
from deployflow.platforms.docker import DockerSite
from deployflow.platforms.kubernetes import KubernetesSite
from deployflow.record import StepFailed, Target
from deployflow.rollout.engine import Rollout
from deployflow.rollout.fence import fenced_parts
from tests.unit.fake_kubernetes import FakeKubernetesAPI
from tests.unit.fakes import FakeClock, FakePlatform, FakeRouter, FakeSession

NAMESPACE = "shop-prod"
PLATFORMS = ("docker", "kubernetes")
FULL = ("prepare", "shift", "promote")


class World:
    def __init__(self, strategy: str, *, platform: str = "kubernetes", replicas: int = 3, traffic: str = "gateway",
                 analysis: bool = True, scale_down_delay_s: int = 0, pause_s: int = 0, timeout_s: int = 30,
                 batch_size: int = 2, state_dir: Path | None = None, post_promotion: dict | None = None) -> None:
        env: dict[str, Any] = {
            "strategy": strategy, "replicas": replicas, "health": {"timeout_s": timeout_s},
            "blue_green": {"scale_down_delay_s": scale_down_delay_s},
            "canary": {"steps": [10, 25, 50, 100], "pause_s": pause_s, "replicas": 1},
            "rolling": {"batch_size": batch_size, **({"max_unavailable": 1} if platform == "kubernetes" else {})},
            "analysis": {"enabled": analysis},
            # Off unless a test asks for it (prod's default is on): tests/unit/test_post_promotion.py watches.
            "post_promotion": post_promotion or {"enabled": False},
        }
        if platform == "kubernetes":
            env.update(platform="kubernetes", kubernetes={
                "namespace": NAMESPACE, "traffic": traffic, "gateway": "edge", "gateway_namespace": "gateways",
                "hostnames": ["shop.example.com"], "image_pull_secrets": ["registry-login"]})
        else:
            env["port"] = 18103
        self.platform_name = platform
        self.service = parse_service({"name": "shop", "port": 8080, "source": {"repo": "/srv/shop"}, "environments": {"prod": env}})
        self.env = self.service.environments["prod"]
        self.clock = FakeClock()
        self.session = FakeSession()
        self.log: list = []
        self.judges = None  # the post-promotion watch's judge factory (old, new) -> Judge; None: health only
        if platform == "kubernetes":
            self.api = FakeKubernetesAPI(NAMESPACE)
            self.manifests = Manifests(self.service, self.env)
        else:
            self.platform, self.router = FakePlatform(self.log, self.session), FakeRouter(self.log)
            self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="deployflow-world-"))

    # ---- rollouts ---------------------------------------------------------------------

    def site(self, cluster: Cluster | None = None) -> Site:
        """The environment's site over the fakes; on Kubernetes through ``cluster`` if given (the real client, say)."""
        if self.platform_name == "kubernetes":
            cluster = cluster or Cluster(namespace=NAMESPACE, apps=self.api.apps, core=self.api.core, custom=self.api.custom,
                                         serialize=self.api.serialize)
            return KubernetesSite(self.service, self.env, clients=Clients(), cluster=cluster, poll_s=0.5,
                                  sleep=self.clock.sleep, clock=self.clock.monotonic)
        return DockerSite(self.service, self.env, clients=Clients(), settings=StackSettings("world", self.state_dir),
                          session=self.session, platform=self.platform, router=self.router, sleep=self.clock.sleep,
                          clock=self.clock.monotonic, drain_sleep=lambda s: None)

    def rollout(self, version: str, strategy: str | None = None, *, cluster: Cluster | None = None,
                fence: int | None = None) -> Rollout:
        """A rollout of ``version`` on the world's site, as the deployer wires it (a step holding ``fence``, if
        given), with the world's clock."""
        site = self.site(cluster)
        plan = site.strategy(strategy)
        workload, traffic, store = fenced_parts(site, plan, fence)
        return Rollout(workload=workload, traffic=traffic, store=store, strategy=plan,
                       service="shop", environment=self.env, target=Target(version, image(version)), session=self.session,
                       judges=self.judges, sleep=self.clock.sleep, clock=self.clock.monotonic, now=self.clock.monotonic)

    def release(self, version: str, *steps: str, strategy: str | None = None) -> dict:
        """Run ``steps`` (default: prepare, shift, promote, then forget what the fakes recorded)."""
        rollout, result = self.rollout(version, strategy), {}
        for step in steps or FULL:
            result = getattr(rollout, step)()
        if not steps and self.platform_name == "docker":
            self.log.clear()
            self.router.calls.clear()
            self.session.asked.clear()
        return result

    # ---- what a client and an operator see ----------------------------------------------

    def shares(self) -> dict[str, int]:
        """Percent of traffic per version, from the router's own state."""
        rollout = self.rollout("probe")
        by_version: dict[str, int] = {}
        for colour, share in rollout.traffic.weights().items():
            found = rollout.workload.get(colour)
            if share and found.target:
                by_version[found.target.version] = by_version.get(found.target.version, 0) + share
        return by_version

    def served(self) -> str | None:
        shares = self.shares()
        return max(shares, key=shares.get) if shares else None

    def running(self) -> dict[str, int]:
        """Instances (pods, containers) of each version that run, in every set."""
        workload = self.rollout("probe").workload
        counts: dict[str, int] = {}
        for colour in (*COLOURS, BASELINE):
            found = workload.get(colour)
            if found.target and found.size:
                for version in found.versions:
                    counts[version] = counts.get(version, 0) + (found.size if not found.instances else
                                                                sum(i.running and i.version == version for i in found.instances))
        return counts

    def fail_health(self, version: str) -> None:
        """From now on ``version`` fails its health checks (``/health``) but still says it is ready."""
        if self.platform_name == "kubernetes":
            self.session.default = 503  # the deployer probes the Services; a restore reads Deployments, not HTTP
        else:
            self.session.answers.update({f"{i.url}/health": 503 for i in self.platform.by_name.values() if i.version == version})

    def break_version(self, version: str, *, never_ready: bool = False) -> None:
        """Make ``version`` fail: its instances answer 503 (Docker), or its pods never get ready (Kubernetes)."""
        if self.platform_name == "kubernetes":
            self.api.unready.add(image(version))
        else:
            self.session.answers.update({i.url: 503 for i in self.platform.by_name.values() if i.version == version})
            self.platform.failing.add(version)


    def crash(self, version: str) -> None:
        """``version``'s instances crash and come back (Docker's restart policy: each counts a restart), or its
        pods stop being ready (Kubernetes)."""
        if self.platform_name == "kubernetes":
            self.api.unready.add(image(version))
        else:
            for name, instance in list(self.platform.by_name.items()):
                if instance.version == version:
                    self.platform.by_name[name] = replace(instance, restarts=instance.restarts + 1)


def image(version: str) -> str:
    return f"registry.example.com/shop:{version}"


def attempt(world: World, version: str, *steps: str) -> None:
    """A release whose watched steps may fail, then the rollback task, as the DAG runs them."""
    try:
        world.release(version, *steps)
    except StepFailed:
        pass
    world.release(version, "rollback")


def scenarios(strategy: str, traffic: str = "gateway", platform: str = "kubernetes") -> dict[str, Callable[[], World]]:
    """Every path of one strategy: first deploy, a promoted second release, rollbacks after each step, a
    version that never gets ready, re-runs of each step; returns the world each leaves."""

    def world(**kwargs: Any) -> World:
        w = World(strategy, platform=platform, traffic=traffic, scale_down_delay_s=5 if strategy == "blue-green" else 0, **kwargs)
        w.release("v1", *FULL)
        return w

    def promoted() -> World:
        w = world()
        w.release("v2", *FULL)
        return w

    def rollback_after(step: str) -> Callable[[], World]:
        def run() -> World:
            w = world()
            attempt(w, "v2", *FULL[: FULL.index(step) + 1])
            return w
        return run

    def never_ready() -> World:
        w = world()
        w.break_version("v2", never_ready=True)
        attempt(w, "v2", *FULL)
        return w

    def rerun_each_step() -> World:
        w = world()
        for step in FULL:
            w.release("v2", step)
            w.release("v2", step)
        return w

    def first_deploy_rolled_back() -> World:
        w = World(strategy, platform=platform, traffic=traffic)
        attempt(w, "v1", "prepare", "shift")
        return w

    return {"first deploy": world, "promoted": promoted, "rollback after prepare": rollback_after("prepare"),
            "rollback after shift": rollback_after("shift"), "never ready": never_ready,
            "re-run each step": rerun_each_step, "first deploy rolled back": first_deploy_rolled_back}


ALL = [("blue-green", "gateway"), ("canary", "gateway"), ("canary", "replicas"), ("rolling", "gateway")]
