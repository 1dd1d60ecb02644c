"""Freeze windows and the freeze variable: on and off at every boundary (a start inclusive, an end exclusive),
across midnight, the week end and the year end, on Europe/Paris's DST days, and every refusal by its path."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from deployflow.catalog.freeze import parse_windows
from deployflow.errors import ConfigError
from deployflow.governance.freeze import AdHocFreeze, FreezeWindow, frozen, parse_adhoc

WEEKEND = FreezeWindow("weekend", "0 18 * * 5", "0 8 * * 1", "Europe/Paris")
NIGHT = FreezeWindow("night", "0 22 * * *", "0 6 * * *")
YEAR_END = FreezeWindow("year-end", "0 0 20 12 *", "0 0 3 1 *", "UTC")
EARLY = FreezeWindow("early", "0 1 * * *", "0 4 * * *", "Europe/Paris")  # across both of 2026's clock changes
SKIPPED_START = FreezeWindow("skipped-start", "30 2 * * *", "0 5 * * *", "Europe/Paris")  # 02:30 is skipped on 29 March
SKIPPED_END = FreezeWindow("skipped-end", "0 1 * * *", "30 2 * * *", "Europe/Paris")
REPEATED_START = FreezeWindow("repeated-start", "50 2 * * *", "0 4 * * *", "Europe/Paris")  # 02:50 twice on 25 October
REPEATED_END = FreezeWindow("repeated-end", "0 1 * * *", "30 2 * * *", "Europe/Paris")
BUT_MONDAYS = FreezeWindow("but-mondays", "0 0 * * *", "0 0 * * 1")  # on Monday 00:00 it starts and ends: the end wins


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(("window", "now", "ends_at"), [
    # the weekend in winter (CET, +01:00): Friday 18:00 to Monday 08:00, Paris time
    (WEEKEND, "2026-12-04 16:59:59", None),
    (WEEKEND, "2026-12-04 17:00:00", "2026-12-07 07:00"),  # the start itself: on
    (WEEKEND, "2026-12-06 12:00:00", "2026-12-07 07:00"),  # Sunday, across the cron week's end
    (WEEKEND, "2026-12-07 06:59:59", "2026-12-07 07:00"),
    (WEEKEND, "2026-12-07 07:00:00", None),  # the end itself: off
    (WEEKEND, "2026-12-09 12:00:00", None),
    # the weekend of the spring-forward (Friday CET, Monday CEST) and of the fall-back (Friday CEST, Monday CET)
    (WEEKEND, "2026-03-27 16:59:59", None),
    (WEEKEND, "2026-03-27 17:00:00", "2026-03-30 06:00"),
    (WEEKEND, "2026-03-30 05:59:59", "2026-03-30 06:00"),
    (WEEKEND, "2026-03-30 06:00:00", None),
    (WEEKEND, "2026-10-23 15:59:59", None),
    (WEEKEND, "2026-10-23 16:00:00", "2026-10-26 07:00"),
    (WEEKEND, "2026-10-26 06:59:59", "2026-10-26 07:00"),
    (WEEKEND, "2026-10-26 07:00:00", None),
    # across midnight, UTC
    (NIGHT, "2026-12-01 21:59:59", None),
    (NIGHT, "2026-12-01 22:00:00", "2026-12-02 06:00"),
    (NIGHT, "2026-12-02 05:59:59", "2026-12-02 06:00"),
    (NIGHT, "2026-12-02 06:00:00", None),
    # across the year's end
    (YEAR_END, "2026-12-19 23:59:59", None),
    (YEAR_END, "2026-12-20 00:00:00", "2027-01-03 00:00"),
    (YEAR_END, "2027-01-02 23:59:59", "2027-01-03 00:00"),
    (YEAR_END, "2027-01-03 00:00:00", None),
    # 01:00 to 04:00 Paris time: 2 hours on the spring-forward day, 4 on the fall-back day
    (EARLY, "2026-03-28 23:59:59", None),
    (EARLY, "2026-03-29 00:00:00", "2026-03-29 02:00"),  # 01:00 CET
    (EARLY, "2026-03-29 01:59:59", "2026-03-29 02:00"),
    (EARLY, "2026-03-29 02:00:00", None),  # 04:00 CEST
    (EARLY, "2026-10-24 22:59:59", None),
    (EARLY, "2026-10-24 23:00:00", "2026-10-25 03:00"),  # 01:00 CEST
    (EARLY, "2026-10-25 02:59:59", "2026-10-25 03:00"),
    (EARLY, "2026-10-25 03:00:00", None),  # 04:00 CET
    # a start or end in the skipped hour takes effect when the clock jumps (02:00 CET to 03:00 CEST, 01:00 UTC)
    (SKIPPED_START, "2026-03-29 00:59:59", None),
    (SKIPPED_START, "2026-03-29 01:00:00", "2026-03-29 03:00"),
    (SKIPPED_START, "2026-03-30 00:29:59", None),  # the next day, 02:30 CEST again
    (SKIPPED_START, "2026-03-30 00:30:00", "2026-03-30 03:00"),
    (SKIPPED_END, "2026-03-29 00:59:59", "2026-03-29 01:00"),
    (SKIPPED_END, "2026-03-29 01:00:00", None),
    # a start or end in the repeated hour takes effect the first time the clock shows it (CEST)
    (REPEATED_START, "2026-10-25 00:49:59", None),
    (REPEATED_START, "2026-10-25 00:50:00", "2026-10-25 03:00"),  # 02:50 CEST
    (REPEATED_START, "2026-10-25 01:10:00", "2026-10-25 03:00"),  # 02:10 CET: the clock is back before 02:50
    (REPEATED_START, "2026-10-25 01:50:00", "2026-10-25 03:00"),  # 02:50 CET: not a second start
    (REPEATED_END, "2026-10-25 00:29:59", "2026-10-25 00:30"),
    (REPEATED_END, "2026-10-25 00:30:00", None),  # 02:30 CEST
    (REPEATED_END, "2026-10-25 01:40:00", None),  # 02:40 CET: still off
    # a start and an end at one moment: off
    (BUT_MONDAYS, "2026-12-06 23:59:59", "2026-12-07 00:00"),
    (BUT_MONDAYS, "2026-12-07 00:00:00", None),
    (BUT_MONDAYS, "2026-12-07 23:59:59", None),
    (BUT_MONDAYS, "2026-12-08 00:00:00", "2026-12-14 00:00"),
])
def test_a_window_is_on_from_its_start_to_its_next_end(window: FreezeWindow, now: str, ends_at: str | None):
    found = window.active_at(utc(now))
    assert (found and found.ends_at.astimezone(timezone.utc)) == (ends_at and utc(ends_at))
    if found is not None:
        assert (found.name, found.source) == (window.name, "window")
        assert found.started_at <= utc(now) < found.ends_at


@pytest.mark.parametrize(("window", "now", "started_at"), [
    (WEEKEND, "2026-12-06 12:00:00", "2026-12-04T18:00:00+01:00"),
    (WEEKEND, "2026-10-24 12:00:00", "2026-10-23T18:00:00+02:00"),
    (SKIPPED_START, "2026-03-29 02:00:00", "2026-03-29T03:00:00+02:00"),
    (REPEATED_START, "2026-10-25 01:10:00", "2026-10-25T02:50:00+02:00"),
])
def test_a_window_started_at_its_latest_start_told_in_its_zone(window: FreezeWindow, now: str, started_at: str):
    found = window.active_at(utc(now))
    assert found is not None and found.started_at.isoformat() == started_at
    assert found.started_at.tzinfo is not None and str(found.started_at.tzinfo) == window.timezone


@pytest.mark.parametrize(("window", "now", "message"), [
    (WEEKEND, "2026-12-05 10:00:00",
     "prod is frozen by window 'weekend' (0 18 * * 5 to 0 8 * * 1, Europe/Paris) until 2026-12-07 08:00 CET (07:00 UTC)"),
    (YEAR_END, "2026-12-24 10:00:00",
     "prod is frozen by window 'year-end' (0 0 20 12 * to 0 0 3 1 *, UTC) until 2027-01-03 00:00 UTC"),
    (FreezeWindow("tokyo-morning", "0 6 * * *", "0 8 * * *", "Asia/Tokyo"), "2026-12-04 21:30:00",
     "prod is frozen by window 'tokyo-morning' (0 6 * * * to 0 8 * * *, Asia/Tokyo) until 2026-12-05 08:00 JST (2026-12-04 23:00 UTC)"),
])
def test_a_window_says_which_it_is_and_until_when(window: FreezeWindow, now: str, message: str):
    assert window.active_at(utc(now)).message("prod") == message


def test_a_window_is_judged_at_an_aware_time_only():
    with pytest.raises(ValueError, match="has no time zone"):
        WEEKEND.active_at(datetime(2026, 12, 5, 10, 0))


INCIDENT = '{"name": "incident-4711", "reason": "database failover", "until": "2026-12-03T08:00:00Z", "environments": ["prod"]}'


def test_the_freeze_variable_is_read_whole():
    freeze = parse_adhoc(INCIDENT, utc("2026-12-01 09:00:00"))
    assert freeze == AdHocFreeze("incident-4711", "database failover", utc("2026-12-03 08:00:00"), ("prod",))


@pytest.mark.parametrize(("text", "now", "environment", "ends_at"), [
    (INCIDENT, "2026-12-01 09:00:00", "prod", "2026-12-03 08:00:00"),
    (INCIDENT, "2026-12-01 09:00:00", "dev", None),  # not one of its environments
    (INCIDENT, "2026-12-03 07:59:59", "prod", "2026-12-03 08:00:00"),
    ('{"name": "incident-4711", "until": "2026-12-03T09:00:00+01:00"}', "2026-12-01 09:00:00", "staging", "2026-12-03 08:00:00"),
])
def test_the_freeze_variable_holds_its_environments_until_its_end(text: str, now: str, environment: str, ends_at: str | None):
    found = parse_adhoc(text, utc(now)).active_at(utc(now), environment)
    assert (found and found.ends_at) == (ends_at and utc(ends_at))
    if found is not None:
        assert (found.name, found.source, found.started_at) == ("incident-4711", "freeze variable", None)


def test_an_expired_freeze_variable_holds_nothing():
    assert parse_adhoc(INCIDENT, utc("2026-12-03 08:00:00")) is None  # its end is exclusive
    freeze = parse_adhoc(INCIDENT, utc("2026-12-01 09:00:00"))
    assert freeze.active_at(utc("2026-12-03 08:00:00"), "prod") is None
    assert freeze.active_at(utc("2026-12-10 00:00:00"), "prod") is None


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_no_freeze_variable_is_no_freeze(text: str | None):
    assert parse_adhoc(text, utc("2026-12-01 09:00:00")) is None


def test_a_freeze_variable_without_until_holds_every_environment_until_it_is_deleted():
    freeze = parse_adhoc('{"name": "incident-4711"}', utc("2026-12-01 09:00:00"))
    assert freeze == AdHocFreeze("incident-4711")
    found = freeze.active_at(utc("2030-01-01 00:00:00"), "dev")
    assert found.ends_at is None
    assert found.message("dev") == "dev is frozen by freeze variable 'incident-4711' until the Airflow Variable deployflow_freeze is deleted"


def test_the_freeze_variable_says_why_and_how_to_lift_it():
    found = parse_adhoc(INCIDENT, utc("2026-12-01 09:00:00")).active_at(utc("2026-12-01 09:00:00"), "prod")
    assert found.message("prod") == ("prod is frozen by freeze variable 'incident-4711' (database failover) until 2026-12-03 08:00 UTC; "
                                     "deleting the Airflow Variable deployflow_freeze lifts it sooner")


@pytest.mark.parametrize(("text", "path", "says"), [
    ('{"name": "incident-4711",', "deployflow_freeze", "is not valid JSON (Expecting property name enclosed in double quotes"),
    ("incident-4711", "deployflow_freeze", "is not valid JSON"),
    ('["prod"]', "deployflow_freeze", "must be a JSON object, got list"),
    ('{"name": "i", "enviroments": ["prod"]}', "deployflow_freeze.enviroments", "valid fields are name, reason, until, environments"),
    ('{"reason": "db"}', "deployflow_freeze.name", "is required"),
    ('{"name": "incident 4711"}', "deployflow_freeze.name", "use letters, digits"),
    ('{"name": "i", "reason": 4711}', "deployflow_freeze.reason", "must be a string"),
    ('{"name": "i", "until": 1764748800}', "deployflow_freeze.until", "write an ISO 8601 time with its zone"),
    ('{"name": "i", "until": "tomorrow"}', "deployflow_freeze.until", "'tomorrow' is not an ISO 8601 time"),
    ('{"name": "i", "until": "2026-12-03T08:00:00"}', "deployflow_freeze.until", "'2026-12-03T08:00:00' has no time zone"),
    ('{"name": "i", "until": "2026-12-03"}', "deployflow_freeze.until", "has no time zone"),
    ('{"name": "i", "environments": "prod"}', "deployflow_freeze.environments", "must be a non-empty list drawn from dev, staging, prod"),
    ('{"name": "i", "environments": []}', "deployflow_freeze.environments", "omit it to freeze them all"),
    ('{"name": "i", "environments": ["prod", "production"]}', "deployflow_freeze.environments[1]",
     "'production' is not valid; valid values are 'dev', 'staging', 'prod'"),
])
def test_a_bad_freeze_variable_is_refused_by_its_field(text: str, path: str, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_adhoc(text, utc("2026-12-01 09:00:00"))
    assert caught.value.path == path
    assert says in caught.value.message


@pytest.mark.parametrize(("adhoc", "windows", "now", "environment", "expected"), [
    (INCIDENT, (WEEKEND,), "2026-12-01 22:00:00", "prod", ("incident-4711", "freeze variable")),  # the variable first
    (INCIDENT, (NIGHT, WEEKEND), "2026-12-01 22:00:00", "dev", ("night", "window")),  # it holds prod only
    (None, (NIGHT, WEEKEND), "2026-12-05 03:00:00", "prod", ("night", "window")),  # both on: the first
    (None, (NIGHT, WEEKEND), "2026-12-05 12:00:00", "prod", ("weekend", "window")),
    (None, (NIGHT, WEEKEND), "2026-12-02 12:00:00", "prod", None),
    (None, (), "2026-12-02 12:00:00", "prod", None),
])
def test_frozen_is_the_first_freeze_that_holds(adhoc: str | None, windows: tuple[FreezeWindow, ...], now: str, environment: str,
                                               expected: tuple[str, str] | None):
    found = frozen(windows, parse_adhoc(adhoc, utc(now)), environment, utc(now))
    assert (found and (found.name, found.source)) == expected


def test_the_catalog_lists_its_windows_in_order():
    raw = [{"name": "weekend", "start": "0 18 * * 5", "end": "0 8 * * 1", "timezone": "Europe/Paris"},
           {"name": "year-end", "start": "0 0 20 12 *", "end": "0 0 3 1 *"}]
    assert parse_windows(raw, "environments.prod.freeze") == (WEEKEND, YEAR_END)
    assert parse_windows(None, "environments.prod.freeze") == ()
    assert parse_windows([], "environments.prod.freeze") == ()


GOOD = {"name": "weekend", "start": "0 18 * * 5", "end": "0 8 * * 1", "timezone": "Europe/Paris"}
AT = "environments.prod.freeze"


@pytest.mark.parametrize(("raw", "path", "says"), [
    ({"name": "weekend"}, AT, "must be a list of windows, such as"),
    (["weekend"], AT + "[0]", "must be a mapping, got str"),
    ([{**GOOD, "zone": "UTC"}], AT + "[0].zone", "valid fields are name, start, end, timezone"),
    ([{**GOOD, "name": None}], AT + "[0].name", "is required"),
    ([{k: v for k, v in GOOD.items() if k != "start"}], AT + "[0].start", "is required"),
    ([{k: v for k, v in GOOD.items() if k != "end"}], AT + "[0].end", "is required"),
    ([{**GOOD, "name": "the weekend"}], AT + "[0].name", "'the weekend' is not valid; use letters, digits"),
    ([{**GOOD, "name": 7}], AT + "[0].name", "must be a string"),
    ([{**GOOD, "start": "0 18 * * 8"}], AT + "[0].start", "'0 18 * * 8' is not a valid cron expression"),
    ([{**GOOD, "start": "0 0 18 * * 5"}], AT + "[0].start", "five fields: minute hour day-of-month"),
    ([{**GOOD, "end": "H 8 * * 1"}], AT + "[0].end", "is not a valid cron expression"),
    ([{**GOOD, "end": "0 0 30 2 *"}], AT + "[0].end", "'0 0 30 2 *' is not a valid cron expression"),
    ([{**GOOD, "end": "0  18 * * 5"}], AT + "[0].end", "is the start too: the window would never be on"),
    ([{**GOOD, "timezone": "Europe/Pari"}], AT + "[0].timezone",
     "'Europe/Pari' is not a known time zone (did you mean 'Europe/Paris'"),
    ([{**GOOD, "timezone": "CEST"}], AT + "[0].timezone", "'CEST' is not a known time zone"),
    ([{**GOOD, "timezone": "../etc/passwd"}], AT + "[0].timezone", "use an IANA time zone name such as UTC"),
    ([{**GOOD, "timezone": 1}], AT + "[0].timezone", "must be a string"),
    ([GOOD, {**GOOD, "timezone": "UTC"}], AT + "[1].name",
     "'weekend' is already the name of environments.prod.freeze[0]"),
])
def test_a_bad_window_is_refused_by_its_path(raw: object, path: str, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_windows(raw, AT)
    assert caught.value.path == path
    assert says in caught.value.message


@pytest.mark.parametrize(("fields", "path"), [
    ({"start": "0 25 * * *"}, "start"),
    ({"end": "soon"}, "end"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"name": ""}, "name"),
])
def test_a_window_built_in_code_validates_itself(fields: dict[str, str], path: str):
    with pytest.raises(ConfigError) as caught:
        FreezeWindow(**{**GOOD, **fields})
    assert caught.value.path == path
