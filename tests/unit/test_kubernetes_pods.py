"""The deployer pods of a kubernetes service: what KubernetesPodOperator would create, and how a failed pod ends the task.

Every step of the release DAG built from include/k8s/services/sample-app.yaml
is rendered for every environment as a run would render it, and its pod is
validated against the Kubernetes schemas (strict). No cluster: the
connections are faked by environment variables (each with its own XCom
sidecar image, so the pod shows which connection the hook read) and the
hook's in-cluster probe is patched.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from kubernetes.client import ApiClient, ApiException
from kubernetes.client import models as k8s

from deployflow.airflow.dag_factory import release_dag
from deployflow.airflow.kubernetes_deploy import KubernetesDeployerOperator
from deployflow.catalog import load_service, parse_service
from tests.k8s_schemas import SchemaError, validate

ROOT = Path(__file__).resolve().parents[2]
SERVICE_FILE = ROOT / "include" / "k8s" / "services" / "sample-app.yaml"
SERVICE = load_service(SERVICE_FILE)
STEPS = ("prepare", "shift", "promote", "rollback")
DEPLOYER_IMAGE = "registry.example/deployflow/deployer:7"
BUILT = {"ref": "registry.example/sample-app:0123456789ab", "digest": "sha256:" + "a" * 64, "short_sha": "0123456789ab"}
# A label key: an optional DNS-subdomain prefix and a name; a value: 63 characters at most.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class RunTI:
    """The task instance of one run: the upstream XComs a deploy task renders from; records pushes."""

    def __init__(self, dag_id: str, task_id: str, environment: str, strategy: str, started: bool = True) -> None:
        self.dag_id, self.task_id, self.try_number, self.map_index = dag_id, task_id, 1, -1
        self.pulled = {
            ("resolve", "return_value"): {"environment": environment, "strategy": strategy},
            ("build", "return_value"): BUILT,
            ("prepare", "started"): started or None,
        }
        self.pushed: list[tuple[str, object]] = []

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.pulled.get((task_ids, key))

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))


def run_context(task: KubernetesDeployerOperator, environment: str, *, started: bool = True) -> dict:
    ti = RunTI(task.dag_id, task.task_id, environment, SERVICE.environments[environment].strategy, started)
    # The deployer image's Airflow Variable, as the template reads it (var.value.get).
    return {"ti": ti, "run_id": "manual__2026-11-28T07:00:00", "dag": task.dag, "params": {},
            "var": {"value": {"deployflow_deployer_image": DEPLOYER_IMAGE}}}


def sidecar_image(conn_id: str) -> str:
    return f"registry.example/xcom-sidecar:{conn_id}"


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """One Airflow connection per environment, from the environment; nothing else exists."""
    for env in SERVICE.environments.values():
        extra = {"in_cluster": False, "xcom_sidecar_container_image": sidecar_image(env.kubernetes.connection_id)}
        monkeypatch.setenv(f"AIRFLOW_CONN_{env.kubernetes.connection_id.upper()}",
                           json.dumps({"conn_type": "kubernetes", "extra": extra}))


def deploy_task(step: str) -> KubernetesDeployerOperator:
    return release_dag(SERVICE, SERVICE_FILE).get_task(step)


def built_pod(task: KubernetesDeployerOperator, context: dict) -> dict:
    """What execute() would create: templates rendered, the environment bound, the pod request built."""
    task.render_template_fields(context)
    task.bind_environment()
    with mock.patch.object(KubernetesHook, "is_in_cluster", new_callable=mock.PropertyMock, return_value=False):
        pod = task.build_pod_request_obj(context)
    return ApiClient().sanitize_for_serialization(pod)


@pytest.mark.parametrize("environment", list(SERVICE.environments))
@pytest.mark.parametrize("step", STEPS)
def test_every_deployer_pod_is_valid_and_runs_the_step_in_its_environment(step, environment):
    task = deploy_task(step)
    pod = built_pod(task, run_context(task, environment))
    validate(pod)

    k = SERVICE.environments[environment].kubernetes
    spec = pod["spec"]
    base, sidecar = spec["containers"]
    assert (pod["metadata"]["namespace"], spec["serviceAccountName"]) == (k.namespace, k.service_account)
    assert base["image"] == DEPLOYER_IMAGE
    assert sidecar["image"] == sidecar_image(k.connection_id)  # the hook read this environment's connection
    assert base["args"] == [
        step, "--environment", environment, "--version", "0123456789ab", "--image", f"{BUILT['ref']}@{BUILT['digest']}",
        "--strategy", SERVICE.environments[environment].strategy,
    ]
    assert not base.get("command")  # the image's ENTRYPOINT: python3 -m deployflow.deployer
    env = {e["name"]: e["value"] for e in base["env"]}
    # promote reads metrics in its post-promotion watch: where Airflow reads them (no secret: a URL)
    assert set(env) == {"DEPLOYFLOW_SERVICE_YAML", "DEPLOYFLOW_RESULT_FILE"} | ({"DEPLOYFLOW_PROMETHEUS_URL"} if step == "promote" else set())
    assert parse_service(yaml.safe_load(env["DEPLOYFLOW_SERVICE_YAML"])) == SERVICE
    assert env["DEPLOYFLOW_RESULT_FILE"] == "/airflow/xcom/return.json"
    assert base["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    for container in (base, sidecar):  # least privilege, as on a Docker host: no root, no capability, no escalation
        context = container["securityContext"]
        assert context["runAsNonRoot"] and context["runAsUser"] != 0, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
    assert spec["restartPolicy"] == "Never"
    assert [v["name"] for v in spec["volumes"]] == ["xcom"] and "emptyDir" in spec["volumes"][0]  # no host path, no Docker socket

    labels = pod["metadata"]["labels"]
    assert {key: labels[key] for key in ("deployflow.io/role", "deployflow.io/service", "deployflow.io/step")} == {
        "deployflow.io/role": "deployer", "deployflow.io/service": "sample-app", "deployflow.io/step": step}
    for key, value in labels.items():
        assert LABEL_KEY.match(key) and LABEL_VALUE.match(value), (key, value)
    assert DNS_LABEL.match(pod["metadata"]["name"]), pod["metadata"]["name"]
    assert task.on_finish_action == OnFinishAction(k.on_finish_action)


def test_pull_secrets_and_the_finished_pod_follow_the_environment(tmp_path):
    raw = yaml.safe_load(SERVICE_FILE.read_text())
    raw["environments"]["prod"]["kubernetes"].update(image_pull_secrets=["regcred"], on_finish_action="keep_pod")
    service_file = tmp_path / "sample-app.yaml"
    service_file.write_text(yaml.safe_dump(raw))
    task = release_dag(load_service(service_file), service_file).get_task("promote")
    pod = built_pod(task, run_context(task, "prod"))
    validate(pod)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert task.on_finish_action == OnFinishAction.KEEP_POD


def test_the_hook_is_built_from_the_run_environments_connection_even_if_built_before():
    task = deploy_task("shift")
    assert task.hook.conn_id == "kubernetes_default"  # what KPO would cache before the environment is known
    task.environment_name = "staging"
    task.bind_environment()
    assert task.hook.conn_id == "kubernetes_staging"


def test_a_catalog_query_with_braces_reaches_the_pod_as_written(tmp_path):
    # The YAML text is not a template: a PromQL selector placeholder ({{selector}...) is passed as written.
    raw = yaml.safe_load(SERVICE_FILE.read_text())
    raw["environments"]["staging"]["analysis"]["metrics"] = [
        {"name": "errors", "kind": "errors", "query": 'http_requests_total{{selector},path!~"/health"}'}]
    service_file = tmp_path / "sample-app.yaml"
    service_file.write_text(yaml.safe_dump(raw))
    task = release_dag(load_service(service_file), service_file).get_task("shift")
    pod = built_pod(task, run_context(task, "staging"))
    [yaml_text] = [e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "DEPLOYFLOW_SERVICE_YAML"]
    assert yaml_text == service_file.read_text()


def test_a_run_for_an_environment_missing_from_the_catalog_fails_before_any_pod():
    task = deploy_task("prepare")
    task.environment_name = "qa"
    with pytest.raises(AirflowFailException, match="'qa' is not a kubernetes environment of sample-app; valid values are 'dev', 'staging', 'prod'"):
        task.bind_environment()


@pytest.fixture
def valid_pod() -> dict:
    task = deploy_task("prepare")
    return built_pod(task, run_context(task, "dev"))


def _port_as_text(pod: dict) -> None:
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": "8000"}]


def _unknown_field(pod: dict) -> None:
    pod["spec"]["containers"][0]["imagePullSecret"] = "regcred"


def _bad_restart_policy(pod: dict) -> None:
    pod["spec"]["restartPolicy"] = 0


@pytest.mark.parametrize("mutate", [_port_as_text, _unknown_field, _bad_restart_policy], ids=lambda f: f.__name__.strip("_"))
def test_the_schema_check_rejects_a_pod_with_one_bad_field(valid_pod, mutate):
    validate(valid_pod)
    broken = copy.deepcopy(valid_pod)
    mutate(broken)
    with pytest.raises(SchemaError, match="Pod 'deployer-sample-app-prepare-"):
        validate(broken)


# ---- how a finished pod ends the task --------------------------------------------------------

def finished_pod(exit_code: int | None, *, reason: str | None = None) -> k8s.V1Pod:
    """The remote pod KPO reads once the deployer container has stopped (exit_code None: it never terminated)."""
    state = (k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code)) if exit_code is not None
             else k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="ContainerCreating")))
    statuses = [k8s.V1ContainerStatus(name="base", image=DEPLOYER_IMAGE, image_id="", ready=False, restart_count=0, state=state)]
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="deployer-sample-app-prepare-x", namespace="sample-app-dev"),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base"), k8s.V1Container(name="airflow-xcom-sidecar")]),
        status=k8s.V1PodStatus(phase="Succeeded" if exit_code == 0 else "Failed", reason=reason, container_statuses=statuses),
    )


@pytest.fixture
def ending() -> tuple[KubernetesDeployerOperator, mock.Mock, dict]:
    """The prepare task after its pod ran, with KPO's own cleanup talking to a fake API."""
    task = deploy_task("prepare")
    task.environment_name = "dev"
    task.bind_environment()
    pod_manager = mock.Mock()
    pod_manager.read_pod.side_effect = lambda pod: pod
    task.__dict__.update(pod_manager=pod_manager, client=mock.Mock())
    return task, pod_manager, run_context(task, "dev")


