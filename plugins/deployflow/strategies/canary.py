"""Canary: a few instances of the new version beside the full old one take a
growing share of traffic, step by step with a pause (and, with analysis, a
verdict) per step; at 100 % the new version is scaled to full size first."""

from __future__ import annotations

from dataclasses import dataclass

from deployflow.catalog import Canary as CanaryConfig
from deployflow.strategies.base import Step


@dataclass(frozen=True)
class Canary:
    config: CanaryConfig
    analysis: bool = False  # judge the first step (canary analysis) before going on
    name: str = "canary"
    track: str = "canary"
    in_place: bool = False

    def first_instances(self, replicas: int) -> int:
        return min(self.config.replicas, replicas)

    def steps(self, replicas: int) -> list[Step]:
        canaries = self.first_instances(replicas)
        steps = [
            Step(percent=w, new=canaries, old=replicas, pause_s=self.config.pause_s, analysis=self.analysis and n == 0)
            for n, w in enumerate(self.config.steps[:-1])
        ]
        return [*steps, Step(percent=100, new=replicas, old=replicas)]

    def scale_down_delay(self) -> int:
        return 0
