"""The stack's settings: read once from the environment, every path absolute, the defaults under the checkout
whatever the working directory; and every command that takes a state directory or a ledger finds the same one
from anywhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deployflow.deployer import recover
from deployflow.ledger import __main__ as ledger_commands
from deployflow.ledger import backup, exporter, report
from deployflow.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults_are_absolute_and_under_the_checkout_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_environ({})
    assert (settings.home, settings.state_dir, settings.workspace, settings.catalog_dir) == (
        ROOT, ROOT / ".state", ROOT / ".workspace", ROOT / "include" / "services")
    assert settings.ledger_url == f"sqlite:///{ROOT}/.state/ledger.db"
    assert (settings.stack, settings.registry, settings.haproxy_image, settings.base_image) == (
        "local", "127.0.0.1:5000", "deployflow/haproxy:2", "deployflow/base:bookworm")
    assert (settings.grants_file, settings.named_ledger_url, settings.prometheus_url) == (None, None, None)
    assert settings.registry_credentials == Path.home() / ".deployflow" / "registry" / "credentials.json"


@pytest.mark.parametrize(("environ", "field", "expected"), [
    ({"DEPLOYFLOW_STATE": "state"}, "state_dir", "state"),
    ({"DEPLOYFLOW_STATE": "a/../state"}, "state_dir", "state"),  # no '..': a container mounts it by this path
    ({"DEPLOYFLOW_WORKSPACE": "ws"}, "workspace", "ws"),
    ({"DEPLOYFLOW_CATALOG": "services"}, "catalog_dir", "services"),
    ({"DEPLOYFLOW_GRANTS": "grants.yaml"}, "grants_file", "grants.yaml"),
    ({"DEPLOYFLOW_REGISTRY_CREDENTIALS": "c.json"}, "registry_credentials", "c.json"),
    ({"DEPLOYFLOW_HOME": "checkout"}, "state_dir", "checkout/.state"),
    ({"DEPLOYFLOW_HOME": "checkout"}, "catalog_dir", "checkout/include/services"),
])
def test_a_relative_path_given_is_from_the_working_directory(tmp_path, monkeypatch, environ, field, expected):
    monkeypatch.chdir(tmp_path)
    assert getattr(Settings.from_environ(environ), field) == tmp_path / expected


def test_each_name_is_read_where_it_is_set_and_an_empty_one_is_unset():
    given = {"DEPLOYFLOW_STACK": "e2e", "DEPLOYFLOW_LEDGER_URL": "postgresql://l@db/ledger", "DEPLOYFLOW_REGISTRY": "r:5",
             "DEPLOYFLOW_HAPROXY_IMAGE": "h:2", "BASE_IMAGE": "b:1", "DEPLOYFLOW_PROMETHEUS_URL": "http://prom",
             "DEPLOYFLOW_STATE": ""}
    settings = Settings.from_environ(given)
    assert (settings.stack, settings.ledger_url, settings.registry, settings.haproxy_image, settings.base_image,
            settings.prometheus_url) == ("e2e", "postgresql://l@db/ledger", "r:5", "h:2", "b:1", "http://prom")
    assert settings.state_dir == ROOT / ".state"


def test_an_option_over_the_settings_is_absolute_and_moves_the_default_ledger_with_the_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = replace(Settings.from_environ({}), state_dir="elsewhere")
    assert settings.state_dir == tmp_path / "elsewhere"
    assert settings.ledger_url == f"sqlite:///{tmp_path}/elsewhere/ledger.db"
    named = replace(Settings.from_environ({"DEPLOYFLOW_LEDGER_URL": "sqlite:////l.db"}), state_dir="elsewhere")
    assert named.ledger_url == "sqlite:////l.db"


# Each command's ledger URL (and state directory, where it takes one) from its options' defaults.
COMMANDS = {
    "report": lambda s: (report.parser(s).parse_args([]), None),
    "exporter": lambda s: (exporter.parse_args([], s), None),
    "import": lambda s: (ledger_commands.import_parser(s).parse_args(["old.jsonl"]), None),
    "backup": lambda s: (args := backup.parse_args(["backup", "--to", "b"], s), args.state),
    "restore": lambda s: (args := backup.parse_args(["restore", "--from", "b"], s), args.state),
    "recover": lambda s: (args := recover.parse_args(["--environment", "dev"], s), args.settings.state_dir),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("state", [None, "relative-state"])
def test_every_command_finds_the_same_state_and_ledger_from_any_working_directory(command, state, tmp_path, monkeypatch):
    """No DEPLOYFLOW_STATE: the checkout's .state, never the working directory's; a relative one: from where the
    command runs."""
    for name in ("DEPLOYFLOW_STATE", "DEPLOYFLOW_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEPLOYFLOW_HOME", str(tmp_path / "checkout"))
    if state:
        monkeypatch.setenv("DEPLOYFLOW_STATE", state)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    args, state_dir = COMMANDS[command](Settings.from_environ())
    expected = tmp_path / "elsewhere" / state if state else tmp_path / "checkout" / ".state"
    assert args.url == f"sqlite:///{expected}/ledger.db"
    assert state_dir in (None, expected)


@pytest.mark.parametrize("command", ["backup", "recover"])
def test_a_relative_state_option_is_from_the_working_directory_and_the_ledger_follows_it(command, tmp_path, monkeypatch):
    monkeypatch.delenv("DEPLOYFLOW_LEDGER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_environ()
    if command == "backup":
        args = backup.parse_args(["backup", "--to", "b", "--state", "s"], settings)
        state_dir = args.state
    else:
        args = recover.parse_args(["--environment", "dev", "--state", "s"], settings)
        state_dir = args.settings.state_dir
    assert state_dir == tmp_path / "s"
    assert args.url == f"sqlite:///{tmp_path}/s/ledger.db"


def test_the_same_environment_is_read_once_and_a_change_is_seen(tmp_path, monkeypatch):
    """A DAG file's parse asks a dozen times: the same variables give the same object; any change gives a new one."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "a"))
    first = Settings.from_environ()
    assert Settings.from_environ() is first
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "b"))
    assert Settings.from_environ().state_dir == tmp_path / "b"
    monkeypatch.setenv("DEPLOYFLOW_STATE", "relative")  # made absolute from the working directory of the moment
    monkeypatch.chdir(tmp_path)
    assert Settings.from_environ().state_dir == tmp_path / "relative"
    monkeypatch.chdir(tmp_path / "..")
    assert Settings.from_environ().state_dir == tmp_path.parent / "relative"
