"""End to end on Kubernetes (make kind-e2e): a kind cluster, the sample service released to it through Airflow.

Needs a Linux machine with internet access, a Docker engine with its bridge
network, kind (v0.27 or newer) and kubectl; elsewhere it stops at once with
exit code 2 and says what is missing. Stages, one function each:

1. images: the stack's images (deployflow.stack), the deployer among them;
2. a registry container ``kind-registry`` on 127.0.0.1:5001 and the kind
   cluster ``deployflow`` wired to it (kind's "local registry" recipe,
   include/k8s/kind/): nodes pull ``localhost:5001/...`` from it;
3. the Gateway API standard CRDs, Envoy Gateway and the Gateway
   ``deployflow-gateway/deployflow`` (include/k8s/kind/gateway.yaml);
4. the environments' namespaces and the deployer's RBAC
   (``python -m deployflow.deployer rbac``); the deployer image loaded into kind;
5. ``kubectl proxy`` on 127.0.0.1:8001, through which Airflow (on the host)
   reaches the Services and Prometheus scrapes the pods;
6. a catalog for the run (include/k8s/services/sample-app.yaml pointed at a
   scratch repository and at the proxy), Prometheus, and Airflow with one
   Kubernetes connection per environment;
7. releases through the REST API: dev, staging and prod twice each (first
   deploy, then a new version), then a prod release whose readiness never
   passes (FAULT_READY_NEVER baked in), which must roll back.

Prints each release's outcome and task timings; exits 1 if any outcome is
not the expected one. Cleans up (Airflow, proxy, Prometheus, cluster,
registry) unless KEEP=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from deployflow.catalog import Service, load_service  # noqa: E402
from deployflow.platforms.base import Clients  # noqa: E402
from deployflow.platforms.factory import site_for  # noqa: E402
from deployflow.settings import REGISTRY_VARIABLE, variable_env  # noqa: E402
from deployflow.client import AirflowClient, ApiError, run_seconds, timings  # noqa: E402
from deployflow.stack.containers import containers_down, deployer_image, ensure_images  # noqa: E402
from deployflow.stack.local import airflow_down, airflow_up  # noqa: E402
from deployflow.stack.secrets import admin_password  # noqa: E402
from tests import scenarios  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KIND_DIR = ROOT / "include" / "k8s" / "kind"
CLUSTER = "deployflow"
REGISTRY_NAME = "kind-registry"
REGISTRY_HOST = "localhost:5001"  # what nodes and the host both call the registry
REGISTRY_IMAGE = "registry:2"
GATEWAY_API_VERSION = "v1.6.1"
GATEWAY_API_CRDS = f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml"
ENVOY_GATEWAY_VERSION = "v1.9.2"  # built against Gateway API v1.6
ENVOY_GATEWAY_INSTALL = f"https://github.com/envoyproxy/gateway/releases/download/{ENVOY_GATEWAY_VERSION}/install.yaml"
GATEWAY_NAMESPACE, GATEWAY_NAME = "deployflow-gateway", "deployflow"
PROXY = "http://127.0.0.1:8001"
SERVICE_URL = PROXY + "/api/v1/namespaces/{namespace}/services/{name}:http/proxy"
STACK = "kind"
AIRFLOW_PORT = 28380
PROMETHEUS_PORT = 29390
EXPORTER_PORT = 29472  # its release exporter (its Prometheus scrapes the cluster, not it)
PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"
DAG_ID = "release_sample-app"
ENVIRONMENTS = ("dev", "staging", "prod")


def say(message: str) -> None:
    print(f"[kind-e2e] {message}", flush=True)


def run(*argv: str, stdin: str | None = None, capture: bool = False) -> str:
    """Run a command, echoed first; raises CalledProcessError when it fails."""
    say("$ " + " ".join(argv))
    done = subprocess.run(argv, input=stdin, text=True, check=True, stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


@dataclass
class KindRun:
    """What this run started, so that cleanup stops exactly that."""

    work: Path
    keep: bool
    registry_started: bool = False
    cluster_created: bool = False
    proxy: subprocess.Popen | None = None
    airflow_home: Path | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.work / "kubeconfig"

    def kubectl(self, *args: str, stdin: str | None = None, capture: bool = False) -> str:
        return run("kubectl", f"--kubeconfig={self.kubeconfig}", *args, stdin=stdin, capture=capture)


@dataclass(frozen=True)
class Outcome:
    label: str
    environment: str
    expected: str  # "promoted" | "rolled back"
    state: str
    seconds: float | None
    served: str | None
    ok: bool


# ---- what the machine must have ---------------------------------------------------


def check_prerequisites() -> None:
    """Exit 2, saying what is missing, unless kind, kubectl and Docker with its bridge network are here."""
    missing = [tool for tool in ("kind", "kubectl", "docker") if shutil.which(tool) is None]
    if "docker" not in missing:
        if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            missing.append("a running Docker engine")
        elif subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True).returncode != 0:
            missing.append("Docker's bridge network (this engine runs without one; kind's nodes and registry need it)")
    if missing:
        print(
            f"make kind-e2e cannot run here: missing {'; '.join(missing)}.\n"
            "It needs a Linux machine with internet access (to pull kind's node image, the registry and Envoy "
            "images and the Gateway API manifests), a Docker engine with its default bridge network, kind and "
            "kubectl. Run it on such a machine.",
            file=sys.stderr,
        )
        sys.exit(2)
    clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True).stdout.split()
    if CLUSTER in clusters:
        print(f"a kind cluster named {CLUSTER!r} exists already (an earlier KEEP=1 run?); "
              f"remove it with: kind delete cluster --name {CLUSTER}", file=sys.stderr)
        sys.exit(2)


# ---- registry and cluster -----------------------------------------------------------


def start_registry(kind: KindRun) -> None:
    """The registry container of kind's recipe, published on 127.0.0.1:5001 only."""
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", REGISTRY_NAME], capture_output=True, text=True)
    if state.returncode == 0:  # an earlier one (kind's recipe keeps it): reuse it, leave it
        if state.stdout.strip() != "true":
            run("docker", "start", REGISTRY_NAME)
        say(f"reusing the registry container {REGISTRY_NAME}")
        return
    run("docker", "run", "-d", "--restart=always", "-p", "127.0.0.1:5001:5000", "--network", "bridge",
        "--name", REGISTRY_NAME, REGISTRY_IMAGE)
    kind.registry_started = True


