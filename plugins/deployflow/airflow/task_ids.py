"""The release DAG's id and task ids, defined once: the DAG factory names its DAG and tasks with them, every
operator that reads another task's XCom pulls by them, and the Releases view finds a service's runs by them."""

from __future__ import annotations


def release_dag_id(service: str) -> str:
    """The id of ``service``'s release DAG."""
    return f"release_{service}"


RESOLVE = "resolve"
BUILD = "build"
TEST = "test"  # the task group of the pytest suites
APPROVE_DEPLOY = "approve_deploy"  # the approval gate before the deploy steps
PREPARE = "prepare"
HEALTH = "health"
SHIFT = "shift"
ANALYSIS = "analysis"
APPROVE_PROMOTE = "approve_promote"  # the approval gate before promote (where an environment asks for it)
LOAD = "load"
PROMOTE = "promote"
ROLLBACK = "rollback"
RECORD = "record"

DEPLOYER_STEPS = (PREPARE, SHIFT, PROMOTE, ROLLBACK)

# The XCom key under which resolve leaves why it refused a request, for the record task's ledger line.
REFUSED = "refused"

# The XCom key under which resolve leaves the request on each poke until it holds the environment's lock: the record
# task's ledger line of a release that timed out waiting names its environment, who asked and why.
REQUEST = "request"

# The XCom key under which resolve leaves the run's note (``deployflow.release.run_note``): a task cannot set its
# run's note (the Task SDK has no call for it), so the client sets it through the REST API.
NOTE = "note"

# The XCom key under which a task that skips leaves why (``runs.skip``), for the client to tell.
SKIPPED = "skipped"

# The XCom key of resolve under which an abort (``deployflow.client.steering``, through the REST API) leaves who
# aborted the run and why, ``{"by", "reason", "at"}``, for the record task's ledger line.
ABORTED = "aborted"

# The XCom key of resolve under which "promote now" (``deployflow.client.steering``) leaves who asked and why: the
# promote step then skips the pauses between its remaining steps.
PROMOTE_NOW = "promote_now"

# The XCom key under which a failing check (the health sensor) leaves why, for the record and the channels.
FAILURE = "failure"

# The XCom key of each judged canary analysis interval's verdict (the analysis task's, one a interval: the
# Releases view reads them as they come; the key ``verdict`` holds the newest alone).
INTERVAL_VERDICT = "verdict_"


def interval_verdict_key(number: int) -> str:
    """The XCom key of the verdict of the analysis' interval ``number``."""
    return f"{INTERVAL_VERDICT}{number:03d}"
