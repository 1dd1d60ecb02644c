from __future__ import annotations

import json
import os
import socketserver
import threading

import pytest

from deployflow.platforms.hardening import PROXY_LIMITS, hardening
from deployflow.routers import haproxy
from deployflow.routers.base import Route
from deployflow.routers.factory import router_class
from deployflow.routers.gateway import GatewayWeights
from deployflow.routers.haproxy_traffic import HAProxyTraffic
from deployflow.routers.replicas import ReplicaRatio
from deployflow.routers.selector import SelectorSwitch
from deployflow.routers.haproxy import (
    CHECK, AdminSocket, HAProxyRouter, RouterError, parse_servers_state, render_config, transition,
)
from tests.unit.fakes import (
    HEADER,
    BusyUntilCut,
    FakeAdminSocket,
    FakeClock,
    FakeDockerClient,
    image_id,
    state_line,
    state_of,
)


def r(name: str, port: int, weight: int, backup: bool = False) -> Route:
    return Route(name, "127.0.0.1", port, weight, backup=backup)


def routes_of(*items: Route) -> dict[str, Route]:
    return {i.name: i for i in items}


def adds(name: str, port: int, weight: int, backup: str = "") -> list[str]:
    return [
        f"add server app/{name} 127.0.0.1:{port} weight {weight}{backup} {CHECK}",
        f"enable health app/{name}",
        f"enable server app/{name}",
    ]


def removes(name: str) -> list[str]:
    return [f"set server app/{name} state maint", f"del server app/{name}"]


def test_render_config_lists_every_server_sorted_with_its_weight_and_backup_flag():
    text = render_config(
        name="shop-prod", front_port=18103, check_path="/ready", admin_socket="/state/t-shop-prod/admin.sock",
        routes=routes_of(r("g1", 20003, 50), r("b0.backup", 20000, 1, backup=True), r("g0", 20002, 150)),
    )
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("    server ")] == [
        f"    server b0.backup 127.0.0.1:20000 weight 1 backup {CHECK}",
        f"    server g0 127.0.0.1:20002 weight 150 {CHECK}",
        f"    server g1 127.0.0.1:20003 weight 50 {CHECK}",
    ]
    assert {
        "    stats socket /state/t-shop-prod/admin.sock mode 600 level admin", "frontend shop-prod",
        "    bind 127.0.0.1:18103", "    default_backend app", "backend app", "    balance roundrobin",
        "    option httpchk GET /ready", "    http-check expect status 200",
    } <= set(lines)
    empty = render_config(name="s-dev", front_port=18101, check_path="/health", admin_socket="/a.sock", routes={})
    assert empty.endswith("backend app\n    balance roundrobin\n    option httpchk GET /health\n    http-check expect status 200\n")


@pytest.mark.parametrize(
    ("current", "desired", "commands"),
    [
        ({}, {}, []),
        ({}, routes_of(r("g0", 20002, 0)), adds("g0", 20002, 0)),
        (routes_of(r("g0", 20002, 0)), routes_of(r("g0", 20002, 100)), ["set weight app/g0 100"]),
        (routes_of(r("g0", 20002, 100)), routes_of(r("g0", 20002, 100)), []),
        (routes_of(r("g0", 20002, 100), r("b0", 20000, 0)), routes_of(r("g0", 20002, 100)), removes("b0")),
        # an address change replaces the server under its name, with the desired weight
        (routes_of(r("g0", 20002, 100)), routes_of(r("g0", 20009, 40)), [*removes("g0"), *adds("g0", 20009, 40)]),
        # the backup flag cannot change at run time either: replaced too
        (routes_of(r("g0", 20002, 1)), routes_of(r("g0", 20002, 1, backup=True)),
         [*removes("g0"), *adds("g0", 20002, 1, " backup")]),
        # a status read back from HAProxy is not a change
        ({"g0": Route("g0", "127.0.0.1", 20002, 5, "DOWN")}, routes_of(r("g0", 20002, 5)), []),
    ],
)
def test_transition_commands(current, desired, commands):
    assert transition(current, desired) == commands


def test_transition_blue_green_switch_adds_and_reweighs_before_it_removes():
    current = routes_of(r("b0", 20000, 100), r("b1", 20001, 100), r("g0", 20002, 0), r("g1", 20003, 0), r("x", 20005, 9))
    desired = routes_of(
        r("g0", 20002, 100), r("g1", 20003, 100), r("b0.backup", 20000, 1, backup=True),
        r("b1.backup", 20001, 1, backup=True), r("x", 20006, 9),
    )
    assert transition(current, desired) == [
        *removes("x"),
        *adds("b0.backup", 20000, 1, " backup"), *adds("b1.backup", 20001, 1, " backup"), *adds("x", 20006, 9),
        "set weight app/g0 100", "set weight app/g1 100",
        *removes("b0"), *removes("b1"),
    ]


