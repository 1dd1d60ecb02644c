"""score(): many metric classifications -> one release verdict (Kayenta's NetflixACAJudge).

A group's score is the percentage of its metrics that pass; the total is the
weighted mean of the group scores. ``pass_threshold`` and above passes,
``marginal_threshold`` and above is marginal, below fails; a critical metric
that fails makes the verdict fail whatever the score.

No data is never a silent pass. When no metric has data (nothing reached the
canary, or the baseline had nothing to compare with), there is no score: the
verdict is "nodata", with the reason, and the caller's no-data policy decides
what such an interval does (the analysis' progress, the post-promotion watch).
When some metrics have data, each other metric's no-data policy decides:

- "fail" (default): the metric counts as failing;
- "pass": it counts as passing, and a reason says so;
- "extend": it is left out of its group's score, and the verdict can be at best
  "marginal" with ``inconclusive`` set and a reason asking for a longer analysis
  window; a verdict that fails on the metrics with data still fails.

A metric named in a group or as critical but missing from the classifications
is nodata.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from deployflow.errors import ConfigError, one_of
from deployflow.judge.classification import NODATA, PASS, Classification

RESULT_PASS, RESULT_MARGINAL, RESULT_FAIL, RESULT_NODATA = "pass", "marginal", "fail", "nodata"
from deployflow.policies import NODATA_POLICIES  # noqa: E402 - defined once, beside the catalog


@dataclass(frozen=True)
class Group:
    """Metrics scored together, and the group's weight in the total."""

    metrics: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class ScoreOptions:
    """How score() weighs metrics; every field is a keyword of score().

    :param pass_threshold: a score at or above it passes.
    :param marginal_threshold: a score at or above it (and below pass) is marginal.
    :param nodata_policy: the no-data policy of every metric not in ``nodata_policies``.
    :param nodata_policies: per-metric no-data policies.
    :param critical: metrics whose failure fails the verdict (as does ``Classification.critical``).
    :param sides: what the reasons call the baseline and the canary (a track, a version).
    """

    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    nodata_policy: str = "fail"
    nodata_policies: Mapping[str, str] = field(default_factory=dict)
    critical: Iterable[str] = ()
    sides: tuple[str, str] = ("the baseline", "the canary")

    def __post_init__(self) -> None:
        if not 0 <= self.marginal_threshold <= self.pass_threshold <= 100:
            raise ConfigError("pass_threshold", "need 0 <= marginal_threshold <= pass_threshold <= 100, got "
                                                f"{self.marginal_threshold!r} and {self.pass_threshold!r}")
        for path, policy in [("nodata_policy", self.nodata_policy),
                             *((f"nodata_policies.{m}", p) for m, p in self.nodata_policies.items())]:
            if policy not in NODATA_POLICIES:
                raise ConfigError(path, one_of(policy, NODATA_POLICIES))

    def policy(self, metric: str) -> str:
        return self.nodata_policies.get(metric, self.nodata_policy)


@dataclass(frozen=True)
class Verdict:
    """The release's verdict: ``score`` 0-100 (nan when no metric could be scored) and ``result``.

    ``result`` is "nodata" (and ``score`` nan) when no metric had data: never a
    pass score. ``group_scores`` has every group that could be scored (a group
    whose metrics all lack data under the "extend" policy has none); ``reasons``
    starts with the verdict, then one sentence per metric that did not pass,
    then the groups.
    """

    score: float
    result: str
    reasons: tuple[str, ...]
    group_scores: Mapping[str, float]
    classifications: tuple[Classification, ...] = ()
    critical_failures: tuple[str, ...] = ()
    inconclusive: bool = False

    @property
    def passed(self) -> bool:
        return self.result == RESULT_PASS


def score(
    classifications: Sequence[Classification] | Mapping[str, Classification],
    groups: Mapping[str, Group | Mapping | Sequence[str]] | None = None,
    **options: object,
) -> Verdict:
    """Combine classifications into a verdict; ``groups`` maps a name to a Group, {"metrics", "weight"} or names."""
    opts = ScoreOptions(**options)
    by_metric = _by_metric(classifications)
    if not by_metric and not groups:
        raise ConfigError("classifications", "is empty: there is nothing to score")
    critical = {opts.critical} if isinstance(opts.critical, str) else set(opts.critical)
    for metric in sorted(critical - set(by_metric)):  # a critical metric nobody measured is not a pass
        by_metric[metric] = _missing(metric)
    parsed = _groups(groups, list(by_metric))
    for group in parsed.values():
        for metric in group.metrics:
            by_metric.setdefault(metric, _missing(metric))
    if all(c.label == NODATA for c in by_metric.values()):
        return _nothing_judged(by_metric, opts.sides)
    outcome = {metric: _outcome(c, opts.policy(metric)) for metric, c in by_metric.items()}
    group_scores = {name: _group_score(group, outcome) for name, group in parsed.items()}
    total = _weighted_mean(group_scores, parsed)
    critical |= {m for m, c in by_metric.items() if c.critical}
    critical_failures = tuple(sorted(m for m in critical if outcome[m] == "fail"))
    waiting = sorted(m for m, o in outcome.items() if o == "skip")
    result = _result(total, opts, critical_failures)
    inconclusive = bool(waiting) and result != RESULT_FAIL
    if inconclusive:
        result = RESULT_MARGINAL
    reasons = [_summary(total, result, opts, critical_failures, waiting)]
    reasons += [_metric_reason(c, outcome[m], opts.policy(m)) for m, c in by_metric.items() if not c.passed]
    reasons.append("groups: " + ", ".join(f"{name} {_score_text(group_scores[name])} (weight {parsed[name].weight:g})"
                                          for name in parsed))
    return Verdict(total, result, tuple(reasons), {n: s for n, s in group_scores.items() if s is not None},
                   tuple(by_metric.values()), critical_failures, inconclusive)


