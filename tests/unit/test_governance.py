"""Governance in the catalog and the request: approval gates, ``requires``, promotion from an earlier environment."""

from __future__ import annotations

import pytest

from deployflow.catalog import parse_service
from deployflow.errors import ConfigError
from deployflow.ledger import ReleaseEntry
from deployflow.governance.promotion import Artifact, promoted_artifact, rollback_artifact
from deployflow.release import ReleaseRequest, param_schema
from tests.unit.test_catalog import GOOD, with_change


def test_no_gate_and_no_rule_unless_the_catalog_asks():
    env = parse_service(GOOD).environments["prod"]
    assert (env.approval.required, env.requires, env.freeze, env.notifications) == (False, None, (), ())


def test_an_approval_block_asks_for_a_gate_with_its_settings():
    service = parse_service(with_change("environments.prod.approval", {"approvers": ["alice", "bob@example.com"],
                                                                        "timeout_s": 600, "before": "promote"}))
    approval = service.environments["prod"].approval
    assert (approval.required, approval.approvers, approval.timeout_s, approval.before) == (
        True, ("alice", "bob@example.com"), 600, "promote")
    assert parse_service(with_change("environments.prod.approval", {"required": False})).environments["prod"].approval.required is False


@pytest.mark.parametrize(("block", "needed"), [
    ({"approvers": ["al", "bo", "cy"], "min_approvals": 2}, 2),
    ({"approvers": ["al", "bo", "cy"], "min_approvals": 3}, 3),
    ({"approvers": ["al", "bo"]}, 1),  # one of them, by default
    ({"min_approvals": 1}, 1),  # no approvers listed: one approval by anyone but the requester
])
def test_min_approvals_counts_among_the_approvers(block, needed):
    assert parse_service(with_change("environments.prod.approval", block)).environments["prod"].approval.min_approvals == needed


@pytest.mark.parametrize(("path", "value", "field", "says"), [
    ("environments.prod.approval", {"before": "build"}, "environments.prod.approval.before", "'deploy', 'promote'"),
    ("environments.prod.approval", {"approvers": ["al ice"]}, "environments.prod.approval.approvers[0]", "user name"),
    ("environments.prod.approval", {"approvers": ["al", "al"]}, "environments.prod.approval.approvers", "twice"),
    ("environments.prod.approval", {"timeout_s": 1}, "environments.prod.approval.timeout_s", "10"),
    ("environments.prod.approval", {"required": "yes"}, "environments.prod.approval.required", "true or false"),
    ("environments.prod.approval", {"approver": ["al"]}, "environments.prod.approval.approver", "valid fields"),
    *[("environments.prod.approval", {"approvers": ["al", "bo", "cy"], "min_approvals": n},
       "environments.prod.approval.min_approvals", "must be a whole number from 1 to 3") for n in (0, 4, 1.5, "2", True, None)],
    ("environments.prod.approval", {"min_approvals": 2}, "environments.prod.approval.min_approvals",
     "2 is not valid without approvers: list the approvers to count, or leave it at 1"),
    ("environments.prod.requires", "qa", "environments.prod.requires", "'dev', 'staging'"),
    ("environments.prod.requires", "prod", "environments.prod.requires", "'dev', 'staging'"),
    ("environments.prod.requires", ["staging"], "environments.prod.requires", "name of an environment"),
])
def test_a_bad_governance_field_is_refused_by_name(path, value, field, says):
    with pytest.raises(ConfigError) as caught:
        parse_service(with_change(path, value))
    assert caught.value.path == field and says in caught.value.message


def test_requires_may_not_loop():
    doc = with_change("environments.prod.requires", "staging")
    doc["environments"]["staging"]["requires"] = "prod"
    with pytest.raises(ConfigError, match="loop: staging -> prod -> staging"):
        parse_service(doc)


def _request(service, **params):
    return ReleaseRequest.from_params(service, {"environment": "prod", **params})


