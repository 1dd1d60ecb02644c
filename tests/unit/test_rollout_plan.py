"""Which steps shift and promote carry out, from the plan and how far traffic has got (rollout/plan.py)."""

from __future__ import annotations

import pytest

from deployflow.catalog import Canary as CanaryConfig
from deployflow.rollout.plan import planned, promote_steps, shift_steps, track
from deployflow.record import Record, StepFailed, Target
from deployflow.strategies.base import Step
from deployflow.strategies.canary import Canary

STEPS = [Step(10, 1, 3, 5, analysis=True), Step(25, 1, 3, 5), Step(50, 1, 3, 5), Step(100, 3, 3)]
PLAIN = [Step(10, 1, 3, 5), Step(25, 1, 3, 5), Step(50, 1, 3, 5), Step(100, 3, 3)]


@pytest.mark.parametrize(("steps", "reached", "percent", "expected"), [
    (STEPS, 0, None, [10]),  # up to the analysed step: the rest wait for the verdict
    (STEPS, 10, None, [10]),  # a retried shift redoes the step it reached, no more
    (PLAIN, 0, None, [10, 25, 50, 100]),  # no analysis: the whole ramp
    (PLAIN, 25, None, [25, 50, 100]),  # a retry goes on from where traffic is, never back to a smaller share
    (PLAIN, 100, None, [100]),
    (PLAIN, 0, 50, [50]),  # --weight 50: that step alone
])
def test_shift_steps(steps, reached, percent, expected):
    assert [s.percent for s in shift_steps(steps, reached, percent)] == expected


def test_a_weight_that_is_no_step_names_the_valid_ones():
    with pytest.raises(StepFailed, match=r"^--weight 30 is not a step of canary here; valid values are \[10, 25, 50, 100\]$"):
        shift_steps(PLAIN, 0, 30, strategy="canary")


@pytest.mark.parametrize(("reached", "expected"), [(10, [25, 50, 100]), (50, [100]), (100, []), (0, [10, 25, 50, 100])])
def test_promote_walks_every_step_past_the_share_reached(reached, expected):
    assert [s.percent for s in promote_steps(STEPS, reached)] == expected


def test_a_first_deploy_is_one_step_to_every_instance_watched_as_the_first():
    canary = Canary(CanaryConfig(pause_s=7), analysis=True)
    first = Record("v1", "img", "blue", None, None)
    assert planned(canary, 3, first) == [Step(100, new=3, old=0, pause_s=7)]
    second = Record("v2", "img", "green", "blue", Target("v1", "img"))
    assert planned(canary, 3, second) == canary.steps(3)
    assert (track(canary), track(canary, Step(50, 1, 3)), track(canary, Step(100, 3, 3))) == ("canary", "canary", "stable")
