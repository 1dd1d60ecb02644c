"""What the scheduler reads of the release DAG in every loop, on the DAG as it holds it (serialized and read back)."""

from __future__ import annotations

from pathlib import Path

from airflow.serialization.serialized_objects import DagSerialization

from deployflow.airflow.dag_factory import release_dag
from deployflow.catalog import parse_service

GATED = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
    "staging": {"port": 18102, "approval": {"approvers": ["alice"]}},
    "prod": {"port": 18103, "approval": {"approvers": ["alice"], "before": "promote"}}}})


def test_no_task_has_the_scheduler_look_up_a_skip_xcom_for_what_follows_it():
    # Airflow's NotPreviouslySkippedDep queries the database for a parent's skip XCom, per waiting child and loop,
    # where the parent says it may skip downstream. No task of the release skips that way: resolve sets the skipped
    # tasks' states itself, and an approval gate fails on anything but an approval (airflow/approval.py).
    dag = DagSerialization.from_dict(DagSerialization.to_dict(release_dag(GATED, Path("/catalog/shop.yaml"))))
    assert {"approve_deploy", "approve_promote"} <= set(dag.task_ids)
    assert [t.task_id for t in dag.tasks if t.inherits_from_skipmixin] == []
