"""The analysis load as a detached container on the environment's Docker engine.

The release's judging needs traffic for minutes; a task that generated it
in-process held a worker slot all that time. A container costs the engine a
small Python process and Airflow nothing: the load task starts it and
returns, the container stops itself at its bound (``max_seconds``), and the
record task (which always runs) stops it sooner, reads its report from its
log and removes it. One container per stack, service and environment, by
name: a retried load task replaces a running one, never runs a second.

Builders are pure (``container_name``, ``run_kwargs``); ``start`` and
``finish`` are the small runners, on a ``docker.DockerClient`` passed in;
``ContainerLoad`` is a Docker site's analysis load through them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from docker.errors import NotFound

from deployflow.platforms.hardening import LOAD_LIMITS, hardening, pinned

log = logging.getLogger("deployflow.analysis")

LABEL = "io.deployflow"
ROLE = "load"
STOP_TIMEOUT_S = 15  # SIGTERM, then the generator's threads finish their request (5 s timeout) and it prints its report


def container_name(stack: str, service: str, environment: str) -> str:
    return f"df-{stack}-{service}-{environment}-load"


def run_kwargs(*, image: str, url: str, rate: float, max_seconds: float, stack: str, service: str,
               environment: str) -> dict[str, Any]:
    """Arguments of ``containers.run`` for the load of one release, from ``image`` pinned (the deployer's: it carries
    deployflow and requests), as that image's non-root user."""
    return {
        "image": image,
        "entrypoint": ["python3", "-m", "deployflow.analysis.loadgen"],
        "command": [url, "--rate", f"{rate:g}", "--max-seconds", f"{max_seconds:.0f}", "--threads", "2"],
        "name": container_name(stack, service, environment),
        "detach": True,
        "network_mode": "host",  # like every container of the stack: the proxy listens on 127.0.0.1
        "labels": {f"{LABEL}.stack": stack, f"{LABEL}.role": ROLE, f"{LABEL}.service": service,
                   f"{LABEL}.environment": environment},
        "restart_policy": {"Name": "no"},  # a load that ended stays ended (its report is in its log)
        **hardening(LOAD_LIMITS),
    }


def start(client: Any, kwargs: dict[str, Any]) -> str:
    """Start the load, replacing one of the same name (a retried task converges); its container id."""
    _remove(client, kwargs["name"])
    return client.containers.run(**kwargs).id


def stop(client: Any, name: str) -> bool:
    """Stop the load if it runs (its report is printed, the container kept for whoever reads it); False if none."""
    try:
        container = client.containers.get(name)
    except NotFound:
        return False
    if container.status == "running":
        container.stop(timeout=STOP_TIMEOUT_S)
    return True


def finish(client: Any, name: str) -> dict[str, Any] | None:
    """Stop the load, read its report (``{"requests", "failed", "summary"}``) and remove it; None if there was none."""
    if not stop(client, name):
        return None
    container = client.containers.get(name)
    report = report_of(container.logs().decode(errors="replace"))
    _remove(client, name)
    return report


def report_of(log: str) -> dict[str, Any]:
    """The load's report from its log: the last JSON line and the ``load:`` summary before it."""
    report: dict[str, Any] = {"requests": None, "failed": None, "summary": "no report (the load did not finish its run)"}
    for line in log.splitlines():
        if line.startswith("load: ") and " requests in " in line:
            report["summary"] = line.removeprefix("load: ")
        elif line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            report.update({k: found.get(k) for k in ("requests", "failed")})
    return report


def _remove(client: Any, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True)
    except NotFound:
        pass


class ContainerLoad:
    """The analysis load of one environment as its container on ``client``'s engine (a platform's ``Load``)."""

    def __init__(self, client: Any, *, stack: str, service: str, environment: str) -> None:
        self.client = client
        self.stack, self.service, self.environment = stack, service, environment

    @property
    def name(self) -> str:
        return container_name(self.stack, self.service, self.environment)

    def start(self, *, image: str, url: str, rate: float, max_seconds: int,
              judging_over: Callable[[], bool]) -> dict[str, Any]:
        """Start the container and return at once: it stops itself at ``max_seconds``, the record task sooner."""
        kwargs = run_kwargs(image=pinned(self.client.api, image), url=url, rate=rate, max_seconds=max_seconds, stack=self.stack,
                            service=self.service, environment=self.environment)
        container_id = start(self.client, kwargs)
        log.info("load: started container %s (%s); the record task stops it and logs its report", self.name, container_id[:12])
        return {"container": self.name, "max_seconds": max_seconds}

    def stop(self) -> bool:
        return stop(self.client, self.name)

    def finish(self) -> dict[str, Any] | None:
        return finish(self.client, self.name)
