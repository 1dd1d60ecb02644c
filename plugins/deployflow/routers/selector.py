"""Traffic on Kubernetes by the main Service's selector: all of it on one colour, switched in one write.

Blue-green and rolling use it. Before the switch the new colour stands behind
``<service>-preview`` (health checks reach it there); a first deploy, or a
rolling update in place, goes straight behind the main Service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployflow.errors import DeployflowError
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import GROUP, Manifests
from deployflow.routers.base import Split

if TYPE_CHECKING:
    from deployflow.strategies.base import Step


class SelectorSwitch:
    def __init__(self, cluster: Cluster, manifests: Manifests) -> None:
        self.cluster = cluster
        self.m = manifests
        self._written: dict[str, object] = {}  # what this step wrote: Service -> colour (and the route's weights)

    def select(self, role: str, colour: str | None) -> None:
        """Point Service ``role`` (main: "") at ``colour``'s pods, or at every colour's with None."""
        name = self.m.service_name(role)
        if name in self._written and self._written[name] == colour:
            return  # written moments ago by this step
        self.cluster.apply(self.m.service_object(name, self.m.selector(colour)))
        self._written[name] = colour

    def main_colour(self) -> str | None:
        main = self.cluster.get("Service", self.m.service_name())
        return ((main or {}).get("spec", {}).get("selector") or {}).get(f"{GROUP}/colour")

    def ensure(self) -> None:
        pass  # the Services are written with the first split

    def weights(self) -> dict[str, int]:
        colour = self.main_colour()
        return {colour: 100} if colour else {}

    def sizes(self, step: Step, replicas: int) -> tuple[int, int | None]:
        return step.new, None  # the old colour keeps its pods until promote scales it to 0

    def set_weights(self, split: Split) -> None:
        if split.percent == 0:
            self.select("", split.old or split.new)  # a first deploy's pods take traffic once ready
            if split.old and split.old != split.new:
                self.select("preview", split.new)
        elif split.percent == 100 or split.old is None:
            self.select("", split.new)
        else:
            raise DeployflowError(f"a selector switch moves all traffic at once, not {split.percent} %: "
                                  "split a canary with kubernetes.traffic 'gateway' or 'replicas'")

    def drain(self, colours: list[str]) -> None:
        pass  # a colour no Service selects gets no request; its pods finish theirs when scaled to 0

    def counters(self) -> dict[str, int]:
        return {}  # a Service keeps no request counts: the Gateway's or the mesh's metrics have them

    def status(self) -> dict[str, object]:
        return {"main_service_selects": self.main_colour() or "every colour"}
