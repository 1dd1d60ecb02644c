from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest

from deployflow.catalog import parse_service
from deployflow.errors import ConfigError
from deployflow.release import ReleaseRequest, param_schema, release_run_id, run_note

SERVICE = parse_service({
    "name": "shop",
    "source": {"repo": "/srv/shop", "default_ref": "main"},
    "environments": {"dev": {"port": 18101}, "staging": {"port": 18102}, "prod": {"strategy": "canary", "port": 18103}},
})


def test_catalog_strategy_is_resolved_per_environment():
    request = ReleaseRequest.from_params(SERVICE, {"environment": "prod"}, requested_by="ci")
    assert request.strategy == "canary"  # the catalog's override of the prod default
    assert request.git_ref == "main"
    assert request.requested_by == "ci"
    assert ReleaseRequest.from_params(SERVICE, {"environment": "dev"}).strategy == "rolling"


def test_explicit_strategy_wins():
    request = ReleaseRequest.from_params(SERVICE, {"environment": "prod", "strategy": "blue-green", "git_ref": "v1.2.0"})
    assert (request.strategy, request.git_ref) == ("blue-green", "v1.2.0")


BAD = [
    ({"environment": "qa"}, "params.environment", "valid values are 'dev', 'staging', 'prod'"),
    ({"environment": "dev", "strategy": "big-bang"}, "params.strategy", "'catalog', 'rolling', 'canary', 'blue-green'"),
    ({"environment": "dev", "git_ref": "--upload-pack=evil"}, "params.git_ref", "branch, tag or commit"),
    ({"environment": "dev", "git_ref": "a b"}, "params.git_ref", "branch, tag or commit"),
    ({"environment": "dev", "git_ref": "main\n"}, "params.git_ref", "contains U+000A"),
    ({"environment": "dev", "git_ref": "a..b"}, "params.git_ref", "contains '..'"),
    ({"environment": "dev", "reason": "x" * 501}, "params.reason", "at most 500"),
    ({"environment": "dev", "reason": "fix\n"}, "params.reason", "contains U+000A"),
    ({"environment": "dev", "reason": "ok \u202etxt.exe"}, "params.reason", "contains U+202E (RIGHT-TO-LEFT OVERRIDE, category Cf)"),
    ({"environment": "dev", "reason": "\u2066isolate"}, "params.reason", "contains U+2066"),
    ({"environment": "dev", "reason": "mark\u200f"}, "params.reason", "contains U+200F"),
    ({"environment": "dev", "reason": "bell\x07"}, "params.reason", "contains U+0007"),
]


@pytest.mark.parametrize(("params", "path", "says"), BAD)
def test_bad_params_name_the_field(params, path, says):
    with pytest.raises(ConfigError) as caught:
        ReleaseRequest.from_params(SERVICE, params)
    assert caught.value.path == path
    assert says in caught.value.message


def test_unknown_param_is_refused():
    with pytest.raises(ConfigError, match="params.colour: unknown parameter; valid ones are environment, git_ref"):
        ReleaseRequest.from_params(SERVICE, {"environment": "dev", "colour": "blue"})


def test_every_unknown_param_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        ReleaseRequest.from_params(SERVICE, {"environment": "dev", "size": 1, "colour": "blue"})
    assert str(caught.value) == "params.colour: unknown parameter (and size too); valid ones are environment, git_ref, strategy, reason, promote_from, rollback_to, freeze_override, force"


@pytest.mark.parametrize(("params", "path", "says"), BAD)
def test_the_form_schema_refuses_what_the_core_refuses(params, path, says):
    """Airflow validates the trigger form and REST conf with this JSON schema (jsonschema: re.search)."""
    schema = param_schema(SERVICE)
    name = path.split(".")[1]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(params[name], {k: v for k, v in schema[name].items() if k != "default"})


@pytest.mark.parametrize("reason", ["", "CI build 42", "déploiement: ünïcode ✓ 🚀", "a" * 500])
def test_a_reason_of_visible_text_passes_both_checks(reason):
    assert ReleaseRequest.from_params(SERVICE, {"environment": "dev", "reason": reason}).reason == reason
    jsonschema.validate(reason, {k: v for k, v in param_schema(SERVICE)["reason"].items() if k != "default"})


def test_the_form_schema_patterns_are_ecma_regexes_too():
    """The UI checks the same pattern in the browser: no Python-only syntax (\\Z, (?P<...>), inline flags)."""
    for spec in param_schema(SERVICE).values():
        if "pattern" in spec:
            assert spec["pattern"].startswith("^") and spec["pattern"].endswith("$(?!\\n)")
            assert "\\Z" not in spec["pattern"] and "(?P" not in spec["pattern"] and "(?i" not in spec["pattern"]


def test_the_form_defaults_are_valid_and_name_no_environment():
    """Without a nightly schedule the environment has no default: Airflow refuses a trigger that names none."""
    schema = param_schema(SERVICE)
    assert "default" not in schema["environment"]
    defaults = {name: spec["default"] for name, spec in schema.items() if "default" in spec}
    assert defaults == {"git_ref": "main", "strategy": "catalog", "reason": None, "promote_from": None, "rollback_to": None,
                        "freeze_override": None, "force": False}
    assert ReleaseRequest.from_params(SERVICE, {**defaults, "environment": "dev"}).environment == "dev"


