"""The Releases view's handles in a real browser (Debian's Chromium through Selenium, tests/browser's page objects),
against the e2e stack's Airflow (issue 23):

- an admin rolls dev back to its previous release from the service page: the rollback runs as any rollback does
  (no build), and dev's front port answers the previous version again;
- a viewer sees the same page, with no handle, and a handle's URL called with the viewer's own sign-in is refused
  (403) before Airflow is asked.
A screenshot of the page with its handles goes to the test's tmp_path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deployflow.client import AirflowClient
from deployflow.stack.secrets import admin_password, user_password
from tests.browser.airflow_ui import AirflowUI, chromium_driver
from tests.browser.releases_ui import ServicePage
from tests.e2e.harness import DAG_ID, PORT, VIEWER, branch, finished, release, served_version

pytestmark = pytest.mark.e2e

SERVICE, ENVIRONMENT = "sample-app", "dev"
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def page_as(airflow_home: Path) -> Iterator:
    drivers = []

    def open_as(user: str, password: str) -> ServicePage:
        driver = chromium_driver()
        drivers.append(driver)
        AirflowUI(BASE, driver).login(user, password)
        page = ServicePage(BASE, driver)
        page.open(SERVICE)
        return page

    yield open_as
    for driver in drivers:
        driver.quit()


def test_an_admin_rolls_dev_back_from_the_page_and_the_front_port_answers_the_previous_version(
        airflow: AirflowClient, airflow_home: Path, sample_repo: Path, page_as, tmp_path: Path):
    assert release(airflow, ENVIRONMENT, "main")["state"] == "success"
    previous = served_version(ENVIRONMENT)
    newer = branch(sample_repo, "handles-newer")
    assert release(airflow, ENVIRONMENT, "handles-newer")["state"] == "success"
    assert served_version(ENVIRONMENT) == newer != previous

    page = page_as("admin", admin_password(airflow_home))
    page.driver.save_screenshot(str(tmp_path / "service-handles.png"))
    print(f"screenshot: {tmp_path / 'service-handles.png'}")
    status, said = page.act("rollback", ENVIRONMENT, "e2e: back from the page")
    page.driver.save_screenshot(str(tmp_path / "service-rollback.png"))
    assert status == "200", said
    run_id = said.split("as run ")[-1].strip()
    assert run_id.startswith(f"{ENVIRONMENT}__rollback-previous__"), said

    run = finished(airflow, run_id)
    assert run["state"] == "success", run["tasks"]
    assert run["tasks"]["build"] == "skipped" and "checkout" not in run["tasks"], run["tasks"]
    deadline = time.monotonic() + 60
    while not all(served_version(ENVIRONMENT) == previous for _ in range(5)):
        assert time.monotonic() < deadline, f"dev never served {previous} alone after the rollback"
        time.sleep(0.5)
    note = airflow.dag_run(DAG_ID, run_id).get("note") or ""
    assert "admin" in note, note


def test_a_viewer_sees_the_page_without_handles_and_cannot_act(airflow: AirflowClient, airflow_home: Path, page_as):
    page = page_as(VIEWER, user_password(airflow_home, VIEWER))
    assert page.handles() == []
    assert VIEWER in page.read_only() and "may not trigger" in page.read_only()

    viewer = AirflowClient(BASE, timeout=60)
    viewer.login(VIEWER, user_password(airflow_home, VIEWER))
    runs_before = len(airflow.dag_runs(DAG_ID))
    refused = viewer.session.post(f"{BASE}/deployflow/api/services/{SERVICE}/environments/{ENVIRONMENT}/rollback",
                                  json={"reason": "a viewer tries"}, timeout=60)
    assert refused.status_code == 403 and "may read but not act" in refused.json()["detail"], refused.text
    assert len(airflow.dag_runs(DAG_ID)) == runs_before
    anonymous = requests.post(f"{BASE}/deployflow/api/services/{SERVICE}/environments/{ENVIRONMENT}/rollback", json={},
                              timeout=60)
    assert anonymous.status_code == 401
