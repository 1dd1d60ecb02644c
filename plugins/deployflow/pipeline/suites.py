"""Test stage: the pytest command of each suite, reading its outcome, and the coverage gate.

Each suite runs in its own container from the built image; every suite
writes its coverage data to a shared directory, and the gate combines them
so the threshold applies to what the suites cover together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

COVERAGE_MOUNT = "/coverage"
_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)")
_DURATION = re.compile(r" in ([\d.]+)s")
_TOTAL = re.compile(r"^TOTAL\s+.*?(\d+(?:\.\d+)?)%\s*$")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


def suite_command(suite: str, coverage_source: str) -> list[str]:
    """The pytest command of one suite, run from the image's working directory."""
    return [
        "python3", "-m", "pytest", f"tests/{suite}",
        "-p", "no:cacheprovider",  # the image's tree may be read-only for its user
        f"--cov={coverage_source}", "--cov-report=term",
        "-o", "console_output_style=classic",
    ]


def suite_environment(suite: str) -> dict[str, str]:
    """Where the suite writes its coverage data (``COVERAGE_FILE`` is read by coverage.py)."""
    return {"COVERAGE_FILE": f"{COVERAGE_MOUNT}/.coverage.{suite}"}


def coverage_gate_command(threshold: int) -> list[str]:
    """Combine every suite's data and fail under ``threshold`` percent."""
    script = (
        "python3 -m coverage combine --keep >/dev/null"
        f" && python3 -m coverage report --fail-under={int(threshold)}"
    )
    return ["sh", "-c", script]


def coverage_gate_environment() -> dict[str, str]:
    return {"COVERAGE_FILE": f"{COVERAGE_MOUNT}/.coverage"}


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
