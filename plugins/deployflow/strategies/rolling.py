"""Rolling: replace the old instances batch by batch; each new batch passes
its health checks before it takes traffic and an old batch goes. In place
(Kubernetes), the live Deployment takes the new pod template and replaces its
pods itself, ``batch_size`` at a time: one step for the engine."""

from __future__ import annotations

from dataclasses import dataclass

from deployflow.catalog import Rolling as RollingConfig
from deployflow.strategies.base import Step


@dataclass(frozen=True)
class Rolling:
    config: RollingConfig
    in_place: bool = False
    name: str = "rolling"
    track: str = "stable"

    def first_instances(self, replicas: int) -> int:
        return replicas if self.in_place else min(self.config.batch_size, replicas)

    def steps(self, replicas: int) -> list[Step]:
        if self.in_place:
            return [Step(percent=100, new=replicas, old=0)]
        batch = self.config.batch_size
        counts = [min(replicas, n) for n in range(batch, replicas + batch, batch)]
        return [Step(percent=round(100 * n / replicas), new=n, old=replicas - n) for n in counts]

    def scale_down_delay(self) -> int:
        return 0
