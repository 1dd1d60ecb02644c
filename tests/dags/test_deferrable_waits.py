"""The release DAG's health and analysis waits hold no worker slot by default (they defer to the triggerer);
``[deployflow] deferrable_waits = False`` brings poke mode back."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployflow.airflow.dag_factory import release_dag
from deployflow.catalog import load_service

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "services" / "sample-app.yaml"
WAITS = ("health", "analysis")


def waits() -> dict[str, bool]:
    dag = release_dag(load_service(SAMPLE), SAMPLE)
    return {task_id: dag.get_task(task_id).deferrable for task_id in WAITS}


def test_the_health_and_analysis_waits_defer_by_default(monkeypatch):
    monkeypatch.delenv("AIRFLOW__DEPLOYFLOW__DEFERRABLE_WAITS", raising=False)
    assert waits() == {"health": True, "analysis": True}


@pytest.mark.parametrize("value", ["False", "false", "0"])
def test_the_config_option_brings_poke_mode_back(monkeypatch, value):
    monkeypatch.setenv("AIRFLOW__DEPLOYFLOW__DEFERRABLE_WAITS", value)
    assert waits() == {"health": False, "analysis": False}


def test_the_shipped_airflow_cfg_says_defer():
    from airflow.sdk import conf

    assert conf.get("deployflow", "deferrable_waits") == "True"  # documented there, not only a fallback
