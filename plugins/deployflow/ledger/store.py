"""The ledger in SQL: SQLite embedded (a file beside the deployer's state), PostgreSQL where it is shared.

Every writer migrates the schema first (schema.py) and then records: one row per run (``service``,
``run_id`` unique), so a retried record task updates its row instead of writing a second one. SQLite
writers take the database's write lock when their transaction begins (``BEGIN IMMEDIATE``) and wait up to
30 s for it, so two environments recording at once both land.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from deployflow.ledger.entry import ReleaseEntry
from deployflow.ledger.schema import migrate, releases, upgraded

log = logging.getLogger(__name__)

SCHEMES = ("sqlite", "postgresql")


def engine_for(url: str, *, reader: bool = False) -> Engine:
    """An engine for a ledger URL: ``sqlite:///path`` or ``postgresql://user:pw@host/db`` (``postgres://`` too).

    ``reader``: for reading only (the report, the exporter): no write lock taken at BEGIN, so a read never
    queues behind a record, and a short wait; it creates no file.
    """
    parsed = sa.engine.make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    backend = parsed.get_backend_name()
    if backend not in SCHEMES:
        raise ValueError(f"ledger URL scheme {backend!r} is not valid; valid values are {', '.join(SCHEMES)}")
    if backend == "postgresql":
        return sa.create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True,
                                connect_args={"connect_timeout": 5} if reader else {})
    if reader:
        return sa.create_engine(parsed, connect_args={"timeout": 5})
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        dbapi_connection.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Ledger:
    """Releases recorded in SQL. :param url: a SQLAlchemy URL (see :func:`engine_for`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self._migrated = False

    def _ready(self) -> None:
        if not self._migrated:
            migrate(self.engine)
            self._migrated = True

    def record(self, entry: ReleaseEntry) -> bool:
        """Write the release of ``entry.run_id``; a second record of the same run updates the row. True: a new row."""
        self._ready()
        row = entry.to_dict()
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(releases).values(**row)
        changes = {k: insert.excluded[k] for k in row if k not in ("service", "run_id")}
        with self.engine.begin() as conn:
            existed = conn.execute(sa.select(releases.c.id).where(
                releases.c.service == entry.service, releases.c.run_id == entry.run_id)).first() is not None
            conn.execute(insert.on_conflict_do_update(index_elements=["service", "run_id"], set_=changes))
        return not existed

    def entries(self, *, service: str | None = None, environment: str | None = None, since: str | None = None,
                until: str | None = None) -> list[ReleaseEntry]:
        """Releases in the order they finished; ``since``/``until``: ISO 8601 bounds of ``finished_at``."""
        self._ready()
        query = sa.select(releases).order_by(releases.c.finished_at, releases.c.id)
        for column, value in ((releases.c.service, service), (releases.c.environment, environment)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(releases.c.finished_at >= since)
        if until is not None:
            query = query.where(releases.c.finished_at < until)
        with self.engine.connect() as conn:
            return [ReleaseEntry.from_dict(dict(r._mapping)) for r in conn.execute(query)]

    def import_jsonl(self, path: Path) -> tuple[int, int]:
        """Bring in a JSON-lines ledger (the format before SQL), once: a run already recorded is skipped.
        Returns (imported, skipped)."""
        self._ready()
        imported = skipped = 0
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = ReleaseEntry.from_dict(upgraded(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a ledger line ({exc})") from None
            if self._has(entry):
                skipped += 1
                continue
            self.record(entry)
            imported += 1
        log.info("ledger: imported %d release(s) from %s, %d already there", imported, path, skipped)
        return imported, skipped

    def _has(self, entry: ReleaseEntry) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(releases.c.id).where(
                releases.c.service == entry.service, releases.c.run_id == entry.run_id)).first() is not None

    def dispose(self) -> None:
        self.engine.dispose()
