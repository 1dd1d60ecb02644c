"""classify(): a continuous metric (latency samples, per-interval values), canary against baseline.

Kayenta's order: the cheap guards first (no data -> nodata, too few samples ->
nodata, identical -> pass), then the statistics. Three checks, each with a
share of ``alpha`` (Bonferroni, so one metric's A/A false-positive rate stays
at or below ``alpha``) and each needing a change bigger than ``tolerance``:

- shift (alpha / 2): Mann-Whitney U, one-sided in the bad direction ("either":
  two-sided), and the Hodges-Lehmann shift relative to the baseline median;
- tail (alpha / 4): Fisher's exact test on the values beyond the pooled
  ``tail_quantile`` on the bad side, and the change of that quantile (for tied
  values: the tail takes in the threshold's tied values when too few lie
  strictly beyond, and its change is the shares of each side in it);
- spread (alpha / 4): Brown-Forsythe, and the change of the mean absolute
  deviation from the median. Wider is worse when it reaches the bad side (the
  canary's upper quartile above the baseline's for "increase", its lower quartile
  below for "decrease"; any wider spread for "either"): more slow requests, more
  starved intervals, but not a canary whose throughput all grew by half.

Values read from histogram buckets (``buckets.BucketedValues``, what
``analysis.bucket_samples`` returns) are ordered buckets: the same tests (Mann-Whitney
and Fisher are exact or tie-corrected on them), but the median shift is sized
between medians interpolated within buckets, and reasons name bucket bounds.

"either" splits the tail share between both tails. Labels: the bad side's
("high" for "increase", "low" for "decrease"); for "either" the side the shift
or tail moved to, and "high" for a wider spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from deployflow.errors import ConfigError, one_of
from deployflow.judge import reasons
from deployflow.judge.buckets import common_bounds, histogram_quantile
from deployflow.judge.classification import (
    NAN,
    NODATA,
    PASS,
    Classification,
    check_direction,
    num,
    relative,
    safe_ratio,
    worse_label,
)
from deployflow.judge.samples import NAN_POLICIES, OUTLIER_METHODS, Sample, as_values, identical, prepare
from deployflow.judge.shift import MedianMove, hodges_lehmann, mann_whitney
from deployflow.judge.spread import TailCheck, spread_check, tail_check

SHIFT_SHARE, TAIL_SHARE, SPREAD_SHARE = 0.5, 0.25, 0.25
ALTERNATIVE = {"increase": "greater", "decrease": "less", "either": "two-sided"}  # "greater": the canary is larger


@dataclass(frozen=True)
class ContinuousOptions:
    """How classify() judges; every field is a keyword of classify().

    :param alpha: family-wise significance level of one metric's three checks.
    :param tolerance: relative change (of the median, the tail quantile, the spread)
        that still passes even when significant.
    :param min_shift: absolute shift that still passes (in the metric's unit).
    :param min_samples: fewer values on a side (after cleaning) is nodata.
    :param nan_policy: "drop" NaNs (said in the reason) or "fail": any NaN makes
        the metric nodata, which the score's no-data policy fails by default.
    :param outliers: "none", "tukey" (3 IQR fences) or "mad" (robust z > 3.5),
        per side. It also removes the slow requests the tail check looks for.
    :param tail_quantile: the tail the tail check watches (0.99: p99).
    """

    alpha: float = 0.005
    tolerance: float = 0.10
    min_shift: float = 0.0
    min_samples: int = 10
    nan_policy: str = "drop"
    outliers: str = "none"
    tail_quantile: float = 0.99

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ConfigError("alpha", f"must be between 0 and 0.5, got {self.alpha!r}")
        if self.tolerance < 0 or self.min_shift < 0:
            raise ConfigError("tolerance" if self.tolerance < 0 else "min_shift", "must be 0 or more")
        if self.min_samples < 2:
            raise ConfigError("min_samples", f"must be 2 or more, got {self.min_samples!r}")
        if self.nan_policy not in NAN_POLICIES:
            raise ConfigError("nan_policy", one_of(self.nan_policy, NAN_POLICIES))
        if self.outliers not in OUTLIER_METHODS:
            raise ConfigError("outliers", one_of(self.outliers, OUTLIER_METHODS))
        if not 0.5 < self.tail_quantile < 1:
            raise ConfigError("tail_quantile", f"must be between 0.5 and 1, got {self.tail_quantile!r}")


def classify(
    baseline: Iterable[float] | None,
    canary: Iterable[float] | None,
    *,
    direction: str = "increase",
    metric: str = "",
    critical: bool = False,
    **options: object,
) -> Classification:
    """Judge the canary's samples against the baseline's: pass, high, low or nodata."""
    check_direction(direction)
    opts = ContinuousOptions(**options)  # an unknown option is a TypeError, never ignored
    base = dict(metric=metric, critical=critical, direction=direction)
    bounds = common_bounds(baseline, canary)  # read from histogram buckets: judged as ordered buckets
    raw_baseline, raw_canary = as_values(baseline), as_values(canary)
    if opts.nan_policy == "fail" and (np.isnan(raw_baseline).any() or np.isnan(raw_canary).any()):
        return Classification(NODATA, reasons.nan_reason(raw_baseline, raw_canary), n_baseline=len(raw_baseline),
                              n_canary=len(raw_canary), **base)
    b, c = prepare(raw_baseline, raw_canary, opts.outliers)
    sizes = dict(n_baseline=len(b), n_canary=len(c))
    notes = reasons.cleaning_notes(b, c)
    if not len(b) or not len(c):
        return Classification(NODATA, f"no data: baseline has {len(b)} values, canary {len(c)}{notes}", **sizes, **base)
    if min(len(b), len(c)) < opts.min_samples:
        reason = (f"too few values to judge: baseline has {len(b)}, canary {len(c)}, "
                  f"fewer than min_samples {opts.min_samples}{notes}")
        return Classification(NODATA, reason, **sizes, **base)
    medians = _medians(b.values, c.values, bounds)
    ratio = safe_ratio(medians[1], medians[0])
    if identical(b.values, c.values):
        reason = f"canary and baseline are identical ({len(b)} and {len(c)} values, median {num(np.median(b.values))})"
        return Classification(PASS, reason + notes, estimate=0.0, ci_low=0.0, ci_high=0.0, ratio=ratio,
                              p_value=1.0, **sizes, **base)
    return _judge(b, c, direction, opts, medians, bounds, notes, base)


def _judge(b: Sample, c: Sample, direction: str, opts: ContinuousOptions, medians: tuple[float, float],
           bounds: tuple[float, ...] | None, notes: str, base: dict[str, object]) -> Classification:
    shift_alpha = opts.alpha * SHIFT_SHARE
    # Two-sided at 1 - 2*alpha: its bound on the bad side is the one-sided test's at alpha.
    confidence = 1.0 - (shift_alpha if direction == "either" else 2 * shift_alpha)
    test = mann_whitney(b.values, c.values, ALTERNATIVE[direction])
    # Bucketed values are sized between interpolated medians: no Hodges-Lehmann (it moves in whole buckets).
    shift = None if bounds else hodges_lehmann(b.values, c.values, confidence)
    move = MedianMove(shift, *medians)
    ratio = safe_ratio(medians[1], medians[0])
    tails = _tail_checks(b.values, c.values, direction, opts, bounds)
    spread = spread_check(b.values, c.values)
    interval = (NAN, NAN) if shift is None else (shift.ci_low, shift.ci_high)
    numbers = dict(estimate=move.estimate, ci_low=interval[0], ci_high=interval[1], ratio=ratio,
                   p_value=test.p_value, n_baseline=len(b), n_canary=len(c), confidence=confidence,
                   tail_p_value=min(t.p_value for t in tails), spread_p_value=spread.p_value, **base)

    findings = []  # (check, label, sentence), the shift first
    if test.p_value < shift_alpha and _beyond_tolerance(move.estimate, move.baseline_median, opts, direction):
        side = "up" if move.estimate > 0 else "down"
        findings.append(("shift", worse_label(direction, side),
                         reasons.shift_sentence(move, ratio, test.p_value, shift_alpha, opts.tolerance)))
    tail_alpha = opts.alpha * TAIL_SHARE / len(tails)
    for tail in tails:
        if tail.p_value < tail_alpha and tail.change > opts.tolerance:
            findings.append(("tail", worse_label(direction, tail.side), reasons.tail_sentence(tail, tail_alpha, bounds)))
    spread_alpha = opts.alpha * SPREAD_SHARE
    if (spread.p_value < spread_alpha and spread.change > opts.tolerance
            and _reaches_bad_side(b.values, c.values, direction)):
        findings.append(("spread", worse_label(direction, "up"), reasons.spread_sentence(spread, spread_alpha)))

    if not findings:
        reason = reasons.pass_sentence(move, ratio, test.p_value, tails, spread, opts.tolerance, bounds)
        return Classification(PASS, reason + notes, **numbers)
    lead = "" if findings[0][0] == "shift" else reasons.median_held(move, ratio, test.p_value) + " "
    reason = lead + "; and ".join(sentence for _, _, sentence in findings)
    return Classification(findings[0][1], reason + notes, flagged=tuple(check for check, _, _ in findings),
                          **numbers)


def _medians(b: np.ndarray, c: np.ndarray, bounds: tuple[float, ...] | None) -> tuple[float, float]:
    """The two medians: plain, or interpolated within the histogram's buckets (a midpoint's median is its bucket's)."""
    if bounds:
        return histogram_quantile(b, 0.5, bounds), histogram_quantile(c, 0.5, bounds)
    return float(np.median(b)), float(np.median(c))


def _tail_checks(b: np.ndarray, c: np.ndarray, direction: str, opts: ContinuousOptions,
                 bounds: tuple[float, ...] | None) -> list[TailCheck]:
    sides = {"increase": ["up"], "decrease": ["down"], "either": ["up", "down"]}[direction]
    return [tail_check(b, c, opts.tail_quantile, side, bounds) for side in sides]


def _reaches_bad_side(b: np.ndarray, c: np.ndarray, direction: str) -> bool:
    """A wider spread is worse only if it reaches the bad side: a canary 1.5x the throughput is wider, and better."""
    if direction == "increase":
        return bool(np.quantile(c, 0.75) > np.quantile(b, 0.75))
    if direction == "decrease":
        return bool(np.quantile(c, 0.25) < np.quantile(b, 0.25))
    return True


def _beyond_tolerance(estimate: float, baseline_median: float, opts: ContinuousOptions, direction: str) -> bool:
    """Is the shift beyond both the relative tolerance and the absolute min_shift, on a bad side?"""
    if direction == "increase" and estimate <= 0 or direction == "decrease" and estimate >= 0:
        return False
    change = abs(relative(baseline_median + estimate, baseline_median))
    return change > opts.tolerance and abs(estimate) > opts.min_shift
