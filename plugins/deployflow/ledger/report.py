"""``python -m deployflow.ledger report``: DORA and success-rate figures per service and environment.

    --url URL            the ledger (default $DEPLOYFLOW_LEDGER_URL, else ledger.db in the state directory)
    --service NAME       one service only        --environment NAME   one environment only
    --since YYYY-MM-DD   first day (UTC, default 29 days before --until: 30 days in all)
    --until YYYY-MM-DD   last day, included (UTC, default today)
    --charts DIR         PNG charts there        --html FILE          the table and the charts in one page
    --json               the figures as one JSON document (seconds, rates 0 to 1), not the table

The figures are computed in SQL (figures.py, whose docstring defines each one); this module reads the
options, prints the table (or, for a ledger with nothing in the period, one line saying so) and writes the page. Definitions, in short:

- deploys/day, /week: promoted releases per day of the period (GitLab's deployment frequency: successful
  deployments per day; DORA: how often changes reach production);
- lead time: commit time to promoted ``finished_at``, median and mean (DORA's change lead time; GitLab
  reports its median, from the merge);
- change failure rate: rolled back or failed (the deploy began and was not rolled back), over releases that
  reached the deploy (DORA: deployments that need a rollback or a fix; GitLab: incidents over deployments).
  Refused, rejected, failed-before-deploy and already-live runs are not changes (nor deployments: an already-live
  run deployed nothing); ``rejected`` counts the gates' rejections;
- restore: by rollback, the median of rolled-back releases' ``rollback_seconds``; to good, the median time
  from a failed change to the next promoted release in that environment (DORA's failed deployment recovery
  time; GitLab: the median time an incident stays open); ``open``: failures no promotion has followed yet;
- success: promoted over reached the deploy; deploy and rollback: mean seconds.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from deployflow import terminal
from deployflow.ledger import engine_for
from deployflow.ledger.figures import Figures, Period, figures
from deployflow.ledger.schema import releases
from deployflow.settings import Settings

DEFAULT_DAYS = 30
COLUMNS = ("service", "environment", "releases", "changes", "promoted", "rejected", "deploys/day", "deploys/week", "lead median",
           "lead mean", "change fail", "success", "restore rollback", "restore to good", "open", "deploy mean",
           "rollback mean")


def duration(seconds: float | None) -> str:
    """Seconds in the unit a person reads them in: 42 s, 3.5 min, 2.1 h, 1.5 d; '-' for nothing to measure."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size * 1.5:  # under 1.5 of a unit the smaller one reads better: 80 s, not 1.3 min
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f} %"


def row(f: Figures) -> list[str]:
    return [f.service, f.environment, str(f.releases), str(f.changes), str(f.promoted), str(f.rejected), f"{f.deploys_per_day:.2f}",
            f"{f.deploys_per_week:.1f}", duration(f.lead_median_s), duration(f.lead_mean_s), percent(f.change_failure_rate),
            percent(f.success_rate), duration(f.restore_rollback_median_s), duration(f.restore_next_good_median_s),
            str(f.unrestored), duration(f.deploy_mean_s), duration(f.rollback_mean_s)]


def table(found: Sequence[Figures]) -> str:
    """Plain text, one row per service and environment, numbers right-aligned."""
    return terminal.table([dict(zip(COLUMNS, row(f))) for f in found], COLUMNS, right=COLUMNS[2:])


def document(period: Period, found: Sequence[Figures], *, service: str | None, environment: str | None) -> dict:
    """What ``--json`` prints: the period, the filters and each service's figures in their own units (seconds,
    rates from 0 to 1, None where there is nothing to measure)."""
    return {"since": period.since.isoformat(), "until": period.until.isoformat(), "days": period.days,
            "service": service, "environment": environment, "figures": [asdict(f) for f in found]}


def nothing_found(engine: Engine, url: str, period: Period, scope: str) -> str:
    """The one line that stands for an empty table: an empty ledger, or none of its releases in the period."""
    with engine.connect() as conn:
        if conn.execute(sa.select(releases.c.id).limit(1)).first() is None:
            return f"No releases in the ledger yet ({sa.engine.make_url(url).render_as_string()})"  # password: ***
    return f"No releases finished {period.since} to {period.until} (UTC, {period.days} days){scope}"


