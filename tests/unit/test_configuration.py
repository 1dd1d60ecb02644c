"""An environment's configuration: the catalog's rules, resolution, the keyed version, the release version,
the store on a Docker host and the Secrets on Kubernetes."""

from __future__ import annotations

import base64
import copy
import hashlib
import stat

import pytest

from deployflow.catalog import parse_service
from deployflow.configuration import (
    Config,
    ResolvedConfig,
    SecretRef,
    config_version_of,
    image_version_of,
    quantity,
    release_version,
    resolve,
)
from deployflow.errors import ConfigError
from deployflow.kubernetes.manifests import Manifests
from deployflow.platforms.config_files import KEEP, ConfigFiles
from tests.k8s_schemas import validate_all

DOCKER = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18003, "config": {
    "values": {"GREETING": "hello", "WORKERS": 4, "DEBUG": False},
    "flags": {"new_checkout": True},
    "secrets": {"API_KEY": {"variable": "shop_api_key"}, "DB_PASSWORD": {"connection": "shop_db"},
                "DB_URL": {"connection": "shop_db", "field": "uri"}, "REGION": {"connection": "shop_db", "field": "extra.region"}},
    "files": {"settings.json": '{"a": 1}', "tls.key": {"secret": {"variable": "shop_tls_key"}}},
}}}}


def test_the_catalog_takes_values_flags_secrets_by_reference_and_files():
    config = parse_service(DOCKER).environments["prod"].config
    assert config.values == {"GREETING": "hello", "WORKERS": "4", "DEBUG": "false"}
    assert config.flags == {"new_checkout": True}
    assert config.secrets == {"API_KEY": SecretRef("variable", "shop_api_key"), "DB_PASSWORD": SecretRef("connection", "shop_db", "password"),
                              "DB_URL": SecretRef("connection", "shop_db", "uri"),
                              "REGION": SecretRef("connection", "shop_db", "extra.region")}
    assert config.files == {"settings.json": '{"a": 1}', "tls.key": SecretRef("variable", "shop_tls_key")}
    assert parse_service({**DOCKER, "environments": {"dev": {"port": 18001}}}).environments["dev"].config == Config()


def _with(block: str, value: object) -> dict:
    raw = copy.deepcopy(DOCKER)
    raw["environments"]["prod"]["config"] = {block: value}
    return raw


@pytest.mark.parametrize("block,value,path,says", [
    ("values", {"greeting": "x"}, "values.greeting", "not a valid name; use upper-case letters"),
    ("values", {"GREETING\n": "x"}, "values.GREETING\n", "not a valid name"),
    ("values", {"PORT": "80"}, "values.PORT", "PORT is set by deployflow in every instance; reserved names are PORT, BIND"),
    ("values", {"API_KEY": {"variable": "k"}}, "values.API_KEY", "must be a plain value; a secret goes under 'secrets'"),
    ("values", {"A": "x\0y"}, "values.A", "must not contain a NUL character"),
    ("values", {"A": ["x"]}, "values.A", "must be a string, number or true/false, got list"),
    ("flags", {"new_checkout": "yes"}, "flags.new_checkout", "'yes' is not valid; a flag is true or false"),
    ("flags", {"New": True}, "flags.New", "not a valid name; use lower-case letters"),
    ("secrets", {"API_KEY": "s3cret"}, "secrets.API_KEY", "must be a reference, one of {connection: ..., variable: ...}; a "
                                                           "secret's value never goes in the catalog"),
    ("secrets", {"API_KEY": {"variable": "k", "connection": "c"}}, "secrets.API_KEY", "must name exactly one of connection, variable"),
    ("secrets", {"API_KEY": {"kubernetes_secret": "k", "key": "v"}}, "secrets.API_KEY",
     "must name exactly one of connection, variable (for the docker platform), got kubernetes_secret, key"),
    ("secrets", {"API_KEY": {"connection": "c", "field": "passwd"}}, "secrets.API_KEY.field",
     "'passwd' is not valid; valid values are password, login, host, schema, port, uri, extra.<key>"),
    ("secrets", {"API_KEY": {"variable": "k", "value": "s3cret"}}, "secrets.API_KEY.value", "unknown field; valid fields are variable"),
    ("secrets", {"API_KEY": {"variable": "bad key"}}, "secrets.API_KEY.variable", "must be an Airflow variable key"),
    ("files", {"../etc/passwd": "x"}, "files.../etc/passwd", "a file name, no directory"),
    ("files", {"big.txt": "x" * (256 * 1024 + 1)}, "files.big.txt", "is 262145 bytes; a configuration file holds at most 262144"),
    ("files", {"a.key": {"secret": "s3cret"}}, "files.a.key.secret", "must be a reference"),
])
def test_each_configuration_rule_names_the_field(block, value, path, says):
    with pytest.raises(ConfigError) as caught:
        parse_service(_with(block, value))
    assert caught.value.path == f"environments.prod.config.{path}"
    assert says in caught.value.message


