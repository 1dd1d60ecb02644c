"""Which steps a release carries out, and when: pure functions over the strategy's plan and the record."""

from __future__ import annotations

from deployflow.record import Record, StepFailed
from deployflow.strategies.base import Step, Strategy


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
