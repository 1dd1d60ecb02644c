"""The release DAG's trigger form and its approval gate in a real browser: Debian's Chromium driven by
Selenium through the page object of tests/browser/airflow_ui.py, against the e2e stack's Airflow.

A release of gov-app to prod is triggered from the form by admin, its gate (``approve_deploy``, awaiting
input) is approved on its Required Action page by the approver (whoever triggers a run never answers its gate),
and the REST API must then show the run with the form's values and the gate succeeded, approved by the approver.
Screenshots of the form and of the gate go to the test's tmp_path.

Before any release, the forms as a newcomer sees them: sample-app's (a nightly service, whose environment's
default is "") and gov-app's mark Environment required and nothing else that may be left empty, show no "null",
and enable Trigger once an environment is chosen (tests/dags/test_trigger_form.py holds the rules behind it).
Needs chromium and chromium-driver (.ci/run installs them); without them the test fails, it never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from deployflow.stack.secrets import user_password
from tests.stacks import wait_for_dag
from deployflow.client import AirflowClient
from tests.browser.airflow_rest import hitl_detail, newest_run_id, wait_for_task_state
from tests.browser.airflow_ui import TRIGGER_FORM, AirflowUI, chromium_driver
from tests.browser.scheduler_log import scheduler_log, wait_for_parked_exit
from tests.browser.trigger_form import field, trigger_enabled
from tests.e2e.harness import APPROVER, DAG_ID as SAMPLE_DAG, PORT

pytestmark = pytest.mark.e2e

DAG_ID = "release_gov-app"
GATE = "approve_deploy"
FIELDS = {"environment": "prod", "git_ref": "main", "reason": "browser test"}
COMMENT = "approved in the browser by tests/e2e/test_governance_browser.py"
OPTIONAL = ("reason", "promote_from", "rollback_to", "freeze_override", "force")  # may be left as they are
EMPTY_AT_FIRST = ("reason", "promote_from", "rollback_to", "freeze_override")  # their default is null


@pytest.fixture
def signed_in(airflow: AirflowClient, airflow_home: Path) -> Iterator[Callable[[str], AirflowUI]]:
    """The UI of the e2e stack, signed in as a user, each in a fresh headless Chromium (one at a time)."""
    drivers = []

    def sign_in(user: str) -> AirflowUI:
        while drivers:
            drivers.pop().quit()
        drivers.append(chromium_driver())
        page = AirflowUI(f"http://127.0.0.1:{PORT}", drivers[-1], newest_run_id=lambda dag_id: newest_run_id(airflow, dag_id))
        page.login(user, user_password(airflow_home, user))
        return page

    try:
        yield sign_in
    finally:
        for driver in drivers:
            driver.quit()


def test_a_release_triggered_from_the_form_and_approved_in_the_ui_goes_through(
        airflow: AirflowClient, airflow_home: Path, signed_in: Callable[[str], AirflowUI], tmp_path: Path):
    wait_for_dag(airflow, DAG_ID)
    form, approval, approved = tmp_path / "trigger-form.png", tmp_path / "approval.png", tmp_path / "approved.png"
    print(f"screenshots: {form} (the filled form), {approval} (the gate before Approve), {approved} (after)")

    run_id = signed_in("admin").trigger_from_form(DAG_ID, FIELDS, screenshot_to=form)
    print(f"triggered {DAG_ID} {run_id} from the form")
    conf = airflow.dag_run(DAG_ID, run_id)["conf"]
    assert {name: conf.get(name) for name in FIELDS} == FIELDS, conf
    # The optional fields left as they were go as null, which resolve takes as not given (the run goes on).
    assert {name: conf.get(name, "absent") for name in EMPTY_AT_FIRST if name not in FIELDS} == dict.fromkeys(
        ("promote_from", "rollback_to", "freeze_override")), conf

    gate = wait_for_task_state(airflow, DAG_ID, run_id, GATE, "awaiting_input", timeout=600)
    wait_for_parked_exit(scheduler_log(airflow_home), DAG_ID, run_id, GATE, gate["try_number"])  # else Airflow fails it
    # The gate's comment param, if it has one, may be required by the form (a string param without null in
    # its type is), which keeps Approve disabled while it is empty: give one.
    comment = COMMENT if "comment" in (hitl_detail(airflow, DAG_ID, run_id, GATE)["params"] or {}) else ""
    ui = signed_in(APPROVER)  # admin triggered the run: the gate is the approver's
    ui.approve(DAG_ID, run_id, GATE, comment=comment, screenshot_to=approval)
    ui.screenshot(approved)
    print(f"approved {GATE} in the UI")

    run = airflow.wait(DAG_ID, run_id, timeout=600)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    print(f"{DAG_ID} {run_id} ended {run['state']}: {states}")
    assert states[GATE] == "success", states
    detail = hitl_detail(airflow, DAG_ID, run_id, GATE)
    assert detail["response_received"] and detail["chosen_options"] == ["Approve"], detail
    assert (detail["responded_by_user"] or {}).get("name") == APPROVER, detail["responded_by_user"]
    if comment:
        assert detail["params_input"].get("comment") == comment, detail["params_input"]


@pytest.mark.parametrize(("dag_id", "environment"), [(SAMPLE_DAG, "dev"), (DAG_ID, "prod")], ids=["nightly", "manual"])
def test_the_trigger_form_marks_the_environment_required_and_shows_no_null(
        airflow: AirflowClient, signed_in: Callable[[str], AirflowUI], tmp_path: Path, dag_id: str, environment: str):
    wait_for_dag(airflow, dag_id)
    ui = signed_in("admin")
    ui.open_trigger_form(dag_id, {}, enabled=False)
    ui.screenshot(tmp_path / "trigger-form-untouched.png")
    shown = {name: field(ui.driver, name) for name in ("environment", *OPTIONAL)}
    print({name: f"{f.label!r} {f.value!r} {f.placeholder!r}" for name, f in shown.items()})
    assert shown["environment"].required and shown["environment"].label.endswith("*"), shown["environment"]
    assert [name for name in OPTIONAL if shown[name].required or shown[name].label.endswith("*")] == [], shown
    assert {name: shown[name].value for name in ("environment", *EMPTY_AT_FIRST)} == dict.fromkeys(("environment", *EMPTY_AT_FIRST), "")
    dialog = ui.driver.find_element(*TRIGGER_FORM).text
    assert "null" not in dialog.split() and "None" not in dialog.split(), dialog
    WebDriverWait(ui.driver, 10).until(lambda d: not trigger_enabled(d), "Trigger is enabled before an environment is chosen")

    ui.fill_param("environment", environment)  # and nothing else
    WebDriverWait(ui.driver, 10).until(trigger_enabled, "Trigger stays disabled with only the environment chosen")
    assert field(ui.driver, "environment").value == environment
    ui.driver.set_window_size(1400, 2400)  # the whole form, to its Trigger button
    form = ui.screenshot(tmp_path / "trigger-form.png")
    print(f"screenshot of {dag_id}'s form with only the environment chosen: {form}")
