"""The deployer steps of a ``kubernetes`` service: the same CLI as DeployerOperator, in a pod.

Each step runs ``python -m deployflow.deployer <step>`` in the deployer image,
in the run's environment's namespace, as its deployer service account (whose
Role ``python -m deployflow.deployer rbac`` prints). The catalog entry goes in
as $DEPLOYFLOW_SERVICE_YAML; the step's JSON result comes back through
KubernetesPodOperator's XCom sidecar, which reads /airflow/xcom/return.json.
Airflow's connection to the cluster needs, in that namespace, to create,
watch, patch and delete pods, read their logs, and ``pods/exec`` (the
result is read by an exec into the sidecar); with a ``config`` block also to
create, list and delete Secrets and to list Deployments (prepare writes the
configuration's Secrets and prunes old ones); to list pods, and to get, create
and update the release ConfigMap (the fencing token, below).

One deployer pod of an environment acts at a time, whatever dies: a step that
writes takes the environment over first (:meth:`KubernetesDeployerOperator.take_over`),
as on Docker: a fencing token from the ledger, made the newest in the release
ConfigMap's key ``fence`` (which the pod reads before each write), then every
earlier deployer pod of the environment (a killed try's, which KPO would
otherwise reattach to) deleted and waited for, before its own pod starts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.container import get_container_status
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from kubernetes.client import AppsV1Api, ApiException
from kubernetes.client import models as k8s

from deployflow.platforms.hardening import RELEASE_USER
from deployflow.airflow.deployer_step import (
    DEPLOYER_IMAGE,
    STOP_GRACE_S,
    WRITING_STEPS,
    DeployerStep,
    begin_step,
    check_grants,
    deployer_arguments,
    deployer_environment,
    promote_now,
    step_outcome,
)
from deployflow.airflow.configuration import release_of_step
from deployflow.airflow.lock import take_step_token
from deployflow.airflow.sites import environment_site
from deployflow.catalog import Service
from deployflow.configuration import ResolvedConfig, config_version_of
from deployflow.errors import ConfigError
from deployflow.kubernetes.manifests import Manifests, kubernetes_environment
from deployflow.platforms.config_files import KEEP

if TYPE_CHECKING:
    from airflow.sdk import Context

RESULT_FILE = "/airflow/xcom/return.json"
LABEL_GROUP = "deployflow.io"
GONE_WITHIN_S = STOP_GRACE_S + 50  # an earlier pod deleted: its grace period, then the kubelet's clean-up


class KubernetesDeployerOperator(DeployerStep, KubernetesPodOperator):
    """One deployer step in a pod of the environment's namespace (see DeployerStep for the parameters).

    The namespace, connection, service account, image pull secrets and what
    to do with the finished pod come from the catalog's ``kubernetes`` block
    of the environment the run targets, chosen when the task runs; the catalog
    entry's text is the pod's $DEPLOYFLOW_SERVICE_YAML.
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, *DeployerStep.STEP_FIELDS)

    def __init__(self, **kwargs: Any) -> None:  # a class's own __init__: Airflow's operator metaclass wraps only that
        super().__init__(**kwargs)

    def platform_arguments(self, step: str, service: Service, service_file: str) -> dict[str, Any]:
        return {
            "image": DEPLOYER_IMAGE,
            "name": f"deployer-{service.name}-{step}",
            "labels": {f"{LABEL_GROUP}/role": "deployer", f"{LABEL_GROUP}/service": service.name, f"{LABEL_GROUP}/step": step},
            "container_resources": k8s.V1ResourceRequirements(requests={"cpu": "100m", "memory": "128Mi"},
                                                              limits={"memory": "256Mi"}),
            # The least privilege of every release container (platforms/hardening.py), as Kubernetes says it: the
            # deployer image's own non-root user, no capability, no privilege escalation, the runtime's seccomp.
            "container_security_context": {
                "runAsNonRoot": True, "runAsUser": RELEASE_USER[0], "runAsGroup": RELEASE_USER[1],
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "xcom_sidecar_container_security_context": {
                "runAsNonRoot": True, "runAsUser": 65534, "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
            },
            "get_logs": True,
            "do_xcom_push": True,
            # The trigger's failure path pushes a failed step's result as its XCom, and
            # the record reads any promote XCom as "promoted": the pod is watched in the worker.
            "deferrable": False,
            # A retry never adopts the pod of the try it replaces (that pod holds a stale token): take_over deletes it.
            "reattach_on_restart": False,
        }

    def execute(self, context: Context) -> dict[str, Any]:
        check_grants(self.step, self.service)
        self.bind_environment()
        self.version = release_of_step(self.step, context, self.service.environments[self.environment_name], self.version,
                                       self.publish_config)
        begin_step(self.step, context)  # a rollback with nothing to undo skips here, before it takes anything over
        fence = self.take_over(context) if self.step in WRITING_STEPS else None
        self.arguments = self.step_arguments(fence, skip_pauses=promote_now(self.step, context, self.log))
        result = super().execute(context)
        # KPO returns only when the deployer container terminated with exit code 0 (container_is_succeeded);
        # cleanup() below has ended the task for any other exit code it read from the pod.
        return step_outcome(self.step, 0, result or None, None)

    def bind_environment(self) -> None:
        """Point the pod at the (rendered) run's environment: where it runs, as whom, and what it runs.

        Called after templates are rendered and before the hook or the pod is built.
        """
        try:
            k = kubernetes_environment(self.service, self.environment_name).kubernetes
        except ConfigError as exc:
            raise AirflowFailException(exc.message) from None
        self.namespace = k.namespace
        self.kubernetes_conn_id = k.connection_id
        self.service_account_name = k.service_account
        self.image_pull_secrets = [k8s.V1LocalObjectReference(name=name) for name in k.image_pull_secrets]
        self.on_finish_action = OnFinishAction(k.on_finish_action)
        self.labels = {**self.labels, f"{LABEL_GROUP}/environment": self.environment_name}
        for cached in ("hook", "client", "pod_manager"):  # cached_property: built from the connection above, not an earlier one
            self.__dict__.pop(cached, None)
        self.arguments = self.step_arguments()
        # Set after rendering: the catalog's PromQL ({{selector}...) is not a template.
        self.env_vars = [
            k8s.V1EnvVar(name="DEPLOYFLOW_SERVICE_YAML", value=Path(self.service_file).read_text()),
            k8s.V1EnvVar(name="DEPLOYFLOW_RESULT_FILE", value=RESULT_FILE),
            *(k8s.V1EnvVar(name=name, value=value) for name, value in deployer_environment(self.step).items()),
        ]

    def step_arguments(self, fence: int | None = None, *, skip_pauses: bool = False) -> list[str]:
        return deployer_arguments(
            self.step, environment=self.environment_name, version=self.version, image=self.image_ref, strategy=self.strategy,
            fence=fence, skip_pauses=skip_pauses,
        )

    def take_over(self, context: Context) -> int:
        """The environment for this step: its fencing token taken and set in the release ConfigMap (every earlier
        pod's writes refused from now on), then every earlier deployer pod of the environment deleted and gone;
        the token, for the pod."""
        home = environment_site(self.service, self.environment_name).store()
        fence = take_step_token(self.service.name, self.environment_name, context["run_id"], home, self.log)
        self.remove_earlier_deployers()
        return fence

    def earlier_pods(self) -> list[k8s.V1Pod]:
        selector = ",".join(f"{LABEL_GROUP}/{key}={value}" for key, value in (
            ("role", "deployer"), ("service", self.service.name), ("environment", self.environment_name)))
        return self.hook.core_v1_client.list_namespaced_pod(self.namespace, label_selector=selector).items

    def remove_earlier_deployers(self) -> None:
        """Delete (SIGTERM, then a kill after STOP_GRACE_S) every deployer pod of this environment and wait until
        none is left. The environment's lock is this run's: any other deployer pod of it is an orphan (a killed
        try's, or an ended run's); KPO would delete a finished one itself unless its on_finish_action keeps it."""
        core = self.hook.core_v1_client
        for pod in self.earlier_pods():
            what = f"deployer pod {pod.metadata.name} ({pod.status.phase if pod.status else 'unknown'})"
            if not pod.status or pod.status.phase not in ("Succeeded", "Failed"):
                self.log.warning("%s still runs: deleting it before this step starts", what)
            core.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=STOP_GRACE_S)
            self.log.info("%s deleted", what)
        deadline = time.monotonic() + GONE_WITHIN_S
        while left := self.earlier_pods():
            if time.monotonic() > deadline:
                raise AirflowException(f"earlier deployer pods of {self.service.name} in {self.environment_name} still there "
                                       f"{GONE_WITHIN_S} s after their deletion: {[p.metadata.name for p in left]} (may be retried)")
            time.sleep(1)

    def publish_config(self, config_version: str, config: ResolvedConfig) -> None:
        """The configuration's two immutable Secrets, written through Airflow's connection (the deployer pod never
        reads a secret: its pods name them); then the oldest beyond KEEP go, never one a Deployment still runs."""
        manifests = Manifests(self.service, self.service.environments[self.environment_name])
        core, namespace = self.hook.core_v1_client, manifests.namespace
        for secret in manifests.config_secrets(config_version, config):
            try:
                core.create_namespaced_secret(namespace, secret)
            except ApiException as exc:
                if exc.status != 409:  # 409: already there, and named by its content
                    raise
        selector = ",".join(f"{k}={v}" for k, v in manifests.selector().items())
        deployments = AppsV1Api(self.hook.get_conn()).list_namespaced_deployment(namespace, label_selector=selector).items
        in_use = {config_version, *(config_version_of((d.metadata.labels or {}).get(f"{LABEL_GROUP}/version", ""))
                                    for d in deployments)}
        stored = core.list_namespaced_secret(namespace, label_selector=f"{selector},{LABEL_GROUP}/config").items
        versions = sorted({s.metadata.labels[f"{LABEL_GROUP}/config"]: s.metadata.creation_timestamp for s in stored}.items(),
                          key=lambda item: item[1])
        for stale, _ in versions[:-KEEP]:
            if stale not in in_use:
                for part in ("config", "files"):
                    core.delete_namespaced_secret(manifests.config_secret_name(stale, part), namespace)

    def cleanup(self, pod: k8s.V1Pod, remote_pod: k8s.V1Pod, xcom_result: dict | None = None,
                context: Context | None = None) -> None:
        """KubernetesPodOperator raises one AirflowException for every failed pod; the deployer
        container's exit code in the pod's status tells the step's own verdicts (exit 1 or 2: not
        retried) from a pod that was killed or evicted (retried)."""
        try:
            # No XCom for a failed step, as on Docker (KPO would push it).
            super().cleanup(pod, remote_pod, xcom_result=None, context=context)
        except AirflowSkipException:
            raise
        except AirflowException:
            step_outcome(self.step, self.container_exit_code(remote_pod), xcom_result, None)
            raise  # KPO's failure stands should the container's exit code read 0

    @staticmethod
    def remove_finished(service: Service, environment: str, run_id: str, log: Any) -> None:
        """Nothing: a finished deployer pod is KPO's to delete (the environment's on_finish_action), and an earlier
        try's is deleted by the next writing step (take_over)."""

    def container_exit_code(self, remote_pod: k8s.V1Pod) -> int | None:
        """The deployer container's exit code, from the pod's status; None when it never terminated."""
        status = get_container_status(remote_pod, self.base_container_name)
        terminated = status.state.terminated if status and status.state else None
        return terminated.exit_code if terminated else None
