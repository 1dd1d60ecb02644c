"""A second Docker engine on this machine, standing for an environment's own Docker host, for the tests and
benchmarks; and a restart of the first engine (``restart_engine``), a fault they inject.

    python -m tests.engines up NAME      (prints its socket: /run/deployflow-NAME.sock)
    python -m tests.engines down NAME
    python -m tests.engines images NAME  (copies the stack's deployer and proxy images into it)

It is a dockerd of its own: its socket, data root, exec root (and so its own containerd), pidfile and
configuration file, no bridge, no iptables and no TCP listener; its containers use host networking on
the one loopback both engines share, so their ports must not clash with the first engine's (each
environment has its own front port; the instances' ports are taken from the labels of the containers of
the engine they run on). Idempotent: ``up`` returns the running engine's socket; ``down`` of a stopped
engine does nothing. Needs root, as dockerd does.

Images: the service's reach it through the stack's registry (127.0.0.1:5000, where the build pushes and
from which the prepare task pulls, with the registry's credentials, a version the engine does not have). The deployer's and the proxy's are copied
with ``docker save | docker load`` (``copy_images``): their names are the ones the first engine uses
(``deployflow/deployer:<hash>``, ``deployflow/haproxy:2``), and the stack refers to them by those names on
every engine. On real separate hosts, push them to the registry instead and name them by it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import docker

from deployflow.stack.processes import _reap

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def say(message: str) -> None:
    print(f"[engines] {message}", flush=True)


def paths(name: str) -> dict[str, Path]:
    """Where the engine ``name`` keeps its socket, data, runtime state, pid, configuration and log."""
    if not name or set(name) - NAME_CHARS or len(name) > 20:
        raise ValueError(f"engine name {name!r} is not valid; use 1 to 20 lower-case letters, digits and '-'")
    return {
        "socket": Path(f"/run/deployflow-{name}.sock"),
        "data_root": Path(f"/var/lib/deployflow-{name}"),
        "exec_root": Path(f"/run/deployflow-{name}"),
        "pidfile": Path(f"/run/deployflow-{name}.pid"),
        "config": Path(f"/run/deployflow-{name}.json"),
        "log": Path(f"/tmp/deployflow-dockerd-{name}.log"),
    }


def dockerd_command(name: str) -> list[str]:
    """The engine's command line: nothing shared with the first engine, no network of its own, no TCP."""
    p = paths(name)
    return [
        "dockerd", f"--host=unix://{p['socket']}", f"--data-root={p['data_root']}", f"--exec-root={p['exec_root']}",
        f"--pidfile={p['pidfile']}", f"--config-file={p['config']}",
        "--bridge=none", "--iptables=false", "--ip6tables=false",
    ]


def client(name: str, timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{paths(name)['socket']}", timeout=timeout)


def _answers(name: str) -> bool:
    try:
        return bool(client(name, timeout=5).ping())
    except Exception:  # noqa: BLE001 - any error means: not (yet) answering
        return False


def running_pid(name: str) -> int | None:
    """The engine's dockerd, from its pidfile, if that process is alive."""
    try:
        pid = int(paths(name)["pidfile"].read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def engine_up(name: str, timeout: float = 120) -> str:
    """Start the engine ``name`` unless it runs; its socket path once it answers."""
    p = paths(name)
    if running_pid(name) is not None and _answers(name):
        return str(p["socket"])
    if running_pid(name) is None:
        p["pidfile"].unlink(missing_ok=True)  # a stale one: dockerd refuses to start over it
        p["socket"].unlink(missing_ok=True)
        for directory in (p["data_root"], p["exec_root"]):
            directory.mkdir(parents=True, exist_ok=True)
        p["config"].write_text(json.dumps({}))  # not /etc/docker/daemon.json: the first engine's settings stay its own
        log = open(p["log"], "ab")  # noqa: SIM115 - the engine keeps writing to it
        subprocess.Popen(dockerd_command(name), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        say(f"started dockerd {name} (log {p['log']})")
    started = time.monotonic()
    while not _answers(name):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"engine {name} did not answer on {p['socket']} within {timeout:.0f} s; see {p['log']}")
        time.sleep(0.5)
    say(f"engine {name} answers on {p['socket']}")
    return str(p["socket"])


def engine_down(name: str, timeout: float = 60) -> None:
    """Stop the engine ``name`` (its containers stop with it; its data root stays, images included)."""
    pid = running_pid(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    while running_pid(name) is not None:
        try:
            os.waitpid(pid, os.WNOHANG)  # an engine this process started stays a zombie until waited for
        except ChildProcessError:
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"dockerd {name} (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.5)
    say(f"stopped engine {name}")


def copy_images(name: str, images: Iterable[str]) -> list[str]:
    """Copy each image the engine ``name`` lacks from the first engine (``docker save | docker load``); the copied.
    Other tags of the same repository go: the deployer's tag changes with its code, and each copy is a gigabyte."""
    target = client(name)
    copied = []
    for image in images:
        repository = image.rsplit(":", 1)[0]
        for old in target.images.list(name=repository):
            for tag in old.tags:
                if tag != image:
                    target.images.remove(tag)
        try:
            target.images.get(image)
            continue
        except docker.errors.ImageNotFound:
            pass
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", f"unix://{paths(name)['socket']}", "load", "-q"], stdin=save.stdout,
                              capture_output=True, text=True)
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"could not copy {image} into engine {name}: {load.stderr.strip()}")
        copied.append(image)
        say(f"copied {image} into engine {name}")
    return copied


def stack_images() -> list[str]:
    """What a Docker host needs besides the service's image: the deployer's and the proxy's."""
    from deployflow.stack.containers import HAPROXY_IMAGE, deployer_image

    return [deployer_image(), HAPROXY_IMAGE]


# ---- the first engine ---------------------------------------------------------------

DOCKERD_LOG = "/tmp/deployflow-dockerd.log"  # where .ci/run starts the engine's log


def restart_engine(client: docker.DockerClient, timeout: float = 120) -> float:
    """Stop the Docker engine and start it again; the seconds until it answered again.

    Its containers stop with it. Where systemd runs the engine, systemd restarts it; otherwise the one
    dockerd process is stopped and started again with the command line it had (CI's is
    ``dockerd --bridge=none ...``, from .ci/run). RuntimeError when it cannot be done or the engine
    does not answer within ``timeout``.
    """
    started = time.monotonic()
    systemd = shutil.which("systemctl") and subprocess.run(["systemctl", "is-active", "--quiet", "docker"],
                                                           stderr=subprocess.DEVNULL).returncode == 0
    if systemd:
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=timeout)
    else:
        found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
        if len(found) != 1:
            raise RuntimeError(f"cannot restart the Docker engine: expected one dockerd process, found {found or 'none'}")
        pid = int(found[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGTERM)
        while Path(f"/proc/{pid}").exists():
            _reap(pid)  # an engine this process started earlier stays a zombie until it is waited for
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"dockerd (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.5)
        log = open(DOCKERD_LOG, "ab")  # noqa: SIM115 - the new engine keeps writing to it
        subprocess.Popen([a.decode() for a in argv], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    while True:
        try:
            client.ping()
            return time.monotonic() - started
        except Exception:  # noqa: BLE001 - any error means: not back yet
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the Docker engine did not answer within {timeout:.0f} s of its restart") from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "images"))
    parser.add_argument("name")
    args = parser.parse_args(argv)
    if args.action == "up":
        print(engine_up(args.name))
    elif args.action == "down":
        engine_down(args.name)
    else:
        copy_images(args.name, stack_images())
    return 0


if __name__ == "__main__":
    sys.exit(main())
