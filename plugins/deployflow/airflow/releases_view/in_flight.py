"""The releases in flight on a service's page, as plain data: for each environment whose lock a run holds, the
run, its current steps (its tasks running, deferred or waiting, as Airflow has them), the traffic split the
deployer's release record says (who takes what share, by version), each canary analysis interval's verdict
as the sensor pushed it (``task_ids.interval_verdict_key``) and each post-promotion watch interval's as the
deployer keeps it in the release record (``rollout.watch.watch_verdict``). No reading here and no Airflow: each function
takes what it shows, so the same answer serves the JSON, the page's panel and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from deployflow.catalog import Service
from deployflow.record import Record

RunKey = tuple[str, str]  # (dag_id, run_id)


@dataclass(frozen=True)
class Step:
    """A task of a run that is under way: running, deferred (waiting in the triggerer), or waiting its turn."""

    task_id: str
    state: str
    since: str | None  # ISO 8601


@dataclass(frozen=True)
class RunProgress:
    """How far a run got, as Airflow has it: its current steps, and the analysis' verdicts, interval by interval."""

    steps: tuple[Step, ...] = ()
    verdicts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RecordReading:
    """An environment's release record as read (None: there is none yet), or why it could not be read."""

    record: Record | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Share:
    """One version's share of the environment's traffic: ``track`` is what it is in the release."""

    track: str
    colour: str | None
    version: str | None
    percent: int


@dataclass(frozen=True)
class Split:
    """The traffic split a release record says: the shares, and a sentence where it has no split to say."""

    shares: tuple[Share, ...] = ()
    note: str | None = None
    under_way: bool = False  # the record is of a release not finished yet
    version: str | None = None  # the release's version, as the record has it

    def to_dict(self) -> dict[str, Any]:
        return {"under_way": self.under_way, "version": self.version, "note": self.note,
                "shares": [asdict(s) for s in self.shares]}


class RunProgressState(Protocol):
    """What the in-flight panel asks Airflow."""

    def progress(self, keys: set[RunKey]) -> dict[RunKey, RunProgress]:
        """Each run's current steps and its analysis' verdicts so far."""


class ReleaseRecords(Protocol):
    """Where the deployer keeps each environment's release record (a file on a Docker host, a ConfigMap)."""

    def read(self, service: Service, environment: str) -> RecordReading:
        """The environment's release record, read only; a problem, never an exception, when it cannot be."""


def split_of(record: Record) -> Split:
    """Who takes what share of the traffic, as the record's last finished step left it (``routers.base.Split``'s
    arithmetic: a baseline takes as much as the canary, out of the stable share)."""
    under_way = record.outcome is None and not record.already_live
    if not under_way:
        serving = record.version if record.serving == record.colour else (record.previous.version if record.previous else None)
        note = "no release under way in the record yet: it is still the last finished one's"
        return Split((Share("stable", record.serving, serving, 100),) if serving else (), note, False, record.version)
    old = record.previous.version if record.previous else None
    if old is None:
        return Split((Share("new", record.colour, record.version, 100 if record.percent else 0),),
                     "a first deploy: nothing to share traffic with", True, record.version)
    percent = max(0, min(100, record.percent))
    baseline = min(percent, 100 - percent) if record.baseline else 0
    shares = [Share("canary" if percent < 100 else "stable", record.colour, record.version, percent)]
    if baseline:
        shares.append(Share("baseline", "baseline", old, baseline))
    shares.append(Share("stable" if percent < 100 else "old", record.live if record.live != record.colour else None, old,
                        100 - percent - baseline))
    in_place = record.live == record.colour
    return Split(tuple(shares), "replaced in place: shares are of the instances replaced so far" if in_place else None,
                 True, record.version)


def metric_rows(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The verdict table of one interval: a row a metric (label, estimate, interval, ratio, reason)."""
    rows = []
    for name, found in (verdict.get("metrics") or {}).items():
        ci = found.get("ci") or [None, None]
        rows.append({"metric": str(name), "label": found.get("label"), "estimate": found.get("estimate"),
                     "ci_low": ci[0] if len(ci) > 0 else None, "ci_high": ci[1] if len(ci) > 1 else None,
                     "ratio": found.get("ratio"), "reason": found.get("reason")})
    return rows


def interval_of(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """One judged interval: its result, what it decided, its score and reasons (or the guard that failed it),
    and its table."""
    return {"interval": verdict.get("interval"), "result": verdict.get("result"), "decision": verdict.get("decision"),
            "final": bool(verdict.get("final")), "score": verdict.get("score"), "guard": verdict.get("guard"),
            "failure": verdict.get("failure"), "reasons": [str(r) for r in verdict.get("reasons") or ()],
            "metrics": metric_rows(verdict)}


def environment_in_flight(environment: str, holder: Mapping[str, Any], progress: RunProgress | None,
                          record: RecordReading | None) -> dict[str, Any]:
    """One environment's release in flight: ``holder`` is the cell's lock (``board.cell_of``'s ``waits.lock``)."""
    split = split_of(record.record) if record and record.record else None
    watched = record.record.watch if split and split.under_way else ()
    return {
        "environment": environment, "run_id": holder["run_id"], "dag_id": holder["dag_id"], "since": holder.get("since"),
        "state": holder.get("state"), "approvals": holder.get("approvals") or [],
        "steps": [asdict(s) for s in progress.steps] if progress else [],
        "split": split.to_dict() if split else None,
        "record_problem": (record.problem if record else None) or (None if split else "no release record yet"),
        "analysis": [interval_of(v) for v in sorted(progress.verdicts if progress else (),
                                                    key=lambda v: v.get("interval") or 0)],
        "watch": [interval_of(v) for v in watched],  # the post-promotion watch's, from the release record
    }


def in_flight(service: str, cells: Sequence[Mapping[str, Any]], progress: Mapping[RunKey, RunProgress],
              records: Mapping[str, RecordReading], *, generated_at: str) -> dict[str, Any]:
    """The service's releases in flight, an environment each (those whose lock a run holds)."""
    flying = []
    for cell in cells:
        holder = cell["waits"]["lock"]
        if holder is None:
            continue
        flying.append(environment_in_flight(cell["environment"], holder, progress.get((holder["dag_id"], holder["run_id"])),
                                            records.get(cell["environment"])))
    return {"service": service, "generated_at": generated_at, "in_flight": flying}
