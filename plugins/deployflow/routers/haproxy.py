"""HAProxy as the router of a Docker host: one proxy container per service and environment.

Why the runtime API: weights and servers change through HAProxy's admin
socket, in the running process, so no request in flight or arriving is
dropped and the health-check state of every server is kept (a reload would
start a new worker that believes every server is up). The configuration file
is rewritten after every change as the durable copy that a restarted proxy
reads. Both are made by pure functions, asserted exactly in tests; the
socket is the only thing that talks to HAProxy.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
from docker.errors import NotFound

from deployflow.errors import DeployflowError
from deployflow.platforms.hardening import PROXY_LIMITS, hardening, owned_like, owner, pinned
from deployflow.routers.base import BACKUP_SUFFIX, Route
from deployflow.settings import DEFAULT_HAPROXY_IMAGE

BACKEND = "app"
CHECK = "check inter 500 fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
_OK_ANSWERS = ("", "New server registered.", "Server deleted.")
_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40  # forced, inherited, config, resolution, health maint
_OP_STATES = {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}


class RouterError(DeployflowError):
    """HAProxy refused a command; the message carries the command and its answer."""


def render_config(*, name: str, front_port: int, check_path: str, admin_socket: str, routes: Mapping[str, Route]) -> str:
    servers = "".join(
        f"    server {r.name} {r.host}:{r.port} weight {r.weight}{' backup' if r.backup else ''} {CHECK}\n"
        for r in sorted(routes.values(), key=lambda r: r.name)
    )
    return f"""\
# Written by deployflow. Routes change at run time through the admin socket;
# this file is their durable copy, read when the proxy (re)starts.
global
    stats socket {admin_socket} mode 600 level admin
    stats timeout 10s
    hard-stop-after 30s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    # A health check may take this long (without it: inter, 500 ms). A server
    # slow to answer on a starved host is not taken out for it; a dead one
    # still is at once (a refused connection: observe layer4).
    timeout check 2s
    # A request whose server vanished (crash, stop) is tried again, on
    # another server: the client never sees the failed attempt. Backup
    # servers (the old version, for a while after a switch) take over by
    # themselves when every other server is down.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503

