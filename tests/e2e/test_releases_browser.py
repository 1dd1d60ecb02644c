"""deployflow's Releases view in a real browser, against the e2e stack's Airflow: Debian's Chromium driven by
Selenium through the page objects of tests/browser (``AirflowUI`` signs in, ``ReleasesPage`` reads the grid).

With a version live in every environment (main released where none is), the grid, opened from Airflow's navigation ("Releases", the
plugin's external view framing /deployflow/), must show in each environment of sample-app the version its
front port answers; its JSON (GET /deployflow/api/grid) must say the same to a signed-in client, and nothing
to one that is not. A screenshot of the framed grid goes to the test's tmp_path.
Needs chromium and chromium-driver (.ci/run installs them); without them the test fails, it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deployflow.client import AirflowClient
from deployflow.stack.secrets import admin_password
from tests.browser.airflow_ui import AirflowUI, chromium_driver
from tests.browser.releases_ui import ReleasesPage
from tests.e2e.harness import PORT, PORTS, release_together, served_version

pytestmark = pytest.mark.e2e

SERVICE = "sample-app"
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def released(airflow: AirflowClient) -> dict[str, str]:
    """What each environment's front port answers: what the tests before left live, and main released (at once)
    where nothing is yet (a canary's analysis on a busy machine is not this test's subject)."""
    missing = [environment for environment in PORTS if _served(environment) is None]
    for environment, run in release_together(airflow, missing, "main").items():
        assert run["state"] == "success", (environment, run["tasks"])
    return {environment: served_version(environment) for environment in PORTS}


def _served(environment: str) -> str | None:
    try:
        return served_version(environment)
    except requests.RequestException:
        return None


@pytest.fixture
def releases_page(airflow_home: Path) -> Iterator[ReleasesPage]:
    driver = chromium_driver()
    try:
        AirflowUI(BASE, driver).login("admin", admin_password(airflow_home))
        yield ReleasesPage(BASE, driver)
    finally:
        driver.quit()


def test_the_grid_shows_the_version_each_front_port_answers(released: dict[str, str], releases_page: ReleasesPage,
                                                          tmp_path: Path):
    served = released  # what the fronts answer, before the grid is read
    releases_page.open_from_navigation()
    releases_page.driver.save_screenshot(str(tmp_path / "releases.png"))
    print(f"screenshot: {tmp_path / 'releases.png'}")
    shown = {environment: releases_page.live(SERVICE, environment) for environment in PORTS}
    print(f"the grid: {shown}")
    for environment, version in served.items():
        assert shown[environment]["commit"][:12] == version, (environment, shown[environment], version)
        assert shown[environment]["version"] == version, (environment, shown[environment], version)
        assert version in shown[environment]["text"], shown[environment]


def test_the_grid_s_json_says_the_same_to_a_signed_in_client_and_nothing_to_another(released: dict[str, str],
                                                                                    airflow: AirflowClient):
    refused = requests.get(f"{BASE}/deployflow/api/grid", timeout=30)
    assert refused.status_code == 401 and SERVICE not in refused.text, refused.text
    answer = airflow.session.get(f"{BASE}/deployflow/api/grid", timeout=airflow.timeout)
    answer.raise_for_status()
    [row] = [row for row in answer.json()["services"] if row["service"] == SERVICE]
    assert row["can_act"] is True  # admin
    live = {cell["environment"]: (cell["live"] or {}).get("commit", "")[:12] for cell in row["cells"]}
    assert live == released, live
