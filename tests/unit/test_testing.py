from __future__ import annotations

import os
import subprocess

import pytest

from deployflow.pipeline.suites import (
    GATE_MARK,
    LAST_SUITE_GATES,
    gate_coverage,
    read_pytest_output,
    split_gate,
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


PYTEST = ["python3", "-m", "pytest", "tests/unit", "-p", "no:cacheprovider",
          "--cov=app", "--cov-report=term", "-o", "console_output_style=classic"]


def test_suite_command_and_environment_are_exact():
    assert suite_command("unit", "app") == PYTEST
    assert suite_environment("integration") == {"COVERAGE_FILE": "/coverage/.coverage.integration"}


def test_with_a_threshold_the_suite_runs_pytest_then_the_gate_script():
    # The catalog's coverage_source reaches the script as an argument of pytest's, never as script text.
    assert suite_command("unit", "app", threshold=80) == ["sh", "-c", LAST_SUITE_GATES, "coverage-gate", *PYTEST]
    assert suite_environment("unit", suites=("unit", "integration"), threshold=80) == {
        "COVERAGE_FILE": "/coverage/.coverage.unit", "DEPLOYFLOW_SUITE": "unit",
        "DEPLOYFLOW_SUITES": "unit integration", "DEPLOYFLOW_COVERAGE_THRESHOLD": "80"}


# The gate script, run by a real sh against a fake python3 that records its calls and reports TOTAL $FAKE_TOTAL %,
# failing under the threshold as coverage.py does (exit 2).
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$3" = report ]; then
  echo "TOTAL      279     31    $FAKE_TOTAL%"
  threshold=${5#--fail-under=}
  [ "$FAKE_TOTAL" -ge "$threshold" ] || { echo "Coverage failure: total of $FAKE_TOTAL is less than fail-under=$threshold"; exit 2; }
fi
"""


@pytest.fixture
def gate(tmp_path):
    bin_dir, data = tmp_path / "bin", tmp_path / "coverage"
    bin_dir.mkdir(), data.mkdir()
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    calls = tmp_path / "calls"

    def run(suite: str, *, passes: bool = True, total: int = 90) -> tuple[int, list[str], list[str]]:
        environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
                       "FAKE_TOTAL": str(total),
                       **suite_environment(suite, suites=("unit", "integration", "performance"), threshold=80)}
        environment["COVERAGE_FILE"] = str(data / f".coverage.{suite}")
        calls.unlink(missing_ok=True)
        done = subprocess.run(["sh", "-c", LAST_SUITE_GATES, "coverage-gate", "true" if passes else "false"],
                              env=environment, capture_output=True, text=True, timeout=30)
        made = calls.read_text().splitlines() if calls.exists() else []
        return done.returncode, done.stdout.splitlines(), made

    run.data = data
    return run


def test_a_suite_that_passes_before_the_others_leaves_the_gate_to_the_last(gate):
    code, out, calls = gate("unit")
    assert (code, calls) == (0, [])
    assert out == [f"{GATE_MARK} left to the last suite to pass"]
    assert gate_coverage(split_gate(out)[1]) is None
    assert (gate.data / ".passed.unit").exists()


def test_the_last_suite_to_pass_combines_every_suite_and_gates(gate):
    gate("unit"), gate("performance")
    code, out, calls = gate("integration")
    data = gate.data
    assert code == 0
    assert out[0] == f"{GATE_MARK} suites unit integration performance together, at least 80 %"
    assert calls == [
        f"-m coverage combine --keep --data-file={data}/.gate.integration {data}/.coverage.unit "
        f"{data}/.coverage.integration {data}/.coverage.performance",
        f"-m coverage report --data-file={data}/.gate.integration --fail-under=80",
    ]
    assert gate_coverage(split_gate(out)[1]) == 90.0


def test_two_suites_that_pass_at_once_each_gate_into_a_file_of_their_own(gate):
    gate("unit")
    for suite in ("integration", "performance"):  # both marked before either looks
        (gate.data / f".passed.{suite}").touch()
    reports = [gate(suite)[2][-1] for suite in ("integration", "performance")]
    assert reports == [f"-m coverage report --data-file={gate.data}/.gate.{suite} --fail-under=80"
                       for suite in ("integration", "performance")]


def test_the_gate_fails_the_last_suite_under_the_threshold(gate):
    gate("unit"), gate("integration")
    code, out, _ = gate("performance", total=72)
    assert code == 2
    assert gate_coverage(split_gate(out)[1]) == 72.0


def test_a_failing_suite_marks_nothing_and_gates_nothing(gate):
    gate("unit"), gate("integration")
    code, out, calls = gate("performance", passes=False)
    assert (code, out, calls) == (1, [], [])
    assert not (gate.data / ".passed.performance").exists()


def test_a_suite_s_own_lines_and_its_gate_s_are_read_apart():
    gate_lines = [f"{GATE_MARK} suites unit integration together, at least 80 %", "TOTAL      210     21    90%"]
    own, gate_part = split_gate([*PASSING, *gate_lines])
    assert (own, gate_part) == (PASSING, gate_lines)
    assert read_pytest_output("unit", own).coverage == 77.0  # the suite's own, not the combined
    assert split_gate(PASSING) == (PASSING, [])


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
