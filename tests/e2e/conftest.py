"""One real stack for every end-to-end test: Docker engine, registry, Airflow.

Needs a Docker engine. Without one these tests fail (in CI and here alike);
they never skip. The catalog is a copy of the shipped one whose sample-app
source is a scratch git repository made from include/sample_app, with one
branch per scenario, so the tests release real commits without touching
this repository.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

import stack
from deployflow.client import AirflowClient, ApiError
from tests.e2e.harness import CRASH_AFTER_S, DAG_ID, PORT, PORTS, ROOT, STACK, git


BROKEN_UNIT_TEST = '''
def test_release_blocker():
    assert 2 + 2 == 5, "deliberately failing unit test"
'''


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"end-to-end tests need a Docker engine and none answers ({exc}); .ci/run starts one", pytrace=False)
    return client


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory) -> Path:
    """A git repository of the sample service: main (good), broken-unit, broken-build."""
    repo = tmp_path_factory.mktemp("sample-repo")
    shutil.copytree(ROOT / "include" / "sample_app", repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".coverage*", ".pytest_cache"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "e2e@example.invalid")
    git(repo, "config", "user.name", "e2e")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "sample app")
    git(repo, "checkout", "-qb", "broken-unit")
    (repo / "tests" / "unit" / "test_release_blocker.py").write_text(BROKEN_UNIT_TEST)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a unit test that fails")
    git(repo, "checkout", "-qb", "broken-build", "main")
    with (repo / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("RUN echo 'this step breaks the build' && exit 3\n")
    git(repo, "commit", "-qam", "a Dockerfile step that fails")
    git(repo, "checkout", "-qb", "ready-never", "main")
    _bake(repo, "FAULT_READY_NEVER", "1")
    git(repo, "commit", "-qam", "a version whose readiness never passes")
    git(repo, "checkout", "-qb", "crash", "main")
    _bake(repo, "FAULT_CRASH_AFTER_S", str(CRASH_AFTER_S))
    git(repo, "commit", "-qam", f"a version that crashes {CRASH_AFTER_S} s after start")
    git(repo, "checkout", "-q", "main")
    return repo


def _bake(repo: Path, knob: str, value: str) -> None:
    """Set a fault knob's build-time default in the Dockerfile (the sample's suites ignore it)."""
    dockerfile = repo / "Dockerfile"
    text = dockerfile.read_text()
    assert f"ARG {knob}=\n" in text, f"the sample's Dockerfile has no ARG {knob}"
    dockerfile.write_text(text.replace(f"ARG {knob}=\n", f"ARG {knob}={value}\n"))


@pytest.fixture(scope="session")
def catalog(tmp_path_factory, sample_repo: Path) -> Path:
    directory = tmp_path_factory.mktemp("catalog")
    entry = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())
    entry["source"] = {"repo": str(sample_repo), "context": ".", "default_ref": "main"}
    # Own ports (a demo may be running) and short waits, so the suite stays quick.
    health = {"consecutive": 3, "interval_s": 0.5, "timeout_s": 10}
    entry["environments"] = {
        "dev": {"port": PORTS["dev"], "replicas": 3, "strategy": "rolling", "rolling": {"batch_size": 1}, "health": health},
        "staging": {"port": PORTS["staging"], "replicas": 2, "strategy": "canary", "health": health,
                    "canary": {"steps": [20, 50, 100], "pause_s": 4, "replicas": 1}},
        "prod": {"port": PORTS["prod"], "replicas": 2, "strategy": "blue-green", "health": health,
                 "blue_green": {"scale_down_delay_s": 10}},
    }
    (directory / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    return directory


@pytest.fixture(scope="session")
def airflow(docker_client, catalog: Path, tmp_path_factory) -> Iterator[AirflowClient]:
    """Airflow on 127.0.0.1:28080 with a fresh home, logged in as admin through /auth/token."""
    home = tmp_path_factory.mktemp("airflow-home")
    stack.ensure_images(docker_client)
    stack.registry_up(docker_client)
    extra = {
        "DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(tmp_path_factory.mktemp("workspace")),
        "DEPLOYFLOW_STACK": STACK, "DEPLOYFLOW_STATE": str(tmp_path_factory.mktemp("state")),
    }
    stack.containers_down(docker_client, STACK)  # an earlier session's leftovers
    try:
        stack.airflow_up(home, PORT, extra)
        client = AirflowClient(f"http://127.0.0.1:{PORT}")
        client.login("admin", stack.admin_password(home))
        _wait_for_dag(client, DAG_ID)
        yield client
    finally:
        stack.airflow_down(home)
        stack.containers_down(docker_client, STACK)


def _wait_for_dag(client: AirflowClient, dag_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.dag(dag_id)
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id} was not parsed within {timeout:.0f} s; import errors: {client.import_errors()}") from None
            time.sleep(1)
