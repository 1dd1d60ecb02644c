"""The docker platform: each instance is a container on the host network (``docker_engine.py``); a set is a
colour's containers; the environment's traffic goes through its HAProxy.

``DockerWorkload`` is the rollout engine's view of the containers, and tells
Prometheus what to scrape, each instance with its track. ``DockerSite`` makes
an environment's parts: the workload, HAProxy traffic, the release record in a
file beside the proxy's, the configuration files, the analysis load container.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from deployflow import health
from deployflow.analysis.load_container import ContainerLoad
from deployflow.catalog import Environment, Health, Service
from deployflow.catalog.urls import docker_url
from deployflow.configuration import Resources, config_version_of
from deployflow.platforms.base import BASELINE, Clients, Instance, InstanceSet, InstanceSpec, NotHere, StackSettings
from deployflow.platforms.config_files import ConfigFiles
from deployflow.platforms.docker_engine import DockerPlatform
from deployflow.record import StepFailed, Target
from deployflow.routers.haproxy import HAProxyRouter
from deployflow.routers.haproxy_traffic import HAProxyTraffic
from deployflow.stores.file import FileStore
from deployflow.strategies.base import Strategy
from deployflow.strategies.factory import strategy_for


class DockerWorkload:
    """One service's sets in one environment on this Docker host.

    :param platform: starts, lists and stops the containers (a DockerPlatform; tests pass a fake).
    :param session: HTTP session for readiness probes of new instances.
    :param targets_path: Prometheus' file-discovery file for this environment (None: no Prometheus).
    """

    def __init__(
        self, platform: DockerPlatform, *, service: str, environment: str, health_config: Health, session: health.Session,
        targets_path: Path | None = None, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic, configs: ConfigFiles | None = None, resources: Resources | None = None,
    ) -> None:
        self.platform = platform
        self.configs = configs
        self.resources = resources or Resources()
        self.service = service
        self.environment = environment
        self.health = health_config
        self.session = session or requests.Session()  # the readiness probes' (recovery's and the deployer's own)
        self.targets_path = targets_path
        self.sleep = sleep
        self.clock = clock

    def _members(self, colour: str) -> list[Instance]:
        return [i for i in self.platform.instances(self.service, self.environment) if i.colour == colour]

    @staticmethod
    def _set(colour: str, members: list[Instance], starting: tuple[Instance, ...] = ()) -> InstanceSet:
        members = sorted(members, key=lambda i: i.index)
        running = [i for i in members if i.running]
        first = (running or members or [None])[0]
        return InstanceSet(
            # Ready is only known by probing: a set with instances is probed before it takes traffic (even
            # instances that ran before: after an engine restart they came back unchecked).
            colour, Target(first.version, first.image) if first else None, size=len(running), ready=not running,
            instances=tuple(members), starting=starting, alive=sum(1 for i in running if not i.restarts),
            detail={"instances": [{"name": i.name, "url": i.url, "running": i.running} for i in members]},
        )

    def get(self, colour: str) -> InstanceSet:
        return self._set(colour, self._members(colour))

    def scale(self, colour: str, count: int, target: Target, track: str) -> InstanceSet:
        members = self._members(colour)
        keep = {i.index: i for i in members if i.running and (i.version, i.image) == (target.version, target.image) and i.index < count}
        for instance in members:
            if instance.index >= count:
                self.platform.stop(instance)
        missing = [n for n in range(count) if n not in keep]
        config = self.configs.load(config_version_of(target.version)) if missing and self.configs else None
        env = {**config.env, "CONFIG_VERSION": config_version_of(target.version)} if config and not config.empty else {}
        fresh = tuple(self.platform.start(InstanceSpec(
            self.service, self.environment, target.version, target.image, colour, n, env=env,
            files=config.files if config else {}, resources=self.resources)) for n in missing)
        self._sync_targets({colour: track})
        return self._set(colour, [*keep.values(), *fresh], fresh)

    def wait_ready(self, instances: InstanceSet, *, restarts_fail: bool = True) -> None:
        members = [i for i in instances.instances if i.running]
        h = self.health
        verdict = health.wait_healthy(
            self.session, [i.url for i in members], [h.ready], consecutive=1, interval_s=min(h.interval_s, 0.5),
            timeout_s=h.timeout_s, sleep=self.sleep, clock=self.clock,
        )
        if not verdict.healthy:
            why = "; ".join(self.platform.describe_failure(i) for i in members)
            raise StepFailed(f"{len(members)} instance(s) of {instances.colour} never became ready: {verdict.reason()} ({why})")
        restarted = [i for i in self._members(instances.colour) if i.restarts and i.running] if restarts_fail else []
        if restarted:
            why = "; ".join(f"{i.name} restarted {i.restarts} time(s): {self.platform.describe_failure(i)}" for i in restarted)
            raise StepFailed(f"{restarted[0].version} is crash-looping: {why}")

    def remove(self, colour: str) -> None:
        for instance in self._members(colour):
            self.platform.stop(instance)
        self._sync_targets({})

    def urls(self, colour: str, track: str, *, serving: bool, external: bool = False) -> list[str]:
        return [i.url for i in self.get(colour).instances]

    def _sync_targets(self, tracks: dict[str, str]) -> None:
        """Tell Prometheus what to scrape: every running instance, labelled with its set's track."""
        if self.targets_path is None:
            return
        known = json.loads(self.targets_path.read_text()) if self.targets_path.exists() else []
        by_name = {g["labels"].get("instance_name"): g["labels"].get("track") for g in known}
        groups = []
        for i in self.platform.instances(self.service, self.environment):
            if not i.running:
                continue
            track = tracks.get(i.colour) or by_name.get(i.name) or (BASELINE if i.colour == BASELINE else "stable")
            groups.append({"targets": [f"{i.host}:{i.port}"],
                           "labels": {"service": self.service, "environment": self.environment, "version": i.version,
                                      "track": track, "instance_name": i.name}})
        self.targets_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=1))
        tmp.replace(self.targets_path)  # Prometheus reads whole files only


