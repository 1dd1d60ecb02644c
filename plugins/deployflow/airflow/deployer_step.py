"""What a deployer step is to Airflow, on every platform: its arguments, what it does first, how it ends.

DeployerOperator (a container) and KubernetesDeployerOperator (a pod) both
run ``python -m deployflow.deployer <step> ...``; they differ only in how
they start it and where they read its exit code. The arguments and the
meaning of the exit code are decided here, once:

=========================  ===========================================================
exit 0, a result           the step's result is the task's XCom
exit 0, no result          failed, not retried: nothing shows the step was done
exit 1 (``FAILED``)        failed, not retried: the step failed and traffic is already back
exit 2 (``BAD_INPUT``)     failed, not retried: a bad catalog or argument stays bad
exit 3 (``FENCED``)        failed, not retried: a newer step holds the environment (this try was replaced)
exit 4 (``CRASHED``)       failed, retried: an error it has no verdict for (its reason is in the message)
anything else, or none     failed, may be retried: the deployer was killed (137), evicted, lost
=========================  ===========================================================

The steps that write (:data:`WRITING_STEPS`) each get a fencing token (``--fence``, see
``deployflow.rollout.fence``): one step of an environment acts at a time, whatever dies.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from deployflow.airflow.grants import require_grants
from deployflow.airflow.runs import skip
from deployflow.airflow.settings import prometheus_url
from deployflow.airflow.task_ids import PREPARE, PROMOTE_NOW, RESOLVE
from deployflow.deployer import BAD_INPUT, FAILED, FENCED
from deployflow.settings import DEFAULT_DEPLOYER_IMAGE, DEPLOYER_IMAGE_VARIABLE

if TYPE_CHECKING:
    from airflow.sdk import Context

    from deployflow.catalog import Service

WRITING_STEPS = frozenset({"prepare", "shift", "promote", "rollback"})  # each takes a fencing token
STOP_GRACE_S = 10  # an earlier try's deployer: SIGTERM, then killed after this (it is fenced off already)
DEPLOYER_IMAGE = f"{{{{ var.value.get('{DEPLOYER_IMAGE_VARIABLE}', '{DEFAULT_DEPLOYER_IMAGE}') }}}}"


def deployer_arguments(
    step: str, *, environment: str, version: str, image: str, strategy: str, service_file: str | None = None,
    fence: int | None = None, skip_pauses: bool = False,
) -> list[str]:
    """The deployer's command line after ``python -m deployflow.deployer``.

    :param service_file: the catalog entry's path where the platform mounts it (Docker); None when
        the entry goes in as $DEPLOYFLOW_SERVICE_YAML instead (Kubernetes).
    :param fence: the step's fencing token; None: an unfenced step (it writes nothing).
    :param skip_pauses: promote with no pause between its steps (a person asked to promote now).
    """
    catalog = ["--service-file", service_file] if service_file is not None else []
    fencing = ["--fence", str(fence)] if fence is not None else []
    machine = ["--json"] if step == "status" else []  # status prints a table for a person unless told; we parse it
    return [step, *catalog, "--environment", environment, "--version", version, "--image", image, "--strategy", strategy,
            *fencing, *(["--skip-pauses"] if skip_pauses else []), *machine]


def promote_now(step: str, context: Context, log: Any) -> bool:
    """Whether a person asked to promote now (``deployflow.client.steering``: the XCom ``promote_now`` of resolve):
    the promote step then skips the pauses between its remaining steps."""
    if step != "promote":
        return False
    asked = context["ti"].xcom_pull(task_ids=RESOLVE, key=PROMOTE_NOW)
    if not isinstance(asked, dict):  # what steering writes, or nothing
        return False
    log.info("promote now, asked by %s (%s): the remaining steps follow each other with no pause",
             asked.get("by") or "someone", asked.get("reason") or "no reason given")
    return True


def deployer_environment(step: str) -> dict[str, str]:
    """What a step's container or pod gets in its environment besides the platform's own: promote reads
    metrics in its post-promotion watch."""
    return {"DEPLOYFLOW_PROMETHEUS_URL": prometheus_url()} if step == "promote" else {}


def step_outcome(step: str, exit_code: int | None, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The task's outcome of a finished deployer: its result, or the exception that ends the task.

    :param exit_code: read from the container's or the pod's state; None when it never terminated.
    :param result: the step's JSON result, if it printed one.
    :param error: the last ERROR line it logged, if any (a bad input logs one and prints no result).
    :raises AirflowFailException: the step failed on its own (exit 1 or 2), was fenced off by a newer step (exit 3)
        or printed no result: not retried.
    :raises AirflowException: anything else (killed, evicted): the message ends "(may be retried)".
    """
    if exit_code == 0:
        if result is None:
            raise AirflowFailException(f"deployer {step} printed no result")
        return result
    reason = (result or {}).get("error") or error or f"deployer {step} exited with {exit_code}"
    if exit_code in (FAILED, BAD_INPUT, FENCED):
        raise AirflowFailException(reason)
    raise AirflowException(f"{reason} (may be retried)")


