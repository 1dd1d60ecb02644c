"""The location shift between two samples: Mann-Whitney U, Hodges-Lehmann, Moses interval.

The Hodges-Lehmann estimate of the shift canary - baseline is the median of all
m*n pairwise differences ``canary_j - baseline_i``; its distribution-free
confidence interval (Moses) is a pair of order statistics of the same
differences, chosen with the null distribution of U (exact for small samples,
normal otherwise). Both are the natural companions of the Mann-Whitney test:
the interval excludes 0 when the test rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

from deployflow.errors import one_of
from deployflow.judge.classification import relative

# Above this many pairs the differences are a fixed-seed random sample of pairs
# (8 MB of float64): the estimate moves by far less than its own interval.
MAX_PAIRS = 1_000_000
# The exact null distribution of U is kept in int64: C(66, 33) < 2**63.
EXACT_MAX_TOTAL = 60

ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class MannWhitney:
    """U of the canary (pairs where canary > baseline, ties count half) and its p-value."""

    u: float
    p_value: float
    alternative: str


@dataclass(frozen=True)
class Shift:
    """Hodges-Lehmann shift canary - baseline and its Moses interval at ``confidence``."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class MedianMove:
    """How far the canary's median moved, as the tolerance judges it.

    Continuous values: the Hodges-Lehmann ``shift`` against the baseline's median.
    Values read from histogram buckets (no ``shift``): the difference of the two
    medians interpolated within their buckets, since Hodges-Lehmann on bucket
    midpoints moves in whole buckets (often 0 while every request got slower).
    """

    shift: Shift | None
    baseline_median: float
    canary_median: float

    @property
    def bucketed(self) -> bool:
        return self.shift is None

    @property
    def estimate(self) -> float:
        return self.canary_median - self.baseline_median if self.shift is None else self.shift.estimate

    @property
    def change(self) -> float:
        """The estimate relative to the baseline's median."""
        return relative(self.baseline_median + self.estimate, self.baseline_median)


def mann_whitney(baseline: np.ndarray, canary: np.ndarray, alternative: str = "two-sided") -> MannWhitney:
    """Mann-Whitney U with scipy's tie correction; "greater" means the canary is larger.

    ``method="auto"`` is exact for small samples without ties and otherwise the
    normal approximation with the tie-corrected variance and continuity correction.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: {one_of(alternative, ALTERNATIVES)}")
    result = stats.mannwhitneyu(canary, baseline, alternative=alternative, method="auto")
    p = float(result.pvalue)
    # All values tied: the variance of U is 0 and scipy says nan; no evidence of any shift.
    return MannWhitney(float(result.statistic), 1.0 if math.isnan(p) else p, alternative)


def hodges_lehmann(baseline: np.ndarray, canary: np.ndarray, confidence: float = 0.95) -> Shift:
    """The median pairwise difference canary - baseline, with its two-sided Moses interval."""
    m, n = len(canary), len(baseline)
    differences = _pair_differences(np.asarray(baseline, float), np.asarray(canary, float))
    total = m * n
    lower_rank = moses_rank(m, n, 1.0 - confidence)
    median_ranks = [(total + 1) // 2, total // 2 + 1]  # 1-based; equal when total is odd
    ranks = median_ranks + ([lower_rank, total + 1 - lower_rank] if lower_rank >= 1 else [])
    values = _order_statistics(differences, total, ranks)
    estimate = (values[0] + values[1]) / 2.0
    if lower_rank < 1:
        # Too few samples for this confidence: no finite interval exists.
        return Shift(estimate, -math.inf, math.inf, confidence)
    return Shift(estimate, values[2], values[3], confidence)


def _pair_differences(baseline: np.ndarray, canary: np.ndarray) -> np.ndarray:
    total = len(canary) * len(baseline)
    if total <= MAX_PAIRS:
        return (canary[:, None] - baseline[None, :]).ravel()
    rng = np.random.default_rng(0)  # fixed: the same data always gets the same estimate
    return canary[rng.integers(0, len(canary), MAX_PAIRS)] - baseline[rng.integers(0, len(baseline), MAX_PAIRS)]


def _order_statistics(differences: np.ndarray, total: int, ranks: list[int]) -> list[float]:
    """The ranks-th smallest (1-based, of ``total``) differences, mapped onto a sample if thinned."""
    size = len(differences)
    indices = [round((rank - 1) * (size - 1) / max(total - 1, 1)) for rank in ranks]
    differences.partition(sorted(set(indices)))  # in place: the array is ours and can be large
    return [float(differences[i]) for i in indices]


def moses_rank(m: int, n: int, gamma: float, *, exact: bool | None = None) -> int:
    """Largest C with P(U <= C - 1) <= gamma / 2: the interval is [D_(C), D_(mn + 1 - C)].

    Exact (ignoring ties, which makes it slightly conservative) when m + n <= 60
    or ``exact`` says so, else the normal approximation with continuity correction.
    Below 1, no finite interval reaches the confidence 1 - gamma.
    """
    if exact if exact is not None else m + n <= EXACT_MAX_TOTAL:
        cdf = np.cumsum(u_null_counts(m, n)) / math.comb(m + n, m)
        return int(np.searchsorted(cdf, gamma / 2.0, side="right"))
    sigma = math.sqrt(m * n * (m + n + 1) / 12.0)
    z = stats.norm.isf(gamma / 2.0)
    return int(math.floor(m * n / 2.0 + 0.5 - z * sigma))


@lru_cache(maxsize=256)
def u_null_counts(m: int, n: int) -> np.ndarray:
    """How many of the C(m+n, m) orderings give U = 0, 1, ..., mn (no ties).

    The generating function is the Gaussian binomial [m+n choose m]_q =
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i); every partial product is itself a
    Gaussian binomial, so the integers stay non-negative and exact.
    """
    counts = np.zeros(m * n + 1, dtype=np.int64)
    counts[0] = 1
    for i in range(1, m + 1):
        step = n + i
        counts[step:] -= counts[:-step].copy()  # times (1 - q^(n+i))
        for k in range(i, len(counts)):  # divided by (1 - q^i): a running sum with stride i
            counts[k] += counts[k - i]
    counts.flags.writeable = False
    return counts
