"""The docker platform: each instance is a container on the host network; a set is a colour's containers.

Every container listens on its own port on 127.0.0.1 (passed as ``PORT`` and
``BIND``, the convention the service follows) and carries labels naming the
stack, service, environment, version, colour and replica, so the live state
is always read back from the engine rather than remembered. ``DockerPlatform``
starts and stops single containers; ``DockerWorkload`` is the rollout engine's
view of them, and tells Prometheus what to scrape, each instance with its track.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import docker
from docker.errors import ImageNotFound, NotFound

from deployflow import health
from deployflow.catalog import Health
from deployflow.catalog.ports import INSTANCE_PORTS  # the catalog refuses a front port in this range
from deployflow.configuration import CONFIG_DIR, Resources, config_version_of, quantity
from deployflow.platforms.base import BASELINE, Instance, InstanceSet, InstanceSpec
from deployflow.record import StepFailed, Target
from deployflow.platforms.config_files import ConfigFiles

LABEL = "io.deployflow"
HOST = "127.0.0.1"


def container_name(stack: str, spec: InstanceSpec) -> str:
    return f"df-{stack}-{spec.service}-{spec.environment}-{spec.colour}-{spec.index}"


def labels(stack: str, spec: InstanceSpec, port: int) -> dict[str, str]:
    return {
        f"{LABEL}.stack": stack,
        f"{LABEL}.role": "app",
        f"{LABEL}.service": spec.service,
        f"{LABEL}.environment": spec.environment,
        f"{LABEL}.version": spec.version,
        f"{LABEL}.colour": spec.colour,
        f"{LABEL}.index": str(spec.index),
        f"{LABEL}.port": str(port),
    }


def run_kwargs(stack: str, spec: InstanceSpec, port: int) -> dict[str, object]:
    """Arguments of ``containers.create`` for one instance."""
    memory = int(quantity(spec.resources.memory))
    return {
        "image": spec.image,
        "name": container_name(stack, spec),
        "network_mode": "host",
        "environment": {
            **spec.env,
            **({"CONFIG_DIR": CONFIG_DIR} if spec.files else {}),
            "PORT": str(port),
            "BIND": HOST,
            "APP_TRACK": spec.colour,
        },
        "labels": labels(stack, spec, port),
        # Back with the engine after a host reboot or a daemon restart (Kamal's containers do the same). A crash
        # still shows: each restart counts (Instance.restarts), and a new version that restarted has failed.
        "restart_policy": {"Name": "unless-stopped"},
        "stop_signal": "SIGTERM",
        # The environment's limits, as Kubernetes gives a pod; no swap beyond the memory limit.
        "nano_cpus": int(quantity(spec.resources.cpu) * 1e9),
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": spec.resources.pids,
    }


def config_archive(files: dict[str, str]) -> bytes:
    """The configuration's files as a tar for ``put_archive`` at ``/``: CONFIG_DIR, readable by the image's user."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        parts = CONFIG_DIR.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
        for name, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(f"{CONFIG_DIR.strip('/')}/{name}")
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def free_port(taken: Iterable[int], low: int, high: int, start: int | None = None) -> int:
    """The first port in [low, high], from ``start`` (default ``low``) round to the port before it, that no
    instance holds and nothing listens on."""
    taken = set(taken)
    start = low if start is None else start
    for port in [*range(start, high + 1), *range(low, start)]:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port left in {low}-{high} on {HOST}")


def first_port(stack: str, low: int, high: int) -> int:
    """Where ``stack`` starts looking for a free port: a point of the range fixed by its name. Two stacks on one
    host network (two engines, or the demo beside the tests) then rarely reach for the same port at the same
    moment: an engine's labels show its own instances only, and a port is free to the probe until the app in
    the container it went to listens."""
    return low + zlib.crc32(stack.encode()) % (high - low + 1)


class DockerPlatform:
    def __init__(self, client: docker.DockerClient, *, stack: str, ports: tuple[int, int] = INSTANCE_PORTS) -> None:
        self.client = client
        self.stack = stack
        self.ports = ports
        self.first_port = first_port(stack, *ports)

    def _containers(self, **filters: str) -> list:
        wanted = [f"{LABEL}.role=app"] + [f"{LABEL}.{k}={v}" for k, v in filters.items()]
        return self.client.containers.list(all=True, filters={"label": wanted})

    def instances(self, service: str, environment: str) -> list[Instance]:
        found = [self._instance(c) for c in self._containers(stack=self.stack, service=service, environment=environment)]
        return sorted(found, key=lambda i: (i.colour, i.index))

    def _instance(self, container) -> Instance:
        lab = container.labels
        return Instance(
            name=container.name,
            service=lab[f"{LABEL}.service"],
            environment=lab[f"{LABEL}.environment"],
            version=lab[f"{LABEL}.version"],
            image=container.attrs["Config"]["Image"],
            colour=lab[f"{LABEL}.colour"],
            index=int(lab[f"{LABEL}.index"]),
            host=HOST,
            port=int(lab[f"{LABEL}.port"]),
            running=container.status == "running" and not container.attrs.get("State", {}).get("Restarting"),
            restarts=int(container.attrs.get("RestartCount") or 0),
        )

    def start(self, spec: InstanceSpec) -> Instance:
        name = container_name(self.stack, spec)
        try:
            existing = self.client.containers.get(name)
        except NotFound:
            existing = None
        if existing is not None:
            current = self._instance(existing)
            if current.running and current.version == spec.version and current.image == spec.image:
                return current  # a retried step finds its work done
            existing.remove(force=True)
        taken = [int(c.labels[f"{LABEL}.port"]) for c in self._containers()]
        port = free_port(taken, *self.ports, start=self.first_port)
        try:
            container = self.client.containers.create(**run_kwargs(self.stack, spec, port))
        except ImageNotFound:
            # An engine that never ran this version (an environment's own Docker host) takes it from the
            # registry the build pushed it to; pull raises when the registry does not have it.
            self.client.images.pull(spec.image)
            container = self.client.containers.create(**run_kwargs(self.stack, spec, port))
        if spec.files:  # in the container's own layer before it starts: never in an image, never on a shared mount
            container.put_archive("/", config_archive(dict(spec.files)))
        container.start()
        container.reload()
        return self._instance(container)

    def stop(self, instance: Instance, grace_s: int = 10) -> None:
        try:
            container = self.client.containers.get(instance.name)
        except NotFound:
            return
        try:
            container.stop(timeout=grace_s)
        except NotFound:
            return
        container.remove(force=True)

    def describe_failure(self, instance: Instance) -> str:
        try:
            container = self.client.containers.get(instance.name)
        except NotFound:
            return f"{instance.name} no longer exists"
        state = container.attrs.get("State", {})
        tail = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
        return f"{instance.name} is {state.get('Status')} (exit code {state.get('ExitCode')}); last log lines: {tail}"


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
        self.session = session
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
