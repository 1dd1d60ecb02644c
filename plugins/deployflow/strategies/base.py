"""What a strategy is: a plan of steps, each a share of traffic and the instances it needs.

A strategy never talks to Docker or a proxy: the Rollout carries out its
steps. All three strategies move traffic from the live set of instances (the
old version) to a second set (the new version), so rollback is the same for
each: all traffic back to the old set, then remove the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_WEIGHT = 200  # per server, under HAProxy's 256


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

    def first_instances(self, replicas: int) -> int:
        """How many instances of the new version ``prepare`` starts (with no traffic)."""

    def steps(self, replicas: int) -> list[Step]:
        """The traffic steps from 0 % to 100 %, in order."""

    def scale_down_delay(self) -> int:
        """Seconds the old version stays, without traffic, after the last step."""


def weights(new: Sequence[str], old: Sequence[str], percent: int, baseline: Sequence[str] = ()) -> dict[str, int]:
    """Per-server weights giving ``percent`` to the ``new`` servers, the rest to ``old``.

    Without old servers everything goes to the new ones (a first deploy).
    A ``baseline`` (the old version, started afresh for canary analysis)
    gets the same share as the new version, as Kayenta advises, taken from
    the old servers' share. Weights are whole numbers of at least 1, so a tiny
    share spread over many servers comes out larger than asked (1 % over 50
    servers is 50 units).
    """
    if not old:
        percent = 100
    base = min(percent, 100 - percent) if baseline else 0
    result = {name: 0 for name in [*new, *old, *baseline]}
    for group, share in ((new, percent), (baseline, base), (old, 100 - percent - base)):
        if group and share:
            each = max(1, round(MAX_WEIGHT * share / 100 / len(group)))
            result.update({name: each for name in group})
    return result
