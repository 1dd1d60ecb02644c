"""A kubernetes service's release DAG is the Docker one with the deployer steps in pods,
and its load and record tasks reach the environment at its front URL."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from deployflow.airflow.dag_factory import release_dag
from deployflow.airflow.deployer_operator import DeployerOperator
from deployflow.airflow.record import ReleaseRecordOperator
from deployflow.airflow.kubernetes_deploy import KubernetesDeployerOperator
from deployflow.catalog import load_service
from tests.dags.test_integrity import BUDGET_S, import_in_subprocess

ROOT = Path(__file__).resolve().parents[2]
DOCKER_FILE = ROOT / "include" / "services" / "sample-app.yaml"
KUBERNETES_FILE = ROOT / "include" / "k8s" / "services" / "sample-app.yaml"
DEPLOYER_STEPS = ("prepare", "shift", "promote", "rollback")


def shape(path: Path) -> dict[str, tuple]:
    dag = release_dag(load_service(path), path)
    return {
        t.task_id: (sorted(t.upstream_task_ids), sorted(t.downstream_task_ids), str(t.trigger_rule.value), t.retries)
        for t in dag.tasks
    }


def deployer_classes(path: Path) -> dict[str, type]:
    dag = release_dag(load_service(path), path)
    return {step: type(dag.get_task(step)) for step in DEPLOYER_STEPS}


def test_the_kubernetes_dag_has_the_docker_dags_tasks_edges_trigger_rules_and_retries():
    docker, kubernetes = shape(DOCKER_FILE), shape(KUBERNETES_FILE)
    assert sorted(kubernetes) == sorted(docker)
    for task_id, (upstream, downstream, rule, retries) in docker.items():
        assert kubernetes[task_id] == (upstream, downstream, rule, retries), task_id


@pytest.mark.parametrize("path, operator", [(DOCKER_FILE, DeployerOperator), (KUBERNETES_FILE, KubernetesDeployerOperator)],
                         ids=["docker", "kubernetes"])
def test_the_deployer_steps_run_on_the_services_platform(path, operator):
    assert deployer_classes(path) == dict.fromkeys(DEPLOYER_STEPS, operator)


def test_the_kubernetes_catalog_imports_without_errors_or_network_within_budget():
    result = import_in_subprocess(KUBERNETES_FILE.parent)
    assert result["errors"] == {}
    assert sorted(result["dags"]) == ["release_sample-app"]
    assert result["seconds"] < BUDGET_S, f"took {result['seconds']:.2f} s to import"


class Stop(Exception):
    pass


def test_the_analysis_load_goes_to_the_environments_front_url_from_a_container_on_its_docker_host():
    load = release_dag(load_service(DOCKER_FILE), DOCKER_FILE).get_task("load")
    load.environment_name, load.image = "staging", "deployflow/deployer:test"
    ti = mock.Mock(xcom_pull=mock.Mock(return_value={"analysis": {"step": 10}}))
    with mock.patch("deployflow.airflow.sites.docker_client") as client:
        load.execute({"ti": ti})
    assert client.return_value.containers.run.call_args.kwargs["command"][0] == "http://127.0.0.1:18002/"


def test_the_analysis_load_of_a_kubernetes_environment_goes_to_its_front_url_from_the_task():
    load = release_dag(load_service(KUBERNETES_FILE), KUBERNETES_FILE).get_task("load")
    load.environment_name = "staging"
    ti = mock.Mock(xcom_pull=mock.Mock(return_value={"analysis": {"step": 10}}))
    with mock.patch("deployflow.analysis.loadgen.LoadGenerator", side_effect=Stop) as generator, pytest.raises(Stop):
        load.execute({"ti": ti})
    assert generator.call_args.args == ("http://sample-app.sample-app-staging.svc.cluster.local/",)


def test_the_record_reads_a_kubernetes_environment_through_its_connection():
    record = ReleaseRecordOperator(task_id="record", service=load_service(KUBERNETES_FILE))
    with (
        mock.patch("airflow.providers.cncf.kubernetes.hooks.kubernetes.KubernetesHook") as hook,
        mock.patch("deployflow.airflow.sites.status", return_value={"live": "green"}) as status,
    ):
        live = record._live("prod")
    hook.assert_called_once_with(conn_id="kubernetes_prod")
    workload = status.call_args.args[0]
    assert workload.cluster.apps.api_client is hook.return_value.api_client
    assert live == {"live": "green", "url": "http://sample-app.sample-app-prod.svc.cluster.local/"}
