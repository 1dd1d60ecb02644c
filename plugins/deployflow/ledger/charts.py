"""The report's charts, PNG bytes drawn with matplotlib's Agg backend (no display), from the queries of figures.py.

- ``releases_per_day``: releases finished each UTC day, stacked by outcome class;
- ``lead_time``: each promoted release's lead time for changes, in hours, over time, one series per environment;
- ``durations``: deploy seconds of promoted releases and rollback seconds of rolled-back ones, over time.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: a report runs on servers and in CI, where there is no display

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from deployflow.ledger.figures import FAILED, NOT_A_CHANGE, PROMOTED, ROLLED_BACK, Period  # noqa: E402
from deployflow.ledger.figures import durations as duration_rows  # noqa: E402
from deployflow.ledger.figures import lead_time_points, releases_per_day  # noqa: E402

COLOURS = {PROMOTED: "#2e7d32", ROLLED_BACK: "#f9a825", FAILED: "#c62828", NOT_A_CHANGE: "#9e9e9e"}
LABELS = {PROMOTED: "promoted", ROLLED_BACK: "rolled back", FAILED: "failed, not rolled back",
          NOT_A_CHANGE: "refused, rejected or failed before deploy"}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _midnight(day: Any) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def _png(figure: Any) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return out.getvalue()


def _frame(title: str, ylabel: str, period: Period) -> tuple[Any, Any]:
    figure, axes = plt.subplots(figsize=(10, 4.5), layout="constrained")
    axes.set_title(title)
    axes.set_xlabel("day (UTC)")
    axes.set_ylabel(ylabel)
    axes.set_xlim(_midnight(period.since) - timedelta(hours=12), _midnight(period.until) + timedelta(hours=12))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    axes.grid(axis="y", alpha=0.3)
    return figure, axes


def _empty(axes: Any) -> None:
    axes.text(0.5, 0.5, "no release in this period", transform=axes.transAxes, ha="center", va="center", color="#777")


def releases_chart(rows: list[tuple[str, str, int]], period: Period, scope: str) -> bytes:
    figure, axes = _frame(f"Releases per day by outcome{scope}", "releases", period)
    days = [period.since + timedelta(days=n) for n in range(period.days)]
    counts = {(d, k): n for d, k, n in rows}
    bottom = [0] * len(days)
    for kind in (PROMOTED, ROLLED_BACK, FAILED, NOT_A_CHANGE):
        heights = [counts.get((d.isoformat(), kind), 0) for d in days]
        if any(heights):
            axes.bar([_midnight(d) for d in days], heights, bottom=bottom, width=0.8,
                     color=COLOURS[kind], label=LABELS[kind])
            bottom = [b + h for b, h in zip(bottom, heights)]
    axes.yaxis.get_major_locator().set_params(integer=True)
    if rows:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: never over a bar
    else:
        _empty(axes)
    return _png(figure)


def lead_time_chart(points: list[tuple[str, str, float]], period: Period, scope: str) -> bytes:
    figure, axes = _frame(f"Lead time for changes: commit to promoted{scope}", "lead time (hours)", period)
    for environment in sorted({e for _, e, _ in points}):
        mine = [(_when(t), s / 3600) for t, e, s in points if e == environment]
        axes.plot([t for t, _ in mine], [h for _, h in mine], marker="o", linestyle="-", label=environment)
    if points:
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="environment")
    else:
        _empty(axes)
    return _png(figure)


def durations_chart(rows: list[tuple[str, str, str, float | None, float | None]], period: Period, scope: str) -> bytes:
    figure, axes = _frame(f"Deploy and rollback durations{scope}", "seconds", period)
    series = (("deploy (promoted)", PROMOTED, 3, "o"), ("rollback", ROLLED_BACK, 4, "v"))
    drawn = False
    for label, kind, column, marker in series:
        mine = [(_when(row[0]), row[column]) for row in rows if row[2] == kind and row[column] is not None]
        if mine:
            axes.scatter([t for t, _ in mine], [s for _, s in mine], color=COLOURS[kind], marker=marker, label=label)
            drawn = True
    if drawn:
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: never over a bar
    else:
        _empty(axes)
    return _png(figure)


def _scope(period: Period, service: str | None, environment: str | None) -> str:
    return "".join(f", {v}" for v in (service, environment) if v) + f" ({period.since} to {period.until})"


# Each chart by file stem: (its rows' query, its drawing).
CHARTS: dict[str, tuple[Callable[..., list[Any]], Callable[[list[Any], Period, str], bytes]]] = {
    "releases_per_day": (releases_per_day, releases_chart),
    "lead_time": (lead_time_points, lead_time_chart),
    "durations": (duration_rows, durations_chart),
}


def chart(name: str, engine: Engine, period: Period, *, service: str | None = None, environment: str | None = None) -> bytes:
    """One chart of the selection, PNG; KeyError naming the valid names for a name not in :data:`CHARTS`."""
    if name not in CHARTS:
        raise KeyError(f"chart {name!r} is not valid; valid values are {', '.join(repr(n) for n in CHARTS)}")
    rows, draw = CHARTS[name]
    return draw(rows(engine, period, service=service, environment=environment), period, _scope(period, service, environment))


def render(engine: Engine, period: Period, *, service: str | None = None, environment: str | None = None) -> dict[str, bytes]:
    """Every chart of the selection, by file stem."""
    return {name: chart(name, engine, period, service=service, environment=environment) for name in CHARTS}
