"""The fencing tokens, against SQLite and a real PostgreSQL server: taken only by the run that holds the
environment's lock, each one newer than the last, across releases too, and never the same twice when the
steps of a run race for them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import Engine

from deployflow.ledger import engine_for
from deployflow.ledger.fences import NotHeld, newest_token, next_token
from deployflow.ledger.locks import EnvironmentLocks
from deployflow.ledger.schema import migrate

DAG = "release_shop"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request) -> Iterator[Engine]:
    engine = engine_for(request.getfixturevalue(f"{request.param}_url"))
    migrate(engine)
    yield engine
    engine.dispose()


def hold(engine: Engine, environment: str, run_id: str) -> None:
    assert EnvironmentLocks(engine).acquire("shop", environment, run_id, DAG, is_stale=lambda holder: True) is None


def test_each_step_of_the_holder_takes_a_newer_token(engine):
    hold(engine, "prod", "run-a")
    assert newest_token(engine, "shop", "prod") == 0
    assert [next_token(engine, "shop", "prod", "run-a") for _ in range(3)] == [1, 2, 3]
    assert newest_token(engine, "shop", "prod") == 3
    hold(engine, "staging", "run-a")
    assert next_token(engine, "shop", "staging", "run-a") == 1  # each environment its own generations


def test_a_run_that_does_not_hold_the_lock_takes_no_token(engine):
    hold(engine, "prod", "run-a")
    next_token(engine, "shop", "prod", "run-a")
    with pytest.raises(NotHeld, match="^run run-b does not hold the lock of shop in prod"):
        next_token(engine, "shop", "prod", "run-b")
    assert newest_token(engine, "shop", "prod") == 1


def test_tokens_keep_growing_across_releases(engine):
    """An orphan of an earlier release holds an older token than every step of a later one."""
    hold(engine, "prod", "run-a")
    assert next_token(engine, "shop", "prod", "run-a") == 1
    assert EnvironmentLocks(engine).release("shop", "prod", "run-a")
    with pytest.raises(NotHeld):
        next_token(engine, "shop", "prod", "run-a")  # let go: its steps take no more
    hold(engine, "prod", "run-b")
    assert next_token(engine, "shop", "prod", "run-b") == 2


def test_racing_steps_never_take_the_same_token(engine):
    hold(engine, "prod", "run-a")
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _: next_token(engine, "shop", "prod", "run-a"), range(20)))
    assert sorted(taken) == list(range(1, 21))
