"""Browser check of Airflow's UI (Chromium through Selenium) against a toy of the gated release DAG.

    python scripts/browser_check.py --screenshots /tmp/browser-shots [--home /tmp/browser-home] [--runs 3]

Starts its own Airflow on 127.0.0.1:28380 (the stack's processes, as ``python -m deployflow.stack up`` does; no Docker)
whose only DAG is ``release_toy`` (tests/browser/dags: sample-app's trigger form, then an approval gate),
and with the page object of tests/browser/airflow_ui.py: signs in, triggers release_toy from the form,
waits by REST until the gate awaits input (and by the scheduler's log until it may be answered: see
tests/browser/scheduler_log.py), approves it in the UI with a comment, and checks by REST that the run
succeeded, approved by admin, with that comment. Saves screenshots of the filled form and of the gate
before and after Approve in --screenshots (a folder per run), prints how long each browser step took,
and stops Airflow. Exit 0 when every run passed.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from selenium.common.exceptions import WebDriverException  # noqa: E402

from deployflow.client import AirflowClient, ClientError  # noqa: E402
from deployflow.stack.local import airflow_down, airflow_up  # noqa: E402
from deployflow.stack.secrets import admin_password  # noqa: E402
from tests.browser.airflow_rest import hitl_detail, newest_run_id, wait_for_task_state  # noqa: E402
from tests.browser.airflow_ui import AirflowUI, chromium_driver  # noqa: E402
from tests.browser.scheduler_log import scheduler_log, wait_for_parked_exit  # noqa: E402
from tests.stacks import wait_for_dag  # noqa: E402

PORT = 28380
EXPORTER_PORT = 29473  # its release exporter (airflow_up starts one; nothing here reads it)
BASE_URL = f"http://127.0.0.1:{PORT}"
DAG_ID = "release_toy"
DAGS_FOLDER_ONLY = '[{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}]'
GATE = "approve_deploy"
FIELDS = {"environment": "prod", "git_ref": "main", "strategy": "canary", "reason": "browser check"}
COMMENT = "approved by scripts/browser_check.py"


@contextmanager
def timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    seconds[step] = time.monotonic() - started


def check_once(airflow: AirflowClient, home: Path, shots: Path) -> dict[str, float]:
    """One trigger and approval through the UI; the seconds of each browser step. AssertionError on a miss."""
    seconds: dict[str, float] = {}
    with timed(seconds, "start browser"):
        driver = chromium_driver()
    ui = AirflowUI(BASE_URL, driver, newest_run_id=lambda dag_id: newest_run_id(airflow, dag_id))
    try:
        with timed(seconds, "login"):
            ui.login("admin", admin_password(home))
        with timed(seconds, "trigger from the form"):
            run_id = ui.trigger_from_form(DAG_ID, FIELDS, screenshot_to=shots / "1-trigger-form.png")
        conf = airflow.dag_run(DAG_ID, run_id)["conf"]
        assert conf == FIELDS, f"the run's conf is {conf}, the form was filled with {FIELDS}"
        gate = wait_for_task_state(airflow, DAG_ID, run_id, GATE, "awaiting_input", timeout=120)
        parked = wait_for_parked_exit(scheduler_log(home), DAG_ID, run_id, GATE, gate["try_number"])
        with timed(seconds, "approve"):
            ui.approve(DAG_ID, run_id, GATE, comment=COMMENT, screenshot_to=shots / "2-approval.png")
        ui.screenshot(shots / "3-approved.png")
    except (AssertionError, WebDriverException):
        ui.screenshot(shots / "failed.png")
        raise
    finally:
        driver.quit()
    run = airflow.wait(DAG_ID, run_id, timeout=120, poll=1)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    detail = hitl_detail(airflow, DAG_ID, run_id, GATE)
    answered = (detail["chosen_options"], (detail["responded_by_user"] or {}).get("name"), detail["params_input"])
    assert run["state"] == "success" and states[GATE] == "success", f"{run_id} ended {run['state']}: {states}"
    assert answered == (["Approve"], "admin", {"comment": COMMENT}), f"the gate's answer: {answered}"
    print(f"  {run_id}: {run['state']}, {GATE} approved by admin ({states}); waited {parked:.1f} s after it awaited input "
          "for the scheduler to take the parking exit")
    return seconds


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", type=Path, required=True, help="directory for the screenshots")
    parser.add_argument("--home", type=Path, default=Path("/tmp/browser-home"), help="AIRFLOW_HOME of its Airflow")
    parser.add_argument("--runs", type=int, default=1, help="checks in a row on one Airflow")
    args = parser.parse_args(argv)
    home, shots = args.home.resolve(), args.screenshots.resolve()
    airflow_down(home)  # what an interrupted check of this home left running
    for port in (PORT, EXPORTER_PORT):
        if port_open(port):
            raise SystemExit(f"[browser-check] 127.0.0.1:{port} is taken by another process; stop it first")
    # dags/'s bundle only, pointed at the toy: without the catalog bundle's release DAGs (airflow.cfg)
    extra = {"AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "browser" / "dags"), "DEPLOYFLOW_STATE": str(home / "state"),
             "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": DAGS_FOLDER_ONLY}
    passed = 0
    try:
        airflow_up(home, PORT, extra, exporter_port=EXPORTER_PORT)
        airflow = AirflowClient(BASE_URL)
        airflow.login("admin", admin_password(home))
        wait_for_dag(airflow, DAG_ID)
        for number in range(1, args.runs + 1):
            print(f"[browser-check] run {number} of {args.runs}, screenshots in {shots / str(number)}", flush=True)
            try:
                seconds = check_once(airflow, home, shots / str(number))
            except (AssertionError, WebDriverException, ClientError) as exc:  # the page object's timeouts among them
                print(f"  FAILED: {exc}", flush=True)
                continue
            passed += 1
            print("  browser steps: " + ", ".join(f"{step} {s:.1f} s" for step, s in seconds.items())
                  + f"; in all {sum(seconds.values()):.1f} s", flush=True)
    finally:
        airflow_down(home)
    left = [port for port in (PORT, EXPORTER_PORT) if port_open(port)]
    if left:
        print(f"[browser-check] still answering after airflow_down: 127.0.0.1:{left}", flush=True)
    print(f"[browser-check] {passed} of {args.runs} passed")
    return 0 if passed == args.runs and not left else 1


if __name__ == "__main__":
    sys.exit(main())
