"""The Celery setup's processes (deployflow.stack.celery): who gets which secret, and how; their command lines."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from deployflow.stack import celery as celery_stack
from deployflow.stack.celery_services import Servers

JWT = "AIRFLOW__API_AUTH__JWT_SECRET"
FERNET = "AIRFLOW__CORE__FERNET_KEY"
METADATA = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
METADATA_ASYNC = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
BROKER = "AIRFLOW__CELERY__BROKER_URL"
RESULTS = "AIRFLOW__CELERY__RESULT_BACKEND"
EVERY = (JWT, FERNET, METADATA, METADATA_ASYNC, BROKER, RESULTS)
FILES = {JWT: "jwt_secret", FERNET: "fernet_key", METADATA: "sql_alchemy_conn", METADATA_ASYNC: "sql_alchemy_conn_async",
         BROKER: "broker_url", RESULTS: "result_backend"}


@pytest.fixture
def top(tmp_path: Path) -> Path:
    top = tmp_path / "celery top"  # a space: the _CMD must quote the path
    secrets = top / "secrets"
    secrets.mkdir(parents=True)
    for name in ("postgres-airflow", "postgres-celery", "redis"):
        (secrets / name).write_text(f"pw-{name}")
    celery_stack.ensure_secrets(secrets)
    celery_stack.write_urls(Servers(27432, 27379, secrets))
    return top


@pytest.mark.parametrize(("process", "pointers"), [
    ("api-server", {JWT, FERNET, METADATA, METADATA_ASYNC}),
    ("scheduler", {JWT, METADATA, METADATA_ASYNC, BROKER, RESULTS}),
    ("dag-processor", {FERNET, METADATA, METADATA_ASYNC}),
    ("triggerer-a", {FERNET, METADATA, METADATA_ASYNC}),
    ("triggerer-b", {FERNET, METADATA, METADATA_ASYNC}),
    ("worker-a", {BROKER, RESULTS}),  # no metadata URL: a worker reaches it through the Execution API only
    ("worker-b", {BROKER, RESULTS}),
    ("exporter", set()),
])
def test_each_process_gets_a_pointer_to_the_secrets_it_needs_and_no_value(top, monkeypatch, process, pointers):
    for name in EVERY:
        monkeypatch.setenv(name, "from-the-shell")
    env = celery_stack.process_env(process, top, 27080)
    assert {name for name in EVERY if f"{name}_CMD" in env} == pointers
    assert not [name for name in EVERY if name in env or f"{name}_SECRET" in env]
    secrets = [path.read_text() for path in (top / "secrets").iterdir()]
    assert not [key for key, value in env.items() if any(secret in value for secret in secrets)]
    for name in pointers:  # what Airflow runs (shlex-split, no shell) prints the file's value
        done = subprocess.run(shlex.split(env[f"{name}_CMD"]), capture_output=True, text=True, check=True)
        assert done.stdout == (top / "secrets" / FILES[name]).read_text()

def test_the_urls_carry_the_generated_passwords_and_name_127_0_0_1(top):
    read = {name: (top / "secrets" / name).read_text() for name in ("sql_alchemy_conn", "broker_url", "result_backend")}
    assert read == {
        "sql_alchemy_conn": "postgresql+psycopg://airflow:pw-postgres-airflow@127.0.0.1:27432/airflow",
        "broker_url": "redis://:pw-redis@127.0.0.1:27379/0",
        "result_backend": "db+postgresql+psycopg://celery:pw-postgres-celery@127.0.0.1:27432/celery",
    }


def test_each_process_has_a_home_of_its_own_and_the_workers_their_names_and_ports(top):
    homes = {name: celery_stack.process_env(name, top, 27080)["AIRFLOW_HOME"] for name in celery_stack.commands()}
    assert len(set(homes.values())) == len(homes)
    a, b = (celery_stack.process_env(name, top, 27080) for name in ("worker-a", "worker-b"))
    assert (a["DEPLOYFLOW_WORKER_HOSTNAME"], b["DEPLOYFLOW_WORKER_HOSTNAME"]) == ("worker-a", "worker-b")
    assert a["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] != b["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]


def test_the_workers_consume_their_queues_and_no_process_serves_logs():
    commands = celery_stack.commands({"worker-a": 12})
    assert commands["worker-a"][:7] == ["airflow", "celery", "worker", "--queues", "default", "--concurrency", "12"]
    assert commands["worker-b"][3:7] == ["--queues", "host-b", "--concurrency", "3"]
    assert commands["triggerer-a"][2:4] == ["--queues", "default"]
    assert commands["triggerer-b"][2:4] == ["--queues", "host-b"]
    for name in ("scheduler", "triggerer-a", "triggerer-b", "worker-a", "worker-b"):  # log servers bind every interface
        assert "--skip-serve-logs" in commands[name], name