def create_cluster(kind: KindRun) -> None:
    run("kind", "create", "cluster", "--name", CLUSTER, "--config", str(KIND_DIR / "cluster.yaml"),
        "--kubeconfig", str(kind.kubeconfig), "--wait", "180s")
    kind.cluster_created = True


def wire_registry(kind: KindRun) -> None:
    """Nodes resolve localhost:5001 to the registry container; the registry joins kind's network."""
    hosts_dir = f"/etc/containerd/certs.d/{REGISTRY_HOST}"
    for node in run("kind", "get", "nodes", "--name", CLUSTER, capture=True).split():
        run("docker", "exec", node, "mkdir", "-p", hosts_dir)
        run("docker", "exec", "-i", node, "cp", "/dev/stdin", f"{hosts_dir}/hosts.toml", stdin=(KIND_DIR / "hosts.toml").read_text())
    networks = run("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", REGISTRY_NAME, capture=True)
    if "kind" not in json.loads(networks):
        run("docker", "network", "connect", "kind", REGISTRY_NAME)
    kind.kubectl("apply", "-f", str(KIND_DIR / "registry-hosting.yaml"))


# ---- Gateway API and Envoy Gateway ---------------------------------------------------


def install_gateway(kind: KindRun) -> str:
    """Gateway API CRDs (standard channel), Envoy Gateway, our Gateway; returns the Envoy Service's name."""
    kind.kubectl("apply", "--server-side", "-f", GATEWAY_API_CRDS)
    kind.kubectl("wait", "--for=condition=Established", "--timeout=120s",
                 *(f"crd/{kind_}.gateway.networking.k8s.io" for kind_ in ("gatewayclasses", "gateways", "httproutes")))
    kind.kubectl("apply", "--server-side", "-f", "-", stdin=envoy_gateway_manifest())
    kind.kubectl("wait", "--for=condition=Available", "--timeout=300s", "-n", "envoy-gateway-system", "deployment/envoy-gateway")
    kind.kubectl("wait", "--for=condition=Established", "--timeout=120s", "crd/envoyproxies.gateway.envoyproxy.io")
    kind.kubectl("apply", "-f", str(KIND_DIR / "gateway.yaml"))
    selector = (f"gateway.envoyproxy.io/owning-gateway-name={GATEWAY_NAME},"
                f"gateway.envoyproxy.io/owning-gateway-namespace={GATEWAY_NAMESPACE}")
    deadline = time.monotonic() + 300
    while not (name := kind.kubectl("get", "service", "-n", "envoy-gateway-system", "-l", selector,
                                    "-o", "jsonpath={.items[0].metadata.name}", capture=True).strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Envoy Gateway made no Service for Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} in 300 s")
        time.sleep(3)
    kind.kubectl("wait", "--for=condition=Available", "--timeout=300s", "-n", "envoy-gateway-system", "deployment", "-l", selector)
    say(f"Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} served by envoy-gateway-system/{name}")
    return name


