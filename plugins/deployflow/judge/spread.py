"""What a shift test misses: a heavier tail or a wider spread at the same median.

Kayenta#780: a canary whose median matches the baseline's but whose spread
tripled passes a Mann-Whitney judge. Two checks catch it:

- tail: how many values of each side lie beyond the pooled ``quantile`` (for
  the upper tail). Because the threshold comes from the pooled sample, under
  "no difference" the canary's count is hypergeometric, so Fisher's exact test
  is exact, whatever the distribution, ties included.
  Tied values (latencies read back from histogram buckets) need one more rule:
  the pooled p99 is then a value a whole bucket shares, and "beyond" it can be
  nearly nothing. When fewer than TAIL_MIN_COUNT pooled values lie strictly
  beyond, the tail takes the tied bucket in. The tail of tied (or bucketed)
  values is then said as "at or above" a boundary value, and the size of the
  change is the shares of each side in it: a quantile of tied data jumps from
  bucket to bucket and says little about how many requests got slower.
- spread: Brown-Forsythe, a Welch t-test on the absolute deviations from each
  side's own median; robust to the skewed shapes latencies have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from deployflow.judge.buckets import quantile as bucket_quantile
from deployflow.judge.classification import relative

# Fewer pooled values beyond the threshold and Fisher's test cannot reach
# significance (10 of 10 on the canary's side is p ~ 0.001): widen the tail.
TAIL_MIN_COUNT = 10


@dataclass(frozen=True)
class TailCheck:
    """Values beyond the pooled quantile on each side and the one-sided Fisher p-value.

    ``tied``: the values are bucketed, or several pooled values equal the pooled
    quantile; the tail is then the values at or above ``threshold`` (at or below
    for "down"), a value of the pooled sample, and ``change`` compares shares.
    """

    side: str  # "up": upper tail; "down": lower tail
    quantile: float  # the quantile actually used (at least TAIL_MIN_COUNT pooled values beyond it)
    threshold: float
    baseline_beyond: int
    canary_beyond: int
    p_value: float
    baseline_quantile: float
    canary_quantile: float
    n_baseline: int = 0
    n_canary: int = 0
    tied: bool = False

    @property
    def moved(self) -> float:
        """Relative change of the canary's quantile from the baseline's."""
        return relative(self.canary_quantile, self.baseline_quantile)

    @property
    def baseline_share(self) -> float:
        return self.baseline_beyond / self.n_baseline if self.n_baseline else math.nan

    @property
    def canary_share(self) -> float:
        return self.canary_beyond / self.n_canary if self.n_canary else math.nan

    @property
    def change(self) -> float:
        """Positive when that tail got worse: the quantile further out, or for tied data a bigger share in the tail."""
        if self.tied:
            return relative(self.canary_share, self.baseline_share)
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


def tail_check(baseline: np.ndarray, canary: np.ndarray, quantile: float, side: str = "up",
               bounds: tuple[float, ...] | None = None) -> TailCheck:
    """Does the canary put more values beyond the pooled ``quantile`` (``side`` "up") or below 1 - quantile?

    ``bounds``: the histogram's bucket bounds, if the values were read from one;
    the quantiles reported are then interpolated within buckets. The test is the same.
    """
    pooled = np.concatenate([baseline, canary])
    upper = max(min(quantile, 1.0 - TAIL_MIN_COUNT / len(pooled)), 0.5)
    q = upper if side == "up" else 1.0 - upper
    threshold = float(np.quantile(pooled, q))
    ties = int((pooled == threshold).sum()) >= 2
    tied = ties or bounds is not None
    if tied:
        inclusive = False
        if ties and _beyond(pooled, threshold, side, False).sum() < TAIL_MIN_COUNT:
            # At or above the pooled minimum is everything: then the strict tail is all there is.
            inclusive = threshold != (pooled.min() if side == "up" else pooled.max())
        tail = pooled[_beyond(pooled, threshold, side, inclusive)]
        if len(tail):  # the same tail, said by its first value (nothing beyond one value repeated: keep it)
            threshold = float(tail.min() if side == "up" else tail.max())
    baseline_beyond = int(_beyond(baseline, threshold, side, tied).sum())
    canary_beyond = int(_beyond(canary, threshold, side, tied).sum())
    beyond = baseline_beyond + canary_beyond
    p = float(stats.hypergeom.sf(canary_beyond - 1, len(pooled), beyond, len(canary))) if beyond else 1.0
    return TailCheck(side, q, threshold, baseline_beyond, canary_beyond, min(p, 1.0),
                     bucket_quantile(baseline, q, bounds), bucket_quantile(canary, q, bounds),
                     len(baseline), len(canary), tied)


def _beyond(values: np.ndarray, threshold: float, side: str, inclusive: bool) -> np.ndarray:
    if side == "up":
        return values >= threshold if inclusive else values > threshold
    return values <= threshold if inclusive else values < threshold


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
