"""Release notifications, the core: channels, events, their sentence and payload, and the catalog's list."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from deployflow.catalog.notifications import parse_channels
from deployflow.errors import ConfigError
from deployflow.governance.notifications import EVENTS, KINDS, MAX_TEXT, Channel, ReleaseEvent, channels_for, event_for
from deployflow.outcomes import Outcome

AT = "2025-06-01T12:00:00Z"
REASON = "canary analysis failed at interval 2: error_rate 12 % vs 0 %"
ROLLED_BACK = ReleaseEvent(
    event="rolled_back", service="sample-app", environment="prod", version="3f2a1b0c9d8e", previous="1a2b3c4d5e6f",
    strategy="blue-green", run_id="manual__2025-06-01T11:58:00+00:00", requested_by="alice", reason=REASON,
    url="http://localhost:8080/dags/release_sample-app/runs/manual__2025-06-01T11:58:00+00:00", at=AT,
)
ALL_EVENTS_VALID = ("valid values are 'started', 'awaiting_approval', 'promoted', 'rolled_back', 'rejected', 'failed', "
                    "'already_live'")


def event(**changes) -> ReleaseEvent:
    return dataclasses.replace(ROLLED_BACK, **changes)


@pytest.mark.parametrize("changes,text", [
    ({}, "sample-app 3f2a1b0c9d8e rolled back in prod (blue-green) to 1a2b3c4d5e6f: " + REASON),
    ({"previous": None}, "sample-app 3f2a1b0c9d8e rolled back in prod (blue-green): " + REASON),
    ({"event": "awaiting_approval", "reason": ""}, "sample-app 3f2a1b0c9d8e is awaiting approval in prod"),
    ({"event": "promoted", "reason": ""}, "sample-app 3f2a1b0c9d8e promoted in prod"),
    ({"event": "promoted", "reason": "looks good"}, "sample-app 3f2a1b0c9d8e promoted in prod: looks good"),
    ({"event": "started", "reason": ""}, "sample-app 3f2a1b0c9d8e started in prod (blue-green), requested by alice"),
    ({"event": "rejected", "reason": "not during the freeze"}, "sample-app 3f2a1b0c9d8e rejected for prod: not during the freeze"),
    ({"event": "failed", "version": None, "reason": "build failed: checkout: ref 'mian' is not a branch"},
     "sample-app failed in prod (blue-green): build failed: checkout: ref 'mian' is not a branch"),
    ({"event": "failed", "reason": "tests failed:\n  unit: 3 of 120 failed\n"},
     "sample-app 3f2a1b0c9d8e failed in prod (blue-green): tests failed: unit: 3 of 120 failed"),
])
def test_each_event_reads_as_one_plain_sentence(changes, text):
    assert event(**changes).text() == text


def test_a_long_reason_is_cut_in_the_sentence_and_kept_whole_in_the_payload():
    long = event(reason="x" * 2000)
    assert len(long.text()) == MAX_TEXT and long.text().endswith("…")
    assert long.payload()["reason"] == "x" * 2000


def test_the_payload_is_every_field_the_sentence_and_the_schema():
    assert ROLLED_BACK.payload() == {
        "schema": "deployflow.release-event/v1",
        "event": "rolled_back",
        "service": "sample-app",
        "environment": "prod",
        "version": "3f2a1b0c9d8e",
        "previous": "1a2b3c4d5e6f",
        "strategy": "blue-green",
        "run_id": "manual__2025-06-01T11:58:00+00:00",
        "requested_by": "alice",
        "reason": REASON,
        "url": "http://localhost:8080/dags/release_sample-app/runs/manual__2025-06-01T11:58:00+00:00",
        "at": AT,
        "text": "sample-app 3f2a1b0c9d8e rolled back in prod (blue-green) to 1a2b3c4d5e6f: " + REASON,
    }
    assert set(ROLLED_BACK.payload()) == {f.name for f in dataclasses.fields(ReleaseEvent)} | {"schema", "text"}


def test_the_details_are_one_field_a_line_with_the_run_url():
    lines = ROLLED_BACK.details().splitlines()
    assert lines[0] == "service: sample-app" and "reason: " + REASON in lines
    assert lines[-1] == "url: " + ROLLED_BACK.url
    assert "version: none" in event(version=None).details().splitlines()


def test_an_event_is_stamped_now_in_utc_by_default():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    fresh = ReleaseEvent("started", "sample-app", "dev", "3f2a1b0c9d8e", None, "rolling", "r", "bob")
    assert fresh.at.endswith("Z") and before <= datetime.fromisoformat(fresh.at) <= datetime.now(timezone.utc)


@pytest.mark.parametrize("changes,path,says", [
    ({"event": "deployed"}, "event", "'deployed' is not valid; " + ALL_EVENTS_VALID),
    ({"at": "2025-06-01 12:00"}, "at", "must be an ISO 8601 time in UTC"),
    ({"at": "2025-06-01T14:00:00+02:00"}, "at", "must be an ISO 8601 time in UTC"),
    ({"version": 3}, "version", "must be a string or None"),
    ({"reason": None}, "reason", "must be a string"),
])
def test_an_event_refuses_a_bad_field(changes, path, says):
    with pytest.raises(ConfigError) as caught:
        event(**changes)
    assert caught.value.path == path and says in caught.value.message


@pytest.mark.parametrize("kwargs,path,says", [
    ({"kind": "teams", "connection": "c"}, "kind", "'teams' is not valid; valid values are 'webhook', 'slack', 'email'"),
    ({"kind": "webhook", "connection": ""}, "connection", "must be an Airflow connection id"),
    ({"kind": "webhook", "connection": "c", "events": ()}, "events", "must name at least one event"),
    ({"kind": "webhook", "connection": "c", "events": "failed"}, "events", "must be a list of events; valid values are 'started'"),
    ({"kind": "webhook", "connection": "c", "events": ("failed", "done")}, "events[1]", "'done' is not valid; " + ALL_EVENTS_VALID),
    ({"kind": "webhook", "connection": "c", "events": ("failed", "failed")}, "events[1]", "already listed at events[0]"),
    ({"kind": "slack", "connection": "c", "to": ("a@example.com",)}, "to", "is for e-mail only"),
    ({"kind": "email", "connection": "c"}, "to", "is required for an email channel"),
    ({"kind": "email", "connection": "c", "to": ("a@example.com", "b@example.com, c@example.com")}, "to[1]",
     "must be one e-mail address"),
    ({"kind": "email", "connection": "c", "to": ("a@example.com\nBcc: x@evil.example",)}, "to[0]", "must be one e-mail address"),
])
def test_a_channel_refuses_a_bad_field(kwargs, path, says):
    with pytest.raises(ConfigError) as caught:
        Channel(**kwargs)
    assert caught.value.path == path and says in caught.value.message


def test_a_channel_hears_every_event_unless_told_otherwise():
    assert Channel("slack", "slack_releases").events == EVENTS
    assert Channel("webhook", "hook", ["failed"]).events == ("failed",)  # a list is kept as a tuple: frozen, hashable
    assert KINDS == ("webhook", "slack", "email")


CHANNELS = (
    Channel("webhook", "deployflow_webhook", ("rolled_back", "failed")),
    Channel("slack", "slack_releases"),
    Channel("email", "smtp_default", ("awaiting_approval", "rolled_back", "failed"), ("oncall@example.com",)),
)


@pytest.mark.parametrize("name,kinds", [
    ("started", ("slack",)),
    ("awaiting_approval", ("slack", "email")),
    ("promoted", ("slack",)),
    ("rolled_back", ("webhook", "slack", "email")),
    ("rejected", ("slack",)),
    ("failed", ("webhook", "slack", "email")),
])
def test_channels_for_an_event_are_those_subscribed_in_catalog_order(name, kinds):
    assert tuple(c.kind for c in channels_for(name, CHANNELS)) == kinds


def test_channels_for_an_unknown_event_is_refused_not_silent():
    with pytest.raises(ConfigError, match=ALL_EVENTS_VALID):
        channels_for("rollback", CHANNELS)
    assert channels_for("failed", ()) == ()


DOC = [
    {"kind": "webhook", "connection": "deployflow_webhook", "events": ["rolled_back", "failed"]},
    {"kind": "slack", "connection": "slack_releases"},
    {"kind": "email", "connection": "smtp_default", "to": ["oncall@example.com"], "events": ["awaiting_approval", "rolled_back", "failed"]},
]
AT_PROD = "environments.prod.notifications"


def test_the_catalog_list_parses_into_channels():
    assert parse_channels(DOC, AT_PROD) == CHANNELS
    assert parse_channels(None, AT_PROD) == ()
    assert parse_channels([], AT_PROD) == ()


@pytest.mark.parametrize("raw,path,says", [
    ({"kind": "slack"}, AT_PROD, "must be a list of channels, each a mapping of kind, connection, events, to"),
    (["slack"], AT_PROD + "[0]", "must be a mapping"),
    ([{"kind": "slack", "connection": "s", "channel": "#releases"}], AT_PROD + "[0].channel",
     "unknown field; valid fields are kind, connection, events, to"),
    ([{"connection": "s"}], AT_PROD + "[0].kind", "None is not valid; valid values are 'webhook', 'slack', 'email'"),
    ([DOC[0], {"kind": "Slack", "connection": "s"}], AT_PROD + "[1].kind", "'Slack' is not valid; valid values are 'webhook', 'slack'"),
    ([{"kind": "slack"}], AT_PROD + "[0].connection", "is required"),
    ([{"kind": "slack", "connection": "https://hooks.slack.com/services/T0/B0/X"}], AT_PROD + "[0].connection",
     "must be an Airflow connection id"),
    ([DOC[0], {"kind": "slack", "connection": "s", "events": ["rollback"]}], AT_PROD + "[1].events[0]",
     "'rollback' is not valid; " + ALL_EVENTS_VALID),
    ([{"kind": "slack", "connection": "s", "events": "failed"}], AT_PROD + "[0].events", "must be a list, got 'failed'; " + ALL_EVENTS_VALID),
    ([{"kind": "slack", "connection": "s", "events": []}], AT_PROD + "[0].events", "must name at least one event"),
    ([{"kind": "email", "connection": "smtp_default"}], AT_PROD + "[0].to", "is required for an email channel"),
    ([{"kind": "email", "connection": "smtp_default", "to": "oncall@example.com"}], AT_PROD + "[0].to",
     "must be a list, got 'oncall@example.com'; a list of e-mail addresses"),
    ([{"kind": "email", "connection": "smtp_default", "to": ["oncall"]}], AT_PROD + "[0].to[0]",
     "'oncall' is not valid; must be one e-mail address such as oncall@example.com"),
    ([{"kind": "webhook", "connection": "w", "to": ["oncall@example.com"]}], AT_PROD + "[0].to", "is for e-mail only"),
    ([DOC[1], DOC[0], DOC[1]], AT_PROD + "[2]", f"repeats {AT_PROD}[0] (slack slack_releases)"),
])
def test_the_catalog_list_refuses_a_bad_channel_naming_its_field(raw, path, says):
    with pytest.raises(ConfigError) as caught:
        parse_channels(raw, AT_PROD)
    assert caught.value.path == path
    assert says in caught.value.message


@pytest.mark.parametrize(("outcome", "told"), [
    (Outcome.PROMOTED, "promoted"), (Outcome.ROLLED_BACK, "rolled_back"), (Outcome.REJECTED, "rejected"),
    (Outcome.REFUSED, "failed"), (Outcome.FAILED_BEFORE_DEPLOY, "failed"), (Outcome.FAILED, "failed"),
    (Outcome.ALREADY_LIVE, "already_live"),
])
def test_each_outcome_is_told_as_one_event(outcome, told):
    assert event_for(outcome) == told and told in EVENTS


def test_a_release_of_what_is_live_is_told_as_nothing_released():
    event = ReleaseEvent(event="already_live", service="shop", environment="dev", version="0123456789ab", previous=None,
                         strategy="rolling", run_id="manual__1", requested_by="alice", at="2026-12-06T20:00:00Z")
    assert event.text() == "shop 0123456789ab is already live in dev: nothing released"


def test_every_outcome_has_an_event():
    assert all(event_for(outcome) in EVENTS for outcome in Outcome)
