"""What the Releases view answers, as plain data (the JSON of its API, the context of its pages), put together
from what was read: the catalog, the ledger's cells, history and figures, the environment locks, the runs'
states as Airflow has them, the ad-hoc freeze. No reading here and no Airflow: each function takes what
it shows, so the same answer serves the API, the pages and the tests.

A cell is one service in one environment: the live version (the newest promoted release: commit, image
digest, configuration version, since when, by whom, with which strategy and run), the newest release when
it is not the live one (a rollback after it, say), and what waits: the run holding the environment's lock
(a release under way, and an approval it waits for), the runs queued behind it, a freeze.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from deployflow.catalog.model import Service
from deployflow.catalog.watching import CatalogReading
from deployflow.governance.freeze import AdHocFreeze, frozen
from deployflow.ledger.entry import ReleaseEntry
from deployflow.ledger.figures import Figures, Period
from deployflow.ledger.live import Cell, Key, LockState, Page
from deployflow.ledger.locks import Holder
from deployflow.policies import ENVIRONMENTS

RunKey = tuple[str, str]  # (dag_id, run_id)


@dataclass(frozen=True)
class Gate:
    """A task of a run waiting for a person's answer (Airflow's human-in-the-loop: awaiting input)."""

    task_id: str
    since: str | None  # ISO 8601


@dataclass(frozen=True)
class RunStatus:
    """A run as Airflow has it: its state (None: Airflow has no such run) and the gates that wait."""

    state: str | None
    gates: tuple[Gate, ...] = ()


class AirflowState(Protocol):
    """What the view asks Airflow, beside its auth manager."""

    def runs(self, keys: set[RunKey]) -> dict[RunKey, RunStatus]:
        """The state and waiting gates of each run of ``keys`` that Airflow knows."""

    def freeze_variable(self) -> str | None:
        """The ad-hoc freeze's JSON (the Variable ``deployflow_freeze``), None when it is not set."""

    def teams(self, dag_ids: set[str]) -> dict[str, str | None]:
        """The team owning each DAG in a multi-team Airflow (empty otherwise)."""


def service_names(reading: CatalogReading, cells: Iterable[Key]) -> list[str]:
    """Every service the catalog names (a bad file too) or the ledger has a release of, sorted."""
    named = {*reading.services, *(p.service for p in reading.problems if not p.service.startswith("("))}
    return sorted(named | {service for service, _ in cells})


def live_of(entry: ReleaseEntry) -> dict[str, Any]:
    """The live version: what runs, since when, by whom, how it got there."""
    return {"version": entry.version, "commit": entry.commit, "digest": entry.digest, "config": entry.config,
            "since": entry.finished_at, "by": entry.requested_by, "strategy": entry.strategy, "run_id": entry.run_id,
            "promoted_from": entry.promoted_from, "approved_by": entry.approved_by, "reason": entry.reason}


def newest_of(entry: ReleaseEntry) -> dict[str, Any]:
    """The newest release, when it is not the live one: how it ended and why."""
    return {"outcome": entry.outcome.value, "detail": entry.outcome_detail, "failure": entry.failure,
            "version": entry.version, "finished_at": entry.finished_at, "by": entry.requested_by, "run_id": entry.run_id}


def _run(holder: Holder, runs: Mapping[RunKey, RunStatus], since_name: str) -> dict[str, Any]:
    status = runs.get((holder.dag_id, holder.run_id))
    return {"run_id": holder.run_id, "dag_id": holder.dag_id, since_name: holder.taken_at,
            "state": status.state if status else None,
            "approvals": [asdict(g) for g in status.gates] if status else []}


@dataclass(frozen=True)
class Moment:
    """What holds for every cell at the time of the answer: now, and the ad-hoc freeze (None: none)."""

    now: datetime
    adhoc: AdHocFreeze | None


