"""Config.from_env: defaults, good values, and errors that name the variable."""
from __future__ import annotations

import pytest

import app


def test_defaults_from_empty_environment():
    config = app.Config.from_env({})
    assert config == app.Config(port=8000, bind="127.0.0.1", version="dev", commit="", track="",
                                error_rate=0.0, errors_after_s=0.0, latency_ms=0.0, slow_fraction=0.0,
                                slow_ms=0.0, ready_never=False, crash_after_s=0.0, seed=None)
    assert config.active_faults() == "none"


def test_empty_values_mean_default():
    # What a Dockerfile ARG with an empty default exported as ENV looks like.
    env = dict.fromkeys(["PORT", "BIND", "APP_VERSION", "APP_COMMIT", "APP_TRACK", "FAULT_ERROR_RATE",
                         "FAULT_ERRORS_AFTER_S", "FAULT_LATENCY_MS", "FAULT_SLOW_FRACTION", "FAULT_SLOW_MS",
                         "FAULT_READY_NEVER", "FAULT_CRASH_AFTER_S", "FAULT_CRASH_AFTER_REQUESTS", "FAULT_SEED"], "")
    assert app.Config.from_env(env) == app.Config()


def test_all_values_parsed():
    config = app.Config.from_env({
        "PORT": "18080", "BIND": "0.0.0.0", "APP_VERSION": "1.4.2", "APP_COMMIT": "abc123",
        "APP_TRACK": "canary", "FAULT_ERROR_RATE": "0.25", "FAULT_ERRORS_AFTER_S": "20",
        "FAULT_LATENCY_MS": "150", "FAULT_SLOW_FRACTION": "0.05", "FAULT_SLOW_MS": "200",
        "FAULT_READY_NEVER": "true", "FAULT_CRASH_AFTER_S": "2.5", "FAULT_CRASH_AFTER_REQUESTS": "300",
        "FAULT_SEED": "42",
    })
    assert config == app.Config(port=18080, bind="0.0.0.0", version="1.4.2", commit="abc123", track="canary",
                                error_rate=0.25, errors_after_s=20.0, latency_ms=150.0, slow_fraction=0.05,
                                slow_ms=200.0, ready_never=True, crash_after_s=2.5, crash_after_requests=300, seed=42)
    assert config.active_faults() == ("error_rate=0.25,errors_after_s=20,latency_ms=150,"
                                      "slow_fraction=0.05,slow_ms=200,ready_never,crash_after_s=2.5,crash_after_requests=300")


