"""How traffic reaches a colour on Kubernetes: the routers of the kubernetes platform.

The main Service ``<service>`` is what clients use. Blue-green and rolling
switch its selector from one colour to the other (``SelectorSwitch``). A
canary splits traffic either with a Gateway API HTTPRoute's weights between
the main, canary and baseline Services (``GatewayWeights``), or, where no
Gateway API is installed, by the number of pods behind a main Service that
selects every colour (``ReplicaRatio``: the Rollout sets the pod counts).
"""

from __future__ import annotations

import logging
from typing import Protocol

from deployflow.catalog import Environment
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import Manifests
from deployflow.platforms.base import BASELINE

log = logging.getLogger("deployflow.deployer")


class Traffic(Protocol):
    pods_carry_share: bool  # the share of a canary step is the ratio of pods (the Rollout scales them)

    def hold(self, live: str) -> None:
        """Before the first step: all traffic on the live colour, none on the new pods."""

    def split(self, percent: int, baseline: int) -> None:
        """A canary step: ``percent`` to the canary, ``baseline`` to the baseline, the rest to the live colour."""

    def switch(self, colour: str) -> None:
        """All traffic to ``colour`` at once: a promotion, or a restore."""


class SelectorSwitch:
    """The main Service selects one colour; switching is one write of its selector."""

    pods_carry_share = False

    def __init__(self, cluster: Cluster, manifests: Manifests) -> None:
        self.cluster = cluster
        self.m = manifests

    def select(self, role: str, colour: str | None) -> None:
        """Point Service ``role`` (main: "") at ``colour``'s pods, or at every colour's with None."""
        self.cluster.apply(self.m.service_object(self.m.service_name(role), self.m.selector(colour)))

    def hold(self, live: str) -> None:
        self.select("", live)

    def split(self, percent: int, baseline: int) -> None:
        raise NotImplementedError("a selector switch moves all traffic at once")

    def switch(self, colour: str) -> None:
        self.select("", colour)


class GatewayWeights(SelectorSwitch):
    """The HTTPRoute ``<service>`` weighs the main (live colour), canary and baseline Services."""

    def route(self, main: int, canary: int = 0, baseline: int = 0) -> None:
        names = (self.m.service_name(), self.m.service_name("canary"), self.m.service_name(BASELINE))
        self.cluster.apply(self.m.httproute(dict(zip(names, (main, canary, baseline)))))
        log.info("route: %d %% main, %d %% canary, %d %% baseline", main, canary, baseline)

    def hold(self, live: str) -> None:
        self.select("", live)
        self.route(100)

    def split(self, percent: int, baseline: int) -> None:
        self.route(100 - percent - baseline, percent, baseline)

    def switch(self, colour: str) -> None:
        # The main Service's pods change first (the new colour is at full size), then its weight goes to 100.
        self.select("", colour)
        self.route(100)


class ReplicaRatio(SelectorSwitch):
    """The main Service selects every colour while a canary runs: each pod gets an equal share."""

    pods_carry_share = True

    def hold(self, live: str) -> None:
        self.select("", None)

    def split(self, percent: int, baseline: int) -> None:
        pass  # the Rollout has set the pods: there is nothing to weigh


def traffic_for(strategy: str, env: Environment, cluster: Cluster, manifests: Manifests) -> Traffic:
    """The router a strategy uses in ``env``: canary by the environment's ``kubernetes.traffic``, the others a selector."""
    if strategy != "canary":
        return SelectorSwitch(cluster, manifests)
    return {"gateway": GatewayWeights, "replicas": ReplicaRatio}[env.kubernetes.traffic](cluster, manifests)
