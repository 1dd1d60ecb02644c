"""An environment's front port must not be one the local stack itself listens on, and the list of those
ports (catalog/ports.py) agrees with where each is set."""

from __future__ import annotations

import configparser
import inspect
from pathlib import Path

import pytest

from deployflow.catalog import parse_service
from deployflow.catalog.ports import INSTANCE_PORTS, STACK_PORTS
from deployflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
STACK = "5000, 8080, 8793, 8794, 9090, 9468 and 20000-20999"


@pytest.mark.parametrize(("port", "user"), [
    (5000, "the registry's (deployflow.settings DEFAULT_REGISTRY, 127.0.0.1:5000)"),
    (8080, "the Airflow API server's (airflow.cfg [api] port)"),
    (8793, "Airflow's worker log server's (airflow.cfg [logging] worker_log_server_port)"),
    (8794, "Airflow's triggerer log server's (airflow.cfg [logging] trigger_log_server_port)"),
    (9090, "Prometheus' (deployflow.stack.containers LOCAL_PROMETHEUS_PORT)"),
    (9468, "the release metrics exporter's (deployflow.stack.containers LOCAL_EXPORTER_PORT)"),
    (20000, "in the range the Docker platform's instances take theirs from (20000-20999, platforms/docker.py)"),
    (20999, "in the range the Docker platform's instances take theirs from (20000-20999, platforms/docker.py)"),
])
def test_a_front_port_of_the_stacks_own_is_refused_naming_what_uses_it(port, user):
    raw = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18101}, "prod": {"port": port}}}
    with pytest.raises(ConfigError) as caught:
        parse_service(raw)
    assert str(caught.value) == f"environments.prod.port: {port} is {user}; a front port must be none of the local stack's ({STACK})"


@pytest.mark.parametrize("port", [1024, 4999, 5001, 18001, 19999, 21000, 65535])
def test_other_ports_are_free_to_use(port):
    raw = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": port}}}
    assert parse_service(raw).environments["prod"].port == port


def test_the_list_agrees_with_airflow_cfg_the_stack_and_the_docker_platform():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "airflow.cfg")
    for section, key in (("api", "port"), ("logging", "worker_log_server_port"), ("logging", "trigger_log_server_port")):
        assert cfg.getint(section, key) in STACK_PORTS, (section, key)
    from deployflow.settings import DEFAULT_REGISTRY
    from deployflow.stack.containers import LOCAL_EXPORTER_PORT, LOCAL_PROMETHEUS_PORT

    assert int(DEFAULT_REGISTRY.rsplit(":", 1)[1]) in STACK_PORTS
    assert LOCAL_PROMETHEUS_PORT in STACK_PORTS
    assert LOCAL_EXPORTER_PORT in STACK_PORTS
    from deployflow.platforms.docker_engine import DockerPlatform

    assert inspect.signature(DockerPlatform).parameters["ports"].default == INSTANCE_PORTS
