"""The release DAG's tests: the catalog's pytest suites, in parallel, each in a container from the built image,
then the coverage gate over all of them, where the catalog asks for coverage (``tests.coverage_threshold`` above 0;
at 0 the gate would check nothing, and its task and container are left out)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import BaseOperator, TaskGroup
from docker.types import Mount

from deployflow.airflow.hardened_docker import HardenedDockerOperator
from deployflow.airflow.operators import PytestSuiteOperator, test_labels
from deployflow.airflow.record import remember_failure
from deployflow.airflow.settings import docker_url
from deployflow.airflow.task_ids import BUILD, COVERAGE_GATE, TEST
from deployflow.catalog import Service
from deployflow.pipeline import suites
from deployflow.platforms.hardening import TEST_LIMITS

# The suites and the coverage gate run the built image by its ID: what they test is what was built.
IMAGE = "{{ ti.xcom_pull(task_ids='" + BUILD + "')['image_id'] }}"
COVERAGE_DIR = "{{ ti.xcom_pull(task_ids='" + BUILD + "')['coverage_dir'] }}"


def suite_tasks(service: Service) -> tuple[TaskGroup, TaskGroup | BaseOperator]:
    """The suites' task group, and the task the approval gate follows: the coverage gate, or the group itself."""
    with TaskGroup(TEST, tooltip="pytest suites in containers from the built image") as group:
        for suite in service.tests.suites:
            PytestSuiteOperator(
                task_id=suite,
                suite=suite,
                image=IMAGE,
                coverage_source=service.tests.coverage_source,
                coverage_dir=COVERAGE_DIR,
                labels=test_labels(service.name),
                retries=0,
                execution_timeout=timedelta(seconds=service.tests.timeout_s),
                on_failure_callback=remember_failure,
            )
    if service.tests.coverage_threshold <= 0:
        return group, group
    gate = HardenedDockerOperator(
        task_id=COVERAGE_GATE,
        doc_md=f"Combined coverage of all suites must reach {service.tests.coverage_threshold} %.",
        image=IMAGE,
        command=suites.coverage_gate_command(service.tests.coverage_threshold),
        environment=suites.coverage_gate_environment(),
        mounts=[Mount(target=suites.COVERAGE_MOUNT, source=COVERAGE_DIR, type="bind")],
        docker_url=docker_url(),
        network_mode="host",
        mount_tmp_dir=False,
        auto_remove="force",
        labels=test_labels(service.name),
        limits=TEST_LIMITS,
        retries=0,
        on_failure_callback=remember_failure,
    )
    group >> gate
    return group, gate
