"""Operators of the release DAG's first half: build (which checks out first), test (resolve is ``resolve.py``).

Thin adapters: they read Airflow's context (params, run id, XCom) and call the
Airflow-free core in ``deployflow``. Every failure the core raises on purpose
(:class:`StageFailed`, :class:`ConfigError`) becomes an AirflowFailException:
a broken Dockerfile or a bad ref does not get better with a retry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.hooks.docker import DockerHook
from airflow.sdk import BaseOperator, Variable
from docker.types import Mount

from deployflow.airflow.checkout_step import build_result, check_out
from deployflow.airflow.deployer_step import log_lines
from deployflow.airflow.grants import require_grants
from deployflow.airflow.hardened_docker import HardenedDockerOperator
from deployflow.airflow.registry import registry_credentials
from deployflow.airflow.resolve import XCOM_RETURN_KEY, unbuilt_reason
from deployflow.airflow.runs import is_scheduled, skip
from deployflow.airflow.settings import docker_url, stack_settings
from deployflow.airflow.task_ids import RESOLVE
from deployflow.catalog import Service
from deployflow.errors import DeployflowError
from deployflow.pipeline import build, suites
from deployflow.platforms.hardening import TEST_LIMITS
from deployflow.pipeline.registry import auth_config
from deployflow.settings import BASE_IMAGE_VARIABLE, DEFAULT_BASE_IMAGE, REGISTRY_VARIABLE

if TYPE_CHECKING:
    from airflow.sdk import Context


class ImageBuildOperator(BaseOperator):
    """Check out the requested ref into this run's workspace (``checkout_step.py``), then ``docker build`` the
    service at that commit, tag it by commit, push it. One task, not two: a task process less per release.

    Returns one XCom: the checkout's fields (``sha``, ``short_sha``, ``committed_at``, ``workspace``,
    ``coverage_dir``, ``git_ref``, ``checkout_seconds``) and the image's (``ref``, ``image_id``, ``digest``,
    ``seconds``...); the checkout's alone is pushed before the build starts, for a build that fails.
    The registry comes from the Airflow Variable ``deployflow_registry``
    (``AIRFLOW_VAR_DEPLOYFLOW_REGISTRY``); without one the image stays local.
    The push logs in with the registry's credentials (``airflow/registry.py``).

    :param service: the catalog entry this DAG releases.
    :param docker_url: the Docker engine (default ``$DOCKER_HOST`` or the local socket).
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, service: Service, docker_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.docker_url = docker_url

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        request = ti.xcom_pull(task_ids=RESOLVE) or {}
        if request.get("artifact"):  # resolve skips it then; should it run all the same, it skips, and the rest with it
            skip(context, f"{unbuilt_reason(request)}: nothing to check out, build or test")
        grants = require_grants(self.service)
        try:  # a bad ref or repository fails the build with the checkout's words ("checkout: ref 'x' is not ...")
            source, checked_out = check_out(self.service, request["git_ref"], context["run_id"], self.log)
        except DeployflowError as exc:
            raise AirflowFailException(str(exc)) from None
        ti.xcom_push(key=XCOM_RETURN_KEY, value=build_result(checked_out, {}))  # the commit, should the build fail
        registry = Variable.get(REGISTRY_VARIABLE, default=None) or None
        base_image = Variable.get(BASE_IMAGE_VARIABLE, default=DEFAULT_BASE_IMAGE)
        build_type = "nightly" if is_scheduled(context["dag_run"]) else "release"
        started = time.monotonic()
        try:
            # image_spec refuses a context or Dockerfile outside the checkout before any Docker call.
            spec = build.image_spec(
                self.service, source, branch=request["git_ref"], build_type=build_type,
                base_image=base_image, registry=registry, network=grants.build_network,
            )
            client = DockerHook(docker_conn_id=None, base_url=self.docker_url or docker_url(), timeout=spec.timeout_s).api_client
            built = build.build_image(client, spec)
            self.log.info("build: %s (%s, %.1f MB) in %.1f s", built.ref, built.image_id[:19], built.size_mb, built.seconds)
            if registry:
                built = build.push_image(client, built, spec, auth=auth_config(registry_credentials(), spec.ref))
        except DeployflowError as exc:
            raise AirflowFailException(str(exc)) from None
        except (*build.ENGINE_ERRORS, AirflowException) as exc:  # the hook found no engine (the build's own: above)
            raise AirflowFailException(str(build.engine_failure("build: reaching the Docker engine", exc))) from None
        self.log.info("build stage done in %.1f s: %s pushed=%s", time.monotonic() - started, built.ref, built.pushed)
        return build_result(checked_out, built.to_dict())


