"""The release ledger: every release (who, what, where, outcome, timings, what it cost its users) in SQL.

SQLite is the embedded default, ``ledger.db`` in the deployer's state directory; PostgreSQL serves shared and
multi-worker setups (the Airflow connection ``deployflow_ledger``, or ``$DEPLOYFLOW_LEDGER_URL``).
"""

from __future__ import annotations

from deployflow.ledger.entry import ReleaseEntry
from deployflow.ledger.store import Ledger, engine_for
from deployflow.settings import sqlite_ledger_url as default_url

__all__ = ["Ledger", "ReleaseEntry", "default_url", "engine_for"]
