"""Which steps a release carries out, and when: pure functions over the strategy's plan and the record (and
the record a new release starts from)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from deployflow.catalog import Environment
from deployflow.platforms.base import InstanceSet, other_colour
from deployflow.record import COLOURS, Record, StepFailed, Target
from deployflow.rollout.cost import at, extra_now
from deployflow.strategies.base import Step, Strategy


def decide(target: Target, live: str | None, running: InstanceSet | None, *, strategy: Strategy, env: Environment,
           counters: Callable[[], dict[str, int]], now: Callable[[], float]) -> Record:
    """A new release's record: where ``target`` goes, given the set that serves (``live``) as it runs now."""
    if not running or not running.size:
        return Record(target.version, target.image, COLOURS[0], None, None)
    if running.target.version == target.version:
        return Record(target.version, target.image, live, live, None, already_live=True)
    colour = live if strategy.in_place else other_colour(live)
    record = Record(target.version, target.image, colour, live, running.target, counters=counters())
    # A fresh baseline of the old version beside an analysed canary: judged against it, not long-running ones.
    record = replace(record, baseline=env.analysis.baseline and any(s.analysis for s in planned(strategy, env.replicas, record)))
    first = strategy.first_instances(env.replicas)  # what prepare starts beside the live set
    in_place = colour == live
    return at(now, record, extra_now(env.replicas, first, 0 if in_place else None, first if record.baseline else 0))


def planned(strategy: Strategy, replicas: int, record: Record) -> list[Step]:
    """The strategy's steps; a first deploy has nothing to protect: every instance, one step, watched as the first."""
    steps = strategy.steps(replicas)
    if record.previous is None:
        return [Step(percent=100, new=replicas, old=0, pause_s=steps[0].pause_s)]
    return steps


def shift_steps(steps: list[Step], reached: int, percent: int | None = None, *, strategy: str = "") -> list[Step]:
    """The steps shift carries out: the one to ``percent``; or, from where traffic is (a retry never goes back to
    a smaller share), up to and including the analysed one (the rest are promote's, once analysis passed)."""
    if percent is not None:
        valid = [s.percent for s in steps]
        if percent not in valid:
            raise StepFailed(f"--weight {percent} is not a step of {strategy} here; valid values are {valid}")
        return [s for s in steps if s.percent == percent]
    steps = [s for s in steps if s.percent >= reached] or steps[-1:]
    analysed = [n for n, s in enumerate(steps) if s.analysis]
    return steps[: analysed[0] + 1] if analysed else steps


def promote_steps(steps: list[Step], reached: int) -> list[Step]:
    """The steps promote carries out: every one past the share traffic has reached."""
    return [s for s in steps if s.percent > reached]


def track(strategy: Strategy, step: Step | None = None) -> str:
    """The new version's track: the strategy's until a step gives it all traffic, then stable."""
    return "stable" if step is not None and step.percent == 100 else strategy.track
