"""What runs where, read from the ledger: every service's live version in every environment, a service's
history a page at a time, and who holds or waits for each environment's lock. Read only: no migration, no
write lock (an engine from ``store.engine_for(url, reader=True)``).

The live version of a service in an environment is its newest release whose outcome is promoted: a rolled
back, rejected or failed release after it leaves it live. :func:`cells` finds it, and the newest release of
any outcome beside it, in one query: the (service, environment) pairs the index
``ix_deployflow_releases_env`` (service, environment, finished_at) holds, and for each pair the first
matching row met walking that index backwards from the newest (:func:`newest`), a few rows read per pair
however long the history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from deployflow.ledger.entry import ReleaseEntry
from deployflow.ledger.locks import Holder, locks, queue
from deployflow.ledger.schema import releases
from deployflow.outcomes import Outcome

Key = tuple[str, str]  # (service, environment)
MAX_PAGE = 500  # releases in one page of a history


@dataclass(frozen=True)
class Cell:
    """One service in one environment: the live release (None: never promoted there) and the newest release
    of any outcome (the live one when nothing came after it)."""

    live: ReleaseEntry | None
    newest: ReleaseEntry


@dataclass(frozen=True)
class LockState:
    """The environment locks: the run that holds each, and the runs queued for each in their order."""

    holders: dict[Key, Holder] = field(default_factory=dict)
    queued: dict[Key, list[Holder]] = field(default_factory=dict)

    def run_keys(self) -> set[tuple[str, str]]:
        """(dag_id, run_id) of every run that holds or waits."""
        waiting = (h for line in self.queued.values() for h in line)
        return {(h.dag_id, h.run_id) for h in (*self.holders.values(), *waiting)}


def newest(pairs: sa.Subquery, matches: Callable[[sa.TableClause], list[sa.ColumnElement]], name: str) -> sa.ScalarSelect:
    """The id of the newest release of the pair's service and environment that ``matches``, as a correlated
    subquery: the index walked backwards from the newest, stopping at the first row that matches."""
    row = releases.alias(name)
    return (sa.select(row.c.id)
            .where(row.c.service == pairs.c.service, row.c.environment == pairs.c.environment, *matches(row))
            .order_by(row.c.finished_at.desc(), row.c.id.desc()).limit(1).scalar_subquery())


def pairs_query(service: str | None = None) -> sa.Subquery:
    """Every (service, environment) with a release (of ``service`` only, if given): read from the index alone."""
    query = sa.select(releases.c.service, releases.c.environment).distinct()
    return (query if service is None else query.where(releases.c.service == service)).subquery("pairs")


@lru_cache(maxsize=64)  # built once per service (its aliases' columns cost more to make than the query to run)
def cells_query(service: str | None = None) -> sa.Select:
    """Each pair's live release (its columns, NULL when never promoted) and its newest release (``newest_*``)."""
    pairs = pairs_query(service)
    live, last = releases.alias("live"), releases.alias("newest")
    promoted = newest(pairs, lambda row: [row.c.outcome == Outcome.PROMOTED.value], "newest_promoted")
    columns = [c.label(f"newest_{c.name}") for c in last.c]
    return (sa.select(pairs.c.service.label("pair_service"), pairs.c.environment.label("pair_environment"), live, *columns)
            .select_from(pairs.join(last, last.c.id == newest(pairs, lambda row: [], "newest_any"))
                         .outerjoin(live, live.c.id == promoted)))


def has_ledger(conn: Connection) -> bool:
    """True once a release was recorded (a fresh stack's ledger has no table yet)."""
    return sa.inspect(conn).has_table(releases.name)


def file_missing(engine: Engine) -> bool:
    """True for a SQLite ledger whose file is not there yet: no release recorded (the first record makes it)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and not Path(database).exists()


def recorded(engine: Engine) -> bool:
    """True once a release was recorded: the file (SQLite) and the table are there."""
    if file_missing(engine):
        return False
    with engine.connect() as conn:
        return has_ledger(conn)


def cells(engine: Engine, service: str | None = None) -> dict[Key, Cell]:
    """Every (service, environment) that has a release (of ``service`` only, if given), with its live and
    newest release."""
    if file_missing(engine):
        return {}
    with engine.connect() as conn:
        if not has_ledger(conn):
            return {}
        rows = conn.execute(cells_query(service)).all()
    names = [c.name for c in releases.c]
    width = len(names)  # each row: the pair, then the live release's columns, then the newest release's
    found = {}
    for row in rows:
        live_columns, newest_columns = row[2:2 + width], row[2 + width:]
        live = ReleaseEntry.from_dict(dict(zip(names, live_columns))) if live_columns[0] is not None else None
        same = live is not None and live_columns[0] == newest_columns[0]  # by id: most often the newest is live
        found[(row[0], row[1])] = Cell(live=live, newest=live if same else ReleaseEntry.from_dict(dict(zip(names, newest_columns))))
    return found


@dataclass(frozen=True)
class Page:
    """A page of a service's history, newest first, and how many releases the whole history has."""

    total: int
    limit: int
    offset: int
    releases: list[ReleaseEntry]


def history(engine: Engine, service: str, *, environment: str | None = None, limit: int = 50, offset: int = 0) -> Page:
    """A service's releases, newest first, ``limit`` (1 to :data:`MAX_PAGE`) from ``offset``."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit {limit} and offset {offset}: limit must be 1 to {MAX_PAGE}, offset 0 or more")
    where = [releases.c.service == service, *([releases.c.environment == environment] if environment else [])]
    query = (sa.select(releases).where(*where).order_by(releases.c.finished_at.desc(), releases.c.id.desc())
             .limit(limit).offset(offset))
    if file_missing(engine):
        return Page(0, limit, offset, [])
    with engine.connect() as conn:
        if not has_ledger(conn):
            return Page(0, limit, offset, [])
        total = conn.execute(sa.select(sa.func.count()).select_from(releases).where(*where)).scalar_one()
        rows = conn.execute(query).mappings().all()
    return Page(total, limit, offset, [ReleaseEntry.from_dict(dict(row)) for row in rows])


def lock_state(engine: Engine) -> LockState:
    """Every lock's holder and every queue, in two small reads (empty before the ledger has its lock tables)."""
    if file_missing(engine):
        return LockState()
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(queue.name):
            return LockState()
        held = conn.execute(sa.select(locks.c.service, locks.c.environment, locks.c.run_id, locks.c.dag_id, locks.c.taken_at))
        holders = {(s, e): Holder(run_id, dag_id, taken_at) for s, e, run_id, dag_id, taken_at in held}
        waiting = conn.execute(sa.select(queue.c.service, queue.c.environment, queue.c.run_id, queue.c.dag_id, queue.c.queued_at)
                               .order_by(queue.c.queued_at, queue.c.run_id))
        queued: dict[Key, list[Holder]] = defaultdict(list)
        for s, e, run_id, dag_id, queued_at in waiting:
            if holders.get((s, e), Holder("", "", "")).run_id != run_id:  # the holder leaves the queue as it takes the lock
                queued[(s, e)].append(Holder(run_id, dag_id, queued_at))
    return LockState(holders, dict(queued))
