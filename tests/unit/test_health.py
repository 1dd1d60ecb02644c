from __future__ import annotations

import pytest
import requests

from deployflow.health import HealthStreak, HealthVerdict, Probe, probe, probe_round, wait_healthy, watch
from tests.unit.fakes import FakeClock, FakeResponse, FakeSession

OK = Probe("http://a/ready", 200, "ok")
BAD = Probe("http://a/ready", 503, "down")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (FakeResponse(200, "ok\n"), Probe("http://a/ready", 200, "ok")),
        (FakeResponse(204, ""), Probe("http://a/ready", 204, "")),
        (FakeResponse(503, "  starting  "), Probe("http://a/ready", 503, "starting")),
        (FakeResponse(500, "x" * 300), Probe("http://a/ready", 500, "x" * 200)),
        (requests.ConnectionError("connection refused"),
         Probe("http://a/ready", None, "", "ConnectionError: connection refused")),
        (requests.Timeout("read timed out"), Probe("http://a/ready", None, "", "Timeout: read timed out")),
    ],
)
def test_probe_turns_every_answer_into_a_probe(answer, expected):
    session = FakeSession({"http://a/ready": answer})
    assert probe(session, "http://a/ready") == expected


@pytest.mark.parametrize(
    ("result", "ok", "text"),
    [
        (Probe("http://a/ready", 200, "ok"), True, "http://a/ready: HTTP 200 'ok'"),
        (Probe("http://a/ready", 299, ""), True, "http://a/ready: HTTP 299 ''"),
        (Probe("http://a/ready", 302, ""), False, "http://a/ready: HTTP 302 ''"),
        (Probe("http://a/ready", 503, "down"), False, "http://a/ready: HTTP 503 'down'"),
        (Probe("http://a/ready", None, "", "ConnectionError: refused"), False,
         "http://a/ready: no answer (ConnectionError: refused)"),
    ],
)
def test_probe_ok_and_describe(result, ok, text):
    assert result.ok is ok
    assert result.describe() == text


def test_probe_error_text_is_cut_short():
    session = FakeSession({"http://a/ready": requests.ConnectionError("e" * 500)})
    result = probe(session, "http://a/ready")
    assert result.error == ("ConnectionError: " + "e" * 500)[:200]


def test_probe_round_asks_every_path_of_every_instance():
    session = FakeSession({"http://b:2": 503})
    probes = probe_round(session, ["http://a:1/", "http://b:2"], ["/health", "/ready"])
    assert session.asked == ["http://a:1/health", "http://a:1/ready", "http://b:2/health", "http://b:2/ready"]
    assert [p.ok for p in probes] == [True, True, False, False]


def test_health_streak_starts_again_after_a_bad_round():
    streak = HealthStreak(consecutive=2)
    assert [streak.record(r) for r in ([OK], [OK, BAD], [OK], [OK])] == [False, False, False, True]
    assert (streak.rounds, streak.streak, streak.last_failures) == (4, 2, (BAD,))


def test_wait_healthy_needs_consecutive_good_rounds():
    clock = FakeClock()
    session = FakeSession({"http://a": [503, 200, 503, 200, 200, 200]})
    verdict = wait_healthy(session, ["http://a"], ["/ready"], consecutive=3, interval_s=1.0, timeout_s=30,
                           clock=clock.monotonic, sleep=clock.sleep)
    assert verdict == HealthVerdict(True, 6, 5.0, ())
    assert verdict.reason() == "healthy after 6 rounds in 5.0 s"
    assert clock.sleeps == [1.0] * 5


def test_wait_healthy_times_out_with_the_last_failures():
    clock = FakeClock()
    session = FakeSession({"http://a": 200, "http://b": [requests.ConnectionError("refused"), 503]})
    verdict = wait_healthy(session, ["http://a", "http://b"], ["/ready"], consecutive=1, interval_s=1.0, timeout_s=3,
                           clock=clock.monotonic, sleep=clock.sleep)
    assert (verdict.healthy, verdict.rounds, verdict.seconds) == (False, 4, 3.0)
    assert verdict.last_failures == (Probe("http://b/ready", 503, "down"),)
    assert verdict.reason() == "not healthy after 3.0 s (4 rounds); last failures: http://b/ready: HTTP 503 'down'"


def test_wait_healthy_reason_names_at_most_three_failures():
    clock = FakeClock()
    urls = [f"http://i{n}" for n in range(5)]
    verdict = wait_healthy(FakeSession(default=500), urls, ["/ready"], consecutive=1, interval_s=1.0, timeout_s=1,
                           clock=clock.monotonic, sleep=clock.sleep)
    assert len(verdict.last_failures) == 5
    assert verdict.reason().endswith(
        "last failures: http://i0/ready: HTTP 500 'down'; http://i1/ready: HTTP 500 'down'; http://i2/ready: HTTP 500 'down'")


@pytest.mark.parametrize(
    ("answers", "failures_allowed", "healthy", "rounds"),
    [
        ([200], 1, True, 5),
        ([200, 503, 200, 503, 200], 1, True, 5),  # single bad rounds are tolerated
        ([200, 503, 503], 1, False, 3),  # two in a row are not
        ([503, 503, 503, 200], 2, False, 3),
        ([503, 503, 200, 503, 503], 2, True, 5),
        ([200, 503], 0, False, 2),
    ],
)
def test_watch_fails_after_more_bad_rounds_in_a_row_than_allowed(answers, failures_allowed, healthy, rounds):
    clock = FakeClock()
    session = FakeSession({"http://a": list(answers)})
    verdict = watch(session, ["http://a"], ["/live"], seconds=5, interval_s=1.0, failures_allowed=failures_allowed,
                    clock=clock.monotonic, sleep=clock.sleep)
    assert (verdict.healthy, verdict.rounds) == (healthy, rounds)
    assert verdict.last_failures == (() if healthy else (Probe("http://a/live", 503, "down"),))


def test_watch_stops_probing_when_its_time_is_up():
    clock = FakeClock()
    session = FakeSession()
    verdict = watch(session, ["http://a"], ["/health", "/live"], seconds=2.5, interval_s=0.5,
                    clock=clock.monotonic, sleep=clock.sleep)
    assert (verdict.healthy, verdict.rounds, verdict.seconds) == (True, 5, 2.5)
    assert len(session.asked) == 10
