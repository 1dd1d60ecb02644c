"""The way back: what a step does when the new version fails, or the old one is not where it should be.

Argo Rollouts' abort: the failing step itself puts all traffic back on the old
version at once, then fails with a reason; removing the new version is the
rollback step's work. The old version is the good one: its instances are
brought back if any were lost (an engine restart, a rolling step), and a
restart of theirs is no failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from deployflow import health
from deployflow.catalog import Environment
from deployflow.platforms.base import InstanceSet, Workload
from deployflow.record import Record, StepFailed
from deployflow.routers.base import Split, Traffic
from deployflow.strategies.base import Step

log = logging.getLogger("deployflow.deployer")


class Guards:
    def __init__(self, *, workload: Workload, traffic: Traffic, environment: Environment, version: str, track: str,
                 session: health.Session, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workload = workload
        self.traffic = traffic
        self.env = environment
        self.version = version
        self.track = track
        self.session = session
        self.sleep = sleep
        self.clock = clock

    def ready(self, record: Record, instances: InstanceSet, what: str) -> None:
        """Wait until ``instances`` of the new version are ready; if they never are (or crash-loop), abort."""
        if instances.ready:
            return
        try:
            self.workload.wait_ready(instances)
        except StepFailed as exc:
            self.abort(record, f"{self.version} failed during {what}: {exc}")

    def abort(self, record: Record, why: str) -> None:
        """Put all traffic back on the old version and fail the step, saying ``why`` and how fast traffic moved."""
        failed_at = self.clock()
        restored = self.restore(record)
        took = round(self.clock() - failed_at, 2)
        raise StepFailed(f"{why}; " + (f"traffic restored to {record.previous.version} in {took:.2f} s"
                                       if restored else "no previous version to restore"),
                         restore_seconds=took if restored else None)

    def watch(self, record: Record, seconds: float, what: str) -> None:
        """Probe the new version's health paths for ``seconds``; on a failure restore the old version and fail."""
        serving = record.percent == 100 or record.live in (None, record.colour)
        h = self.env.health
        verdict = health.watch(self.session, self.workload.urls(record.colour, self.track, serving=serving), h.paths(),
                               seconds=seconds, interval_s=min(h.interval_s, 0.5), sleep=self.sleep, clock=self.clock)
        if not verdict.healthy:
            self.abort(record, f"{self.version} failed its health checks during {what}: {verdict.reason()}")

    def pause(self, record: Record, step: Step, *, skip: bool = False) -> bool:
        """Watch ``step`` for its pause; with ``skip`` (a person asked to promote now), go on at once. True when a
        pause was skipped."""
        if not step.pause_s:
            return False
        if skip:
            log.info("the %d s pause of the %d %% step skipped (promote now)", step.pause_s, step.percent)
            return True
        self.watch(record, step.pause_s, f"the {step.percent} % step")
        return False

    def restore(self, record: Record) -> bool:
        """All traffic to the previous version, at once (its instances restarted first if any were lost, or, in
        place, its template brought back); True if there was one to restore to."""
        if record.previous is None or record.live is None:
            return False
        old = self.workload.scale(record.live, self.env.replicas, record.previous, "stable")
        if not old.ready:
            self.workload.wait_ready(old, restarts_fail=False)
        self.traffic.set_weights(Split(record.live, None, 100))
        log.warning("restored 100 %% of traffic to %s", record.previous.version)
        return True

    def keep_old(self, record: Record, count: int) -> None:
        """The ``count`` old instances a step keeps run and are ready before traffic moves: any that were lost
        (an engine restart, say) come back first, so no split ever falls on the new version alone."""
        kept = self.workload.get(record.live)
        if kept.size >= count:
            return
        log.warning("shift: %d of %d instance(s) of %s run; restoring them first", kept.size, count, record.previous.version)
        highest = max((i.index + 1 for i in kept.instances if i.running), default=0)  # none stops before it drains
        back = self.workload.scale(record.live, max(count, highest), record.previous, "stable")
        if not back.ready:
            self.workload.wait_ready(back, restarts_fail=False)
