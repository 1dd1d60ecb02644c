"""The rollout engine's contract: the same release scenarios on every platform, asserting the same
observable outcomes (each version's share of traffic, the version served, the instances left running).

Each scenario runs once per platform (test ids ``docker``, ``kubernetes``, and ``kubernetes-replicas``
for a canary split by pod counts): the Docker workload with HAProxy traffic over fakes of the engine
and the proxy, and the kubernetes workload and routers over the FAKE Kubernetes API (tests/unit/world.py).
"""

from __future__ import annotations

import pytest

from deployflow.record import StepFailed
from tests.unit.world import FULL, World, attempt

PLATFORMS = {"docker": ("docker", "gateway"), "kubernetes": ("kubernetes", "gateway"),
             "kubernetes-replicas": ("kubernetes", "replicas")}
STRATEGIES = ["blue-green", "canary", "rolling"]


def cases(strategies=STRATEGIES):
    return [pytest.param(strategy, flavour, id=f"{strategy}-{flavour}") for strategy in strategies for flavour in PLATFORMS
            if flavour != "kubernetes-replicas" or strategy == "canary"]


def world(strategy: str, flavour: str, **kwargs) -> World:
    platform, traffic = PLATFORMS[flavour]
    return World(strategy, platform=platform, traffic=traffic, **kwargs)


def released(strategy: str, flavour: str, **kwargs) -> World:
    w = world(strategy, flavour, **kwargs)
    w.release("v1", *FULL)
    return w


def seen(w: World) -> tuple[dict[str, int], dict[str, int]]:
    return w.shares(), w.running()


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_first_deploy_serves_every_instance(strategy, flavour):
    w = released(strategy, flavour)
    assert seen(w) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_second_release_is_promoted_and_the_old_version_goes(strategy, flavour):
    w = released(strategy, flavour, scale_down_delay_s=5)
    w.release("v2", *FULL)
    assert seen(w) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
@pytest.mark.parametrize("failed_after", ["prepare", "shift"])
def test_a_rollback_puts_everything_back_on_the_old_version(strategy, flavour, failed_after):
    w = released(strategy, flavour)
    attempt(w, "v2", *FULL[: FULL.index(failed_after) + 1])
    assert seen(w) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases(["blue-green", "canary"]))
def test_a_version_that_fails_its_watch_is_switched_back_inside_the_step(strategy, flavour):
    w = released(strategy, flavour, scale_down_delay_s=5, pause_s=5, analysis=False)
    rollout = w.rollout("v2")
    rollout.prepare()
    w.fail_health("v2")  # ready, but failing its health checks from now on
    with pytest.raises(StepFailed, match="failed its health checks during .*traffic restored to v1"):
        rollout.shift() if strategy == "canary" else (rollout.shift(), rollout.promote())
    assert w.shares() == {"v1": 100}, "before the rollback task runs"
    rollout.rollback()
    assert seen(w) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_version_that_never_gets_ready_ends_rolled_back(strategy, flavour):
    w = released(strategy, flavour, scale_down_delay_s=5)
    w.break_version("v2", never_ready=True)
    with pytest.raises(StepFailed):
        w.release("v2", *FULL)
    w.release("v2", "rollback")
    assert seen(w) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_every_step_run_twice_changes_nothing_the_second_time(strategy, flavour):
    w = released(strategy, flavour)
    for step in FULL:
        w.release("v2", step)
        once = seen(w)
        w.release("v2", step)
        assert seen(w) == once, step
    assert seen(w) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_rollback_run_twice_changes_nothing_the_second_time(strategy, flavour):
    w = released(strategy, flavour)
    attempt(w, "v2", "prepare", "shift")
    assert w.release("v2", "rollback")["rolled_back"] is True
    assert seen(w) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_first_deploy_rolled_back_leaves_nothing(strategy, flavour):
    w = world(strategy, flavour)
    attempt(w, "v1", "prepare", "shift")
    assert seen(w) == ({}, {})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_releasing_the_live_version_again_changes_nothing(strategy, flavour):
    w = released(strategy, flavour)
    before = seen(w)
    assert w.release("v1", *FULL)["already_live"] is True
    assert w.release("v1", "rollback")["rolled_back"] is False
    assert seen(w) == before == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases(["canary"]))
def test_canary_steps_give_the_new_version_each_planned_share_in_order(strategy, flavour):
    w = released(strategy, flavour, analysis=False)
    rollout = w.rollout("v2")
    rollout.prepare()
    shares = []
    for percent in (10, 25, 50):
        rollout.shift(percent)
        shares.append(w.shares().get("v2", 0))
    if flavour == "kubernetes-replicas":  # the pods are the shares: 1 of 3, 1 of 3, 2 of 3
        assert shares == [33, 33, 67] and w.running() == {"v1": 1, "v2": 2}
    else:
        assert shares == [10, 25, 50]
        assert w.running() == {"v1": 3, "v2": 1}, "a canary's few instances beside the full old version"
    rollout.promote()
    assert seen(w) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases(["canary"]))
def test_an_analysed_canary_stops_at_its_first_step_beside_a_fresh_baseline(strategy, flavour):
    w = released(strategy, flavour, analysis=True)
    rollout = w.rollout("v2")
    rollout.prepare()
    assert rollout.shift()["analysis"] is True
    if flavour == "kubernetes-replicas":  # the old colour gives the canary's pod to it: 2 old, 1 baseline, 1 canary
        assert w.running() == {"v1": 3, "v2": 1} and w.shares() == {"v2": 25, "v1": 75}
    else:
        assert w.running() == {"v1": 4, "v2": 1}, "the old version and a fresh baseline of it, as many as the canary"
        assert w.shares() == {"v2": 10, "v1": 90}
    rollout.promote()
    assert seen(w) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases(["rolling"]))
def test_rolling_never_serves_with_fewer_instances_than_replicas(strategy, flavour):
    w = released(strategy, flavour, batch_size=1)
    w.release("v2", *FULL)
    assert seen(w) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases(["blue-green", "canary"]))
def test_promote_removes_nothing_of_the_old_version_unless_the_new_one_is_whole_and_ready(strategy, flavour):
    w = released(strategy, flavour, analysis=False)
    rollout = w.rollout("v2")
    rollout.prepare()
    rollout.shift()
    w.break_version("v2", never_ready=True)  # the new version's instances stop being ready after the last step
    if w.platform_name == "docker":
        w.session.answers.update({f"{i.url}/ready": 503 for i in w.platform.by_name.values() if i.version == "v2"})
    with pytest.raises(StepFailed, match="failed during promotion: .*traffic restored to v1"):
        rollout.promote()
    assert w.shares() == {"v1": 100} and w.running()["v1"] == 3, "the old version serves, whole"
    rollout.rollback()
    assert seen(w) == ({"v1": 100}, {"v1": 3})
