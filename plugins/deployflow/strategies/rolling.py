"""Rolling: replace the old instances batch by batch; each new batch passes
its health checks before it takes traffic and an old batch goes."""

from __future__ import annotations

from dataclasses import dataclass

from deployflow.catalog import Rolling as RollingConfig
from deployflow.strategies.base import Step


@dataclass(frozen=True)
class Rolling:
    config: RollingConfig
    name: str = "rolling"

    def first_instances(self, replicas: int) -> int:
        return min(self.config.batch_size, replicas)

    def steps(self, replicas: int) -> list[Step]:
        batch = self.config.batch_size
        counts = [min(replicas, n) for n in range(batch, replicas + batch, batch)]
        return [Step(percent=round(100 * n / replicas), new=n, old=replicas - n) for n in counts]

    def scale_down_delay(self) -> int:
        return 0
