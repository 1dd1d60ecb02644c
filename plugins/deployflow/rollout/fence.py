"""A fenced step: the rollout engine's parts, each write checked first against the environment's newest token.

Airflow hands every deployer step that writes a fencing token (``deployflow.ledger.fences``: a generation
of the environment that grows each time such a step starts) and, in the same breath, makes it the newest in
the environment's release store (``TokenHome``: on a Docker host a file beside the release record). The
deployer wraps its workload, traffic and store (:func:`fenced_parts`); before each write (a scale, a removal,
the router started, weights set, routes drained, the record saved) it reads the newest token, one small
read, and stops with :class:`Fenced` when a newer step holds the environment: a try that was killed and
retried, whose deployer ran on. Reads are never checked: a stale step may look, it may not act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployflow.errors import DeployflowError

if TYPE_CHECKING:
    from deployflow.platforms.base import Site, Workload
    from deployflow.routers.base import Traffic
    from deployflow.stores.base import ReleaseStore
    from deployflow.strategies.base import Strategy

log = logging.getLogger("deployflow.deployer")

# What each part does that changes the environment; everything else it does is a read.
WORKLOAD_WRITES = frozenset({"scale", "remove"})
TRAFFIC_WRITES = frozenset({"ensure", "set_weights", "drain"})
STORE_WRITES = frozenset({"save"})


class Fenced(DeployflowError):
    """A newer step holds the environment: this one stops before its next write, and is not retried (its
    replacement carries on). Never a StepFailed: there is no traffic to restore, that is the newer step's work."""


@dataclass(frozen=True)
class Fence:
    """A step's token, and how to read the environment's newest.

    :param token: the token Airflow handed this step.
    :param newest: reads the newest token handed out for the environment (0: none yet).
    """

    token: int
    newest: Callable[[], int]

    def check(self, write: str) -> None:
        """Return if this step's token is still the newest; raise :class:`Fenced` otherwise."""
        newest = self.newest()
        if newest > self.token:
            raise Fenced(f"{write} refused: this step's token {self.token} is stale, a newer step holds the environment "
                         f"(token {newest}); this step stops here")


class FencedPart:
    """One of the engine's parts (a Workload, a Traffic, a ReleaseStore) whose ``writes`` check the fence first;
    every other attribute is the part's own."""

    def __init__(self, part: Any, fence: Fence, writes: frozenset[str]) -> None:
        self._part, self._fence, self._writes = part, fence, writes

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._part, name)
        if name not in self._writes:
            return found

        def checked(*args: Any, **kwargs: Any) -> Any:
            self._fence.check(f"{type(self._part).__name__}.{name}")
            return found(*args, **kwargs)

        return checked


def fenced_parts(site: Site, plan: Strategy, token: int | None) -> tuple[Workload, Traffic, ReleaseStore]:
    """The site's workload, traffic and release store for ``plan``, each write checked first against ``token``
    (None: an unfenced run, such as recovery from the ledger or a status read: the parts as they are)."""
    workload, store = site.workload(plan), site.store()
    traffic = site.traffic(plan, workload)
    if token is None:
        return workload, traffic, store
    fence = Fence(token, store.token)
    log.info("step fenced with token %d", token)
    return (FencedPart(workload, fence, WORKLOAD_WRITES), FencedPart(traffic, fence, TRAFFIC_WRITES),
            FencedPart(store, fence, STORE_WRITES))