def test_a_required_environment_is_promoted_from_unless_the_request_says_otherwise():
    service = parse_service(with_change("environments.prod.requires", "staging"))
    assert _request(service).promote_from == "staging"
    assert _request(service, promote_from="staging").promote_from == "staging"
    with pytest.raises(ConfigError, match="prod requires staging: promote from 'staging'") as caught:
        _request(service, promote_from="dev")
    assert caught.value.path == "params.promote_from"
    assert _request(parse_service(GOOD)).promote_from == ""  # no rule: build


@pytest.mark.parametrize(("params", "field"), [
    ({"promote_from": "prod"}, "params.promote_from"),  # not from itself
    ({"promote_from": "qa"}, "params.promote_from"),
    ({"freeze_override": "fix\u202eit"}, "params.freeze_override"),
    ({"freeze_override": "x" * 501}, "params.freeze_override"),
])
def test_bad_governance_params_are_refused_by_name(params, field):
    with pytest.raises(ConfigError) as caught:
        _request(parse_service(GOOD), **params)
    assert caught.value.path == field


def test_the_form_offers_the_environments_to_promote_from():
    schema = param_schema(parse_service(GOOD))
    assert schema["promote_from"]["enum"] == [None, "dev", "staging", "prod"] and schema["promote_from"]["default"] is None
    assert schema["freeze_override"]["maxLength"] == 500


def _entry(commit: str, outcome: str, finished: str, **extra) -> ReleaseEntry:
    return ReleaseEntry(
        service="shop", environment="staging", strategy="canary", version=commit[:12], commit=commit,
        image=f"127.0.0.1:5000/shop:{commit[:12]}", previous=None, requested_by="ci", reason="", run_id=f"run-{commit[:4]}",
        outcome=outcome, started_at=None, finished_at=finished, seconds=1.0, rollback_seconds=None,
        digest=f"sha256:{commit[:4] * 16}", **extra)


LEDGER = [
    _entry("a" * 40, "promoted", "2026-12-01T10:00:00+00:00", tests={"unit": {"suite": "unit", "ok": True}}),
    _entry("b" * 40, "promoted", "2026-12-01T12:00:00+00:00"),
    _entry("c" * 40, "rolled_back", "2026-12-01T13:00:00+00:00"),
]


def test_promotion_takes_the_newest_promoted_release_by_digest():
    artifact = promoted_artifact(LEDGER, service="shop", source="staging", commit=None)
    assert (artifact.sha, artifact.run_id) == ("b" * 40, "run-bbbb")
    assert artifact.image == f"127.0.0.1:5000/shop:{'b' * 12}@sha256:{'bbbb' * 16}"


def test_promotion_of_a_named_commit_takes_that_one_with_its_tests():
    artifact = promoted_artifact(LEDGER, service="shop", source="staging", commit="aaaaaaa")
    assert artifact.sha == "a" * 40 and artifact.tests == {"unit": {"suite": "unit", "ok": True}}
    assert Artifact(**artifact.to_dict()) == artifact


@pytest.mark.parametrize(("entries", "commit", "field", "says"), [
    (LEDGER, "c" * 12, "params.promote_from", "staging has never promoted commit cccccccccccc; its promoted commits, "
                                               "newest first: bbbbbbbbbbbb, aaaaaaaaaaaa"),
    ([], None, "params.promote_from", "staging has never promoted any release of shop"),
    (LEDGER[2:], None, "params.promote_from", "never promoted any release"),
    (LEDGER, "main", "params.git_ref", "'main' is not a commit"),
])
def test_promotion_of_what_was_never_promoted_is_refused(entries, commit, field, says):
    with pytest.raises(ConfigError) as caught:
        promoted_artifact(entries, service="shop", source="staging", commit=commit)
    assert caught.value.path == field and says in caught.value.message


