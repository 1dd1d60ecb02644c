"""A release in flight on deployflow's Releases view, in a real browser against the e2e stack's Airflow (Debian's
Chromium through Selenium: ``AirflowUI`` signs in, ``ServicePage`` reads sample-app's page).

staging runs a version of its own (released first where it must be), then a canary of a new commit is released
there, judged at its first step (20 % of traffic, a fresh baseline beside it taking as much) over six intervals,
with the DAG's own load. The service page is opened as the release starts and never reloaded: it must draw by
itself, while the analysis task runs or waits in the triggerer, the canary's split as the release record says
it (canary 20 %, baseline 20 %, stable 60 %, by version) and the verdict rows of a judged interval. Every wait
polls with a generous deadline; nothing is asserted of a value that changes from one step to the next. Once the
canary is promoted, the JSON of the commits between the two versions (from the mirror the checkout keeps) names
the new commit. Needs chromium and chromium-driver; without them the test fails, it never skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployflow.client import AirflowClient
from deployflow.stack.secrets import admin_password
from tests.browser.airflow_ui import AirflowUI, chromium_driver
from tests.browser.releases_ui import ServicePage
from tests.e2e.harness import DAG_ID, PORT, branch, environment_with, finished, release, served_version
from tests.e2e.test_releases_browser import SERVICE, _served

pytestmark = pytest.mark.e2e

BASE = f"http://127.0.0.1:{PORT}"
ENVIRONMENT = "staging"
ANALYSIS = {"interval_s": 5, "intervals": 6, "load_rate": 30}  # six passing intervals: half a minute judged at 20 %
WAITING = ("running", "deferred")


@pytest.fixture
def service_page(airflow_home: Path):
    driver = chromium_driver()
    try:
        AirflowUI(BASE, driver).login("admin", admin_password(airflow_home))
        yield ServicePage(BASE, driver)
    finally:
        driver.quit()


def test_the_service_page_shows_the_canary_s_split_and_its_verdicts_while_it_is_analysed(
        airflow: AirflowClient, catalog: Path, sample_repo: Path, service_page: ServicePage, tmp_path: Path):
    if _served(ENVIRONMENT) is None:  # the canary needs a version live to be judged against
        base = branch(sample_repo, "inflight-base")
        first = release(airflow, ENVIRONMENT, "inflight-base")
        assert first["state"] == "success", first["tasks"]
        assert served_version(ENVIRONMENT) == base
    before = served_version(ENVIRONMENT)
    new = branch(sample_repo, "inflight-canary")
    with environment_with(catalog, ENVIRONMENT, analysis=ANALYSIS):
        run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": "inflight-canary"})["dag_run_id"]
        service_page.open_service(SERVICE)  # opened once: from here on the page redraws itself

        def analysed(shown: dict) -> bool:
            steps = {s["task_id"]: s["state"] for s in shown.get("steps") or []}
            return shown["run_id"] == run_id and steps.get("analysis") in WAITING and bool(shown["verdicts"])

        shown = service_page.wait_in_flight(ENVIRONMENT, analysed, "the analysis running with a judged interval",
                                            timeout=900)
        service_page.driver.save_screenshot(str(tmp_path / "in-flight.png"))
        print(f"screenshot: {tmp_path / 'in-flight.png'}; the panel: {shown}")
        run = finished(airflow, run_id)
    # The split the record holds for the whole analysis (the 20 % step), drawn with a running analysis.
    assert sorted((s["track"], s["version"][:12], s["percent"]) for s in shown["shares"]) == [
        ("baseline", before, 20), ("canary", new, 20), ("stable", before, 60)], shown["shares"]
    rows = shown["verdicts"]
    assert {r["metric"] for r in rows} >= {"error_rate", "latency"}, rows
    assert all(r["interval"] >= 1 and r["text"].startswith(r["metric"]) for r in rows), rows  # a row a metric, its numbers after
    assert run["state"] == "success", run["tasks"]
    assert served_version(ENVIRONMENT) == new

    changes = airflow.session.get(f"{BASE}/deployflow/api/services/{SERVICE}/changes", params={"old": before, "new": new},
                                  timeout=airflow.timeout)
    changes.raise_for_status()
    answer = changes.json()
    assert answer["problem"] is None, answer
    assert [c["subject"] for c in answer["commits"]] == ["release inflight-canary"], answer
    assert answer["commits"][0]["sha"].startswith(new)
