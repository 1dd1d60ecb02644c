"""classify_counts(): error rates judged as proportions, not as sparse series.

Kayenta#426: a canary's error series is mostly zeros, so a rank test on the
per-interval values sees "no difference" and passes a canary whose errors rose
from 1 to 6. Judging the totals as two proportions uses every request: Fisher's
exact test when any expected cell count is below 5 (Cochran's rule), the pooled
two-proportion z-test otherwise. A significant rise still passes when it is
within ``tolerance`` (relative) or ``min_difference`` (absolute), so huge
traffic does not fail on a 1.00 % -> 1.01 % change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from deployflow.errors import ConfigError
from deployflow.judge.classification import (
    NODATA,
    PASS,
    Classification,
    check_direction,
    num,
    p_text,
    percent,
    relative,
    safe_ratio,
    signed,
    worse_label,
)

COCHRAN_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class CountOptions:
    """How classify_counts() judges; every field is a keyword of classify_counts().

    :param alpha: significance level (one-sided in the bad direction; "either" two-sided).
    :param tolerance: relative rise of the rate that still passes (0.1: 10 % more errors).
    :param min_difference: absolute rise of the rate that still passes (0.0001: 0.01 points).
    :param min_total: fewer requests on a side is nodata.
    """

    alpha: float = 0.005
    tolerance: float = 0.10
    min_difference: float = 0.0001
    min_total: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ConfigError("alpha", f"must be between 0 and 0.5, got {self.alpha!r}")
        if self.tolerance < 0:
            raise ConfigError("tolerance", f"must be 0 or more, got {self.tolerance!r}")
        if not 0 <= self.min_difference < 1:
            raise ConfigError("min_difference", f"must be between 0 and 1, got {self.min_difference!r}")
        if self.min_total < 1:
            raise ConfigError("min_total", f"must be 1 or more, got {self.min_total!r}")


@dataclass(frozen=True)
class ProportionTest:
    name: str
    p_up: float  # one-sided: the canary's rate is higher
    p_down: float  # one-sided: the canary's rate is lower


def classify_counts(
    baseline_errors: float | None,
    baseline_total: float | None,
    canary_errors: float | None,
    canary_total: float | None,
    *,
    direction: str = "increase",
    metric: str = "",
    critical: bool = False,
    **options: object,
) -> Classification:
    """Judge the canary's error rate against the baseline's: pass, high, low or nodata."""
    check_direction(direction)
    opts = CountOptions(**options)
    base = dict(metric=metric, critical=critical, direction=direction)
    counts = [_count(v, name) for v, name in ((baseline_errors, "baseline_errors"), (baseline_total, "baseline_total"),
                                              (canary_errors, "canary_errors"), (canary_total, "canary_total"))]
    if any(v is None for v in counts):
        return Classification(NODATA, f"no data: a count is missing (baseline {baseline_errors} of {baseline_total}, "
                                      f"canary {canary_errors} of {canary_total})", **base)
    be, bt, ce, ct = counts
    _check_consistent(be, bt, "baseline")
    _check_consistent(ce, ct, "canary")
    sizes = dict(n_baseline=bt, n_canary=ct)
    if not bt or not ct:
        return Classification(NODATA, f"no traffic: baseline had {bt} requests, canary {ct}", **sizes, **base)
    if min(bt, ct) < opts.min_total:
        return Classification(NODATA, f"too little traffic to judge: baseline had {bt} requests, canary {ct}, "
                                      f"fewer than min_total {opts.min_total}", **sizes, **base)
    return _judge(be, bt, ce, ct, direction, opts, sizes, base)


def _judge(be: int, bt: int, ce: int, ct: int, direction: str, opts: CountOptions, sizes: dict[str, int],
           base: dict[str, object]) -> Classification:
    rate_b, rate_c = be / bt, ce / ct
    test = proportion_test(be, bt, ce, ct)
    p = {"increase": test.p_up, "decrease": test.p_down,
         "either": min(1.0, 2 * min(test.p_up, test.p_down))}[direction]
    confidence = 1.0 - (opts.alpha if direction == "either" else 2 * opts.alpha)
    ci_low, ci_high = newcombe_interval(be, bt, ce, ct, confidence)
    numbers = dict(estimate=rate_c - rate_b, ci_low=ci_low, ci_high=ci_high, ratio=safe_ratio(rate_c, rate_b),
                   p_value=p, confidence=confidence, **sizes, **base)
    what = "error rate" if direction == "increase" else "rate"
    rates = (f"canary {what} {percent(rate_c, sign=False)} ({ce} of {ct}) vs baseline "
             f"{percent(rate_b, sign=False)} ({be} of {bt}): {signed((rate_c - rate_b) * 100)} points "
             f"({confidence * 100:.3g} % CI {signed(ci_low * 100)} to {signed(ci_high * 100)}), "
             f"ratio {num(safe_ratio(rate_c, rate_b))}, {test.name} {p_text(p)}")
    if be == ce and bt == ct:
        return Classification(PASS, f"identical counts: {rates}", **numbers)
    bad_side = _bad_side(rate_b, rate_c, direction)
    if bad_side is None:
        return Classification(PASS, f"not worse: {rates}", **numbers)
    if p >= opts.alpha:
        return Classification(PASS, f"no significant change: {rates}", **numbers)
    if abs(relative(rate_c, rate_b)) <= opts.tolerance or abs(rate_c - rate_b) <= opts.min_difference:
        return Classification(PASS, f"significant but small: {rates}; within the tolerance of "
                                    f"{percent(opts.tolerance, sign=False)} relative and "
                                    f"{num(opts.min_difference * 100)} points absolute", **numbers)
    verb = "rose" if bad_side == "up" else "fell"
    return Classification(worse_label(direction, bad_side), f"the {what} {verb}: {rates} < {num(opts.alpha)}",
                          flagged=("rate",), **numbers)


def _bad_side(rate_b: float, rate_c: float, direction: str) -> str | None:
    side = "up" if rate_c > rate_b else "down" if rate_c < rate_b else None
    if side == "up" and direction == "decrease" or side == "down" and direction == "increase":
        return None
    return side


def proportion_test(be: int, bt: int, ce: int, ct: int) -> ProportionTest:
    """One-sided p-values both ways: Fisher's exact test for small expected counts, else the z-test."""
    total, errors = bt + ct, be + ce
    expected = [errors * ct / total, errors * bt / total, (total - errors) * ct / total, (total - errors) * bt / total]
    if min(expected) < COCHRAN_MIN_EXPECTED:
        # The canary's errors given the margins are hypergeometric under "same rate".
        up = stats.hypergeom.sf(ce - 1, total, errors, ct)
        down = stats.hypergeom.cdf(ce, total, errors, ct)
        return ProportionTest("Fisher's exact test", float(min(up, 1.0)), float(min(down, 1.0)))
    pooled = errors / total
    z = (ce / ct - be / bt) / math.sqrt(pooled * (1 - pooled) * (1 / bt + 1 / ct))
    return ProportionTest("two-proportion z-test", float(stats.norm.sf(z)), float(stats.norm.cdf(z)))


def wilson_interval(errors: int, total: int, confidence: float) -> tuple[float, float]:
    z = stats.norm.isf((1 - confidence) / 2)
    rate = errors / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(be: int, bt: int, ce: int, ct: int, confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for canary rate - baseline rate: sound at 0 errors, unlike Wald's."""
    rate_b, rate_c = be / bt, ce / ct
    low_b, high_b = wilson_interval(be, bt, confidence)
    low_c, high_c = wilson_interval(ce, ct, confidence)
    difference = rate_c - rate_b
    return (difference - math.hypot(rate_c - low_c, high_b - rate_b),
            difference + math.hypot(high_c - rate_c, rate_b - low_b))


def _count(value: float | None, name: str) -> int | None:
    """A count as an int; None/NaN is missing; Prometheus' increase() may give 4.9999, so round."""
    number = math.nan if value is None else float(value)
    if math.isnan(number):
        return None
    if number < 0 or math.isinf(number):
        raise ValueError(f"{name} must be a finite count of 0 or more, got {value!r}")
    return int(round(number))


def _check_consistent(errors: int, total: int, side: str) -> None:
    if errors > total:
        raise ValueError(f"{side}: {errors} errors out of {total} requests; errors cannot exceed the total")