def check_grants(step: str, service: Service) -> None:
    """Every step but rollback checks the service's grants again before it reads what they grant (its secrets,
    its Docker host or cluster); rollback puts the old version back whatever was withdrawn since."""
    if step != "rollback":
        require_grants(service)


def begin_step(step: str, context: Context) -> None:
    """What every deployer step does first, on any platform: prepare marks that the release
    started (from then on rollback has something to undo); rollback skips when nothing started."""
    ti = context["ti"]
    if step == "prepare":
        ti.xcom_push(key="started", value=True)
    if step == "rollback" and not ti.xcom_pull(task_ids=PREPARE, key="started"):
        skip(context, "nothing was deployed by this run: nothing to roll back")


def last_result(lines: Any) -> dict[str, Any] | None:
    """The deployer's result: the last JSON object in its output.

    stdout and stderr share one stream, and a log line can land right after
    the result on the same line, so the object is decoded where it starts.
    """
    decoder = json.JSONDecoder()
    for text in reversed(log_lines(lines)):
        start = text.find('{"step"')
        if start < 0:
            continue
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:
            continue
    return None


def last_error(lines: Any) -> str | None:
    """The message of the deployer's last ERROR log line (``<time> ERROR <message>``)."""
    for line in reversed(log_lines(lines)):
        if " ERROR " in line:
            return line.split(" ERROR ", 1)[1].strip()
    return None


def log_lines(lines: Any) -> list[str]:
    """A container's log output (bytes or text, one chunk or many) as text lines."""
    if isinstance(lines, (str, bytes)):
        lines = [lines]
    out: list[str] = []
    for line in lines or []:
        out.extend((line.decode(errors="replace") if isinstance(line, bytes) else str(line)).splitlines())
    return out


class DeployerStep:
    """One deployer step for this run's release: ``python -m deployflow.deployer <step>`` in the deployer image,
    in a container beside Airflow (DeployerOperator) or a pod of the environment's namespace
    (KubernetesDeployerOperator), which differ only in how they start it and read its exit code.

    :param step: ``prepare``, ``shift``, ``promote``, ``rollback`` or ``status``.
    :param service: the catalog entry.
    :param service_file: that entry's path on this host.
    :param environment_name: target environment (templated).
    :param version: image tag being released (templated).
    :param image_ref: image reference to run (templated).
    :param strategy: strategy name (templated).
    """

    # Each platform operator has ``platform_arguments(step, service, service_file)``: its own arguments for the
    # step (image, mounts or pod, labels); its template_fields are its base's and these.
    STEP_FIELDS = ("environment_name", "version", "image_ref", "strategy")
    ui_color = "#e0f2f1"

    def __init__(self, *, step: str, service: Service, service_file: str, environment_name: str, version: str = "",
                 image_ref: str = "", strategy: str = "", **kwargs: Any) -> None:
        super().__init__(**{**self.platform_arguments(step, service, service_file), **kwargs})
        self.step = step
        self.service = service
        self.service_file = service_file
        self.environment_name = environment_name
        self.version = version
        self.image_ref = image_ref
        self.strategy = strategy
