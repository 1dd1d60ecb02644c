"""The release figures, computed in SQL from the ledger: aggregate queries that run on SQLite and PostgreSQL.

Definitions (the module ``report`` prints them; docs/concepts/metrics.md says why):

- a release *reached the deploy* when its outcome (``deployflow.outcomes.Outcome``) is promoted, rolled back (to
  a version, or on a first deploy with nothing left) or failed (the deploy began and was not rolled back).
  Refused, rejected, failed-before-deploy and already-live runs are not changes (a rejection's own rollback is the
  gate's decision, not a failed change; an already-live run deployed nothing): they count in ``releases`` (rejected
  ones also in ``rejected``) and in no rate, nor in the deployment frequency or the lead time.
- *deployment frequency*: promoted releases per day (and per week) of the period.
- *lead time for changes*: from ``committed_at`` to the promoted release's ``finished_at`` (median, mean).
- *change failure rate*: rolled back or failed, over the releases that reached the deploy.
- *time to restore*, two figures: by rollback, the rolled-back release's own ``rollback_seconds`` (median);
  to a good release, from a failed change's ``finished_at`` to the next promoted ``finished_at`` of that
  service in that environment (median; a failure not yet followed by a promotion is counted as open).
- *success rate*: promoted over reached the deploy; *mean deploy time*: ``seconds`` of promoted releases;
  *mean rollback time*: ``rollback_seconds`` of rolled-back releases.

Timestamps are ISO 8601 text; their differences need each dialect's own date arithmetic (:class:`SecondsBetween`,
written once). Medians are SQL too: ``percentile_cont(0.5)`` on PostgreSQL; on SQLite, which has no percentile
aggregate, the middle row(s) by ``row_number()`` over the ordered values and their ``count()``, averaged (the
same value percentile_cont gives). The period bounds compare ``finished_at`` as text, as ``Ledger.entries`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from deployflow.ledger.schema import releases as r
from deployflow.outcomes import Outcome

# The classes of outcome the figures count, as the ledger's values.
PROMOTED, ROLLED_BACK, FAILED, REJECTED = Outcome.PROMOTED.value, Outcome.ROLLED_BACK.value, Outcome.FAILED.value, Outcome.REJECTED.value
NOT_A_CHANGE = "not a change"
CHANGES = (PROMOTED, ROLLED_BACK, FAILED)  # the outcomes of releases that reached the deploy


class SecondsBetween(ColumnElement):
    """Seconds from one ISO 8601 text timestamp to another, in the dialect's own date arithmetic."""

    type = sa.Float()
    inherit_cache = True
    # Both ends are part of the statement's cache key: two durations between other columns never share a compiled form.
    _traverse_internals = [("start", InternalTraversal.dp_clauseelement), ("end", InternalTraversal.dp_clauseelement)]

    def __init__(self, start: ColumnElement, end: ColumnElement) -> None:
        self.start, self.end = start, end


@compiles(SecondsBetween, "sqlite")
def _sqlite_seconds(element: SecondsBetween, compiler: Any, **kw: Any) -> str:
    # julianday() reads ISO 8601 with fractional seconds and a +HH:MM or Z offset: days as a double.
    return f"((julianday({compiler.process(element.end, **kw)}) - julianday({compiler.process(element.start, **kw)})) * 86400.0)"


@compiles(SecondsBetween, "postgresql")
def _postgresql_seconds(element: SecondsBetween, compiler: Any, **kw: Any) -> str:
    epoch = "CAST(EXTRACT(EPOCH FROM CAST({} AS TIMESTAMPTZ)) AS DOUBLE PRECISION)"
    return f"({epoch.format(compiler.process(element.end, **kw))} - {epoch.format(compiler.process(element.start, **kw))})"


