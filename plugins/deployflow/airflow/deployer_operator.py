"""The deployer steps of a ``docker`` environment: ``python -m deployflow.deployer <step>`` in the deployer
image through DockerOperator, with the Docker socket and the routers' state directory mounted: the same CLI
that KubernetesDeployerOperator runs in a pod. The step's JSON result (its last output line) is the task's XCom.

One deployer of an environment acts at a time, whatever dies: a step that writes takes the environment over
first (:meth:`DeployerOperator.take_over`): a fencing token, made the newest in the file beside the release
record (``stores/file.py``), then every earlier deployer container of the environment (a killed try's, which a
SIGKILL of the task left running) stopped, waited for and removed, before its own starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.sdk.exceptions import AirflowException
from docker.types import Mount

from deployflow.airflow.configuration import release_of_step
from deployflow.airflow.deployer_step import (
    DEPLOYER_IMAGE,
    STOP_GRACE_S,
    WRITING_STEPS,
    DeployerStep,
    begin_step,
    check_grants,
    deployer_arguments,
    deployer_environment,
    last_error,
    last_result,
    promote_now,
    step_outcome,
)
from deployflow.airflow.docker_hosts import EngineAddress, docker_client, engine
from deployflow.airflow.hardened_docker import HardenedDockerOperator
from deployflow.airflow.lock import take_step_token
from deployflow.airflow.registry import registry_credentials
from deployflow.airflow.settings import docker_url, stack_settings, state_dir
from deployflow.airflow.sites import environment_site
from deployflow.catalog import Service
from deployflow.configuration import ResolvedConfig, config_version_of
from deployflow.errors import StageFailed
from deployflow.pipeline.registry import auth_config, pull_image
from deployflow.platforms.config_files import ConfigFiles
from deployflow.platforms.hardening import DEPLOYER_LIMITS, release_user, socket_group

if TYPE_CHECKING:
    from airflow.sdk import Context

CATALOG_MOUNT = "/etc/deployflow"
DOCKER_SOCKET = "/var/run/docker.sock"  # where the deployer container finds the engine it runs on
FINISHED = ("created", "exited", "dead")  # a container in these states runs nothing: removed as it is
LABEL = "io.deployflow"


def mounted_service_file(service: Service) -> str:
    """Where the deployer container sees the service's catalog entry."""
    return f"{CATALOG_MOUNT}/{service.name}.yaml"


