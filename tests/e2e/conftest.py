"""One real stack for every end-to-end test: Docker engine, registry, Airflow.

Needs a Docker engine. Without one these tests fail (in CI and here alike);
they never skip. The catalog is a copy of the shipped one whose sample-app
source is a scratch git repository made from include/sample_app, with one
branch per scenario, so the tests release real commits without touching
this repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployflow.stack.containers import containers_down, ensure_images, prometheus_up, registry_up
from deployflow.stack.local import airflow_down, airflow_up
from deployflow.stack.secrets import admin_password, user_password
from tests.stacks import wait_for_dag
from deployflow.client import AirflowClient
from tests import scenarios
from tests.e2e import receivers
from tests.e2e.harness import (
    APPROVER,
    CRASH_AFTER_S,
    DAG_ID,
    EXPORTER_PORT,
    GOV_APPROVAL_TIMEOUT_S,
    GOV_PORTS,
    HOST_CONNECTION,
    HOST_PORTS,
    HOST_QUEUE,
    host_connection,
    PORT,
    PORTS,
    PROMETHEUS_PORT,
    STACK,
    SUITES,
    VIEWER,
    USERS,
)


# Restarts the Docker engine every test process shares (its stacks, the other shard's, the scale tests'): run last
# in its shard, once the runner says the other processes are done (tests/runner.py: ALONE_AFTER).
ALONE = ("test_restart.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in ALONE)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory) -> Path:
    return scenarios.make_repo(tmp_path_factory.mktemp("sample-repo"), crash_after_s=CRASH_AFTER_S)


@pytest.fixture(scope="session")
def catalog(tmp_path_factory, sample_repo: Path) -> Path:
    directory = scenarios.write_catalog(tmp_path_factory.mktemp("catalog"), sample_repo, PORTS, suites=SUITES)
    scenarios.write_governed(directory, sample_repo, GOV_PORTS, channels=receivers.CHANNELS, approvers=["admin", APPROVER],
                             approval_timeout_s=GOV_APPROVAL_TIMEOUT_S)
    return scenarios.write_hosted(directory, sample_repo, HOST_PORTS, connection=HOST_CONNECTION, queue=HOST_QUEUE)


@pytest.fixture(scope="session")
def approver(airflow: AirflowClient, airflow_home: Path) -> AirflowClient:
    """The same Airflow as ``airflow``, logged in as the approver: admin triggers, the approver answers."""
    client = AirflowClient(airflow.base_url, timeout=airflow.timeout)
    client.login(APPROVER, user_password(airflow_home, APPROVER))
    return client


@pytest.fixture(scope="session")
def notified() -> Iterator[receivers.Receivers]:
    """What gov-app's channels were told: the webhooks' posts and the e-mails."""
    with receivers.Receivers() as got:
        yield got


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """The AIRFLOW_HOME of the stack of ``airflow``."""
    return tmp_path_factory.mktemp("airflow-home")


@pytest.fixture(scope="session")
def stack_state(tmp_path_factory) -> Path:
    """The DEPLOYFLOW_STATE of the stack of ``airflow``: routers, release records, configurations, Prometheus' targets,
    the ledger. ``.state`` in a directory of its own, as a checkout's is: a command given that directory as its
    DEPLOYFLOW_HOME, and no DEPLOYFLOW_STATE, finds it by default."""
    state = tmp_path_factory.mktemp("stack-home") / ".state"
    state.mkdir()
    return state


@pytest.fixture(scope="session")
def airflow(docker_client, catalog: Path, airflow_home: Path, stack_state: Path, tmp_path_factory) -> Iterator[AirflowClient]:
    """Airflow on 127.0.0.1:PORT (28080; shard 1's 28680) with a fresh home, logged in as admin through /auth/token."""
    home, state = airflow_home, stack_state
    ensure_images(docker_client)
    registry_up(docker_client)
    containers_down(docker_client, STACK)  # an earlier session's leftovers
    extra = {
        "DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(tmp_path_factory.mktemp("workspace")),
        "DEPLOYFLOW_STACK": STACK, "DEPLOYFLOW_STATE": str(state), **receivers.connections(), **host_connection(),
        "DEPLOYFLOW_PROMETHEUS_URL": prometheus_up(docker_client, STACK, state, PROMETHEUS_PORT,
                                                  exporter_port=EXPORTER_PORT),
        **USERS,
    }
    for user in (APPROVER, VIEWER):  # before Airflow starts, which would generate them and print them to its log
        user_password(home, user)
    try:
        airflow_up(home, PORT, extra, exporter_port=EXPORTER_PORT)
        client = AirflowClient(f"http://127.0.0.1:{PORT}", timeout=90)  # a loaded machine can keep the API server busy for long
        client.login("admin", admin_password(home))
        wait_for_dag(client, DAG_ID)
        yield client
    finally:
        airflow_down(home)
        containers_down(docker_client, STACK)

