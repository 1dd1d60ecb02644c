"""The registry is locked: its configuration (auth, no deletes), its credentials (generated once, 0600), the
registry made again when its configuration changed, and the credentials sent on the build's push and the deploy's
pull only, to that registry only, never logged. The real registry's refusals: tests/e2e/test_locked_registry.py.
"""

from __future__ import annotations

import json
import logging
import stat
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

from deployflow.airflow import deployer_operator, operators, registry as airflow_registry
from deployflow.airflow.deployer_operator import DeployerOperator
from deployflow.catalog import parse_service
from deployflow.errors import StageFailed
from deployflow.pipeline.build import BuiltImage
from deployflow.pipeline.checkout import Checkout
from deployflow.pipeline.registry import RegistryCredentials, auth_config, credentials_file, pull_image, registry_of
from deployflow.stack import celery, containers, secrets
from tests.unit.fakes import FakeDockerClient, FakeEngine

PASSWORD = "pa55-word-never-logged"
CREDENTIALS = RegistryCredentials("127.0.0.1:5000", "deployflow", PASSWORD)
AUTH = {"username": "deployflow", "password": PASSWORD}
IMAGE = "127.0.0.1:5000/shop:0123456789ab"
SERVICE = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18101}}})


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- the registry's configuration and credentials ------------------------------------------------------------

def test_the_registry_s_configuration_refuses_deletes_and_anonymous_users():
    config = yaml.safe_load((containers.REGISTRY_CONTEXT / "config.yml").read_text())
    assert config["storage"]["delete"] == {"enabled": False}
    assert config["auth"]["htpasswd"]["path"] == containers.HTPASSWD_MOUNT  # where registry_up mounts the file


def test_the_credentials_are_generated_once_into_a_private_file(tmp_path):
    path = tmp_path / "registry" / "credentials.json"
    made = secrets.registry_credentials(path, "127.0.0.1:5000")
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert (made.registry, made.username, len(made.password)) == ("127.0.0.1:5000", "deployflow", 32)
    assert secrets.registry_credentials(path, "127.0.0.1:5000") == made
    moved = secrets.registry_credentials(path, "127.0.0.1:5001")  # the registry's address changed: not its password
    assert (moved.registry, moved.password) == ("127.0.0.1:5001", made.password)
    assert RegistryCredentials.read(path) == moved and mode(path) == 0o600
    assert PASSWORD not in repr(CREDENTIALS)


