"""Operators of the release DAG's second half: the deployer steps, and the record.

Each deploy step runs ``python -m deployflow.deployer <step>`` in the
deployer image through DockerOperator, with the Docker socket and the
routers' state directory mounted: the same CLI that KubernetesPodOperator
runs on Kubernetes. The step's JSON result (its last output line) is the
task's XCom.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from docker.types import Mount

from deployflow.airflow.deployer_step import (
    DEPLOYER_IMAGE,
    begin_step,
    deployer_arguments,
    deployer_environment,
    last_error,
    last_result,
    step_outcome,
)
from deployflow.airflow.announce import announce
from deployflow.airflow.load import AnalysisLoadOperator, finish_load  # noqa: F401 - the DAG factory's name for it
from deployflow.airflow.approval import APPROVAL_XCOM, rejection, suite_results
from deployflow.airflow.configuration import RELEASE_XCOM, release_of_step
from deployflow.airflow.docker_hosts import EngineAddress, docker_client, engine
from deployflow.airflow.lock import release_environment_lock
from deployflow.airflow.ledger import open_ledger, step_seconds
from deployflow.airflow.operators import docker_url, requested_by
from deployflow.airflow.task_ids import (
    ANALYSIS,
    APPROVE_DEPLOY,
    APPROVE_PROMOTE,
    BUILD,
    CHECKOUT,
    FAILURE,
    HEALTH,
    PREPARE,
    PROMOTE,
    REFUSED,
    RESOLVE,
    ROLLBACK,
    SHIFT,
)
from deployflow.catalog import Service, front_url, project_root
from deployflow.configuration import ResolvedConfig, config_version_of
from deployflow.ledger import ReleaseEntry
from deployflow.platforms.config_files import ConfigFiles

if TYPE_CHECKING:
    from airflow.sdk import Context

    from deployflow.rollout.engine import Rollout

CATALOG_MOUNT = "/etc/deployflow"
DOCKER_SOCKET = "/var/run/docker.sock"  # where the deployer container finds the engine it runs on


def environment_rollout(service: Service, environment: str, strategy: str | None = None) -> Rollout:
    """The rollout engine's view of an environment, from where Airflow runs: the environment's Docker engine (its
    docker_host's, else the local one), or the cluster through the environment's Airflow connection (to read what
    runs, never to release). ``strategy``: the run's, if it overrides the environment's."""
    from deployflow.deployer.wiring import rollout_for

    env = service.environments[environment]
    if env.kubernetes is not None:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        client = KubernetesHook(conn_id=env.kubernetes.connection_id).api_client
    else:
        client = docker_client(service, environment)  # the environment's docker_host, else the local engine
    return rollout_for(service, environment, client=client, strategy=strategy or None, state_dir=state_dir())


def state_dir() -> Path:
    return Path(os.environ.get("DEPLOYFLOW_STATE") or project_root() / ".state")


def mounted_service_file(service: Service) -> str:
    """Where the deployer container sees the service's catalog entry."""
    return f"{CATALOG_MOUNT}/{service.name}.yaml"


class DeployerOperator(DockerOperator):
    """One deployer step for this run's release, in the deployer image.

    :param step: ``prepare``, ``shift``, ``promote``, ``rollback`` or ``status``.
    :param service: the catalog entry; its file is mounted read-only into the container.
    :param service_file: that entry's path on this host.
    :param environment_name: target environment (templated).
    :param version: image tag being released (templated).
    :param image_ref: image reference to run (templated).
    :param strategy: strategy name (templated).
    """

    template_fields: Sequence[str] = (*DockerOperator.template_fields, "environment_name", "version", "image_ref", "strategy")
    ui_color = "#e0f2f1"

    def __init__(
        self, *, step: str, service: Service, service_file: str, environment_name: str, version: str = "",
        image_ref: str = "", strategy: str = "", **kwargs: Any,
    ) -> None:
        state = str(state_dir())
        kwargs.setdefault("docker_url", docker_url())
        super().__init__(
            image=DEPLOYER_IMAGE,
            command=None,
            mounts=[
                Mount(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind"),  # execute() mounts the engine's own
                Mount(target=state, source=state, type="bind"),
                Mount(target=mounted_service_file(service), source=service_file, type="bind", read_only=True),
            ],
            environment={
                "DEPLOYFLOW_STATE": state,
                "DEPLOYFLOW_STACK": os.environ.get("DEPLOYFLOW_STACK", "local"),
                "DEPLOYFLOW_HAPROXY_IMAGE": os.environ.get("DEPLOYFLOW_HAPROXY_IMAGE", "deployflow/haproxy:1"),
            },
            network_mode="host",
            mount_tmp_dir=False,
            auto_remove="never",  # the exit code is read from the stopped container; execute() removes it
            labels={"io.deployflow.role": "deployer", "io.deployflow.service": service.name, "io.deployflow.step": step},
            **kwargs,
        )
        self.step = step
        self.service = service
        self.environment_name = environment_name
        self.version = version
        self.image_ref = image_ref
        self.strategy = strategy

    def execute(self, context: Context) -> dict[str, Any]:
        self.use_engine(engine(self.service, self.environment_name))
        state_dir().mkdir(parents=True, exist_ok=True)
        env = self.service.environments.get(self.environment_name)
        version = release_of_step(self.step, context, env, self.version, self.publish_config) if env else self.version
        begin_step(self.step, context)
        self.command = deployer_arguments(
            self.step, service_file=mounted_service_file(self.service), environment=self.environment_name,
            version=version, image=self.image_ref, strategy=self.strategy,
        )
        self.environment = {**self.environment, **deployer_environment(self.step)}
        self.do_xcom_push = True
        self.xcom_all = True  # the result line may come before the last log line (stdout and stderr interleave)
        try:
            lines = self.run_container(context)
            exit_code = self.container_exit_code()
        finally:
            self.remove_container()
        return step_outcome(self.step, exit_code, last_result(lines), last_error(lines))

    def use_engine(self, address: EngineAddress) -> None:
        """Run on ``address``'s engine (read at run time, before anything makes DockerOperator's cached hook, which
        reads docker_url and tls_*); the deployer inside drives that same engine through its socket, mounted.
        The local engine changes nothing: the operator keeps what it was given."""
        self.log.info("deployer %s on %s", self.step, address.describe() if address.connection else
                      f"the local engine: {self.docker_url}")
        if address.connection is None:
            return
        self.docker_url = address.url
        self.tls_ca_cert, self.tls_client_cert, self.tls_client_key = (
            address.tls_ca_cert, address.tls_client_cert, address.tls_client_key)
        self.tls_verify, self.tls_hostname = address.tls_verify, address.tls_hostname
        self.mounts = [Mount(target=DOCKER_SOCKET, source=address.socket, type="bind"),
                       *(m for m in self.mounts if m["Target"] != DOCKER_SOCKET)]

    def publish_config(self, config_version: str, config: ResolvedConfig) -> None:
        """The resolved configuration where the deployer (and only root on this host) reads it: a 0600 file."""
        stack = self.environment["DEPLOYFLOW_STACK"]
        labels = [f"io.deployflow.stack={stack}", "io.deployflow.role=app", f"io.deployflow.service={self.service.name}",
                  f"io.deployflow.environment={self.environment_name}"]
        running = self.cli.containers(all=True, filters={"label": labels})
        in_use = frozenset(config_version_of(c["Labels"].get("io.deployflow.version", "")) for c in running)
        ConfigFiles.of(state_dir(), stack=stack, service=self.service.name, environment=self.environment_name).save(
            config_version, config, in_use=in_use)

    def run_container(self, context: Context) -> list[str]:
        """Run the step; its log lines whatever its exit code (DockerOperator raises for a non-zero one)."""
        try:
            return super().execute(context) or []
        except DockerContainerFailedException as exc:
            return exc.logs or []

    def container_exit_code(self) -> int:
        """The finished container's exit code, from its state (auto_remove="never" keeps it until then)."""
        return self.cli.inspect_container(self.container["Id"])["State"]["ExitCode"]

    def remove_container(self) -> None:
        """Remove the step's container, whatever happened (DockerOperator does not: auto_remove="never")."""
        if self.container is None:
            return  # never created (the image could not be pulled): nothing to remove
        self.cli.remove_container(self.container["Id"], force=True)
        self.container = None  # on_kill after a timeout finds nothing left to stop


class ReleaseRecordOperator(BaseOperator):
    """The last task: record the release (who, what, where, outcome, timings) and show what is live.

    Fails when the release did not reach production, so the run's state says
    what happened to the release.

    :param service: the catalog entry.
    """

    ui_color = "#ede7f6"

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def execute(self, context: Context) -> dict[str, Any]:
        request = context["ti"].xcom_pull(task_ids=RESOLVE) or {}
        try:
            finish_load(self.service, request.get("environment", ""), self.log)  # the judging is over: its load too
            return self._finish(context, request)
        finally:  # whatever happened, the environment is free for the next release
            if request.get("environment") in self.service.environments:  # resolve took no lock when it refused
                release_environment_lock(self.service.name, request["environment"], context["run_id"], self.log)

    def _finish(self, context: Context, request: dict[str, Any]) -> dict[str, Any]:
        """Record the release, tell its channels, show what is live; fail unless it was promoted."""
        ti = context["ti"]
        entry = self._record(context)
        announce(self.service, notified_event(entry), request, context, version=entry.version,
                 reason=entry.failure or "", previous=entry.previous)
        outcome = entry.outcome
        if request.get("environment") in self.service.environments:
            live = self._live(request["environment"])
            if live is not None:
                ti.xcom_push(key="live", value=live)
        if outcome != "promoted":
            because = f": {entry.failure}" if entry.failure else ""
            version = f" {entry.version}" if entry.version else ""
            raise AirflowFailException(f"release of {self.service.name}{version}: {outcome}{because}")
        return entry.to_dict()

    def _record(self, context: Context) -> ReleaseEntry:
        """The release's ledger row, written (one per run: a retried record updates it)."""
        ti = context["ti"]
        pulled = {t: ti.xcom_pull(task_ids=t) for t in (RESOLVE, CHECKOUT, BUILD, PREPARE, PROMOTE, ROLLBACK)}
        refused = ti.xcom_pull(task_ids=RESOLVE, key=REFUSED)
        # A refused request has no resolved request; who asked is the run's own fact, and is recorded anyway.
        request = pulled[RESOLVE] or {"service": self.service.name, "requested_by": requested_by(context["dag_run"])}
        # A promotion's artifact stands for the checkout and the build it skipped.
        artifact = request.get("artifact") or {}
        built = artifact or pulled[BUILD] or {}
        source = artifact or pulled[CHECKOUT] or {}
        approval = next((d for d in (ti.xcom_pull(task_ids=g, key=APPROVAL_XCOM) for g in (APPROVE_DEPLOY, APPROVE_PROMOTE))
                         if d), None)
        rejected = approval is not None and approval["decision"] != "approved"
        outcome = "refused" if refused else self._outcome(pulled, bool(ti.xcom_pull(task_ids=PREPARE, key="started")), rejected)
        entry = ReleaseEntry.of(
            request=request, run_id=context["run_id"], outcome=outcome,
            commit=source.get("sha"), image=built.get("ref"),
            previous=(pulled[PREPARE] or {}).get("previous"),
            started=context["dag_run"].start_date, rollback=pulled[ROLLBACK],
            judged=refused or (rejection(approval) if rejected else None)
            or analysis_failure(ti.xcom_pull(task_ids=ANALYSIS, key="verdict"))
            or ti.xcom_pull(task_ids=HEALTH, key=FAILURE),
            config=(ti.xcom_pull(task_ids=PREPARE, key=RELEASE_XCOM) or {}).get("config"),
            committed_at=source.get("committed_at"),
            steps=step_seconds({**pulled, SHIFT: ti.xcom_pull(task_ids=SHIFT)}),
            digest=built.get("digest"),
            analysis_score=(ti.xcom_pull(task_ids=ANALYSIS, key="verdict") or {}).get("score"),
            cost=(pulled[PROMOTE] or pulled[ROLLBACK] or {}).get("cost"),
            approval=approval, tests=artifact.get("tests") if artifact else suite_results(ti, self.service),
        )
        ledger = open_ledger(state_dir())
        try:
            ledger.record(entry)
        finally:
            ledger.dispose()
        self.log.info("release %s", entry.summary())
        return entry

    @staticmethod
    def _outcome(pulled: dict[str, Any], deploy_started: bool, rejected: bool = False) -> str:
        if pulled[PROMOTE]:
            return "promoted"
        rollback = pulled[ROLLBACK] or {}
        if rejected:
            return "rejected" + (f", rolled back to {rollback['to']}" if rollback.get("rolled_back") and rollback.get("to") else "")
        if rollback.get("rolled_back"):
            return "rolled back" + (f" to {rollback['to']}" if rollback.get("to") else " (first deploy: nothing left)")
        if deploy_started:
            return "failed during deploy"
        return "failed before deploy"


    def _live(self, environment: str) -> dict[str, Any] | None:
        env = self.service.environments[environment]
        try:
            status = environment_rollout(self.service, environment).status()
        except Exception as exc:  # the record must not fail on a status read
            self.log.warning("could not read what is live in %s: %s", environment, exc)
            return None
        status["url"] = f"{front_url(self.service, env)}/"
        self.log.info("live in %s: %s", environment, json.dumps(status))
        return status

def notified_event(entry: ReleaseEntry) -> str:
    """The channels' name for how the release ended."""
    for prefix, event in (("promoted", "promoted"), ("rejected", "rejected"), ("rolled back", "rolled_back")):
        if entry.outcome.startswith(prefix):
            return event
    return "failed"


def analysis_failure(verdict: dict[str, Any] | None) -> str | None:
    """Why canary analysis failed the release, from its last verdict (None: it did not)."""
    if not verdict or verdict.get("result") != "fail":
        return None
    why = verdict.get("guard") or "; ".join((verdict.get("reasons") or [])[:2]) or "its verdict failed"
    return f"canary analysis failed at interval {verdict.get('interval')}: {why}"
