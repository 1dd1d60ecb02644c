"""The local stack: images, the registry container, and Airflow's four processes.

    python scripts/stack.py up   [--home .airflow] [--port 8080]
    python scripts/stack.py down [--home .airflow]
    python scripts/stack.py images
    python scripts/stack.py password [--home .airflow]   (prints the admin password: for a terminal, not a log)

Idempotent: ``up`` reuses what is running and what was built. Airflow runs as
``airflow standalone`` would (scheduler, dag-processor, api-server, triggerer,
SQLite, LocalExecutor), but each process is started here so that its PID is
known and ``down`` can stop every one of them, and so that the scheduler and
triggerer run with ``--skip-serve-logs`` (Airflow binds log servers to every
interface; on one machine the API server reads the log files directly).

The stack's secrets (the JWT signing key, the Fernet key, the admin password) live in 0600 files of
AIRFLOW_HOME; each Airflow process gets, through an ``AIRFLOW__..._CMD`` variable, a way to read only
those it needs (``SECRETS_OF``), never a value in its environment. The Airflow processes run under a
umask of 077, and the home and the deployer's state directory are 0700.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import docker
import requests

from stack_secrets import (  # noqa: F401 - also stack's names for the tests and scripts
    PRIVATE_FILE,
    PRIVATE_UMASK,
    _open_private,
    admin_password,
    component_env,
    ensure_secrets,
    make_private,
    password_file,
    private_dir,
    private_mode,
    secret_command,
)

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("BASE_IMAGE", "deployflow/base:bookworm")
REGISTRY_IMAGE = "deployflow/registry:2"
HAPROXY_IMAGE = "deployflow/haproxy:1"
PROMETHEUS_IMAGE = "deployflow/prometheus:1"
PROMETHEUS_CONFIG = """\
# Written by scripts/stack.py. Every instance the deployer runs is listed, with
# its service, environment, version and track, in {state}/targets/*.json.
global:
  scrape_interval: {scrape}
  scrape_timeout: {scrape}
  evaluation_interval: 5s  # the alerting rules: each a lookup of a few series
rule_files: ["{rules}"]
scrape_configs:
  - job_name: deployflow
    file_sd_configs:
      - files: ["{state}/targets/*.json"]
        refresh_interval: {scrape}
  - job_name: deployflow-releases  # the ledger's release metrics (deployflow.ledger.exporter)
    scrape_interval: 5s  # they change once a release; a scrape reads the whole ledger (about 0.1 s per 10,000 rows)
    scrape_timeout: 5s
    static_configs:
      - targets: ["127.0.0.1:{exporter}"]
"""
RULES = ROOT / "include/prometheus/rules.yml"
REGISTRY_CONTAINER = "deployflow-registry"
REGISTRY_ADDR = os.environ.get("DEPLOYFLOW_REGISTRY", "127.0.0.1:5000")
LOCAL_PROMETHEUS_PORT = 9090
LOCAL_EXPORTER_PORT = 9468  # the release metrics exporter's (deployflow.ledger.exporter DEFAULT_PORT)
EXPORTER = "exporter"  # one more process of the stack, beside Airflow's
COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "api-server": ["api-server"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# ---- images and registry ------------------------------------------------------------


def deployer_image() -> str:
    """The deployer's tag: a hash of the package (code and Kubernetes templates) and its Dockerfile, so changes rebuild it."""
    digest = hashlib.sha256()
    package = ROOT / "plugins/deployflow"
    files = sorted([*package.rglob("*.py"), *package.rglob("*.yaml")]) + [ROOT / "include/images/deployer/Dockerfile"]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"deployflow/deployer:{digest.hexdigest()[:12]}"


def ensure_images(client: docker.DockerClient) -> None:
    """The base image (pulled or debootstrapped), then the stack's images, each built once."""
    subprocess.run(["bash", str(ROOT / "include/images/base/build.sh")], check=True, env={**os.environ, "BASE_IMAGE": BASE_IMAGE})
    for tag, context, dockerfile in (
        (REGISTRY_IMAGE, ROOT / "include/images/registry", "Dockerfile"),
        (HAPROXY_IMAGE, ROOT / "include/images/haproxy", "Dockerfile"),
        (PROMETHEUS_IMAGE, ROOT / "include/images/prometheus", "Dockerfile"),
        (deployer_image(), ROOT / "plugins", str(ROOT / "include/images/deployer/Dockerfile")),
    ):
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            started = time.monotonic()
            client.images.build(
                path=str(context), dockerfile=dockerfile, tag=tag, buildargs={"BASE_IMAGE": BASE_IMAGE},
                network_mode="host", rm=True,
            )
            say(f"built {tag} in {time.monotonic() - started:.0f} s")


RESTART = {"Name": "unless-stopped"}  # back with the engine (a host reboot, a daemon restart), as Kamal's are


