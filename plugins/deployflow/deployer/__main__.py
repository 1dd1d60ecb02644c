"""The deployer CLI, the same on every platform (it runs in the deploy container).

    python -m deployflow.deployer prepare  --service-file sample-app.yaml --environment prod \\
        --version 0123456789ab --image 127.0.0.1:5000/sample-app:0123456789ab [--strategy blue-green]
    python -m deployflow.deployer shift    ... [--weight 25]
    python -m deployflow.deployer promote  ...
    python -m deployflow.deployer rollback ...
    python -m deployflow.deployer status   --service-file sample-app.yaml --environment prod
    python -m deployflow.deployer rbac     --service-file sample-app.yaml --environment prod | kubectl apply -f -

Progress and timings go to stderr; the last line on stdout is the step's
result as JSON (the deploy task's XCom), also written to --result-file if
given (KubernetesPodOperator reads /airflow/xcom/return.json). ``status``
prints a table for a person instead (its JSON with ``--json``, which Airflow
passes; the result file is JSON either way). ``--fence N``
is the step's fencing token (deployflow.rollout.fence): before each write
the step checks that no newer step holds the environment, and stops (exit 3)
when one does. SIGTERM stops a step at once (exit 143). ``rbac``
prints the least-privilege ServiceAccount, Role and RoleBinding a
``kubernetes`` environment's deployer pod needs. Exit codes: 0 done, 1 the
step failed (traffic is already back on the old version), 2 bad input, 3 a
newer step holds the environment.
Environment: DEPLOYFLOW_SERVICE_YAML (the catalog entry itself, when no
--service-file is given: how a deployer pod gets it), DEPLOYFLOW_RESULT_FILE;
the stack's settings (deployflow.settings): DEPLOYFLOW_STACK (container name
prefix, default "local"), DEPLOYFLOW_STATE (the routers' directory),
DEPLOYFLOW_HAPROXY_IMAGE, DEPLOYFLOW_PROMETHEUS_URL (promote's watch); on
Kubernetes the pod's service account (in-cluster config) or KUBECONFIG.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from deployflow.catalog import Service, load_service, parse_service
from deployflow.catalog.loading import read_yaml
from deployflow.deployer import BAD_INPUT, CRASHED, FAILED, FENCED
from deployflow.deployer.status_text import status_text
from deployflow.deployer.wiring import deployer_clients, rollout_for
from deployflow.errors import ConfigError, DeployflowError
from deployflow.kubernetes.manifests import Manifests, kubernetes_environment, to_yaml
from deployflow.platforms.base import StackSettings
from deployflow.rollout.engine import Rollout
from deployflow.rollout.fence import Fenced
from deployflow.settings import Settings

STEPS = ("prepare", "shift", "promote", "rollback", "status", "rbac")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.deployer", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--service-file", help="the service's catalog file (default: $DEPLOYFLOW_SERVICE_YAML's text)")
    parser.add_argument("--environment", required=True)
    parser.add_argument("--version", help="the version to release (the image tag)")
    parser.add_argument("--image", help="the image reference to run")
    parser.add_argument("--strategy", help="override the environment's strategy")
    parser.add_argument("--weight", type=int, help="shift: only the step to this percentage")
    parser.add_argument("--skip-pauses", action="store_true", help="promote: no pause between the remaining steps (promote now)")
    parser.add_argument("--fence", type=int, help="the step's fencing token: stop before a write once a newer step holds one")
    parser.add_argument("--json", action="store_true",
                        help="status: print the JSON result line, not the table (the other steps always print JSON)")
    parser.add_argument("--result-file", default=os.environ.get("DEPLOYFLOW_RESULT_FILE"),
                        help="also write the JSON result here (KubernetesPodOperator: /airflow/xcom/return.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.step not in ("status", "rbac") and not (args.version and args.image):
        parser.error(f"{args.step} needs --version and --image")
    # Every step's result goes to stdout as a JSON line but the status a person asks for: a table (an error of it is
    # the line on stderr already).
    printed = args.step != "status" or args.json
    rollout = None
    try:
        service = _service(args.service_file)
        if args.step == "rbac":
            return _rbac(service, args.environment)
        settings = Settings.from_environ()
        rollout = rollout_for(
            service, args.environment, clients=deployer_clients(), settings=StackSettings.of(settings),
            strategy=args.strategy, version=args.version or "", image=args.image or "", fence=args.fence,
            prometheus_url=settings.prometheus_url,
        )
        step = getattr(rollout, args.step)
        result = (step(args.weight) if args.step == "shift" else step(skip_pauses=args.skip_pauses) if args.step == "promote"
                  else step())
    except (ConfigError, ValueError) as exc:
        logging.error("%s", exc)
        return BAD_INPUT
    except Fenced as exc:  # the newer step does the rest; a note in the record would be a write too
        logging.error("%s stopped: %s", args.step, exc)
        _result({"step": args.step, "ok": False, "error": str(exc)}, args.result_file, printed=printed)
        return FENCED
    except DeployflowError as exc:
        logging.error("%s failed: %s", args.step, exc)
        _note_failure(rollout, args.step, exc)
        _result({"step": args.step, "ok": False, "error": str(exc)}, args.result_file, printed=printed)
        return FAILED
    except Exception as exc:  # noqa: BLE001 - no verdict of its own: say why, and let the task retry the step
        logging.exception("%s crashed: %s: %s", args.step, type(exc).__name__, exc)
        _result({"step": args.step, "ok": False, "error": f"{args.step} crashed: {type(exc).__name__}: {exc}"},
                args.result_file, printed=printed)
        return CRASHED
    _result({"step": args.step, "ok": True, **result}, args.result_file, printed=printed)
    if not printed:
        print(status_text(result))
    return 0


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM (a retry taking over, ``docker stop``): stop now, between two instructions. Python in a container is
    PID 1, which ignores a signal it has no handler for: without this it would run on until the kill."""
    logging.warning("stopped by signal %d", signum)
    sys.exit(128 + signum)


