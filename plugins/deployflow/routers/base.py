"""What traffic routing is: shares of traffic, in percent, between the sets of a release.

``Traffic`` is what the rollout engine drives, on every platform: HAProxy's
runtime API on a Docker host; a Service selector, Gateway API HTTPRoute
weights, or the ratio of pods on Kubernetes. ``Router`` and ``Route`` are the
server-level view of a proxy (HAProxy) that ``HAProxyTraffic`` works through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from deployflow.strategies.base import Step

BACKUP_SUFFIX = ".backup"


@dataclass(frozen=True)
class Split:
    """``percent`` of traffic to the ``new`` set, the rest to the ``old`` one (None: there is none, the new
    set takes everything it can). With ``baseline`` the baseline set takes as much as the new one, out of
    the old set's share. ``keep_old``: how many old instances stay routed (None: all of them)."""

    new: str
    old: str | None
    percent: int
    baseline: bool = False
    keep_old: int | None = None

    @property
    def baseline_percent(self) -> int:
        return min(self.percent, 100 - self.percent) if self.baseline and self.old else 0


class Traffic(Protocol):
    def ensure(self) -> None:
        """Have the router running (a Docker host's proxy from its saved routes; on Kubernetes nothing to start)."""

    def weights(self) -> dict[str, int]:
        """Percent of traffic each set (by colour) receives now, as the router serves it."""

    def sizes(self, step: Step, replicas: int) -> tuple[int, int | None]:
        """Instances of the new and the old set a step needs (None: leave the old set as it is); where pods
        carry the shares (replica ratio), they are the shares."""

    def set_weights(self, split: Split) -> None:
        """Route traffic as ``split`` says, without dropping a request in flight."""

    def drain(self, colours: list[str]) -> None:
        """Take every route to these sets away, letting requests in flight finish (before they are stopped)."""

    def status(self) -> dict[str, object]:
        """The router's own view (servers and their checks, Services, route weights), for status."""

    def counters(self) -> dict[str, int]:
        """Running totals of what clients went through at the router (5xx, cut responses, retries); {} where the
        router keeps none (Kubernetes: the Gateway's or the mesh's own metrics have them)."""


@dataclass(frozen=True)
class Route:
    """One server of a proxy: an instance's address and its weight."""

    name: str
    host: str
    port: int
    weight: int
    status: str = "unknown"  # what the proxy's own health checks say: UP, DOWN, MAINT
    backup: bool = False  # serves only when no other route is up

    @staticmethod
    def backup_name(instance_name: str) -> str:
        return f"{instance_name}{BACKUP_SUFFIX}"


class Router(Protocol):
    def ensure(self) -> None:
        """Start the proxy if it is not running, from its last saved routes."""

    def routes(self) -> dict[str, Route]:
        """The routes the proxy serves now, read from the proxy itself."""

    def set_routes(self, routes: Mapping[str, Route]) -> None:
        """Make the routes exactly these, without dropping an in-flight or new request."""

    def remove(self) -> None:
        """Stop the proxy and forget its routes."""
