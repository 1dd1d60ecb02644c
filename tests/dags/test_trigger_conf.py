"""What Airflow itself refuses before a run exists, and what it leaves to the first task.

A REST trigger (``POST /api/v2/dags/{dag_id}/dagRuns``, airflow/api_fastapi/core_api/routes/public/dag_run.py)
creates the run through ``SerializedDAG.create_dagrun``, which validates ``params.deep_merge(conf)``
(airflow/serialization/definitions/param.py) and answers HTTP 400 on a ParamValidationError: these are the
exact calls, on the DAG as the API server holds it (serialized and read back).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.exceptions import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from deployflow.airflow.dag_factory import release_dag
from deployflow.catalog import parse_service

SOURCE = {"repo": "/srv/shop", "default_ref": "main"}
ENVIRONMENTS = {"dev": {"port": 18101}, "prod": {"port": 18103}}
MANUAL = parse_service({"name": "shop", "source": SOURCE, "environments": ENVIRONMENTS})
NIGHTLY = parse_service({"name": "shop", "source": SOURCE, "environments": ENVIRONMENTS,
                         "nightly": {"cron": "0 2 * * *", "environment": "dev"}})


def validate_as_the_api_server_does(service, conf):
    dag = DagSerialization.from_dict(DagSerialization.to_dict(release_dag(service, Path("/catalog/shop.yaml"))))
    return dag.params.deep_merge(conf).validate()


@pytest.mark.parametrize(("conf", "says"), [
    (None, "Invalid input for param environment: No value passed"),  # "conf": null
    ({}, "Invalid input for param environment: No value passed"),
    ({"git_ref": "main"}, "Invalid input for param environment: No value passed"),
    ({"environment": "qa"}, "Invalid input for param environment: 'qa' is not one of ['dev', 'prod']"),
    ({"environment": "dev", "git_ref": "main\n"}, "Invalid input for param git_ref: 'main\\n' does not match"),
    ({"environment": "dev", "git_ref": "a..b"}, "Invalid input for param git_ref: 'a..b' does not match"),
    ({"environment": "dev", "reason": "x\u202e"}, "Invalid input for param reason: 'x\\u202e' does not match"),
    ({"environment": "dev", "reason": "line\n"}, "Invalid input for param reason: 'line\\n' does not match"),
])
def test_airflow_refuses_these_before_a_run_exists(conf, says):
    with pytest.raises(ParamValidationError) as caught:
        validate_as_the_api_server_does(MANUAL, conf)
    assert str(caught.value).startswith(says)


@pytest.mark.parametrize(("service", "conf"), [
    (MANUAL, {"environment": "dev", "colour": "blue"}),  # an unknown key gets an empty schema: anything passes
    (NIGHTLY, {}),  # a scheduled run has only the defaults, so the environment's default (null) must pass
    (NIGHTLY, None),
])
def test_airflow_lets_these_through_so_the_resolve_task_refuses_them(service, conf):
    """tests/unit/test_resolve_task.py: resolve refuses them, and the ledger names who asked."""
    validated = validate_as_the_api_server_does(service, conf)
    assert validated["git_ref"] == "main"