def outcome_class(outcome: Any = r.c.outcome) -> ColumnElement:
    """The outcome of a release that reached the deploy (:data:`CHANGES`), else :data:`NOT_A_CHANGE`."""
    return sa.case((outcome.in_(CHANGES), outcome), else_=NOT_A_CHANGE)


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``since`` to ``until`` inclusive."""

    since: date
    until: date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def bounds(self) -> tuple[str, str]:
        """``finished_at`` >= the first, < the second: dates as text sort before every time of their day."""
        return self.since.isoformat(), date.fromordinal(self.until.toordinal() + 1).isoformat()


@dataclass(frozen=True)
class Figures:
    """One service in one environment over a period; None where there is nothing to measure."""

    service: str
    environment: str
    releases: int
    changes: int  # reached the deploy
    promoted: int
    rolled_back: int
    failed: int  # the deploy began and was not rolled back
    rejected: int  # an approval gate did not approve (not a change)
    deploys_per_day: float
    deploys_per_week: float
    lead_median_s: float | None
    lead_mean_s: float | None
    change_failure_rate: float | None
    success_rate: float | None
    restore_rollback_median_s: float | None
    restore_next_good_median_s: float | None
    unrestored: int  # failed changes not yet followed by a promotion
    deploy_mean_s: float | None
    rollback_mean_s: float | None


def _selection(query: sa.Select, period: Period, service: str | None, environment: str | None, table: Any = r) -> sa.Select:
    since, until = period.bounds
    query = query.where(table.c.finished_at >= since, table.c.finished_at < until)
    if service is not None:
        query = query.where(table.c.service == service)
    if environment is not None:
        query = query.where(table.c.environment == environment)
    return query


def median_by_key(engine: Engine, values: sa.Subquery) -> sa.Select:
    """(service, environment, median of ``value``) from a subquery of those three columns."""
    present = sa.select(values).where(values.c.value.is_not(None)).subquery()
    if engine.dialect.name == "postgresql":
        return sa.select(present.c.service, present.c.environment,
                         sa.func.percentile_cont(0.5).within_group(present.c.value).label("median")).group_by(
            present.c.service, present.c.environment)
    ranked = sa.select(
        present.c.service, present.c.environment, present.c.value,
        sa.func.row_number().over(partition_by=(present.c.service, present.c.environment), order_by=present.c.value).label("n"),
        sa.func.count().over(partition_by=(present.c.service, present.c.environment)).label("total"),
    ).subquery()
    middle = sa.or_(ranked.c.n == (ranked.c.total + 1) // 2, ranked.c.n == (ranked.c.total + 2) // 2)
    return sa.select(ranked.c.service, ranked.c.environment, sa.func.avg(ranked.c.value).label("median")).where(
        middle).group_by(ranked.c.service, ranked.c.environment)


def lead_times(period: Period, service: str | None = None, environment: str | None = None) -> sa.Select:
    """Each promoted release's lead time (seconds) with its key and ``finished_at``."""
    return _selection(sa.select(r.c.service, r.c.environment, r.c.finished_at,
                                SecondsBetween(r.c.committed_at, r.c.finished_at).label("value"))
                      .where(r.c.outcome == PROMOTED, r.c.committed_at.is_not(None)), period, service, environment)


def to_next_good(period: Period, service: str | None = None, environment: str | None = None) -> sa.Select:
    """Each failed change's seconds to the next promotion of its service in its environment (None: none yet)."""
    later = r.alias("later")
    next_promoted = (sa.select(sa.func.min(later.c.finished_at))
                     .where(later.c.service == r.c.service, later.c.environment == r.c.environment,
                            later.c.outcome == PROMOTED, later.c.finished_at > r.c.finished_at)
                     .scalar_subquery())
    return _selection(sa.select(r.c.service, r.c.environment, r.c.finished_at,
                                SecondsBetween(r.c.finished_at, next_promoted).label("value"))
                      .where(outcome_class().in_((ROLLED_BACK, FAILED))), period, service, environment)


def _counts(period: Period, service: str | None, environment: str | None) -> sa.Select:
    kind = outcome_class()

    def count(*classes: str) -> Any:
        return sa.func.sum(sa.case((kind.in_(classes), 1), else_=0))

    def mean(column: Any, cls: str) -> Any:
        return sa.func.avg(sa.case((kind == cls, column), else_=None))

    query = sa.select(r.c.service, r.c.environment, sa.func.count().label("releases"),
                      count(*CHANGES).label("changes"), count(PROMOTED).label("promoted"),
                      count(ROLLED_BACK).label("rolled_back"), count(FAILED).label("failed"),
                      sa.func.sum(sa.case((r.c.outcome == REJECTED, 1), else_=0)).label("rejected"),
                      mean(r.c.seconds, PROMOTED).label("deploy_mean_s"),
                      mean(r.c.rollback_seconds, ROLLED_BACK).label("rollback_mean_s"))
    return _selection(query, period, service, environment).group_by(r.c.service, r.c.environment)


