"""The driver's seam to the official client, over real HTTP: Cluster with a real kubernetes ApiClient,
and the deployer CLI with a kubeconfig, both talking to the FAKE API server (tests/unit/fake_kubernetes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from deployflow.kubernetes.cluster import Cluster, ClusterError
from tests.unit.fake_kubernetes import FakeKubernetesAPI, FakeKubernetesServer
from tests.unit.world import NAMESPACE, World

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FakeKubernetesServer]:
    served = FakeKubernetesServer(FakeKubernetesAPI(NAMESPACE))
    yield served
    served.close()


def cluster_of(server: FakeKubernetesServer) -> Cluster:
    configuration = kubernetes.client.Configuration()
    configuration.host = server.url
    return Cluster.from_api_client(kubernetes.client.ApiClient(configuration), NAMESPACE)


@pytest.mark.parametrize("kind,path", [
    ("Deployment", "/apis/apps/v1/namespaces/shop-prod/deployments"),
    ("Service", "/api/v1/namespaces/shop-prod/services"),
    ("ConfigMap", "/api/v1/namespaces/shop-prod/configmaps"),
    ("HTTPRoute", "/apis/gateway.networking.k8s.io/v1/namespaces/shop-prod/httproutes"),
])
def test_apply_creates_then_replaces_through_the_api_paths(server, kind, path):
    m = World("canary").manifests
    manifest = {
        "Deployment": lambda: m.deployment("blue", "stable", "v1", "registry.example.com/shop:v1", 2),
        "Service": lambda: m.service_object("shop", m.selector("blue")),
        "ConfigMap": lambda: m.record({"version": "v1"}),
        "HTTPRoute": lambda: m.httproute({"shop": 100}),
    }[kind]()
    cluster = cluster_of(server)
    assert cluster.get(kind, "nothing") is None
    created = cluster.apply(manifest)
    assert created["metadata"]["name"] == manifest["metadata"]["name"]
    changed = {**manifest, "metadata": {**manifest["metadata"], "labels": {**manifest["metadata"]["labels"], "team": "shop"}}}
    replaced = cluster.apply(changed)
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    name = manifest["metadata"]["name"]
    assert server.requests == [("GET", f"{path}/nothing"), ("GET", f"{path}/{name}"), ("POST", path),
                               ("GET", f"{path}/{name}"), ("PUT", f"{path}/{name}")]
    again = cluster.apply(changed)
    assert again["metadata"]["resourceVersion"] == replaced["metadata"]["resourceVersion"], "nothing to change: not written"
    assert server.requests[5:] == [("GET", f"{path}/{name}")]


def test_apply_writes_back_what_someone_else_changed_and_what_the_deployer_dropped(server):
    m = World("blue-green").manifests
    cluster = cluster_of(server)
    cluster.apply(m.deployment("blue", "stable", "v1", "registry.example.com/shop:v1", 2))
    server.api.objects[("Deployment", "shop-blue")]["spec"]["replicas"] = 5  # kubectl scale, say
    assert cluster.apply(m.deployment("blue", "stable", "v1", "registry.example.com/shop:v1", 2))["spec"]["replicas"] == 2
    with_secret = m.deployment("blue", "stable", "v1", "registry.example.com/shop:v1", 2)
    without = {**with_secret, "spec": {**with_secret["spec"], "minReadySeconds": 0}}
    cluster.apply(without)
    assert cluster.apply(with_secret)["spec"].get("minReadySeconds") is None, "a field dropped since is removed"
    puts = [r for r in server.requests if r[0] == "PUT"]
    assert len(puts) == 3


def test_a_service_keeps_its_cluster_ip_across_replaces(server):
    m = World("blue-green").manifests
    cluster = cluster_of(server)
    cluster.apply(m.service_object("shop", m.selector("blue")))
    switched = cluster.apply(m.service_object("shop", m.selector("green")))
    assert switched["spec"]["clusterIP"] == "192.0.2.10" and switched["spec"]["selector"]["deployflow.io/colour"] == "green"


def test_a_refused_write_names_the_object_and_the_reason(server):
    m = World("blue-green").manifests
    cluster = cluster_of(server)
    cluster.apply(m.deployment("blue", "stable", "v1", "img:v1", 1))
    changed = m.deployment("blue", "stable", "v1", "img:v1", 1)
    changed["spec"]["selector"]["matchLabels"]["extra"] = "x"
    with pytest.raises(ClusterError, match="could not write Deployment shop-prod/shop-blue: 422 .*selector.*immutable"):
        cluster.apply(changed)


def test_delete_says_whether_there_was_something(server):
    m = World("blue-green").manifests
    cluster = cluster_of(server)
    cluster.apply(m.deployment("blue", "stable", "v1", "img:v1", 1))
    assert cluster.delete("Deployment", "shop-blue") is True
    assert cluster.delete("Deployment", "shop-blue") is False


def deployer(step: str, version: str, kubeconfig: Path, tmp_path: Path, service_yaml: str) -> tuple[int, dict | None, str]:
    result_file = tmp_path / f"{step}-{version}.json"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "DEPLOYFLOW_SERVICE_YAML": service_yaml,
           "PYTHONPATH": str(ROOT / "plugins")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "deployflow.deployer", step, "--environment", "prod", "--version", version,
         "--image", f"registry.example.com/shop:{version}", "--result-file", str(result_file)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return done.returncode, result, done.stderr


def test_the_deployer_cli_releases_to_a_cluster_through_its_kubeconfig(server, tmp_path):
    """The same CLI as on Docker, the catalog from $DEPLOYFLOW_SERVICE_YAML, the result in --result-file
    (where KubernetesPodOperator's sidecar reads it)."""
    service = {"name": "shop", "port": 8080, "source": {"repo": "/srv/shop"}, "environments": {"prod": {
        "platform": "kubernetes", "strategy": "blue-green", "replicas": 2, "blue_green": {"scale_down_delay_s": 0},
        "health": {"timeout_s": 2},
        # Off: the watch probes the in-cluster address, which the FAKE API server's cluster does not have.
        "post_promotion": {"enabled": False},
        "kubernetes": {"namespace": NAMESPACE}}}}
    kubeconfig = server.kubeconfig(tmp_path / "kubeconfig")
    text = yaml.safe_dump(service)
    for version in ("v1", "v2"):
        for step in ("prepare", "shift", "promote"):
            code, result, stderr = deployer(step, version, kubeconfig, tmp_path, text)
            assert code == 0 and result["ok"], stderr
    api = server.api
    assert api.selector("shop")["deployflow.io/colour"] == "green"
    assert (api.replicas("shop-green"), api.replicas("shop-blue")) == (2, 0)
    api.unready.add("registry.example.com/shop:v3")
    code, result, _ = deployer("prepare", "v3", kubeconfig, tmp_path, text)
    assert code == 0 and result["instances"] == ["http://shop-preview.shop-prod.svc.cluster.local"]
    code, result, stderr = deployer("shift", "v3", kubeconfig, tmp_path, text)
    assert code == 1 and not result["ok"] and "shop-blue not ready" in result["error"], stderr
    code, result, _ = deployer("rollback", "v3", kubeconfig, tmp_path, text)
    assert code == 0 and result["rolled_back"] and result["to"] == "v2"
    assert api.selector("shop")["deployflow.io/colour"] == "green" and api.replicas("shop-blue") == 0


def test_the_deployer_prints_the_rbac_of_a_kubernetes_environment(tmp_path):
    catalog = ROOT / "include/k8s/services/sample-app.yaml"
    done = subprocess.run([sys.executable, "-m", "deployflow.deployer", "rbac", "--service-file", str(catalog),
                           "--environment", "staging"], env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all(done.stdout))
    assert [(d["kind"], d["metadata"]["namespace"]) for d in documents] == [
        ("ServiceAccount", "sample-app-staging"), ("Role", "sample-app-staging"), ("RoleBinding", "sample-app-staging")]
    wrong = subprocess.run([sys.executable, "-m", "deployflow.deployer", "rbac", "--service-file",
                            str(ROOT / "include/services/sample-app.yaml"), "--environment", "prod"],
                           env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")}, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "'prod' is not a kubernetes environment of sample-app; valid values are none" in wrong.stderr


def test_a_write_that_races_another_writer_is_redone_on_a_fresh_read():
    api = FakeKubernetesAPI(NAMESPACE)
    cluster = Cluster(namespace=NAMESPACE, apps=api.apps, core=api.core, custom=api.custom, serialize=api.serialize)
    m = World("blue-green").manifests
    cluster.apply(m.service_object("shop", m.selector("blue")))
    read, raced = api.read, []

    def read_then_someone_writes(kind, name):
        obj = read(kind, name)
        if not raced:  # another writer updates the object between our read and our write
            raced.append(True)
            api._stamp(api.objects[(kind, name)])
        return obj

    api.read = read_then_someone_writes
    switched = cluster.apply(m.service_object("shop", m.selector("green")))
    assert switched["spec"]["selector"]["deployflow.io/colour"] == "green"
    assert [c[0] for c in api.calls[-4:]] == ["get", "update", "get", "update"], "a 409, then a fresh read and a write"


def test_the_deployer_without_kubernetes_credentials_says_so(tmp_path):
    code, result, stderr = deployer("prepare", "v1", tmp_path / "no-such-kubeconfig", tmp_path, yaml.safe_dump(
        {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"platform": "kubernetes"}}}))
    assert code == 2 and result is None
    assert "kubernetes: no credentials: not in a pod with a service account, and no usable kubeconfig" in stderr
