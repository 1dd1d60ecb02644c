"""What the end-to-end tests share besides fixtures: names, git, reading task logs."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from docker.errors import NotFound

from deployflow.client import AirflowClient
from tests.scenarios import branch, git  # noqa: F401 - the tests' names for them

ROOT = Path(__file__).resolve().parents[2]
# make test runs the e2e modules in two pytest processes at once (tests/runner.py E2E_SHARDS), each on a stack of
# its own: DEPLOYFLOW_E2E_SHARD (0, the default, or 1) picks the stack's name and every port it listens on, so
# the two never share a container, an engine, a port or a queue. Shard 0 keeps the names and ports it always had.
SHARD = int(os.environ.get("DEPLOYFLOW_E2E_SHARD", "0"))
if SHARD not in (0, 1):
    raise ValueError(f"DEPLOYFLOW_E2E_SHARD={SHARD}: the e2e stacks are 0 and 1")
OFFSET = 600 * SHARD  # the front ports, Airflow's and the receivers': shard 1's 28680-28792, clear of shard 0's
PORT = 28080 + OFFSET
DAG_ID = "release_sample-app"
STACK = "e2e" if SHARD == 0 else f"e2e{SHARD}"
PORTS = {"dev": 28101 + OFFSET, "staging": 28102 + OFFSET, "prod": 28103 + OFFSET}
GOV_DAG = "release_gov-app"  # the governed service (tests/scenarios.py write_governed)
GOV_PORTS = {"dev": 28104 + OFFSET, "staging": 28105 + OFFSET, "prod": 28106 + OFFSET}
GOV_APPROVAL_TIMEOUT_S = 60  # long enough for a browser to answer, short enough to wait out in a test
# The stack's second user, the approver of gov-app's gates: admin triggers the runs, and may not answer them.
APPROVER = "approver"
VIEWER = "watcher"  # may read every page and run, may act on none
USERS = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{APPROVER}:user,{VIEWER}:viewer"}
CRASH_AFTER_S = 10
# sample-app's test suites in the e2e catalog: unit and performance (83 % coverage, over the gate's 80 %), not the
# integration suite. That one is the longest task of a release (10 s of a 28 s release unloaded, about half of
# its CPU) and shows nothing the deploy, analysis and steering tests look at; some fifty releases ran it. It runs
# in every release of gov-app (tests/scenarios.py write_governed: all three suites), and test_governance checks
# that it passed there; the Celery setup's sample-app (tests/scale) keeps all three as well.
SUITES = ("unit", "performance")
HOST_DAG = "release_host-app"  # the service on the second engine (tests/scenarios.py write_hosted)
HOST_PORTS = {"dev": 28110 + OFFSET}
HOST_ENGINE = f"{STACK}-host"  # tests/engines.py's name of the second engine, standing for dev's Docker host
HOST_CONNECTION = f"df_{STACK}_host"
HOST_QUEUE = f"{STACK}-host"
PROMETHEUS_PORT = 29090 + 10 * SHARD
EXPORTER_PORT = 29468 + 10 * SHARD  # the release exporter of the e2e stack (the local one: 9468; benchmarks' 29469-29473)


def host_connection() -> dict[str, str]:
    """The Airflow connection of the second engine, as the stack's environment gives it (JSON form)."""
    socket = f"/run/deployflow-{HOST_ENGINE}.sock"  # tests/engines.py paths(): the test starts the engine itself
    return {f"AIRFLOW_CONN_{HOST_CONNECTION.upper()}": json.dumps({"conn_type": "docker", "host": f"unix://{socket}"})}