def _by_key(conn: Any, query: sa.Select) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row.service, row.environment): dict(row._mapping) for row in conn.execute(query)}


def figures(engine: Engine, period: Period, *, service: str | None = None, environment: str | None = None) -> list[Figures]:
    """Every (service, environment) with a release in the period, sorted; each figure from its own query."""
    leads = lead_times(period, service, environment).subquery()
    restores = to_next_good(period, service, environment).subquery()
    rollbacks = _selection(sa.select(r.c.service, r.c.environment, r.c.rollback_seconds.label("value"))
                           .where(outcome_class() == ROLLED_BACK), period, service, environment).subquery()
    lead_mean = sa.select(leads.c.service, leads.c.environment, sa.func.avg(leads.c.value).label("mean")).group_by(
        leads.c.service, leads.c.environment)
    open_failures = sa.select(restores.c.service, restores.c.environment, sa.func.count().label("open")).where(
        restores.c.value.is_(None)).group_by(restores.c.service, restores.c.environment)
    with engine.connect() as conn:
        counts = _by_key(conn, _counts(period, service, environment))
        lead_median = _by_key(conn, median_by_key(engine, leads))
        lead_means = _by_key(conn, lead_mean)
        restore_rollback = _by_key(conn, median_by_key(engine, rollbacks))
        restore_next = _by_key(conn, median_by_key(engine, restores))
        unrestored = _by_key(conn, open_failures)
    found = []
    for key in sorted(counts):
        c = counts[key]
        changes = int(c["changes"] or 0)
        promoted, rolled_back, failed = (int(c[k] or 0) for k in ("promoted", "rolled_back", "failed"))
        found.append(Figures(
            service=key[0], environment=key[1], releases=int(c["releases"]), changes=changes, promoted=promoted,
            rolled_back=rolled_back, failed=failed, rejected=int(c["rejected"] or 0), deploys_per_day=promoted / period.days,
            deploys_per_week=promoted * 7 / period.days,
            lead_median_s=_float(lead_median.get(key, {}).get("median")), lead_mean_s=_float(lead_means.get(key, {}).get("mean")),
            change_failure_rate=(rolled_back + failed) / changes if changes else None,
            success_rate=promoted / changes if changes else None,
            restore_rollback_median_s=_float(restore_rollback.get(key, {}).get("median")),
            restore_next_good_median_s=_float(restore_next.get(key, {}).get("median")),
            unrestored=int(unrestored.get(key, {}).get("open") or 0),
            deploy_mean_s=_float(c["deploy_mean_s"]), rollback_mean_s=_float(c["rollback_mean_s"]),
        ))
    return found


def _float(value: Any) -> float | None:
    return None if value is None else float(value)  # PostgreSQL's avg() is numeric: Decimal


def releases_per_day(engine: Engine, period: Period, *, service: str | None = None,
                     environment: str | None = None) -> list[tuple[str, str, int]]:
    """(UTC day, outcome class, releases) for the charts."""
    day = sa.func.substr(r.c.finished_at, 1, 10).label("day")
    kind = outcome_class().label("kind")
    query = _selection(sa.select(day, kind, sa.func.count().label("n")), period, service, environment)
    with engine.connect() as conn:
        return [(row.day, row.kind, int(row.n)) for row in conn.execute(query.group_by(day, kind).order_by(day))]


def durations(engine: Engine, period: Period, *, service: str | None = None,
              environment: str | None = None) -> list[tuple[str, str, str, float | None, float | None]]:
    """(finished_at, environment, outcome class, deploy seconds, rollback seconds) of each release that reached the deploy."""
    kind = outcome_class().label("kind")
    query = _selection(sa.select(r.c.finished_at, r.c.environment, kind, r.c.seconds, r.c.rollback_seconds)
                       .where(outcome_class().in_(CHANGES)), period, service, environment).order_by(r.c.finished_at)
    with engine.connect() as conn:
        return [(row.finished_at, row.environment, row.kind, _float(row.seconds), _float(row.rollback_seconds))
                for row in conn.execute(query)]


def lead_time_points(engine: Engine, period: Period, *, service: str | None = None,
                     environment: str | None = None) -> list[tuple[str, str, float]]:
    """(finished_at, environment, lead seconds) of each promoted release with a commit time."""
    query = lead_times(period, service, environment).order_by(r.c.finished_at)
    with engine.connect() as conn:
        return [(row.finished_at, row.environment, float(row.value)) for row in conn.execute(query)]
