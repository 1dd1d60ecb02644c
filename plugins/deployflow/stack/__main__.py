"""``python -m deployflow.stack up|down|images|password``: the embedded default stack (see the package)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import docker

import deployflow.stack
from deployflow.stack import ROOT
from deployflow.stack.containers import LOCAL_PROMETHEUS_PORT, containers_down, ensure_images, prometheus_up, registry_down, registry_up
from deployflow.stack.local import airflow_down, airflow_up
from deployflow.stack.secrets import admin_password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.stack", description=deployflow.stack.__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "images", "password"))
    parser.add_argument("--home", type=Path, default=ROOT / ".airflow", help="AIRFLOW_HOME of this stack")
    parser.add_argument("--port", type=int, default=8080, help="API server port (127.0.0.1)")
    # The registry is the host's, shared by every stack on it (make test's, a bench's, another checkout's): a stack's
    # down leaves it; `make clean` asks for it to go too (its volume, the images pushed, stays).
    parser.add_argument("--with-registry", action="store_true", help="down: remove the host's registry container too")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if args.command == "password":
        print(admin_password(home))
        return 0
    if args.command == "down":
        airflow_down(home)
        client = docker.from_env()
        containers_down(client, "local")
        if args.with_registry:
            registry_down(client)
        return 0
    client = docker.from_env()
    ensure_images(client)
    if args.command == "up":
        registry_up(client)
        prometheus_up(client, "local", ROOT / ".state", LOCAL_PROMETHEUS_PORT)
        airflow_up(home, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
