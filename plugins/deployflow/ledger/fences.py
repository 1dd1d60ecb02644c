"""Fencing tokens: at most one deployer step of an environment writes at a time, whatever dies.

The environment's lock (``locks.py``) lets one release at a time in; within it, each deployer step that
writes (prepare, shift, promote, rollback) takes the environment's next generation, a number that only
grows, and the deployer checks before each write that no newer step took one since
(``deployflow.rollout.fence``). A try killed mid-step may leave its deployer running; its retry takes a
newer token, and from then on every write of the old deployer is refused.

The generations live beside the lock, one row per (service, environment) that is never deleted: a lock is
let go at the end of every release, but a generation must keep growing across releases too (an orphan of
an earlier release holds an older token than any step of a later one).

Taking one is a single statement, atomic on SQLite and PostgreSQL: an ``INSERT ... SELECT`` from the lock's
row of this run (no row: the run does not hold the lock, nothing is taken) ``ON CONFLICT`` adding one,
``RETURNING`` the new generation. The table is the ledger's schema migration v7 (``schema.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from deployflow.ledger.locks import locks, locks_metadata

fences = sa.Table(
    "deployflow_fences", locks_metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(32), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
)


class NotHeld(Exception):
    """The run does not hold the environment's lock: it may not take a step's token."""


def create_fences_table(conn: Connection) -> None:
    """Create ``deployflow_fences`` (if it is not there): the ledger's migration v7."""
    fences.create(conn, checkfirst=True)


def next_token(engine: Engine, service: str, environment: str, run_id: str) -> int:
    """The environment's next generation, taken for a step of ``run_id``, which must hold its lock.

    :raises NotHeld: the run does not hold the lock (released, or taken over by another run)."""
    holder = sa.select(locks.c.service, locks.c.environment, sa.literal(1)).where(
        locks.c.service == service, locks.c.environment == environment, locks.c.run_id == run_id)
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(fences)
    take = insert.from_select(["service", "environment", "generation"], holder).on_conflict_do_update(
        index_elements=[fences.c.service, fences.c.environment], set_={"generation": fences.c.generation + 1})
    with engine.begin() as conn:
        token = conn.execute(take.returning(fences.c.generation)).scalar()
    if token is None:
        raise NotHeld(f"run {run_id} does not hold the lock of {service} in {environment}: it takes no step's token")
    return token


def newest_token(engine: Engine, service: str, environment: str) -> int:
    """The environment's newest generation (0: no step has taken one)."""
    query = sa.select(fences.c.generation).where(fences.c.service == service, fences.c.environment == environment)
    with engine.connect() as conn:
        return conn.execute(query).scalar() or 0