frontend {name}
    bind 127.0.0.1:{front_port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET {check_path}
    http-check expect status 200
{servers}"""


def transition(current: Mapping[str, Route], desired: Mapping[str, Route]) -> list[str]:
    """Admin-socket commands that turn ``current`` into ``desired``.

    New servers first, then weights, then removals: at no point is there less
    capacity than at the start or the end. A server whose address changed is
    replaced (removed, then added again under its name).
    """
    moved = [n for n in sorted(desired) if n in current and _where(current[n]) != _where(desired[n])]
    added = [n for n in sorted(desired) if n not in current or n in moved]
    reweighed = [n for n in sorted(desired) if n in current and n not in moved and current[n].weight != desired[n].weight]
    gone = [n for n in sorted(current) if n not in desired]
    return [
        *(c for n in moved for c in _remove(n)),
        *(c for n in added for c in _add(desired[n])),
        *(f"set weight {BACKEND}/{n} {desired[n].weight}" for n in reweighed),
        *(c for n in gone for c in _remove(n)),
    ]


def _where(route: Route) -> tuple[str, int, bool]:
    return (route.host, route.port, route.backup)


def _add(route: Route) -> list[str]:
    server = f"{BACKEND}/{route.name}"
    backup = " backup" if route.backup else ""
    return [
        f"add server {server} {route.host}:{route.port} weight {route.weight}{backup} {CHECK}",
        f"enable health {server}",
        f"enable server {server}",
    ]


def _remove(name: str) -> list[str]:
    server = f"{BACKEND}/{name}"
    # In-flight requests finish on a server in maintenance; del waits for them (see _run).
    return [f"set server {server} state maint", f"del server {server}"]


def parse_servers_state(text: str) -> dict[str, Route]:
    """Routes from ``show servers state app`` (format version 1)."""
    routes = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#") or fields[1] != BACKEND:
            continue
        admin = int(fields[6])
        status = "MAINT" if admin & _MAINT_BITS else _OP_STATES.get(fields[5], fields[5])
        name = fields[3]
        routes[name] = Route(name, fields[4], int(fields[18]), int(fields[7]), status, backup=name.endswith(BACKUP_SUFFIX))
    return routes


# What a release cost its users, as the proxy counts it (``show stat``): answers of 5xx to clients (HAProxy's own
# 502/503/504 included) and responses the server cut off, on the front; connection errors, retries and
# redispatches on the way to the servers (requests the client never saw fail).
COUNTERS = {"FRONTEND": ("req_tot", "hrsp_5xx"), "BACKEND": ("srv_abrt", "econ", "eresp", "wretr", "wredis")}


def parse_stat(text: str, frontend: str) -> dict[str, int]:
    """The counters of ``show stat``'s CSV that say what clients went through: ``frontend_req_tot`` ..."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RouterError(f"'show stat' answered {text[:80]!r}, not its CSV")
    header = lines[0][2:].split(",")
    counters: dict[str, int] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        kind = row.get("svname")
        if (kind, row.get("pxname")) not in (("FRONTEND", frontend), ("BACKEND", BACKEND)):
            continue
        for field in COUNTERS[kind]:
            counters[f"{kind.lower()}_{field}"] = int(row.get(field) or 0)
    return counters


class AdminSocket:
    """HAProxy's runtime API over its unix socket: one command per connection."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def send(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode().strip()


class HAProxyRouter:
    """The proxy container ``df-<stack>-<service>-<environment>-proxy`` and its routes."""

    def __init__(
        self, client: docker.DockerClient, *, stack: str, service: str, environment: str, front_port: int,
        check_path: str, state_dir: Path, image: str = DEFAULT_HAPROXY_IMAGE,
    ) -> None:
        self.client = client
        self.stack = stack
        self.service = service
        self.environment = environment
        self.front_port = front_port
        self.check_path = check_path
        self.dir = Path(state_dir) / f"{stack}-{service}-{environment}"
        self.image = image
        self.admin = AdminSocket(str(self.dir / "admin.sock"))

    @property
    def container_name(self) -> str:
        return f"df-{self.stack}-{self.service}-{self.environment}-proxy"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    def _saved(self) -> dict[str, Route]:
        path = self.dir / "routes.json"
        if not path.exists():
            return {}
        return {name: Route(**data) for name, data in json.loads(path.read_text()).items()}

    def _save(self, routes: Mapping[str, Route]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = render_config(
            name=self.frontend, front_port=self.front_port, check_path=self.check_path,
            admin_socket=str(self.dir / "admin.sock"), routes=routes,
        )
        for name, text in (("haproxy.cfg", config), ("routes.json", json.dumps({n: vars(r) | {"status": "unknown"} for n, r in routes.items()}, indent=1))):
            tmp = self.dir / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.dir / name)  # atomic: a restart never reads half a file
        owned_like(self.dir.parent, [self.dir, self.dir / "haproxy.cfg", self.dir / "routes.json"])

    def run_kwargs(self, *, image: str, user: str) -> dict[str, Any]:
        """Arguments of ``containers.run`` for the proxy, from ``image`` (pinned) as ``user``: the owner of its
        directory, the only one it sees (its configuration, its admin socket), which the deployer made."""
        return {
            "image": image,
            "command": ["-f", str(self.dir / "haproxy.cfg")],
            "name": self.container_name,
            "detach": True,
            "network_mode": "host",
            "volumes": {str(self.dir): {"bind": str(self.dir), "mode": "rw"}},
            "labels": {"io.deployflow.stack": self.stack, "io.deployflow.role": "proxy",
                       "io.deployflow.service": self.service, "io.deployflow.environment": self.environment},
            "restart_policy": {"Name": "unless-stopped"},
            **hardening(PROXY_LIMITS, user=user),
        }

    def ensure(self) -> None:
        try:
            container = self.client.containers.get(self.container_name)
            if container.status == "running":
                return
            container.remove(force=True)
        except NotFound:
            pass
        self._save(self._saved())
        (self.dir / "admin.sock").unlink(missing_ok=True)
        self.client.containers.run(**self.run_kwargs(image=pinned(self.client.api, self.image), user=owner(self.dir)))
        deadline = time.monotonic() + 15
        while True:
            try:
                self.admin.send("show info")
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RouterError(f"{self.container_name}: admin socket did not answer within 15 s ({exc})") from None
                time.sleep(0.1)

    def routes(self) -> dict[str, Route]:
        return parse_servers_state(self.admin.send(f"show servers state {BACKEND}"))

    def counters(self) -> dict[str, int]:
        """The proxy's counters since it started (a restarted proxy starts again from 0)."""
        return parse_stat(self.admin.send("show stat"), self.frontend)

    @property
    def frontend(self) -> str:
        return f"{self.service}-{self.environment}"

    def set_routes(self, routes: Mapping[str, Route]) -> None:
        for command in transition(self.routes(), routes):
            self._run(command)
        self._save(routes)

    def _run(self, command: str) -> None:
        answer = self.admin.send(command)
        if command.startswith("del server"):
            # A server still serving a request cannot go: give it time, then cut what is left.
            deadline = time.monotonic() + 10
            while "still" in answer and time.monotonic() < deadline:
                time.sleep(0.1)
                answer = self.admin.send(command)
            if "still" in answer:
                self.admin.send(f"shutdown sessions server {command.split()[-1]}")
                answer = self.admin.send(command)
        if answer not in _OK_ANSWERS:
            raise RouterError(f"{self.container_name}: {command!r} was refused: {answer}")

    def remove(self) -> None:
        try:
            self.client.containers.get(self.container_name).remove(force=True)
        except NotFound:
            pass
        for name in ("haproxy.cfg", "routes.json", "admin.sock"):
            (self.dir / name).unlink(missing_ok=True)
