"""A release of one version to one environment, step by step: prepare, shift, promote, rollback.

Every step reads the live state first (instances from the platform, routes
from the router) and converges to what the step wants, so a step that is
retried or restarted finishes the work instead of doubling it.

Two sets of instances take turns, named by colour (blue, green): the live set
runs the old version, the other receives the new one. Blue-green, canary and
rolling differ only in the steps their Strategy plans. When a watched step
fails, traffic goes back to the old set at once, inside the failing step
(what Argo Rollouts does on abort); removing the new set is left to the
rollback step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deployflow import health
from deployflow.catalog import Environment, Service
from deployflow.errors import DeployflowError
from deployflow.platforms.base import BASELINE, COLOURS, Instance, InstanceSpec, Platform, other_colour
from deployflow.routers.base import Route, Router
from deployflow.strategies.base import Step, Strategy, weights

log = logging.getLogger("deployflow.deployer")


class StepFailed(DeployflowError):
    """A deploy step could not finish; traffic is already back on the old version if it had moved."""


@dataclass(frozen=True)
class Target:
    version: str
    image: str


@dataclass(frozen=True)
class Record:
    """What ``prepare`` found and decided, kept beside the router's files for later steps."""

    version: str
    colour: str
    previous: Target | None
    already_live: bool = False
    outcome: str | None = None  # "promoted" or "rolled back": a later release of this version starts afresh


def nothing_to_roll_back(record: Any, environment: str) -> dict[str, Any] | None:
    """Rollback's answer when it has no work (on any platform): this release changed nothing, or it
    was already rolled back (a retry after the work was done); None when there is work."""
    if record is None or record.already_live or record.outcome == "promoted":
        log.info("rollback: this release changed nothing in %s; nothing to roll back", environment)
        return {"rolled_back": False, "reason": "nothing deployed by this release", "seconds": 0.0}
    if record.outcome == "rolled back":
        return {"rolled_back": True, "to": record.previous.version if record.previous else None, "seconds": 0.0}
    return None