def envoy_gateway_manifest() -> str:
    """Envoy Gateway's install.yaml without the Gateway API CRDs it bundles: the standard ones installed
    just before stay (its bundle would replace them, and Gateway API's safe-upgrade policy refuses that)."""
    response = requests.get(ENVOY_GATEWAY_INSTALL, timeout=60)
    response.raise_for_status()
    kept = []
    for doc in yaml.safe_load_all(response.text):
        if not doc:
            continue
        group = (doc.get("spec") or {}).get("group", "") if doc.get("kind") == "CustomResourceDefinition" else ""
        name = doc.get("metadata", {}).get("name", "")
        if group.startswith("gateway.networking") or (doc.get("kind", "").startswith("ValidatingAdmissionPolicy")
                                                      and name.endswith("gateway.networking.k8s.io")):
            continue
        kept.append(doc)
    return yaml.safe_dump_all(kept, sort_keys=False)


# ---- namespaces, RBAC, deployer image, proxy -----------------------------------------


def prepare_environments(kind: KindRun, service_file: Path, service: Service) -> None:
    """Each environment's namespace and the deployer's ServiceAccount, Role and RoleBinding."""
    for env in service.environments.values():
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env.kubernetes.namespace}}
        kind.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(namespace))
        rbac = run(sys.executable, "-m", "deployflow.deployer", "rbac", "--service-file", str(service_file),
                   "--environment", env.name, capture=True)
        kind.kubectl("apply", "-f", "-", stdin=rbac)
    run("kind", "load", "docker-image", deployer_image(), "--name", CLUSTER)


def start_proxy(kind: KindRun) -> None:
    out = open(kind.work / "kubectl-proxy.log", "ab")  # noqa: SIM115 - handed to the child
    kind.proxy = subprocess.Popen(
        ["kubectl", f"--kubeconfig={kind.kubeconfig}", "proxy", "--address=127.0.0.1", "--port=8001"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_http(f"{PROXY}/version", "kubectl proxy")
    say(f"kubectl proxy on {PROXY} (pid {kind.proxy.pid})")


# ---- catalog, Prometheus, Airflow ----------------------------------------------------


def write_catalog(kind: KindRun, repo: Path, envoy_service: str) -> Path:
    """The Kubernetes sample entry, built from ``repo``, its Services reached through kubectl proxy."""
    entry = yaml.safe_load((ROOT / "include" / "k8s" / "services" / "sample-app.yaml").read_text())
    entry["source"] = {"repo": str(repo), "context": ".", "default_ref": "main"}
    for name, env in entry["environments"].items():
        env["kubernetes"]["url"] = SERVICE_URL
        if name == "prod":  # the watch's judge reads Prometheus from the deployer pod; here Prometheus listens on
            env["post_promotion"] = {"enabled": False}  # the host's loopback, out of the pods' reach
        if name == "staging":  # the canary's HTTPRoute weights act at the Gateway: clients and load go there
            env["kubernetes"]["front_url"] = f"{PROXY}/api/v1/namespaces/envoy-gateway-system/services/{envoy_service}:80/proxy"
    directory = kind.work / "catalog"
    directory.mkdir()
    path = directory / "sample-app.yaml"
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    return path


def start_prometheus(client: docker.DockerClient) -> str:
    """Upstream's image: Debian's, which the local stack runs, is built without Kubernetes discovery."""
    client.containers.run(
        PROMETHEUS_IMAGE, name=f"df-{STACK}-prometheus", detach=True, network_mode="host",
        command=["--config.file=/etc/deployflow/prometheus.yml", f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
        volumes={str(KIND_DIR / "prometheus.yml"): {"bind": "/etc/deployflow/prometheus.yml", "mode": "ro"}},
        labels={"io.deployflow.stack": STACK, "io.deployflow.role": "prometheus"},
    )
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    wait_http(f"{url}/-/ready", "Prometheus")
    say(f"Prometheus on {url} (include/k8s/kind/prometheus.yml), scraping the pods through kubectl proxy")
    return url


def start_airflow(kind: KindRun, catalog: Path, service: Service, prometheus_url: str) -> AirflowClient:
    connection = json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kind.kubeconfig)}})
    extra = {
        "DEPLOYFLOW_CATALOG": str(catalog.parent),
        "DEPLOYFLOW_WORKSPACE": str(kind.work / "workspace"),
        "DEPLOYFLOW_STACK": STACK,
        "DEPLOYFLOW_STATE": str(kind.work / "state"),
        "DEPLOYFLOW_PROMETHEUS_URL": prometheus_url,
        variable_env(REGISTRY_VARIABLE): REGISTRY_HOST,
        "KUBECONFIG": str(kind.kubeconfig),
        **{f"AIRFLOW_CONN_{env.kubernetes.connection_id.upper()}": connection for env in service.environments.values()},
    }
    kind.airflow_home = kind.work / "airflow"
    airflow_up(kind.airflow_home, AIRFLOW_PORT, extra, exporter_port=EXPORTER_PORT)
    client = AirflowClient(f"http://127.0.0.1:{AIRFLOW_PORT}")
    client.login("admin", admin_password(kind.airflow_home))
    deadline = time.monotonic() + 180
    while True:
        try:
            client.dag(DAG_ID)
            return client
        except ApiError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{DAG_ID} was not parsed in 180 s; import errors: {client.import_errors()}") from None
            time.sleep(2)


