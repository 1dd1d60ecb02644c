"""What the client reads of a finished run: its tasks' timings, the reason a task failed, how long it took."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deployflow.client.api import UnexpectedAnswer


@dataclass(frozen=True)
class TaskTiming:
    task_id: str
    state: str | None
    seconds: float | None
    try_number: int


def timings(task_instances: list[dict[str, Any]]) -> list[TaskTiming]:
    """Per-task timings in start order (tasks that never started last)."""
    def start(ti: dict[str, Any]) -> str:
        return ti.get("start_date") or "9999"

    return [
        TaskTiming(ti["task_id"], ti.get("state"), ti.get("duration"), ti.get("try_number", 0))
        for ti in sorted(task_instances, key=start)
    ]


def failure_reason(entries: list[dict[str, Any]]) -> str | None:
    """The message of the exception that failed the task, from its log entries."""
    for entry in reversed(entries):
        for detail in entry.get("error_detail") or []:
            return f"{detail.get('exc_type')}: {detail.get('exc_value')}"
    return None


def run_seconds(run: dict[str, Any]) -> float | None:
    if not (run.get("start_date") and run.get("end_date")):
        return None
    parse = datetime.fromisoformat
    return (parse(run["end_date"].replace("Z", "+00:00")) - parse(run["start_date"].replace("Z", "+00:00"))).total_seconds()


_DURATION = re.compile(r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                       r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?")


def duration_seconds(value: object) -> float | None:
    """Seconds of a duration as Airflow's API gives it (ISO 8601, ``PT1H30M``; or a number of seconds); None for none.

    :raises UnexpectedAnswer: anything else.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.fullmatch(value) if isinstance(value, str) and value not in ("P", "PT") else None
    if found is None or value.endswith("T"):
        raise UnexpectedAnswer(f"{value!r} is not a duration (ISO 8601, such as PT1H30M)")
    days, hours, minutes, seconds = (float(found[k] or 0) for k in "dhms")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