def test_the_credentials_file_is_the_host_s_unless_named(monkeypatch, tmp_path):
    monkeypatch.delenv("DEPLOYFLOW_REGISTRY_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials_file() == tmp_path / ".deployflow/registry/credentials.json"
    monkeypatch.setenv("DEPLOYFLOW_REGISTRY_CREDENTIALS", str(tmp_path / "elsewhere.json"))
    assert credentials_file() == tmp_path / "elsewhere.json"


def test_the_htpasswd_file_holds_a_bcrypt_hash_and_is_kept_while_it_matches(tmp_path):
    path = secrets.htpasswd(tmp_path / "htpasswd", CREDENTIALS)
    user, _, hashed = path.read_text().strip().partition(":")
    assert (user, hashed[:4], mode(path)) == ("deployflow", "$2b$", 0o600)
    assert secrets._crypt().crypt(PASSWORD, hashed) == hashed and PASSWORD not in path.read_text()
    written = path.read_text()
    assert secrets.htpasswd(path, CREDENTIALS).read_text() == written  # same salt: the registry is not made again
    secrets.htpasswd(path, RegistryCredentials("127.0.0.1:5000", "deployflow", "another"))
    assert path.read_text() != written


# ---- registry_up: made again when made before its lock, its data kept ----------------------------------------

@pytest.fixture
def registry(tmp_path, monkeypatch) -> containers.Registry:
    monkeypatch.setattr(containers, "_wait_http", lambda *a, **k: None)
    answered = []
    monkeypatch.setattr(containers.requests, "get", lambda url, auth, timeout: answered.append(auth) or SimpleNamespace(status_code=200))
    return containers.Registry(container="df-unit-registry", addr="127.0.0.1:5999", volume="df-unit-data",
                               credentials=tmp_path / "registry" / "credentials.json")


def test_a_registry_made_before_its_lock_is_made_again_locked_with_its_data(registry, capsys):
    client = FakeDockerClient()
    client.add(registry.container, labels={"io.deployflow.stack": "registry"})  # no configuration label: unlocked
    credentials = containers.registry_up(client, registry)
    assert client.calls_of("remove") == [("remove", registry.container, True)]  # not v=True: the volume stays
    (_, image, _, run), = client.calls_of("run")
    assert image == containers.registry_image()
    assert run["volumes"] == {"df-unit-data": {"bind": "/var/lib/docker-registry", "mode": "rw"},
                              str(registry.credentials.with_name("htpasswd")): {"bind": containers.HTPASSWD_MOUNT, "mode": "ro"}}
    assert run["environment"] == {"REGISTRY_HTTP_ADDR": "127.0.0.1:5999"}  # no credential in its environment
    assert run["labels"][containers.REGISTRY_CONFIG_LABEL]
    assert credentials.password not in capsys.readouterr().out


def test_a_locked_registry_is_kept_and_one_whose_users_changed_is_made_again(registry):
    client = FakeDockerClient()
    containers.registry_up(client, registry)
    client.by_name[registry.container].attrs["HostConfig"] = {"RestartPolicy": {"Name": "unless-stopped"}}
    client.calls.clear()
    containers.registry_up(client, registry)
    assert client.calls_of("remove") == [] and client.calls_of("run") == []
    registry.credentials.unlink()  # a new password: a new htpasswd file
    containers.registry_up(client, registry)
    assert client.calls_of("remove") == [("remove", registry.container, True)] and len(client.calls_of("run")) == 1


# ---- whom the credentials go to ------------------------------------------------------------------------------

@pytest.mark.parametrize(("image", "registry"), [
    ("127.0.0.1:5000/shop:v1", "127.0.0.1:5000"), ("127.0.0.1:5000/shop@sha256:" + "a" * 64, "127.0.0.1:5000"),
    ("localhost/shop", "localhost"), ("registry.example.com/team/shop:v1", "registry.example.com"),
    ("shop:v1", None), ("library/shop", None),
])
def test_the_registry_of_an_image_is_read_as_the_engine_reads_it(image, registry):
    assert registry_of(image) == registry


def test_the_credentials_go_to_their_own_registry_only():
    assert auth_config(CREDENTIALS, IMAGE) == AUTH
    assert auth_config(CREDENTIALS, "127.0.0.1:5001/shop:v1") is None
    assert auth_config(CREDENTIALS, "evil.example.com/127.0.0.1:5000/shop:v1") is None
    assert auth_config(None, IMAGE) is None


def test_a_pull_sends_the_credentials_and_skips_an_image_the_engine_has():
    engine = FakeEngine([], missing={IMAGE})
    assert pull_image(engine, IMAGE, AUTH) == "pulled"
    assert engine.calls == [("inspect", IMAGE), ("pull", (IMAGE, None, {"stream": True, "decode": True, "auth_config": AUTH}))]
    assert pull_image(FakeEngine([]), IMAGE, AUTH) == "on this host"
    refused = FakeEngine([], pull_chunks=[{"error": "unauthorized: authentication required"}], missing={IMAGE})
    with pytest.raises(StageFailed, match=f"^pull of {IMAGE} failed: unauthorized: authentication required$"):
        pull_image(refused, IMAGE, None)


@pytest.fixture
def connection(monkeypatch):
    """Airflow's connections, as ``Connection.get`` finds them (none by default); what was masked."""
    found: dict[str, SimpleNamespace] = {}
    masked: list[str] = []

    def get(conn_id):
        if conn_id not in found:
            raise AirflowNotFoundException(conn_id)
        return found[conn_id]

    monkeypatch.setattr(airflow_registry.Connection, "get", get)
    monkeypatch.setattr(airflow_registry, "mask_secret", masked.append)
    return SimpleNamespace(found=found, masked=masked)


def test_a_worker_reads_the_connection_first_then_the_host_s_file(connection, monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYFLOW_REGISTRY_CREDENTIALS", str(tmp_path / "credentials.json"))
    assert airflow_registry.registry_credentials() is None  # no connection, no file: a registry without auth
    (tmp_path / "credentials.json").write_text(CREDENTIALS.to_json())
    assert airflow_registry.registry_credentials() == CREDENTIALS
    connection.found["deployflow_registry"] = SimpleNamespace(conn_type="docker", host="10.0.0.9", port=5000,
                                                              login="ci", password="from-the-connection")
    assert airflow_registry.registry_credentials() == RegistryCredentials("10.0.0.9:5000", "ci", "from-the-connection")
    assert connection.masked == [PASSWORD, "from-the-connection"]


def test_a_connection_of_another_type_is_refused_naming_it(connection):
    connection.found["deployflow_registry"] = SimpleNamespace(conn_type="http", host="h", port=None, login="u", password="p")
    with pytest.raises(AirflowFailException, match="^connection 'deployflow_registry' .*conn_type: 'http' is not valid"):
        airflow_registry.registry_credentials()


def test_the_build_pushes_with_the_credentials_and_logs_no_password(connection, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("DEPLOYFLOW_REGISTRY_CREDENTIALS", str(tmp_path / "credentials.json"))
    (tmp_path / "credentials.json").write_text(CREDENTIALS.to_json())
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    engine = FakeEngine([], [{"aux": {"Digest": "sha256:" + "d" * 64}}])
    monkeypatch.setattr(operators.Variable, "get", lambda key, default=None: {"deployflow_registry": "127.0.0.1:5000"}.get(key, default))
    monkeypatch.setattr(operators, "DockerHook", lambda **_: SimpleNamespace(api_client=engine))
    monkeypatch.setattr(operators.build, "build_image", lambda client, spec: BuiltImage(spec.ref, "sha256:" + "e" * 64, 1.0, 1.0))
    source = Checkout(sha="0123456789ab" + "0" * 28, ref="main", path=str(tmp_path), seconds=0.1)
    monkeypatch.setattr(operators, "check_out", lambda service, ref, run_id, log: (source, source.to_dict()))
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"git_ref": "main"}, xcom_push=lambda key, value: None)
    task = operators.ImageBuildOperator(task_id="build", service=parse_service(
        {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18101}}}))
    with caplog.at_level(logging.DEBUG):
        built = task.execute({"ti": ti, "run_id": "manual__1", "dag_run": SimpleNamespace(run_type="manual")})
    assert engine.calls == [("push", ("127.0.0.1:5000/shop", "0123456789ab", {"stream": True, "decode": True, "auth_config": AUTH}))]
    assert PASSWORD not in json.dumps(built) and PASSWORD not in caplog.text  # not in XCom, not in the log
    assert connection.masked == [PASSWORD]


