from __future__ import annotations

import math

import pytest

from deployflow.catalog import BlueGreen as BlueGreenConfig
from deployflow.catalog import Canary as CanaryConfig
from deployflow.catalog import Rolling as RollingConfig
from deployflow.catalog import parse_service
from deployflow.routers.haproxy_traffic import MAX_WEIGHT, weights
from deployflow.strategies.base import Step
from deployflow.strategies.bluegreen import BlueGreen
from deployflow.strategies.canary import Canary
from deployflow.strategies.factory import strategy_for
from deployflow.strategies.rolling import Rolling


@pytest.mark.parametrize(
    ("replicas", "steps"),
    [
        (1, [Step(percent=100, new=1, old=1)]),
        (3, [Step(percent=100, new=3, old=3)]),
    ],
)
def test_blue_green_switches_everything_in_one_step(replicas, steps):
    strategy = BlueGreen(BlueGreenConfig(scale_down_delay_s=45))
    assert strategy.steps(replicas) == steps
    assert strategy.first_instances(replicas) == replicas
    assert strategy.scale_down_delay() == 45


@pytest.mark.parametrize(
    ("config", "replicas", "first", "steps"),
    [
        (CanaryConfig(), 3, 1, [
            Step(10, new=1, old=3, pause_s=30), Step(25, new=1, old=3, pause_s=30),
            Step(50, new=1, old=3, pause_s=30), Step(100, new=3, old=3, pause_s=0),
        ]),
        (CanaryConfig(steps=(20, 100), pause_s=5, replicas=2), 4, 2, [
            Step(20, new=2, old=4, pause_s=5), Step(100, new=4, old=4, pause_s=0),
        ]),
        # more canaries than replicas: never more new instances than the environment runs
        (CanaryConfig(steps=(50, 100), pause_s=0, replicas=5), 2, 2, [
            Step(50, new=2, old=2, pause_s=0), Step(100, new=2, old=2, pause_s=0),
        ]),
        (CanaryConfig(steps=(100,), pause_s=9), 3, 1, [Step(100, new=3, old=3, pause_s=0)]),
    ],
)
def test_canary_steps_end_with_the_new_version_at_full_size(config, replicas, first, steps):
    strategy = Canary(config)
    assert strategy.first_instances(replicas) == first
    assert strategy.steps(replicas) == steps
    assert strategy.scale_down_delay() == 0


@pytest.mark.parametrize(
    ("replicas", "batch", "first", "steps"),
    [
        (3, 1, 1, [Step(33, new=1, old=2), Step(67, new=2, old=1), Step(100, new=3, old=0)]),
        (5, 2, 2, [Step(40, new=2, old=3), Step(80, new=4, old=1), Step(100, new=5, old=0)]),
        (4, 4, 4, [Step(100, new=4, old=0)]),
        (2, 5, 2, [Step(100, new=2, old=0)]),
        (1, 1, 1, [Step(100, new=1, old=0)]),
    ],
)
def test_rolling_replaces_batch_by_batch(replicas, batch, first, steps):
    strategy = Rolling(RollingConfig(batch_size=batch))
    assert strategy.first_instances(replicas) == first
    assert strategy.steps(replicas) == steps
    assert strategy.scale_down_delay() == 0


SERVICE = parse_service({
    "name": "shop",
    "source": {"repo": "/srv/shop"},
    "environments": {"prod": {
        "port": 18103, "replicas": 4,
        "blue_green": {"scale_down_delay_s": 7},
        "canary": {"steps": [30, 100], "pause_s": 3, "replicas": 2},
        "rolling": {"batch_size": 3},
    }},
})


@pytest.mark.parametrize(
    ("name", "kind", "steps"),
    [
        ("blue-green", BlueGreen, [Step(100, new=4, old=4)]),
        # canary analysis is on by default: it judges the first step
        ("canary", Canary, [Step(30, new=2, old=4, pause_s=3, analysis=True), Step(100, new=4, old=4)]),
        ("rolling", Rolling, [Step(75, new=3, old=1), Step(100, new=4, old=0)]),
    ],
)
def test_factory_configures_each_strategy_from_the_environment(name, kind, steps):
    env = SERVICE.environments["prod"]
    strategy = strategy_for(name, env)
    assert isinstance(strategy, kind)
    assert strategy.name == name
    assert strategy.steps(env.replicas) == steps


def test_factory_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        strategy_for("red-black", SERVICE.environments["prod"])
    assert str(error.value) == "strategy 'red-black' is not known; valid values are 'blue-green', 'canary', 'rolling'"


@pytest.mark.parametrize(
    ("new", "old", "percent", "expected"),
    [
        # a first deploy: no old servers, so everything goes to the new ones whatever the percent
        (["n0"], [], 10, {"n0": 1}),
        (["n0", "n1"], [], 0, {"n0": 1, "n1": 1}),
        (["n0"], ["o0"], 0, {"n0": 0, "o0": 1}),
        (["n0"], ["o0"], 100, {"n0": 1, "o0": 0}),
        # the smallest whole numbers with the ratio: round robin settles within one short round
        (["n0"], ["o0", "o1", "o2"], 10, {"n0": 1, "o0": 3, "o1": 3, "o2": 3}),
        (["n0"], ["o0", "o1", "o2"], 25, {"n0": 1, "o0": 1, "o1": 1, "o2": 1}),
        (["n0"], ["o0", "o1"], 20, {"n0": 1, "o0": 2, "o1": 2}),
        (["n0", "n1"], ["o0", "o1"], 50, {"n0": 1, "n1": 1, "o0": 1, "o1": 1}),
        (["n0", "n1", "n2"], ["o0", "o1", "o2"], 100, {"n0": 1, "n1": 1, "n2": 1, "o0": 0, "o1": 0, "o2": 0}),
        # no common divisor: the weights stay as computed
        (["n0"], ["o0", "o1"], 33, {"n0": 66, "o0": 67, "o1": 67}),
        # a tiny share still gets at least weight 1: the new server is never silently left out
        (["n0"], [f"o{i}" for i in range(9)], 1, {"n0": 1, **{f"o{i}": 11 for i in range(9)}}),
        (["n0", "n1", "n2"], ["o0"], 1, {"n0": 1, "n1": 1, "n2": 1, "o0": 198}),
        ([], ["o0"], 0, {"o0": 1}),
    ],
)
def test_weights_split_traffic_by_percent(new, old, percent, expected):
    assert weights(new, old, percent) == expected


@pytest.mark.parametrize("percent", [0, 1, 10, 25, 33, 50, 67, 99, 100])
@pytest.mark.parametrize(("n_new", "n_old"), [(1, 0), (1, 1), (1, 5), (3, 3), (50, 50), (1, 50)])
def test_weights_stay_within_haproxy_range_and_match_the_percent(percent, n_new, n_old):
    new = [f"n{i}" for i in range(n_new)]
    old = [f"o{i}" for i in range(n_old)]
    result = weights(new, old, percent)
    assert set(result) == {*new, *old}
    assert all(0 <= w <= 256 for w in result.values())
    assert max(result.values()) <= MAX_WEIGHT
    new_total = sum(result[n] for n in new)
    total = sum(result.values())
    wanted = percent if old else 100
    # each weight is a whole number of MAX_WEIGHT's units, at least 1 for a non-zero share: off by at most
    # one unit per server; then reduced to the smallest whole numbers with that ratio
    assert abs(100 * new_total / total - wanted) <= 100 * (n_new + n_old) / MAX_WEIGHT
    assert math.gcd(*result.values()) == 1
