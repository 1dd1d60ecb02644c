"""A lock per (service, environment) in the ledger's database: one release at a time to an environment.

Releases of one service to different environments run at once; a second release to an environment waits
until the first lets go (its record task releases the lock), or until the first is found stale: its run
no longer queued or running, a crashed worker's or a deleted run's. Airflow's pools cannot say this: they
count task instances, not a whole release of many tasks.

Every step is one statement the database makes atomic, on SQLite (``BEGIN IMMEDIATE``: one writer at a
time, ``store.engine_for``) and on PostgreSQL (a row's primary key, row locks), never a read then a write:

- take: ``INSERT ... ON CONFLICT DO UPDATE`` (a no-op update) ``RETURNING`` the row, which is ours if the
  insert went in, or the holder's if the primary key (service, environment) was taken;
- take over: ``UPDATE ... WHERE run_id = <the stale holder>`` (and its dag_id and taken_at): of two waiters
  that both judged the holder stale, the second finds the row changed and updates nothing;
- release: ``DELETE ... WHERE run_id = <ours>``: a run never frees a lock another run holds.

The table is the ledger's schema migration v4 (``schema.py`` calls :func:`create_locks_table`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# Its own metadata: the schema's migrations create it, in schema.py, at the version they give it.
locks_metadata = sa.MetaData()
locks = sa.Table(
    "deployflow_locks", locks_metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("taken_at", sa.String(40), nullable=False),  # ISO 8601 in UTC, like the ledger's times
)
# The runs waiting for an environment, in the order they were queued (their runs' run_after): the lock goes to
# the earliest live waiter, so two releases triggered one after the other deploy in that order.
queue = sa.Table(
    "deployflow_lock_queue", locks_metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("environment", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("queued_at", sa.String(40), nullable=False),  # fixed-width ISO 8601 in UTC: sorts as it reads
)
TAKE_ATTEMPTS = 3  # a lock that changes hands this often while we look is someone else's for now


def create_locks_table(conn: Connection) -> None:
    """Create ``deployflow_locks`` and ``deployflow_lock_queue`` (if they are not there): the ledger's migration v4."""
    locks.create(conn, checkfirst=True)
    queue.create(conn, checkfirst=True)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Holder:
    """The run that holds an environment's lock, and since when (ISO 8601, UTC)."""

    run_id: str
    dag_id: str
    taken_at: str

    def since(self) -> datetime:
        return datetime.fromisoformat(self.taken_at)

    def held_for(self, now: datetime) -> float:
        """Seconds the lock has been held at ``now``."""
        return (now - self.since()).total_seconds()


