"""Shared test set-up: the project's paths, and Airflow pointed at a throw-away home."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Set before anything imports airflow: tests never touch the demo's state.
os.environ.setdefault("DEPLOYFLOW_HOME", str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
os.environ["AIRFLOW_CONFIG"] = str(ROOT / "airflow.cfg")