def cell_of(key: Key, service: Service | None, cell: Cell | None, locks: LockState,
            runs: Mapping[RunKey, RunStatus], moment: Moment) -> dict[str, Any]:
    """One service in one environment, as the grid and the service page show it."""
    _, environment = key
    defined = service is not None and environment in service.environments
    # A freeze holds releases to an environment the service releases to: one it does not name shows none.
    holding = frozen(service.environments[environment].freeze, moment.adhoc, environment, moment.now) if defined else None
    holder = locks.holders.get(key)
    newest = cell.newest if cell else None
    live = cell.live if cell else None
    return {
        "environment": environment,
        "in_catalog": defined,
        "live": live_of(live) if live else None,
        "newest": newest_of(newest) if newest and (live is None or newest.run_id != live.run_id) else None,
        "waits": {
            "lock": _run(holder, runs, "since") if holder else None,
            "queued": [_run(w, runs, "queued_at") for w in locks.queued.get(key, [])],
            "freeze": None if holding is None else {
                "name": holding.name, "source": holding.source, "message": holding.message(environment),
                "ends_at": holding.ends_at.isoformat() if holding.ends_at else None},
        },
    }


@dataclass(frozen=True)
class Seen:
    """What was read for one answer."""

    reading: CatalogReading
    cells: Mapping[Key, Cell]
    locks: LockState
    runs: Mapping[RunKey, RunStatus]
    moment: Moment


def row_of(name: str, seen: Seen, *, dag_id: str, can_act: bool) -> dict[str, Any]:
    """A service's row of the grid: a cell per environment."""
    service = seen.reading.services.get(name)
    problem = next((p.message for p in seen.reading.problems if p.service == name), None)
    return {
        "service": name, "dag_id": dag_id, "can_act": can_act, "in_catalog": service is not None,
        "catalog_problem": problem, "owner": service.owner if service else None,
        "cells": [cell_of((name, env), service, seen.cells.get((name, env)), seen.locks, seen.runs, seen.moment)
                  for env in ENVIRONMENTS],
    }


def problems_of(reading: CatalogReading, shown: set[str]) -> list[dict[str, str]]:
    """The catalog's problems a reader may see: those of the services shown and those of the whole catalog."""
    return [asdict(p) for p in reading.problems if p.service in shown or p.service.startswith("(")]


def grid(rows: list[dict[str, Any]], seen: Seen, *, user: str, freeze_problem: str | None) -> dict[str, Any]:
    """The grid: services x environments."""
    shown = {row["service"] for row in rows}
    return {
        "generated_at": seen.moment.now.isoformat(), "user": user, "environments": list(ENVIRONMENTS),
        "services": rows, "problems": problems_of(seen.reading, shown),
        "freeze_problem": freeze_problem,  # the ad-hoc freeze's Variable, when it could not be read
    }


def environment_of(service: Service | None, cell: dict[str, Any]) -> dict[str, Any]:
    """A cell of the service page, with how the catalog sets that environment up."""
    env = service.environments.get(cell["environment"]) if service else None
    return {**cell, "setup": None if env is None else {
        "platform": env.platform, "strategy": env.strategy, "replicas": env.replicas,
        "approval_required": env.approval.required, "approval_before": env.approval.before,
        "requires": env.requires, "freeze_windows": [w.name for w in env.freeze]}}


def service_page(row: dict[str, Any], service: Service | None, *, page: Page, environment: str | None,
                 period: Period, found: list[Figures]) -> dict[str, Any]:
    """A service's page: its environments, its history a page at a time, its figures per environment."""
    return {
        **{k: row[k] for k in ("service", "dag_id", "can_act", "in_catalog", "catalog_problem", "owner")},
        "description": service.description if service else None,
        "environments": [environment_of(service, cell) for cell in row["cells"]],
        "period": {"since": period.since.isoformat(), "until": period.until.isoformat(), "days": period.days},
        "figures": [asdict(f) for f in found],
        "history": {"total": page.total, "limit": page.limit, "offset": page.offset, "environment": environment,
                    "releases": [e.to_dict() for e in page.releases]},
    }