def test_parse_servers_state_reads_app_servers_only():
    text = (
        HEADER + state_line(1, "blue-0", 20000, 100) + state_line(2, "blue-0.backup", 20000, 1)
        + state_line(3, "green-0", 20001, 0, op=0) + state_line(4, "green-1", 20002, 100, op=1)
        + state_line(5, "green-2", 20003, 100, op=3) + state_line(1, "other", 30000, 100, backend="stats") + "\n"
    )
    assert parse_servers_state(text) == {n: Route(n, "127.0.0.1", *rest) for n, *rest in [
        ("blue-0", 20000, 100, "UP"), ("blue-0.backup", 20000, 1, "UP", True), ("green-0", 20001, 0, "DOWN"),
        ("green-1", 20002, 100, "STARTING"), ("green-2", 20003, 100, "STOPPING"),
    ]}
    assert parse_servers_state(HEADER) == {}


@pytest.mark.parametrize(
    ("admin", "status"),
    [(0x00, "UP"), (0x01, "MAINT"), (0x02, "MAINT"), (0x04, "MAINT"), (0x20, "MAINT"), (0x40, "MAINT"),
     (0x08, "UP"), (0x10, "UP"), (0x09, "MAINT")],
)
def test_parse_servers_state_maintenance_bits(admin, status):
    text = HEADER + state_line(1, "g0", 20002, 100, op=2, admin=admin)
    assert parse_servers_state(text)["g0"].status == status


@pytest.fixture
def router(tmp_path):
    return HAProxyRouter(FakeDockerClient(), stack="t", service="shop", environment="prod", front_port=18103,
                         check_path="/ready", state_dir=tmp_path, image="deployflow/haproxy:test")


def test_set_routes_sends_the_transition_then_saves_the_routes(router, tmp_path):
    router.admin = FakeAdminSocket(state_of(routes_of(r("b0", 20000, 100), r("g0", 20002, 0))))
    desired = routes_of(r("g0", 20002, 100), r("b0.backup", 20000, 1, backup=True))
    router.set_routes(desired)
    assert router.admin.sent == [
        "show servers state app", *adds("b0.backup", 20000, 1, " backup"), "set weight app/g0 100", *removes("b0"),
    ]
    folder = tmp_path / "t-shop-prod"
    assert json.loads((folder / "routes.json").read_text()) == {
        "b0.backup": {"name": "b0.backup", "host": "127.0.0.1", "port": 20000, "weight": 1, "status": "unknown", "backup": True},
        "g0": {"name": "g0", "host": "127.0.0.1", "port": 20002, "weight": 100, "status": "unknown", "backup": False},
    }
    assert (folder / "haproxy.cfg").read_text() == render_config(
        name="shop-prod", front_port=18103, check_path="/ready", admin_socket=str(folder / "admin.sock"), routes=desired)
    assert router._saved() == desired


def test_set_routes_stops_at_a_refused_command_and_names_it(router, tmp_path):
    router.admin = FakeAdminSocket(answers={"set weight app/g0 100": ["No such server."]},
                                   state=state_of(routes_of(r("g0", 20002, 0), r("b0", 20000, 100))))
    with pytest.raises(RouterError) as error:
        router.set_routes(routes_of(r("g0", 20002, 100)))
    assert str(error.value) == "df-t-shop-prod-proxy: 'set weight app/g0 100' was refused: No such server."
    assert router.admin.sent[-1] == "set weight app/g0 100"
    assert not (tmp_path / "t-shop-prod" / "routes.json").exists()


