"""Mann-Whitney with ties, Hodges-Lehmann and its Moses interval, against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from deployflow.judge import classify, hodges_lehmann, mann_whitney
from deployflow.judge import shift as shift_module
from deployflow.judge.shift import moses_rank, u_null_counts


def tie_corrected_p(baseline: np.ndarray, canary: np.ndarray) -> tuple[float, float, float]:
    """U of the canary, and the one-sided "canary greater" p-value with and without tie correction."""
    m, n = len(canary), len(baseline)
    u = float(sum((c > b) + 0.5 * (c == b) for c in canary for b in baseline))
    pooled = np.concatenate([baseline, canary])
    _, ties = np.unique(pooled, return_counts=True)
    total = m + n
    plain = m * n * (total + 1) / 12.0
    corrected = m * n / 12.0 * ((total + 1) - (ties**3 - ties).sum() / (total * (total - 1)))
    z = lambda variance: (u - m * n / 2.0 - 0.5) / math.sqrt(variance)  # noqa: E731 - with continuity correction
    return u, float(stats.norm.sf(z(corrected))), float(stats.norm.sf(z(plain)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mann_whitney_corrects_for_heavy_ties(seed):
    rng = np.random.default_rng(seed)
    baseline, canary = rng.integers(0, 4, 60).astype(float), rng.integers(1, 5, 70).astype(float)
    u, p_corrected, p_plain = tie_corrected_p(baseline, canary)
    result = mann_whitney(baseline, canary, "greater")
    assert result.u == u
    assert result.p_value == pytest.approx(p_corrected, rel=1e-9)
    assert abs(result.p_value - p_plain) > 0.1 * p_corrected  # the correction matters on this data
    reference = stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic")
    assert (result.u, result.p_value) == pytest.approx((reference.statistic, reference.pvalue))
    assert classify(baseline, canary, tolerance=0.0).p_value == pytest.approx(p_corrected, rel=1e-9)


def test_mann_whitney_all_tied_is_no_evidence():
    assert mann_whitney(np.ones(20), np.ones(30), "greater").p_value == 1.0


def test_mann_whitney_refuses_an_unknown_alternative():
    with pytest.raises(ValueError, match="'greater', 'less', 'two-sided'"):
        mann_whitney(np.ones(3), np.ones(3), "bigger")


@pytest.mark.parametrize(("m", "n"), [(1, 1), (3, 4), (5, 7), (6, 6)])
def test_u_null_counts_match_enumeration(m, n):
    counts = np.zeros(m * n + 1, dtype=int)
    for canary_positions in itertools.combinations(range(m + n), m):
        # U = pairs where the canary is larger = baseline values below each canary value.
        u = sum(position - rank for rank, position in enumerate(canary_positions))
        counts[u] += 1
    assert u_null_counts(m, n).tolist() == counts.tolist()


@pytest.mark.parametrize(("m", "n", "gamma"), [(20, 25, 0.05), (30, 30, 0.01), (25, 35, 0.005)])
def test_the_normal_critical_rank_is_close_to_the_exact_and_not_bolder(m, n, gamma):
    # U's tails are lighter than the normal's: far out, the approximation is a little conservative.
    assert 0 <= moses_rank(m, n, gamma, exact=True) - moses_rank(m, n, gamma, exact=False) <= 3


def test_hodges_lehmann_of_a_pure_shift_is_the_shift():
    baseline = np.arange(1.0, 21.0)
    result = hodges_lehmann(baseline, baseline + 3, confidence=0.95)
    assert result.estimate == 3.0
    # Differences are 3 + (j - i); the exact 95 % critical U for 20 and 20 is 127, so C = 128.
    assert moses_rank(20, 20, 0.05) == 128
    assert (result.ci_low, result.ci_high) == (-1.0, 7.0)


def test_the_interval_narrows_with_more_data():
    baseline = np.random.default_rng(4).normal(10, 1, 800)
    result = hodges_lehmann(baseline, baseline + 3, confidence=0.99)
    assert result.estimate == pytest.approx(3.0)
    assert result.ci_low < 3.0 < result.ci_high
    assert result.ci_high - result.ci_low < 0.4


def brute_force(baseline: np.ndarray, canary: np.ndarray, confidence: float) -> tuple[float, float, float]:
    differences = np.sort([c - b for c in canary for b in baseline])
    mn = len(differences)
    cdf = np.cumsum(u_null_counts(len(canary), len(baseline))) / math.comb(len(canary) + len(baseline), len(canary))
    c = int(np.searchsorted(cdf, (1 - confidence) / 2, side="right"))  # largest C with P(U <= C-1) <= gamma/2
    return float(np.median(differences)), float(differences[c - 1]), float(differences[mn - c])


@pytest.mark.parametrize(
    ("seed", "m", "n", "confidence"),
    [(1, 12, 15, 0.95), (2, 9, 9, 0.9), (3, 20, 31, 0.99), (4, 25, 24, 0.995), (5, 7, 10, 0.8)],
)
def test_hodges_lehmann_and_interval_match_brute_force(seed, m, n, confidence):
    rng = np.random.default_rng(seed)
    baseline, canary = rng.lognormal(0, 0.6, n), rng.lognormal(0.2, 0.6, m)
    result = hodges_lehmann(baseline, canary, confidence)
    assert (result.estimate, result.ci_low, result.ci_high) == brute_force(baseline, canary, confidence)


def test_hodges_lehmann_with_ties_and_an_even_number_of_pairs():
    baseline, canary = np.array([1.0, 2, 2, 3]), np.array([2.0, 2, 4, 5, 5, 6])
    differences = [c - b for c in canary for b in baseline]
    assert hodges_lehmann(baseline, canary).estimate == np.median(differences)


def test_too_few_values_give_no_finite_interval():
    result = hodges_lehmann(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), confidence=0.99)
    assert (result.estimate, result.ci_low, result.ci_high) == (3.0, -math.inf, math.inf)


def test_huge_samples_use_a_fixed_sample_of_pairs(monkeypatch):
    monkeypatch.setattr(shift_module, "MAX_PAIRS", 20_000)
    rng = np.random.default_rng(6)
    baseline, canary = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    thinned = hodges_lehmann(baseline, canary, 0.99)
    assert thinned == hodges_lehmann(baseline, canary, 0.99)  # the same data, the same answer
    exact_median = float(np.median(canary[:, None] - baseline[None, :]))
    assert thinned.estimate == pytest.approx(exact_median, abs=0.03)
    assert thinned.ci_low < exact_median < thinned.ci_high
