from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from deployflow.client import AirflowClient, ApiError, failure_reason, run_seconds, timings
from deployflow.client.api import UnexpectedAnswer
from deployflow.client.runs import duration_seconds


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self._body = body
        self.content = b"x"
        self.text = str(body)

    def json(self) -> Any:
        return self._body


class FakeSession:
    """A fake requests.Session: answers from a table and records each call."""

    def __init__(self, answers: dict[tuple[str, str], FakeResponse]) -> None:
        self.answers = answers
        self.headers: dict[str, str] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append((method, url, kwargs))
        return self.answers[(method, url)]


def test_login_sends_the_token_with_later_calls():
    session = FakeSession({
        ("POST", "http://af/auth/token"): FakeResponse(201, {"access_token": "jwt"}),
        ("POST", "http://af/api/v2/dags/release_x/dagRuns"): FakeResponse(200, {"dag_run_id": "r1"}),
    })
    client = AirflowClient("http://af/", session)
    client.login("admin", "pw")
    assert session.calls[0][2]["json"] == {"username": "admin", "password": "pw"}
    assert session.headers["Authorization"] == "Bearer jwt"
    assert client.trigger("release_x", {"environment": "dev"})["dag_run_id"] == "r1"
    assert session.calls[1][2]["json"] == {"logical_date": None, "conf": {"environment": "dev"}}
    client.trigger("release_x", {"environment": "dev"}, run_after=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc))
    assert session.calls[2][2]["json"]["run_after"] == "2026-12-01T09:00:00+00:00"


def test_an_error_answer_carries_airflows_detail():
    session = FakeSession({("POST", "http://af/api/v2/dags/d/dagRuns"): FakeResponse(400, {"detail": "Invalid input for param environment"})})
    with pytest.raises(ApiError) as caught:
        AirflowClient("http://af", session).trigger("d", {})
    assert (caught.value.status, caught.value.detail) == (400, "Invalid input for param environment")


def test_failure_reason_is_the_last_exception_in_the_log():
    entries = [
        {"event": "starting"},
        {"event": "Task failed with exception",
         "error_detail": [{"exc_type": "AirflowFailException", "exc_value": "suite unit: FAILED - 1 failed"}]},
    ]
    assert failure_reason(entries) == "AirflowFailException: suite unit: FAILED - 1 failed"
    assert failure_reason([{"event": "fine"}]) is None


def test_timings_are_in_start_order_with_unstarted_tasks_last():
    tis = [
        {"task_id": "gate", "state": None, "start_date": None, "duration": None, "try_number": 0},
        {"task_id": "build", "state": "success", "start_date": "2026-01-01T00:00:05Z", "duration": 3.5, "try_number": 1},
        {"task_id": "resolve", "state": "success", "start_date": "2026-01-01T00:00:01Z", "duration": 0.1, "try_number": 1},
    ]
    assert [t.task_id for t in timings(tis)] == ["resolve", "build", "gate"]
    assert run_seconds({"start_date": "2026-01-01T00:00:01Z", "end_date": "2026-01-01T00:00:09.5Z"}) == 8.5
    assert run_seconds({"start_date": None}) is None


@pytest.mark.parametrize(("value", "seconds"), [
    ("PT35M", 2100.0), ("PT1H30M1S", 5401.0), ("P1DT2H", 93600.0), ("PT0.5S", 0.5), (5400, 5400.0), (None, None),
])
def test_a_duration_as_airflow_gives_it(value, seconds):
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["P", "PT", "1H", "PT1H30", "P1DT", True, [1]])
def test_a_duration_of_another_shape_is_an_unexpected_answer(value):
    with pytest.raises(UnexpectedAnswer, match="is not a duration"):
        duration_seconds(value)
