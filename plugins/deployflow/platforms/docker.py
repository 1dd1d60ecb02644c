"""The docker platform: each instance is a container on the host network.

Every container listens on its own port on 127.0.0.1 (passed as ``PORT`` and
``BIND``, the convention the service follows) and carries labels naming the
stack, service, environment, version, colour and replica, so the live state
is always read back from the engine rather than remembered.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import docker
from docker.errors import NotFound

from deployflow.platforms.base import Instance, InstanceSpec

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
    """Arguments of ``containers.run`` for one instance."""
    return {
        "image": spec.image,
        "name": container_name(stack, spec),
        "detach": True,
        "network_mode": "host",
        "environment": {
            **spec.env,
            "PORT": str(port),
            "BIND": HOST,
            "APP_TRACK": spec.colour,
        },
        "labels": labels(stack, spec, port),
        # A crash must show as a crash: the release decides what happens next.
        "restart_policy": {"Name": "no"},
        "stop_signal": "SIGTERM",
    }


def free_port(taken: Iterable[int], low: int, high: int) -> int:
    """The lowest port in [low, high] that no instance holds and nothing listens on."""
    taken = set(taken)
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port left in {low}-{high} on {HOST}")


class DockerPlatform:
    def __init__(self, client: docker.DockerClient, *, stack: str, ports: tuple[int, int] = (20000, 20999)) -> None:
        self.client = client
        self.stack = stack
        self.ports = ports

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
            running=container.status == "running",
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
        port = free_port(taken, *self.ports)
        container = self.client.containers.run(**run_kwargs(self.stack, spec, port))
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
