"""Failed analyses are final: a canary analysis that failed in one try of a run fails every later try of it.

Airflow retries a wait that something outside killed (a lost worker; Airflow 3.3's resume-after-defer race,
apache/airflow#72716, which can fail a task that had resumed, and retry it). A retry of the analysis would judge
again from the start, on whatever traffic is left: with ``no_data: pass``, a canary that failed could pass. So the
first failing verdict is kept here, keyed by its run and task, before the task fails; every try of the analysis
reads it first and fails again with it, whatever the metrics say now. (A new try clears the task's XComs, so they
cannot keep it.) The table is the ledger's schema migration v8 (``schema.py``).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from deployflow.ledger.locks import locks_metadata

failed_verdicts = sa.Table(
    "deployflow_failed_verdicts", locks_metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("verdict", sa.Text, nullable=False),
)


def create_verdicts_table(conn: Connection) -> None:
    """Create ``deployflow_failed_verdicts`` (if it is not there): the ledger's migration v8."""
    failed_verdicts.create(conn, checkfirst=True)


def keep_failure(engine: Engine, dag_id: str, run_id: str, task_id: str, verdict: dict[str, Any]) -> None:
    """Keep the run's failing verdict of ``task_id``; the first one kept stays (a second failure changes nothing)."""
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(failed_verdicts)
    row = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "verdict": json.dumps(verdict, sort_keys=True)}
    with engine.begin() as conn:
        conn.execute(insert.values(**row).on_conflict_do_nothing())


def failed_before(engine: Engine, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The failing verdict an earlier try of the run's ``task_id`` kept; None when none failed."""
    query = sa.select(failed_verdicts.c.verdict).where(
        failed_verdicts.c.dag_id == dag_id, failed_verdicts.c.run_id == run_id, failed_verdicts.c.task_id == task_id)
    with engine.connect() as conn:
        kept = conn.execute(query).scalar()
    return json.loads(kept) if kept else None