def test_one_variable_set_twice_is_refused():
    raw = copy.deepcopy(DOCKER)
    raw["environments"]["prod"]["config"] = {"values": {"FLAG_NEW_CHECKOUT": "1"}, "flags": {"new_checkout": True}}
    with pytest.raises(ConfigError, match=r"config.flags.new_checkout: FLAG_NEW_CHECKOUT is already set by .*values.FLAG_NEW_CHECKOUT"):
        parse_service(raw)


def test_a_kubernetes_environment_may_name_an_existing_secret():
    raw = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"platform": "kubernetes", "config": {
        "secrets": {"TOKEN": {"kubernetes_secret": "shop-token", "key": "token"}}}}}}
    assert parse_service(raw).environments["prod"].config.secrets == {"TOKEN": SecretRef("kubernetes_secret", "shop-token", "token")}


SECRETS = {("variable", "shop_api_key", ""): "k-123", ("connection", "shop_db", "password"): "pw",
           ("connection", "shop_db", "uri"): "postgres://u:pw@db/shop", ("connection", "shop_db", "extra.region"): "eu",
           ("variable", "shop_tls_key", ""): "-----BEGIN KEY-----"}


def resolved() -> ResolvedConfig:
    config = parse_service(DOCKER).environments["prod"].config
    return resolve(config, lambda ref: SECRETS[(ref.kind, ref.name, ref.key)])


def test_resolve_reads_each_secret_and_turns_flags_into_variables():
    config = resolved()
    assert config.env == {"GREETING": "hello", "WORKERS": "4", "DEBUG": "false", "FLAG_NEW_CHECKOUT": "true", "API_KEY": "k-123",
                          "DB_PASSWORD": "pw", "DB_URL": "postgres://u:pw@db/shop", "REGION": "eu"}
    assert config.files == {"settings.json": '{"a": 1}', "tls.key": "-----BEGIN KEY-----"}
    assert config.secret == {"API_KEY", "DB_PASSWORD", "DB_URL", "REGION", "tls.key"}
    assert sorted(config.secret_values()) == sorted(["k-123", "pw", "postgres://u:pw@db/shop", "eu", "-----BEGIN KEY-----"])
    assert ResolvedConfig.from_json(config.to_json()) == config
    shown = repr(config)
    assert "k-123" not in shown and "pw" not in shown.replace("DB_PASSWORD", "") and "API_KEY" in shown


def test_the_version_is_keyed_changes_with_any_value_and_is_not_a_plain_hash():
    config, key = resolved(), b"k" * 32
    version = config.version(key)
    assert len(version) == 12 and version == resolved().version(key)
    assert version != config.version(b"other key")  # without the key nobody can test a guess of a value
    assert version != hashlib.sha256(config.to_json().encode()).hexdigest()[:12]
    for changed in ({**config.env, "API_KEY": "k-124"}, {**config.env, "FLAG_NEW_CHECKOUT": "false"}):
        assert ResolvedConfig(env=changed, files=config.files, secret=config.secret).version(key) != version
    assert ResolvedConfig(env=config.env, files={**config.files, "settings.json": "{}"}, secret=config.secret).version(key) != version


