"""Blue-green: the idle colour starts in full, passes its health checks, then
takes all traffic at once; the old colour stays idle for the scale-down delay
(an instant way back), then goes."""

from __future__ import annotations

from dataclasses import dataclass

from deployflow.catalog import BlueGreen as BlueGreenConfig
from deployflow.strategies.base import Step


@dataclass(frozen=True)
class BlueGreen:
    config: BlueGreenConfig
    name: str = "blue-green"
    track: str = "stable"
    in_place: bool = False

    def first_instances(self, replicas: int) -> int:
        return replicas

    def steps(self, replicas: int) -> list[Step]:
        return [Step(percent=100, new=replicas, old=replicas)]

    def scale_down_delay(self) -> int:
        return self.config.scale_down_delay_s
