"""The deployer image on the kubernetes path: the container KubernetesPodOperator runs (Debian's
python3-kubernetes, an older client than the host's) releases and rolls back through the FAKE
Kubernetes API server (tests/unit/fake_kubernetes.py) over real HTTP, as it would against a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import stack
from tests.unit.fake_kubernetes import FakeKubernetesAPI, FakeKubernetesServer

pytestmark = pytest.mark.e2e
NAMESPACE = "shop-e2e"


@pytest.fixture
def server() -> Iterator[FakeKubernetesServer]:
    served = FakeKubernetesServer(FakeKubernetesAPI(NAMESPACE))
    yield served
    served.close()


def run_step(docker_client, kube_dir: Path, service_yaml: str, step: str, version: str) -> tuple[int, dict]:
    container = docker_client.containers.run(
        stack.deployer_image(), [step, "--environment", "prod", "--version", version, "--image", f"registry.example.com/shop:{version}",
                                 "--result-file", "/kube/result.json"],
        network_mode="host", volumes={str(kube_dir): {"bind": "/kube", "mode": "rw"}}, detach=True,
        environment={"KUBECONFIG": "/kube/kubeconfig", "DEPLOYFLOW_SERVICE_YAML": service_yaml},
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
    finally:
        container.remove(force=True)
    return code, json.loads((kube_dir / "result.json").read_text())


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "rolling"])
def test_the_deployer_image_releases_and_rolls_back_on_kubernetes(docker_client, server, tmp_path, strategy):
    stack.ensure_images(docker_client)
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir()
    kube_dir.chmod(0o777)
    server.kubeconfig(kube_dir / "kubeconfig")
    service_yaml = yaml.safe_dump({"name": "shop", "port": 8080, "source": {"repo": "/srv/shop"}, "environments": {"prod": {
        "platform": "kubernetes", "strategy": strategy, "replicas": 2, "health": {"timeout_s": 2},
        "blue_green": {"scale_down_delay_s": 0}, "canary": {"pause_s": 0}, "analysis": {"enabled": False},
        "kubernetes": {"namespace": NAMESPACE}}}})
    for version in ("v1", "v2"):
        for step in ("prepare", "shift", "promote"):
            code, result = run_step(docker_client, kube_dir, service_yaml, step, version)
            assert code == 0 and result["ok"], result
    api = server.api
    live = api.selector("shop")["deployflow.io/colour"]
    assert api.image(f"shop-{live}") == "registry.example.com/shop:v2"
    api.unready.add("registry.example.com/shop:v3")
    assert run_step(docker_client, kube_dir, service_yaml, "prepare", "v3")[0] == 0
    code, result = run_step(docker_client, kube_dir, service_yaml, "shift", "v3")
    assert code == 1 and "not ready" in result["error"]
    code, result = run_step(docker_client, kube_dir, service_yaml, "rollback", "v3")
    assert code == 0 and result["rolled_back"] and result["to"] == "v2"
    assert api.selector("shop")["deployflow.io/colour"] == live
    assert api.image(f"shop-{live}") == "registry.example.com/shop:v2" and api.replicas(f"shop-{live}") == 2