def _nothing_judged(by_metric: Mapping[str, Classification], sides: tuple[str, str]) -> Verdict:
    """The verdict when no metric had data: no score, whatever the policies (they weigh metrics, not silence)."""
    baseline, canary = sides
    if all(c.n_canary == 0 for c in by_metric.values()):
        why = f"no request reached {canary} in the window judged"
    elif all(c.n_baseline == 0 for c in by_metric.values()):
        why = f"{baseline} had no request to compare {canary} with"
    else:  # each metric's reason says why (too few values, NaNs)
        why = "no metric had data to judge"
    reasons = [f"{RESULT_NODATA} ({why})", *(f"{m}: no data: {c.reason}" for m, c in by_metric.items())]
    return Verdict(math.nan, RESULT_NODATA, tuple(reasons), {}, tuple(by_metric.values()))


def _missing(metric: str) -> Classification:
    return Classification(NODATA, "no classification was given", metric=metric)


def _by_metric(classifications: Sequence[Classification] | Mapping[str, Classification]) -> dict[str, Classification]:
    if isinstance(classifications, Mapping):
        return {name: c if c.metric == name else c.named(name) for name, c in classifications.items()}
    by_metric: dict[str, Classification] = {}
    for index, c in enumerate(classifications):
        if not c.metric:
            raise ConfigError(f"classifications[{index}].metric", "is empty; name every metric, or pass a dict")
        if c.metric in by_metric:
            raise ConfigError(f"classifications[{index}].metric", f"{c.metric!r} is given twice")
        by_metric[c.metric] = c
    return by_metric


def _groups(groups: Mapping[str, Group | Mapping | Sequence[str]] | None, metrics: list[str]) -> dict[str, Group]:
    if groups is None:
        return {"all": Group(tuple(metrics))}
    parsed = {name: _group(name, spec) for name, spec in groups.items()}
    grouped = {m for g in parsed.values() for m in g.metrics}
    loose = [m for m in metrics if m not in grouped]
    if loose:
        # A metric in no group would never count: say so instead of dropping it.
        raise ConfigError("groups", f"metric {loose[0]!r} is in no group; groups are "
                                    + ", ".join(repr(n) for n in parsed))
    return parsed


def _group(name: str, spec: Group | Mapping | Sequence[str]) -> Group:
    if isinstance(spec, Group):
        group = spec
    elif isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"metrics", "weight"})
        if unknown:
            raise ConfigError(f"groups.{name}.{unknown[0]}", "unknown field; valid fields are metrics, weight")
        group = Group(tuple(spec.get("metrics", ())), float(spec.get("weight", 1.0)))
    else:
        group = Group(tuple(spec))
    if not group.metrics:
        raise ConfigError(f"groups.{name}.metrics", "must name at least one metric")
    if not (math.isfinite(group.weight) and group.weight > 0):
        raise ConfigError(f"groups.{name}.weight", f"must be a number above 0, got {group.weight!r}")
    return group


def _outcome(c: Classification, policy: str) -> str:
    """"pass", "fail" or "skip" (left out of the score: no data under the "extend" policy)."""
    if c.label == PASS:
        return "pass"
    if c.label != NODATA:
        return "fail"
    return {"fail": "fail", "pass": "pass", "extend": "skip"}[policy]


def _group_score(group: Group, outcome: Mapping[str, str]) -> float | None:
    counted = [outcome[m] for m in group.metrics if outcome[m] != "skip"]
    return 100.0 * counted.count("pass") / len(counted) if counted else None


def _weighted_mean(group_scores: Mapping[str, float | None], groups: Mapping[str, Group]) -> float:
    scored = [(s, groups[n].weight) for n, s in group_scores.items() if s is not None]
    if not scored:
        return math.nan
    return sum(s * w for s, w in scored) / sum(w for _, w in scored)


def _result(total: float, opts: ScoreOptions, critical_failures: tuple[str, ...]) -> str:
    if critical_failures:
        return RESULT_FAIL
    if total >= opts.pass_threshold:
        return RESULT_PASS
    return RESULT_MARGINAL if total >= opts.marginal_threshold else RESULT_FAIL


def _summary(total: float, result: str, opts: ScoreOptions, critical_failures: tuple[str, ...],
             waiting: list[str]) -> str:
    thresholds = f"pass at {opts.pass_threshold:g}, marginal at {opts.marginal_threshold:g}"
    if critical_failures:
        return (f"fail: critical metric {', '.join(critical_failures)} failed, whatever the score "
                f"{_score_text(total)} ({thresholds})")
    text = f"{result}: score {_score_text(total)} ({thresholds})"
    if waiting and result == RESULT_MARGINAL:
        text += (f"; inconclusive: {', '.join(waiting)} had no data (no-data policy 'extend'): "
                 "extend the analysis window and judge again")
    return text


def _metric_reason(c: Classification, outcome: str, policy: str) -> str:
    if c.label != NODATA:
        return f"{c.metric}: {c.label}: {c.reason}"
    counted = {"fail": "counted as failing", "pass": "counted as passing", "skip": "left out of the score"}[outcome]
    return f"{c.metric}: no data, {counted} (no-data policy '{policy}'): {c.reason}"


def _score_text(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"
