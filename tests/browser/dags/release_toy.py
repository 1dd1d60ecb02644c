"""A toy of the gated release DAG for the browser check (scripts/browser_check.py): the trigger form of
sample-app's release DAG, then an approval gate. Nothing is built or deployed."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param

from deployflow.catalog import load_catalog
from deployflow.release import param_schema

SERVICE = load_catalog()["sample-app"]
BODY = """\
## Release {{ params.git_ref }} to **{{ params.environment }}**

- strategy: `{{ params.strategy }}`
- reason: {{ params.reason or "(none given)" }}

Approve to go on; *Reject* fails the gate.
"""

with DAG(
    dag_id="release_toy",
    schedule=None,
    params={name: Param(**spec) for name, spec in param_schema(SERVICE).items()},
    tags=["deployflow", "browser-check"],
    default_args={"retries": 0},
):
    approve_deploy = ApprovalOperator(
        task_id="approve_deploy",
        subject="Release {{ params.git_ref }} to {{ params.environment }}?",
        body=BODY,
        params={"comment": Param("", type="string")},
        defaults=["Reject"],
        fail_on_reject=True,
        response_timeout=timedelta(minutes=10),
    )
    deploy = EmptyOperator(task_id="deploy")
    approve_deploy >> deploy