class EnvironmentLocks:
    """The locks of the ledger's database.

    :param engine: the ledger's engine (``deployflow.ledger.store.engine_for``), its schema migrated.
    :param clock: now, aware (tests pass a fixed one).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self.clock = clock

    def acquire(self, service: str, environment: str, run_id: str, dag_id: str, *,
                is_stale: Callable[[Holder], bool]) -> Holder | None:
        """Take the lock for ``run_id``. None: it is ours (taken now, or already, by an earlier try of this run).
        Otherwise the run that holds it; when ``is_stale(holder)`` says that run is over, the lock is taken over
        from it, and only one of the runs that wait for it wins it.

        ``is_stale`` is asked outside any transaction (it may ask Airflow over the network)."""
        holder: Holder | None = None
        for _ in range(TAKE_ATTEMPTS):
            taken_at = self.clock().astimezone(timezone.utc).isoformat()
            holder = self._take(service, environment, Holder(run_id, dag_id, taken_at))
            if holder.run_id == run_id and holder.dag_id == dag_id:
                if holder.taken_at == taken_at:
                    log.info("lock of %s in %s taken by run %s", service, environment, run_id)
                return None
            if not is_stale(holder):
                return holder
            if self._take_over(service, environment, holder, Holder(run_id, dag_id, taken_at)):
                log.warning("lock of %s in %s taken over by run %s from run %s of %s (held since %s): that run is over",
                            service, environment, run_id, holder.run_id, holder.dag_id, holder.taken_at)
                return None
            # Another waiter took it over first, or the holder let go: look again.
        return holder

    def acquire_in_turn(self, service: str, environment: str, run_id: str, dag_id: str, queued_at: str, *,
                        is_stale: Callable[[Holder], bool],
                        on_its_way: Callable[[set[str]], Holder | None] = lambda in_line: None) -> tuple[str, Holder] | None:
        """:meth:`acquire`, in the order the runs were queued (``queued_at``, fixed-width ISO 8601 UTC): while an
        earlier run that is still live waits too, this one waits behind it. None: the lock is ours. Otherwise
        ``("held", holder)``, ``("behind", the earlier waiter)`` or ``("coming", an earlier run on its way)``. A
        waiter whose run is over is dropped.

        ``on_its_way(in_line)``: an earlier run that may want this environment but has not asked yet (its lock
        task has not run), or None; ``in_line`` holds the runs that have asked for one of the service's
        environments already (this table knows where they go). Without it, a run triggered second whose lock
        task happens to run first would take the environment."""
        current = self.holder(service, environment)
        if current is not None and (current.run_id, current.dag_id) == (run_id, dag_id):
            self._dequeue(service, environment, run_id)
            return None  # a retry of the holder's try: the lock is ours whoever queued since
        self._enqueue(service, environment, Holder(run_id, dag_id, queued_at))
        for ahead in self._ahead(service, environment, run_id, queued_at):
            if not is_stale(ahead):
                return "behind", ahead
            self._dequeue(service, environment, ahead.run_id)
            log.warning("run %s of %s no longer waits for %s of %s: dropped from the queue", ahead.run_id,
                        ahead.dag_id, environment, service)
        earlier = on_its_way(self._in_line(service))
        if earlier is not None:
            return "coming", earlier
        holder = self.acquire(service, environment, run_id, dag_id, is_stale=is_stale)
        if holder is not None:
            return "held", holder
        self._dequeue(service, environment, run_id)
        return None

    def _enqueue(self, service: str, environment: str, waiter: Holder) -> None:
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(queue).values(
            service=service, environment=environment, run_id=waiter.run_id, dag_id=waiter.dag_id,
            queued_at=waiter.taken_at)
        with self.engine.begin() as conn:  # a retried try keeps its place
            conn.execute(insert.on_conflict_do_nothing(index_elements=[queue.c.service, queue.c.environment, queue.c.run_id]))

    def _ahead(self, service: str, environment: str, run_id: str, queued_at: str) -> list[Holder]:
        earlier = sa.or_(queue.c.queued_at < queued_at, sa.and_(queue.c.queued_at == queued_at, queue.c.run_id < run_id))
        query = (sa.select(queue.c.run_id, queue.c.dag_id, queue.c.queued_at)
                 .where(queue.c.service == service, queue.c.environment == environment, earlier)
                 .order_by(queue.c.queued_at, queue.c.run_id))
        with self.engine.connect() as conn:
            return [Holder(*row) for row in conn.execute(query)]

    def _in_line(self, service: str) -> set[str]:
        """The runs that hold or wait for one of the service's environments."""
        with self.engine.connect() as conn:
            waiting = conn.execute(sa.select(queue.c.run_id).where(queue.c.service == service)).scalars().all()
            holding = conn.execute(sa.select(locks.c.run_id).where(locks.c.service == service)).scalars().all()
        return {*waiting, *holding}

    def _dequeue(self, service: str, environment: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(queue.delete().where(queue.c.service == service, queue.c.environment == environment,
                                              queue.c.run_id == run_id))

    def release(self, service: str, environment: str, run_id: str) -> bool:
        """Let go of the lock if ``run_id`` holds it (and of its place in the queue, if it never got the lock);
        False if it does not hold it (released already, or taken over)."""
        self._dequeue(service, environment, run_id)
        with self.engine.begin() as conn:
            gone = conn.execute(locks.delete().where(*self._key(service, environment), locks.c.run_id == run_id)).rowcount
        if gone:
            log.info("lock of %s in %s released by run %s", service, environment, run_id)
        return gone == 1

    def holder(self, service: str, environment: str) -> Holder | None:
        """The run that holds the lock, or None if it is free."""
        query = sa.select(locks.c.run_id, locks.c.dag_id, locks.c.taken_at).where(*self._key(service, environment))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else Holder(*row)

    def _take(self, service: str, environment: str, ours: Holder) -> Holder:
        """The row after one atomic statement: ours if the key was free, else the holder's, unchanged."""
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(locks).values(
            service=service, environment=environment, run_id=ours.run_id, dag_id=ours.dag_id, taken_at=ours.taken_at)
        # A no-op update, not DO NOTHING: it locks the holder's row and RETURNING gives it, all in the statement.
        upsert = insert.on_conflict_do_update(index_elements=[locks.c.service, locks.c.environment],
                                              set_={"run_id": locks.c.run_id})
        with self.engine.begin() as conn:
            row = conn.execute(upsert.returning(locks.c.run_id, locks.c.dag_id, locks.c.taken_at)).one()
        return Holder(*row)

    def _take_over(self, service: str, environment: str, stale: Holder, ours: Holder) -> bool:
        """Take the lock from ``stale`` if it still holds it (the very row that was judged stale)."""
        update = locks.update().where(
            *self._key(service, environment),
            locks.c.run_id == stale.run_id, locks.c.dag_id == stale.dag_id, locks.c.taken_at == stale.taken_at,
        ).values(run_id=ours.run_id, dag_id=ours.dag_id, taken_at=ours.taken_at)
        with self.engine.begin() as conn:
            return conn.execute(update).rowcount == 1

    @staticmethod
    def _key(service: str, environment: str) -> tuple[sa.ColumnElement[bool], ...]:
        return locks.c.service == service, locks.c.environment == environment