def test_prepare_pulls_the_release_image_with_the_credentials_before_the_deployer_starts(connection, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("DEPLOYFLOW_REGISTRY_CREDENTIALS", str(tmp_path / "credentials.json"))
    (tmp_path / "credentials.json").write_text(CREDENTIALS.to_json())
    engine = FakeEngine([], missing={IMAGE})
    task = DeployerOperator(task_id="prepare", step="prepare", service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                            environment_name="prod", version="v2", image_ref=IMAGE, strategy="canary")
    task.__dict__["hook"] = SimpleNamespace(api_client=engine, client_created=True)  # DockerOperator.cli is hook.api_client
    with caplog.at_level(logging.DEBUG):
        task.pull_release_image()
    assert engine.calls[-1] == ("pull", (IMAGE, None, {"stream": True, "decode": True, "auth_config": AUTH}))
    assert PASSWORD not in caplog.text and PASSWORD not in json.dumps(task.environment)  # the deployer's: none
    engine = FakeEngine([], pull_chunks=[{"error": "unauthorized"}], missing={IMAGE})
    task.__dict__["hook"] = SimpleNamespace(api_client=engine, client_created=True)
    with pytest.raises(AirflowException, match=r"pull of .* failed: unauthorized \(may be retried\)$"):
        task.pull_release_image()


def test_only_prepare_pulls(monkeypatch, tmp_path):
    pulled = []
    monkeypatch.setattr(deployer_operator.DeployerOperator, "pull_release_image", lambda self: pulled.append(self.step))
    monkeypatch.setattr(deployer_operator.DeployerOperator, "run_container", lambda self, context: [b'{"step": "any", "ok": true}\n'])
    monkeypatch.setattr(deployer_operator.DeployerOperator, "container_exit_code", lambda self: 0)
    monkeypatch.setattr(deployer_operator.DeployerOperator, "remove_container", lambda self: None)
    monkeypatch.setattr(deployer_operator.DeployerOperator, "take_over", lambda self, context: 1)
    monkeypatch.setattr(deployer_operator, "release_of_step", lambda step, context, env, version, publish: version)
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    ti = SimpleNamespace(xcom_push=lambda **_: None, xcom_pull=lambda **_: True, try_number=1)
    for step in ("prepare", "shift", "promote"):
        DeployerOperator(task_id=step, step=step, service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                         environment_name="prod", version="v2", image_ref=IMAGE, strategy="canary").execute(
                             {"ti": ti, "run_id": "run-1"})
    assert pulled == ["prepare"]


# ---- the Celery setup: the connection, through a file, never argv ----------------------------------------------

def test_the_celery_setup_defines_the_connection_through_a_private_file_removed_after(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    ran = []

    def run(argv, **kwargs):
        path = tmp_path / "secrets" / "registry-connection.json"
        ran.append((argv, json.loads(path.read_text()), mode(path)))

    monkeypatch.setattr(celery.subprocess, "run", run)
    celery.define_registry_connection(tmp_path, CREDENTIALS, {})
    celery.define_registry_connection(tmp_path, CREDENTIALS, {})  # unchanged: not imported again
    (argv, imported, file_mode), = ran
    assert argv[:4] == ["airflow", "connections", "import", "--overwrite"] and PASSWORD not in " ".join(argv)
    assert imported == {"deployflow_registry": {"conn_type": "docker", "host": "127.0.0.1", "port": 5000,
                                                "login": "deployflow", "password": PASSWORD}}
    assert file_mode == 0o600 and not (tmp_path / "secrets" / "registry-connection.json").exists()
