"""Grants end to end: sample-app's team edits its catalog file to read another team's secret. The DAG parsed
before the edit is still Airflow's for a while (the dag-processor refuses the edited file with an import error),
so a release triggered now runs; its resolve task reads the file as it is and the grants as they are, and fails
the release there: no checkout, no build, nothing deployed, the instances that served still serving."""

from __future__ import annotations

import pytest

from tests.e2e.harness import app_containers, configured, log_text, release

pytestmark = pytest.mark.e2e

NOT_RESOLVED = ("build", "test.unit", "prepare", "shift", "promote")


def test_a_secret_naming_an_ungranted_connection_fails_at_resolve_before_any_build(airflow, catalog, docker_client):
    serving = sorted(c.id for c in app_containers(docker_client, "dev") if c.status == "running")
    with configured(catalog, "dev", {"secrets": {"BILLING_DB": {"connection": "billing_db", "field": "password"}}}):
        run = release(airflow, "dev", "main")
    assert run["state"] == "failed", run["tasks"]
    assert run["tasks"]["resolve"] == "failed", run["tasks"]
    assert {t: run["tasks"].get(t) for t in NOT_RESOLVED} == dict.fromkeys(NOT_RESOLVED, "upstream_failed"), run["tasks"]
    assert run["tasks"]["rollback"] == "skipped", "nothing started: nothing to roll back"
    assert ("environments.dev.config.secrets.BILLING_DB.connection: names the connection 'billing_db', which sample-app "
            "is not granted; the platform team grants it in") in log_text(airflow, run["run_id"], "resolve")
    assert sorted(c.id for c in app_containers(docker_client, "dev") if c.status == "running") == serving