@pytest.mark.parametrize("exit_code, reason, result, raised, message", [
    (1, None, {"step": "prepare", "ok": False, "error": "green-1 never became ready"}, AirflowFailException,
     "^green-1 never became ready$"),
    (2, None, None, AirflowFailException, "^deployer prepare exited with 2$"),
    (137, "OOMKilled", None, AirflowException, r"^deployer prepare exited with 137 \(may be retried\)$"),
    (None, "Evicted", None, AirflowException, r"^deployer prepare exited with None \(may be retried\)$"),
])
def test_the_deployers_exit_code_decides_whether_the_step_is_retried(ending, exit_code, reason, result, raised, message):
    task, pod_manager, context = ending
    remote = finished_pod(exit_code, reason=reason)
    with pytest.raises(raised, match=message) as caught:
        task.cleanup(pod=remote, remote_pod=remote, xcom_result=result, context=context)
    assert (caught.type is AirflowFailException) == (exit_code in (1, 2))
    assert context["ti"].pushed == []  # a failed step leaves no result for the record to read
    pod_manager.delete_pod.assert_called_once_with(remote)  # the catalog's on_finish_action: delete_pod


def test_a_step_that_exits_0_ends_cleanly(ending):
    task, pod_manager, context = ending
    remote = finished_pod(0)
    task.cleanup(pod=remote, remote_pod=remote, xcom_result={"step": "prepare", "ok": True}, context=context)
    pod_manager.delete_pod.assert_called_once_with(remote)


