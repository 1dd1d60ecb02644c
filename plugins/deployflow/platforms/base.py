"""What a platform's workload is: sets of instances by colour, scaled to a version, watched until ready.

Two sets take turns, named by colour (``blue``, ``green``): the live one runs
the old version, the other receives the new one. A canary's analysis adds a
third, ``baseline``: the old version started afresh, judged against the canary.
A set's track (``stable``, ``canary``, ``baseline``) is what metrics compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from deployflow.configuration import Resources
from deployflow.record import COLOURS, Target

BASELINE = "baseline"  # the old version started afresh beside a canary, for analysis
TRACKS = ("stable", "canary", "baseline")


def other_colour(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass(frozen=True)
class InstanceSpec:
    """One replica of one version: ``colour`` names the set it belongs to."""

    service: str
    environment: str
    version: str
    image: str
    colour: str
    index: int
    env: Mapping[str, str] = field(default_factory=dict)  # the release's configuration (values, flags, secrets)
    files: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> content, in configuration.CONFIG_DIR
    resources: Resources = field(default_factory=Resources)

    def __repr__(self) -> str:  # the env holds secrets: names only
        return f"InstanceSpec({self.service}, {self.environment}, {self.version}, {self.colour}-{self.index}, env={sorted(self.env)})"


@dataclass(frozen=True)
class Instance:
    """One running (or exited) instance, as a Docker host sees it."""

    name: str
    service: str
    environment: str
    version: str
    image: str
    colour: str
    index: int
    host: str
    port: int
    running: bool
    restarts: int = 0  # times the engine restarted it (a crash, or the engine itself coming back)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class InstanceSet:
    """One colour's instances as the platform runs them now.

    ``size`` counts running instances (Docker) or the Deployment's replicas
    (Kubernetes); ``ready`` says whether all of them are ready; ``starting`` are
    instances the last scale started, not yet seen ready. ``instances`` holds
    each instance where the platform has them one by one (Docker).
    """

    colour: str
    target: Target | None  # the version and image the set runs; None when there is no such set
    size: int = 0
    ready: bool = True
    instances: tuple[Instance, ...] = ()
    starting: tuple[Instance, ...] = ()
    detail: Mapping[str, object] = field(default_factory=dict)  # the platform's own view, for status
    alive: int = 0  # instances serving as they should now: running and never restarted (Docker), ready pods (Kubernetes)

    @property
    def versions(self) -> set[str]:
        return {i.version for i in self.instances} or ({self.target.version} if self.target and self.size else set())


class Workload(Protocol):
    def get(self, colour: str) -> InstanceSet:
        """The set of ``colour`` as the platform runs it now (``target`` None when there is none)."""

    def scale(self, colour: str, count: int, target: Target, track: str) -> InstanceSet:
        """Make the set run ``count`` instances of ``target`` on ``track``, starting only what is missing (0: none)."""

    def wait_ready(self, instances: InstanceSet, *, restarts_fail: bool = True) -> None:
        """Return once every instance of the set is ready; StepFailed, with the platform's reasons, if it never is
        (or, with ``restarts_fail``, if one restarted: a crash-looping version is failing, never healthy)."""

    def remove(self, colour: str) -> None:
        """Delete the set altogether (a first deploy rolled back: nothing of it is kept)."""

    def urls(self, colour: str, track: str, *, serving: bool, external: bool = False) -> list[str]:
        """Where to probe the set: each instance, or the Service in front of it (the main one when it serves);
        ``external``: as Airflow reaches it, else as the deployer does."""
