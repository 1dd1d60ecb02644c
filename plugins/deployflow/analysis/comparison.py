"""Canary analysis, and the post-promotion watch's judge: read two slices of metrics from a provider and judge them.

Each interval judges everything since the analysis started (the window grows,
so a slow regression has more data each time). Per metric kind:

- ``errors``: a request counter by status code; 5xx out of all requests,
  judged as proportions (``judge.classify_counts``), never as a sparse series.
- ``histogram``: a latency histogram; each request counted in its bucket, so
  the judge compares requests (``judge.classify``, ties corrected), and a
  tail or spread regression shows even at the same median.
- ``series``: any PromQL; its values step by step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deployflow import judge
from deployflow.catalog import Analysis, MetricQuery, PostPromotion
from deployflow.metrics.base import MetricsProvider, Series
from deployflow.rollout.watch import Judgement

METRIC_POLICY = {"hold": "extend"}  # the watch's no-data policy, said of one metric where the others had data


def selector(service: str, environment: str, track: str) -> str:
    return f'service="{service}",environment="{environment}",track="{track}"'


def render(query: str, *, selector: str, window_s: float) -> str:
    # Plain replacement: PromQL's own braces must stay as they are.
    return query.replace("{selector}", selector).replace("{window}", f"{max(1, round(window_s))}s")


def bucket_samples(series: Sequence[Series]) -> judge.BucketedValues:
    """Requests per bucket of a ``sum by (le) (increase(..._bucket[w]))`` result, one value each.

    A request is placed at its bucket's midpoint; the +Inf bucket at its lower bound.
    The list carries the bucket bounds, so the judge treats the values as ordered buckets.
    """
    cumulative = []
    for s in series:
        if "le" in s.labels and s.points and not math.isnan(s.points[-1][1]):
            cumulative.append((float(s.labels["le"]), s.points[-1][1]))
    cumulative.sort()
    samples: list[float] = []
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        in_bucket = max(0, round(count - below))
        value = lower if math.isinf(bound) else (lower + bound) / 2
        samples.extend([value] * in_bucket)
        lower, below = (bound if not math.isinf(bound) else lower), max(below, count)
    return judge.BucketedValues(samples, bounds=(bound for bound, _ in cumulative))


@dataclass(frozen=True)
class IntervalReport:
    number: int
    start: float
    end: float
    classifications: dict[str, Any]
    verdict: Any

    @property
    def result(self) -> str:
        return self.verdict.result

    def table(self) -> str:
        """metric | label | estimate | interval | ratio | reason, one line a metric."""
        rows = [f"{'metric':<14} {'label':<7} {'estimate':>10} {'interval':>22} {'ratio':>7}  reason"]
        for name, c in self.classifications.items():
            interval = "" if _missing(c.ci_low) else f"[{c.ci_low:.4g}, {c.ci_high:.4g}]"
            rows.append(f"{name:<14} {c.label:<7} {_fmt(c.estimate):>10} {interval:>22} {_fmt(c.ratio):>7}  {c.reason}")
        if self.verdict.result == judge.RESULT_NODATA:  # no score: the verdict's first reason says why
            rows.append(f"score -: {self.verdict.reasons[0]}")
        else:
            rows.append(f"score {self.verdict.score:.0f}/100: {self.verdict.result}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval": self.number, "start": self.start, "end": self.end, "result": self.verdict.result,
            "score": _num(self.verdict.score), "reasons": list(self.verdict.reasons),
            "metrics": {n: {"label": c.label, "estimate": _num(c.estimate), "ci": [_num(c.ci_low), _num(c.ci_high)],
                            "ratio": _num(c.ratio), "reason": c.reason} for n, c in self.classifications.items()},
        }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    return "-" if _missing(value) else f"{value:.4g}"


def _num(value: Any) -> float | None:
    return None if _missing(value) else float(value)


@dataclass(frozen=True)
class Slice:
    """One side of a comparison: the series ``selector`` picks, from ``start`` to ``end`` (Unix seconds);
    ``name`` is what the verdict's reasons call it."""

    selector: str
    start: float
    end: float
    name: str


