"""environments.<env>.docker_host: the Docker engine a docker environment runs on, and its worker's queue."""

from __future__ import annotations

import copy

import pytest

from deployflow.catalog import DockerHost, parse_service
from deployflow.errors import ConfigError
from tests.unit.test_catalog import GOOD, K8S


def with_host(value, env: str = "staging", doc=GOOD):
    raw = copy.deepcopy(doc)
    raw["environments"][env]["docker_host"] = value
    return raw


@pytest.mark.parametrize(("value", "expected"), [
    ("docker_stage", DockerHost("docker_stage", "docker_stage")),
    ({"connection": "docker_stage"}, DockerHost("docker_stage", "docker_stage")),
    ({"connection": "docker_stage", "queue": "stage-host"}, DockerHost("docker_stage", "stage-host")),
    ({"connection": "df.host-2", "queue": "q.2_b"}, DockerHost("df.host-2", "q.2_b")),
])
def test_a_docker_host_is_a_connection_and_a_queue(value, expected):
    service = parse_service(with_host(value))
    assert service.environments["staging"].docker_host == expected
    assert service.environments["dev"].docker_host is None  # the local engine, as before
    assert service.environments["prod"].docker_host is None


@pytest.mark.parametrize(("value", "error_path", "says"), [
    ("", "environments.staging.docker_host", "is not valid; must be an Airflow connection id"),
    ("docker stage", "environments.staging.docker_host", "must be an Airflow connection id"),
    ("_docker", "environments.staging.docker_host", "write {connection: _docker, queue: ...}"),
    (5, "environments.staging.docker_host", "must be a connection id or a mapping with connection and queue, got int"),
    (["docker_stage"], "environments.staging.docker_host", "got list"),
    ({"queue": "stage"}, "environments.staging.docker_host.connection", "is required"),
    ({"connection": "docker_stage", "queue": "a,b"}, "environments.staging.docker_host.queue",
     "'a,b' is not valid; must be a Celery queue name"),
    ({"connection": "docker_stage", "queue": "stage host"}, "environments.staging.docker_host.queue", "no comma or space"),
    ({"connection": "docker_stage", "queue": "q" * 201}, "environments.staging.docker_host.queue", "at most 200"),
    ({"connection": "docker_stage", "queue": "stage\n"}, "environments.staging.docker_host.queue", "must be a Celery queue name"),
    ({"connection": "docker_stage", "queue": 3}, "environments.staging.docker_host.queue", "must be a string, got 3"),
    ({"connection": "docker_stage", "url": "tcp://x"}, "environments.staging.docker_host.url",
     "unknown field; valid fields are connection, queue"),
])
def test_a_bad_docker_host_is_refused_naming_the_field(value, error_path, says):
    with pytest.raises(ConfigError) as caught:
        parse_service(with_host(value))
    assert caught.value.path == error_path
    assert says in caught.value.message


def test_a_docker_host_on_a_kubernetes_environment_is_refused():
    with pytest.raises(ConfigError) as caught:
        parse_service(with_host("docker_stage", doc=K8S))
    assert caught.value.path == "environments.staging.docker_host"
    assert "is only for platform 'docker' (this environment's is 'kubernetes'" in caught.value.message
