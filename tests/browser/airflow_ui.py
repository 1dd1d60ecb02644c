"""A page object over Airflow 3.3's React UI, driven by Selenium: sign in, trigger a DAG from its param
form, approve a human-in-the-loop gate, take screenshots.

Every step waits for what it needs (``WebDriverWait``), never for a fixed time. Elements are found by
what the UI keeps stable: the param form's field ids and names (``element_<param>``, made from the param's
name), ``data-testid`` attributes, ARIA roles and visible text (the browser is told to prefer English);
never by CSS class names, which the UI's styling library generates.

The browser is Debian's Chromium with its own chromedriver (``chromium_driver``), both by path, so that
Selenium Manager never tries to download one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RUN_PAGE = re.compile(r"/dags/[^/]+/runs/([^/?#]+)/?(?:[?#].*)?$")
NAVIGATION = (By.CSS_SELECTOR, "[data-testid='nav-sidebar']")
TRIGGER_BUTTON = (By.CSS_SELECTOR, "[data-testid='trigger-dag-button']")
TRIGGER_FORM = (By.CSS_SELECTOR, "[role='dialog'] [data-testid='config-form']")
TRIGGER_SUBMIT = (By.CSS_SELECTOR, "[role='dialog'] [data-testid='trigger-dag-submit']")
TOASTS = (By.CSS_SELECTOR, "[role='region'][aria-label^='Notifications']")
APPROVE = (By.CSS_SELECTOR, "[data-testid='hitl-option-Approve']")
RESPONSE_RECEIVED = (By.XPATH, "//*[starts-with(normalize-space(), 'Response received at')]")
# The value of each field the form marks required (its label's data-required): a text field's input, or
# the hidden input of a select, which holds NULL_OPTION for None.
REQUIRED_VALUES = "//*[@role='group'][.//label[@data-required]]//input[starts-with(@name, 'element_')]"
NULL_OPTION = "__null__"


def chromium_driver(*, headless: bool = True, width: int = 1400, height: int = 1400) -> WebDriver:
    """Debian's Chromium through its chromedriver, both by path: nothing is downloaded. ``--no-sandbox``:
    Chromium's sandbox will not run as root, which CI is. English, so the UI's texts are the ones matched."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if headless:
        options.add_argument("--headless=new")
    for argument in ("--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class AirflowUI:
    """Airflow's UI at ``base_url``, through ``driver``.

    :param base_url: where Airflow's API server answers, e.g. ``http://127.0.0.1:28080``
    :param driver: a Selenium WebDriver (``chromium_driver()`` makes one); the caller quits it
    :param timeout: seconds any one step may wait for the UI
    :param newest_run_id: given a DAG id, its newest run's id (e.g. by REST: ``airflow_rest.newest_run_id``);
        asked only if the UI, after a trigger, does not go to the new run's page
    """

    def __init__(self, base_url: str, driver: WebDriver, *, timeout: float = 30,
                 newest_run_id: Callable[[str], str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.driver = driver
        self.timeout = timeout
        self.newest_run_id = newest_run_id

    def login(self, user: str, password: str) -> None:
        """Sign in on the simple auth manager's login page; return once the UI's navigation shows."""
        self.driver.get(f"{self.base_url}/auth/login")
        self._type(self._visible((By.NAME, "username")), user)
        self._type(self._visible((By.NAME, "password")), password)
        self._click((By.XPATH, "//form//button[@type='submit']"))
        self._wait(EC.presence_of_element_located(NAVIGATION), f"the UI after signing in as {user!r} (a wrong password?)")

    def trigger_from_form(self, dag_id: str, fields: dict[str, str], *, screenshot_to: Path | None = None) -> str:
        """Open ``dag_id``, its Trigger dialog, fill the run parameters ``fields`` (``fill_param``), submit,
        and return the new run's id: from the run page the UI goes to, else ``newest_run_id``.

        :param screenshot_to: where to save a screenshot of the filled form, just before submitting
        """
        self.open_trigger_form(dag_id, fields)
        if screenshot_to is not None:
            self.screenshot(screenshot_to)
        self._click(TRIGGER_SUBMIT)
        outcome, detail = self._wait(self._after_trigger, f"the run page or a toast after triggering {dag_id}")
        if outcome == "failed":
            raise AssertionError(f"the UI refused to trigger {dag_id} with {fields}: {detail}")
        if outcome == "run":
            return detail
        try:  # triggered, says a toast: the UI may still be on its way to the run's page
            return WebDriverWait(self.driver, 5).until(lambda d: self._run_page_id())
        except TimeoutException:
            if self.newest_run_id is None:
                raise AssertionError(f"the UI triggered {dag_id} but did not show the run (at {self.driver.current_url}), "
                                     "and no newest_run_id was given") from None
            return self.newest_run_id(dag_id)

    def open_trigger_form(self, dag_id: str, fields: dict[str, str], *, enabled: bool = True) -> None:
        """The Trigger dialog of ``dag_id`` with ``fields`` filled in and (``enabled``) its Trigger button enabled."""
        self.driver.get(f"{self.base_url}/dags/{quote(dag_id)}")
        self._click(TRIGGER_BUTTON)
        self._visible(TRIGGER_FORM)
        for name, value in fields.items():
            self.fill_param(name, value)
        if enabled:
            self._enabled(TRIGGER_SUBMIT, f"Trigger of {dag_id} with {fields}")

    def fill_param(self, name: str, value: str) -> None:
        """Set the field of the param ``name`` in the form on the page: a select's option (an enum's) by its
        text, which must be its value too (no ``values_display``), or a text field's text."""
        field = (By.ID, f"element_{name}")
        if self._visible(field).tag_name in ("input", "textarea"):
            self._type(self.driver.find_element(*field), value)
            self._wait(lambda d: d.find_element(*field).get_attribute("value") == value, f"the field {name} to read {value!r}")
            return
        # A react-select box; the hidden input named after the param holds the chosen value.
        box = (By.CSS_SELECTOR, f"#element_{name} input[role='combobox']")
        if not self.driver.find_elements(*box):
            raise AssertionError(f"the field of {name} is neither a text field nor a select; fill_param fills only those")
        self._click(box)
        self._click((By.XPATH, f"//*[@id='element_{name}']//*[@role='option'][normalize-space()={_literal(value)}]"))
        chosen = (By.CSS_SELECTOR, f"input[type='hidden'][name='element_{name}']")
        self._wait(lambda d: d.find_element(*chosen).get_attribute("value") == value, f"the select {name} to hold {value!r}")

    def approve(self, dag_id: str, run_id: str, task_id: str, comment: str = "", *,
                screenshot_to: Path | None = None) -> None:
        """On the task's Required Action page, write ``comment`` into the gate's ``comment`` field (if given),
        click Approve, and return once the page says the response was received.

        :param screenshot_to: where to save a screenshot of the page just before the click
        """
        self.open_required_action(dag_id, run_id, task_id)
        if comment:
            self.fill_param("comment", comment)
        self._enabled(APPROVE, f"Approve of {task_id} of {dag_id} {run_id}")
        if screenshot_to is not None:
            self.screenshot(screenshot_to)
        self._click(APPROVE)
        self._wait(EC.visibility_of_element_located(RESPONSE_RECEIVED),
                   f"'Response received at' on the Required Action page of {task_id} of {dag_id} {run_id}")

    def open_required_action(self, dag_id: str, run_id: str, task_id: str) -> None:
        """The Required Action page of a task (its human-in-the-loop form), once its Approve button shows."""
        url = f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}/required_actions"
        if self.driver.current_url != url:
            self.driver.get(url)
        self._visible(APPROVE)

    def screenshot(self, path: Path | str) -> Path:
        """The browser's window as a PNG at ``path`` (its directory made if need be)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(path)):
            raise OSError(f"the browser did not write the screenshot {path}")
        return path

    # ---- what the page shows ---------------------------------------------------------------

    def _run_page_id(self) -> str | None:
        found = RUN_PAGE.search(self.driver.current_url)
        return unquote(found.group(1)) if found else None

    def _after_trigger(self, driver: WebDriver) -> tuple[str, str] | None:
        """("run", its id) on the new run's page; ("failed", the toast) or ("triggered", "") by the toast."""
        run_id = self._run_page_id()
        if run_id:
            return "run", run_id
        toasts = " ".join(t.text for t in driver.find_elements(*TOASTS))
        if "Failed to Trigger Dag" in toasts:
            return "failed", " ".join(toasts.split())
        if "Dag Run Triggered" in toasts:
            return "triggered", ""
        return None

    def _empty_required_fields(self) -> list[str]:
        """The params of the form on the page that it marks required (a param is, unless its schema's type
        allows null) and that hold nothing: the form keeps its buttons disabled then."""
        values = self.driver.find_elements(By.XPATH, REQUIRED_VALUES)
        return [v.get_attribute("name").removeprefix("element_") for v in values
                if (v.get_attribute("value") or NULL_OPTION) == NULL_OPTION]

    # ---- waiting ----------------------------------------------------------------------------

    def _wait(self, condition: Callable[[WebDriver], Any], what: str) -> Any:
        try:
            return WebDriverWait(self.driver, self.timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            raise TimeoutException(f"waited {self.timeout:g} s for {what}; the page is {self.driver.current_url}") from None

    def _visible(self, locator: tuple[str, str]) -> WebElement:
        return self._wait(EC.visibility_of_element_located(locator), f"{locator[1]} to show")

    def _click(self, locator: tuple[str, str]) -> None:
        """Click the element once it is shown and enabled; again if React re-rendered it under the click or
        something (a toast, a closing menu) covered it for a moment."""
        def clicked(driver: WebDriver) -> bool:
            element = driver.find_element(*locator)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            element.click()
            return True

        try:
            WebDriverWait(self.driver, self.timeout, ignored_exceptions=(
                StaleElementReferenceException, ElementClickInterceptedException, ElementNotInteractableException,
                NoSuchElementException)).until(clicked)
        except TimeoutException:
            raise TimeoutException(f"waited {self.timeout:g} s to click {locator[1]}; the page is {self.driver.current_url}") from None

    def _enabled(self, button: tuple[str, str], what: str) -> None:
        """Wait for a form's button to be enabled; AssertionError naming the required fields left empty if it stays disabled."""
        try:
            WebDriverWait(self.driver, self.timeout).until(EC.element_to_be_clickable(button))
        except TimeoutException:
            raise AssertionError(f"{what} stays disabled after {self.timeout:g} s; the form's required fields left empty: "
                                 f"{self._empty_required_fields() or 'none'}") from None

    @staticmethod
    def _type(field: WebElement, text: str) -> None:
        """Replace a field's text as a person would, so React hears every key (``clear()`` it may not)."""
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE)
        field.send_keys(text)


def _literal(text: str) -> str:
    """``text`` as an XPath string literal, whatever quotes it holds."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"