class DeployerOperator(DeployerStep, HardenedDockerOperator):
    """One deployer step in a container of the deployer image on the environment's Docker engine (see
    DeployerStep for the parameters); the service's catalog file is mounted read-only into it.

    It runs as the owner of the state directory (``hardening.release_user``: Airflow's user, whose files it shares,
    or the deployer image's user where Airflow runs as root)
    in the Docker socket's group, never with a capability. The socket is root's on the host: whoever holds
    it can start any container, so the deployer runs only the deployer image, by ID, and reads a catalog
    file as data.
    """

    template_fields: Sequence[str] = (*HardenedDockerOperator.template_fields, *DeployerStep.STEP_FIELDS)

    def __init__(self, **kwargs: Any) -> None:  # a class's own __init__: Airflow's operator metaclass wraps only that
        super().__init__(**kwargs)

    def platform_arguments(self, step: str, service: Service, service_file: str) -> dict[str, Any]:
        settings = stack_settings()
        state = str(settings.state_dir)
        return {
            "image": DEPLOYER_IMAGE,
            "command": None,
            "docker_url": docker_url(),
            "mounts": [
                Mount(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind"),  # execute() mounts the engine's own
                Mount(target=state, source=state, type="bind"),
                Mount(target=mounted_service_file(service), source=service_file, type="bind", read_only=True),
            ],
            "environment": {
                "DEPLOYFLOW_STATE": state,
                "DEPLOYFLOW_STACK": settings.stack,
                "DEPLOYFLOW_HAPROXY_IMAGE": settings.haproxy_image,
            },
            "network_mode": "host",
            "mount_tmp_dir": False,
            "auto_remove": "never",  # the exit code is read from the stopped container; execute() removes it
            "labels": {f"{LABEL}.stack": settings.stack, f"{LABEL}.role": "deployer",
                       f"{LABEL}.service": service.name, f"{LABEL}.step": step},
            "limits": DEPLOYER_LIMITS,
        }

    def execute(self, context: Context) -> dict[str, Any]:
        check_grants(self.step, self.service)
        self.use_engine(engine(self.service, self.environment_name))
        state_dir().mkdir(parents=True, exist_ok=True)
        env = self.service.environments.get(self.environment_name)
        version = release_of_step(self.step, context, env, self.version, self.publish_config) if env else self.version
        self.labels = {**self.labels, **self.run_labels(context)}
        begin_step(self.step, context)  # a rollback with nothing to undo skips here, before it takes anything over
        fence = self.take_over(context) if self.step in WRITING_STEPS else None
        self.user = release_user(state_dir())  # after prepare wrote the configuration it reads (and the token file)
        self.group_add = socket_group(next(m["Source"] for m in self.mounts if m["Target"] == DOCKER_SOCKET))
        if self.step == "prepare":
            self.pull_release_image()
        self.command = deployer_arguments(
            self.step, service_file=mounted_service_file(self.service), environment=self.environment_name,
            version=version, image=self.image_ref, strategy=self.strategy, fence=fence,
            skip_pauses=promote_now(self.step, context, self.log),
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

    def run_labels(self, context: Context) -> dict[str, str]:
        """What tells this step's container from another's: its environment, run, task and try."""
        return {f"{LABEL}.environment": self.environment_name, f"{LABEL}.run-id": context["run_id"],
                f"{LABEL}.task-id": self.task_id, f"{LABEL}.try": str(context["ti"].try_number)}

    def take_over(self, context: Context) -> int:
        """The environment for this step: its fencing token taken (every earlier step's writes refused from now
        on), then every earlier deployer of the environment stopped and removed; the token, for the deployer."""
        home = environment_site(self.service, self.environment_name).store()
        fence = take_step_token(self.service.name, self.environment_name, context["run_id"], home, self.log)
        self.remove_earlier_deployers()
        return fence

    def remove_earlier_deployers(self) -> None:
        """Stop (SIGTERM, then a kill after STOP_GRACE_S) and wait for every deployer container of this environment
        still running, then remove it and every finished one. The environment's lock is this run's: any other
        deployer of it is an orphan (a killed try's, or an ended run's)."""
        labels = [f"{LABEL}.{key}={self.labels[f'{LABEL}.{key}']}" for key in ("stack", "role", "service", "environment")]
        for found in self.cli.containers(all=True, filters={"label": labels}):
            theirs = found.get("Labels") or {}
            what = (f"deployer {theirs.get(f'{LABEL}.step', '?')} of run {theirs.get(f'{LABEL}.run-id', '?')} "
                    f"(try {theirs.get(f'{LABEL}.try', '?')})")
            if found["State"] not in FINISHED:
                self.log.warning("%s still runs: stopping it before this step starts", what)
                self.cli.stop(found["Id"], timeout=STOP_GRACE_S)
                self.cli.wait(found["Id"])
            self.cli.remove_container(found["Id"], force=True)
            self.log.info("%s removed", what)

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

    def pull_release_image(self) -> None:
        """The release's image onto the environment's engine, with the registry's credentials, before the deployer
        starts: the deployer, which drives the engine through its socket, finds it there and never holds them.

        :raises AirflowException: the registry did not give it (may be retried: it may be restarting).
        """
        try:
            found = pull_image(self.cli, self.image_ref, auth_config(registry_credentials(), self.image_ref))
        except StageFailed as exc:
            raise AirflowException(f"{exc} (may be retried)") from None
        self.log.info("image %s: %s", self.image_ref, found)

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

    @staticmethod
    def remove_finished(service: Service, environment: str, run_id: str, log: Any) -> None:
        """Remove this run's finished deployer containers of ``environment`` (the record task, at the end of every
        release): a step removes its own as it ends, but not one a SIGKILL of its task left behind with no retry to
        find it. Running ones are left alone (the next writing step stops them). Best effort: a warning, never a
        failure."""
        labels = [f"{LABEL}.stack={stack_settings().stack}", f"{LABEL}.role=deployer", f"{LABEL}.service={service.name}",
                  f"{LABEL}.environment={environment}", f"{LABEL}.run-id={run_id}"]
        try:
            client = docker_client(service, environment)
            for found in client.containers.list(all=True, filters={"label": labels}, ignore_removed=True):
                if found.status in FINISHED:
                    found.remove(force=True)
                    log.info("deployer container %s (%s, finished) removed", found.name,
                             found.labels.get(f"{LABEL}.step", "?"))
        except Exception as exc:  # noqa: BLE001 - housekeeping must not change how the release is recorded
            log.warning("could not remove the finished deployer containers of %s in %s: %s", service.name, environment, exc)
