"""The scale-out setup on one machine: PostgreSQL, Redis, Airflow's processes, two Celery workers and two
triggerers (one per queue), each process with a home and a log directory of its own, as separate hosts
would have them.

    python -m deployflow.stack.celery up   [--top .celery] [--port 27080]
    python -m deployflow.stack.celery down [--top .celery]
    python -m deployflow.stack.celery password [--top .celery]   (the admin password: for a terminal, not a log)

The same DAGs as the embedded default (deployflow.stack, whose helpers this reuses), with CeleryExecutor:
worker-a and triggerer-a take the default queue, worker-b and triggerer-b the queue ``host-b`` (the second
Docker host's). Ports of 27xxx, 127.0.0.1 only. The registry's credentials reach the workers as the Airflow
connection ``deployflow_registry`` (in the metadata database, encrypted), as workers on other hosts need.
Secrets (the JWT key, the Fernet key, the admin password, the database and broker URLs with their generated
passwords) are 0600 files of ``<top>/secrets``; each process gets an
``AIRFLOW__..._CMD`` pointer to only those it needs (``SECRETS_OF``), never a value in argv or its
environment. Task logs: Airflow's log servers bind every interface (``host=""`` in
airflow/utils/serve_logs/core.py, the Celery worker's included), so every process runs with
``--skip-serve-logs`` and writes task logs to ``<top>/task-logs``, which the API server reads: what remote
logging or a shared volume is for real hosts. Each process's own output is in ``<top>/<name>/logs``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker

from deployflow.pipeline.registry import REGISTRY_CONNECTION, RegistryCredentials
from deployflow.stack import ROOT
from deployflow.stack.celery_services import Servers, postgres_down, redis_down, servers_up
from deployflow.stack.containers import containers_down, ensure_images, prometheus_up, registry_up
from deployflow.stack.local import EXPORTER, airflow_env
from deployflow.stack.processes import _alive, _pid_file, _reap, _running, _wait_http, say, start_process, stop_process, wait_for_airflow
from deployflow.stack.secrets import (
    FERNET_KEY,
    JWT_SECRET,
    PRIVATE_UMASK,
    StackSecret,
    _open_private,
    admin_password,
    ensure_secrets,
    password_file,
    private_dir,
    secret_command,
)

TOP = ROOT / ".celery"
NAME = "celery"  # DEPLOYFLOW_STACK: the containers' label and the proxies' names
PORT, POSTGRES_PORT, REDIS_PORT = 27080, 27432, 27379
PROMETHEUS_PORT, EXPORTER_PORT = 27090, 27468
TRIGGER_LOG_PORT = 27795
HEARTBEAT_TIMEOUT_S = 30  # a task whose worker died is failed (and retried) this long after its last heartbeat

# name -> (queue, concurrency, the log server port it would serve on: distinct, though skipped here)
WORKERS = {"worker-a": ("default", 6, 27793), "worker-b": ("host-b", 3, 27794)}
# name -> the queue whose triggers it runs ([triggerer] queues_enabled): a Docker host's deferred health
# probes must run on that host (its instances listen on its 127.0.0.1), as its deploy steps do.
TRIGGERERS = {"triggerer-a": "default", "triggerer-b": "host-b"}


def _option(section: str, key: str) -> StackSecret:
    return StackSecret(section, key, key, make=lambda: "")  # written by ``write_urls``, never generated here


METADATA = _option("database", "sql_alchemy_conn")
METADATA_ASYNC = _option("database", "sql_alchemy_conn_async")  # else Airflow derives asyncpg's, not installed
BROKER = _option("celery", "broker_url")
RESULTS = _option("celery", "result_backend")
ALL_SECRETS = (JWT_SECRET, FERNET_KEY, METADATA, METADATA_ASYNC, BROKER, RESULTS)

# Who needs which. As deployflow.stack.secrets.SECRETS_OF, plus: every process that reads the metadata database has its
# URL; the scheduler's CeleryExecutor sends to the broker and reads results; a worker needs the broker and
# the results backend only (Airflow 3 workers reach the metadata through the API server's Execution API,
# with the token the scheduler signed: no JWT key, no Fernet key, no metadata URL).
SECRETS_OF: dict[str, tuple[StackSecret, ...]] = {
    "api-server": (JWT_SECRET, FERNET_KEY, METADATA, METADATA_ASYNC),
    "scheduler": (JWT_SECRET, METADATA, METADATA_ASYNC, BROKER, RESULTS),
    "dag-processor": (FERNET_KEY, METADATA, METADATA_ASYNC),
    **{triggerer: (FERNET_KEY, METADATA, METADATA_ASYNC) for triggerer in TRIGGERERS},
    "db-migrate": (FERNET_KEY, METADATA, METADATA_ASYNC),
    **{worker: (BROKER, RESULTS) for worker in WORKERS},
    EXPORTER: (),
}


def commands(concurrency: dict[str, int] | None = None) -> dict[str, list[str]]:
    """Each process and its command line, in start order; ``concurrency`` overrides a worker's slots."""
    slots = {worker: (concurrency or {}).get(worker, default) for worker, (_, default, _) in WORKERS.items()}
    airflow = {
        "api-server": ["api-server"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        **{triggerer: ["triggerer", "--queues", queue, "--skip-serve-logs"] for triggerer, queue in TRIGGERERS.items()},
        **{worker: ["celery", "worker", "--queues", queue, "--concurrency", str(slots[worker]),
                    "--celery-hostname", f"{worker}@%h", "--skip-serve-logs", "--without-mingle", "--without-gossip"]
           for worker, (queue, _, _) in WORKERS.items()},
    }
    exporter = [sys.executable, "-m", "deployflow.ledger", "exporter", "--port", str(EXPORTER_PORT)]
    return {**{name: ["airflow", *args] for name, args in airflow.items()}, EXPORTER: exporter}


def write_urls(servers: Servers) -> None:
    """The database and broker URLs (they hold the passwords) into their 0600 files, for ``_CMD`` to read."""
    for secret, url in ((METADATA, servers.metadata_url()), (METADATA_ASYNC, servers.metadata_url()), (BROKER, servers.broker_url()), (RESULTS, servers.results_url())):
        path = servers.secrets / secret.file
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(url)


def shared_env(top: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What every process of the setup shares besides its home (no secret: ``process_env`` adds pointers)."""
    state = top / "state"
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "32",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "deployflow.airflow.celery_setup.hostname",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(top / "secrets")),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "deployflow.airflow.celery_setup.CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "deployflow.airflow.celery_setup.CONNECT_ARGS",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(top / "task-logs"),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(TRIGGER_LOG_PORT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__TRIGGERER__QUEUES_ENABLED": "True",  # a deferred task's trigger carries its queue: TRIGGERERS  # a busy worker does not sit on tasks another could run
        "DEPLOYFLOW_STACK": NAME,
        "DEPLOYFLOW_STATE": str(state),
        "DEPLOYFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        **(extra or {}),
    }


def process_env(name: str, top: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of process ``name``: its own home, without any secret it may have inherited, plus a
    ``_CMD`` pointer to the file of each secret in ``SECRETS_OF[name]``."""
    env = airflow_env(top / name, port, shared_env(top, port, extra))
    names = set().union(*(secret.names() for secret in ALL_SECRETS))
    env = {key: value for key, value in env.items() if key not in names}
    for secret in SECRETS_OF[name]:
        env[f"{secret.variable}_CMD"] = secret_command(top / "secrets" / secret.file)
    if name in WORKERS or name in TRIGGERERS:
        env["DEPLOYFLOW_WORKER_HOSTNAME"] = name  # its jobs' and task instances' hostname
    if name in WORKERS:
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(WORKERS[name][2])
    return env


def up(top: Path, port: int = PORT, extra: dict[str, str] | None = None, *, containers: bool = True,
       concurrency: dict[str, int] | None = None) -> None:
    """Everything, idempotently: the servers, the database's schema, then each process (``containers``: the
    registry and this setup's Prometheus too)."""
    top = top.resolve()
    servers = servers_up(top, POSTGRES_PORT, REDIS_PORT)
    ensure_secrets(servers.secrets)
    write_urls(servers)
    private_dir(top / "task-logs")
    private_dir(top / "state")
    registry = None
    if containers:
        client = docker.from_env()
        ensure_images(client)
        registry = registry_up(client)
        prometheus_up(client, NAME, top / "state", PROMETHEUS_PORT, exporter_port=EXPORTER_PORT)
    if not (top / ".migrated").exists():
        started = time.monotonic()
        subprocess.run(["airflow", "db", "migrate"], env=process_env("db-migrate", top, port, extra), check=True,
                       stdout=subprocess.DEVNULL, umask=PRIVATE_UMASK)
        (top / ".migrated").touch(mode=0o600)
        (top / ".registry-connection").unlink(missing_ok=True)  # a new database has no connection yet
        say(f"Airflow's database (PostgreSQL) ready in {time.monotonic() - started:.0f} s")
    if registry is not None:
        define_registry_connection(top, registry, process_env("db-migrate", top, port, extra))
    for name, command in commands(concurrency).items():
        start(top, name, port, extra, command)
    wait_for_airflow(port)
    _wait_http(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", "the release exporter", timeout=30)
    say(f"Airflow (CeleryExecutor, PostgreSQL) on http://127.0.0.1:{port}; user admin, password: "
        f"`python -m deployflow.stack.celery password --top {top}`")


def define_registry_connection(top: Path, credentials: RegistryCredentials, env: dict[str, str]) -> None:
    """The registry's credentials as the connection ``deployflow_registry`` in the metadata database, for the
    workers, through a 0600 file that is removed after (never argv); again only when they changed."""
    connections = json.dumps({REGISTRY_CONNECTION: credentials.connection()})
    stamp, digest = top / ".registry-connection", hashlib.sha256(connections.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    path = top / "secrets" / "registry-connection.json"
    with _open_private(path, "w") as file:
        file.write(connections)
    try:
        subprocess.run(["airflow", "connections", "import", "--overwrite", str(path)], env=env, check=True,
                       stdout=subprocess.DEVNULL, umask=PRIVATE_UMASK)
    finally:
        path.unlink(missing_ok=True)
    with _open_private(stamp, "w") as file:
        file.write(digest)
    say(f"registry credentials: the connection {REGISTRY_CONNECTION}")


def start(top: Path, name: str, port: int = PORT, extra: dict[str, str] | None = None,
          command: list[str] | None = None) -> int:
    """Start process ``name`` (again) in its own home; its PID."""
    home = private_dir(top / name)
    return start_process(home, name, command or commands()[name], process_env(name, top, port, extra))


def kill(top: Path, name: str) -> None:
    """SIGKILL process ``name``'s whole group (a host lost: no chance to tell anyone), and reap it."""
    pid = _running(top / name, name)
    if pid is None:
        raise RuntimeError(f"{name} is not running (no live PID in {top / name / 'pids'})")
    os.killpg(pid, signal.SIGKILL)
    while _alive(pid):
        _reap(pid)
        time.sleep(0.1)
    _pid_file(top / name, name).unlink(missing_ok=True)
    say(f"killed {name} (pid {pid}, SIGKILL to its process group)")


def down(top: Path, *, containers: bool = True) -> None:
    top = top.resolve()
    for name in reversed(list(commands())):
        stop_process(top / name, name)
    redis_down(top / "redis")
    postgres_down(top / "postgres")
    if containers:
        containers_down(docker.from_env(), NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.stack.celery", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "password"))
    parser.add_argument("--top", type=Path, default=TOP, help="the directory of every process's home")
    parser.add_argument("--port", type=int, default=PORT, help="the API server's port (127.0.0.1)")
    args = parser.parse_args(argv)
    if args.command == "password":
        print(admin_password(args.top.resolve() / "secrets"))
    elif args.command == "down":
        down(args.top)
    else:
        up(args.top, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
