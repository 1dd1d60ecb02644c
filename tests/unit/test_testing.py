from __future__ import annotations

from deployflow.pipeline.suites import (
    coverage_gate_command,
    coverage_gate_environment,
    read_pytest_output,
    suite_command,
    suite_environment,
)

PASSING = """\
============================= test session starts ==============================
collected 14 items

tests/unit/test_config.py ..............                                 [100%]

---------- coverage: platform linux, python 3.11.2-final-0 -----------
Name     Stmts   Miss  Cover
----------------------------
app.py     210     48    77%
----------------------------
TOTAL      210     48    77%

============================== 14 passed in 0.42s ==============================
""".splitlines()

FAILING = """\
tests/unit/test_config.py .F..F
=================================== FAILURES ===================================
___________________________ test_port ____________________________
E   assert 8000 == 8001
TOTAL      210     60    71.43%
=========================== short test summary info ============================
FAILED tests/unit/test_config.py::test_port - assert 8000 == 8001
FAILED tests/unit/test_config.py::test_bind - AssertionError
ERROR tests/unit/test_metrics.py::test_render - fixture 'x' not found
=================== 2 failed, 3 passed, 1 error, 1 warning in 1.07s ===================
""".splitlines()


def test_suite_command_and_environment_are_exact():
    assert suite_command("unit", "app") == [
        "python3", "-m", "pytest", "tests/unit", "-p", "no:cacheprovider",
        "--cov=app", "--cov-report=term", "-o", "console_output_style=classic",
    ]
    assert suite_environment("integration") == {"COVERAGE_FILE": "/coverage/.coverage.integration"}


def test_gate_combines_then_reports_against_the_threshold():
    assert coverage_gate_command(80) == [
        "sh", "-c",
        "python3 -m coverage combine --keep >/dev/null && python3 -m coverage report --fail-under=80",
    ]
    assert coverage_gate_environment() == {"COVERAGE_FILE": "/coverage/.coverage"}


def test_a_passing_run_is_summarised_in_one_line():
    outcome = read_pytest_output("unit", PASSING)
    assert outcome.ok
    assert outcome.summary() == "suite unit: PASSED - 14 passed in 0.42s; coverage 77%"


def test_a_failing_run_names_its_failures():
    outcome = read_pytest_output("unit", FAILING)
    assert not outcome.ok
    assert outcome.counts == {"failed": 2, "passed": 3, "error": 1, "warning": 1}
    assert outcome.coverage == 71.43
    assert outcome.summary() == (
        "suite unit: FAILED - 2 failed, 3 passed, 1 error, 1 warning in 1.07s; coverage 71.43%; "
        "failing: tests/unit/test_config.py::test_port, tests/unit/test_config.py::test_bind, "
        "tests/unit/test_metrics.py::test_render"
    )


def test_a_run_that_never_reached_pytest_is_not_a_pass():
    outcome = read_pytest_output("unit", ["/usr/bin/python3: No module named pytest"])
    assert not outcome.ok
    assert outcome.summary() == "suite unit: FAILED - no tests reported"
