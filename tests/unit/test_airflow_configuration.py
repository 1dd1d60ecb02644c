"""The release's configuration where Airflow runs: secrets read through Airflow's connections and variables
(from the environment here, as any secrets backend would answer), masked, published, and the release
version each deploy step uses."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow import configuration
from deployflow.airflow.configuration import RELEASE_XCOM, config_key, read_secret, release_of_step
from deployflow.catalog import parse_service
from deployflow.configuration import ResolvedConfig, SecretRef

ENV = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18003, "config": {
    "values": {"GREETING": "hello"}, "secrets": {"API_KEY": {"variable": "shop_api_key"}, "DB_PASSWORD": {"connection": "shop_db"}},
}}, "dev": {"port": 18001}}}).environments


class TI:
    def __init__(self, pulled: dict | None = None) -> None:
        self.pulled, self.pushed = dict(pulled or {}), []

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.pulled.get((task_ids, key))

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))


@pytest.fixture(autouse=True)
def airflow_secrets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The secrets as Airflow's environment-variable backend holds them; what the masker was given."""
    monkeypatch.setenv("AIRFLOW_VAR_SHOP_API_KEY", "k-123")
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYFLOW_CONFIG_KEY", "0" * 64)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", json.dumps({"conn_type": "postgres", "host": "db", "login": "shop",
                                                            "password": "pw-456", "extra": {"region": "eu"}}))
    masked: list[str] = []
    monkeypatch.setattr(configuration, "mask_secret", masked.append)
    return masked


@pytest.mark.parametrize("ref,value", [
    (SecretRef("variable", "shop_api_key"), "k-123"),
    (SecretRef("connection", "shop_db", "password"), "pw-456"),
    (SecretRef("connection", "shop_db", "login"), "shop"),
    (SecretRef("connection", "shop_db", "extra.region"), "eu"),
])
def test_a_secret_is_read_through_airflow_and_masked_before_anyone_sees_it(ref, value, airflow_secrets):
    assert read_secret(ref) == value
    assert airflow_secrets == [value]


@pytest.mark.parametrize("ref,says", [
    (SecretRef("variable", "nope"), "secret variable 'nope': no such Airflow variable"),
    (SecretRef("connection", "nope", "password"), "secret connection 'nope' (password): no such Airflow connection"),
    (SecretRef("connection", "shop_db", "schema"), "secret connection 'shop_db' (schema): the connection's schema is empty"),
    (SecretRef("connection", "shop_db", "extra.zone"), "the connection's extra has no key 'zone'"),
])
def test_a_missing_secret_fails_naming_its_reference(ref, says):
    with pytest.raises(AirflowFailException, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_secret(ref)


def test_the_key_is_made_once_when_there_is_none(monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_DEPLOYFLOW_CONFIG_KEY")
    with mock.patch.object(configuration.Variable, "set") as made:
        key = config_key()
    assert len(key) == 64 and made.call_args.args == ("deployflow_config_key", key.decode())


def test_prepare_resolves_publishes_and_releases_image_and_configuration(airflow_secrets):
    ti, published = TI(), []
    version = release_of_step("prepare", {"ti": ti}, ENV["prod"], "0123456789ab", lambda v, c: published.append((v, c)))
    [(config_version, config)] = published
    assert version == f"0123456789ab-c{config_version}"
    assert config.env == {"GREETING": "hello", "API_KEY": "k-123", "DB_PASSWORD": "pw-456"}
    assert config_version == config.version(b"0" * 64)
    assert ti.pushed == [(RELEASE_XCOM, {"version": version, "image_version": "0123456789ab", "config": config_version})]
    assert "k-123" not in json.dumps(ti.pushed) and "pw-456" not in json.dumps(ti.pushed)  # XCom holds versions only
    assert {"k-123", "pw-456"} <= set(airflow_secrets)


def test_an_environment_with_no_configuration_releases_the_image_version():
    ti, published = TI(), []
    assert release_of_step("prepare", {"ti": ti}, ENV["dev"], "0123456789ab", lambda v, c: published.append(v)) == "0123456789ab"
    assert published == [] and ti.pushed == [(RELEASE_XCOM, {"version": "0123456789ab", "image_version": "0123456789ab",
                                                             "config": ""})]


@pytest.mark.parametrize("step", ["shift", "promote", "rollback"])
def test_the_later_steps_release_what_prepare_decided_and_read_no_secret(step, airflow_secrets):
    ti = TI({("prepare", RELEASE_XCOM): {"version": "0123456789ab-cc0ffee00c0de"}})
    publish = mock.Mock()
    assert release_of_step(step, {"ti": ti}, ENV["prod"], "0123456789ab", publish) == "0123456789ab-cc0ffee00c0de"
    assert publish.called is False and airflow_secrets == []


def test_a_rollback_releases_the_configuration_version_it_puts_back_and_reads_no_secret(airflow_secrets):
    # The configuration the environment ran then, as its store keeps it: not resolved again from today's catalog.
    ti = TI({("resolve", "return_value"): {"rollback_to": "previous", "artifact": {"config": "cfg0ld000000"}}})
    publish = mock.Mock()
    assert release_of_step("prepare", {"ti": ti}, ENV["prod"], "0123456789ab", publish) == "0123456789ab-ccfg0ld000000"
    assert publish.called is False and airflow_secrets == []
    assert ti.pushed == [(RELEASE_XCOM, {"version": "0123456789ab-ccfg0ld000000", "image_version": "0123456789ab",
                                         "config": "cfg0ld000000"})]


def test_a_secret_that_cannot_be_read_publishes_nothing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_SHOP_API_KEY")
    ti, publish = TI(), mock.Mock()
    with pytest.raises(AirflowFailException, match="shop_api_key"):
        release_of_step("prepare", {"ti": ti}, ENV["prod"], "0123456789ab", publish)
    assert publish.called is False and ti.pushed == []


def test_the_resolved_configuration_is_never_shown_with_its_values():
    config = ResolvedConfig(env={"API_KEY": "k-123"}, secret=frozenset({"API_KEY"}))
    assert "k-123" not in repr(config) and "k-123" not in str(config)
