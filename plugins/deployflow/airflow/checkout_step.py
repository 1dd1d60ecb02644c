"""The checkout the build task does first: the requested ref cloned into the run's workspace, the suites' coverage
directory emptied, the service's mirror kept for the Releases view.

It was a task of its own (``checkout``) for about 0.1 s of work, which cost a task process: half a second on the
critical path and most of a core-second of Airflow's own work per release (issue 24). Its result goes into build's
one XCom (:func:`build_result`), pushed as soon as the checkout is done: a build that fails afterwards still
leaves the commit for the record, the ledger and the rollback.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any

from deployflow.airflow.git_credentials import git_runner
from deployflow.airflow.settings import run_workspace, stack_settings
from deployflow.catalog import Service, project_root
from deployflow.errors import StageFailed
from deployflow.pipeline.checkout import Checkout, checkout, run_git
from deployflow.pipeline.mirror import keep_mirror, mirror_path

# What git may raise besides the checkout's own refusals (StageFailed: no such ref, a repository that cannot be
# cloned, which a retry does not mend): a git command that failed or hung, the disk. The checkout task had one
# more try after those (the DAG's retries=1); build has none (its own failures are deterministic), so the git
# step has its one more try here, after the pause the task's retry waited.
GIT_ERRORS = (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError)
GIT_TRIES = 2
GIT_RETRY_DELAY_S = 10.0

# The checkout's keys that build's result uses with another meaning (``ref``: the image; ``seconds``: the
# build's), renamed in build's one XCom; every other key of the checkout's keeps its name (sha, short_sha, ...).
RENAMED = {"ref": "git_ref", "seconds": "checkout_seconds"}
CHECKOUT_SECONDS = RENAMED["seconds"]  # the ledger's step "checkout" (airflow/ledger.py)


def check_out(service: Service, git_ref: str, run_id: str, log: logging.Logger | Any, *, tries: int = GIT_TRIES,
              pause: Callable[[float], None] = time.sleep) -> tuple[Checkout, dict[str, object]]:
    """Check out ``git_ref`` of ``service`` into the workspace of ``run_id``: the checkout, and what the checkout
    task's XCom held (the checkout's fields, ``workspace``, ``coverage_dir``). A refusal raises StageFailed with
    the checkout's words; a git error is tried ``tries`` times in all, then raises StageFailed too."""
    workspace = run_workspace(service.name, run_id)
    location = service.source.location(project_root())
    run = git_runner(service.source)
    for attempt in range(1, tries + 1):
        try:
            result = checkout(location, git_ref, workspace / "src", run=run)
            break
        except GIT_ERRORS as exc:
            said = (getattr(exc, "stderr", "") or str(exc) or type(exc).__name__).strip()
            if attempt == tries:
                raise StageFailed(f"checkout: {location} at {git_ref!r}: {said}") from exc
            log.warning("checkout: %s; once more in %.0f s", said, GIT_RETRY_DELAY_S)
            pause(GIT_RETRY_DELAY_S)
    coverage_dir = workspace / "coverage"
    coverage_dir.mkdir(parents=True, exist_ok=True)
    for stale in coverage_dir.iterdir():
        stale.unlink()  # a retried run must not count an earlier attempt's data, nor its suites' marks (suites.py)
    coverage_dir.chmod(0o777)  # the test containers run as the image's unprivileged user
    log.info("checkout: %s at %s -> %s in %.2f s", location, git_ref, result.sha, result.seconds)
    # The Releases view lists the commits between two versions from this mirror (pipeline/mirror.py).
    problem = keep_mirror(workspace / "src", mirror_path(stack_settings().state_dir, service.name), run=run_git)
    if problem:
        log.warning("checkout: %s", problem)
    return result, {**result.to_dict(), "workspace": str(workspace), "coverage_dir": str(coverage_dir)}


def build_result(checked_out: dict[str, object], built: dict[str, Any]) -> dict[str, Any]:
    """Build's one XCom: the image's fields (``ref``, ``image_id``, ``digest``, ``seconds``...) as the build gives
    them, and the checkout's, those in :data:`RENAMED` renamed. ``built`` empty: the checkout's alone."""
    ours = {RENAMED.get(key, key): value for key, value in checked_out.items()}
    if clash := sorted(ours.keys() & built.keys()):
        raise ValueError(f"build's result would hold {', '.join(clash)} twice, the checkout's and the image's")
    return {**ours, **built}
