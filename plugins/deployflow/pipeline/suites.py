"""Test stage: the pytest command of each suite, reading its outcome, and the coverage gate.

Each suite runs in its own container from the built image; every suite
writes its coverage data to a shared directory. Where the catalog asks for
coverage, the suite that passes last combines every suite's data in its own
container and fails under the threshold, so the threshold applies to what the
suites cover together, with no task or container of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

COVERAGE_MOUNT = "/coverage"
_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")
_DURATION = re.compile(r" in ([\d.]+)s")
_TOTAL = re.compile(r"^TOTAL\s+.*?(\d+(?:\.\d+)?)%\s*$")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


def suite_command(suite: str, coverage_source: str, *, threshold: int = 0) -> list[str]:
    """The command of one suite, run from the image's working directory: pytest, then, where ``threshold`` is
    above 0, the coverage gate if this suite is the last of the service's to pass (:data:`LAST_SUITE_GATES`)."""
    pytest = [
        "python3", "-m", "pytest", f"tests/{suite}",
        "-p", "no:cacheprovider",  # the image's tree may be read-only for its user
        f"--cov={coverage_source}", "--cov-report=term",
        "-o", "console_output_style=classic",
    ]
    return ["sh", "-c", LAST_SUITE_GATES, "coverage-gate", *pytest] if threshold > 0 else pytest


def suite_environment(suite: str, *, suites: Sequence[str] = (), threshold: int = 0) -> dict[str, str]:
    """Where the suite writes its coverage data (``COVERAGE_FILE`` is read by coverage.py), and, where there is
    a gate, the suites it waits for and the threshold (read by :data:`LAST_SUITE_GATES`)."""
    environment = {"COVERAGE_FILE": f"{COVERAGE_MOUNT}/.coverage.{suite}"}
    if threshold > 0:
        environment |= {"DEPLOYFLOW_SUITE": suite, "DEPLOYFLOW_SUITES": " ".join(suites),
                        "DEPLOYFLOW_COVERAGE_THRESHOLD": str(int(threshold))}
    return environment


GATE_MARK = "deployflow coverage gate:"
# sh -c's script, the suite's pytest command its arguments: pytest; then a mark that this suite passed (written
# once its coverage data is); then, if every suite's mark is there, the gate over all their data. Each suite marks
# before it looks, so the last to pass sees every mark; two that pass at once may both gate, each into its own
# file, over the same data, to the same verdict. A failed suite gates nothing: the release fails on it anyway.
LAST_SUITE_GATES = f"""\
"$@" || exit
data=${{COVERAGE_FILE%/*}}
: > "$data/.passed.$DEPLOYFLOW_SUITE" || exit
set --
for suite in $DEPLOYFLOW_SUITES; do
  [ -e "$data/.passed.$suite" ] || {{ echo "{GATE_MARK} left to the last suite to pass"; exit 0; }}
  set -- "$@" "$data/.coverage.$suite"
done
echo "{GATE_MARK} suites $DEPLOYFLOW_SUITES together, at least $DEPLOYFLOW_COVERAGE_THRESHOLD %"
python3 -m coverage combine --keep "--data-file=$data/.gate.$DEPLOYFLOW_SUITE" "$@" >/dev/null || exit
exec python3 -m coverage report "--data-file=$data/.gate.$DEPLOYFLOW_SUITE" "--fail-under=$DEPLOYFLOW_COVERAGE_THRESHOLD"
"""


@dataclass(frozen=True)
class SuiteOutcome:
    """What one pytest run said about itself."""

    suite: str
    counts: dict[str, int]
    seconds: float | None
    coverage: float | None
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Tests ran and none failed: a run that never reached pytest's summary is not a pass."""
        failed = self.counts.get("failed") or self.counts.get("error") or self.counts.get("errors")
        return bool(self.counts.get("passed")) and not failed

    def summary(self) -> str:
        """One line for the task log: counts, time, coverage, first failures."""
        counts = ", ".join(f"{n} {word}" for word, n in self.counts.items()) or "no tests reported"
        line = f"suite {self.suite}: {'PASSED' if self.ok else 'FAILED'} - {counts}"
        if self.seconds is not None:
            line += f" in {self.seconds:.2f}s"
        if self.coverage is not None:
            line += f"; coverage {self.coverage:g}%"
        if self.failures:
            shown = ", ".join(self.failures[:3])
            more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
            line += f"; failing: {shown}{more}"
        return line


def read_pytest_output(suite: str, lines: Iterable[str]) -> SuiteOutcome:
    """Parse pytest's closing line, pytest-cov's TOTAL line and the short failure summary."""
    counts: dict[str, int] = {}
    seconds = coverage = None
    failures: list[str] = []
    for raw in lines:
        line = raw.strip()
        if (m := _TOTAL.match(line)) is not None:
            coverage = float(m.group(1))
        elif (m := _FAILED.match(line)) is not None:
            failures.append(m.group(2))
        elif line.startswith("=") and " in " in line and _COUNTS.search(line):
            counts = {word: int(n) for n, word in _COUNTS.findall(line)}
            if (d := _DURATION.search(line)) is not None:
                seconds = float(d.group(1))
    return SuiteOutcome(suite, counts, seconds, coverage, tuple(failures))


def split_gate(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """A suite container's output as the suite's own lines and the coverage gate's, from its mark on (none
    where the suite had no gate)."""
    lines = list(lines)
    at = next((i for i, line in enumerate(lines) if line.startswith(GATE_MARK)), len(lines))
    return lines[:at], lines[at:]


def gate_coverage(gate_lines: Iterable[str]) -> float | None:
    """The combined coverage the gate reported; None where it did not report (another suite gates)."""
    return read_pytest_output("gate", gate_lines).coverage
