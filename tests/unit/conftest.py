"""Fixtures of the client's tests: a fake Airflow API (tests/unit/fake_airflow.py) and a password file for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_airflow import PASSWORD, FakeAirflow


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    fake = FakeAirflow()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({"admin": PASSWORD}))
    return path
