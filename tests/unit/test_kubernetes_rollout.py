"""The kubernetes platform's driver, step by step, against the FAKE Kubernetes API (tests/unit/fake_kubernetes.py)."""

from __future__ import annotations

import copy

import pytest

from deployflow.record import StepFailed
from deployflow.kubernetes.cluster import ClusterError
from deployflow.kubernetes.manifests import GROUP
from tests.unit.world import ALL, World, image, scenarios

COLOUR, TRACK, VERSION = f"{GROUP}/colour", f"{GROUP}/track", f"{GROUP}/version"


def labels(world: World, name: str) -> dict:
    return world.api.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]


def state(world: World) -> dict:
    """Every object's content without what the API server stamps on each write."""
    result = {}
    for key, obj in world.api.objects.items():
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion")
        result[key] = obj
    return result


# ---- blue-green -----------------------------------------------------------------------


def test_blue_green_first_deploy_goes_straight_behind_the_main_service():
    w = World("blue-green")
    prepared = w.release("v1", "prepare")
    assert w.api.replicas("shop-blue") == 3 and w.api.image("shop-blue") == image("v1")
    assert w.api.selector("shop")[COLOUR] == "blue"
    assert prepared["instances"] == ["http://shop.shop-prod.svc.cluster.local"] and prepared["previous"] is None
    w.release("v1", "shift", "promote")
    assert w.api.get("Deployment", "shop-green") is None


def test_blue_green_starts_the_idle_colour_behind_the_preview_then_switches_the_selector():
    w = World("blue-green", scale_down_delay_s=5)
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    prepared = rollout.prepare()
    assert (prepared["colour"], prepared["previous"]) == ("green", "v1")
    assert prepared["instances"] == ["http://shop-preview.shop-prod.svc.cluster.local"]
    assert w.api.replicas("shop-green") == 3 and w.api.selector("shop-preview")[COLOUR] == "green"
    assert w.api.selector("shop")[COLOUR] == "blue", "no traffic before shift"
    rollout.shift()
    assert w.api.selector("shop")[COLOUR] == "green"
    assert w.api.replicas("shop-blue") == 3, "the old colour stays through the scale-down delay"
    rollout.promote()
    assert w.api.replicas("shop-blue") == 0
    assert any("shop.shop-prod.svc.cluster.local" in url for url in w.session.asked), "the delay was watched"
    assert w.rollout("v2").status()["live"] == "green"


def test_blue_green_failure_during_the_delay_switches_back_at_once():
    w = World("blue-green", scale_down_delay_s=5)
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    rollout.prepare()
    rollout.shift()
    w.session.default = 503
    with pytest.raises(StepFailed, match="traffic restored to v1"):
        rollout.promote()
    assert w.api.selector("shop")[COLOUR] == "blue"
    result = rollout.rollback()
    assert result["rolled_back"] and result["to"] == "v1"
    assert w.api.replicas("shop-green") == 0 and w.api.replicas("shop-blue") == 3


def test_blue_green_rollback_after_shift_restores_the_selector_and_scales_the_new_colour_to_zero():
    w = World("blue-green")
    w.release("v1", "prepare", "shift", "promote")
    w.release("v2", "prepare", "shift")
    assert w.api.selector("shop")[COLOUR] == "green"
    result = w.release("v2", "rollback")
    assert result["rolled_back"] and result["to"] == "v1"
    assert w.api.selector("shop")[COLOUR] == "blue"
    assert w.api.replicas("shop-green") == 0 and w.api.replicas("shop-blue") == 3


@pytest.mark.parametrize(("fault", "reason"), [
    ("unready", "shop-green not ready after 30 s"),
    ("deadline_exceeded", "shop-green exceeded its progress deadline: ReplicaSet of shop-green has timed out"),
], ids=["never-ready", "progress-deadline"])
def test_a_version_that_never_gets_ready_never_takes_traffic_and_says_why_in_kubernetes_words(fault, reason):
    w = World("blue-green")
    w.release("v1", "prepare", "shift", "promote")
    getattr(w.api, fault).add(image("v2"))
    rollout = w.rollout("v2")
    rollout.prepare()
    with pytest.raises(StepFailed, match=reason):
        rollout.shift()
    assert w.api.selector("shop")[COLOUR] == "blue"
    rollout.rollback()
    assert w.api.replicas("shop-green") == 0


# ---- canary ---------------------------------------------------------------------------