def page(period: Period, found: Sequence[Figures], charts: dict[str, bytes]) -> str:
    """One self-contained HTML page: the table and the charts (embedded PNGs)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row(f)) + "</tr>" for f in found)
    images = "".join(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,'
                     f'{base64.b64encode(png).decode()}">' for name, png in charts.items())
    title = f"Release figures, {period.since} to {period.until}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 6px}"
            f"</style></head><body><h1>{title}</h1><table><tr>{head}</tr>{body}</table>{images}</body></html>\n")


def _day(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not an ISO date: valid values are YYYY-MM-DD (UTC)") from None


def _refuse(message: str) -> int:
    print(f"report: {message}", file=sys.stderr)
    return 2


def period_of(since: str | None, until: str | None, today: date | None = None) -> Period:
    """The period the options name; ValueError naming the option and the valid form when they are not dates."""
    last = _day("--until", until) or today or datetime.now(timezone.utc).date()
    first = _day("--since", since) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValueError(f"--since {first} is after --until {last}: the period must run forwards")
    return Period(first, last)


def parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deployflow.ledger report",
                                description="DORA and success-rate figures from the release ledger")
    p.add_argument("--url", default=settings.ledger_url,
                   help="the ledger (default $DEPLOYFLOW_LEDGER_URL, else ledger.db in the state directory)")
    p.add_argument("--service")
    p.add_argument("--environment")
    p.add_argument("--since", help="first day, YYYY-MM-DD (UTC; default 29 days before --until)")
    p.add_argument("--until", help="last day, included, YYYY-MM-DD (UTC; default today)")
    p.add_argument("--charts", type=Path, metavar="DIR", help="write PNG charts into DIR")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the table and the charts as one HTML page")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON document (for scripts)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser(Settings.from_environ()).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        period = period_of(args.since, args.until)
    except ValueError as exc:  # one line, not argparse's usage block: the option and the form it wants
        return _refuse(str(exc))
    url = args.url
    try:
        engine = engine_for(url, reader=True)  # no write lock: a record task never waits for the report
    except ValueError as exc:
        return _refuse(f"--url: {exc}")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return _refuse(f"--url: no ledger at {url.removeprefix('sqlite:///')} (set --url or $DEPLOYFLOW_LEDGER_URL)")
    try:
        if not sa.inspect(engine).has_table(releases.name):
            print(f"report: {sa.engine.make_url(url).render_as_string()} has no releases yet (no {releases.name} table)",
                  file=sys.stderr)
            return 1
        found = figures(engine, period, service=args.service, environment=args.environment)
        scope = "".join(f", {k} {v}" for k, v in (("service", args.service), ("environment", args.environment)) if v)
        made = document(period, found, service=args.service, environment=args.environment) if args.json else None
        if made is None and not found:
            print(nothing_found(engine, url, period, scope))
        elif made is None:
            print(f"Releases finished {period.since} to {period.until} (UTC, {period.days} days){scope}")
            print(table(found))
        if args.charts or args.html:
            written = _charts(engine, period, found, args)
            if made is not None:
                made |= written
            else:
                print("\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in written.items()))
        if made is not None:
            print(json.dumps(made, indent=2, sort_keys=True))
    finally:
        engine.dispose()
    return 0


def _charts(engine: Engine, period: Period, found: Sequence[Figures], args: argparse.Namespace) -> dict[str, object]:
    """Write the charts (``--charts``) and the page (``--html``); the paths written, by kind."""
    from deployflow.ledger.charts import render  # matplotlib: imported only when charts are asked for

    charts = render(engine, period, service=args.service, environment=args.environment)
    written: dict[str, object] = {}
    if args.charts:
        args.charts.mkdir(parents=True, exist_ok=True)
        for name, png in charts.items():
            (args.charts / f"{name}.png").write_bytes(png)
        written["charts"] = [str(args.charts / f"{n}.png") for n in charts]
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(page(period, found, charts))
        written["page"] = str(args.html)
    return written
