"""What a shift test misses: a heavier tail or a wider spread at the same median.

Kayenta#780: a canary whose median matches the baseline's but whose spread
tripled passes a Mann-Whitney judge. Two checks catch it:

- tail: how many values of each side lie beyond the pooled ``quantile`` (for
  the upper tail). Because the threshold comes from the pooled sample, under
  "no difference" the canary's count is hypergeometric, so Fisher's exact test
  is exact, whatever the distribution.
- spread: Brown-Forsythe, a Welch t-test on the absolute deviations from each
  side's own median; robust to the skewed shapes latencies have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from deployflow.judge.classification import relative

# Fewer pooled values beyond the threshold and Fisher's test cannot reach
# significance (10 of 10 on the canary's side is p ~ 0.001): widen the tail.
TAIL_MIN_COUNT = 10


@dataclass(frozen=True)
class TailCheck:
    """Values beyond the pooled quantile on each side and the one-sided Fisher p-value."""

    side: str  # "up": upper tail; "down": lower tail
    quantile: float  # the quantile actually used (at least TAIL_MIN_COUNT pooled values beyond it)
    threshold: float
    baseline_beyond: int
    canary_beyond: int
    p_value: float
    baseline_quantile: float
    canary_quantile: float

    @property
    def moved(self) -> float:
        """Relative change of the canary's quantile from the baseline's."""
        return relative(self.canary_quantile, self.baseline_quantile)

    @property
    def change(self) -> float:
        """The same, positive when that tail got worse (further out)."""
        return self.moved if self.side == "up" else -self.moved


@dataclass(frozen=True)
class SpreadCheck:
    """Mean absolute deviation from the median on each side, and Brown-Forsythe's p-value."""

    baseline_spread: float
    canary_spread: float
    p_value: float

    @property
    def change(self) -> float:
        return relative(self.canary_spread, self.baseline_spread)


def tail_check(baseline: np.ndarray, canary: np.ndarray, quantile: float, side: str = "up") -> TailCheck:
    """Does the canary put more values beyond the pooled ``quantile`` (``side`` "up") or below 1 - quantile?"""
    pooled = np.concatenate([baseline, canary])
    upper = max(min(quantile, 1.0 - TAIL_MIN_COUNT / len(pooled)), 0.5)
    q = upper if side == "up" else 1.0 - upper
    threshold = float(np.quantile(pooled, q))
    if side == "up":
        baseline_beyond, canary_beyond = int((baseline > threshold).sum()), int((canary > threshold).sum())
    else:
        baseline_beyond, canary_beyond = int((baseline < threshold).sum()), int((canary < threshold).sum())
    beyond = baseline_beyond + canary_beyond
    p = float(stats.hypergeom.sf(canary_beyond - 1, len(pooled), beyond, len(canary))) if beyond else 1.0
    return TailCheck(side, q, threshold, baseline_beyond, canary_beyond, min(p, 1.0),
                     float(np.quantile(baseline, q)), float(np.quantile(canary, q)))


def spread_check(baseline: np.ndarray, canary: np.ndarray) -> SpreadCheck:
    """Is the canary wider? One-sided Brown-Forsythe on the absolute deviations from each median."""
    baseline_dev = np.abs(baseline - np.median(baseline))
    canary_dev = np.abs(canary - np.median(canary))
    if baseline_dev.std() == 0 and canary_dev.std() == 0:
        # Constant deviations (e.g. two-valued data): a t-test has nothing to work with.
        p = 1.0 if canary_dev.mean() <= baseline_dev.mean() else 0.0
    else:
        p = float(stats.ttest_ind(canary_dev, baseline_dev, equal_var=False, alternative="greater").pvalue)
    return SpreadCheck(float(baseline_dev.mean()), float(canary_dev.mean()), 1.0 if math.isnan(p) else p)