def test_canary_with_gateway_api_weights_and_a_fresh_baseline():
    w = World("canary")
    w.release("v1", "prepare", "shift", "promote")
    assert w.api.weights("shop") == {"shop": 100, "shop-canary": 0, "shop-baseline": 0}
    rollout = w.rollout("v2")
    prepared = rollout.prepare()
    assert prepared["instances"] == ["http://shop-canary.shop-prod.svc.cluster.local"]
    assert (w.api.replicas("shop-green"), labels(w, "shop-green")[TRACK]) == (1, "canary")
    assert (w.api.image("shop-baseline"), labels(w, "shop-baseline")[TRACK]) == (image("v1"), "baseline")
    assert w.api.selector("shop-canary")[COLOUR] == "green" and w.api.selector("shop-baseline")[COLOUR] == "baseline"
    assert w.api.weights("shop")["shop"] == 100, "no traffic before shift"
    shifted = rollout.shift()
    assert shifted["analysis"] is True
    assert w.api.weights("shop") == {"shop": 80, "shop-canary": 10, "shop-baseline": 10}, "analysis judges the first step"
    rollout.promote()
    assert w.api.weights("shop") == {"shop": 100, "shop-canary": 0, "shop-baseline": 0}
    assert w.api.selector("shop")[COLOUR] == "green"
    assert (w.api.replicas("shop-green"), labels(w, "shop-green")[TRACK]) == (3, "stable")
    assert w.api.replicas("shop-blue") == 0 and w.api.replicas("shop-baseline") == 0


def test_canary_promote_walks_the_remaining_steps_in_order():
    w = World("canary")
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    rollout.prepare()
    rollout.shift()
    before = len(w.api.written)
    rollout.promote()
    routes = [{b["name"]: b["weight"] for b in o["spec"]["rules"][0]["backendRefs"]}
              for o in w.api.written[before:] if o["kind"] == "HTTPRoute"]
    assert [r["shop-canary"] for r in routes] == [25, 50, 0]
    assert routes[-1]["shop"] == 100


def test_canary_shift_to_one_weight_and_a_weight_that_is_no_step():
    w = World("canary", analysis=False)
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    rollout.prepare()
    rollout.shift(25)
    assert w.api.weights("shop") == {"shop": 75, "shop-canary": 25, "shop-baseline": 0}
    with pytest.raises(StepFailed, match=r"--weight 30 is not a step of canary here; valid values are \[10, 25, 50, 100\]"):
        rollout.shift(30)


def test_canary_rollback_puts_all_weight_back_and_scales_canary_and_baseline_to_zero():
    w = World("canary")
    w.release("v1", "prepare", "shift", "promote")
    w.release("v2", "prepare", "shift")
    result = w.release("v2", "rollback")
    assert result["to"] == "v1"
    assert w.api.weights("shop") == {"shop": 100, "shop-canary": 0, "shop-baseline": 0}
    assert w.api.selector("shop")[COLOUR] == "blue"
    assert w.api.replicas("shop-green") == 0 and w.api.replicas("shop-baseline") == 0 and w.api.replicas("shop-blue") == 3


def test_canary_unhealthy_during_a_pause_restores_the_weights_inside_the_step():
    w = World("canary", analysis=False, pause_s=5)
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    rollout.prepare()
    w.session.answers["http://shop-canary.shop-prod.svc.cluster.local"] = 500
    with pytest.raises(StepFailed, match="failed its health checks during the 10 % step.*traffic restored to v1"):
        rollout.shift()
    assert w.api.weights("shop")["shop"] == 100


def test_canary_with_gateway_traffic_on_a_cluster_without_gateway_api_says_what_to_change():
    w = World("canary")
    w.api.gateway_api = False
    with pytest.raises(ClusterError, match="serves no Gateway API .* or set the environment's kubernetes.traffic to 'replicas'"):
        w.release("v1", "prepare")


def test_canary_by_replica_ratio_without_gateway_api():
    w = World("canary", traffic="replicas", replicas=4)
    w.release("v1", "prepare", "shift", "promote")
    assert w.api.get("HTTPRoute", "shop") is None
    rollout = w.rollout("v2")
    rollout.prepare()
    assert COLOUR not in w.api.selector("shop"), "the main Service selects every colour: pods carry the ratio"
    rollout.shift()
    assert (w.api.replicas("shop-green"), w.api.replicas("shop-blue"), w.api.replicas("shop-baseline")) == (1, 3, 1)
    rollout.promote()
    assert w.api.selector("shop")[COLOUR] == "green"
    assert (w.api.replicas("shop-green"), w.api.replicas("shop-blue"), w.api.replicas("shop-baseline")) == (4, 0, 0)
    assert w.api.get("HTTPRoute", "shop") is None, "no Gateway API object is ever written"


def test_canary_by_replica_ratio_rolls_back_to_the_full_old_colour():
    w = World("canary", traffic="replicas", replicas=4, analysis=False)
    w.release("v1", "prepare", "shift", "promote")
    w.rollout("v2").prepare()
    w.rollout("v2").shift(50)
    assert (w.api.replicas("shop-green"), w.api.replicas("shop-blue")) == (2, 2), "at 50 % the pods are half and half"
    w.release("v2", "rollback")
    assert w.api.selector("shop")[COLOUR] == "blue"
    assert (w.api.replicas("shop-blue"), w.api.replicas("shop-green")) == (4, 0)


# ---- rolling --------------------------------------------------------------------------