# ---- what execute does around the pod --------------------------------------------------------

@pytest.mark.parametrize("step, started, pod_result, outcome, pushed", [
    ("prepare", False, {"step": "prepare", "ok": True}, {"step": "prepare", "ok": True},
     [("release", {"version": "0123456789ab", "image_version": "0123456789ab", "config": ""}), ("started", True)]),
    ("rollback", False, None, AirflowSkipException, [("skipped", "nothing was deployed by this run: nothing to roll back")]),
    ("rollback", True, {"step": "rollback", "ok": True, "rolled_back": True}, {"step": "rollback", "ok": True, "rolled_back": True},
     []),
    ("promote", True, None, AirflowFailException, []),
])
def test_execute_marks_the_start_skips_an_empty_rollback_and_returns_the_result(step, started, pod_result, outcome, pushed):
    task = deploy_task(step)
    task.environment_name, task.version = "dev", "0123456789ab"
    context = run_context(task, "dev", started=started)
    with mock.patch.object(KubernetesPodOperator, "execute", return_value=pod_result) as pod_run, \
            mock.patch.object(KubernetesDeployerOperator, "take_over", return_value=7) as taken:
        if isinstance(outcome, dict):
            assert task.execute(context) == outcome
        else:
            with pytest.raises(outcome):
                task.execute(context)
    assert pod_run.called == taken.called == (outcome is not AirflowSkipException)
    assert context["ti"].pushed == pushed
    if pod_run.called:  # every step here writes: its pod runs with the token it took
        assert task.arguments[-2:] == ["--fence", "7"]


