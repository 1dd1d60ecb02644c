"""Resolve skips what the request already decides, before those tasks would start a process (airflow/skips.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from airflow.sdk import DAG

from deployflow.airflow.resolve import ResolveReleaseOperator
from deployflow.airflow.skips import decided_skips
from deployflow.catalog import parse_service
from tests.unit.test_resolve_task import RunTI, context

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())


def service(**environments: dict):
    entry = {**SAMPLE, "environments": {**SAMPLE["environments"], **environments}}
    return parse_service(entry)


def test_a_rolling_release_skips_the_analysis_the_load_and_the_gates():
    skips = decided_skips(service(), {"environment": "dev", "strategy": "rolling"})
    assert skips == {
        "analysis": "rolling has no canary step to judge",
        "load": "analysis.load_rate is 0 in dev: no synthetic traffic",
        "approve_deploy": "no approval asked for before deploy in dev",
        "approve_promote": "no approval asked for before promote in dev",
    }


def test_a_canary_keeps_its_analysis_and_load_and_the_deploy_decides_a_first_deploy():
    # Whether there is an old version to judge against only the deploy can tell: the analysis task decides that.
    skips = decided_skips(service(), {"environment": "staging", "strategy": "canary"})
    assert "analysis" not in skips and "load" not in skips


def test_a_canary_with_its_analysis_off_skips_it_and_keeps_the_load_for_the_watch():
    staging = {**SAMPLE["environments"]["staging"], "analysis": {"enabled": False, "load_rate": 20},
               "post_promotion": {"enabled": True, "duration_s": 60, "interval_s": 15}}
    skips = decided_skips(service(staging=staging), {"environment": "staging", "strategy": "canary"})
    assert skips["analysis"] == "analysis is off in staging"
    assert "load" not in skips  # the post-promotion watch needs traffic


def test_a_gate_asked_for_or_a_freeze_overridden_is_not_skipped():
    prod = {**SAMPLE["environments"]["prod"], "approval": {"approvers": ["alice"], "before": "promote"}}
    skips = decided_skips(service(prod=prod), {"environment": "prod", "strategy": "blue-green"})
    assert "approve_promote" not in skips and "approve_deploy" in skips
    frozen = {"environment": "dev", "strategy": "rolling", "freeze": {"message": "holidays"}, "freeze_override": "hotfix"}
    assert "approve_deploy" not in decided_skips(service(), frozen)


@pytest.mark.parametrize("strategy", ["rolling", "blue-green"])
def test_resolve_skips_them_through_the_scheduler_at_once_with_why(strategy, monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))  # resolve takes the environment's lock in its ledger
    skipped: list[str] = []
    monkeypatch.setattr(ResolveReleaseOperator, "skip", lambda self, ti, tasks: skipped.extend(t.task_id for t in tasks))
    with DAG("release_sample-app", schedule=None):
        resolve = ResolveReleaseOperator(task_id="resolve", service=service())
        from airflow.providers.standard.operators.empty import EmptyOperator

        for task_id in ("build", "analysis", "load", "approve_deploy", "prepare", "record"):
            resolve >> EmptyOperator(task_id=task_id)
    ti = RunTI()
    params = {"environment": "dev", "git_ref": "main", "strategy": strategy, "reason": "", "force": True}
    resolved = resolve.execute(context(ti, params))
    assert sorted(skipped) == ["analysis", "approve_deploy", "load"]
    assert resolved["skipped"]["analysis"] == f"{strategy} has no canary step to judge"
    assert ti.pushed[("resolve", "return_value")] == resolved  # pushed before the skip ends execute
