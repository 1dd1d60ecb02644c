"""The Releases view's reading: what one answer reads (the catalog, the ledger, the locks, Airflow's runs and
the freeze Variable), filtered by what the signed-in user may see, and handed to ``board.py`` to put together.
Every reader is passed in (:class:`Readers`): the plugin passes Airflow's, the tests and the benchmark theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException, status
from sqlalchemy.engine import Engine

from deployflow.airflow.releases_view.access import Access
from deployflow.airflow.releases_view.board import AirflowState, Moment, Seen, grid, row_of, service_names, service_page
from deployflow.airflow.task_ids import release_dag_id
from deployflow.catalog import Service
from deployflow.catalog.watching import CatalogReading
from deployflow.errors import ConfigError
from deployflow.governance.freeze import parse_adhoc
from deployflow.ledger.figures import Period, figures
from deployflow.ledger.live import LockState, cells, history, lock_state, recorded
from deployflow.ledger.report import period_of


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Readers:
    """Where the view reads.

    :param catalog: the catalog as it is now (``WatchedCatalog.read``).
    :param ledger: the ledger's reading engine (``store.engine_for(url, reader=True)``), asked at each answer.
    :param airflow: the runs, the freeze Variable and the teams (``airflow_state.MetadataState``).
    :param clock: now, aware.
    """

    catalog: Callable[[], CatalogReading]
    ledger: Callable[[], Engine]
    airflow: AirflowState
    clock: Callable[[], datetime] = _utc_now


def _unreadable(exc: Exception) -> HTTPException:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the ledger cannot be read: {first}")


class ReleasesReading:
    """The answers of the view, each read afresh. :param readers: where it reads."""

    def __init__(self, readers: Readers) -> None:
        self.readers = readers

    def _seen(self, reading: CatalogReading, names: list[str], cells_found: dict, locks: LockState) -> tuple[Seen, str | None]:
        """What the answer shows of the services ``names``; and the freeze Variable's problem, if it has one."""
        shown = set(names)
        locks = LockState({k: h for k, h in locks.holders.items() if k[0] in shown},
                          {k: q for k, q in locks.queued.items() if k[0] in shown})
        runs = self.readers.airflow.runs(locks.run_keys())
        now = self.readers.clock()
        try:
            adhoc, problem = parse_adhoc(self.readers.airflow.freeze_variable(), now), None
        except ConfigError as exc:  # the releases refuse it too (resolve): say so, show the rest
            adhoc, problem = None, str(exc)
        return Seen(reading, cells_found, locks, runs, Moment(now, adhoc)), problem

    def _ledger(self) -> Engine:
        try:
            return self.readers.ledger()
        except ValueError as exc:  # a ledger URL engine_for refuses (its scheme)
            raise _unreadable(exc) from None

    def _access(self, user: Any, names: list[str]) -> Access:
        return Access(user, self.readers.airflow.teams({release_dag_id(n) for n in names}))

    def _reader_of(self, user: Any, name: str) -> Access:
        """The user's access, once they may read the runs of ``name``'s release DAG; 403 otherwise."""
        access = self._access(user, [name])
        if not access.may_read(release_dag_id(name)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{access.name} may not read the runs of {release_dag_id(name)}")
        return access

    def actor(self, user: Any, name: str) -> str:
        """The user's name, once they may act on ``name``'s release DAG (trigger its runs); 403 otherwise."""
        access = self._access(user, [name])
        if not access.may_act(release_dag_id(name)):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{access.name} may read but not act on {release_dag_id(name)}: their Airflow role "
                                "may not trigger its runs")
        return access.name

    def grid(self, user: Any) -> dict[str, Any]:
        """Services x environments, the services whose release DAG the user may read."""
        reading = self.readers.catalog()
        try:
            engine = self._ledger()
            found, locks = cells(engine), lock_state(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise _unreadable(exc) from None
        everyone = service_names(reading, found)
        access = self._access(user, everyone)
        names = [n for n in everyone if access.may_read(release_dag_id(n))]
        seen, problem = self._seen(reading, names, found, locks)
        rows = [row_of(n, seen, dag_id=release_dag_id(n), can_act=access.may_act(release_dag_id(n))) for n in names]
        return grid(rows, seen, user=access.name, freeze_problem=problem)

    def service(self, user: Any, name: str, *, environment: str | None = None, limit: int = 50, offset: int = 0,
                since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """A service's environments, a page of its history (of ``environment`` only, if given, one of
        ``policies.ENVIRONMENTS``) and its figures over the period (``since``, ``until``: UTC days, the report's
        defaults). 403 when the user may not read its release DAG, 404 when neither the catalog nor the ledger
        knows it, 400 for a bad period."""
        period = self.period(since, until)
        dag_id = release_dag_id(name)
        access = self._reader_of(user, name)
        reading = self.readers.catalog()
        try:
            engine = self._ledger()
            found, locks = cells(engine, name), lock_state(engine)
            if name not in service_names(reading, found):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service {name!r} in the catalog or the ledger")
            page = history(engine, name, environment=environment, limit=limit, offset=offset)
            measured = figures(engine, period, service=name) if page.total else []
        except sa.exc.SQLAlchemyError as exc:
            raise _unreadable(exc) from None
        seen, problem = self._seen(reading, [name], found, locks)
        row = row_of(name, seen, dag_id=dag_id, can_act=access.may_act(dag_id))
        answer = service_page(row, reading.services.get(name), page=page, environment=environment, period=period,
                              found=measured)
        return {**answer, "generated_at": seen.moment.now.isoformat(), "user": access.name, "freeze_problem": problem}

    def row(self, user: Any, name: str) -> tuple[dict[str, Any], Service | None]:
        """``name``'s row of the grid (its cells: what is live, the run holding each lock) and its catalog entry,
        without its history or figures; 403 and 404 as :meth:`service`."""
        access = self._reader_of(user, name)
        reading = self.readers.catalog()
        try:
            engine = self._ledger()
            found, locks = cells(engine, name), lock_state(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise _unreadable(exc) from None
        if name not in service_names(reading, found):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service {name!r} in the catalog or the ledger")
        seen, _ = self._seen(reading, [name], found, locks)
        dag_id = release_dag_id(name)
        return row_of(name, seen, dag_id=dag_id, can_act=access.may_act(dag_id)), reading.services.get(name)

    def chart(self, user: Any, name: str, draw: Callable[[Engine], bytes]) -> bytes:
        """``draw(engine)`` on the ledger, a chart of ``name``, once the user may read its release DAG (else 403);
        404 before any release is recorded."""
        self._reader_of(user, name)
        try:
            engine = self._ledger()
            if not recorded(engine):
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no release recorded yet")
            return draw(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise _unreadable(exc) from None

    def period(self, since: str | None, until: str | None) -> Period:
        try:
            return period_of(since, until, today=self.readers.clock().date())
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
