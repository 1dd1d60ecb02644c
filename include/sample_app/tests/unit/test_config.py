"""Config.from_env: defaults, good values, and errors that name the variable."""
from __future__ import annotations

import pytest

import app


def test_defaults_from_empty_environment():
    config = app.Config.from_env({})
    assert config == app.Config(port=8000, bind="127.0.0.1", version="dev", commit="", track="",
                                error_rate=0.0, latency_ms=0.0, ready_never=False,
                                crash_after_s=0.0, seed=None)
    assert config.active_faults() == "none"


def test_empty_values_mean_default():
    # What a Dockerfile ARG with an empty default exported as ENV looks like.
    env = dict.fromkeys(["PORT", "BIND", "APP_VERSION", "APP_COMMIT", "APP_TRACK", "FAULT_ERROR_RATE",
                         "FAULT_LATENCY_MS", "FAULT_READY_NEVER", "FAULT_CRASH_AFTER_S", "FAULT_SEED"], "")
    assert app.Config.from_env(env) == app.Config()


def test_all_values_parsed():
    config = app.Config.from_env({
        "PORT": "18080", "BIND": "0.0.0.0", "APP_VERSION": "1.4.2", "APP_COMMIT": "abc123",
        "APP_TRACK": "canary", "FAULT_ERROR_RATE": "0.25", "FAULT_LATENCY_MS": "150",
        "FAULT_READY_NEVER": "true", "FAULT_CRASH_AFTER_S": "2.5", "FAULT_SEED": "42",
    })
    assert config == app.Config(port=18080, bind="0.0.0.0", version="1.4.2", commit="abc123", track="canary",
                                error_rate=0.25, latency_ms=150.0, ready_never=True,
                                crash_after_s=2.5, seed=42)
    assert config.active_faults() == "error_rate=0.25,latency_ms=150,ready_never,crash_after_s=2.5"


@pytest.mark.parametrize("env, expected", [
    ({"APP_VERSION": "2.0.0", "APP_COMMIT": "abc"}, "2.0.0"),
    ({"APP_COMMIT": "abc"}, "abc"),
    ({"APP_VERSION": "", "APP_COMMIT": ""}, "dev"),
])
def test_version_falls_back_to_commit_then_dev(env, expected):
    assert app.Config.from_env(env).version == expected


@pytest.mark.parametrize("env, field, expected", [
    ({"PORT": "0"}, "port", 0),
    ({"PORT": "65535"}, "port", 65535),
    ({"PORT": " 8080 "}, "port", 8080),
    ({"BIND": "::1"}, "bind", "::1"),
    ({"FAULT_ERROR_RATE": "1"}, "error_rate", 1.0),
    ({"FAULT_ERROR_RATE": "0.0"}, "error_rate", 0.0),
    ({"FAULT_LATENCY_MS": "0.5"}, "latency_ms", 0.5),
    ({"FAULT_READY_NEVER": "1"}, "ready_never", True),
    ({"FAULT_READY_NEVER": "ON"}, "ready_never", True),
    ({"FAULT_READY_NEVER": "false"}, "ready_never", False),
    ({"FAULT_READY_NEVER": "0"}, "ready_never", False),
    ({"FAULT_SEED": "-7"}, "seed", -7),
])
def test_good_values(env, field, expected):
    assert getattr(app.Config.from_env(env), field) == expected


@pytest.mark.parametrize("name, value, allowed", [
    ("PORT", "http", "between 0 and 65535"),
    ("PORT", "65536", "between 0 and 65535"),
    ("PORT", "-1", "between 0 and 65535"),
    ("PORT", "80.5", "between 0 and 65535"),
    ("BIND", "localhost", "IPv4 or IPv6 address"),
    ("BIND", "127.0.0.256", "IPv4 or IPv6 address"),
    ("FAULT_ERROR_RATE", "1.5", "between 0.0 and 1.0"),
    ("FAULT_ERROR_RATE", "-0.1", "between 0.0 and 1.0"),
    ("FAULT_ERROR_RATE", "nan", "between 0.0 and 1.0"),
    ("FAULT_ERROR_RATE", "half", "between 0.0 and 1.0"),
    ("FAULT_LATENCY_MS", "-5", ">= 0.0"),
    ("FAULT_LATENCY_MS", "inf", ">= 0.0"),
    ("FAULT_LATENCY_MS", "100ms", ">= 0.0"),
    ("FAULT_READY_NEVER", "maybe", "1/true/yes/on or 0/false/no/off"),
    ("FAULT_CRASH_AFTER_S", "-1", ">= 0.0"),
    ("FAULT_CRASH_AFTER_S", "soon", ">= 0.0"),
    ("FAULT_SEED", "0x10", "integer"),
])
def test_bad_value_names_variable_and_allowed_range(name, value, allowed):
    with pytest.raises(app.ConfigError) as excinfo:
        app.Config.from_env({name: value})
    message = str(excinfo.value)
    assert message.startswith(f"{name}={value!r}")
    assert allowed in message


def test_main_exits_2_on_bad_config(capsys):
    assert app.main({"FAULT_ERROR_RATE": "2"}) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "FAULT_ERROR_RATE='2'" in err and "between 0.0 and 1.0" in err