def test_rolling_replaces_the_pod_template_of_the_one_live_deployment():
    w = World("rolling")
    w.release("v1", "prepare", "shift", "promote")
    rollout = w.rollout("v2")
    prepared = rollout.prepare()
    assert prepared["colour"] == "blue" and w.api.get("Deployment", "shop-green") is None
    deployment = w.api.get("Deployment", "shop-blue")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 1}
    assert w.api.image("shop-blue") == image("v2") and deployment["metadata"]["generation"] == 2
    rollout.shift()
    rollout.promote()
    assert labels(w, "shop-blue")[VERSION] == "v2"


def test_rolling_rollback_brings_back_the_previous_pod_template():
    w = World("rolling")
    w.release("v1", "prepare", "shift", "promote")
    v1_template = copy.deepcopy(w.api.get("Deployment", "shop-blue")["spec"]["template"])
    w.api.unready.add(image("v2"))
    rollout = w.rollout("v2")
    rollout.prepare()
    with pytest.raises(StepFailed, match="failed during the 100 % step: Deployment shop-blue not ready.*traffic restored to v1"):
        rollout.shift()
    assert w.api.get("Deployment", "shop-blue")["spec"]["template"] == v1_template, "the previous ReplicaSet's template"
    assert rollout.rollback()["to"] == "v1"


# ---- first deploys, re-runs, already live ---------------------------------------------


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "rolling"])
def test_rolling_back_a_first_deploy_leaves_no_pods(strategy):
    w = World(strategy)
    w.release("v1", "prepare")
    result = w.release("v1", "rollback")
    assert result == {"rolled_back": True, "to": None, "because": None, "seconds": result["seconds"],
                      "cost": {"extra_instance_seconds": 0.0}}  # a Kubernetes router keeps no request counts
    assert not [k for k in w.api.objects if k[0] == "Deployment"]


@pytest.mark.parametrize("strategy,traffic", ALL)
@pytest.mark.parametrize("step", ["prepare", "shift", "promote", "rollback"])
def test_every_step_run_twice_leaves_what_running_it_once_left(strategy, traffic, step):
    w = World(strategy, traffic=traffic)
    w.release("v1", "prepare", "shift", "promote")
    before = ("prepare", "shift", "promote", "rollback")[: ("prepare", "shift", "promote", "rollback").index(step)]
    if step == "rollback":
        before = ("prepare", "shift")
    w.release("v2", *before)
    first = w.release("v2", step)
    once = state(w)
    again = w.release("v2", step)
    assert state(w) == once, "no object changed, no Deployment's generation moved (no pod restarted)"
    per_try = ("seconds", "watch")  # what this try did: a promote run again finds the work done and watches nothing
    assert {k: v for k, v in again.items() if k not in per_try} == {k: v for k, v in first.items() if k not in per_try} \
        or step == "rollback"


def test_releasing_the_live_version_again_changes_nothing():
    w = World("blue-green")
    w.release("v1", "prepare", "shift", "promote")
    once = state(w)
    writes = len(w.api.writes())
    result = w.release("v1", "prepare", "shift", "promote")
    assert result["already_live"] is True
    assert [c for c in w.api.writes()[writes:] if c[2] != "configmaps"] == [], "only the record is written"
    assert {k: v for k, v in state(w).items() if k[0] != "ConfigMap"} == {k: v for k, v in once.items() if k[0] != "ConfigMap"}


def test_a_step_before_prepare_says_what_to_do():
    with pytest.raises(StepFailed, match="no prepared release of v9 in prod; run prepare first"):
        World("blue-green").rollout("v9").shift()


@pytest.mark.parametrize("strategy,traffic", ALL)
def test_every_scenario_ends_with_the_main_service_on_running_pods(strategy, traffic):
    for name, scenario in scenarios(strategy, traffic).items():
        w = scenario()
        main = w.api.selector("shop")
        serving = [o for (kind, _), o in w.api.objects.items() if kind == "Deployment" and o["spec"]["replicas"]
                   and all(o["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in main.items())]
        if name == "first deploy rolled back":
            assert serving == [], name
        else:
            assert serving and all(image("v1") == s["spec"]["template"]["spec"]["containers"][0]["image"]
                                   or name in ("promoted", "re-run each step") for s in serving), name


@pytest.mark.parametrize("strategy", ["blue-green", "canary"])
def test_rollback_puts_traffic_back_before_anything_else_when_the_old_pods_still_run(strategy):
    w = World(strategy)
    w.release("v1", "prepare", "shift", "promote")
    w.release("v2", "prepare", "shift")
    before = len(w.api.calls)
    w.release("v2", "rollback")
    calls = w.api.calls[before:]
    first_write = next(c for c in calls if c[0] != "get")
    # blue-green: the main Service's selector; canary: the route's weights (the main Service still selects the old pods)
    expected = ("update", "", "services", "shop") if strategy == "blue-green" else ("update", "gateway.networking.k8s.io", "httproutes", "shop")
    assert first_write == expected, "the first write points traffic back at the old pods"
    assert calls.index(first_write) == 3, "after three reads: the record, the old Deployment, the Service or route"
