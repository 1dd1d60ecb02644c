"""``python -m deployflow.client freeze|unfreeze``: the Airflow Variable deployflow_freeze, checked by the parser resolve
uses before it is written; a table or JSON; each refusal one line naming the option, and its exit code."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from deployflow.client.freezes import DESCRIPTION
from deployflow.governance.freeze import parse_adhoc
from tests.unit.fake_airflow import FakeAirflow, run_client

VARIABLE = "/api/v2/variables/deployflow_freeze"
GET, PATCH, DELETE, POST = ("GET", VARIABLE), ("PATCH", VARIABLE), ("DELETE", VARIABLE), ("POST", "/api/v2/variables")
SET = {"name": "incident-4711", "reason": "database failover", "until": "2099-12-03T08:00:00Z", "environments": ["prod", "staging"]}


def stored(airflow: FakeAirflow, value: dict | None) -> None:
    """The Variable as Airflow keeps it (None: there is none), and what Airflow answers to writing it."""
    airflow.logs_in()
    if value is None:
        airflow.answer(GET, 404, {"detail": "The Variable with key: `deployflow_freeze` was not found"})
    else:
        airflow.answer(GET, 200, {"key": "deployflow_freeze", "value": json.dumps(value), "description": DESCRIPTION})
    for route in (POST, PATCH):
        airflow.answer(route, 200 if route == PATCH else 201, {"key": "deployflow_freeze"})
    airflow.answer(DELETE, 204, None)


def written(airflow: FakeAirflow, route: tuple[str, str]) -> dict:
    [sent] = airflow.requests(*route)
    assert sent.body["key"] == "deployflow_freeze" and sent.body["description"] == DESCRIPTION
    return json.loads(sent.body["value"])


def freeze(capsys, airflow, passwords, *args: str):
    return run_client(capsys, airflow, passwords, "freeze", *args)


def test_freeze_writes_the_variable_resolve_reads_and_prints_a_table(capsys, airflow, passwords):
    stored(airflow, None)
    ran = freeze(capsys, airflow, passwords, "--environment", "prod", "--environment", "staging", "--reason", "database failover",
                 "--until", "2099-12-03T09:00:00+01:00", "--name", "incident-4711")
    assert ran.code == 0
    assert ran.out == ("NAME           ENVIRONMENTS   REASON             UNTIL                      ACTION\n"
                       "incident-4711  prod, staging  database failover  2099-12-03T08:00:00+00:00  set\n")
    value = written(airflow, POST)
    assert value == {"name": "incident-4711", "reason": "database failover", "until": "2099-12-03T09:00:00+01:00",
                     "environments": ["prod", "staging"]}
    held = parse_adhoc(json.dumps(value), datetime(2026, 12, 6, tzinfo=timezone.utc))
    assert held is not None and held.active_at(datetime(2026, 12, 6, tzinfo=timezone.utc), "prod") is not None


def test_freeze_everywhere_until_unfrozen_with_json(capsys, airflow, passwords):
    stored(airflow, None)
    ran = freeze(capsys, airflow, passwords, "--all-environments", "--reason", "region outage", "--json")
    document = json.loads(ran.out)
    assert ran.code == 0 and document["name"].startswith("freeze-")
    assert document == {"variable": "deployflow_freeze", "action": "set", "name": document["name"], "reason": "region outage",
                        "until": None, "environments": None}
    assert written(airflow, POST) == {"name": document["name"], "reason": "region outage"}


def test_a_freeze_that_holds_is_replaced_only_when_asked(capsys, airflow, passwords):
    stored(airflow, SET)
    args = ("--environment", "dev", "--reason", "load test", "--name", "load-test")
    ran = freeze(capsys, airflow, passwords, *args)
    assert (ran.code, ran.err) == (2, "deployflow.client: freeze 'incident-4711' is set already (prod, staging); lift it with "
                                      "unfreeze, or give --replace")
    assert airflow.requests(*PATCH) == airflow.requests(*POST) == []
    ran = freeze(capsys, airflow, passwords, *args, "--replace")
    assert ran.code == 0 and ran.out.rstrip().endswith("replaced incident-4711")
    assert written(airflow, PATCH)["environments"] == ["dev"]


@pytest.mark.parametrize("old", [{**SET, "until": "2020-01-01T00:00:00Z"}, {"name": "no reason given", "until": 5}])
def test_a_freeze_that_holds_nothing_any_more_is_replaced(capsys, airflow, passwords, old):
    stored(airflow, old)
    ran = freeze(capsys, airflow, passwords, "--environment", "prod", "--reason", "again")
    assert ran.code == 0 and ran.out.rstrip().endswith("replaced a freeze that held nothing")
    assert written(airflow, PATCH)["reason"] == "again"


@pytest.mark.parametrize(("args", "says"), [
    (("--until", "2099-12-03T08:00:00"), "--until: '2099-12-03T08:00:00' has no time zone; write an ISO 8601 time with its zone"),
    (("--until", "tomorrow"), "--until: 'tomorrow' is not an ISO 8601 time; write an ISO 8601 time with its zone"),
    (("--until", "2020-01-01T00:00:00Z"), "--until: '2020-01-01T00:00:00Z' is past: the freeze would hold nothing"),
    (("--name", "incident 4711"), "--name: 'incident 4711' is not valid; use letters, digits, '-', '_' and '.'"),
    (("--environment", "qa"), "--environment: 'qa' is not valid; valid values are 'dev', 'staging', 'prod'"),
])
def test_a_bad_freeze_names_its_option_and_writes_nothing(capsys, airflow, passwords, args, says):
    stored(airflow, None)
    where = () if "--environment" in args else ("--environment", "prod")
    ran = freeze(capsys, airflow, passwords, *where, "--reason", "r", *args)
    assert ran.code == 2 and ran.err.startswith(f"deployflow.client: {says}"), ran.err
    assert airflow.sent == []  # checked before Airflow is asked anything


def test_a_reason_is_one_line_of_visible_text(capsys, airflow, passwords):
    ran = freeze(capsys, airflow, passwords, "--environment", "prod", "--reason", "fail\u202eover")
    assert ran.code == 2 and ran.err.startswith("deployflow.client: --reason: contains U+202E")


def test_freeze_needs_where_and_why(capsys, airflow, passwords):
    for args in (("--reason", "r"), ("--environment", "prod"), ("--environment", "prod", "--all-environments", "--reason", "r")):
        with pytest.raises(SystemExit) as exited:
            freeze(capsys, airflow, passwords, *args)
        assert exited.value.code == 2


def test_no_right_to_the_variable_exits_4(capsys, airflow, passwords):
    stored(airflow, None)
    airflow.answer(POST, 403, {"detail": "Forbidden"})
    ran = freeze(capsys, airflow, passwords, "--environment", "prod", "--reason", "r")
    assert (ran.code, ran.err) == (4, "deployflow.client: HTTP 403: Forbidden")


# ---- unfreeze ---------------------------------------------------------------------------------------------------

def unfreeze(capsys, airflow, passwords, *args: str):
    return run_client(capsys, airflow, passwords, "unfreeze", *args)


def test_unfreeze_deletes_the_variable_and_says_what_it_lifted(capsys, airflow, passwords):
    stored(airflow, SET)
    ran = unfreeze(capsys, airflow, passwords)
    assert ran.code == 0 and len(airflow.requests(*DELETE)) == 1
    assert ran.out == ("NAME           ENVIRONMENTS   REASON             UNTIL                      ACTION\n"
                       "incident-4711  prod, staging  database failover  2099-12-03T08:00:00+00:00  lifted\n")


def test_unfreeze_in_one_environment_keeps_the_others(capsys, airflow, passwords):
    stored(airflow, SET)
    ran = unfreeze(capsys, airflow, passwords, "--environment", "staging", "--json")
    assert ran.code == 0 and airflow.requests(*DELETE) == []
    assert written(airflow, PATCH) == {**SET, "environments": ["prod"]}
    assert json.loads(ran.out)["action"] == "lifted in staging"


def test_unfreezing_the_last_environment_deletes_it(capsys, airflow, passwords):
    stored(airflow, {**SET, "environments": ["prod"]})
    assert unfreeze(capsys, airflow, passwords, "--environment", "prod").code == 0
    assert len(airflow.requests(*DELETE)) == 1 and airflow.requests(*PATCH) == []


def test_a_freeze_of_every_environment_lifted_in_one_names_the_rest(capsys, airflow, passwords):
    stored(airflow, {"name": "outage", "reason": "region down"})
    assert unfreeze(capsys, airflow, passwords, "--environment", "dev").code == 0
    assert written(airflow, PATCH)["environments"] == ["staging", "prod"]


@pytest.mark.parametrize(("value", "args", "says"), [
    (None, (), "no freeze is set (there is no Airflow Variable deployflow_freeze)"),
    (SET, ("--environment", "dev"), "dev is not frozen by 'incident-4711' (prod, staging)"),
    ({**SET, "until": "2020-01-01T00:00:00Z"}, ("--environment", "prod"),
     "the Airflow Variable deployflow_freeze holds no environment now (ended, or not readable); unfreeze without "
     "--environment deletes it"),
])
def test_nothing_to_unfreeze_exits_8(capsys, airflow, passwords, value, args, says):
    stored(airflow, value)
    ran = unfreeze(capsys, airflow, passwords, *args)
    assert (ran.code, ran.err) == (8, f"deployflow.client: {says}")
    assert airflow.requests(*DELETE) == airflow.requests(*PATCH) == []


def test_an_ended_freeze_is_deleted_by_name(capsys, airflow, passwords):
    stored(airflow, {**SET, "until": "2020-01-01T00:00:00Z"})
    ran = unfreeze(capsys, airflow, passwords)
    assert ran.code == 0 and ran.out.splitlines()[1].split() == ["incident-4711", "-", "-", "-", "lifted", "(it", "held", "nothing)"]


def test_unfreeze_of_an_unknown_environment_is_bad_input(capsys, airflow, passwords):
    ran = unfreeze(capsys, airflow, passwords, "--environment", "qa")
    assert (ran.code, ran.err) == (2, "deployflow.client: --environment: 'qa' is not valid; valid values are 'dev', 'staging', 'prod'")
    assert airflow.sent == []
