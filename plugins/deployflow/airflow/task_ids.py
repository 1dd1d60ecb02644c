"""The release DAG's task ids, defined once: the DAG factory names its tasks with them and every
operator that reads another task's XCom pulls by them."""

from __future__ import annotations

RESOLVE = "resolve"
CHECKOUT = "checkout"
BUILD = "build"
TEST = "test"  # the task group of the pytest suites
COVERAGE_GATE = "coverage_gate"
PREPARE = "prepare"
HEALTH = "health"
SHIFT = "shift"
ANALYSIS = "analysis"
LOAD = "load"
PROMOTE = "promote"
ROLLBACK = "rollback"
RECORD = "record"

DEPLOYER_STEPS = (PREPARE, SHIFT, PROMOTE, ROLLBACK)

# The XCom key under which resolve leaves why it refused a request, for the record task's ledger line.
REFUSED = "refused"
