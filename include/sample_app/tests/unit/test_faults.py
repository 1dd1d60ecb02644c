"""Fault decisions: error rate and slow fraction honoured, repeatable with a seed; deadlines on the app clock."""
from __future__ import annotations

import pytest

import app


def decisions(faults, n):
    return [faults.should_fail() for _ in range(n)]


def test_same_seed_same_decisions():
    first = decisions(app.Faults(0.5, seed=1234), 200)
    assert first == decisions(app.Faults(0.5, seed=1234), 200)
    assert first != decisions(app.Faults(0.5, seed=4321), 200)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.9])
def test_error_rate_is_honoured(rate):
    failures = sum(decisions(app.Faults(rate, seed=7), 5000))
    # Seeded, so not flaky; the band is wide enough for any sane generator.
    assert abs(failures / 5000 - rate) < 0.03


def test_rate_zero_never_fails_and_rate_one_always_fails():
    assert not any(decisions(app.Faults(0.0, seed=1), 1000))
    assert all(decisions(app.Faults(1.0, seed=1), 1000))


def test_app_uses_configured_seed():
    config = app.Config.from_env({"FAULT_ERROR_RATE": "0.3", "FAULT_SEED": "99"})
    expected = decisions(app.Faults(0.3, seed=99), 100)
    assert decisions(app.App(config).faults, 100) == expected


def slow_decisions(faults, n):
    return [faults.is_slow() for _ in range(n)]


@pytest.mark.parametrize("fraction", [0.02, 0.05, 0.5])
def test_slow_fraction_is_honoured(fraction):
    slow = sum(slow_decisions(app.Faults(0.0, seed=7, slow_fraction=fraction), 5000))
    assert abs(slow / 5000 - fraction) < 0.015


def test_slow_decisions_are_seeded_and_leave_the_errors_alone():
    plain, slowing = app.Faults(0.3, seed=5), app.Faults(0.3, seed=5, slow_fraction=0.5)
    mixed = [(slowing.is_slow(), slowing.should_fail()) for _ in range(300)]
    assert [failed for _, failed in mixed] == decisions(plain, 300)
    assert [slow for slow, _ in mixed] == slow_decisions(app.Faults(0.0, seed=5, slow_fraction=0.5), 300)
    assert [slow for slow, _ in mixed] != [failed for _, failed in mixed]


def test_slow_fraction_zero_is_never_slow_and_one_always():
    assert not any(slow_decisions(app.Faults(0.0, seed=1), 1000))
    assert all(slow_decisions(app.Faults(0.0, seed=1, slow_fraction=1.0), 1000))


def status(application, path="/"):
    return application.respond(path)[0]


def test_errors_start_after_the_delay_on_the_app_clock(clock):
    config = app.Config.from_env({"FAULT_ERROR_RATE": "1", "FAULT_ERRORS_AFTER_S": "20"})
    application = app.App(config, clock)
    assert application.errors_at == clock.now + 20
    assert [status(application) for _ in range(3)] == [200] * 3
    clock.now = application.errors_at - 0.001
    assert status(application) == 200
    clock.now = application.errors_at
    assert [status(application) for _ in range(3)] == [500] * 3
    assert [status(application, p) for p in ("/health", "/ready", "/live")] == [200, 200, 200]


def test_errors_after_the_delay_are_the_seeds_errors_from_the_start(clock):
    # No decision is drawn before the delay is over.
    config = app.Config.from_env({"FAULT_ERROR_RATE": "0.5", "FAULT_ERRORS_AFTER_S": "1", "FAULT_SEED": "11"})
    application = app.App(config, clock)
    assert [status(application) for _ in range(10)] == [200] * 10
    clock.advance(1)
    reference = app.Faults(0.5, seed=11)
    assert [status(application) for _ in range(50)] == [500 if reference.should_fail() else 200 for _ in range(50)]


def test_no_delay_means_errors_from_the_start(clock):
    application = app.App(app.Config.from_env({"FAULT_ERROR_RATE": "1"}), clock)
    assert application.errors_at is None
    assert status(application) == 500


def test_crash_deadline_is_read_from_the_app_clock(clock):
    application = app.App(app.Config.from_env({"FAULT_CRASH_AFTER_S": "30"}), clock)
    assert application.crash_at == clock.now + 30
    clock.now = application.crash_at - 0.001
    assert application.alive()
    clock.now = application.crash_at
    assert not application.alive()
    assert [status(application, p) for p in ("/health", "/ready", "/live")] == [503, 503, 503]
