"""Where the record task writes the ledger: the Airflow connection ``deployflow_ledger`` (PostgreSQL, shared by
every worker), else ``$DEPLOYFLOW_LEDGER_URL``, else SQLite in the deployer's state directory.

The first time a SQL ledger is opened beside a JSON-lines one (``ledger.jsonl``, what deployflow wrote before),
that file is imported once and renamed ``ledger.jsonl.imported``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow.sdk import Connection

from deployflow.airflow.checkout_step import CHECKOUT_SECONDS
from deployflow.airflow.settings import settings, state_dir
from deployflow.airflow.task_ids import BUILD, PREPARE, PROMOTE, ROLLBACK, SHIFT
from deployflow.ledger import Ledger, ReleaseEntry

log = logging.getLogger(__name__)

LEDGER_CONNECTION = "deployflow_ledger"
TIMED = (BUILD, PREPARE, SHIFT, PROMOTE, ROLLBACK)  # tasks whose result says how long their work took
# The ledger's step of the checkout, which build does first: its figure is build's ``checkout_seconds``.
CHECKOUT_STEP = "checkout"


def ledger_url(state_dir: Path) -> str:
    try:
        return Connection.get(LEDGER_CONNECTION).get_uri()
    except Exception:  # noqa: BLE001 - no such connection (AirflowNotFoundException), or no backend has it
        return replace(settings(), state_dir=state_dir).ledger_url


def open_ledger(state_dir: Path) -> Ledger:
    ledger = Ledger(ledger_url(state_dir))
    lines = state_dir / "ledger.jsonl"
    if lines.exists():
        imported, skipped = ledger.import_jsonl(lines)
        try:
            lines.rename(lines.with_name("ledger.jsonl.imported"))
        except FileNotFoundError:
            pass  # another record task imported it at the same time (the import skips what is there)
        log.info("ledger: %d release(s) imported from %s (%d already there)", imported, lines, skipped)
    return ledger


def releases_in(service: str, environment: str) -> list[ReleaseEntry]:
    """The ledger's releases of ``service`` to ``environment``, in the order they finished."""
    ledger = open_ledger(state_dir())
    try:
        return ledger.entries(service=service, environment=environment)
    finally:
        ledger.dispose()


def step_seconds(pulled: dict[str, Any]) -> dict[str, float]:
    """Each step's own figure of the seconds its work took, from its task's result (the checkout's from build's)."""
    built = pulled.get(BUILD)
    checkout = {"seconds": built.get(CHECKOUT_SECONDS)} if isinstance(built, dict) else None
    return {step: float(result["seconds"]) for step, result in {CHECKOUT_STEP: checkout, **pulled}.items()
            if step in (CHECKOUT_STEP, *TIMED) and isinstance(result, dict) and isinstance(result.get("seconds"), (int, float))}
