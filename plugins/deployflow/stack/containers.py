"""The stack's containers: its images (the base image, pulled or debootstrapped, then each image built once),
the registry and each stack's Prometheus, all on the host network, 127.0.0.1 only, back with the engine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import docker

from deployflow.stack import ROOT
from deployflow.stack.processes import _wait_http, say
from deployflow.stack.secrets import private_dir

BASE_IMAGE = os.environ.get("BASE_IMAGE", "deployflow/base:bookworm")
REGISTRY_IMAGE = "deployflow/registry:2"
HAPROXY_IMAGE = "deployflow/haproxy:2"
PROMETHEUS_IMAGE = "deployflow/prometheus:1"
PROMETHEUS_CONFIG = """\
# Written by deployflow.stack. Every instance the deployer runs is listed, with
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
    # Prometheus runs as root in its container, HAProxy and the deployer as the state's owner: 0700 keeps
    # other users out of the state (admin sockets, release records) and lets every container in.
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
