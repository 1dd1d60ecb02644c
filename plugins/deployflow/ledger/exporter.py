"""Release metrics for Prometheus, read from the ledger at each scrape: ``python -m deployflow.ledger exporter``.

    --url URL     the ledger (default $DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory)
    --port N      default 9468
    --bind ADDR   default 127.0.0.1

Two SQL queries per scrape, both aggregated by the database: counts and histogram buckets grouped by
service, environment, strategy and outcome, and the last promoted and last analysed release of each
service and environment. The ``outcome`` label is the ledger's outcome, an ``Outcome``'s value
(:func:`outcome_label`), so no version reaches a label. A ledger that cannot be read gives ``deployflow_ledger_up 0`` and one log line,
not a dead exporter. It keeps no state: a restart loses nothing, the counters come from the ledger.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from deployflow.ledger.live import newest, pairs_query
from deployflow.ledger.schema import releases
from deployflow.ledger.store import SCHEMES, engine_for
from deployflow.outcomes import VALUES, Outcome
from deployflow.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 9468
DEFAULT_BIND = "127.0.0.1"  # release history is not for every interface; --bind opens it on purpose
# Every Outcome's value, and "other" for a row this version cannot name: a ledger still at schema 5 (no release
# recorded since the upgrade, whose first record migrates it) or written by a newer deployflow.
OTHER = "other"
OUTCOMES = (*VALUES, OTHER)
# A release takes minutes (build, tests, pauses, watches): 30 s to 1 h.
RELEASE_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
# Putting traffic back and removing the new version takes seconds, a slow engine a minute or two.
ROLLBACK_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def outcome_label(column: sa.ColumnElement) -> sa.ColumnElement:
    """The ledger's outcome as the label, in SQL: its value; a value this version does not know is "other",
    never a new label value (nor a version, as an old sentence "rolled back to 1a2b3c" would be)."""
    return sa.case((column.in_(VALUES), column), else_=OTHER)


def bucket_of(column: sa.ColumnElement, bounds: tuple[float, ...]) -> sa.ColumnElement:
    """The index of the first bucket that holds ``column`` (``len(bounds)``: +Inf; NULL stays NULL), in SQL: one
    small CASE per row, and the database groups by it."""
    return sa.case(*((column <= bound, i) for i, bound in enumerate(bounds)), else_=len(bounds)).label(None)


def totals_query() -> sa.Select:
    """Releases, and the seconds' sums, by service, environment, strategy, outcome label and both buckets: a
    bounded number of rows however long the history."""
    r = releases.c
    keys = (r.service, r.environment, r.strategy, outcome_label(r.outcome).label("outcome"),
            sa.case((r.seconds.is_(None), None), else_=bucket_of(r.seconds, RELEASE_BUCKETS)).label("d"),
            sa.case((r.rollback_seconds.is_(None), None), else_=bucket_of(r.rollback_seconds, ROLLBACK_BUCKETS)).label("r"))
    return (sa.select(*keys, sa.func.count().label("releases"), sa.func.sum(r.seconds).label("d_sum"),
                      sa.func.sum(r.rollback_seconds).label("r_sum"))
            .group_by(*keys))


def latest_query() -> sa.Select:
    """The last promoted release and the last analysed one of each service and environment, in one query.

    Each is the first matching row found walking the index (service, environment, finished_at) backwards
    from the newest (``live.newest``): a few rows read per service and environment, however long the history."""
    pairs = pairs_query()
    found = releases.alias("found")

    def last(kind: str, matches: Callable[[sa.TableClause], list[sa.ColumnElement]]) -> sa.Select:
        return (sa.select(sa.literal(kind).label("kind"), found.c.service, found.c.environment, found.c.version,
                          found.c.config, found.c.analysis_score)
                .select_from(pairs.join(found, found.c.id == newest(pairs, matches, f"last_{kind}"))))

    return sa.union_all(last("live", lambda row: [row.c.outcome == Outcome.PROMOTED.value]),
                        last("score", lambda row: [row.c.analysis_score.is_not(None)]))


class LedgerUnreadable(Exception):
    """The ledger is not there or does not answer."""


def reader_engine(url: str) -> sa.engine.Engine:
    """An engine for reading (store.engine_for's reader): no migration, no write lock (the writers' engine begins
    IMMEDIATE: a scrape would queue behind every record), a short wait."""
    return engine_for(url, reader=True)


class LedgerCollector(Collector):
    """Reads the ledger at each scrape. :param engine: a read-only engine on the ledger (:func:`reader_engine`)."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self._failing = False  # log a failure once, and once when it is over
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("deployflow_ledger_up", "1 when the ledger could be read at this scrape")
        try:
            totals, latest = self._read()
        except (LedgerUnreadable, sa.exc.SQLAlchemyError, OSError) as exc:
            with self._lock:
                if not self._failing:
                    log.error("the ledger %s cannot be read: %s", self.engine.url.render_as_string(hide_password=True),
                              str(exc).splitlines()[0])
                self._failing = True
            up.add_metric([], 0)
            yield up
            return
        with self._lock:
            if self._failing:
                log.info("the ledger can be read again")
            self._failing = False
        up.add_metric([], 1)
        yield up
        yield from release_metrics(totals, latest)

    def _read(self) -> tuple[list[Any], list[Any]]:
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and not Path(database).exists():
            raise LedgerUnreadable(f"{database} does not exist (no release recorded yet, or a wrong --url)")
        with self.engine.connect() as conn:
            return list(conn.execute(totals_query())), list(conn.execute(latest_query()))


