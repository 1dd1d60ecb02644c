"""The Docker engine's side of the docker platform: one container per instance, on the host network.

Every container listens on its own port on 127.0.0.1 (passed as ``PORT`` and
``BIND``, the convention the service follows) and carries labels naming the
stack, service, environment, version, colour and replica, so the live state
is always read back from the engine rather than remembered. ``DockerPlatform``
starts, lists and stops single containers; ``platforms/docker.py`` builds the
rollout engine's view of them.
"""

from __future__ import annotations

import io
import socket
import tarfile
import zlib
from collections.abc import Iterable
from typing import Any

import docker
from docker.errors import ImageNotFound, NotFound
from docker.models.containers import Container

from deployflow.catalog.ports import INSTANCE_PORTS  # the catalog refuses a front port in this range
from deployflow.configuration import CONFIG_DIR, quantity
from deployflow.platforms.base import Instance, InstanceSpec
from deployflow.platforms.hardening import Limits, hardening, pinned
from deployflow.record import StepFailed

LABEL = "io.deployflow"
HOST = "127.0.0.1"
PORT_CLAIMS = 20  # free ports tried in turn when other releases on the engine claim each first


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
        f"{LABEL}.image": spec.image,  # as released; the container's own image is that, pinned (run_kwargs)
    }


def run_kwargs(stack: str, spec: InstanceSpec, port: int, *, image: str) -> dict[str, object]:
    """Arguments of ``containers.create`` for one instance of ``spec``, from ``image``: ``spec.image`` pinned
    (``hardening.pinned``), by digest or ID."""
    return {
        "image": image,
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
        # The environment's limits, as Kubernetes gives a pod; the user is the image's own (the sample's: app).
        "nano_cpus": int(quantity(spec.resources.cpu) * 1e9),
        **hardening(Limits(spec.resources.memory, spec.resources.pids)),
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


def created_at(container: Container) -> tuple[str, str]:
    """When the engine created ``container``, sortable: its RFC 3339 time (nanoseconds, trailing zeros dropped) as
    the second and its fraction padded to nine digits."""
    created = str(container.attrs.get("Created") or "")
    second, _, fraction = created.rstrip("Z").partition(".")
    return second, fraction.ljust(9, "0")


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
        # ignore_removed: a container another release removes between the list and its inspect is gone, not an error
        # (under load, 50 releases on one engine: it failed steps with "404 No such container").
        return self.client.containers.list(all=True, filters={"label": wanted}, ignore_removed=True)

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
            # Made before the label was: the image the container was created from.
            image=lab.get(f"{LABEL}.image") or container.attrs["Config"]["Image"],
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
        image = pinned(self.client.api, spec.image)
        taken: set[int] = set()
        for _ in range(PORT_CLAIMS):
            taken |= {int(c.labels[f"{LABEL}.port"]) for c in self._containers()}
            port = free_port(taken, *self.ports, start=self.first_port)
            container = self._create(spec, run_kwargs(self.stack, spec, port, image=image))
            if self._first_claim(container, port):
                break
            # Another release's deployer, on this engine at the same moment, took the same free port first.
            container.remove(force=True)
            taken.add(port)
        else:
            raise StepFailed(f"no port for {name}: {PORT_CLAIMS} free ports in a row were claimed by other releases first")
        if spec.files:  # in the container's own layer before it starts: never in an image, never on a shared mount
            container.put_archive("/", config_archive(dict(spec.files)))
        container.start()
        container.reload()
        return self._instance(container)

    def _create(self, spec: InstanceSpec, kwargs: dict[str, Any]) -> Container:
        try:
            return self.client.containers.create(**kwargs)
        except ImageNotFound:
            # An engine that never ran this version (an environment's own Docker host) takes it from the
            # registry the build pushed it to; pull raises when the registry does not have it. Anonymous: the
            # deployer holds no credentials, and a locked registry's image was pulled before it started
            # (DeployerOperator.pull_release_image).
            self.client.images.pull(spec.image)
            return self.client.containers.create(**kwargs)

    def _first_claim(self, container: Container, port: int) -> bool:
        """Whether ``container`` is the first made on the engine with the label of ``port``: a free port is chosen
        from the engine's list, and two releases choosing at once may choose the same one. Each created container
        claims its port by its label; the earlier claim (the engine's creation time, then the ID) keeps it."""
        claims = self.client.containers.list(all=True, filters={"label": [f"{LABEL}.role=app", f"{LABEL}.port={port}"]},
                                             ignore_removed=True)
        first = min([container, *claims], key=lambda c: (created_at(c), c.id))
        return first.id == container.id

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
