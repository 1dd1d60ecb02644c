from __future__ import annotations

import jsonschema
import pytest

from deployflow.catalog import parse_service
from deployflow.errors import ConfigError
from deployflow.release import ReleaseRequest, param_schema

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
    ({"environment": "dev", "reason": "x" * 501}, "params.reason", "at most 500"),
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


@pytest.mark.parametrize(("params", "path", "says"), BAD)
def test_the_form_schema_refuses_what_the_core_refuses(params, path, says):
    """Airflow validates the trigger form and REST conf with this JSON schema."""
    schema = param_schema(SERVICE)
    name = path.split(".")[1]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(params[name], {k: v for k, v in schema[name].items() if k != "default"})


def test_the_form_defaults_are_valid():
    defaults = {name: spec["default"] for name, spec in param_schema(SERVICE).items()}
    assert defaults == {"environment": "dev", "git_ref": "main", "strategy": "catalog", "reason": ""}
    assert ReleaseRequest.from_params(SERVICE, defaults).environment == "dev"
