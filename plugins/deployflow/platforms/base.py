"""What a platform is: a site that gives the rollout engine its parts, and its workload: sets of instances
by colour, scaled to a version, watched until ready.

A ``Site`` is one environment of one service on its platform (a Docker host, a
Kubernetes namespace): it makes the workload, the traffic router and the
release store the rollout engine drives, the strategy as that platform carries
it out, and the driver of the analysis load. ``platforms/factory.py``'s
``site_for`` is the one place a platform is chosen; every caller asks the site.

Two sets take turns, named by colour (``blue``, ``green``): the live one runs
the old version, the other receives the new one. A canary's analysis adds a
third, ``baseline``: the old version started afresh, judged against the canary.
A set's track (``stable``, ``canary``, ``baseline``) is what metrics compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deployflow.configuration import Resources
from deployflow.record import COLOURS, Target
from deployflow.settings import DEFAULT_HAPROXY_IMAGE, DEFAULT_STACK, Settings, absolute

if TYPE_CHECKING:
    from deployflow.routers.base import Traffic
    from deployflow.stores.base import ReleaseStore
    from deployflow.strategies.base import Strategy

BASELINE = "baseline"  # the old version started afresh beside a canary, for analysis
TRACKS = ("stable", "canary", "baseline")


def other_colour(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass(frozen=True)
class Replica:
    """Which replica of which version, in which set (``colour``) of which service's environment."""

    service: str
    environment: str
    version: str
    image: str
    colour: str
    index: int


@dataclass(frozen=True)
class InstanceSpec(Replica):
    """One replica to start, with the release's configuration."""

    env: Mapping[str, str] = field(default_factory=dict)  # the release's configuration (values, flags, secrets)
    files: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> content, in configuration.CONFIG_DIR
    resources: Resources = field(default_factory=Resources)

    def __repr__(self) -> str:  # the env holds secrets: names only
        return f"InstanceSpec({self.service}, {self.environment}, {self.version}, {self.colour}-{self.index}, env={sorted(self.env)})"


@dataclass(frozen=True, kw_only=True)
class Instance(Replica):
    """One running (or exited) instance, as a Docker host sees it."""

    name: str
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


class Load(Protocol):
    """Synthetic traffic to an environment's front URL while a release is judged."""

    def start(self, *, image: str, url: str, rate: float, max_seconds: int,
              judging_over: Callable[[], bool]) -> dict[str, Any]:
        """Drive ``rate`` requests/s at ``url`` for ``max_seconds`` at most; what was started (or sent), as a dict."""

    def stop(self) -> bool:
        """Stop the environment's load (its report is kept for ``finish``); False when none ran."""

    def finish(self) -> dict[str, Any] | None:
        """Stop and remove the environment's load; its report (None: none ran, or it reported already)."""


def no_client(platform: str) -> Callable[..., Any]:
    def missing(*_: Any) -> Any:
        raise RuntimeError(f"no {platform} client was given to this site")

    return missing


@dataclass(frozen=True)
class StackSettings:
    """What every Docker site of one stack shares, passed in: the prefix of its containers and files, the routers'
    state directory (absolute: the deployer mounts it by that path), the proxy's image."""

    stack: str = DEFAULT_STACK
    state_dir: Path = Path(".state")
    haproxy_image: str = DEFAULT_HAPROXY_IMAGE

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", absolute(self.state_dir))

    @classmethod
    def of(cls, settings: Settings) -> StackSettings:
        """The Docker sites' part of the stack's settings (what a deploy task passes its deployer)."""
        return cls(settings.stack, settings.state_dir, settings.haproxy_image)


@dataclass(frozen=True)
class Clients:
    """How a site reaches its platform, asked for only when a part needs it: the deployer's own clients (the
    Docker socket it has mounted, the pod's service account) or Airflow's (an environment's connection)."""

    docker: Callable[[], Any] = field(default_factory=lambda: no_client("docker"))
    kubernetes: Callable[[str], Any] = field(default_factory=lambda: no_client("kubernetes"))  # connection id -> ApiClient


class Site(Protocol):
    """One service's environment on its platform: the parts the rollout engine drives there."""

    def strategy(self, name: str | None = None) -> Strategy:
        """The environment's strategy (``name`` overrides the catalog's), as this platform carries it out."""

    def workload(self, plan: Strategy) -> Workload:
        """Where the versions run: the sets of instances, by colour."""

    def traffic(self, plan: Strategy, workload: Workload) -> Traffic:
        """How traffic is split between the sets of ``workload`` for ``plan``'s steps."""

    def store(self) -> ReleaseStore:
        """Where the environment's release record is kept."""

    def load(self) -> Load:
        """The driver of the analysis load (a container on a Docker host, the task itself on Kubernetes)."""

    def front_url(self) -> str:
        """Where clients reach the live version (no trailing slash): the proxy on a Docker host, the catalog's
        front URL on Kubernetes."""

    def check_recoverable(self, docker_host: str | None) -> None:
        """Raise ``NotHere`` when recovery on ``docker_host`` (None: the local engine) is another host's work,
        ``StepFailed`` when the platform keeps its own state and needs no recovery from the ledger."""


class NotHere(Exception):
    """This environment runs on another host: its work is done there."""
