"""What a release cost: the proxy's counters read from ``show stat``, their increase over a release, and the
extra instance-seconds of each strategy, from the engine's own timeline."""

from __future__ import annotations

import pytest

from deployflow.rollout.cost import counters_delta, extra_instance_seconds, extra_now, request_cost
from deployflow.routers.haproxy import RouterError, parse_stat
from tests.unit.world import World

# The shape of HAProxy 2.6's 'show stat' (columns cut to the ones that matter, in its order), a server row too.
STAT = """\
# pxname,svname,qcur,scur,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,hrsp_5xx,req_tot,srv_abrt,
shop-prod,FRONTEND,,,120,1,2,0,0,0,,,,,OPEN,7,118,,
app,blue-0,0,0,60,1,2,,0,,1,2,3,0,UP,4,,1,
app,BACKEND,0,0,120,1,2,0,0,,2,3,5,1,UP,6,118,2,
other-prod,FRONTEND,,,9,1,2,0,0,0,,,,,OPEN,9,9,,
"""


def test_show_stat_gives_the_front_and_back_counters_of_this_proxy_only():
    assert parse_stat(STAT, "shop-prod") == {
        "frontend_req_tot": 118, "frontend_hrsp_5xx": 7,
        "backend_srv_abrt": 2, "backend_econ": 2, "backend_eresp": 3, "backend_wretr": 5, "backend_wredis": 1}


def test_an_answer_that_is_not_the_csv_is_an_error():
    with pytest.raises(RouterError, match="'show stat' answered 'Unknown command"):
        parse_stat("Unknown command. Please enter one of the following commands only :", "shop-prod")


@pytest.mark.parametrize("before,after,delta", [
    ({"a": 10, "b": 0}, {"a": 15, "b": 2}, {"a": 5, "b": 2}),
    ({"a": 10}, {"a": 3}, {"a": 3}),  # the proxy restarted: what it counted since
    ({}, {"a": 3}, {}),  # no figures at the start (Kubernetes, or a first deploy's fresh proxy): nothing to say
    (None, {"a": 3}, {}),
])
def test_counters_delta(before, after, delta):
    assert counters_delta(before, after) == delta


def test_request_cost_counts_what_clients_saw_apart_from_what_the_router_saved():
    before = {"frontend_req_tot": 100, "frontend_hrsp_5xx": 1, "backend_srv_abrt": 0, "backend_econ": 0,
              "backend_eresp": 0, "backend_wretr": 0, "backend_wredis": 0}
    after = {**before, "frontend_req_tot": 1100, "frontend_hrsp_5xx": 4, "backend_srv_abrt": 1, "backend_wretr": 9, "backend_econ": 2}
    assert request_cost(before, after) == {"requests": 1000, "failed_requests": 4, "saved_by_router": 11}


@pytest.mark.parametrize("replicas,sizes,extra", [
    (2, (2, None), 2),  # blue-green: a whole second colour beside the live one
    (4, (1, None, 1), 2),  # an analysed canary: one canary and one baseline beside the live set
    (3, (1, 2), 0),  # rolling: one new, one old fewer
    (3, (2, 2), 1),
    (2, (2, 0), 0),  # the old set gone
])
def test_extra_now(replicas, sizes, extra):
    assert extra_now(replicas, *sizes) == extra


@pytest.mark.parametrize("timeline,seconds", [
    ([], 0.0),
    ([(10.0, 2), (40.0, 0)], 60.0),
    ([(10.0, 1), (20.0, 2), (30.0, 0)], 30.0),
    ([(30.0, 0), (10.0, 1)], 20.0),  # in any order
])
def test_extra_instance_seconds(timeline, seconds):
    assert extra_instance_seconds(timeline) == seconds


def test_blue_green_costs_a_second_colour_for_the_overlap_and_a_canary_a_few_instances(tmp_path):
    costs = {}
    for strategy in ("blue-green", "canary"):
        world = World(strategy, platform="docker", replicas=4, pause_s=10, scale_down_delay_s=30, state_dir=tmp_path / strategy)
        world.release("v1", "prepare", "shift", "promote")
        world.router.stat["frontend_req_tot"] = 1000
        rollout = world.rollout("v2")
        rollout.prepare()
        world.router.stat.update(frontend_req_tot=1500, frontend_hrsp_5xx=2, backend_wretr=3)
        rollout.shift()
        costs[strategy] = rollout.promote()["cost"]
    assert costs["blue-green"]["extra_instance_seconds"] == 4 * 30.0  # four more for the scale-down delay
    assert costs["canary"]["extra_instance_seconds"] < costs["blue-green"]["extra_instance_seconds"]
    assert costs["canary"]["extra_instance_seconds"] > 0
    assert {k: costs["blue-green"][k] for k in ("requests", "failed_requests", "saved_by_router")} == {
        "requests": 500, "failed_requests": 2, "saved_by_router": 3}


def test_a_rollback_reports_how_fast_the_failed_watch_put_traffic_back(tmp_path):
    world = World("blue-green", platform="docker", replicas=2, scale_down_delay_s=30, state_dir=tmp_path)
    world.release("v1", "prepare", "shift", "promote")
    rollout = world.rollout("v2")
    rollout.prepare()
    rollout.shift()
    world.fail_health("v2")
    with pytest.raises(Exception) as failed:
        rollout.promote()
    rollout.note_failure(str(failed.value), failed.value.restore_seconds)
    rolled = rollout.rollback()
    assert rolled["cost"]["restore_seconds"] == failed.value.restore_seconds is not None
    assert rolled["cost"]["extra_instance_seconds"] > 0
