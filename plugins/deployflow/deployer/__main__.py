"""The deployer CLI, the same on every platform (it runs in the deploy container).

    python -m deployflow.deployer prepare  --service-file sample-app.yaml --environment prod \\
        --version 0123456789ab --image 127.0.0.1:5000/sample-app:0123456789ab [--strategy blue-green]
    python -m deployflow.deployer shift    ... [--weight 25]
    python -m deployflow.deployer promote  ...
    python -m deployflow.deployer rollback ...
    python -m deployflow.deployer status   --service-file sample-app.yaml --environment prod

Progress and timings go to stderr; the last line on stdout is the step's
result as JSON (the deploy task's XCom). Exit codes: 0 done, 1 the step
failed (traffic is already back on the old version), 2 bad input.
Environment: DEPLOYFLOW_STACK (container name prefix, default "local"),
DEPLOYFLOW_STATE (the routers' directory), DEPLOYFLOW_HAPROXY_IMAGE.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import docker

from deployflow.catalog import load_service
from deployflow.deployer.wiring import rollout_for
from deployflow.errors import ConfigError, DeployflowError

STEPS = ("prepare", "shift", "promote", "rollback", "status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.deployer", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--service-file", required=True, help="the service's catalog file")
    parser.add_argument("--environment", required=True)
    parser.add_argument("--version", help="the version to release (the image tag)")
    parser.add_argument("--image", help="the image reference to run")
    parser.add_argument("--strategy", help="override the environment's strategy")
    parser.add_argument("--weight", type=int, help="shift: only the step to this percentage")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.step != "status" and not (args.version and args.image):
        parser.error(f"{args.step} needs --version and --image")
    try:
        rollout = rollout_for(
            load_service(Path(args.service_file)), args.environment, client=docker.from_env(),
            strategy=args.strategy, version=args.version or "", image=args.image or "",
        )
        step = getattr(rollout, args.step)
        result = step(args.weight) if args.step == "shift" else step()
    except (ConfigError, ValueError) as exc:
        logging.error("%s", exc)
        return 2
    except DeployflowError as exc:
        logging.error("%s failed: %s", args.step, exc)
        _result({"step": args.step, "ok": False, "error": str(exc)})
        return 1
    _result({"step": args.step, "ok": True, **result})
    return 0


def _result(result: dict) -> None:
    """The step's result, one write of one line, after every log line is out."""
    sys.stderr.flush()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
