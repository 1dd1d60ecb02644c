"""Rolling back prod (blue-green, its old colour long gone) to an earlier promoted release, as a person would
from the form or CI through the REST API (issue 23): ``rollback_to`` 'previous', then a commit from before that.

No checkout, build or tests run (their tasks are skipped), the image comes back by digest, and the release is
health-checked, switched and watched like any other under prod's lock; a probe on prod's front port sees no
failed request. The time from the trigger to the old version serving every request is printed (the goal, under
15 s on this machine, is a benchmark's figure, not an assertion).
"""

from __future__ import annotations

import time

import pytest

from deployflow.analysis.loadgen import LoadGenerator
from tests.e2e.harness import DAG_ID, PORTS, branch, finished, release, served_version

pytestmark = pytest.mark.e2e

ENVIRONMENT = "prod"
UNBUILT = ("build",)  # build checks out first: no checkout task


def roll_back(airflow, to: str, expected: str) -> tuple[dict, float]:
    """Trigger a rollback of prod to ``to``; the finished run and the seconds until ``expected`` served alone."""
    started = time.monotonic()
    run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "rollback_to": to, "reason": f"e2e: back to {to}"})["dag_run_id"]
    serving_alone = None
    while serving_alone is None:
        if all(served_version(ENVIRONMENT) == expected for _ in range(5)):
            serving_alone = time.monotonic() - started
        elif time.monotonic() - started > 600:
            pytest.fail(f"{expected} never served prod alone")
        else:
            time.sleep(0.2)
    return finished(airflow, run_id), serving_alone


def test_prod_rolls_back_to_the_previous_release_and_to_the_one_before_without_building(airflow, sample_repo):
    first = served_version(ENVIRONMENT) if _serving() else None
    if first is None:
        assert release(airflow, ENVIRONMENT, "main")["state"] == "success"
        first = served_version(ENVIRONMENT)
    second = branch(sample_repo, "rollback-second")
    assert release(airflow, ENVIRONMENT, "rollback-second")["state"] == "success"
    assert served_version(ENVIRONMENT) == second

    with LoadGenerator(f"http://127.0.0.1:{PORTS[ENVIRONMENT]}/", rate=20, threads=2) as probe:
        back, took = roll_back(airflow, "previous", first)
        assert back["state"] == "success", back["tasks"]
        assert {t: back["tasks"][t] for t in UNBUILT} == {t: "skipped" for t in UNBUILT}
        print(f"rollback to the previous release ({first}): serving alone {took:.1f} s after the trigger")

        forward, took_again = roll_back(airflow, second, second)  # by commit: the one before the live one now
        assert forward["state"] == "success", forward["tasks"]
        assert {t: forward["tasks"][t] for t in UNBUILT} == {t: "skipped" for t in UNBUILT}
        print(f"rollback to {second} by commit: serving alone {took_again:.1f} s after the trigger")
    assert probe.report.sent > 0 and probe.report.failures == [], probe.report.summary()
    assert served_version(ENVIRONMENT) == second


def _serving() -> bool:
    try:
        served_version(ENVIRONMENT)
        return True
    except Exception:  # noqa: BLE001 - no proxy, no answer: nothing released yet
        return False
