"""The release DAG's trigger form says what is required, and what it sends is what REST and the client send.

Airflow 3.3's form (airflow/ui, ``FlexibleForm``) stars a param, and keeps the Trigger button disabled while it
holds null or "", when its schema's ``type`` is set and does not allow "null" (``isParamRequired``); a select shows
a null value by its ``values_display`` label for "null" (Airflow's own label is the text "null"); a text field
shows null as empty, and sends an emptied field as null. These tests hold the installed UI to those rules, the
params to them, and Airflow's own Param check (the one behind HTTP 400) to what the form and REST send.
"""

from __future__ import annotations

import re
from pathlib import Path

import airflow
import pytest
from airflow.exceptions import ParamValidationError
from airflow.sdk import Param

from deployflow.release import ReleaseRequest, param_schema
from tests.dags.test_trigger_conf import MANUAL, NIGHTLY, validate_as_the_api_server_does

UI_BUNDLES = sorted((Path(airflow.__file__).parent / "ui" / "dist" / "assets").glob("index-*.js"))
# The installed UI's rules, minified: isParamRequired, and the select's label of a value (null -> "null").
REQUIRED_RULE = re.compile(r"(\w+)=>!!\1\.schema\.type&&\(!Array\.isArray\(\1\.schema\.type\)\|\|!\1\.schema\.type\.includes\(`null`\)\)")
NULL_LABEL_RULE = re.compile(r"\((\w+),(\w+)\)=>\{if\(\2&&typeof \2==`object`\)\{let (\w+)=\1===null\?`null`:String\(\1\);return \2\[\3\]\?\?")


def starred(spec: dict) -> bool:
    """What the form marks required: REQUIRED_RULE in Python."""
    kind = spec.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def shown(spec: dict, value: object) -> str:
    """What a field shows for ``value``: a select its label (NULL_LABEL_RULE), a text field its text."""
    if "enum" in spec:
        if value not in spec["enum"]:
            return ""  # nothing chosen: the select shows its placeholder ("Select Value")
        key = "null" if value is None else str(value)
        return (spec.get("values_display") or {}).get(key, key)
    return "" if value is None else str(value)


def test_the_installed_ui_decides_as_these_tests_say():
    """An Airflow upgrade that changes either rule fails here: read FlexibleForm again, then the rules above."""
    bundle = "".join(path.read_text(errors="replace") for path in UI_BUNDLES)
    assert REQUIRED_RULE.search(bundle), f"isParamRequired is not as these tests say in {UI_BUNDLES}"
    assert NULL_LABEL_RULE.search(bundle), f"a select's label of null is not as these tests say in {UI_BUNDLES}"


FORM = [  # param: starred, default (MANUAL), default (NIGHTLY), what the form shows at first
    ("environment", True, None, "", ""),
    ("git_ref", True, "main", "main", "main"),
    ("strategy", True, "catalog", "catalog", "catalog"),
    ("reason", False, None, None, ""),
    ("promote_from", False, None, None, ""),
    ("rollback_to", False, None, None, ""),
    ("freeze_override", False, None, None, ""),
    ("force", False, False, False, "False"),
]


@pytest.mark.parametrize(("name", "required", "manual", "nightly", "shows"), FORM)
def test_each_field_is_required_or_not_with_its_default(name, required, manual, nightly, shows):
    for service, default in ((MANUAL, manual), (NIGHTLY, nightly)):
        spec = param_schema(service)[name]
        assert starred(spec) is required, (service.name, name, spec.get("type"))
        assert spec.get("default") == default, (service.nightly, name)
        assert shown(spec, spec.get("default")) == shows, (service.nightly, name)


def test_nothing_the_form_shows_at_first_reads_null():
    for service in (MANUAL, NIGHTLY):
        for name, spec in param_schema(service).items():
            assert shown(spec, spec.get("default")) != "None" and "null" not in shown(spec, spec.get("default")), name


# What the form sends: every param, an untouched or emptied optional one as null; what the client and CI send: only
# what is given. Airflow lets both through; resolve makes the same request of them ("" and null alike).
FORM_CONF = {"environment": "dev", "git_ref": "main", "strategy": "catalog", "reason": None, "promote_from": None,
             "rollback_to": None, "freeze_override": None, "force": False}
SAME_REQUEST = [
    FORM_CONF,
    {**FORM_CONF, "force": None},
    {"environment": "dev"},
    {"environment": "dev", "reason": "", "freeze_override": ""},  # a text field: "" passes; a select's "" does not
    {"environment": "dev", "reason": None, "promote_from": None, "rollback_to": None, "freeze_override": None},
]


@pytest.mark.parametrize("service", [MANUAL, NIGHTLY], ids=["manual", "nightly"])
@pytest.mark.parametrize("conf", SAME_REQUEST)
def test_an_optional_field_left_empty_is_not_given_whichever_way_it_comes(service, conf):
    params = validate_as_the_api_server_does(service, conf)  # no ParamValidationError: no HTTP 400
    request = ReleaseRequest.from_params(service, params, requested_by="alice")
    assert (request.environment, request.reason, request.promote_from, request.rollback_to, request.freeze_override,
            request.force) == ("dev", "", "", "", "", False)


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("reason", None, True), ("reason", "", True), ("reason", "hotfix", True), ("reason", "a\nb", False),
    ("environment", "dev", True), ("environment", None, False), ("environment", "", False),
    ("promote_from", None, True), ("promote_from", "dev", True), ("promote_from", "", False),
    ("rollback_to", None, True), ("rollback_to", "previous", True), ("rollback_to", "", False),
    ("force", None, True), ("force", True, True), ("force", "yes", False),
])
def test_airflows_param_check_of_one_field(name, value, accepted):
    """Param.resolve: the check behind HTTP 400, field by field (a manual service: no default environment)."""
    param = Param(**param_schema(MANUAL)[name])
    if accepted:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError, match=f"{re.escape(repr(value))} (is not|does not match)"):
            param.resolve(value)


def test_a_missing_environment_is_still_refused_by_airflow_without_a_nightly():
    with pytest.raises(ParamValidationError, match="Invalid input for param environment: No value passed"):
        validate_as_the_api_server_does(MANUAL, {"reason": "no environment"})
