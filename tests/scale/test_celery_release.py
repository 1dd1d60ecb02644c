"""Releases on the Celery setup: build and tests on worker-a (the default queue), the deploy steps on worker-b
and the health wait's trigger on triggerer-b (the queue of dev's Docker host, the second engine); and worker-b killed in the middle of a deploy step: the step is retried
(heartbeat timeout, then its retry) and the release converges on one copy of the new version."""

from __future__ import annotations

import docker
import pytest

from deployflow.airflow.task_ids import BUILD, DEPLOYER_STEPS, HEALTH, PREPARE, PROMOTE, RECORD
from deployflow.stack import celery as celery_stack
from tests import scenarios
from tests.scale.harness import DAG_ID, HOST_B_QUEUE, served_version, wait_for_task

pytestmark = [pytest.mark.e2e, pytest.mark.celery]

SUITES = ("test.unit", "test.integration", "test.performance")


def dev_instances(setup) -> list:
    """The dev app containers of this setup, on the second engine."""
    client = docker.DockerClient(base_url=setup.engine)
    labels = [f"io.deployflow.stack={celery_stack.NAME}", "io.deployflow.role=app", "io.deployflow.environment=dev"]
    return client.containers.list(filters={"label": labels})


def triggerers_of(setup, run_id: str, task_id: str) -> set[str]:
    """The triggerers (by hostname) that ran the task's triggers: each writes the task's log file name plus
    ``.trigger.<its job id>.log`` (Airflow's FileTaskHandler.add_triggerer_suffix)."""
    jobs = setup.client._call("GET", "/api/v2/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
    hostname = {job["id"]: job["hostname"] for job in jobs}
    logs = setup.top / "task-logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    return {hostname[int(path.name.rsplit(".", 2)[-2])] for path in logs.glob("*.trigger.*.log")}


def test_build_and_tests_run_on_worker_a_and_the_deploy_steps_on_worker_b(setup):
    client = setup.client
    run_id = client.trigger(DAG_ID, {"environment": "dev", "git_ref": "main"})["dag_run_id"]
    assert client.wait(DAG_ID, run_id, timeout=600)["state"] == "success"
    tis = {ti["task_id"]: ti for ti in client.task_instances(DAG_ID, run_id)}
    for task_id in (BUILD, *SUITES):
        assert (tis[task_id]["hostname"], tis[task_id]["queue"]) == ("worker-a", "default"), task_id
    ran = [task_id for task_id in DEPLOYER_STEPS if tis[task_id]["state"] == "success"]
    assert ran == [PREPARE, "shift", PROMOTE]  # rolling: rollback skipped
    for task_id in (*ran, HEALTH, RECORD):  # the record reads the environment's records, on its host
        assert (tis[task_id]["hostname"], tis[task_id]["queue"]) == ("worker-b", HOST_B_QUEUE), task_id
    # The health wait (8 good rounds a second apart: longer than its first seconds in the task) was deferred, and its
    # trigger (the probes of host B's instances) ran in host B's triggerer.
    assert triggerers_of(setup, run_id, HEALTH) == {"triggerer-b"}
    sha = scenarios.git(setup.repo, "rev-parse", "main")[:12]
    assert served_version("dev") == sha
    assert {c.labels["io.deployflow.version"] for c in dev_instances(setup)} == {sha}


def test_a_worker_killed_during_a_deploy_step_the_step_is_retried_and_the_release_converges(setup):
    client = setup.client
    sha = scenarios.branch(setup.repo, "worker-b-killed")
    run_id = client.trigger(DAG_ID, {"environment": "dev", "git_ref": "worker-b-killed"})["dag_run_id"]
    running = wait_for_task(client, run_id, PREPARE, "running")
    assert running["hostname"] == "worker-b", running
    celery_stack.kill(setup.top, "worker-b")  # its whole process group: the worker, its pool, the task runner
    celery_stack.start(setup.top, "worker-b", celery_stack.PORT, setup.extra)

    assert client.wait(DAG_ID, run_id, timeout=600)["state"] == "success"
    tis = {ti["task_id"]: ti for ti in client.task_instances(DAG_ID, run_id)}
    assert tis[PREPARE]["try_number"] == 2, tis[PREPARE]
    assert (tis[PREPARE]["hostname"], tis[PREPARE]["state"]) == ("worker-b", "success")
    assert tis[PROMOTE]["state"] == "success"
    assert served_version("dev") == sha
    # One copy of the new version: the first try's instances were taken over, not doubled.
    instances = dev_instances(setup)
    assert sorted(c.labels["io.deployflow.version"] for c in instances) == [sha, sha], [c.name for c in instances]
