"""A page object over deployflow's Releases view as Airflow's UI shows it: the "Releases" item of the
navigation (an external view, ``plugins/deployflow_releases.py``) frames the grid that the plugin's app
serves under /deployflow/. Elements are found by the grid's ``data-testid`` attributes (``grid``,
``cell-<service>-<environment>``, which carries the live release's ``data-commit`` and ``data-version``),
never by text or styling. Signing in is ``AirflowUI.login``'s.
"""

from __future__ import annotations

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

NAV_PAGE = "/plugin/releases"  # the UI's page of the external view (its url_route)
FRAME = (By.CSS_SELECTOR, "iframe[src*='/deployflow/']")
GRID = (By.CSS_SELECTOR, "[data-testid='grid']")


class ReleasesPage:
    """The Releases view of the Airflow at ``base_url``, in ``driver`` (signed in already).

    :param timeout: seconds any one step may wait for the page
    """

    def __init__(self, base_url: str, driver: WebDriver, *, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.driver = driver
        self.timeout = timeout

    def open_from_navigation(self) -> None:
        """Airflow's page of the view, then into its frame, once the grid shows."""
        self.driver.switch_to.default_content()
        self.driver.get(f"{self.base_url}{NAV_PAGE}")
        self._wait(EC.frame_to_be_available_and_switch_to_it(FRAME), f"the Releases frame on {NAV_PAGE}")
        self._wait(EC.presence_of_element_located(GRID), "the grid in the Releases frame")

    def open_direct(self) -> None:
        """The grid's own page, outside Airflow's frame."""
        self.driver.switch_to.default_content()
        self.driver.get(f"{self.base_url}/deployflow/")
        self._wait(EC.presence_of_element_located(GRID), "the grid at /deployflow/")

    def live(self, service: str, environment: str) -> dict[str, str]:
        """What the grid says is live there: its ``commit`` and ``version`` ("" for each when nothing is)."""
        cell = self._wait(EC.presence_of_element_located((By.CSS_SELECTOR, f"[data-testid='cell-{service}-{environment}']")),
                          f"the cell of {service} in {environment}")
        return {"commit": cell.get_attribute("data-commit") or "", "version": cell.get_attribute("data-version") or "",
                "text": " ".join(cell.text.split())}

    def _wait(self, condition, what: str):
        try:
            return WebDriverWait(self.driver, self.timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            raise TimeoutException(f"waited {self.timeout:g} s for {what}; the page is {self.driver.current_url}") from None


SERVICE_PAGE = "/deployflow/services/{service}"
IN_FLIGHT = (By.CSS_SELECTOR, "[data-testid='in-flight']")
# One environment's panel as one snapshot, read in one script: the page's own script redraws the panel every few
# seconds, and elements found one by one could come from two drawings.
IN_FLIGHT_SNAPSHOT = """
const box = document.querySelector("[data-testid='in-flight-" + arguments[0] + "']");
const updated = document.querySelector("[data-testid='in-flight-updated']");
if (!box) { return {run_id: null, updated: updated ? updated.textContent : null}; }
const all = (id) => Array.from(box.querySelectorAll("[data-testid='" + id + "']"));
return {
  run_id: box.dataset.runId,
  steps: all("in-flight-step").map((s) => ({task_id: s.dataset.task, state: s.dataset.state})),
  shares: all("share").map((s) => ({track: s.dataset.track, version: s.dataset.version, percent: Number(s.dataset.percent)})),
  verdicts: all("verdict-row").map((r) => ({interval: Number(r.dataset.interval), metric: r.dataset.metric,
                                            text: r.textContent.replace(/\\s+/g, " ").trim()})),
  updated: updated ? updated.textContent : null,
};
"""


class ServicePage(ReleasesPage):
    """A service's page of the Releases view (its own page, outside Airflow's frame): its panel of the releases in
    flight (``data-testid`` ``in-flight-<environment>``, ``in-flight-step``, ``share``, ``verdict-row``), which the
    page redraws by itself while a release is in flight; and its handles, each a button (``rollback-<environment>``,
    ``abort-<environment>``, ...) that asks to confirm, posts, and says Airflow's answer in
    ``answer-<environment>`` (its HTTP status in ``data-status``)."""

    def open(self, service: str) -> None:
        self.driver.switch_to.default_content()
        self.driver.get(f"{self.base_url}/deployflow/services/{service}")
        self._wait(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid='environments']")),
                   f"the page of {service}")

    def handles(self) -> list[str]:
        """The ``data-testid`` of every handle the page offers (none to a user who may not act)."""
        return [b.get_attribute("data-testid") for b in self.driver.find_elements(By.CSS_SELECTOR, "button[data-url]")]

    def read_only(self) -> str:
        """What the page says instead of its handles ("" when it shows them)."""
        found = self.driver.find_elements(By.CSS_SELECTOR, "[data-testid='read-only']")
        return " ".join(found[0].text.split()) if found else ""

    def act(self, handle: str, environment: str, reason: str) -> tuple[str, str]:
        """Type ``reason``, press ``handle`` (``rollback``, ``abort``, ...) of ``environment``, confirm: Airflow's
        answer as the page says it, (HTTP status, text)."""
        reason_box = self._wait(EC.element_to_be_clickable((By.CSS_SELECTOR, f"[data-testid='reason-{environment}']")),
                                f"the reason box of {environment}")
        reason_box.clear()
        reason_box.send_keys(reason)
        self._wait(EC.element_to_be_clickable((By.CSS_SELECTOR, f"[data-testid='{handle}-{environment}']")),
                   f"the {handle} handle of {environment}").click()
        self._wait(EC.alert_is_present(), "the confirmation").accept()
        answer = (By.CSS_SELECTOR, f"[data-testid='answer-{environment}'][data-status]")
        said = self._wait(EC.presence_of_element_located(answer), f"Airflow's answer to {handle} in {environment}")
        return said.get_attribute("data-status"), " ".join(said.text.split())

    def open_service(self, service: str) -> None:
        self.driver.switch_to.default_content()
        self.driver.get(f"{self.base_url}{SERVICE_PAGE.format(service=service)}")
        self._wait(EC.presence_of_element_located(IN_FLIGHT), f"the in-flight panel of {service}")

    def in_flight(self, environment: str) -> dict:
        """What the panel shows of ``environment`` now: its run (``run_id`` None when nothing is in flight there),
        its steps, its traffic shares, its verdict rows, and when the panel was last drawn."""
        return self.driver.execute_script(IN_FLIGHT_SNAPSHOT, environment)

    def wait_in_flight(self, environment: str, until, what: str, *, timeout: float) -> dict:
        """The first snapshot of ``environment``'s panel that ``until`` accepts, the page left to redraw itself
        (never reloaded); TimeoutException with the last snapshot after ``timeout`` seconds."""
        seen: list[dict] = []

        def accepted(driver) -> dict | bool:
            seen[:] = [self.in_flight(environment)]
            return seen[0] if until(seen[0]) else False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.5).until(accepted)
        except TimeoutException:
            raise TimeoutException(f"waited {timeout:g} s for {what}; the panel showed {seen}") from None