def test_an_environment_is_told_on_the_services_channels_then_its_own():
    doc = with_change("notifications", [{"kind": "webhook", "connection": "hooks"}])
    doc["environments"]["prod"]["notifications"] = [{"kind": "email", "connection": "smtp_default", "to": ["oncall@example.com"]}]
    service = parse_service(doc)
    assert [c.connection for c in service.channels("prod")] == ["hooks", "smtp_default"]
    assert [c.connection for c in service.channels("dev")] == ["hooks"]
    with pytest.raises(ConfigError) as caught:
        parse_service(with_change("environments.prod.notifications", [{"kind": "pager", "connection": "x"}]))
    assert caught.value.path.startswith("environments.prod.notifications[0]") and "'webhook'" in caught.value.message


def test_freeze_windows_are_read_into_the_environment():
    service = parse_service(with_change("environments.prod.freeze", [{"name": "weekend", "start": "0 18 * * 5",
                                                                      "end": "0 8 * * 1", "timezone": "Europe/Paris"}]))
    [window] = service.environments["prod"].freeze
    assert (window.name, window.timezone) == ("weekend", "Europe/Paris")


# --- a rollback: this environment's own earlier release, by digest and configuration version ---------------------

HISTORY = [  # staging, oldest first: a, b, then b again with a new configuration (live), then c rolled back
    _entry("a" * 40, "promoted", "2026-12-01T10:00:00+00:00", config="cfg1"),
    _entry("b" * 40, "promoted", "2026-12-01T12:00:00+00:00", config="cfg1"),
    _entry("b" * 40, "promoted", "2026-12-01T12:30:00+00:00", config="cfg2"),
    _entry("c" * 40, "rolled_back", "2026-12-01T13:00:00+00:00", config="cfg2"),
]


@pytest.mark.parametrize(("to", "commit", "config"), [
    ("previous", "b" * 40, "cfg1"),  # the same image with its earlier configuration is the release before the live one
    ("aaaaaaa", "a" * 40, "cfg1"),
    ("b" * 12, "b" * 40, "cfg2"),  # a commit names its newest promoted release (here the live one: prepare says so)
])
def test_a_rollback_takes_an_earlier_promoted_release_with_its_configuration(to, commit, config):
    artifact = rollback_artifact(HISTORY, service="shop", environment="staging", to=to)
    assert (artifact.sha, artifact.config, artifact.source) == (commit, config, "staging")
    assert artifact.image.endswith(f"@sha256:{commit[:4] * 16}")  # by digest: exactly what ran before


@pytest.mark.parametrize(("entries", "to", "says"), [
    ([], "previous", "shop has never been promoted in staging: nothing to roll back to"),
    (HISTORY[:1], "previous", "staging has no release before the live one; its promoted releases, newest first: "
                              "aaaaaaaaaaaa (configuration cfg1)"),
    (HISTORY, "c" * 7, "staging has never promoted commit ccccccc; its promoted releases, newest first: bbbbbbbbbbbb "
                       "(configuration cfg2), bbbbbbbbbbbb (configuration cfg1), aaaaaaaaaaaa (configuration cfg1)"),
])
def test_a_rollback_to_what_was_never_promoted_is_refused_naming_what_was(entries, to, says):
    with pytest.raises(ConfigError) as caught:
        rollback_artifact(entries, service="shop", environment="staging", to=to)
    assert (caught.value.path, caught.value.message) == ("params.rollback_to", says)


def test_a_rollback_request_takes_nothing_from_another_environment():
    service = parse_service(with_change("environments.prod.requires", "staging"))
    assert (_request(service, rollback_to="previous").rollback_to, _request(service, rollback_to="previous").promote_from) == (
        "previous", "")  # prod requires staging for a new release; a rollback puts back what prod itself ran
    for params, says in [({"rollback_to": "previous", "promote_from": "staging"}, "leave promote_from empty"),
                         ({"rollback_to": "last"}, "'last' is neither 'previous' nor a commit"),
                         ({"rollback_to": "abc"}, "'abc' is neither 'previous' nor a commit")]:
        with pytest.raises(ConfigError, match=says) as caught:
            _request(service, **params)
        assert caught.value.path == "params.rollback_to"
    schema = param_schema(service)["rollback_to"]
    assert schema["default"] is None and schema["pattern"].startswith("^(previous|")