@pytest.mark.parametrize("env, faults", [
    ({"FAULT_ERROR_RATE": "0.3", "FAULT_ERRORS_AFTER_S": "20"}, "error_rate=0.3,errors_after_s=20"),
    ({"FAULT_ERROR_RATE": "0.3", "FAULT_ERRORS_AFTER_S": "0"}, "error_rate=0.3"),
    # The partner at 0 turns a baked-in fault off; its delay or extra time is then no fault.
    ({"FAULT_ERROR_RATE": "0", "FAULT_ERRORS_AFTER_S": "20"}, "none"),
    ({"FAULT_SLOW_FRACTION": "0.05", "FAULT_SLOW_MS": "200"}, "slow_fraction=0.05,slow_ms=200"),
    ({"FAULT_SLOW_FRACTION": "0", "FAULT_SLOW_MS": "200"}, "none"),
    ({"FAULT_SLOW_FRACTION": "0", "FAULT_SLOW_MS": ""}, "none"),
    ({"FAULT_SLOW_MS": "0"}, "none"),
])
def test_active_faults_list_what_is_in_force(env, faults):
    assert app.Config.from_env(env).active_faults() == faults


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
    ({"FAULT_ERROR_RATE": "0.3", "FAULT_ERRORS_AFTER_S": "1.5"}, "errors_after_s", 1.5),
    ({"FAULT_ERROR_RATE": "0", "FAULT_ERRORS_AFTER_S": "20"}, "errors_after_s", 20.0),
    ({"FAULT_ERRORS_AFTER_S": "0"}, "errors_after_s", 0.0),
    ({"FAULT_SLOW_FRACTION": "1", "FAULT_SLOW_MS": "200"}, "slow_fraction", 1.0),
    ({"FAULT_SLOW_FRACTION": "0.05", "FAULT_SLOW_MS": "0.5"}, "slow_ms", 0.5),
    ({"FAULT_SLOW_FRACTION": "0", "FAULT_SLOW_MS": "200"}, "slow_ms", 200.0),
    ({"FAULT_SLOW_FRACTION": "0"}, "slow_fraction", 0.0),
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
    ("FAULT_ERRORS_AFTER_S", "-1", ">= 0.0"),
    ("FAULT_ERRORS_AFTER_S", "20s", ">= 0.0"),
    ("FAULT_SLOW_FRACTION", "5", "between 0.0 and 1.0"),
    ("FAULT_SLOW_FRACTION", "5%", "between 0.0 and 1.0"),
    ("FAULT_SLOW_MS", "-200", ">= 0.0"),
    ("FAULT_SLOW_MS", "inf", ">= 0.0"),
    ("FAULT_CRASH_AFTER_S", "-1", ">= 0.0"),
    ("FAULT_CRASH_AFTER_S", "soon", ">= 0.0"),
    ("FAULT_CRASH_AFTER_REQUESTS", "-1", "an integer >= 0"),
    ("FAULT_CRASH_AFTER_REQUESTS", "2.5", "an integer >= 0"),
    ("FAULT_SEED", "0x10", "integer"),
])
def test_bad_value_names_variable_and_allowed_range(name, value, allowed):
    with pytest.raises(app.ConfigError) as excinfo:
        app.Config.from_env({name: value})
    message = str(excinfo.value)
    assert message.startswith(f"{name}={value!r}")
    assert allowed in message


ERRORS_NEED_RATE = ("needs FAULT_ERROR_RATE: the share of / requests answered 500 once the delay is over, "
                    "0.0-1.0 (0: no errors)")
SLOW_NEEDS_MS = "needs FAULT_SLOW_MS > 0: the time the slow requests take longer"
MS_NEEDS_SLOW = "needs FAULT_SLOW_FRACTION: the share of / requests that are slow, 0.0-1.0 (0: none)"


@pytest.mark.parametrize("env, message", [
    ({"FAULT_ERRORS_AFTER_S": "20"}, f"FAULT_ERRORS_AFTER_S='20' {ERRORS_NEED_RATE}"),
    ({"FAULT_ERRORS_AFTER_S": "20", "FAULT_ERROR_RATE": ""}, f"FAULT_ERRORS_AFTER_S='20' {ERRORS_NEED_RATE}"),
    ({"FAULT_SLOW_FRACTION": "0.05"}, f"FAULT_SLOW_FRACTION='0.05' {SLOW_NEEDS_MS}"),
    ({"FAULT_SLOW_FRACTION": "0.05", "FAULT_SLOW_MS": "0"}, f"FAULT_SLOW_FRACTION='0.05' {SLOW_NEEDS_MS}"),
    ({"FAULT_SLOW_MS": "200"}, f"FAULT_SLOW_MS='200' {MS_NEEDS_SLOW}"),
    ({"FAULT_SLOW_MS": "200", "FAULT_SLOW_FRACTION": " "}, f"FAULT_SLOW_MS='200' {MS_NEEDS_SLOW}"),
])
def test_knob_without_its_partner_names_both(env, message):
    with pytest.raises(app.ConfigError) as excinfo:
        app.Config.from_env(env)
    assert str(excinfo.value) == message


def test_main_exits_2_on_bad_config(capsys):
    assert app.main({"FAULT_ERROR_RATE": "2"}) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "FAULT_ERROR_RATE='2'" in err and "between 0.0 and 1.0" in err



def test_main_exits_2_on_a_knob_without_its_partner(capsys):
    assert app.main({"FAULT_SLOW_MS": "200"}) == 2
    err = capsys.readouterr().err
    assert "configuration error: FAULT_SLOW_MS='200' needs FAULT_SLOW_FRACTION" in err
