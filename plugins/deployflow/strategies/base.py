"""What a strategy is: a plan of steps, each a share of traffic and the instances it needs.

A strategy never talks to a platform or a router: the rollout engine carries
out its steps, the same way for every strategy. All three move traffic from
the live set of instances (the old version) to a second set (the new version),
or, where the platform replaces instances itself (``in_place``), within the
live set; so rollback is the same for each: all traffic back to the old
version, then the new one goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Step:
    """After this step ``percent`` of traffic goes to the new version, served by
    ``new`` of its instances, the rest by ``old`` instances of the old one;
    then the step is watched for ``pause_s`` before the next."""

    percent: int
    new: int
    old: int
    pause_s: int = 0
    analysis: bool = False  # canary analysis judges this step before the release goes on


class Strategy(Protocol):
    name: str
    track: str  # the new version's track until it takes all traffic: "canary" or "stable"
    in_place: bool  # the platform replaces the live set's instances itself (a Deployment's rolling update)

    def first_instances(self, replicas: int) -> int:
        """How many instances of the new version ``prepare`` starts (with no traffic)."""

    def steps(self, replicas: int) -> list[Step]:
        """The traffic steps from 0 % to 100 %, in order."""

    def scale_down_delay(self) -> int:
        """Seconds the old version stays, without traffic, after the last step."""