NIGHTLY = parse_service({
    "name": "shop", "source": {"repo": "/srv/shop", "default_ref": "main"},
    "environments": {"dev": {"port": 18101}, "staging": {"port": 18102}},
    "nightly": {"cron": "0 2 * * *", "environment": "staging", "ref": "nightly"},
})


@pytest.mark.parametrize(("service", "params", "scheduled"), [
    (SERVICE, {}, False),
    (SERVICE, {"environment": None}, False),
    (NIGHTLY, {}, False),  # a manual trigger of a nightly service names its environment too
    (NIGHTLY, {"environment": None, "git_ref": "main"}, False),
    (NIGHTLY, {"environment": "", "git_ref": "main"}, False),  # the form's default: "" counts as not given
    (SERVICE, {"environment": ""}, False),
    (SERVICE, {}, True),  # no nightly: nothing to fall back on
])
def test_a_trigger_that_names_no_environment_is_refused(service, params, scheduled):
    with pytest.raises(ConfigError) as caught:
        ReleaseRequest.from_params(service, params, requested_by="alice", scheduled=scheduled)
    assert str(caught.value).startswith("params.environment: is required (only the nightly schedule may leave it out); "
                                        "valid values are 'dev', 'staging'")


def test_only_the_nightly_schedule_releases_to_the_nightly_environment():
    defaults = {name: spec["default"] for name, spec in param_schema(NIGHTLY).items()}
    assert defaults == {"environment": "", "git_ref": "nightly", "strategy": "catalog", "reason": None, "promote_from": None,
                        "rollback_to": None, "freeze_override": None, "force": False}
    request = ReleaseRequest.from_params(NIGHTLY, defaults, requested_by="scheduled", scheduled=True)
    assert (request.environment, request.git_ref, request.strategy) == ("staging", "nightly", "canary")
    # Airflow's check of the defaults (a scheduled run has nothing else) passes: "" is in the enum (null is not).
    spec = {k: v for k, v in param_schema(NIGHTLY)["environment"].items() if k != "default"}
    jsonschema.validate("", spec)
    for bad in ("prod", None):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, spec)


NOTES = [
    # A trigger's conf, before resolve: the catalog's strategy is not known yet.
    ({"environment": "prod", "git_ref": "main"}, None, "prod · the catalog's strategy · main"),
    # Resolve's result, with the commit once checked out.
    ({"environment": "prod", "strategy": "blue-green", "git_ref": "main", "requested_by": "alice", "reason": "hotfix"},
     "3f2a9c1", "prod · blue-green · main@3f2a9c1 · by alice: hotfix"),
    # A SHA as the ref is not repeated; a promotion names where it comes from; an override is said.
    ({"environment": "prod", "strategy": "canary", "git_ref": "3f2a9c1d", "promote_from": "staging",
      "freeze": {"name": "weekend"}, "requested_by": "bob"}, "3f2a9c1", "prod · canary · 3f2a9c1d from staging · freeze overridden · by bob"),
    # Anyone's words never make a link, an image or HTML in the run list.
    ({"environment": "dev", "strategy": "rolling", "git_ref": "main", "reason": "see [this](http://x) <b>"}, None,
     "dev · rolling · main · see \\[this\\]\\(http\\:\\/\\/x\\) \\<b\\>"),
]


@pytest.mark.parametrize(("request_", "version", "note"), NOTES)
def test_a_runs_note_says_environment_strategy_version_who_and_why(request_, version, note):
    assert run_note(request_, version) == note


def test_a_long_note_is_cut_to_what_airflow_keeps():
    note = run_note({"environment": "dev", "strategy": "rolling", "git_ref": "main", "reason": "x" * 2000})
    assert len(note) == 1000 and note.endswith("x…")


@pytest.mark.parametrize(("environment", "ref", "expected"), [
    ("prod", "main", "prod__main__20261206T174300"),
    ("dev", "feature/login@{1}", "dev__feature-login--1__20261206T174300"),
    (None, None, "default__default__20261206T174300"),
    ("staging", "a" * 200, f"staging__{'a' * 60}__20261206T174300"),
])
def test_a_run_id_reads_like_the_release_with_airflows_characters_only(environment, ref, expected):
    at = datetime(2026, 12, 6, 18, 43, tzinfo=timezone(timedelta(hours=1)))  # told in UTC
    made = release_run_id(environment, ref, at)
    assert made == expected
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", made)


def test_force_is_true_or_false_and_off_by_default():
    assert ReleaseRequest.from_params(SERVICE, {"environment": "prod"}).force is False
    assert ReleaseRequest.from_params(SERVICE, {"environment": "prod", "force": True}).force is True
    with pytest.raises(ConfigError) as caught:
        ReleaseRequest.from_params(SERVICE, {"environment": "prod", "force": "yes"})
    assert (caught.value.path, caught.value.message) == ("params.force", "'yes' is not valid; must be true or false")