# ---- releases --------------------------------------------------------------------------


def release(client: AirflowClient, service: Service, environment: str, ref: str, *,
            label: str, live_after: str, promoted: bool) -> Outcome:
    """Release ``ref``, follow it, print its timings; ``live_after`` is the version that must then answer."""
    say(f"--- {label}: {environment} <- {ref} (expect {'promoted' if promoted else 'rolled back'})")
    run_id = client.trigger(DAG_ID, {"environment": environment, "git_ref": ref, "reason": f"make kind-e2e: {label}"})["dag_run_id"]
    started = time.monotonic()

    def progress(task_id: str, state: str) -> None:
        print(f"  [{time.monotonic() - started:6.1f}s] {task_id:<24} {state}", flush=True)

    finished = client.wait(DAG_ID, run_id, timeout=1800, on_change=progress)
    tis = client.task_instances(DAG_ID, run_id)
    states = {ti["task_id"]: ti.get("state") for ti in tis}
    for t in timings(tis):
        print(f"  {t.task_id:<24} {t.state or '-':<16} {'' if t.seconds is None else f'{t.seconds:.1f} s'}")
    if promoted:
        ok = finished["state"] == "success" and states.get("promote") == "success"
    else:
        ok = finished["state"] == "failed" and states.get("rollback") == "success" and states.get("promote") != "success"
    served = served_version(site_for(service, environment, clients=Clients()).front_url())
    ok = ok and served == live_after
    outcome = Outcome(label, environment, "promoted" if promoted else "rolled back", finished["state"],
                      run_seconds(finished), served, ok)
    say(f"{label}: {finished['state']} in {outcome.seconds or 0:.0f} s, serving {served} "
        f"(want {live_after}) -> {'as expected' if ok else 'UNEXPECTED'}")
    return outcome


def served_version(url: str) -> str | None:
    try:
        return requests.get(url + "/", timeout=10).json()["version"][:12]
    except (requests.RequestException, ValueError, KeyError) as exc:
        say(f"no version from {url}/: {exc}")
        return None


def release_all(kind: KindRun, client: AirflowClient, service: Service, repo: Path) -> None:
    first = scenarios.git(repo, "rev-parse", "main")[:12]
    second = scenarios.branch(repo, "kind-v2")
    for environment in ENVIRONMENTS:
        kind.outcomes.append(release(client, service, environment, "main", label=f"{environment} first deploy",
                                     live_after=first, promoted=True))
    for environment in ENVIRONMENTS:
        kind.outcomes.append(release(client, service, environment, "kind-v2", label=f"{environment} new version",
                                     live_after=second, promoted=True))
    kind.outcomes.append(release(client, service, "prod", "ready-never", label="prod never ready",
                                 live_after=second, promoted=False))


