"""The deployer step's contract, the same on Docker and Kubernetes: its arguments, what it does first, how it ends."""

from __future__ import annotations

import logging

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from deployflow.airflow.deployer_step import begin_step, deployer_arguments, promote_now, step_outcome

RELEASE = {"environment": "prod", "version": "0123456789ab", "image": "127.0.0.1:5000/shop:0123456789ab", "strategy": "canary"}


@pytest.mark.parametrize("step, service_file, arguments", [
    ("prepare", "/etc/deployflow/shop.yaml", [  # Docker: the catalog entry is mounted
        "prepare", "--service-file", "/etc/deployflow/shop.yaml", "--environment", "prod", "--version", "0123456789ab",
        "--image", "127.0.0.1:5000/shop:0123456789ab", "--strategy", "canary"]),
    ("shift", None, [  # Kubernetes: the catalog entry is in $DEPLOYFLOW_SERVICE_YAML
        "shift", "--environment", "prod", "--version", "0123456789ab", "--image", "127.0.0.1:5000/shop:0123456789ab",
        "--strategy", "canary"]),
    ("rollback", None, [
        "rollback", "--environment", "prod", "--version", "0123456789ab", "--image", "127.0.0.1:5000/shop:0123456789ab",
        "--strategy", "canary"]),
    ("status", None, [  # status prints a table for a person unless told: the task parses its JSON line
        "status", "--environment", "prod", "--version", "0123456789ab", "--image", "127.0.0.1:5000/shop:0123456789ab",
        "--strategy", "canary", "--json"]),
])
def test_the_deployers_arguments(step, service_file, arguments):
    assert deployer_arguments(step, service_file=service_file, **RELEASE) == arguments


def test_arguments_left_empty_by_an_unfinished_run_are_passed_as_empty():
    # The rollback task renders its arguments before it skips a run whose build never finished.
    assert deployer_arguments("rollback", environment="prod", version="", image="", strategy="") == [
        "rollback", "--environment", "prod", "--version", "", "--image", "", "--strategy", ""]


FAILED_RESULT = {"step": "shift", "ok": False, "error": "canary analysis failed: errors 4.1 % > 1 %"}


@pytest.mark.parametrize("exit_code, result, error, raised, message", [
    (1, FAILED_RESULT, None, AirflowFailException, "canary analysis failed: errors 4.1 % > 1 %"),
    (1, FAILED_RESULT, "shift failed: something else", AirflowFailException, "canary analysis failed: errors 4.1 % > 1 %"),
    (1, None, None, AirflowFailException, "deployer shift exited with 1"),
    (2, None, "environment: 'qa' is not valid", AirflowFailException, "environment: 'qa' is not valid"),
    (2, None, None, AirflowFailException, "deployer shift exited with 2"),
    (0, None, None, AirflowFailException, "deployer shift printed no result"),
    (0, None, "a line that looked like an error", AirflowFailException, "deployer shift printed no result"),
    (137, None, None, AirflowException, "deployer shift exited with 137 (may be retried)"),
    (137, None, "shift: stopping blue-1", AirflowException, "shift: stopping blue-1 (may be retried)"),
    (143, FAILED_RESULT, None, AirflowException, "canary analysis failed: errors 4.1 % > 1 % (may be retried)"),
    (None, None, None, AirflowException, "deployer shift exited with None (may be retried)"),
])
def test_how_a_finished_deployer_ends_the_task(exit_code, result, error, raised, message):
    with pytest.raises(AirflowException) as caught:
        step_outcome("shift", exit_code, result, error)
    assert caught.type is raised  # exactly: an AirflowFailException is never retried, an AirflowException may be
    assert str(caught.value) == message


def test_a_step_that_exits_0_with_a_result_returns_it():
    result = {"step": "promote", "ok": True, "live": "green"}
    assert step_outcome("promote", 0, result, None) is result


class TI:
    """A task instance: what prepare pushed in this run; records pushes."""

    def __init__(self, started: bool | None) -> None:
        self.started = started
        self.pushed: list[tuple[str, object]] = []
        self.pulled: list[tuple[str, str]] = []

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        self.pulled.append((task_ids, key))
        return self.started if (task_ids, key) == ("prepare", "started") else None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))


@pytest.mark.parametrize("step, started, pushed, pulled", [
    ("prepare", None, [("started", True)], []),
    ("shift", True, [], []),
    ("promote", True, [], []),
    ("rollback", True, [], [("prepare", "started")]),
])
def test_every_step_begins_by_marking_or_reading_the_start(step, started, pushed, pulled):
    ti = TI(started)
    begin_step(step, {"ti": ti})
    assert (ti.pushed, ti.pulled) == (pushed, pulled)


def test_a_rollback_with_nothing_started_skips():
    ti = TI(None)
    with pytest.raises(AirflowSkipException, match="^nothing was deployed by this run: nothing to roll back$"):
        begin_step("rollback", {"ti": ti})
    assert ti.pushed == [("skipped", "nothing was deployed by this run: nothing to roll back")]  # for the client to tell


class Asked:
    """A task instance whose resolve holds a "promote now" (or none)."""

    def __init__(self, asked: dict | None) -> None:
        self.asked = asked

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.asked if (task_ids, key) == ("resolve", "promote_now") else None


@pytest.mark.parametrize("step, asked, skips", [
    ("promote", {"by": "alice", "reason": "metrics fine"}, True),
    ("promote", None, False),
    ("shift", {"by": "alice", "reason": ""}, False),  # only promote's pauses are skipped
])
def test_promote_now_reaches_the_promote_step_as_skip_pauses(step, asked, skips):
    skipping = promote_now(step, {"ti": Asked(asked)}, logging.getLogger("t"))
    assert skipping is skips
    assert deployer_arguments(step, skip_pauses=skipping, **RELEASE)[-1:] == (["--skip-pauses"] if skips else ["canary"])
