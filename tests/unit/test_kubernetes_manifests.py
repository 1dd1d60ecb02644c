"""Every object the kubernetes driver would send, for every strategy and step, is valid against the
Kubernetes schemas (tests/k8s_schemas.py: kubernetes-validate strict at a pinned version; HTTPRoute
through the Gateway API's); and the templates say what the catalog says."""

from __future__ import annotations

import copy

import pytest

from deployflow.kubernetes.manifests import Manifests
from tests.k8s_schemas import KUBERNETES_VERSION, NEWEST_VERSION, SchemaError, validate, validate_all
from tests.unit.world import ALL, World, scenarios


@pytest.mark.parametrize("strategy,traffic", ALL)
def test_every_object_written_in_every_scenario_is_valid(strategy, traffic):
    written, kinds = [], set()
    for scenario in scenarios(strategy, traffic).values():
        world = scenario()
        written += world.api.written
        kinds |= {o["kind"] for o in world.api.written}
    unique = list({repr(sorted(o.items())): o for o in written}.values())
    assert validate_all(unique) == len(unique) > 0
    expected = {"Deployment", "Service", "ConfigMap"} | ({"HTTPRoute"} if strategy == "canary" and traffic == "gateway" else set())
    assert kinds == expected


@pytest.mark.parametrize("traffic", ["gateway", "replicas"])
def test_the_rbac_manifests_are_valid(traffic):
    world = World("canary", traffic=traffic)
    documents = Manifests(world.service, world.env).rbac()
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding"]
    assert validate_all(documents) == 3
    assert {d["metadata"]["namespace"] for d in documents} == {"shop-prod"}


def deployment() -> dict:
    world = World("blue-green")
    return world.manifests.deployment("blue", "stable", "v1", "registry.example.com/shop:v1", 3)


def test_the_deployment_carries_the_catalog_resources_probes_and_labels():
    spec = deployment()["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {"name": "PORT", "value": "8080"} in container["env"]
    assert spec["imagePullSecrets"] == [{"name": "registry-login"}]
    assert deployment()["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shop", "app.kubernetes.io/managed-by": "deployflow",
        "deployflow.io/environment": "prod", "deployflow.io/colour": "blue"}


def test_the_httproute_is_exactly_the_catalog_gateway_and_weights():
    world = World("canary")
    route = world.manifests.httproute({"shop": 90, "shop-canary": 10})
    assert route["spec"] == {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "gateways"}],
        "hostnames": ["shop.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                   "backendRefs": [{"name": "shop", "port": 80, "weight": 90}, {"name": "shop-canary", "port": 80, "weight": 10}]}],
    }


@pytest.mark.parametrize("mutate,error", [
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="8080"), "containerPort"),
    (lambda d: d["spec"].update(replica=3), "'replica' was unexpected"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"].update(request={"cpu": "1"}), "'request' was unexpected"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].pop("port"), "'port' is a required"),
])
def test_validation_fails_when_one_field_is_wrong(mutate, error):
    manifest = deployment()
    validate(manifest)  # valid as built
    mutate(manifest)
    with pytest.raises(SchemaError, match=error):
        validate(manifest)


def test_gateway_validation_fails_on_a_bad_weight():
    route = World("canary").manifests.httproute({"shop": 100, "shop-canary": 0})
    validate(route)
    bad = copy.deepcopy(route)
    bad["spec"]["rules"][0]["backendRefs"][1]["weight"] = -5
    with pytest.raises(SchemaError, match="weight must be >= 0"):
        validate(bad)


def test_the_pinned_versions_are_ones_kubernetes_validate_ships():
    import kubernetes_validate.utils as utils

    assert {KUBERNETES_VERSION, NEWEST_VERSION} <= {utils.major_minor(v) for v in utils.all_versions()}
