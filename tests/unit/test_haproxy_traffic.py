"""HAProxyTraffic: shares in percent as per-server weights, and when a route that goes waits for its requests."""

from __future__ import annotations

from deployflow.catalog import Health
from deployflow.platforms.base import InstanceSpec
from deployflow.platforms.docker import DockerWorkload
from deployflow.routers.base import Split
from deployflow.routers.haproxy_traffic import HAProxyTraffic
from tests.unit.fakes import FakeClock, FakePlatform, FakeRouter, FakeSession


def setup(sleeps: list[float]) -> tuple[HAProxyTraffic, FakeRouter, FakePlatform]:
    log: list = []
    platform, router = FakePlatform(log), FakeRouter(log)
    clock = FakeClock()
    workload = DockerWorkload(platform, service="shop", environment="prod", health_config=Health(), session=FakeSession(),
                              sleep=clock.sleep, clock=clock.monotonic)
    for colour, version in (("blue", "v1"), ("green", "v2")):
        for n in range(2):
            platform.start(InstanceSpec("shop", "prod", version, f"img:{version}", colour, n))
    return HAProxyTraffic(router, workload, sleep=sleeps.append), router, platform


def weights(router: FakeRouter) -> dict[str, int]:
    return {n: r.weight for n, r in sorted(router.current.items())}


def test_routes_a_step_just_took_traffic_from_wait_for_their_requests_before_they_go():
    sleeps: list[float] = []
    traffic, router, _ = setup(sleeps)
    traffic.set_weights(Split("blue", None, 100))
    traffic.set_weights(Split("green", "blue", 50))
    traffic.set_weights(Split("blue", None, 100))  # a restore: green's servers stop taking requests now
    assert weights(router) == {"blue-0": 1, "blue-1": 1, "green-0": 0, "green-1": 0}
    traffic.drain(["green"])
    assert sleeps == [1.0] and weights(router) == {"blue-0": 1, "blue-1": 1}


def test_routes_idle_since_an_earlier_step_go_at_once():
    sleeps: list[float] = []
    traffic, router, _ = setup(sleeps)
    traffic.set_weights(Split("blue", None, 100))
    traffic.set_weights(Split("green", "blue", 50))
    traffic.set_weights(Split("blue", None, 100))  # the failing step restored; the rollback step comes later:
    later = HAProxyTraffic(router, traffic.workload, sleep=sleeps.append)
    later.drain(["green"])
    assert sleeps == [], "no request can still be on a server without traffic since the last step"
    assert weights(router) == {"blue-0": 1, "blue-1": 1}


def test_routes_with_traffic_are_taken_to_zero_then_wait_then_go():
    sleeps: list[float] = []
    traffic, router, _ = setup(sleeps)
    traffic.set_weights(Split("green", "blue", 50))
    calls = len(router.calls)
    HAProxyTraffic(router, traffic.workload, sleep=sleeps.append).drain(["blue"])
    assert [{n: r.weight for n, r in c.items()} for c in router.calls[calls:]] == [
        {"blue-0": 0, "blue-1": 0, "green-0": 1, "green-1": 1}, {"green-0": 1, "green-1": 1}]
    assert sleeps == [1.0]