def test_labels(service: str) -> dict[str, str]:
    """The labels of a test container (a suite's): whose stack and service it is."""
    return {"io.deployflow.stack": stack_settings().stack, "io.deployflow.role": "test", "io.deployflow.service": service}


class PytestSuiteOperator(HardenedDockerOperator):
    """Run one test suite with pytest in a container from the built image (by its ID), as the image's user;
    where the catalog asks for coverage, the last suite to pass runs the coverage gate in its container too.

    Logs a one-line summary (counts, time, coverage, failing tests); a failed
    suite fails the task with that line as the reason, a failed gate with the combined coverage.

    :param suite: ``unit``, ``integration`` or ``performance``.
    :param coverage_source: what ``--cov`` measures.
    :param coverage_dir: host directory shared by the suites for coverage data (templated).
    :param threshold: ``tests.coverage_threshold``; 0: no gate.
    :param service_suites: every suite of the service: the gate waits for all of them.
    """

    # The command carries the catalog's coverage_source: data, never rendered (DockerOperator templates it).
    template_fields: Sequence[str] = tuple(f for f in HardenedDockerOperator.template_fields if f != "command")
    ui_color = "#fce8e6"

    def __init__(self, *, suite: str, coverage_source: str, coverage_dir: str, image: str, threshold: int = 0,
                 service_suites: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("docker_url", docker_url())
        super().__init__(
            image=image,
            command=suites.suite_command(suite, coverage_source, threshold=threshold),
            environment=suites.suite_environment(suite, suites=service_suites, threshold=threshold),
            mounts=[Mount(target=suites.COVERAGE_MOUNT, source=coverage_dir, type="bind")],
            network_mode="host",
            mount_tmp_dir=False,
            auto_remove="force",
            xcom_all=True,
            do_xcom_push=False,
            limits=TEST_LIMITS,
            **kwargs,
        )
        self.suite = suite
        self.threshold = threshold

    def execute(self, context: Context) -> dict[str, Any]:
        self.do_xcom_push = True  # DockerOperator returns the log lines only when pushing
        try:
            lines, failed = super().execute(context) or [], False
        except DockerContainerFailedException as exc:
            lines, failed = log_lines(exc.logs), True
        own, gate = suites.split_gate(lines)
        outcome = suites.read_pytest_output(self.suite, own)
        if not outcome.ok:  # failed, or exit 0 yet no passing test: nothing was shown to work
            self.log.error("%s", outcome.summary())
            raise AirflowFailException(outcome.summary())
        self.log.info("%s", outcome.summary())
        combined = suites.gate_coverage(gate)
        if failed:  # the suite passed: its gate failed (or its container after pytest)
            raise AirflowFailException(self._gate_failure(combined, gate) if gate else
                                       f"{outcome.summary()}, yet its container failed")
        if combined is not None:
            self.log.info("coverage gate: the suites together cover %g %%, at least tests.coverage_threshold %s %%",
                          combined, self.threshold)
        return {"suite": self.suite, "ok": outcome.ok, "counts": outcome.counts,
                "seconds": outcome.seconds, "coverage": outcome.coverage, "gate": combined}

    def _gate_failure(self, combined: float | None, gate: list[str]) -> str:
        if combined is None:
            return f"coverage gate: the suites' coverage could not be combined: {' '.join(gate[-3:])}".strip()
        return (f"coverage gate: the suites together cover {combined:g} %, under tests.coverage_threshold "
                f"{self.threshold} %")
