"""Waiting holds no worker slot: on the real stack, a staging canary's analysis (and a health check past its
first seconds) waits in the triggerer, the load is a container (not a task), and a triggerer restart mid-analysis resumes the analysis at
the interval it had reached.

The run's task instances are sampled through the REST API about every 0.5 s while the release goes on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from deployflow.stack import processes, secrets
from tests.e2e.harness import DAG_ID, STACK, all_tries_text, branch, finished, log_text, release, served_version

pytestmark = pytest.mark.e2e

LOAD_CONTAINER = f"df-{STACK}-sample-app-staging-load"


@pytest.fixture(scope="module")
def staging_live(airflow, sample_repo):
    run = release(airflow, "staging", branch(sample_repo, "waits-base"))  # a canary needs a live version to judge against
    assert run["state"] == "success", run["tasks"]


def task_dir(home: Path, run_id: str, task_id: str) -> Path:
    return home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"


def trigger_logs(home: Path, run_id: str, task_id: str) -> dict[str, str]:
    """The task's trigger logs by file name (one file per triggerer job that ran one of its triggers)."""
    return {p.name: p.read_text(errors="replace") for p in sorted(task_dir(home, run_id, task_id).glob("attempt=*.log.trigger.*.log"))}


def sample_until_done(airflow, docker_client, run_id: str, on_sample=None) -> list[dict]:
    """Every ~0.5 s until the run ends: each task instance's state, and whether the load container runs."""
    samples = []
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
        load = docker_client.containers.list(filters={"name": LOAD_CONTAINER})
        samples.append({"states": states, "load_running": bool(load)})
        if on_sample:
            on_sample(states)
        if airflow.dag_run(DAG_ID, run_id)["state"] in ("success", "failed"):
            return samples
        time.sleep(0.5)
    raise AssertionError(f"{run_id} did not finish within 900 s")


def assert_no_slot_held_while_waiting(samples: list[dict]) -> None:
    """Where health or analysis is deferred, no task of the run runs (the load task only while it starts its
    container: once it has finished, nothing)."""
    deferred = [s for s in samples if "deferred" in (s["states"].get("health"), s["states"].get("analysis"))]
    assert deferred, "no sample saw a wait deferred"
    for sample in deferred:
        running = {t for t, state in sample["states"].items() if state == "running"}
        load_done = sample["states"].get("load") in ("success", "skipped", "failed")
        assert not running - {"load"} and not (running and load_done), sample["states"]
    assert any(s["states"].get("load") == "success" and s["states"].get("analysis") == "deferred" for s in samples), \
        "the load task finished while the analysis still waited"


def test_health_and_analysis_wait_in_the_triggerer_and_no_worker_slot_is_held(airflow, airflow_home, docker_client,
                                                                            sample_repo, staging_live):
    new = branch(sample_repo, "waits-good")
    run_id = airflow.trigger(DAG_ID, {"environment": "staging", "git_ref": "waits-good"})["dag_run_id"]
    samples = sample_until_done(airflow, docker_client, run_id)
    run = finished(airflow, run_id)
    assert run["state"] == "success", run["tasks"]
    assert served_version("staging") == new
    assert any(s["states"].get("analysis") == "deferred" for s in samples)
    assert_no_slot_held_while_waiting(samples)
    assert any(s["load_running"] and s["states"].get("analysis") == "deferred" for s in samples), \
        "the load ran as a container while the analysis waited"
    # The health check took one process: healthy within its first seconds, it ended in the task (a hand-off to
    # the triggerer and back costs more than so short a wait); slower (a busy machine), it deferred, and the
    # trigger ended the task (TaskSuccessEvent): no second process resumed it either way.
    health = all_tries_text(airflow_home, run_id, "health")
    assert health.count("::group::Pre Execute") == 1, health
    triggered = trigger_logs(airflow_home, run_id, "health")
    if triggered:
        assert "the triggerer waits for the rest" in health
        assert any("healthy after" in text for text in triggered.values()), triggered
    else:
        assert re.search(r"healthy: \d+ good rounds in a row", health), health
    analysis = all_tries_text(airflow_home, run_id, "analysis")
    assert "canary analysis passed" in analysis
    for number in (2, 3):  # each interval's trigger began from the serialized progress; the task logs what it said
        assert f"triggerer: resuming canary analysis at interval {number} of at most 6" in analysis
    # The record stopped the load, logged its report and removed the container.
    assert re.search(r"load: \d+ requests in [\d.]+ s, \d+ failed", log_text(airflow, run_id, "record"))
    assert not docker_client.containers.list(all=True, filters={"name": LOAD_CONTAINER})
    print(f"health sampled deferred: {any(s['states'].get('health') == 'deferred' for s in samples)}; "
          f"samples: {len(samples)}")


