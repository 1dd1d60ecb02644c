"""One deployer step of an environment at a time, whatever dies (issue 22): the task process of a prod blue-green
release's ``shift`` (as its deployer starts) or ``promote`` (during its post-promotion watch) is SIGKILLed while
its deployer container runs (as a lost worker, an OOM kill or a node drain would do). Airflow retries the task;
the retry takes the environment over (a newer fencing token, then the killed try's deployer stopped and
removed) before its own deployer starts.

From the engine's events: at most one deployer of prod runs at any instant; afterwards none is left; the
release ends promoted or rolled back, with prod serving the one or the other version; and a probe on prod's
front port throughout sees no failed request (a blue-green switch causes none).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from deployflow.analysis.loadgen import LoadGenerator
from tests.e2e.harness import (
    DAG_ID,
    PORTS,
    STACK,
    branch,
    finished,
    following,
    log_text,
    release,
    served_version,
)

pytestmark = pytest.mark.e2e

ENVIRONMENT = "prod"
DEPLOYER = [f"io.deployflow.stack={STACK}", "io.deployflow.role=deployer", f"io.deployflow.environment={ENVIRONMENT}"]
# How long into its deployer's run each step's task process is killed: shift (one switch) as its deployer starts;
# promote during its post-promotion watch (10 s in the e2e catalog).
KILL_AFTER_S = {"shift": 0, "promote": 2}


def served_version_or_none() -> str | None:
    try:
        return served_version(ENVIRONMENT)
    except Exception:  # noqa: BLE001 - no proxy, no answer, no version yet
        return None


def running_deployers(docker_client, step: str) -> list:
    return docker_client.containers.list(filters={"label": [*DEPLOYER, f"io.deployflow.step={step}"], "status": "running"})


def task_pid_once_its_deployer_runs(airflow, docker_client, run_id: str, task_id: str, timeout_s: float = 600) -> int:
    """The pid of ``task_id``'s task process (the Task SDK's, as the API server has it) once the deployer container
    it started runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [ti] = [ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == task_id]
        assert ti["state"] in (None, "scheduled", "queued", "running"), f"{task_id} is {ti['state']} before the kill"
        if ti["state"] == "running" and ti.get("pid") and running_deployers(docker_client, task_id):
            return ti["pid"]
        time.sleep(0.2)
    pytest.fail(f"{task_id}'s deployer never ran within {timeout_s:.0f} s")


def most_at_once(events: list[dict]) -> tuple[int, list[str]]:
    """The most deployer containers running at one instant, from their start and die events, and the names of
    those that ran together then."""
    running: dict[str, str] = {}
    most, together = 0, []
    for event in sorted(events, key=lambda e: e["timeNano"]):
        name = event["Actor"]["Attributes"].get("name", event["id"][:12])
        if event["Action"] == "start":
            running[event["id"]] = name
        else:
            running.pop(event["id"], None)
        if len(running) > most:
            most, together = len(running), sorted(running.values())
    return most, together


@pytest.mark.parametrize("step", ["shift", "promote"])
def test_a_step_killed_mid_run_is_taken_over_by_its_retry_never_run_beside_it(airflow, docker_client, sample_repo, step):
    if served_version_or_none() is None:
        assert release(airflow, ENVIRONMENT, "main")["state"] == "success"  # a live version for blue-green to replace
    live = served_version(ENVIRONMENT)
    new = branch(sample_repo, f"fenced-{step}")
    events: list[dict] = []
    probe = LoadGenerator(f"http://127.0.0.1:{PORTS[ENVIRONMENT]}/", rate=20, threads=2)
    with following(docker_client, {"type": "container", "event": ["start", "die"], "label": DEPLOYER}, events.append), probe:
        run_id = airflow.trigger(DAG_ID, {"environment": ENVIRONMENT, "git_ref": f"fenced-{step}"})["dag_run_id"]
        pid = task_pid_once_its_deployer_runs(airflow, docker_client, run_id, step)
        time.sleep(KILL_AFTER_S[step])
        os.kill(pid, signal.SIGKILL)  # the task process, not its deployer: that one runs on, orphaned
        run = finished(airflow, run_id)
        time.sleep(2)  # the last die event is in the stream

    assert run["tries"][step] >= 2, run  # Airflow retried the killed try
    most, together = most_at_once(events)
    assert most == 1, f"{most} deployers of {ENVIRONMENT} ran at once: {together}"
    assert len({e["id"] for e in events if e["Action"] == "start"}) >= 2, "the killed try's deployer and its retry's"
    left = docker_client.containers.list(all=True, filters={"label": DEPLOYER})
    assert left == [], [c.name for c in left]
    promoted, rolled_back = run["tasks"].get("promote") == "success", run["tasks"].get("rollback") == "success"
    assert promoted or rolled_back, run["tasks"]
    assert served_version(ENVIRONMENT) == (new if promoted else live)
    # The retry found the killed try's deployer (running still, or exited in the retry delay) and removed it.
    assert f"deployer {step} of run {run_id} (try 1) removed" in log_text(airflow, run_id, step, 2)
    assert probe.report.sent > 0 and probe.report.failures == [], probe.report.summary()
