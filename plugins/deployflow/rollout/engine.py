"""The rollout engine: one release of one version to one environment, step by step, on any platform.

prepare starts the new version beside the live one (or in its place) with no
traffic; shift carries out the strategy's traffic steps, watching each; promote
walks the steps after canary analysis and watches the new version with all
traffic while the old one stands by, then removes the old one; rollback puts
all traffic back on the old version, then removes the new one. Strategies differ only in the steps they plan, platforms only in
their Workload, Traffic and ReleaseStore.

Every step reads the record and the live sets first and converges: a retried
step finishes the work instead of doubling it. When a watched step
fails, traffic goes back to the old version at once, inside the failing step
(Argo Rollouts' abort); the rollback step removes the new version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from deployflow import health
from deployflow.catalog import Environment
from deployflow.platforms.base import BASELINE, Workload
from deployflow.rollout.cost import at, counters, extra_now, release_cost
from deployflow.rollout.guards import Guards
from deployflow.rollout.plan import decide, planned, promote_steps, shift_steps, track
from deployflow.record import PROMOTED, ROLLED_BACK, Record, StepFailed, Target, nothing_to_roll_back
from deployflow.rollout.status import status
from deployflow.rollout.watch import Judge, Watched, watch_after_promotion
from deployflow.routers.base import Split, Traffic
from deployflow.stores.base import ReleaseStore
from deployflow.strategies.base import Step, Strategy

log = logging.getLogger("deployflow.deployer")


@dataclass(kw_only=True, eq=False)
class Rollout:
    """:param judges: the post-promotion watch's judge of a new version against an old one (versions);
        None: the watch probes health and instances only.
    :param now: wall-clock seconds, for the cost timeline (steps run in different processes, even hosts)."""

    workload: Workload
    traffic: Traffic
    store: ReleaseStore
    strategy: Strategy
    service: str
    environment: Environment
    target: Target
    session: health.Session
    judges: Callable[[str, str], Judge] | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.env = self.environment
        self.guards = Guards(workload=self.workload, traffic=self.traffic, environment=self.env, version=self.target.version,
                             track=self.strategy.track, session=self.session, sleep=self.sleep, clock=self.clock)

    # ---- the record

    def _steps(self, record: Record) -> list[Step]:
        return planned(self.strategy, self.env.replicas, record)

    def _track(self, step: Step | None = None) -> str:
        return track(self.strategy, step)

    def _mine(self, *, finished: bool = False) -> Record | None:
        """This release's record; a finished one only if ``finished`` (a retried last step)."""
        record = self.store.load()
        if record is None or record.version != self.target.version or (record.outcome and not finished):
            return None
        return record

    def _require(self) -> Record:
        record = self._mine(finished=True)
        if record is None:
            raise StepFailed(f"no prepared release of {self.target.version} in {self.env.name}; run prepare first")
        return record

    def _decide(self) -> Record:
        """A new record: where the new version goes, and what serves now."""
        last = self.store.load()
        live = last.serving if last else None
        return decide(self.target, live, self.workload.get(live) if live else None, strategy=self.strategy,
                      env=self.env, counters=lambda: counters(self.traffic), now=self.now)

    # ---- steps

    def prepare(self) -> dict[str, Any]:
        """Start the new version's first instances beside the live ones (or in their place), with no traffic."""
        started = self.clock()
        self.traffic.ensure()
        record = self._mine()
        if record is None:
            record = self._decide()
            self.store.save(record)
        if record.already_live:
            log.info("prepare: %s is already live in %s (%s); nothing to do", self.target.version, self.env.name, record.colour)
            return self._result(record, started)
        hold = Split(record.colour, record.live, 0, baseline=record.baseline)
        self.traffic.set_weights(hold)  # before any new instance runs: traffic stays put
        if record.colour != record.live:
            leftover = self.workload.get(record.colour)
            if leftover.versions - {self.target.version}:  # an earlier release's, in the colour we need
                log.info("prepare: removing %d leftover instance(s) of %s", leftover.size, ", ".join(sorted(leftover.versions)))
                self.traffic.drain([record.colour])
                self.workload.scale(record.colour, 0, leftover.target, self._track())
        count = self.env.replicas if record.previous is None else self.strategy.first_instances(self.env.replicas)
        self.workload.scale(record.colour, count, self.target, self._track())  # health: the next task
        if record.baseline:  # as many as the canary
            self.workload.scale(BASELINE, count, record.previous, BASELINE)
        self.traffic.set_weights(hold)  # the new instances' routes, with no traffic
        log.info("prepare: %d instance(s) of %s started as %s in %.1f s (previous: %s)", count, self.target.version,
                 record.colour, self.clock() - started, record.previous.version if record.previous else "none")
        return self._result(record, started)

    def shift(self, percent: int | None = None) -> dict[str, Any]:
        """Carry out the strategy's traffic steps up to the analysed one (or the one to ``percent``), watching each."""
        started = self.clock()
        record = self._require()
        if record.outcome == ROLLED_BACK:
            raise StepFailed(f"{self.target.version} was rolled back in {self.env.name}; release it again from prepare")
        if record.already_live or record.outcome == PROMOTED:
            return {**self._result(record, started), "analysis": False}
        steps = shift_steps(self._steps(record), record.percent, percent, strategy=self.strategy.name)
        for step in steps:
            record = self._apply(record, step)
            if not step.analysis:
                self.guards.pause(record, step)
        # analysis is False on a first deploy: there is nothing to compare with
        return {**self._result(record, started), "analysis": any(s.analysis for s in steps)}

    def promote(self, *, skip_pauses: bool = False) -> dict[str, Any]:
        """The steps after analysis; the new version watched with all traffic while the old one stands by
        (the post-promotion watch, then what is left of the scale-down delay); then the old version goes.
        :param skip_pauses: promote now: no pause between the remaining steps; the watch and the delay still hold."""
        started = self.clock()
        record = self._require()
        if record.outcome == PROMOTED or record.already_live:  # a retry after the work was done
            record = self._finish(record, PROMOTED)
            return {**self._result(record, started), "cost": self._cost(record)}
        skipped = []
        for step in promote_steps(self._steps(record), record.percent):
            record = self._apply(record, step)
            if self.guards.pause(record, step, skip=skip_pauses):
                skipped.append(step.percent)
        watched = self._watch_after_promotion(record)
        delay = self.strategy.scale_down_delay() - watched.seconds
        if delay > 0 and record.previous:
            self.guards.watch(record, delay, "the scale-down delay")
        old = [c for c in (record.live, BASELINE if record.baseline else None) if c and c != record.colour]
        if old:  # the old version goes only if the new one is whole and ready now
            new = self.workload.get(record.colour)
            if new.size < self.env.replicas:
                self.guards.abort(record, f"{self.target.version} runs {new.size} of {self.env.replicas} instance(s) at promotion")
            self.guards.ready(record, new, "promotion")
        self.traffic.drain(old)
        for colour in old:
            self.workload.scale(colour, 0, record.previous, BASELINE if colour == BASELINE else "stable")
        record = self._finish(record, PROMOTED)
        log.info("promote: %s is live in %s; %s of %s removed in %.1f s", self.target.version, self.env.name,
                 " and ".join(old) or "nothing", record.previous.version if record.previous else "nothing",
                 self.clock() - started)
        return {**self._result(record, started), "cost": self._cost(record), "watch": watched.to_dict(),
                **({"pauses_skipped": skipped} if skipped else {})}

    def rollback(self) -> dict[str, Any]:
        """All traffic back to the previous version (restarting its instances if needed), then remove the new one."""
        started = self.clock()
        record = self._mine(finished=True)
        done = nothing_to_roll_back(record, self.env.name)
        if done is not None:
            return done
        if record.previous is None:
            self.traffic.drain([record.colour])
            self.workload.remove(record.colour)
            self._finish(record, ROLLED_BACK)
            log.info("rollback: first deploy of %s: rolled back to nothing", self.service)
            return {"rolled_back": True, "to": None, "because": record.failure, "seconds": round(self.clock() - started, 2),
                    "cost": self._cost(self._mine(finished=True) or record)}
        self.guards.restore(record)
        restored = self.clock() - started
        new = [c for c in (record.colour, BASELINE if record.baseline else None) if c and c != record.live]
        self.traffic.drain(new)
        for colour in new:
            self.workload.scale(colour, 0, self.target if colour != BASELINE else record.previous,
                                BASELINE if colour == BASELINE else self._track())
        record = self._finish(record, ROLLED_BACK)
        log.info("rollback: 100 %% of traffic on %s after %.2f s; %s scaled to 0", record.previous.version, restored,
                 ", ".join(new) or "nothing")
        return {"rolled_back": True, "to": record.previous.version, "because": record.failure,
                "seconds_to_old_traffic": round(restored, 2), "seconds": round(self.clock() - started, 2),
                "cost": self._cost(record)}

    def note_failure(self, reason: str, restore_seconds: float | None = None) -> None:
        """Keep why a step failed in the release's record (rollback reports it), and how fast traffic went back."""
        record = self._mine()
        noted = replace(record, failure=reason, restore_seconds=restore_seconds) if record is not None else None
        if noted is not None and noted != record:
            self.store.save(noted)

    def status(self) -> dict[str, Any]:
        """What runs and what takes traffic, as the platform and the router see it now."""
        return status(self.workload, self.traffic, service=self.service, environment=self.env.name)

    # ---- mechanics

    def _cost(self, record: Record) -> dict[str, Any]:
        return release_cost(record, counters(self.traffic))

    def _watch_after_promotion(self, record: Record) -> Watched:
        """The post-promotion watch, where the catalog asks for it and the old version stands by."""
        kept = self.traffic.sizes(self._steps(record)[-1], self.env.replicas)[1]  # None: the old set stays
        keeps_old = record.live != record.colour and kept != 0
        return watch_after_promotion(record, environment=self.env, keeps_old=keeps_old, guards=self.guards,
                                     workload=self.workload, judges=self.judges, clock=self.clock, store=self.store)

    def _result(self, record: Record, started: float) -> dict[str, Any]:
        serving = record.already_live or record.live in (None, record.colour) or record.percent == 100
        return {
            "version": self.target.version, "colour": record.colour, "already_live": record.already_live,
            "previous": record.previous.version if record.previous else None,
            "instances": self.workload.urls(record.colour, self._track(), serving=serving, external=True),
            "seconds": round(self.clock() - started, 2),
        }

    def _finish(self, record: Record, outcome: str) -> Record:
        if record.outcome is None:
            record = at(self.now, record, 0)  # the old set, or the new one, is gone: no extra instance
        finished = replace(record, outcome=outcome)
        if finished != record:
            self.store.save(finished)
        return finished

    def _apply(self, record: Record, step: Step) -> Record:
        """One traffic step: the new set at its size and ready, the split, the old set at its size."""
        started = self.clock()
        new_size, old_size = self.traffic.sizes(step, self.env.replicas)
        replaced = record.live == record.colour  # in place: the new version is taking the live set's place
        self.guards.ready(record, self.workload.scale(record.colour, new_size, self.target, self._track(step)),
                      f"the {step.percent} % step")
        old = None if replaced else record.live
        if old and old_size:
            self.guards.keep_old(record, old_size)
        if not replaced:  # in place, traffic stays on the set while the platform replaces its instances
            self.traffic.set_weights(Split(record.colour, old, step.percent, baseline=record.baseline and step.analysis,
                                           keep_old=old_size))
        # Logged the moment the weights change: the line's time marks the step.
        log.info("shift: %d %% of traffic on %s (%d new, %s old instance(s)), %.1f s to get there",
                 step.percent if old else 100, self.target.version, new_size,
                 old_size if old_size is not None else self.env.replicas if old else 0, self.clock() - started)
        dropped = [BASELINE] if record.baseline and not step.analysis else []  # the baseline serves the analysed step only
        self.traffic.drain(dropped)
        if old and old_size is not None:
            self.workload.scale(old, old_size, record.previous, "stable")
        for colour in dropped:
            self.workload.scale(colour, 0, record.previous, BASELINE)
        done = replace(record, percent=step.percent, baseline=record.baseline and not dropped)
        kept_baseline = self.strategy.first_instances(self.env.replicas) if done.baseline else 0
        done = at(self.now, done, extra_now(self.env.replicas, new_size, None if old and old_size is None else old_size or 0,
                                        kept_baseline))
        if done != record:
            self.store.save(done)
        return done

