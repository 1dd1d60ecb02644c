from __future__ import annotations

import json
from dataclasses import replace
import logging

import pytest

from deployflow.rollout.engine import Rollout
from deployflow.configuration import ResolvedConfig
from deployflow.record import StepFailed
from tests.unit.world import World as SharedWorld


def table(routes) -> dict[str, int]:
    return {n: r.weight for n, r in sorted(routes.items())}


def run(rollout: Rollout, *steps: str) -> None:
    for step in steps:
        getattr(rollout, step)()


def World(tmp_path, strategy: str, replicas: int, pause_s: int = 0, scale_down_delay_s: int = 0,  # noqa: N802
          analysis: bool = False) -> SharedWorld:
    """The Docker flavour of the shared world: HAProxy traffic over a fake proxy, containers on a fake platform."""
    world = SharedWorld(strategy, platform="docker", replicas=replicas, pause_s=pause_s, scale_down_delay_s=scale_down_delay_s,
                        analysis=analysis, timeout_s=1, batch_size=1, state_dir=tmp_path)
    world.running = lambda: {i.name: i.version for i in world.platform.instances("shop", "prod")}
    world.since = lambda mark, kind=None: [e for e in world.log[mark:] if kind is None or e[0] == kind]
    return world


def test_blue_green_first_deploy(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2)
    rollout = world.rollout("v1")
    prepared = rollout.prepare()
    assert world.log == [("ensure",), ("start", "blue-0", "v1"), ("start", "blue-1", "v1"),
                         ("routes", {"blue-0": 0, "blue-1": 0})]
    assert {k: prepared[k] for k in ("version", "colour", "already_live", "previous", "instances")} == {
        "version": "v1", "colour": "blue", "already_live": False, "previous": None,
        "instances": ["http://127.0.0.1:20000", "http://127.0.0.1:20001"]}
    rollout.shift()
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1}
    rollout.promote()
    assert world.since(4, "stop") == []
    assert world.running() == {"blue-0": "v1", "blue-1": "v1"}


def test_rollback_of_a_first_deploy_leaves_nothing(tmp_path, caplog):
    world = World(tmp_path, "blue-green", replicas=2)
    rollout = world.rollout("v1")
    run(rollout, "prepare", "shift")
    with caplog.at_level(logging.INFO, logger="deployflow.deployer"):
        result = rollout.rollback()
    assert (result["rolled_back"], result["to"]) == (True, None)
    assert "rolled back to nothing" in caplog.text
    assert world.router.current == {} and world.running() == {}


def test_blue_green_keeps_the_old_colour_as_backup_until_promote(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2)
    world.release("v1")
    rollout = world.rollout("v2")
    assert rollout.prepare()["previous"] == "v1"
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}
    rollout.shift()
    assert table(world.router.current) == {"blue-0.backup": 1, "blue-1.backup": 1, "green-0": 1, "green-1": 1}
    assert [n for n, r in world.router.current.items() if r.backup] == ["blue-0.backup", "blue-1.backup"]
    assert world.running() == {"blue-0": "v1", "blue-1": "v1", "green-0": "v2", "green-1": "v2"}
    status = rollout.status()
    assert (status["live"], status["sets"]["green"]["versions"], status["sets"]["green"]["traffic_percent"]) == ("green", ["v2"], 100)
    assert (status["sets"]["blue"]["versions"], status["sets"]["blue"]["traffic_percent"]) == (["v1"], 0)
    mark = len(world.log)
    rollout.promote()
    assert table(world.router.current) == {"green-0": 1, "green-1": 1}
    assert world.since(mark, "stop") == [("stop", "blue-0"), ("stop", "blue-1")]
    assert world.running() == {"green-0": "v2", "green-1": "v2"}


