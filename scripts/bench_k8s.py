"""make bench-k8s: what each deploy step costs on Kubernetes, in API calls and time, without a cluster.

The kubernetes driver runs with the official client over real HTTP against
the FAKE Kubernetes API server of the tests (tests/unit/fake_kubernetes.py;
pods are ready at once, so this measures the driver and the API round trips,
not Kubernetes starting pods). For each strategy: a first deploy, a second
release (prepare, shift, promote), and a third that rolls back after shift,
with the API calls each step makes (writes among them), the calls rollback
makes before the main Service and route point at the old version again, and
the wall time per step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

import kubernetes  # noqa: E402

from deployflow.kubernetes.cluster import Cluster  # noqa: E402
from tests.unit.fake_kubernetes import FakeKubernetesAPI, FakeKubernetesServer  # noqa: E402
from tests.unit.world import NAMESPACE, World  # noqa: E402

CASES = [("blue-green", "gateway"), ("canary", "gateway"), ("canary", "replicas"), ("rolling", "gateway")]


def world_live(api: FakeKubernetesAPI) -> str:
    return api.selector("shop")["deployflow.io/colour"]


def main() -> int:
    print(f"{'strategy':11s} {'traffic':8s} {'step':9s} {'calls':>5s} {'writes':>6s} {'ms':>7s}")
    for strategy, traffic in CASES:
        world = World(strategy, traffic=traffic, analysis=True)
        server = FakeKubernetesServer(FakeKubernetesAPI(NAMESPACE))
        configuration = kubernetes.client.Configuration()
        configuration.host = server.url
        cluster = Cluster.from_api_client(kubernetes.client.ApiClient(configuration), NAMESPACE)
        api = server.api
        for version, steps in (("v1", ("prepare", "shift", "promote")), ("v2", ("prepare", "shift", "promote")),
                               ("v3", ("prepare", "shift", "rollback"))):
            for step in steps:
                before, started = len(api.calls), time.perf_counter()
                getattr(world.rollout(version, cluster=cluster), step)()
                elapsed_ms = 1000 * (time.perf_counter() - started)
                calls = api.calls[before:]
                writes = [c for c in calls if c[0] != "get"]
                label = f"{step}" if version != "v1" else f"{step}*"
                if version == "v2" or step == "rollback" or version == "v1" and step == "prepare":
                    print(f"{strategy:11s} {traffic:8s} {label:9s} {len(calls):5d} {len(writes):6d} {elapsed_ms:7.1f}")
                if step == "rollback":
                    restores = ("services", "httproutes") if strategy != "rolling" else ("deployments",)
                    back = next(i for i, c in enumerate(calls) if c[0] == "update" and c[2] in restores
                                and c[3] in ("shop", f"shop-{world_live(api)}"))
                    print(f"{'':21s}rollback: traffic back on v2 at call {back + 1} of {len(calls)}")
        server.close()
    print("* a first deploy (nothing to protect: straight behind the main Service)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
