"""What a router is: it keeps a set of weighted routes to instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


BACKUP_SUFFIX = ".backup"


@dataclass(frozen=True)
class Route:
    """One server of the router: an instance's address and its share of traffic."""

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
        """Start the router if it is not running, from its last saved routes."""

    def routes(self) -> dict[str, Route]:
        """The routes the router serves now, read from the router itself."""

    def set_routes(self, routes: Mapping[str, Route]) -> None:
        """Make the routes exactly these, without dropping an in-flight or new request."""

    def remove(self) -> None:
        """Stop the router and forget its routes."""
