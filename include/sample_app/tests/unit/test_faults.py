"""Fault decisions: error rate honoured, and repeatable with a seed."""
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