def report(outcomes: list[Outcome]) -> bool:
    print(f"\n{'release':<24} {'expected':<12} {'run':<8} {'seconds':>8}  {'serving':<13} result")
    for o in outcomes:
        print(f"{o.label:<24} {o.expected:<12} {o.state:<8} {o.seconds or 0:>8.0f}  {o.served or '-':<13} "
              f"{'ok' if o.ok else 'UNEXPECTED'}")
    return bool(outcomes) and all(o.ok for o in outcomes)


# ---- cleanup ------------------------------------------------------------------------


def cleanup(kind: KindRun, client: docker.DockerClient) -> None:
    if kind.keep:
        say(f"KEEP=1: left running. Airflow http://127.0.0.1:{AIRFLOW_PORT} (admin, password in "
            f"{kind.airflow_home}/simple_auth_manager_passwords.json); kubeconfig {kind.kubeconfig}; "
            f"proxy pid {kind.proxy.pid if kind.proxy else '-'}.")
        say(f"Remove it all with: PYTHONPATH={ROOT / 'plugins'} {sys.executable} -c \"import pathlib; "
            f"from deployflow.stack.local import airflow_down; airflow_down(pathlib.Path('{kind.airflow_home}'))\"; "
            f"kill {kind.proxy.pid if kind.proxy else ''}; "
            f"kind delete cluster --name {CLUSTER}; docker rm -f {REGISTRY_NAME} df-{STACK}-prometheus; rm -rf {kind.work}")
        return
    steps = [
        ("Airflow", lambda: kind.airflow_home and airflow_down(kind.airflow_home)),
        ("kubectl proxy", lambda: stop_proxy(kind)),
        ("Prometheus", lambda: containers_down(client, STACK)),  # by its label
        ("kind cluster", lambda: kind.cluster_created and run("kind", "delete", "cluster", "--name", CLUSTER,
                                                              "--kubeconfig", str(kind.kubeconfig))),
        ("registry", lambda: kind.registry_started and run("docker", "rm", "-f", REGISTRY_NAME)),
        ("work directory", lambda: shutil.rmtree(kind.work, ignore_errors=True)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # one failing step must not keep the others from running
            say(f"cleanup of {what} failed: {exc}")


def stop_proxy(kind: KindRun) -> None:
    if kind.proxy is not None and kind.proxy.poll() is None:
        kind.proxy.terminate()
        kind.proxy.wait(timeout=10)
        say(f"stopped kubectl proxy (pid {kind.proxy.pid})")


def wait_http(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s")
        time.sleep(1)


def main() -> int:
    check_prerequisites()
    # the deployer CLI (rbac) runs as a child process and needs the package too
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "plugins"), os.environ.get("PYTHONPATH")) if p)
    client = docker.from_env()
    kind = KindRun(work=Path(tempfile.mkdtemp(prefix="deployflow-kind-")), keep=os.environ.get("KEEP") == "1")
    say(f"work directory {kind.work}; {run('kind', 'version', capture=True).strip()}")
    failure: Exception | None = None
    try:
        ensure_images(client)
        start_registry(kind)
        create_cluster(kind)
        wire_registry(kind)
        envoy_service = install_gateway(kind)
        repo = scenarios.make_repo(kind.work / "sample-repo", crash_after_s=10)
        service_file = write_catalog(kind, repo, envoy_service)
        service = load_service(service_file)  # a bad entry fails here, not at DAG import
        prepare_environments(kind, service_file, service)
        start_proxy(kind)
        containers_down(client, STACK)  # an earlier run's Prometheus
        prometheus_url = start_prometheus(client)
        airflow = start_airflow(kind, service_file, service, prometheus_url)
        release_all(kind, airflow, service, repo)
    except (subprocess.CalledProcessError, RuntimeError, requests.RequestException, docker.errors.DockerException,
            ApiError, TimeoutError) as exc:
        failure = exc
        say(f"stopped: {exc}")
    finally:  # an interrupt too: report what ran, then clean up
        passed = report(kind.outcomes) and failure is None
        cleanup(kind, client)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