def test_blue_green_rollback_after_shift_moves_traffic_back_before_removing_the_new(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2)
    world.release("v1")
    rollout = world.rollout("v2")
    run(rollout, "prepare", "shift")
    mark = len(world.log)
    assert rollout.rollback()["to"] == "v1"
    assert world.since(mark) == [
        ("routes", {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}),
        ("routes", {"blue-0": 1, "blue-1": 1}),
        ("stop", "green-0"), ("stop", "green-1"),
    ]
    assert rollout.rollback()["to"] == "v1"  # a second rollback is harmless
    assert world.since(mark + 4, "stop") == [] and world.since(mark + 4, "start") == []
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1}


def test_canary_steps_weights_in_order_and_scales_up_at_100(tmp_path):
    world = World(tmp_path, "canary", replicas=3)
    world.release("v1")
    rollout = world.rollout("v2")
    rollout.prepare()
    mark = len(world.log)
    rollout.shift()
    blue = lambda w: {f"blue-{i}": w for i in range(3)}  # noqa: E731
    green = {f"green-{i}": 1 for i in range(3)}
    assert world.since(mark) == [
        ("routes", {**blue(3), "green-0": 1}),
        ("routes", {**blue(1), "green-0": 1}),
        ("routes", {**blue(33), "green-0": 100}),
        ("start", "green-1", "v2"), ("start", "green-2", "v2"),
        ("routes", {**blue(0), **{f"blue-{i}.backup": 1 for i in range(3)}, **green}),
        ("routes", {**{f"blue-{i}.backup": 1 for i in range(3)}, **green}),
    ]
    # every new instance passed its readiness check before taking traffic, not only those just started
    assert sorted(set(world.session.asked)) == [f"http://127.0.0.1:2000{i}/ready" for i in (3, 4, 5)]


def test_rolling_replaces_batch_by_batch_without_losing_capacity(tmp_path):
    world = World(tmp_path, "rolling", replicas=3)
    world.release("v1")
    rollout = world.rollout("v2")
    run(rollout, "prepare", "shift", "promote")
    assert [e[:2] for e in world.log if e[0] in ("start", "stop")] == [
        ("start", "green-0"), ("stop", "blue-2"), ("start", "green-1"), ("stop", "blue-1"),
        ("start", "green-2"), ("stop", "blue-0"),
    ]
    for call in world.router.calls:
        serving = [r for r in call.values() if r.weight > 0 and not r.backup]
        assert len(serving) >= 3, table(call)
    assert table(world.router.current) == {"green-0": 1, "green-1": 1, "green-2": 1}


def test_a_failing_watched_step_restores_traffic_inside_the_step(tmp_path):
    world = World(tmp_path, "canary", replicas=3, pause_s=1)
    world.release("v1", strategy="blue-green")
    rollout = world.rollout("v2")
    rollout.prepare()
    world.session.answers[world.platform.by_name["green-0"].url + "/health"] = 503  # ready, yet unhealthy
    with pytest.raises(StepFailed) as failed:
        rollout.shift()
    assert "v2 failed its health checks during the 10 % step: not healthy" in str(failed.value)
    assert "traffic restored to v1 in " in str(failed.value)
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "blue-2": 1, "green-0": 0}
    assert "green-0" in world.running()  # removing it is the rollback's job
    rollout.rollback()
    assert world.running() == {f"blue-{i}": "v1" for i in range(3)}


def test_a_failing_first_deploy_has_nothing_to_restore(tmp_path):
    world = World(tmp_path, "canary", replicas=1, pause_s=1)
    world.session.default = 503
    rollout = world.rollout("v1")
    rollout.prepare()
    with pytest.raises(StepFailed, match="no previous version to restore"):
        rollout.shift()