def _note_failure(rollout: Rollout | None, step: str, exc: DeployflowError) -> None:
    """Why shift or promote failed goes into the release's record (rollback reports it); best effort."""
    if rollout is None or step not in ("shift", "promote"):
        return
    try:
        rollout.note_failure(str(exc), getattr(exc, "restore_seconds", None))
    except Exception as error:  # noqa: BLE001 - the step's own failure is what matters; this is a note
        logging.warning("could not note the failure in the release record: %s", error)


def _service(service_file: str | None) -> Service:
    if service_file:
        if not Path(service_file).is_file():
            raise ConfigError("--service-file", f"{service_file} is not a file (the service's catalog file)")
        # The task that started this step checked the service's grants just before (deployer_step.check_grants);
        # the grants file is the platform's, on Airflow's side, never mounted here.
        return load_service(Path(service_file), check_grants=False)
    text = os.environ.get("DEPLOYFLOW_SERVICE_YAML")
    if not text:
        raise ConfigError("--service-file", "is required (or the catalog entry's text in $DEPLOYFLOW_SERVICE_YAML)")
    try:
        return parse_service(read_yaml(text))
    except ConfigError as exc:
        raise exc.in_source("$DEPLOYFLOW_SERVICE_YAML") from None


def _rbac(service: Service, environment: str) -> int:
    try:
        env = kubernetes_environment(service, environment)
    except ConfigError as exc:
        raise ConfigError("--environment", exc.message) from None
    sys.stdout.write(to_yaml(Manifests(service, env).rbac()))
    return 0


def _result(result: dict, result_file: str | None = None, *, printed: bool = True) -> None:
    """The step's result, one write of one line on stdout (``printed``), after every log line is out."""
    sys.stderr.flush()
    if printed:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    if result_file:
        Path(result_file).parent.mkdir(parents=True, exist_ok=True)
        Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stopped)
    sys.exit(main())