class DockerSite:
    """One service's environment on a Docker host: its containers, its HAProxy, its files in ``state_dir``.

    :param clients: ``clients.docker()`` is the engine (asked for once, when a part first needs it).
    :param settings: the stack's name (the prefix of every container and file of it), the routers' state
        directory (proxy routes, release records, configurations, Prometheus targets), the proxy's image.
    :param session: HTTP session for readiness probes (default: a new one).
    :param platform: the containers' driver (default: a DockerPlatform on the engine; tests pass a fake).
    :param router: the proxy (default: the environment's HAProxy on the engine; tests pass a fake).
    """

    def __init__(
        self, service: Service, env: Environment, *, clients: Clients, settings: StackSettings,
        session: health.Session | None = None, platform: Any = None, router: Any = None, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic, drain_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service, self.env = service, env
        self.clients, self.settings = clients, settings
        self.stack, self.state_dir = settings.stack, settings.state_dir
        self.session = session or requests.Session()  # the readiness probes' (recovery's and the deployer's own)
        self._platform, self._router = platform, router
        self.sleep, self.clock, self.drain_sleep = sleep, clock, drain_sleep
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.clients.docker()
        return self._client

    @property
    def dir(self) -> Path:
        """The environment's own directory: the proxy's routes and the release record."""
        return self.state_dir / f"{self.stack}-{self.service.name}-{self.env.name}"

    @property
    def targets_path(self) -> Path:
        """Prometheus' file-discovery file for this environment."""
        return self.state_dir / "targets" / f"{self.stack}-{self.service.name}-{self.env.name}.json"

    def strategy(self, name: str | None = None) -> Strategy:
        return strategy_for(name or self.env.strategy, self.env)

    def workload(self, plan: Strategy | None = None) -> DockerWorkload:
        return DockerWorkload(
            self._platform or DockerPlatform(self.client, stack=self.stack), service=self.service.name,
            environment=self.env.name, health_config=self.env.health, session=self.session,
            targets_path=self.targets_path, sleep=self.sleep, clock=self.clock, configs=self.configs(),
            resources=self.env.resources,
        )

    def router(self) -> Any:
        """The environment's proxy."""
        return self._router or HAProxyRouter(
            self.client, stack=self.stack, service=self.service.name, environment=self.env.name,
            front_port=self.env.port, check_path=self.env.health.ready, state_dir=self.state_dir, image=self.settings.haproxy_image,
        )

    def traffic(self, plan: Strategy, workload: DockerWorkload) -> HAProxyTraffic:
        return HAProxyTraffic(self.router(), workload, sleep=self.drain_sleep)

    def store(self) -> FileStore:
        return FileStore(self.dir / "release.json")

    def configs(self) -> ConfigFiles:
        """The environment's resolved configurations, one 0600 file per configuration version."""
        return ConfigFiles.of(self.state_dir, stack=self.stack, service=self.service.name, environment=self.env.name)

    def load(self) -> ContainerLoad:
        return ContainerLoad(self.client, stack=self.stack, service=self.service.name, environment=self.env.name)

    def front_url(self) -> str:
        return docker_url(self.env.port)

    def check_recoverable(self, docker_host: str | None) -> None:
        on = self.env.docker_host.connection if self.env.docker_host is not None else None
        if on != docker_host:
            where = f"on docker_host {on!r}" if on else "on the local engine (no docker_host)"
            raise NotHere(f"not this host's: it runs {where}; run recover there{f' with --docker-host {on}' if on else ''}")
