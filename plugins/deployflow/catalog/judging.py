"""The judged blocks of an environment: ``analysis`` (canary analysis, and the metrics every judgement reads)
and ``post_promotion`` (the watch after promotion, judged with the same metrics and thresholds)."""

from __future__ import annotations

from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import (
    DEFAULT_METRICS,
    DIRECTIONS,
    METRIC_KINDS,
    METRIC_NAME,
    NODATA_POLICIES,
    WATCH_NODATA_POLICIES,
    Analysis,
    MetricQuery,
    PostPromotion,
)
from deployflow.errors import ConfigError, shown


def analysis(raw: Any, path: str) -> Analysis:
    f = Fields(raw, path, ("enabled", "interval_s", "intervals", "baseline", "load_rate", "no_data", "metrics",
                           "pass_threshold", "marginal_threshold"))
    for flag in ("enabled", "baseline"):
        if not isinstance(f.get(flag, True), bool):
            raise ConfigError(f.at(flag), f"{shown(f.get(flag))} is not valid; must be true or false")
    extra = f.get("metrics", []) or []
    if not isinstance(extra, list):
        raise ConfigError(f.at("metrics"), "must be a list of {name, kind, query, direction, critical, group}")
    metrics = [_metric(m, f"{f.at('metrics')}[{i}]") for i, m in enumerate(extra)]
    names = [m.name for m in (*DEFAULT_METRICS, *metrics)]
    if len(set(names)) != len(names):
        raise ConfigError(f.at("metrics"), f"metric names must be unique (built in: error_rate, latency): {names}")
    pass_threshold = f.number("pass_threshold", 95.0, low=0, high=100)
    return Analysis(
        enabled=f.get("enabled", True),
        interval_s=f.integer("interval_s", 30, low=1, high=3600),
        intervals=f.integer("intervals", 3, low=1, high=100),
        baseline=f.get("baseline", True),
        load_rate=f.number("load_rate", 0.0, low=0, high=1000),
        no_data=f.choice("no_data", NODATA_POLICIES, "fail"),
        metrics=(*DEFAULT_METRICS, *metrics),
        pass_threshold=pass_threshold,
        marginal_threshold=f.number("marginal_threshold", 75.0, low=0, high=pass_threshold),
    )


def _metric(raw: Any, path: str) -> MetricQuery:
    f = Fields(raw, path, ("name", "kind", "query", "direction", "critical", "group"))
    query = f.string("query")
    if "{selector}" not in query:
        raise ConfigError(f.at("query"), "must contain {selector}, where the track's label matchers go")
    return MetricQuery(
        name=f.string("name", pattern=METRIC_NAME, hint="use lower-case letters, digits and '_'"),
        kind=f.choice("kind", METRIC_KINDS, "series"),
        query=query,
        direction=f.choice("direction", DIRECTIONS, "increase"),
        critical=bool(f.get("critical", False)),
        group=f.string("group", "custom"),
    )


def post_promotion(raw: Any, path: str, *, default: bool) -> PostPromotion:
    """``default``: whether the watch is on when the block does not say (on in prod)."""
    f = Fields(raw, path, ("enabled", "duration_s", "interval_s", "lookback_s", "no_data", "max_error_rate"))
    if not isinstance(f.get("enabled", default), bool):
        raise ConfigError(f.at("enabled"), f"{shown(f.get('enabled'))} is not valid; must be true or false")
    duration = f.integer("duration_s", PostPromotion.duration_s, low=1, high=86400)
    interval = f.integer("interval_s", min(PostPromotion.interval_s, duration), low=1, high=3600)
    if interval > duration:
        raise ConfigError(f.at("interval_s"), f"{interval} is longer than duration_s ({duration}): the watch would never judge")
    rate = f.get("max_error_rate")
    return PostPromotion(
        enabled=f.get("enabled", default),
        duration_s=duration,
        interval_s=interval,
        lookback_s=f.integer("lookback_s", PostPromotion.lookback_s, low=60, high=7 * 86400),
        no_data=f.choice("no_data", WATCH_NODATA_POLICIES, PostPromotion.no_data),
        max_error_rate=None if rate is None else f.number("max_error_rate", 0.0, low=0, high=1),
    )