@pytest.mark.parametrize("image,config,release", [
    ("0123456789ab", "", "0123456789ab"),
    ("0123456789ab", "c0ffee00c0de", "0123456789ab-cc0ffee00c0de"),
    ("v1", "c0ffee00c0de", "v1-cc0ffee00c0de"),
])
def test_the_release_version_is_the_image_version_and_the_configuration_version(image, config, release):
    assert release_version(image, config) == release
    assert (image_version_of(release), config_version_of(release)) == (image, config)


@pytest.mark.parametrize("text,value", [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("1Gi", 2**30), ("256Mi", 256 * 2**20), ("1G", 1e9)])
def test_quantities(text, value):
    assert quantity(text) == value


def test_quantity_refuses_what_is_not_one():
    with pytest.raises(ValueError, match="'half' is not a quantity"):
        quantity("half")


def test_the_store_writes_0600_files_in_a_0700_directory_and_keeps_what_runs(tmp_path):
    store = ConfigFiles(tmp_path / "config")
    store.save("000000000000", resolved(), in_use=frozenset())
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path("000000000000").stat().st_mode) == 0o600
    assert store.load("000000000000") == resolved() and store.load("") == ResolvedConfig()
    for n in range(1, KEEP + 3):  # the one in use is the oldest: it stays
        store.save(f"{n:012x}", ResolvedConfig(env={"N": str(n)}), in_use=frozenset({"000000000000"}))
    kept = sorted(p.stem for p in store.dir.glob("*.json"))
    assert "000000000000" in kept and f"{KEEP + 2:012x}" in kept and len(kept) == KEEP + 1
    assert f"{1:012x}" not in kept


def test_the_kubernetes_secrets_of_a_configuration_are_valid_and_hold_exactly_its_values():
    raw = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"platform": "kubernetes", "config": {
        "values": {"GREETING": "hello"}, "secrets": {"TOKEN": {"kubernetes_secret": "shop-token", "key": "token"}}}}}}
    service = parse_service(raw)
    manifests = Manifests(service, service.environments["prod"])
    config = ResolvedConfig(env={"GREETING": "hello", "API_KEY": "k-123"}, files={"a.json": "{}"}, secret=frozenset({"API_KEY"}))
    secrets = manifests.config_secrets("c0ffee00c0de", config)
    assert validate_all(secrets) == 2
    assert [(s["metadata"]["name"], s["immutable"]) for s in secrets] == [("shop-config-c0ffee00c0de", True),
                                                                         ("shop-files-c0ffee00c0de", True)]
    assert {k: base64.b64decode(v).decode() for k, v in secrets[0]["data"].items()} == {"GREETING": "hello", "API_KEY": "k-123"}
    assert secrets[1]["data"] == {"a.json": base64.b64encode(b"{}").decode()}
    pod = manifests.deployment("green", "stable", "0123456789ab-cc0ffee00c0de", "reg/shop:0123456789ab", 2)["spec"]["template"]["spec"]
    validate_all([manifests.deployment("green", "stable", "0123456789ab-cc0ffee00c0de", "reg/shop:0123456789ab", 2)])
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "shop-config-c0ffee00c0de"}}]
    assert {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "shop-token", "key": "token"}}} in container["env"]
    assert {"name": "CONFIG_VERSION", "value": "c0ffee00c0de"} in container["env"]
    assert container["volumeMounts"] == [{"name": "config", "mountPath": "/run/deployflow/config", "readOnly": True}]
    assert pod["volumes"] == [{"name": "config", "secret": {"secretName": "shop-files-c0ffee00c0de", "defaultMode": 0o444}}]
    assert "k-123" not in repr(pod)  # the pod names the Secret; the value is only in the Secret
    plain = manifests.deployment("green", "stable", "0123456789ab", "reg/shop:0123456789ab", 2)["spec"]["template"]["spec"]
    assert "envFrom" not in plain["containers"][0] and "volumes" not in plain