# ---- the configuration's Secrets, written by prepare through Airflow's connection ------------------------

def _secret(name: str, config_version: str, created: int) -> mock.Mock:
    return mock.Mock(metadata=mock.Mock(name=name, labels={"deployflow.io/config": config_version}, creation_timestamp=created))


def test_prepare_writes_the_configurations_secrets_and_prunes_old_ones_but_never_one_in_use():
    from deployflow.configuration import ResolvedConfig
    from deployflow.platforms.config_files import KEEP

    task = deploy_task("prepare")
    task.environment_name = "prod"
    core = mock.Mock()
    stored = [_secret("x", f"{n:012x}", n) for n in range(KEEP + 2)]  # the oldest two are beyond KEEP
    core.list_namespaced_secret.return_value = mock.Mock(items=stored)
    core.create_namespaced_secret.side_effect = [None, ApiException(status=409)]  # files: already there (same content)
    running = mock.Mock(metadata=mock.Mock(labels={"deployflow.io/version": f"0123456789ab-c{0:012x}"}))  # the oldest runs
    hook = mock.Mock(core_v1_client=core)
    with mock.patch.object(KubernetesDeployerOperator, "hook", hook), \
            mock.patch("deployflow.airflow.kubernetes_deploy.AppsV1Api") as apps:
        apps.return_value.list_namespaced_deployment.return_value = mock.Mock(items=[running])
        task.publish_config("c0ffee00c0de", ResolvedConfig(env={"API_KEY": "k-123"}, secret=frozenset({"API_KEY"})))
    written = [c.args for c in core.create_namespaced_secret.call_args_list]
    assert [(ns, body["metadata"]["name"]) for ns, body in written] == [
        ("sample-app-prod", "sample-app-config-c0ffee00c0de"), ("sample-app-prod", "sample-app-files-c0ffee00c0de")]
    for _, body in written:
        validate(body)
    # Of the two beyond KEEP, the one a Deployment runs stays; the other goes, variables and files.
    assert [c.args for c in core.delete_namespaced_secret.call_args_list] == [
        (f"sample-app-config-{1:012x}", "sample-app-prod"), (f"sample-app-files-{1:012x}", "sample-app-prod")]


def test_a_secret_write_the_cluster_refuses_fails_the_step():
    from deployflow.configuration import ResolvedConfig

    task = deploy_task("prepare")
    task.environment_name = "prod"
    core = mock.Mock()
    core.create_namespaced_secret.side_effect = ApiException(status=403, reason="Forbidden")
    with mock.patch.object(KubernetesDeployerOperator, "hook", mock.Mock(core_v1_client=core)), pytest.raises(ApiException):
        task.publish_config("c0ffee00c0de", ResolvedConfig(env={"A": "1"}))