def restart_triggerer(home: Path) -> int:
    """Stop the stack's triggerer (as airflow_down would) and start it again with the same command and
    environment; the new PID (in the pid file, so the stack's teardown stops it)."""
    pid = processes._running(home, "triggerer")
    assert pid, "the stack's triggerer runs"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    env = dict(line.split(b"=", 1) for line in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in line)
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while processes._alive(pid):
        assert time.monotonic() < deadline, "the triggerer did not stop within 60 s"
        processes._reap(pid)
        time.sleep(0.2)
    with secrets._open_private(home / "logs" / "triggerer.out", "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                umask=secrets.PRIVATE_UMASK)
    with secrets._open_private(processes._pid_file(home, "triggerer"), "w") as pid_file:
        pid_file.write(str(proc.pid))
    return proc.pid


def test_a_triggerer_restart_mid_analysis_resumes_at_the_interval_it_had_reached(airflow, airflow_home, docker_client,
                                                                              sample_repo, staging_live):
    new = branch(sample_repo, "waits-restart")
    run_id = airflow.trigger(DAG_ID, {"environment": "staging", "git_ref": "waits-restart"})["dag_run_id"]
    worker_log = task_dir(airflow_home, run_id, "analysis") / "attempt=1.log"
    restarted: dict[str, object] = {}

    def restart_once_past_the_first_interval(states: dict[str, str]) -> None:
        # Deferred after a judged interval that decided nothing: the analysis waits for interval 2 or later.
        if restarted or states.get("analysis") != "deferred" or not worker_log.exists():
            return
        if re.search(r"interval \d+: \w+; \d+ passing of \d+ so far", worker_log.read_text(errors="replace")):
            restarted["before"] = set(trigger_logs(airflow_home, run_id, "analysis"))
            restarted["pid"] = restart_triggerer(airflow_home)

    samples = sample_until_done(airflow, docker_client, run_id, on_sample=restart_once_past_the_first_interval)
    run = finished(airflow, run_id)
    assert restarted, "the analysis never waited past its first interval"
    assert run["state"] == "success", run["tasks"]
    assert served_version("staging") == new
    assert_no_slot_held_while_waiting(samples)
    after = {name: text for name, text in trigger_logs(airflow_home, run_id, "analysis").items()
             if name not in restarted["before"]}
    assert after, "the restarted triggerer ran none of the analysis' triggers"
    resumed = [int(n) for text in after.values() for n in re.findall(r"resuming canary analysis at interval (\d+)", text)]
    assert resumed and min(resumed) >= 2, after
    assert not any("interval 1 of at most" in text for text in after.values()), "the analysis started over"
    judged = [int(n) for n in re.findall(r"^(?:triggerer: )?interval (\d+) \(judged in", all_tries_text(airflow_home, run_id, "analysis"),
                                         re.MULTILINE)]
    # Every interval up to the last judged at least once (one in flight at the restart is judged again, from the same progress).
    assert judged and set(judged) == set(range(1, max(judged) + 1)), judged
