"""The release DAG's tests: the catalog's pytest suites, in parallel, each in a container from the built image.
Where the catalog asks for coverage (``tests.coverage_threshold`` above 0), the last suite to pass combines every
suite's coverage data in its own container and fails under the threshold (``pipeline/suites.py``): the gate is no
task of its own, which cost a task process and a container per release for a second of work."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TaskGroup

from deployflow.airflow.operators import PytestSuiteOperator, test_labels
from deployflow.airflow.record import remember_failure
from deployflow.airflow.task_ids import BUILD, TEST
from deployflow.catalog import Service

# The suites run the built image by its ID: what they test is what was built.
IMAGE = "{{ ti.xcom_pull(task_ids='" + BUILD + "')['image_id'] }}"
COVERAGE_DIR = "{{ ti.xcom_pull(task_ids='" + BUILD + "')['coverage_dir'] }}"


def suite_tasks(service: Service) -> TaskGroup:
    """The suites' task group."""
    with TaskGroup(TEST, tooltip="pytest suites in containers from the built image") as group:
        for suite in service.tests.suites:
            PytestSuiteOperator(
                task_id=suite,
                suite=suite,
                image=IMAGE,
                coverage_source=service.tests.coverage_source,
                coverage_dir=COVERAGE_DIR,
                threshold=service.tests.coverage_threshold,
                service_suites=service.tests.suites,
                labels=test_labels(service.name),
                retries=0,
                execution_timeout=timedelta(seconds=service.tests.timeout_s),
                on_failure_callback=remember_failure,
            )
    return group
