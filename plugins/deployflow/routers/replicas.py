"""Traffic on Kubernetes by the ratio of pods: while a canary runs, the main Service selects every colour and
each ready pod gets an equal share, so a step's share is carried by pod counts (no Gateway API needed)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from deployflow.platforms.base import BASELINE, COLOURS
from deployflow.routers.base import Split
from deployflow.routers.selector import SelectorSwitch

if TYPE_CHECKING:
    from deployflow.strategies.base import Step


class ReplicaRatio(SelectorSwitch):
    def sizes(self, step: Step, replicas: int) -> tuple[int, int | None]:
        if step.percent >= 100:
            return replicas, None  # the switch takes the old colour out; promote scales it to 0 after the delay
        canaries = max(step.new, math.ceil(step.percent * replicas / 100))
        return canaries, max(1, replicas - canaries)

    def weights(self) -> dict[str, int]:
        if self.main_colour():
            return super().weights()
        pods = {}
        for colour in (*COLOURS, BASELINE):
            deployment = self.cluster.get("Deployment", self.m.deployment_name(colour))
            if deployment:
                pods[colour] = (deployment.get("status") or {}).get("readyReplicas") or 0
        total = sum(pods.values())
        return {c: round(100 * n / total) for c, n in pods.items() if n} if total else {}

    def set_weights(self, split: Split) -> None:
        if split.percent == 0 and split.old and split.old != split.new:
            self.select("", None)  # every colour: the pods carry the shares from here on
            self.select("canary", split.new)
            if split.baseline:
                self.select(BASELINE, BASELINE)
        elif split.percent in (0, 100) or split.old is None:
            self.select("", split.new if split.percent or not split.old else split.old)
        # in between: the pods are the shares, and the engine has just scaled them
