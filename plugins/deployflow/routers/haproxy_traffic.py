"""Traffic on a Docker host: shares in percent carried out as per-server weights of the environment's HAProxy.

The workload says which instances each set has; this turns a split into
weights (whole numbers, at most MAX_WEIGHT per server), and keeps the old
instances that a switch leaves without traffic as ``backup`` servers: if every
new instance dies, HAProxy sends traffic back to them by itself, before any
check of ours. A route leaves the proxy only after the requests in flight on it
have had ``drain_s`` to finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from deployflow.platforms.base import BASELINE, COLOURS, Instance
from deployflow.routers.base import Route, Router, Split

if TYPE_CHECKING:
    from deployflow.platforms.base import Workload
    from deployflow.strategies.base import Step

MAX_WEIGHT = 200  # per server, under HAProxy's 256


def weights(new: Sequence[str], old: Sequence[str], percent: int, baseline: Sequence[str] = ()) -> dict[str, int]:
    """Per-server weights giving ``percent`` to the ``new`` servers, the rest to ``old``.

    Without old servers everything goes to the new ones (a first deploy).
    A ``baseline`` (the old version, started afresh for canary analysis)
    gets the same share as the new version, as Kayenta advises, taken from
    the old servers' share. Weights are whole numbers of at least 1, so a tiny
    share spread over many servers comes out larger than asked (1 % over 50
    servers is 50 units). Then all of them are divided by their greatest
    common divisor: HAProxy's round robin spreads a round of ``sum(weights)``
    picks, and after a runtime weight change it can send a whole run of them
    to one server until the round settles; the smallest weights with the same
    ratio keep that run short (see docs/concepts/strategies.md, "The router").
    """
    if not old:
        percent = 100
    base = min(percent, 100 - percent) if baseline else 0
    result = {name: 0 for name in [*new, *old, *baseline]}
    for group, share in ((new, percent), (baseline, base), (old, 100 - percent - base)):
        if group and share:
            each = max(1, round(MAX_WEIGHT * share / 100 / len(group)))
            result.update({name: each for name in group})
    divisor = math.gcd(*result.values()) or 1  # 0 only when every weight is 0
    return {name: weight // divisor for name, weight in result.items()}


def _same(a: dict[str, Route], b: dict[str, Route]) -> bool:
    where = lambda routes: {n: (r.host, r.port, r.weight, r.backup) for n, r in routes.items()}  # noqa: E731
    return where(a) == where(b)


class HAProxyTraffic:
    def __init__(self, router: Router, workload: Workload, *, drain_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.router = router
        self.workload = workload
        self.drain_s = drain_s
        self.sleep = sleep
        self._zeroed: set[str] = set()  # servers this process just took traffic from: requests may still be on them

    def _running(self, colour: str | None) -> list[Instance]:
        if colour is None:
            return []
        return sorted((i for i in self.workload.get(colour).instances if i.running), key=lambda i: i.index)

    def ensure(self) -> None:
        self.router.ensure()

    def weights(self) -> dict[str, int]:
        routes = {n: r for n, r in self.router.routes().items() if not r.backup}
        total = sum(r.weight for r in routes.values())
        shares = {}
        for colour in (*COLOURS, BASELINE):
            names = {i.name for i in self.workload.get(colour).instances}
            if names:
                shares[colour] = round(100 * sum(r.weight for n, r in routes.items() if n in names) / total) if total else 0
        return shares

    def sizes(self, step: Step, replicas: int) -> tuple[int, int | None]:
        return step.new, step.old

    def set_weights(self, split: Split) -> None:
        new, old = self._running(split.new), self._running(split.old) if split.old != split.new else []
        keep, surplus = (old, []) if split.keep_old is None else (old[: split.keep_old], old[split.keep_old:])
        baseline = self._running(BASELINE) if split.baseline_percent else []
        routes = self.router.routes()
        share = weights([i.name for i in new], [i.name for i in keep], split.percent, [i.name for i in baseline])
        if not split.percent:  # held: the new instances are routed (their checks run) but take nothing yet
            share.update({i.name: 0 for i in new})
        idle = [i for i in keep if not share[i.name]]
        # Every other server gets no new request (it drains, see drain()); no backup but the idle old ones.
        desired = {n: Route(n, r.host, r.port, 0, r.status) for n, r in routes.items() if not r.backup}
        desired.update({i.name: self._route(i, routes, share.get(i.name, 0)) for i in [*new, *keep, *baseline, *surplus]})
        for instance in idle:
            if instance.name not in routes:
                del desired[instance.name]  # already drained: it stays as a backup only
            desired[Route.backup_name(instance.name)] = Route(Route.backup_name(instance.name), instance.host, instance.port, 1, backup=True)
        if not _same(desired, routes):
            self.router.set_routes(desired)
            self._zeroed |= {n for n, r in desired.items() if not r.weight and routes.get(n) and routes[n].weight}

    def drain(self, colours: list[str]) -> None:
        names = {n for c in colours for i in self.workload.get(c).instances for n in (i.name, Route.backup_name(i.name))}
        routes = self.router.routes()
        going = {n for n, r in routes.items() if n in names or (not r.weight and not r.backup)}
        if not going:
            return
        busy = any(routes[n].weight for n in going) or going & self._zeroed
        if any(routes[n].weight for n in going):
            self.router.set_routes({n: (Route(r.name, r.host, r.port, 0, r.status, r.backup) if n in going else r) for n, r in routes.items()})
        if busy:  # requests already on their way finish (a server idle since an earlier step has none left)
            self.sleep(self.drain_s)
        self._zeroed -= going
        self.router.set_routes({n: r for n, r in self.router.routes().items() if n not in going})

    def counters(self) -> dict[str, int]:
        return self.router.counters()

    def status(self) -> dict[str, object]:
        return {"servers": {n: {"weight": r.weight, "check": r.status, **({"backup": True} if r.backup else {})}
                            for n, r in sorted(self.router.routes().items())}}

    @staticmethod
    def _route(instance: Instance, routes: dict[str, Route], weight: int) -> Route:
        current = routes.get(instance.name)
        return Route(instance.name, instance.host, instance.port, weight, current.status if current else "unknown")
