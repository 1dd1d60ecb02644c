"""engine() and docker_client(): an environment's Docker engine from its docker_host's Airflow connection."""

from __future__ import annotations

import copy
import json
import os

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow import docker_hosts
from deployflow.airflow.deployer_operator import DeployerOperator
from deployflow.airflow.docker_hosts import EngineAddress, engine
from deployflow.catalog import parse_service
from tests.unit.test_airflow_adapters import FakeDockerAPI, step_context
from tests.unit.test_catalog import GOOD

DOC = copy.deepcopy(GOOD)
DOC["environments"]["staging"]["docker_host"] = {"connection": "df_stage", "queue": "stage"}
SERVICE = parse_service(DOC)
TLS = {"tls_ca_cert": "/etc/df/ca.pem", "tls_client_cert": "/etc/df/cert.pem", "tls_client_key": "/etc/df/key.pem"}


@pytest.fixture
def connection(monkeypatch):
    real = os.path.isfile
    monkeypatch.setattr(os.path, "isfile", lambda path: path in TLS.values() or real(path))  # the worker's TLS files

    def define(value: dict | str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_DF_STAGE", value if isinstance(value, str) else json.dumps(value))
    monkeypatch.delenv("AIRFLOW_CONN_DF_STAGE", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return define


@pytest.mark.parametrize(("conn", "expected"), [
    ({"conn_type": "docker", "host": "unix:///run/deployflow-two.sock"},
     EngineAddress(url="unix:///run/deployflow-two.sock", socket="/run/deployflow-two.sock", connection="df_stage")),
    ({"conn_type": "docker", "host": "tcp://stage.example.com:2376", "extra": {**TLS, "tls_hostname": "stage.example.com"}},
     EngineAddress(url="tcp://stage.example.com:2376", connection="df_stage", tls_hostname="stage.example.com", **TLS)),
    ({"conn_type": "docker", "host": "tcp://stage.example.com", "port": 2376, "extra": {**TLS, "tls_verify": "false"}},
     EngineAddress(url="tcp://stage.example.com:2376", connection="df_stage", tls_verify=False, **TLS)),
    ({"conn_type": "docker", "host": "ssh://deploy@stage.example.com", "extra": {"socket": "/run/docker.sock"}},
     EngineAddress(url="ssh://deploy@stage.example.com", socket="/run/docker.sock", connection="df_stage")),
    ({"conn_type": "docker", "host": "ssh://deploy@stage.example.com"},
     EngineAddress(url="ssh://deploy@stage.example.com", socket="/var/run/docker.sock", connection="df_stage")),
])
def test_the_engine_of_an_environment_with_a_docker_host_is_its_connection(connection, conn, expected):
    connection(conn)
    assert engine(SERVICE, "staging") == expected
    assert expected.tls == ("tls_ca_cert" in conn.get("extra", {}))


def test_an_environment_without_a_docker_host_uses_the_local_engine(connection, monkeypatch):
    assert engine(SERVICE, "dev") == EngineAddress(url="unix://var/run/docker.sock", socket="/var/run/docker.sock")
    assert engine(SERVICE, "nowhere").connection is None  # the step refuses the environment itself
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/other.sock")
    assert engine(SERVICE, "prod").url == "unix:///tmp/other.sock"  # as DockerOperator always did


def test_a_missing_connection_fails_naming_it_and_the_environment(connection):
    with pytest.raises(AirflowFailException) as caught:
        engine(SERVICE, "staging")
    assert str(caught.value).startswith("connection 'df_stage' (the docker_host of shop's staging) is not defined")
    assert "AIRFLOW_CONN_DF_STAGE" in str(caught.value)


@pytest.mark.parametrize(("conn", "says"), [
    ({"conn_type": "http", "host": "unix:///run/x.sock"}, ".conn_type: 'http' is not valid; must be 'docker'"),
    ({"conn_type": "docker"}, ".host: is required: the engine's URL"),
    ({"conn_type": "docker", "host": "http://stage:2375"}, ".host: 'http://stage:2375' is not valid; valid schemes are unix"),
    ({"conn_type": "docker", "host": "unix://"}, ".host: 'unix://' is not valid"),
    ({"conn_type": "docker", "host": "tcp://:2376"}, ".host: 'tcp://:2376' is not valid"),
    ({"conn_type": "docker", "host": "tcp://stage:2376", "extra": {"tls_ca_cert": "/ca.pem"}},
     ".extra.tls_client_cert: is required with tls_ca_cert"),
    ({"conn_type": "docker", "host": "tcp://stage:2376", "extra": {**TLS, "tls_client_key": "-----BEGIN KEY-----"}},
     ".extra.tls_client_key: must be an absolute file path on the worker (the file, not its contents)"),
    ({"conn_type": "docker", "host": "tcp://stage:2376", "extra": {**TLS, "tls_verify": "maybe"}},
     ".extra.tls_verify: 'maybe' is not valid; valid values are true, false"),
    ({"conn_type": "docker", "host": "unix:///run/x.sock", "extra": TLS}, ".extra.tls_ca_cert: is only for tcp:// hosts"),
    ({"conn_type": "docker", "host": "ssh://d@stage", "extra": {"socket": "run/docker.sock"}}, ".extra.socket: 'run/docker.sock' is not valid"),
])
def test_a_malformed_connection_fails_naming_it_and_the_environment(connection, conn, says):
    connection(conn)
    with pytest.raises(AirflowFailException) as caught:
        engine(SERVICE, "staging")
    assert str(caught.value).startswith("connection 'df_stage' (the docker_host of shop's staging)")
    assert says in str(caught.value)


def test_a_tls_file_missing_on_the_worker_fails_naming_it(connection):
    connection({"conn_type": "docker", "host": "tcp://stage:2376", "extra": {**TLS, "tls_ca_cert": "/nowhere/ca.pem"}})
    with pytest.raises(AirflowFailException, match=r"connection 'df_stage' \(the docker_host of shop's staging\)"
                       r"\.extra\.tls_ca_cert: /nowhere/ca.pem is not a file on this worker"):
        engine(SERVICE, "staging")


def test_a_key_in_the_extras_is_never_repeated_in_the_error(connection):
    connection({"conn_type": "docker", "host": "tcp://stage:2376", "extra": {**TLS, "tls_client_key": "-----BEGIN SECRET-----"}})
    with pytest.raises(AirflowFailException) as caught:
        engine(SERVICE, "staging")
    assert "BEGIN SECRET" not in str(caught.value)


def test_describe_shows_no_password():
    address = EngineAddress(url="ssh://deploy:hunter2@stage", connection="df_stage")
    assert address.describe() == "connection 'df_stage': ssh://deploy:***@stage"
    assert EngineAddress(url="tcp://s:2376", tls_ca_cert="/a", tls_client_cert="/b", tls_client_key="/c",
                         connection="c").describe() == "connection 'c': tcp://s:2376 (TLS, verify=True)"


def test_docker_client_talks_to_the_connection_s_engine(connection, monkeypatch):
    made = {}

    class FakeClient:
        def __init__(self, **kwargs):
            made.update(kwargs)

    import docker

    monkeypatch.setattr(docker, "DockerClient", FakeClient)
    connection({"conn_type": "docker", "host": "tcp://stage.example.com:2376", "extra": TLS})
    docker_hosts.docker_client(SERVICE, "staging")
    assert made["base_url"] == "tcp://stage.example.com:2376" and made["use_ssh_client"] is False
    assert made["tls"].cert == ("/etc/df/cert.pem", "/etc/df/key.pem") and made["tls"].ca_cert == "/etc/df/ca.pem"
    connection({"conn_type": "docker", "host": "ssh://deploy@stage.example.com"})
    docker_hosts.docker_client(SERVICE, "staging")
    assert made == {"base_url": "ssh://deploy@stage.example.com", "tls": False, "use_ssh_client": True}
    monkeypatch.setattr(docker, "from_env", lambda: "local")
    assert docker_hosts.docker_client(SERVICE, "dev") == "local"


class RecordingAPI(FakeDockerAPI):
    """The fake engine, also keeping what each container was created with."""

    created: dict

    def create_container(self, command, **kwargs):
        self.created = kwargs
        return super().create_container(command, **kwargs)


def test_a_deploy_step_runs_its_deployer_on_the_environment_s_engine(connection, tmp_path, monkeypatch):
    connection({"conn_type": "docker", "host": "unix:///run/deployflow-two.sock"})
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    task = DeployerOperator(task_id="shift", step="shift", service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                            environment_name="staging", version="v2", image_ref="127.0.0.1:5000/shop:v2", strategy="canary")
    assert task.docker_url == "unix://var/run/docker.sock"  # at parse: no connection is read
    api = RecordingAPI(0, [b'{"step": "shift", "ok": true}\n'])
    task.__dict__["hook"] = SimpleNamespace(api_client=api, client_created=True)
    assert task.execute(step_context("staging")) == {"step": "shift", "ok": True}
    assert task.docker_url == "unix:///run/deployflow-two.sock"
    mounted = {m["Target"]: m["Source"] for m in api.created["host_config"]["mounts"]}
    assert mounted["/var/run/docker.sock"] == "/run/deployflow-two.sock"  # the deployer drives the engine it runs on
    assert len(api.created["host_config"]["mounts"]) == 3


def test_the_deployer_s_hook_is_made_from_the_connection_s_url_and_tls(connection, tmp_path):
    files = {name: tmp_path / f"{name}.pem" for name in TLS}
    for path in files.values():
        path.write_text("PEM")
    connection({"conn_type": "docker", "host": "tcp://stage.example.com:2376", "extra": {k: str(v) for k, v in files.items()}})
    task = DeployerOperator(task_id="prepare", step="prepare", service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                            environment_name="staging")
    task.use_engine(engine(SERVICE, "staging"))
    hook = task.hook
    assert hook._DockerHook__base_url == ["https://stage.example.com:2376"]  # the provider's own tcp -> https with TLS
    assert hook._DockerHook__tls.cert == (str(files["tls_client_cert"]), str(files["tls_client_key"]))
    assert hook.docker_conn_id is None  # the connection names the engine; it is no registry login


def test_a_local_environment_s_deployer_keeps_the_local_engine(connection, tmp_path):
    task = DeployerOperator(task_id="prepare", step="prepare", service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                            environment_name="dev")
    task.use_engine(engine(SERVICE, "dev"))
    assert (task.docker_url, task.tls_ca_cert) == ("unix://var/run/docker.sock", None)
    assert {m["Target"]: m["Source"] for m in task.mounts}["/var/run/docker.sock"] == "/var/run/docker.sock"


def test_the_load_container_runs_on_the_environment_s_engine_and_the_record_stops_it_there(connection, monkeypatch):
    import docker

    from deployflow.airflow.load import AnalysisLoadOperator, finish_load
    from tests.unit.fakes import FakeDockerClient
    from tests.unit.test_load_container import ReleaseTI

    engines: dict[str, FakeDockerClient] = {}

    def client_of(base_url, **kwargs):  # one fake engine per URL, as the real ones are
        return engines.setdefault(base_url, FakeDockerClient())

    monkeypatch.setattr(docker, "DockerClient", client_of)
    monkeypatch.setattr(docker, "from_env", lambda: client_of("local"))
    connection({"conn_type": "docker", "host": "unix:///run/deployflow-two.sock"})
    doc = copy.deepcopy(DOC)
    doc["environments"]["staging"]["analysis"] = {"load_rate": 5}
    service = parse_service(doc)
    task = AnalysisLoadOperator(task_id="load", service=service, environment_name="staging", image="deployflow/deployer:abc")
    started = task.execute({"ti": ReleaseTI({"shift": {"analysis": True, "previous": "a"}})})
    assert list(engines) == ["unix:///run/deployflow-two.sock"]
    assert list(engines["unix:///run/deployflow-two.sock"].by_name) == [started["container"]]
    finish_load(service, "staging", SimpleNamespace(info=print, warning=print))
    assert list(engines) == ["unix:///run/deployflow-two.sock"]  # the record asked the same engine, not the local one
    assert engines["unix:///run/deployflow-two.sock"].calls_of("remove")