class Histogram:
    """Counts per bucket (not cumulative: :meth:`buckets` adds them up) and the sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds, self.counts, self.total = bounds, [0] * (len(bounds) + 1), 0.0

    def add(self, bucket: int, count: int, total: float) -> None:
        self.counts[bucket] += count
        self.total += total

    def buckets(self) -> list[tuple[str, int]]:
        cumulative, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative


def release_metrics(totals: list[Any], latest: list[Any]) -> Iterator[Any]:
    """The metric families of the two queries' rows."""
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    durations: dict[tuple[str, ...], Histogram] = defaultdict(lambda: Histogram(RELEASE_BUCKETS))
    rollbacks: dict[tuple[str, ...], Histogram] = defaultdict(lambda: Histogram(ROLLBACK_BUCKETS))
    for row in totals:
        counts[(row.service, row.environment, row.strategy, row.outcome)] += row.releases
        if row.d is not None:
            durations[(row.service, row.environment, row.strategy)].add(row.d, row.releases, row.d_sum)
        if row.r is not None and row.outcome == Outcome.ROLLED_BACK.value:  # the rollback task says 0 s when it had nothing to do
            rollbacks[(row.service, row.environment)].add(row.r, row.releases, row.r_sum)

    releases_total = CounterMetricFamily("deployflow_releases", "Releases recorded in the ledger, by outcome",
                                         labels=["service", "environment", "strategy", "outcome"])
    for labels, count in sorted(counts.items()):
        releases_total.add_metric(list(labels), count)
    yield releases_total
    for name, doc, labels, series in (
        ("deployflow_release_duration_seconds", "Seconds from a release's start to its record",
         ["service", "environment", "strategy"], durations),
        ("deployflow_rollback_seconds", "Seconds a rollback took", ["service", "environment"], rollbacks),
    ):
        family = HistogramMetricFamily(name, doc, labels=labels)
        for key, histogram in sorted(series.items()):
            family.add_metric(list(key), histogram.buckets(), histogram.total)
        yield family

    live = InfoMetricFamily("deployflow_live_version", "The last promoted release of each service and environment",
                            labels=["service", "environment"])
    score = GaugeMetricFamily("deployflow_last_analysis_score", "Canary analysis' last score (0-100) of each service and environment",
                              labels=["service", "environment"])
    for row in sorted(latest, key=lambda r: (r.kind, r.service, r.environment)):
        if row.kind == "live":
            live.add_metric([row.service, row.environment], {"version": row.version or "", "config": row.config or ""})
        else:
            score.add_metric([row.service, row.environment], row.analysis_score)
    yield live
    yield score


# ---- the command -------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    """Errors as one line on stderr (argparse's own adds the usage), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"exporter: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str], settings: Settings) -> argparse.Namespace:
    """The options, checked; SystemExit(2) with one line naming the bad one."""
    parser = _OneLineParser(prog="python -m deployflow.ledger exporter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=settings.ledger_url,
                        help="the ledger (default $DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free port")
    parser.add_argument("--bind", default=DEFAULT_BIND, help=f"the address to listen on (default {DEFAULT_BIND})")
    args = parser.parse_args(argv)
    try:
        backend = sa.engine.make_url(args.url).get_backend_name()
    except sa.exc.ArgumentError:
        parser.error(f"--url: {args.url!r} is not a database URL; valid forms are sqlite:///PATH, postgresql://USER@HOST/DB")
    if backend not in (*SCHEMES, "postgres"):
        parser.error(f"--url: scheme {backend!r} is not valid; valid values are {', '.join(SCHEMES)}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: {args.port} is not valid; valid values are 0-65535")
    return args


def serve(url: str, bind: str, port: int) -> Any:
    """The exporter's HTTP server, answering /metrics in a daemon thread; ``server_port`` is the port it took."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(LedgerCollector(reader_engine(url)))
    server, _thread = start_http_server(port, addr=bind, registry=registry)
    return server


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv, Settings.from_environ())
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        server = serve(args.url, args.bind, args.port)
    except OSError as exc:
        print(f"exporter: cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    shown = sa.engine.make_url(args.url).render_as_string(hide_password=True)
    log.info("release metrics of %s on http://%s:%d/metrics", shown, args.bind, server.server_port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0
