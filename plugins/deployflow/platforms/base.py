"""What a platform is: it starts, lists and stops instances of a version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

COLOURS = ("blue", "green")
BASELINE = "baseline"  # the old version started afresh beside a canary, for analysis


def other_colour(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass(frozen=True)
class InstanceSpec:
    """One replica of one version: ``colour`` names the set it belongs to (see Rollout)."""

    service: str
    environment: str
    version: str
    image: str
    colour: str
    index: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Platform(Protocol):
    def instances(self, service: str, environment: str) -> list[Instance]:
        """Every instance of the service in the environment, as the platform sees them now."""

    def start(self, spec: InstanceSpec) -> Instance:
        """Start one instance; a running one of the same spec is returned as it is."""

    def stop(self, instance: Instance, grace_s: int = 10) -> None:
        """Stop and remove one instance, letting it finish what it serves."""

    def describe_failure(self, instance: Instance) -> str:
        """Why an instance is not running (exit code, last log lines), for error messages."""
