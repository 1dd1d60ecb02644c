"""The deployer image on the kubernetes path: the container KubernetesPodOperator runs (Debian's
python3-kubernetes, an older client than the host's) releases and rolls back through the FAKE
Kubernetes API server (tests/unit/fake_kubernetes.py) over real HTTP, as it would against a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deployflow.platforms.hardening import owner
from deployflow.stack.containers import deployer_image, ensure_images
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
        deployer_image(), [step, "--environment", "prod", "--version", version, "--image", f"registry.example.com/shop:{version}",
                           "--result-file", "/kube/result.json"],
        network_mode="host", volumes={str(kube_dir): {"bind": "/kube", "mode": "rw"}}, detach=True,
        user=owner(kube_dir),  # the image's user is not root; the result goes into this test's directory
        environment={"KUBECONFIG": "/kube/kubeconfig", "DEPLOYFLOW_SERVICE_YAML": service_yaml},
    )
    try:
        code = container.wait(timeout=120)["StatusCode"]
    finally:
        container.remove(force=True)
    return code, json.loads((kube_dir / "result.json").read_text())


@pytest.mark.parametrize("strategy", ["blue-green", "canary", "rolling"])
def test_the_deployer_image_releases_and_rolls_back_on_kubernetes(docker_client, server, tmp_path, strategy):
    ensure_images(docker_client)
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir()
    kube_dir.chmod(0o777)
    server.kubeconfig(kube_dir / "kubeconfig")
    service_yaml = yaml.safe_dump({"name": "shop", "port": 8080, "source": {"repo": "/srv/shop"}, "environments": {"prod": {
        "platform": "kubernetes", "strategy": strategy, "replicas": 2, "health": {"timeout_s": 2},
        "blue_green": {"scale_down_delay_s": 0}, "canary": {"pause_s": 0}, "analysis": {"enabled": False},
        # Off: the watch probes the in-cluster address, which the FAKE API server's cluster does not have
        # (the watch on Kubernetes: tests/unit/test_post_promotion.py; its judge in this image: below).
        "post_promotion": {"enabled": False},
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


JUDGE = """
from deployflow.analysis.comparison import VersionComparison
from deployflow.catalog import parse_service
from deployflow.metrics.base import Series

def codes(ok, bad):
    return [Series({"code": "200"}, [(0, ok)]), Series({"code": "500"}, [(0, bad)])]

def buckets(fast, slow):
    return [Series({"le": "0.005"}, [(0, fast)]), Series({"le": "0.5"}, [(0, fast)]), Series({"le": "1.0"}, [(0, fast + slow)]),
            Series({"le": "+Inf"}, [(0, fast + slow)])]

class Provider:
    def query_range(self, query, start, end, step):
        new = 'version="v2"' in query
        if "by (code)" in query:
            return codes(2000, 0)
        return buckets(1900, 100) if new else buckets(2000, 0)

env = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18000}}}).environments["prod"]
judge = VersionComparison(Provider(), service="shop", environment="prod", config=env.analysis, watch=env.post_promotion,
                          old="v1", new="v2")
judge.begin()
print(judge.judge(1).failure)
"""


def test_the_deployer_image_judges_the_watch_with_its_own_numpy_and_scipy(docker_client):
    # promote's post-promotion watch runs the judge in the deployer image (Debian's numpy and scipy, older than
    # the host's): 5 % of requests moved to a slow bucket must fail it there too.
    ensure_images(docker_client)
    out = docker_client.containers.run(deployer_image(), ["-c", JUDGE], entrypoint="python3", network_mode="host",
                                 remove=True).decode()
    assert "latency" in out and "tail" in out, out
