"""The deployer's Role grants exactly what the driver calls: every (apiGroup, resource, verb) the FAKE
Kubernetes API saw over every scenario of every strategy, and nothing more."""

from __future__ import annotations

import pytest

from deployflow.kubernetes.manifests import Manifests
from tests.unit.world import World, scenarios


def granted(traffic: str) -> set[tuple[str, str, str]]:
    world = World("canary", traffic=traffic)
    role = next(d for d in Manifests(world.service, world.env).rbac() if d["kind"] == "Role")
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def used(traffic: str) -> set[tuple[str, str, str]]:
    calls = set()
    # A run's strategy may differ from the catalog's (the trigger form's override): the Role covers all three.
    for strategy in ("blue-green", "canary", "rolling"):
        for scenario in scenarios(strategy, traffic).values():
            calls |= scenario().api.permissions()
    return calls


@pytest.mark.parametrize("traffic", ["gateway", "replicas"])
def test_the_role_grants_exactly_what_the_driver_calls(traffic):
    assert used(traffic) == granted(traffic)


def test_without_gateway_api_the_role_grants_no_httproutes():
    assert not {p for p in granted("replicas") if p[1] == "httproutes"}
    assert {p for p in granted("gateway") if p[1] == "httproutes"} == {
        ("gateway.networking.k8s.io", "httproutes", v) for v in ("get", "create", "update")}


def test_the_role_is_namespaced_and_bound_to_the_deployer_service_account():
    world = World("blue-green")
    account, role, binding = Manifests(world.service, world.env).rbac()
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "shop-prod"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deployflow-deployer", "namespace": "shop-prod"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployflow-deployer"}
    assert not any("*" in v for rule in role["rules"] for v in (*rule["verbs"], *rule["resources"], *rule["apiGroups"]))
