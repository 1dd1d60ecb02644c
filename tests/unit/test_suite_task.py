"""A suite task's verdict from its container's output: the suite's own, then the coverage gate's where it ran the
gate (the last suite to pass; pipeline/suites.py), through DockerOperator on a fake engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.operators import PytestSuiteOperator
from deployflow.pipeline.suites import GATE_MARK
from tests.unit.fakes import FakeDockerAPI

PASSED = [b"tests/unit/test_app.py ....", b"TOTAL      279     71    75%", b"===== 4 passed in 0.63s ====="]
FAILED = [b"FAILED tests/unit/test_app.py::test_port - assert 1 == 2",
          b"===== 1 failed, 3 passed in 0.70s ====="]
LEFT = [f"{GATE_MARK} left to the last suite to pass".encode()]
GATED = [f"{GATE_MARK} suites unit integration together, at least 80 %".encode(), b"TOTAL      279     31    89%"]
UNDER = [f"{GATE_MARK} suites unit integration together, at least 80 %".encode(), b"TOTAL      279     79    72%",
         b"Coverage failure: total of 72 is less than fail-under=80"]


def run(exit_code: int, logs: list[bytes], threshold: int = 80) -> dict:
    logs = [line + b"\n" for line in logs]  # as the engine streams them
    task = PytestSuiteOperator(task_id="unit", suite="unit", coverage_source="app", coverage_dir="/tmp/cov",
                               image="sha256:built", threshold=threshold, service_suites=("unit", "integration"))
    task.__dict__["hook"] = SimpleNamespace(api_client=FakeDockerAPI(exit_code, logs), client_created=True)
    return task.execute({})


def test_a_suite_that_passes_first_leaves_the_gate_and_reports_its_own_coverage():
    assert run(0, [*PASSED, *LEFT]) == {"suite": "unit", "ok": True, "counts": {"passed": 4}, "seconds": 0.63,
                                        "coverage": 75.0, "gate": None}


def test_the_suite_that_gates_reports_the_combined_coverage_beside_its_own():
    result = run(0, [*PASSED, *GATED])
    assert (result["coverage"], result["gate"]) == (75.0, 89.0)


def test_a_gate_under_the_threshold_fails_the_suite_with_the_combined_coverage():
    with pytest.raises(AirflowFailException, match=r"^coverage gate: the suites together cover 72 %, under "
                                                   r"tests.coverage_threshold 80 %$"):
        run(2, [*PASSED, *UNDER])


def test_a_failed_suite_fails_on_its_own_tests_never_on_a_gate():
    with pytest.raises(AirflowFailException, match=r"^suite unit: FAILED - 1 failed, 3 passed in 0.70s; "
                                                   r"failing: tests/unit/test_app.py::test_port$"):
        run(1, FAILED)


def test_a_gate_that_could_not_combine_says_so():
    with pytest.raises(AirflowFailException, match="could not be combined: .*No data to combine"):
        run(1, [*PASSED, GATED[0], b"No data to combine"])


def test_a_container_that_fails_after_its_suite_passed_is_no_pass():
    with pytest.raises(AirflowFailException, match=r"^suite unit: PASSED - 4 passed in 0.63s; coverage 75%, yet its "
                                                   r"container failed$"):
        run(137, PASSED, threshold=0)
