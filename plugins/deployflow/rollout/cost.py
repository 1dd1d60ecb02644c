"""What a release cost its users and its hosts, from what the engine saw as it went.

- Requests: the router's counters when the release began and when it ended (``counters_delta``): 5xx answers
  and cut responses are failed requests; connection errors, retries and redispatches are requests the router
  saved (the client never saw them fail). A proxy restarted in between counts again from 0, so the figures
  are then what it counted since.
- Instances: the timeline of instances running beyond the environment's size while the old version still
  stood (``extra_now`` at every change, 0 at the end): blue-green doubles the capacity for the whole overlap,
  a canary adds a few instances, rolling one batch at a time. Its integral is ``extra_instance_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

log = logging.getLogger("deployflow.deployer")

FAILED = ("frontend_hrsp_5xx", "backend_srv_abrt")
SAVED = ("backend_econ", "backend_eresp", "backend_wretr", "backend_wredis")


def counters_delta(before: Mapping[str, int] | None, after: Mapping[str, int]) -> dict[str, int]:
    """Each counter's increase; where one went down (a restarted proxy) its value since the restart."""
    if not before or not after:
        return {}
    return {k: (v - before[k] if v >= before.get(k, 0) else v) for k, v in after.items() if k in before}


def request_cost(before: Mapping[str, int] | None, after: Mapping[str, int]) -> dict[str, int]:
    """``requests``, ``failed_requests`` and ``saved_by_router`` over the release ({} without router counters)."""
    delta = counters_delta(before, after)
    if not delta:
        return {}
    return {"requests": delta.get("frontend_req_tot", 0), "failed_requests": sum(delta.get(k, 0) for k in FAILED),
            "saved_by_router": sum(delta.get(k, 0) for k in SAVED)}


def extra_now(replicas: int, *sizes: int | None) -> int:
    """Instances running beyond the environment's size, given each set's size (None: a set left as it is, full)."""
    return max(0, sum(replicas if size is None else size for size in sizes) - replicas)


def extra_instance_seconds(timeline: Sequence[Sequence[float]]) -> float:
    """The integral of the extra instances over time: each point's count until the next point."""
    points = sorted((float(t), int(n)) for t, n in timeline)
    return round(float(sum(n * (later - t) for (t, n), (later, _) in zip(points, points[1:]))), 1)


def release_cost(record: Any, counters_now: Mapping[str, int]) -> dict[str, Any]:
    """The cost figures a finished release reports (promote's or rollback's result)."""
    cost: dict[str, Any] = {**request_cost(record.counters, counters_now),
                            "extra_instance_seconds": extra_instance_seconds(record.timeline)}
    if record.restore_seconds is not None:
        cost["restore_seconds"] = record.restore_seconds
    return cost


def counters(traffic: Any) -> dict[str, int]:
    """The router's counters now; {} when they cannot be read (a figure never fails a step)."""
    try:
        return traffic.counters()
    except Exception as exc:  # noqa: BLE001 - a figure, not a step
        log.warning("could not read the router's counters: %s", exc)
        return {}


def at(now: Callable[[], float], record: Any, extra: int) -> Any:
    """``record`` with one more point of its timeline, where the count of extra instances changes."""
    if record.timeline and record.timeline[-1][1] == extra:
        return record
    return replace(record, timeline=(*record.timeline, (round(now(), 3), extra)))