def test_blue_green_scale_down_delay_watch_switches_back_to_the_old_colour(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2, scale_down_delay_s=1)
    world.release("v1", strategy="rolling")
    rollout = world.rollout("v2")
    run(rollout, "prepare", "shift")
    for name in ("green-0", "green-1"):
        world.session.answers[world.platform.by_name[name].url] = 500
    with pytest.raises(StepFailed, match="during the scale-down delay: .*traffic restored to v1"):
        rollout.promote()
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "rolling"])
def test_steps_run_twice_converge_to_the_same_state(tmp_path, strategy):
    world = World(tmp_path, strategy, replicas=3)
    world.release("v1")
    rollout = world.rollout("v2")
    rollout.prepare()
    instances, routes = world.running(), table(world.router.current)
    rollout.prepare()
    assert (world.running(), table(world.router.current)) == (instances, routes)
    rollout.shift()
    instances, routes = world.running(), table(world.router.current)
    rollout.shift()
    assert (world.running(), table(world.router.current)) == (instances, routes)
    assert len([e for e in world.log if e[0] == "start"]) == 3


def test_shift_to_one_planned_percent_only(tmp_path):
    world = World(tmp_path, "canary", replicas=3)
    world.release("v1")
    rollout = world.rollout("v2")
    rollout.prepare()
    with pytest.raises(StepFailed) as wrong:
        rollout.shift(30)
    assert str(wrong.value) == "--weight 30 is not a step of canary here; valid values are [10, 25, 50, 100]"
    rollout.shift(25)
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "blue-2": 1, "green-0": 1}
    assert rollout.status() == {"service": "shop", "environment": "prod", "live": "blue", "sets": {
        "blue": {"versions": ["v1"], "images": ["v1"], "configs": [], "traffic_percent": 75, "instances": [
            {"name": f"blue-{i}", "url": f"http://127.0.0.1:2000{i}", "running": True} for i in range(3)]},
        "green": {"versions": ["v2"], "images": ["v2"], "configs": [], "traffic_percent": 25, "instances": [
            {"name": "green-0", "url": "http://127.0.0.1:20003", "running": True}]},
    }, "router": {"servers": {**{f"blue-{i}": {"weight": 1, "check": "unknown"} for i in range(3)},
                              "green-0": {"weight": 1, "check": "unknown"}}}}


def test_shift_before_prepare_says_what_to_do(tmp_path):
    with pytest.raises(StepFailed, match="no prepared release of v2 in prod; run prepare first"):
        World(tmp_path, "canary", replicas=1).rollout("v2").shift()


def test_prepare_removes_an_earlier_releases_leftovers_in_its_colour(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2)
    world.release("v1")
    world.rollout("v2").prepare()  # a release of v2 that went no further
    world.log.clear()
    world.rollout("v3").prepare()
    assert [e for e in world.log if e[0] in ("start", "stop")] == [
        ("stop", "green-0"), ("stop", "green-1"), ("start", "green-0", "v3"), ("start", "green-1", "v3")]
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}


def test_releasing_the_live_version_again_changes_nothing(tmp_path):
    # e.g. a nightly release of a branch with no new commit: the same version as the one live
    world = World(tmp_path, "blue-green", replicas=2)
    world.release("v1")
    world.release("v2")
    assert table(world.router.current) == {"green-0": 1, "green-1": 1}
    result = world.rollout("v2").prepare()
    assert table(world.router.current) == {"green-0": 1, "green-1": 1}
    assert result["already_live"] is True


def test_an_analysed_canary_runs_a_fresh_baseline_and_stops_for_the_verdict(tmp_path):
    world = World(tmp_path, "canary", replicas=3, analysis=True)
    world.release("v1")  # a first deploy: nothing to compare with, so no baseline
    assert set(world.running()) == {"blue-0", "blue-1", "blue-2"}
    rollout = world.rollout("v2")
    rollout.prepare()
    assert world.running()["baseline-0"] == "v1"  # the old version, started afresh, as many as the canary
    mark = len(world.log)
    assert rollout.shift()["analysis"] is True
    # canary and baseline take the same share; the ramp stops at the analysed step
    assert world.since(mark) == [("routes", {"blue-0": 53, "blue-1": 53, "blue-2": 53, "baseline-0": 20, "green-0": 20})]
    targets = json.loads(world.site().targets_path.read_text())
    assert {(t["labels"]["version"], t["labels"]["track"]) for t in targets} == {
        ("v1", "stable"), ("v1", "baseline"), ("v2", "canary")}
    rollout.promote()  # after a passing analysis: the rest of the ramp, then the old and the baseline go
    assert world.running() == {"green-0": "v2", "green-1": "v2", "green-2": "v2"}
    targets = json.loads(world.site().targets_path.read_text())
    assert {t["labels"]["track"] for t in targets} == {"stable"}