def log_text(client: AirflowClient, run_id: str, task_id: str, try_number: int | None = None, *, dag_id: str = DAG_ID) -> str:
    """A task's log as text, exception messages included: of ``try_number``, by default its last try, the one with
    the verdict (a wait resumed from the triggerer is retried when Airflow fails it, apache/airflow#72716)."""
    if try_number is None:
        [try_number] = [ti["try_number"] for ti in client.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
    lines = []
    for entry in client.task_log(dag_id, run_id, task_id, try_number):
        lines.append(str(entry.get("event", "")))
        for detail in entry.get("error_detail") or []:
            lines.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
    return "\n".join(lines)


def all_tries_text(home: Path, run_id: str, task_id: str, *, dag_id: str = DAG_ID) -> str:
    """Every try's log of a task, read from the stack's log files (a sensor in reschedule mode may have several
    tries, and the REST API does not serve every one of them)."""
    directory = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    events = []
    for path in sorted(directory.glob("attempt=*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                events.append(str(json.loads(line).get("event", "")))
            except ValueError:
                events.append(line)
    return "\n".join(events)


def release(client: AirflowClient, environment: str, ref: str, **conf: str | bool) -> dict:
    """Trigger a release through the REST API and follow it to the end."""
    run_id = client.trigger(DAG_ID, {"environment": environment, "git_ref": ref, **conf})["dag_run_id"]
    return finished(client, run_id)


def release_together(client: AirflowClient, environments: list[str], ref: str) -> dict[str, dict]:
    """Release ``ref`` to each of ``environments`` at once (each environment has its own lock) and follow every run
    to its end: by environment, what ``release`` returns."""
    run_ids = {env: client.trigger(DAG_ID, {"environment": env, "git_ref": ref})["dag_run_id"] for env in environments}
    return {env: finished(client, run_id) for env, run_id in run_ids.items()}


class TaskStates(dict):
    """A run's task states by task id, shown in an assertion's message with what did not succeed first (pytest cuts
    a long message short, and the failed task is what a reader needs)."""

    def __repr__(self) -> str:
        others = {task: state for task, state in self.items() if state not in ("success", "skipped")}
        return f"not success or skipped: {others}; {len(self) - len(others)} others success or skipped"


def finished(client: AirflowClient, run_id: str) -> dict:
    run = client.wait(DAG_ID, run_id, timeout=900)
    tis = client.task_instances(DAG_ID, run_id)
    tasks = TaskStates({ti["task_id"]: ti["state"] for ti in tis})
    if run["state"] == "failed":  # the failed tasks' last lines, shown with a test that did not expect the failure
        for task in (task for task, state in tasks.items() if state == "failed"):
            print(f"[harness] {run_id} {task} failed; its log ends:", *log_text(client, run_id, task).splitlines()[-15:],
                  sep="\n  ")
    return {
        "run_id": run_id, "state": run["state"], "start": run["start_date"], "end": run["end_date"],
        "tasks": tasks, "tries": {ti["task_id"]: ti["try_number"] for ti in tis},
    }


def short_sha(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", ref)[:12]


def served_version(environment: str) -> str:
    import requests

    return requests.get(f"http://127.0.0.1:{PORTS[environment]}/", timeout=5).json()["version"][:12]


def versions(report, **window: float) -> Counter:
    """Successful answers by version (short SHA, as containers are labelled)."""
    return Counter({version[:12]: n for version, n in report.by_version(**window).items()})


def app_containers(docker_client, environment: str) -> list:
    labels = [f"io.deployflow.stack={STACK}", "io.deployflow.role=app", f"io.deployflow.environment={environment}"]
    return docker_client.containers.list(all=True, filters={"label": labels})


@contextmanager
def following(docker_client, filters: dict, handle: Callable[[dict], None]) -> Iterator[None]:
    """``handle`` called with every engine event that matches ``filters`` while inside, from a thread that follows
    the event stream."""
    events = docker_client.events(decode=True, filters=filters)
    stopped = threading.Event()

    def follow() -> None:
        try:
            for event in events:
                handle(event)
        except Exception:
            if not stopped.is_set():  # closing the stream ends the loop with an error of its own
                raise

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        events.close()
        thread.join(timeout=10)


@contextmanager
def containers_created(docker_client, stack: str = STACK) -> Iterator[dict[str, dict]]:
    """Every container of ``stack`` created while inside, by ID: its ``docker inspect``, taken on its create event
    (the deployer's and the tests' are removed once they exit, seconds later), or the event's own attributes
    with ``"missed": True`` if it was gone already."""
    found: dict[str, dict] = {}

    def inspect(event: dict) -> None:
        try:
            found[event["id"]] = docker_client.api.inspect_container(event["id"])
        except NotFound:
            found[event["id"]] = {"missed": True, **event.get("Actor", {})}

    with following(docker_client, {"type": "container", "event": "create", "label": f"io.deployflow.stack={stack}"},
                   inspect):
        yield found


@contextmanager
def configured(catalog: Path, environment: str, config: dict) -> Iterator[None]:
    """sample-app's ``environment`` with ``config`` for the length of the block (every task reads the catalog when it
    starts), then the file as it was."""
    with environment_with(catalog, environment, config=config):
        yield


@contextmanager
def environment_with(catalog: Path, environment: str, **fields: object) -> Iterator[None]:
    """sample-app's ``environment`` with ``fields`` set for the length of the block, then the file as it was."""
    path = catalog / "sample-app.yaml"
    original = path.read_text()
    entry = yaml.safe_load(original)
    entry["environments"][environment].update(fields)
    path.write_text(yaml.safe_dump(entry))
    try:
        yield
    finally:
        path.write_text(original)