def test_del_server_is_tried_again_while_the_server_still_has_connections(router, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(haproxy, "time", clock)
    still = "Server still has connections attached to it, cannot remove it."
    router.admin = FakeAdminSocket(answers={"del server app/b0": [still, still, "Server deleted."]})
    router._run("del server app/b0")
    assert router.admin.sent == ["del server app/b0"] * 3
    assert clock.sleeps == [0.1, 0.1]


def test_del_server_cuts_the_sessions_left_after_ten_seconds(router, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(haproxy, "time", clock)
    router.admin = BusyUntilCut()
    router._run("del server app/b0")
    assert router.admin.sent[-2:] == ["shutdown sessions server app/b0", "del server app/b0"]
    assert set(router.admin.sent[:-2]) == {"del server app/b0"} and len(router.admin.sent) > 50
    assert 10 <= clock.now <= 10.2
    # still busy even then: an error
    router.admin = FakeAdminSocket(answers={"del server app/b0": ["Server still has connections attached to it."]})
    with pytest.raises(RouterError, match="'del server app/b0' was refused: Server still has connections"):
        router._run("del server app/b0")


def test_save_replaces_both_files_atomically(router, tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(haproxy.os, "replace", lambda src, dst: (replaced.append((str(src), str(dst))), real_replace(src, dst)))
    router._save(routes_of(r("g0", 20002, 100)))
    folder = tmp_path / "t-shop-prod"
    assert replaced == [
        (str(folder / ".haproxy.cfg.tmp"), str(folder / "haproxy.cfg")),
        (str(folder / ".routes.json.tmp"), str(folder / "routes.json")),
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["haproxy.cfg", "routes.json"]


def test_ensure_starts_the_proxy_from_the_saved_routes(router, tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(haproxy, "time", clock)
    folder = tmp_path / "t-shop-prod"
    router._save(routes_of(r("g0", 20002, 100)))
    (folder / "admin.sock").write_text("stale")
    router.admin = FakeAdminSocket(down_for=2)
    router.ensure()
    assert router.client.calls == [("get", "df-t-shop-prod-proxy"), (
        "run", image_id("deployflow/haproxy:test"), ["-f", str(folder / "haproxy.cfg")], {
            "name": "df-t-shop-prod-proxy", "detach": True, "network_mode": "host",
            "volumes": {str(folder): {"bind": str(folder), "mode": "rw"}},
            "labels": {"io.deployflow.stack": "t", "io.deployflow.role": "proxy",
                       "io.deployflow.service": "shop", "io.deployflow.environment": "prod"},
            "restart_policy": {"Name": "unless-stopped"},
            **hardening(PROXY_LIMITS, user=f"{os.getuid()}:{os.getgid()}"),  # the owner of its directory: who made it
        })]
    assert not (folder / "admin.sock").exists()
    assert "    server g0 127.0.0.1:20002 weight 100 " + CHECK in (folder / "haproxy.cfg").read_text()
    assert router.admin.sent == ["show info"] * 3
    assert clock.sleeps == [0.1, 0.1]


@pytest.mark.parametrize(
    ("status", "calls"),
    [
        ("running", [("get", "df-t-shop-prod-proxy")]),
        ("exited", [("get", "df-t-shop-prod-proxy"), ("remove", "df-t-shop-prod-proxy"), ("run", image_id("deployflow/haproxy:test"))]),
    ],
)
def test_ensure_leaves_a_running_proxy_alone_and_replaces_a_stopped_one(router, status, calls):
    router.client.add("df-t-shop-prod-proxy", status=status)
    router.admin = FakeAdminSocket()
    router.ensure()
    assert [c[:2] for c in router.client.calls] == calls
    assert router.admin.sent == ([] if status == "running" else ["show info"])


def test_ensure_gives_up_when_the_admin_socket_never_answers(router, monkeypatch):
    monkeypatch.setattr(haproxy, "time", FakeClock())
    router.admin = FakeAdminSocket(down_for=10**6)
    with pytest.raises(RouterError, match="df-t-shop-prod-proxy: admin socket did not answer within 15 s"):
        router.ensure()


def test_remove_deletes_the_container_and_the_files(router, tmp_path):
    router.client.add("df-t-shop-prod-proxy")
    router._save({})
    router.remove()
    assert router.client.calls_of("remove") == [("remove", "df-t-shop-prod-proxy", True)]
    assert list((tmp_path / "t-shop-prod").iterdir()) == []
    router.remove()  # nothing left: still fine


def test_admin_socket_sends_one_command_per_connection(tmp_path):
    heard = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            heard.append(self.rfile.readline())
            self.wfile.write(b"Name: HAProxy\n\n")

    with socketserver.UnixStreamServer(str(tmp_path / "a.sock"), Handler) as server:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        answer = AdminSocket(str(tmp_path / "a.sock"), timeout=2).send("show info")
        server.shutdown()
    assert (heard, answer) == ([b"show info\n"], "Name: HAProxy")


def test_router_factory():
    assert router_class("haproxy") is HAProxyTraffic
    assert (router_class("selector"), router_class("gateway"), router_class("replicas")) == (SelectorSwitch, GatewayWeights, ReplicaRatio)
    with pytest.raises(ValueError, match="router 'nginx' is not known; valid values are 'haproxy', 'selector', 'gateway', 'replicas'"):
        router_class("nginx")
