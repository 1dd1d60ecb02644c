"""The stack's containers: its images (the base image, pulled or debootstrapped, then each image built once),
the registry (the host's one, locked: a user and password, no deletes) and each stack's Prometheus, all on the
host network, 127.0.0.1 only, back with the engine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

from deployflow.stack import ROOT
from deployflow.stack.processes import _wait_http, say
from deployflow.pipeline.registry import RegistryCredentials, credentials_file
from deployflow.settings import DEFAULT_HAPROXY_IMAGE, Settings
from deployflow.stack.secrets import htpasswd, private_dir, registry_credentials

HAPROXY_IMAGE = DEFAULT_HAPROXY_IMAGE  # the proxy image the stack builds, under the name the sites take by default
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
BASE_IMAGE_SCRIPT = ROOT / "include/images/base/build.sh"
REGISTRY_CONTAINER = "deployflow-registry"
REGISTRY_VOLUME = "deployflow-registry-data"
REGISTRY_CONTEXT = ROOT / "include/images/registry"
REGISTRY_CONFIG_LABEL = "io.deployflow.registry-config"
HTPASSWD_MOUNT = "/etc/deployflow/auth/htpasswd"  # include/images/registry/config.yml's auth.htpasswd.path
LOCAL_PROMETHEUS_PORT = 9090
LOCAL_EXPORTER_PORT = 9468  # the release metrics exporter's (deployflow.ledger.exporter DEFAULT_PORT)


def _content_tag(repository: str, files: list[Path]) -> str:
    """``repository:<hash of the files' paths and contents>``: a change to any of them makes a new image."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"{repository}:{digest.hexdigest()[:12]}"


def deployer_image() -> str:
    """The deployer's tag: a hash of the package (code and Kubernetes templates) and its Dockerfile, so changes rebuild it."""
    package = ROOT / "plugins/deployflow"
    files = sorted([*package.rglob("*.py"), *package.rglob("*.yaml")]) + [ROOT / "include/images/deployer/Dockerfile"]
    return _content_tag("deployflow/deployer", files)


def registry_image() -> str:
    """The registry's tag: a hash of its Dockerfile and configuration (in the image), so changes rebuild it."""
    return _content_tag("deployflow/registry", sorted(REGISTRY_CONTEXT.iterdir()))


def ensure_images(client: docker.DockerClient) -> None:
    """The base image (pulled or debootstrapped), then the stack's images, each built once."""
    base_image = Settings.from_environ().base_image
    made = subprocess.run(["bash", str(BASE_IMAGE_SCRIPT)], env={**os.environ, "BASE_IMAGE": base_image})
    if made.returncode:  # the script's last line says why (debootstrap missing, not root, a mirror's error)
        raise SystemExit(made.returncode)
    for tag, context, dockerfile in (
        (registry_image(), REGISTRY_CONTEXT, "Dockerfile"),
        (HAPROXY_IMAGE, ROOT / "include/images/haproxy", "Dockerfile"),
        (PROMETHEUS_IMAGE, ROOT / "include/images/prometheus", "Dockerfile"),
        (deployer_image(), ROOT / "plugins", str(ROOT / "include/images/deployer/Dockerfile")),
    ):
        ensure_image(client, tag, context, dockerfile, base_image=base_image)


def ensure_image(client: docker.DockerClient, tag: str, context: Path, dockerfile: str = "Dockerfile", *,
                 base_image: str) -> None:
    """Image ``tag`` from ``context`` on ``base_image``, unless the engine has it."""
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        started = time.monotonic()
        client.images.build(
            path=str(context), dockerfile=dockerfile, tag=tag, buildargs={"BASE_IMAGE": base_image},
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


@dataclass(frozen=True)
class Registry:
    """The host's registry: its container, its address, its data volume, and its credentials' file (the
    htpasswd file beside it)."""

    container: str = REGISTRY_CONTAINER
    addr: str = field(default_factory=lambda: Settings.from_environ().registry)
    volume: str = REGISTRY_VOLUME
    credentials: Path = field(default_factory=credentials_file)


def registry_config(image: str, addr: str, htpasswd_text: str) -> str:
    """What the registry's container is made from, as one hash (its label): a registry whose label differs
    (made before its lock, or before a change of its image, address or users) is made again."""
    return hashlib.sha256("\0".join((image, addr, htpasswd_text)).encode()).hexdigest()[:16]


def registry_up(client: docker.DockerClient, registry: Registry | None = None) -> RegistryCredentials:
    """The registry, locked: only its user may push or pull (htpasswd), nothing may be deleted. Its data volume
    outlives a container made again. Returns its credentials (kept in ``registry.credentials``, 0600)."""
    registry = registry or Registry()
    credentials = registry_credentials(registry.credentials, registry.addr)
    users = htpasswd(registry.credentials.with_name("htpasswd"), credentials)
    image = registry_image()
    config = registry_config(image, registry.addr, users.read_text())
    try:
        earlier = client.containers.get(registry.container)
        if earlier.labels.get(REGISTRY_CONFIG_LABEL) != config:
            earlier.remove(force=True)  # its named volume stays: the images pushed so far
            say(f"{registry.container}: made again with the current configuration (its images kept)")
    except docker.errors.NotFound:
        pass
    _ensure_container(
        client, registry.container, image, environment={"REGISTRY_HTTP_ADDR": registry.addr},
        volumes={registry.volume: {"bind": "/var/lib/docker-registry", "mode": "rw"},
                 str(users): {"bind": HTPASSWD_MOUNT, "mode": "ro"}},
        labels={"io.deployflow.stack": "registry", REGISTRY_CONFIG_LABEL: config},
    )
    _wait_http(f"http://{registry.addr}/v2/", "registry", timeout=30)
    answer = requests.get(f"http://{registry.addr}/v2/", auth=(credentials.username, credentials.password), timeout=5)
    if answer.status_code != 200:
        raise SystemExit(f"[stack] the registry on {registry.addr} refuses its own credentials ({registry.credentials}): "
                         f"HTTP {answer.status_code}")
    say(f"registry on {registry.addr} (user {credentials.username}; the password is in {registry.credentials})")
    return credentials


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
    for container in client.containers.list(all=True, filters={"label": f"io.deployflow.stack={stack}"}, ignore_removed=True):
        container.remove(force=True)
        say(f"removed container {container.name}")


def registry_down(client: docker.DockerClient, registry: Registry | None = None) -> None:
    """Remove the registry's container (its data volume and credentials stay)."""
    name = (registry or Registry()).container
    try:
        client.containers.get(name).remove(force=True)
        say(f"removed container {name}")
    except docker.errors.NotFound:
        pass
