"""The ledger's tables and their migrations: one versioned schema for SQLite and PostgreSQL.

``deployflow_schema`` holds the version the database is at; :func:`migrate` applies every migration after it,
each in its own transaction, so a ledger of any earlier version is brought up to date in place and a
current one is left alone. A new column is a new migration at the end of :data:`MIGRATIONS`, never an edit
of an old one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from deployflow.ledger.fences import create_fences_table  # fences.py and locks.py define their tables beside their queries
from deployflow.ledger.verdicts import create_verdicts_table
from deployflow.ledger.locks import create_locks_table
from deployflow.outcomes import NOT_GIVEN, VALUES, detail, of_sentence

log = logging.getLogger(__name__)

metadata = sa.MetaData()
UNIQUE_RUN = "uq_deployflow_releases_run"
# Timestamps are ISO 8601 text in UTC: the same on both databases, sortable, and what the ledger had as JSON.
releases = sa.Table(
    "deployflow_releases", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("environment", sa.String(32), nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("version", sa.String(200)),
    sa.Column("commit", sa.String(64)),
    sa.Column("committed_at", sa.String(40)),
    sa.Column("image", sa.Text),
    sa.Column("config", sa.String(32)),
    sa.Column("previous", sa.String(200)),
    sa.Column("requested_by", sa.String(250), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("outcome", sa.String(200), nullable=False),  # v6: an Outcome's value (before: a sentence)
    sa.Column("failure", sa.Text),
    sa.Column("started_at", sa.String(40)),
    sa.Column("finished_at", sa.String(40), nullable=False),
    sa.Column("seconds", sa.Float),
    sa.Column("rollback_seconds", sa.Float),
    sa.Column("failed_requests", sa.Integer),
    sa.Column("restore_seconds", sa.Float),
    sa.Column("extra_instance_seconds", sa.Float),
    sa.Column("steps", sa.JSON),
    sa.Column("digest", sa.String(100)),  # v2: the image's registry digest (recover pulls by it)
    sa.Column("analysis_score", sa.Float),  # v2: canary analysis' last score, 0-100
    sa.Column("requests", sa.Integer),  # v3: requests the router answered while the release ran
    sa.Column("saved_by_router", sa.Integer),  # v3: connection errors, retries, redispatches the client never saw
    sa.Column("approval", sa.String(40)),  # v4: the gate's decision: approved, rejected, timed out (None: no gate)
    sa.Column("approved_by", sa.Text),  # v4: who decided the gate: every approver, or who rejected (v5: TEXT)
    sa.Column("approved_at", sa.String(40)),  # v4: when
    sa.Column("freeze_override", sa.Text),  # v4: why the release went into a freeze window
    sa.Column("promoted_from", sa.String(32)),  # v4: the environment whose promoted image this release took
    sa.Column("tests", sa.JSON),  # v4: each suite's counts, seconds and coverage
    sa.Column("approval_answers", sa.JSON),  # v5: every answer the gate took, how it counted, and why
    sa.Column("outcome_detail", sa.Text),  # v6: the outcome as a sentence a person reads
    sa.UniqueConstraint("service", "run_id", name=UNIQUE_RUN),  # one row per run: retries update it
    sa.Index("ix_deployflow_releases_env", "service", "environment", "finished_at"),
)
schema_version = sa.Table(
    "deployflow_schema", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


V2_COLUMNS = ("digest", "analysis_score")
V3_COLUMNS = ("requests", "saved_by_router")
V4_COLUMNS = ("approval", "approved_by", "approved_at", "freeze_override", "promoted_from", "tests")
V5_COLUMNS = ("approval_answers",)
V6_COLUMNS = ("outcome_detail",)


def _v1(conn: Connection) -> None:
    """The table as it first was: everything but the columns later versions add."""
    later = {*V2_COLUMNS, *V3_COLUMNS, *V4_COLUMNS, *V5_COLUMNS, *V6_COLUMNS}
    columns = [c._copy() for c in list(releases.columns) if c.name not in later]
    first = sa.Table(releases.name, sa.MetaData(), *columns, sa.UniqueConstraint("service", "run_id", name=UNIQUE_RUN))
    first.create(conn)
    sa.Index("ix_deployflow_releases_env", first.c.service, first.c.environment, first.c.finished_at).create(conn)


def _add_columns(conn: Connection, names: tuple[str, ...]) -> None:
    for name in names:
        kind = releases.c[name].type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {releases.name} ADD COLUMN {name} {kind}"))


def _v2(conn: Connection) -> None:
    _add_columns(conn, V2_COLUMNS)


def _v3(conn: Connection) -> None:
    _add_columns(conn, V3_COLUMNS)


def _v4(conn: Connection) -> None:
    _add_columns(conn, V4_COLUMNS)
    create_locks_table(conn)


def _v5(conn: Connection) -> None:
    _add_columns(conn, V5_COLUMNS)
    if conn.dialect.name == "postgresql":  # every approver of an N-of gate; SQLite never held to the length
        conn.execute(sa.text(f"ALTER TABLE {releases.name} ALTER COLUMN approved_by TYPE TEXT"))


def _v6(conn: Connection) -> None:
    """Outcomes were sentences ("rolled back to 1a2b3c"): each becomes an Outcome's value, once, here, the sentence
    its detail; an environment or strategy never given was '?', now 'none'."""
    _add_columns(conn, V6_COLUMNS)
    sentences = conn.execute(sa.select(releases.c.outcome).distinct().where(releases.c.outcome.not_in(VALUES))).scalars()
    for sentence in list(sentences):
        conn.execute(releases.update().where(releases.c.outcome == sentence).values(
            outcome=of_sentence(sentence).value, outcome_detail=detail(sentence)))
    for column in (releases.c.environment, releases.c.strategy):
        conn.execute(releases.update().where(column == "?").values({column.name: NOT_GIVEN}))


def _v7(conn: Connection) -> None:
    """The environments' fencing tokens, beside their locks."""
    create_fences_table(conn)


def _v8(conn: Connection) -> None:
    """The failed analyses' verdicts, final for their run whatever a retry would judge."""
    create_verdicts_table(conn)


def upgraded(row: dict[str, Any]) -> dict[str, Any]:
    """A row as an earlier deployflow wrote it (a JSON line) as :func:`_v6` leaves a stored one."""
    row = {**row, **{name: NOT_GIVEN for name in ("environment", "strategy") if row.get(name) == "?"}}
    if row.get("outcome") in VALUES or not isinstance(row.get("outcome"), str):
        return row
    return {**row, "outcome": of_sentence(row["outcome"]).value, "outcome_detail": detail(row["outcome"])}


# Each migration brings the schema from its index to the next version (index 0: empty -> 1).
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8)
VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(schema_version.c.version)).scalar() or 0


MIGRATION_LOCK = 7_272_210  # PostgreSQL advisory lock: one migrator at a time (SQLite: BEGIN IMMEDIATE, store.py)


def migrate(engine: Engine) -> int:
    """Bring the ledger's schema to :data:`VERSION`; returns the version it was at. Safe from every writer at
    once: one migrates, the others wait for it and find the work done."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        schema_version.create(conn, checkfirst=True)
        found = current_version(conn)
        if found > VERSION:
            raise RuntimeError(f"the ledger's schema is version {found}, newer than this deployflow's {VERSION}: upgrade deployflow")
        for version in range(found, VERSION):
            MIGRATIONS[version](conn)
            log.info("ledger schema migrated to version %d", version + 1)
        if found != VERSION:
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=VERSION))
    return found
