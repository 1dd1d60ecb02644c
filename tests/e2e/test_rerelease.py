"""Releasing what is already live (issue 23): the live commit and configuration again ends "already live" after
resolve alone, with no checkout, build, tests or deploy (Airflow skips those tasks); the live commit with a new
configuration reuses the tested image by digest, unbuilt, and the front port serves the same commit with the new
configuration.

The seconds from the trigger to the run's end are printed (the goal, under 5 s, is a benchmark's figure, not an
assertion).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests

from tests.e2e.harness import DAG_ID, PORTS, SUITES, configured, finished, short_sha

pytestmark = pytest.mark.e2e

ENVIRONMENT = "dev"
UNBUILT = ("build", *(f"test.{suite}" for suite in SUITES))
NOT_DEPLOYED = ("approve_deploy", "prepare", "health", "shift", "analysis", "load", "promote", "rollback")


def front(path: str = "/") -> dict:
    return requests.get(f"http://127.0.0.1:{PORTS[ENVIRONMENT]}{path}", timeout=5).json()


def timed_release(airflow, ref: str) -> tuple[dict, float, float]:
    """Release ``ref`` to dev: the finished run, the seconds from the trigger to the run's end (Airflow's end date),
    and the seconds until this test saw it end (its polling included)."""
    triggered, started = datetime.now(timezone.utc), time.monotonic()
    run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": ref, "reason": "e2e: again"})["dag_run_id"]
    run = finished(airflow, run_id)
    seen = time.monotonic() - started
    ended = datetime.fromisoformat(run["end"].replace("Z", "+00:00"))
    return run, (ended - triggered).total_seconds(), seen


def outcome(airflow, run_id: str) -> dict:
    return airflow.xcom(DAG_ID, run_id, "record")


def test_the_live_version_again_is_already_live_and_a_new_configuration_reuses_its_image(airflow, catalog, sample_repo):
    first, first_s, _ = timed_release(airflow, "main")
    assert first["state"] == "success", first["tasks"]
    live = front()
    assert live["commit"][:12] == short_sha(sample_repo, "main")

    again, again_s, seen_s = timed_release(airflow, "main")
    assert again["state"] == "success", again["tasks"]
    assert {t: again["tasks"][t] for t in (*UNBUILT, *NOT_DEPLOYED)} == dict.fromkeys((*UNBUILT, *NOT_DEPLOYED), "skipped")
    assert (again["tasks"]["resolve"], again["tasks"]["record"]) == ("success", "success")
    assert again["tries"]["build"] == 0 and "checkout" not in again["tasks"]  # never ran, not even once (it checks out)
    recorded = outcome(airflow, again["run_id"])
    assert recorded["outcome"] == "already_live" and recorded["outcome_detail"].startswith("already live: "), recorded
    assert recorded["commit"] == live["commit"] and recorded["config"] is None
    assert front()["version"] == live["version"]
    print(f"\nfirst release of main to dev: {first_s:.1f} s from the trigger to the run's end")
    print(f"main again (already live): {again_s:.1f} s from the trigger to the run's end ({seen_s:.1f} s until the "
          f"test saw it end)")

    # The same commit with a new configuration: the live image by digest, unbuilt, deployed with the new values.
    with configured(catalog, ENVIRONMENT, {"values": {"SAMPLE_GREETING": "hello again"}}):
        reused, reused_s, _ = timed_release(airflow, "main")
        assert reused["state"] == "success", reused["tasks"]
        assert {t: reused["tasks"][t] for t in UNBUILT} == dict.fromkeys(UNBUILT, "skipped")
        assert (reused["tasks"]["prepare"], reused["tasks"]["promote"]) == ("success", "success")
        served = front()
        assert served["commit"] == live["commit"] and served["config_version"] not in ("", None, live.get("config_version"))
        shown = front("/config")
        assert "SAMPLE_GREETING" in shown["sha256"]
        row = outcome(airflow, reused["run_id"])
        assert (row["outcome"], row["commit"], row["digest"]) == ("promoted", recorded["commit"], recorded["digest"])
        assert row["config"] == shown["config_version"]
        print(f"main with a new configuration (image reused): {reused_s:.1f} s from the trigger to the run's end")

        # ... and that commit with that configuration again is already live in turn.
        third, third_s, _ = timed_release(airflow, "main")
        assert third["state"] == "success" and third["tasks"]["build"] == "skipped", third["tasks"]
        assert outcome(airflow, third["run_id"])["outcome"] == "already_live"
        print(f"main with that configuration again (already live): {third_s:.1f} s from the trigger to the run's end")
