"""Traffic on Kubernetes by Gateway API HTTPRoute weights: the main (live colour), canary and baseline Services."""

from __future__ import annotations

import logging

from deployflow.platforms.base import BASELINE
from deployflow.routers.base import Split
from deployflow.routers.selector import SelectorSwitch

log = logging.getLogger("deployflow.deployer")


class GatewayWeights(SelectorSwitch):
    """The HTTPRoute ``<service>`` weighs the main Service (live colour), ``<service>-canary`` and ``<service>-baseline``."""

    def route(self, main: int, canary: int = 0, baseline: int = 0) -> None:
        if self._written.get("route") == (main, canary, baseline):
            return  # written moments ago by this step
        names = (self.m.service_name(), self.m.service_name("canary"), self.m.service_name(BASELINE))
        self.cluster.apply(self.m.httproute(dict(zip(names, (main, canary, baseline)))))
        self._written["route"] = (main, canary, baseline)
        log.info("route: %d %% main, %d %% canary, %d %% baseline", main, canary, baseline)

    def weights(self) -> dict[str, int]:
        route = self.cluster.get("HTTPRoute", self.m.service_name())
        if not route:
            return super().weights()
        by_service = {b["name"]: b.get("weight", 1) for r in route["spec"].get("rules", []) for b in r.get("backendRefs", [])}
        shares = {}
        for role in ("", "canary", BASELINE):
            service = self.cluster.get("Service", self.m.service_name(role))
            colour = ((service or {}).get("spec", {}).get("selector") or {}).get("deployflow.io/colour")
            if colour and by_service.get(self.m.service_name(role)):
                shares[colour] = shares.get(colour, 0) + by_service[self.m.service_name(role)]
        return shares

    def set_weights(self, split: Split) -> None:
        if split.percent == 0:
            self.select("", split.old or split.new)
            if split.old and split.old != split.new:
                self.select("canary", split.new)
                if split.baseline:
                    self.select(BASELINE, BASELINE)
            self.route(100)
        elif split.old is None:
            # All of it to one colour at once (a restore): the weight first, since the main Service usually
            # still selects that colour and traffic is back with this one write; then the selector.
            self.route(100)
            self.select("", split.new)
        elif split.percent == 100:
            # A promotion: the main Service's pods change first (the new colour is at full size), then its weight.
            self.select("", split.new)
            self.route(100)
        else:
            base = split.baseline_percent
            self.route(100 - split.percent - base, split.percent, base)

    def status(self) -> dict[str, object]:
        route = self.cluster.get("HTTPRoute", self.m.service_name())
        weights = {b["name"]: b.get("weight", 1) for r in (route or {}).get("spec", {}).get("rules", []) for b in r.get("backendRefs", [])}
        return {**super().status(), "route_weights": weights}