def test_a_failed_analysis_rolls_back_canary_and_baseline(tmp_path):
    world = World(tmp_path, "canary", replicas=2, analysis=True)
    world.release("v1")
    rollout = world.rollout("v2")
    run(rollout, "prepare", "shift")
    assert rollout.rollback()["to"] == "v1"
    assert world.running() == {"blue-0": "v1", "blue-1": "v1"}
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1}


def test_a_retried_step_brings_back_lost_old_instances_before_any_traffic_moves(tmp_path):
    # The engine restarted mid-canary and two of the old instances did not come back.
    world = World(tmp_path, "canary", replicas=3)
    world.release("v1")
    rollout = world.rollout("v2")
    rollout.prepare()
    rollout.shift(10)
    for name in ("blue-1", "blue-2"):
        world.platform.by_name.pop(name)
    world.log.clear()
    rollout.shift(25)
    starts = [e for e in world.log if e[0] == "start"]
    first_routes = next(n for n, e in enumerate(world.log) if e[0] == "routes")
    assert starts == [("start", "blue-1", "v1"), ("start", "blue-2", "v1")]
    assert world.log.index(starts[-1]) < first_routes, "the old instances run again before the weights change"
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "blue-2": 1, "green-0": 1}


def test_a_new_version_that_restarted_is_crash_looping_not_healthy(tmp_path):
    world = World(tmp_path, "blue-green", replicas=2)
    world.release("v1")
    rollout = world.rollout("v2")
    rollout.prepare()
    crashed = world.platform.by_name["green-1"]
    world.platform.by_name["green-1"] = replace(crashed, restarts=3)  # it answers /ready between its crashes
    with pytest.raises(StepFailed, match="v2 failed during the 100 % step: v2 is crash-looping: green-1 restarted 3 time"):
        rollout.shift()
    assert table(world.router.current) == {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}


def test_status_names_the_image_and_configuration_versions_of_each_set(tmp_path):
    world = World(tmp_path, "blue-green", replicas=1)
    world.release("v1")
    world.site().configs().save("c0ffee00c0de", ResolvedConfig(env={"GREETING": "hi"}))  # prepare's, before the deployer
    world.release("v1-cc0ffee00c0de")  # the same image with a configuration: a release of its own
    green = world.rollout("v1-cc0ffee00c0de").status()["sets"]["green"]
    assert (green["versions"], green["images"], green["configs"], green["traffic_percent"]) == (
        ["v1-cc0ffee00c0de"], ["v1"], ["c0ffee00c0de"], 100)


@pytest.mark.parametrize("skip_pauses, skipped, waited", [(False, None, 60.0), (True, [25, 50], 0.0)])
def test_promote_now_skips_the_pauses_of_the_remaining_steps_and_nothing_else(tmp_path, skip_pauses, skipped, waited):
    world = World(tmp_path, "canary", replicas=3, pause_s=30)  # steps 10, 25, 50, 100: a pause after each but the last
    world.release("v1", strategy="blue-green")
    rollout = world.rollout("v2")
    rollout.prepare()
    rollout.shift(10)
    before = world.clock.monotonic()
    promoted = rollout.promote(skip_pauses=skip_pauses)
    assert promoted.get("pauses_skipped") == skipped
    assert world.clock.monotonic() - before == waited  # the fake clock: the pauses watched, 30 s each, or none
    assert world.running() == {f"green-{i}": "v2" for i in range(3)}  # every step taken, the old version gone
    assert table(world.router.current) == {"green-0": 1, "green-1": 1, "green-2": 1}