class Rollout:
    def __init__(
        self, *, platform: Platform, router: Router, strategy: Strategy, service: Service, environment: Environment,
        target: Target, session: health.Session, state_dir: Path, drain_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
        targets_path: Path | None = None,
    ) -> None:
        self.platform = platform
        self.router = router
        self.strategy = strategy
        self.service = service
        self.env = environment
        self.target = target
        self.session = session
        self.record_path = Path(state_dir) / "release.json"
        self.drain_s = drain_s
        self.sleep = sleep
        self.clock = clock
        self.targets_path = targets_path

    # ---- live state -----------------------------------------------------------------

    def _instances(self) -> list[Instance]:
        return self.platform.instances(self.service.name, self.env.name)

    def _live_colour(self, instances: list[Instance], routes: dict[str, Route]) -> str | None:
        """The colour serving traffic: the one whose routes weigh most."""
        load = {c: sum(routes[i.name].weight for i in instances if i.colour == c and i.name in routes) for c in COLOURS}
        best = max(COLOURS, key=lambda c: load[c])
        return best if load[best] > 0 else None

    def _set(self, instances: list[Instance], colour: str, version: str | None = None) -> list[Instance]:
        return [i for i in instances if i.colour == colour and (version is None or i.version == version)]

    def _load_record(self, *, finished: bool = False) -> Record | None:
        """This release's record; a finished one only if ``finished`` (a retried last step)."""
        if not self.record_path.exists():
            return None
        data = json.loads(self.record_path.read_text())
        data["previous"] = Target(**data["previous"]) if data.get("previous") else None
        record = Record(**data)
        if record.version != self.target.version or (record.outcome and not finished):
            return None
        return record

    def _save_record(self, record: Record) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self.record_path.write_text(json.dumps(asdict(record), indent=1))

    def _share(self, record: Record) -> int:
        """Percent of traffic the new version has now, from the router's weights."""
        routes = {n: r for n, r in self.router.routes().items() if not r.backup}
        new = {i.name for i in self._set(self._instances(), record.colour, self.target.version)}
        total = sum(r.weight for r in routes.values())
        return round(100 * sum(r.weight for n, r in routes.items() if n in new) / total) if total else 0

    def _sync_targets(self, record: Record) -> None:
        """Tell Prometheus what to scrape: every instance, labelled with its track."""
        if self.targets_path is None:
            return
        tracks = {BASELINE: "baseline", record.colour: "stable" if record.outcome == "promoted" else "canary"}
        groups = [
            {"targets": [f"{i.host}:{i.port}"],
             "labels": {"service": self.service.name, "environment": self.env.name, "version": i.version,
                        "track": tracks.get(i.colour, "stable"), "instance_name": i.name}}
            for i in self._instances() if i.running
        ]
        self.targets_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=1))
        tmp.replace(self.targets_path)  # Prometheus reads whole files only

    def _finish(self, record: Record, outcome: str) -> Record:
        finished = Record(record.version, record.colour, record.previous, record.already_live, outcome)
        self._save_record(finished)
        return finished

    def _spec(self, colour: str, index: int, target: Target) -> InstanceSpec:
        return InstanceSpec(self.service.name, self.env.name, target.version, target.image, colour, index)

    # ---- steps ---------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        """Start the new version's first instances beside the live ones, with no traffic."""
        started = time.monotonic()
        self.router.ensure()
        instances, routes = self._instances(), self.router.routes()
        live = self._live_colour(instances, routes)
        record = self._load_record()
        if record is None:
            if live and {i.version for i in self._set(instances, live)} == {self.target.version}:
                record = Record(self.target.version, live, None, already_live=True)
            else:
                previous = self._set(instances, live)[0] if live else None
                record = Record(
                    self.target.version, other_colour(live) if live else COLOURS[0],
                    Target(previous.version, previous.image) if previous else None,
                )
            self._save_record(record)
        if record.already_live:
            log.info("prepare: %s is already live in %s (%s); nothing to do", self.target.version, self.env.name, record.colour)
            return self._result(record, started)
        stale = [i for i in self._set(instances, record.colour) if i.version != self.target.version]
        if stale:  # an earlier release's leftovers in the colour we need
            log.info("prepare: removing %d leftover instance(s) of %s", len(stale), stale[0].version)
            self._remove(stale)
        count = self.strategy.first_instances(self.env.replicas)
        new = self._scale(record.colour, count, self.target, wait=False)  # health is the next task's job
        if record.previous and any(s.analysis for s in self.strategy.steps(self.env.replicas)) and self.env.analysis.baseline:
            # A fresh baseline of the old version, as many as the canary: judged
            # against the canary, not against long-running stable instances.
            new += self._scale(BASELINE, count, record.previous, wait=False)
        routes = self.router.routes()
        self.router.set_routes({**routes, **{i.name: self._route(i, routes.get(i.name, None), 0) for i in new}})
        self._sync_targets(record)
        log.info("prepare: %d instance(s) of %s started as %s in %.1f s (previous: %s)", len(new), self.target.version,
                 record.colour, time.monotonic() - started, record.previous.version if record.previous else "none")
        return self._result(record, started)

    def shift(self, percent: int | None = None) -> dict[str, Any]:
        """Carry out the strategy's traffic steps (or the one to ``percent``), watching each."""
        started = time.monotonic()
        record = self._require_record()
        if record.outcome == "rolled back":
            raise StepFailed(f"{self.target.version} was rolled back in {self.env.name}; release it again from prepare")
        if record.already_live or record.outcome == "promoted":
            return self._result(record, started)
        steps = self.strategy.steps(self.env.replicas)
        if percent is not None:
            planned = [s.percent for s in steps]
            if percent not in planned:
                raise StepFailed(f"--weight {percent} is not a step of {self.strategy.name} here; valid values are {planned}")
            steps = [s for s in steps if s.percent == percent]
        else:  # a retried shift goes on from where traffic is, never back to a smaller share
            reached = self._share(record)
            steps = [s for s in steps if s.percent >= reached] or steps[-1:]
            analysed = [n for n, s in enumerate(steps) if s.analysis]
            if analysed and record.previous:  # the steps after the analysed one are promote's, once analysis passed
                steps = steps[: analysed[0] + 1]
        analysis = bool(record.previous) and any(s.analysis for s in steps)
        for step in steps:
            self._apply(record, step)
            if step.pause_s and not (step.analysis and analysis):
                self._watch(record, step.pause_s, f"the {step.percent} % step")
        result = self._result(record, started)
        result["analysis"] = analysis  # False on a first deploy: there is nothing to compare with
        return result

    def promote(self) -> dict[str, Any]:
        """Watch the new version through the scale-down delay, then remove the old one."""
        started = time.monotonic()
        record = self._require_record()
        if record.outcome == "promoted" or record.already_live:  # a retry after the work was done
            self._finish(record, "promoted")
            return self._result(record, started)
        reached = self._share(record)
        for step in [s for s in self.strategy.steps(self.env.replicas) if s.percent > reached]:
            self._apply(record, step)  # the steps after canary analysis
            if step.pause_s:
                self._watch(record, step.pause_s, f"the {step.percent} % step")
        delay = self.strategy.scale_down_delay()
        if delay:
            self._watch(record, delay, "the scale-down delay")
        instances = self._instances()
        old = [i for i in instances if i.colour != record.colour]  # the old colour and any baseline
        self._remove(old)
        self._sync_targets(self._finish(record, "promoted"))
        log.info("promote: %s is live in %s; %d old instance(s) removed in %.1f s", self.target.version,
                 self.env.name, len(old), time.monotonic() - started)
        return self._result(record, started)

    def rollback(self) -> dict[str, Any]:
        """All traffic back to the previous version (restarting its instances if needed), then remove the new one."""
        started = time.monotonic()
        record = self._load_record(finished=True)
        done = nothing_to_roll_back(record, self.env.name)
        if done is not None:
            return done
        instances = self._instances()
        new = [*self._set(instances, record.colour, self.target.version), *self._set(instances, BASELINE)]
        if record.previous is None:
            self._remove(new)
            self._finish(record, "rolled back")
            log.info("rollback: first deploy of %s: rolled back to nothing (%d instance(s) removed)", self.service.name, len(new))
            return {"rolled_back": True, "to": None, "seconds": round(time.monotonic() - started, 2)}
        old_colour = other_colour(record.colour)
        self._scale(old_colour, self.env.replicas, record.previous)
        self._restore(record)
        restored = time.monotonic() - started
        self._remove(new)
        self._sync_targets(self._finish(record, "rolled back"))
        log.info("rollback: 100 %% of traffic on %s after %.2f s; %d new instance(s) removed", record.previous.version, restored, len(new))
        return {"rolled_back": True, "to": record.previous.version, "seconds_to_old_traffic": round(restored, 2),
                "seconds": round(time.monotonic() - started, 2)}

    def status(self) -> dict[str, Any]:
        instances, routes = self._instances(), self.router.routes()
        live = self._live_colour(instances, routes)
        total = sum(r.weight for r in routes.values() if not r.backup) or 1
        sets = {}
        for colour in (*COLOURS, BASELINE):
            members = self._set(instances, colour)
            if not members:
                continue
            sets[colour] = {
                "versions": sorted({i.version for i in members}),
                "traffic_percent": round(100 * sum(routes[i.name].weight for i in members if i.name in routes) / total),
                "instances": [{"name": i.name, "url": i.url, "running": i.running,
                               "route": routes[i.name].status if i.name in routes else "no route"} for i in members],
            }
        return {"service": self.service.name, "environment": self.env.name, "live": live, "sets": sets}

    # ---- mechanics -----------------------------------------------------------------

    def _require_record(self) -> Record:
        record = self._load_record(finished=True)
        if record is None:
            raise StepFailed(f"no prepared release of {self.target.version} in {self.env.name}; run prepare first")
        return record

    def _result(self, record: Record, started: float) -> dict[str, Any]:
        new = self._set(self._instances(), record.colour, self.target.version)
        return {
            "version": self.target.version, "colour": record.colour, "already_live": record.already_live,
            "previous": record.previous.version if record.previous else None,
            "instances": [i.url for i in new], "seconds": round(time.monotonic() - started, 2),
        }

    def _route(self, instance: Instance, current: Route | None, weight: int) -> Route:
        return Route(instance.name, instance.host, instance.port, weight, current.status if current else "unknown")

    def _backup(self, instance: Instance) -> Route:
        return Route(Route.backup_name(instance.name), instance.host, instance.port, 1, backup=True)

    def _scale(self, colour: str, count: int, target: Target, *, wait: bool = True) -> list[Instance]:
        """Make instances 0..count-1 of ``target`` run in ``colour``; with ``wait``, until the new ones are ready."""
        existing = {i.index: i for i in self._set(self._instances(), colour, target.version) if i.running}
        fresh = [self.platform.start(self._spec(colour, n, target)) for n in range(count) if n not in existing]
        if fresh and wait:
            self._wait_healthy(fresh)
        return sorted([*existing.values(), *fresh], key=lambda i: i.index)[:count]

    def _wait_healthy(self, instances: list[Instance]) -> None:
        h = self.env.health
        verdict = health.wait_healthy(
            self.session, [i.url for i in instances], [h.ready], consecutive=1, interval_s=min(h.interval_s, 0.5),
            timeout_s=h.timeout_s, sleep=self.sleep, clock=self.clock,
        )
        if not verdict.healthy:
            why = "; ".join(self.platform.describe_failure(i) for i in instances)
            raise StepFailed(f"{len(instances)} new instance(s) never became ready: {verdict.reason()} ({why})")

    def _apply(self, record: Record, step: Step) -> None:
        started = time.monotonic()
        new = self._scale(record.colour, step.new, self.target)
        instances = self._instances()
        old = sorted((i for i in instances if i.colour == other_colour(record.colour) and i.running), key=lambda i: i.index)
        keep, surplus = old[: step.old], old[step.old:]
        baseline = [i for i in instances if i.colour == BASELINE and i.running]
        if not step.analysis:
            surplus += baseline  # the baseline serves the analysed step only
            baseline = []
        routes = self.router.routes()
        split = weights([i.name for i in new], [i.name for i in keep], step.percent, [i.name for i in baseline])
        idle = [i for i in keep if not split[i.name]]
        desired = dict(routes)
        desired.update({i.name: self._route(i, routes.get(i.name), split[i.name]) for i in [*new, *keep, *baseline]})
        desired.update({i.name: self._route(i, routes.get(i.name), 0) for i in surplus})
        # Old instances kept without traffic stand by as backup routes: if every
        # new instance dies, HAProxy sends traffic back to them by itself.
        desired.update({Route.backup_name(i.name): self._backup(i) for i in idle})
        self.router.set_routes(desired)
        # Logged the moment the weights change: the line's time marks the step.
        log.info("shift: %d %% of traffic on %s (%d new, %d old instance(s)), %.1f s to get there",
                 step.percent if keep else 100, self.target.version, len(new), len(keep), time.monotonic() - started)
        if idle or surplus:
            self.sleep(self.drain_s)  # requests already on their way to the old instances finish
            gone = {i.name for i in [*idle, *surplus]}
            self.router.set_routes({n: r for n, r in self.router.routes().items() if n not in gone})
        if surplus:
            self._remove(surplus)
        self._sync_targets(record)

    def _watch(self, record: Record, seconds: float, what: str) -> None:
        new = self._set(self._instances(), record.colour, self.target.version)
        h = self.env.health
        verdict = health.watch(self.session, [i.url for i in new], h.paths(), seconds=seconds,
                               interval_s=min(h.interval_s, 0.5), sleep=self.sleep, clock=self.clock)
        if verdict.healthy:
            return
        failed_at = time.monotonic()
        restored = self._restore(record)
        raise StepFailed(
            f"{self.target.version} failed its health checks during {what}: {verdict.reason()}; "
            + (f"traffic restored to {record.previous.version} in {time.monotonic() - failed_at:.2f} s" if restored
               else "no previous version to restore")
        )

    def _restore(self, record: Record) -> bool:
        """All traffic to the old set, at once; True if there was one to restore to."""
        instances = self._instances()
        old = [i for i in instances if i.colour == other_colour(record.colour) and i.running]
        if not old:
            return False
        routes = self.router.routes()
        split = weights([i.name for i in old], [], 100)
        desired = {n: Route(r.name, r.host, r.port, 0, r.status) for n, r in routes.items() if not r.backup}
        desired.update({i.name: self._route(i, routes.get(i.name), split[i.name]) for i in old})
        self.router.set_routes(desired)
        log.warning("restored 100 %% of traffic to %s", old[0].version)
        return True

    def _remove(self, instances: list[Instance]) -> None:
        """Take routes away first (no new requests), let in-flight ones finish, then stop."""
        if not instances:
            return
        names = {i.name for i in instances} | {Route.backup_name(i.name) for i in instances}
        routes = self.router.routes()
        if any(routes[n].weight for n in names if n in routes):
            self.router.set_routes({n: (Route(r.name, r.host, r.port, 0, r.status) if n in names else r) for n, r in routes.items()})
            self.sleep(self.drain_s)
        self.router.set_routes({n: r for n, r in self.router.routes().items() if n not in names})
        for instance in instances:
            self.platform.stop(instance)