class Comparison:
    """Judges one slice of a service's metrics against another, metric by metric, on the catalog's
    analysis metrics and thresholds: the one judgement canary analysis and the post-promotion watch make."""

    def __init__(self, provider: MetricsProvider, config: Analysis, step_s: float = 1.0) -> None:
        self.provider = provider
        self.config = config
        self.step_s = step_s

    def compare(self, number: int, control: Slice, experiment: Slice, *, nodata_policy: str) -> IntervalReport:
        classifications = {m.name: self._classify(m, control, experiment) for m in self.config.metrics}
        verdict = judge.score(
            classifications,
            groups=self._groups(),
            critical=[m.name for m in self.config.metrics if m.critical],
            nodata_policy=nodata_policy,
            pass_threshold=self.config.pass_threshold,
            marginal_threshold=self.config.marginal_threshold,
            sides=(control.name, experiment.name),
        )
        return IntervalReport(number, experiment.start, experiment.end, classifications, verdict)

    def errors(self, metric: MetricQuery, side: Slice) -> tuple[int, int]:
        """5xx answers and all answers of ``side``, from the request counter's increase over it."""
        window = max(1, round(side.end - side.start))
        query = f"sum by (code) (increase({render(metric.query, selector=side.selector, window_s=window)}[{window}s]))"
        by_code = self.provider.query_range(query, side.end, side.end, self.step_s)
        counts = {s.labels.get("code", ""): s.points[-1][1] for s in by_code if s.points and not math.isnan(s.points[-1][1])}
        total = round(sum(counts.values()))
        errors = round(sum(v for code, v in counts.items() if code.startswith("5")))
        return errors, total

    def _groups(self) -> dict[str, dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for m in self.config.metrics:
            groups.setdefault(m.group, {"metrics": [], "weight": 1.0})["metrics"].append(m.name)
        return groups

    def _classify(self, metric: MetricQuery, control: Slice, experiment: Slice):
        if metric.kind == "errors":
            (be, bt), (ce, ct) = (self.errors(metric, side) for side in (control, experiment))
            return judge.classify_counts(be, bt, ce, ct)
        if metric.kind == "histogram":
            base, new = (bucket_samples(self._query(metric, side, side.end - side.start, side.end, side.end))
                         for side in (control, experiment))
        else:
            base, new = (
                [v for series in self._query(metric, side, self.step_s * 5, side.start, side.end) for v in series.values]
                for side in (control, experiment)
            )
        return judge.classify(base, new, direction=metric.direction)

    def _query(self, metric: MetricQuery, side: Slice, window_s: float, start: float, end: float) -> list[Series]:
        return self.provider.query_range(render(metric.query, selector=side.selector, window_s=window_s), start, end, self.step_s)


class CanaryAnalysis(Comparison):
    """Judges the canary track against the baseline (or stable) track of one service and environment, both
    over the same window."""

    def __init__(self, provider: MetricsProvider, *, service: str, environment: str, config: Analysis, step_s: float = 1.0) -> None:
        super().__init__(provider, config, step_s)
        self.service = service
        self.environment = environment
        self.control = "baseline" if config.baseline else "stable"

    def judge(self, number: int, start: float, end: float) -> IntervalReport:
        control, canary = (Slice(selector(self.service, self.environment, t), start, end, f"the {t} track")
                           for t in (self.control, "canary"))
        return self.compare(number, control, canary, nodata_policy=self.config.no_data)


def version_selector(service: str, environment: str, version: str) -> str:
    return f'service="{service}",environment="{environment}",version="{version}"'


class VersionComparison(Comparison):
    """The post-promotion watch's judge: the new version since the watch began against what the old version
    showed in the ``lookback_s`` before it (every track of it: stable, and a baseline if one ran), on the
    analysis' metrics and thresholds, with the watch's no-data policy and its ``max_error_rate``."""

    def __init__(self, provider: MetricsProvider, *, service: str, environment: str, config: Analysis,
                 watch: PostPromotion, old: str, new: str, clock: Callable[[], float] = time.time,
                 scrape_lag_s: float = 3.0) -> None:
        super().__init__(provider, config)
        self.watch = watch
        self.old, self.new = old, new
        self.selectors = {v: version_selector(service, environment, v) for v in (old, new)}
        self.clock = clock
        self.scrape_lag_s = scrape_lag_s
        self.began: float | None = None

    def begin(self) -> None:
        """The watch starts now: the old version's window closes, the new one's opens."""
        self.began = self.clock()

    def judge(self, number: int) -> Judgement:
        began = self.began if self.began is not None else self.clock()
        before = Slice(self.selectors[self.old], began - self.watch.lookback_s, began, self.old)
        since = Slice(self.selectors[self.new], began, max(began + 1, self.clock() - self.scrape_lag_s), self.new)
        # An interval where no metric had data is "nodata", and the watch decides by its policy; a metric without
        # data beside others with data follows it too ("hold": left out of the score, as "extend" does).
        report = self.compare(number, before, since, nodata_policy=METRIC_POLICY.get(self.watch.no_data, self.watch.no_data))
        failure = "; ".join(report.verdict.reasons) if report.result == "fail" else None
        nodata = report.verdict.reasons[0] if report.result == judge.RESULT_NODATA else None
        limit = self.watch.max_error_rate
        if limit is not None and failure is None:
            errors, total = self.errors(next(m for m in self.config.metrics if m.kind == "errors"), since)
            if total and errors / total > limit:
                failure = f"{errors} of {total} requests answered 5xx ({errors / total:.1%}), above max_error_rate {limit:.1%}"
        return Judgement(failure, report.table(), nodata, report.to_dict())