def _ensure_container(client: docker.DockerClient, name: str, image: str, **kwargs: object) -> None:
    """Start the container ``name`` if it exists (restarting with the engine), else run it on the host network."""
    try:
        container = client.containers.get(name)
        if container.attrs["HostConfig"].get("RestartPolicy", {}).get("Name") != RESTART["Name"]:
            container.update(restart_policy=RESTART)  # made before containers came back with the engine
        if container.status != "running":
            container.start()
    except docker.errors.NotFound:
        client.containers.run(image, name=name, detach=True, network_mode="host", restart_policy=RESTART, **kwargs)


def registry_up(client: docker.DockerClient) -> None:
    _ensure_container(
        client, REGISTRY_CONTAINER, REGISTRY_IMAGE, environment={"REGISTRY_HTTP_ADDR": REGISTRY_ADDR},
        volumes={"deployflow-registry-data": {"bind": "/var/lib/docker-registry", "mode": "rw"}},
        labels={"io.deployflow.stack": "registry"},
    )
    _wait_http(f"http://{REGISTRY_ADDR}/v2/", "registry", timeout=30)
    say(f"registry on {REGISTRY_ADDR}")


def prometheus_up(client: docker.DockerClient, stack: str, state: Path, port: int, scrape: str = "1s",
                  exporter_port: int = LOCAL_EXPORTER_PORT) -> str:
    """Prometheus of ``stack`` on 127.0.0.1:``port``, scraping the targets the deployer writes and the release
    exporter on ``exporter_port`` (the one ``airflow_up`` starts), with the example alerting rules."""
    # Prometheus, HAProxy and the deployer run as root in their containers: 0700 keeps other users
    # out of the state (admin sockets, release records) and lets every container in.
    private_dir(state)
    directory = state / "prometheus"
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (state / "targets").mkdir(parents=True, exist_ok=True)
    (directory / "rules.yml").write_text(RULES.read_text())  # inside the state: the only directory the container sees
    (directory / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(
        state=state, scrape=scrape, rules=directory / "rules.yml", exporter=exporter_port))
    name = f"df-{stack}-prometheus"
    try:  # one started by an earlier `up` reads the configuration just written (SIGHUP reloads it)
        earlier = client.containers.get(name)
        if earlier.status == "running":
            earlier.kill(signal="SIGHUP")
    except docker.errors.NotFound:
        pass
    _ensure_container(
        client, name, PROMETHEUS_IMAGE,
        command=[f"--config.file={directory / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={directory / 'data'}", "--storage.tsdb.retention.time=2d"],
        volumes={str(state): {"bind": str(state), "mode": "rw"}},
        labels={"io.deployflow.stack": stack, "io.deployflow.role": "prometheus"},
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/-/ready", "Prometheus", timeout=60)
    say(f"Prometheus on {url}")
    return url


def containers_down(client: docker.DockerClient, stack: str) -> None:
    """Remove the releases' containers of ``stack``: app instances and proxies."""
    for container in client.containers.list(all=True, filters={"label": f"io.deployflow.stack={stack}"}):
        container.remove(force=True)
        say(f"removed container {container.name}")


def registry_down(client: docker.DockerClient) -> None:
    try:
        client.containers.get(REGISTRY_CONTAINER).remove(force=True)
        say(f"removed container {REGISTRY_CONTAINER}")
    except docker.errors.NotFound:
        pass


# ---- the engine -------------------------------------------------------------------

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


# ---- Airflow ----------------------------------------------------------------------


@contextmanager
def bench_stack(work: Path, catalog: Path, *, name: str, port: int, prometheus_port: int, exporter_port: int):
    """A benchmark's own stack in ``work`` (Airflow on ``port``, containers named after ``name``), logged in, with
    the release DAG parsed; yields (the Airflow client, the Docker client) and takes everything down after."""
    from deployflow.client import AirflowClient

    client = docker.from_env()
    ensure_images(client)
    registry_up(client)
    containers_down(client, name)
    home, state = work / "airflow", work / "state"
    prometheus = prometheus_up(client, name, state, prometheus_port, exporter_port=exporter_port)
    airflow_up(home, port, {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(work / "ws"),
                            "DEPLOYFLOW_STACK": name, "DEPLOYFLOW_STATE": str(state), "DEPLOYFLOW_PROMETHEUS_URL": prometheus},
               exporter_port=exporter_port)
    try:
        airflow = AirflowClient(f"http://127.0.0.1:{port}")
        airflow.login("admin", admin_password(home))
        wait_for_dag(airflow, "release_sample-app")
        yield airflow, client
    finally:
        airflow_down(home)
        containers_down(client, name)


def wait_for_dag(airflow, dag_id: str, timeout: float = 120) -> None:
    """Return once Airflow (a deployflow.client.AirflowClient) has parsed ``dag_id``; RuntimeError naming the
    import errors if it has not within ``timeout``."""
    from deployflow.client import ApiError

    deadline = time.monotonic() + timeout
    while True:
        try:
            airflow.dag(dag_id)
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed within {timeout:.0f} s; import errors: {airflow.import_errors()}") from None
            time.sleep(1)


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What every Airflow process of the stack at ``home`` shares; ``extra`` wins. No secret is in it:
    ``component_env`` adds, per process, a pointer to the file of each secret that process needs."""
    base_url = f"http://127.0.0.1:{port}"
    return {
        **os.environ,
        "DEPLOYFLOW_HOME": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "PYTHONPATH": str(ROOT / "plugins"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW_VAR_DEPLOYFLOW_REGISTRY": REGISTRY_ADDR,
        "AIRFLOW_VAR_DEPLOYFLOW_BASE_IMAGE": BASE_IMAGE,
        "AIRFLOW_VAR_DEPLOYFLOW_DEPLOYER_IMAGE": deployer_image(),
        "DEPLOYFLOW_HAPROXY_IMAGE": HAPROXY_IMAGE,
        "DEPLOYFLOW_STACK": "local",
        "DEPLOYFLOW_STATE": str(ROOT / ".state"),
        "DEPLOYFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{LOCAL_PROMETHEUS_PORT}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    }


def _pid_file(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(home: Path, name: str) -> int | None:
    path = _pid_file(home, name)
    if path.exists():
        pid = int(path.read_text())
        if _alive(pid):
            return pid
    return None


def _commands(exporter_port: int) -> dict[str, list[str]]:
    """Each process of the stack and its command line: Airflow's four, then the release exporter."""
    exporter = [sys.executable, "-m", "deployflow.ledger", "exporter", "--port", str(exporter_port)]
    return {**{name: ["airflow", *args] for name, args in COMPONENTS.items()}, EXPORTER: exporter}


def airflow_up(home: Path, port: int, extra_env: dict[str, str] | None = None,
               exporter_port: int = LOCAL_EXPORTER_PORT) -> None:
    """Airflow's processes and the release exporter (on 127.0.0.1:``exporter_port``: a stack's own)."""
    make_private(private_dir(home))
    env = airflow_env(home, port, extra_env)
    private_dir(Path(env["DEPLOYFLOW_STATE"]))
    ensure_secrets(home)
    if not (home / "airflow.db").exists() or not (home / ".migrated").exists():
        started = time.monotonic()
        subprocess.run(["airflow", "db", "migrate"], env=component_env("db-migrate", home, env), check=True,
                       stdout=subprocess.DEVNULL, umask=PRIVATE_UMASK)
        with sqlite3.connect(home / "airflow.db") as db:  # WAL: readers never block the writer
            db.execute("PRAGMA journal_mode=WAL")
        (home / ".migrated").touch(mode=PRIVATE_FILE)
        say(f"Airflow database ready in {time.monotonic() - started:.0f} s")
    private_dir(home / "pids")
    private_dir(home / "logs")
    for name, command in _commands(exporter_port).items():
        start_process(home, name, command, component_env(name, home, env))
    _wait_http(f"http://127.0.0.1:{port}/api/v2/monitor/health", "Airflow API server", timeout=180)
    _wait_http(f"http://127.0.0.1:{exporter_port}/metrics", "the release exporter", timeout=30)
    say(f"release metrics on http://127.0.0.1:{exporter_port}/metrics")
    say(f"Airflow on http://127.0.0.1:{port} (user admin; its password is in {password_file(home)}, "
        f"which `python scripts/stack.py password --home {home}` prints)")


def start_process(home: Path, name: str, command: list[str], env: dict[str, str]) -> int:
    """Start ``command`` as process ``name`` of the stack at ``home`` (its own session, its output in
    ``home/logs/<name>.out``, its PID in ``home/pids``) unless it runs already; its PID."""
    pid = _running(home, name)
    if pid:
        return pid
    private_dir(home / "pids")
    private_dir(home / "logs")
    out = _open_private(home / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            umask=PRIVATE_UMASK)
    with _open_private(_pid_file(home, name), "w") as pid_file:
        pid_file.write(str(proc.pid))
    say(f"started {name} (pid {proc.pid}, log {home / 'logs' / (name + '.out')})")
    return proc.pid


def stop_process(home: Path, name: str, grace: float = 30) -> None:
    """Stop process ``name`` of the stack at ``home`` by its PID: its whole process group (task runners
    included), SIGTERM then, after ``grace`` seconds, SIGKILL."""
    pid = _running(home, name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
        _reap(pid)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _pid_file(home, name).unlink(missing_ok=True)
    say(f"stopped {name} (pid {pid})")


def airflow_down(home: Path) -> None:
    """Stop every component by its PID, its whole process group (task runners included), and the exporter."""
    for name in (*COMPONENTS, EXPORTER):
        stop_process(home, name)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_http(url: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(1)
    raise SystemExit(f"[stack] {what} did not answer at {url} within {timeout:.0f} s ({last})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "images", "password"))
    parser.add_argument("--home", type=Path, default=ROOT / ".airflow", help="AIRFLOW_HOME of this stack")
    parser.add_argument("--port", type=int, default=8080, help="API server port (127.0.0.1)")
    parser.add_argument("--keep-registry", action="store_true", help="down: leave the registry running")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if args.command == "password":
        print(admin_password(home))
        return 0
    if args.command == "down":
        airflow_down(home)
        client = docker.from_env()
        containers_down(client, "local")
        if not args.keep_registry:
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
