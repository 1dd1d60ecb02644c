"""classify() on what the pipeline feeds it: latencies read back from Prometheus histogram buckets.

Each request counted into the sample app's buckets (Prometheus' default
``http_request_duration_seconds`` bounds), the cumulative counts turned back into
one value per request by ``analysis.bucket_samples``: values tie everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from deployflow.analysis.comparison import bucket_samples
from deployflow.judge import BucketedValues, classify, histogram_quantile, hodges_lehmann
from deployflow.judge.buckets import common_bounds, lower_bound, upper_bound
from deployflow.judge.spread import TAIL_MIN_COUNT, tail_check
from deployflow.metrics.base import Series

# include/sample_app/app.py's BUCKETS: the Prometheus client's defaults, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LE = [repr(b) for b in BUCKETS] + ["+Inf"]


def from_counts(per_bucket: list[int]) -> BucketedValues:
    """Requests per bucket (not cumulative; the last is +Inf) as Prometheus returns them, read back by the pipeline."""
    cumulative = np.cumsum(per_bucket + [0] * (len(LE) - len(per_bucket)))
    return bucket_samples([Series({"le": le}, [(0.0, float(count))]) for le, count in zip(LE, cumulative)])


def from_latencies(latencies: np.ndarray) -> BucketedValues:
    """Latencies in seconds counted as the sample app counts them (the first bucket with le >= the value)."""
    return from_counts(np.bincount(np.searchsorted(BUCKETS, latencies, side="left"), minlength=len(LE)).tolist())


def service(seed: int, n: int, median: float, *, factor: float = 1.0, slow_share: float = 0.0,
            slow_s: float = 0.0) -> BucketedValues:
    """``n`` requests of a service with median ``median`` s (lognormal, sigma 0.5), read back from the histogram."""
    rng = np.random.default_rng(seed)
    latencies = median * factor * np.exp(0.5 * rng.standard_normal(n)) + (rng.random(n) < slow_share) * slow_s
    return from_latencies(latencies)


# --- what the pipeline's latencies look like -----------------------------------------------------

def test_bucket_samples_carry_their_bounds_and_stay_a_list_of_values():
    values = from_counts([3, 2, 0, 1])
    assert values == pytest.approx([0.0025] * 3 + [0.0075] * 2 + [0.0375])
    assert values.bounds == (*BUCKETS, math.inf)
    assert common_bounds(values, from_counts([1])) == BUCKETS
    assert common_bounds(values, list(values)) is None  # a plain list: judged on its ties alone
    assert common_bounds(values, BucketedValues(values, (0.01, 0.1, math.inf))) is None  # other buckets


@pytest.mark.parametrize(
    ("per_bucket", "q", "expected"),
    [
        ([10], 0.5, 0.0025),  # rank 5 of 10 in (0, 0.005]
        ([5, 5], 0.75, 0.0075),  # rank 7.5: half way through (0.005, 0.01]
        ([0, 0, 0, 0, 0, 4], 0.25, 0.1375),  # rank 1 of 4 in (0.1, 0.25]
        ([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0.99, 5.0),  # rank 9.9 in +Inf: the largest finite bound
    ],
)
def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does(per_bucket, q, expected):
    values = from_counts(per_bucket)
    assert histogram_quantile(np.asarray(values), q, BUCKETS) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "lower", "upper"), [(0.0025, 0.0, 0.005), (0.175, 0.1, 0.25), (5.0, 5.0, math.inf)])
def test_a_midpoint_knows_its_bucket(value, lower, upper):
    assert (lower_bound(value, BUCKETS), upper_bound(value, BUCKETS)) == (lower, upper)


# --- the verdicts ---------------------------------------------------------------------------------

FAST, SLOWER, COARSE = 0.004, 0.04, 0.15  # a few ms; tens of ms; a median inside the wide (0.1, 0.25] bucket


@pytest.mark.parametrize(
    ("baseline", "canary", "label", "flagged", "words"),
    [
        # (a) A/A: no change passes, for a fast service and a slower one.
        (service(1, 1500, FAST), service(2, 1500, FAST), "pass", (), "no regression"),
        (service(3, 1500, SLOWER), service(4, 1500, SLOWER), "pass", (), "no regression"),
        (service(5, 2000, SLOWER), service(6, 2000, SLOWER), "pass", (), "in the buckets above le="),
        # (b) a few percent of requests much slower, the median unchanged: the tail.
        (service(7, 1000, FAST), service(8, 1000, FAST, slow_share=0.03, slow_s=0.2), "high", ("tail",),
         "the upper tail is heavier"),
        (service(9, 2000, SLOWER), service(10, 2000, SLOWER, slow_share=0.03, slow_s=0.2), "high", ("tail",),
         "of the baseline's in the buckets above le="),
        (service(11, 1000, SLOWER), service(12, 1000, SLOWER, slow_share=0.05, slow_s=0.2), "high", ("tail",),
         "the median held (p50"),
        # (c) a median shift on coarse buckets: sized within buckets, where Hodges-Lehmann on midpoints says 0.
        (service(13, 1000, COARSE), service(14, 1000, COARSE, factor=1.3), "high", ("shift",),
         "the canary's median moved: p50 "),
        (service(15, 1000, FAST), service(16, 1000, FAST, factor=1.5), "high", ("shift",), "within buckets"),
        (service(17, 1000, COARSE), service(18, 1000, COARSE, factor=0.7), "pass", (), "no regression"),  # faster
    ],
)
def test_bucketed_latencies(baseline, canary, label, flagged, words):
    result = classify(baseline, canary, metric="latency")
    assert result.label == label, result.reason
    assert result.flagged[:len(flagged)] == flagged, result.reason
    assert words in result.reason


def test_a_coarse_median_shift_is_sized_within_buckets_where_midpoints_say_nothing():
    baseline, canary = service(13, 1000, COARSE), service(14, 1000, COARSE, factor=1.3)
    b, c = np.asarray(baseline), np.asarray(canary)
    assert hodges_lehmann(b, c).estimate == 0.0  # most pairs share the (0.1, 0.25] bucket
    result = classify(baseline, canary)
    medians = histogram_quantile(b, 0.5, BUCKETS), histogram_quantile(c, 0.5, BUCKETS)
    assert result.estimate == pytest.approx(medians[1] - medians[0])
    assert result.ratio == pytest.approx(medians[1] / medians[0]) and result.ratio > 1.1
    assert math.isnan(result.ci_low) and math.isnan(result.ci_high)  # a Moses interval on midpoints would be [0, 0]
    assert result.flagged[0] == "shift" and "as histogram_quantile does" in result.reason


def test_a_slow_path_fails_on_the_tail_with_its_boundary_and_counts():
    baseline = from_counts([850, 140, 10])  # a 2-3 ms service
    canary = from_counts([820, 135, 10, 0, 0, 35])  # 3.5 % of its requests now take 0.1-0.25 s
    result = classify(baseline, canary, metric="latency")
    assert (result.label, result.flagged) == ("high", ("tail",)), result.reason
    assert result.ratio == pytest.approx(1.0, abs=0.05)  # the median held
    assert ("3.5 % of the canary's values vs 0 % of the baseline's in the buckets above le=0.1 (35 vs 0)"
            in result.reason)
    assert "canary p99 0.207 vs baseline 0.01 (within buckets)" in result.reason  # rank 990: 25 of 35 in (0.1, 0.25]
    table = [[35, 1000 - 35], [0, 1000]]
    assert result.tail_p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert "Fisher p = 2.2e-11 < 0.00125" in result.reason


def test_strictly_beyond_the_pooled_p99_was_nothing_on_that_data():
    # What the judge did before: the pooled p99 is the slow bucket's midpoint, and nothing lies beyond it.
    baseline, canary = np.asarray(from_counts([850, 140, 10])), np.asarray(from_counts([820, 135, 10, 0, 0, 35]))
    pooled = np.concatenate([baseline, canary])
    threshold = np.quantile(pooled, 0.99)
    assert threshold == 0.175 and (pooled > threshold).sum() < TAIL_MIN_COUNT
    tail = tail_check(baseline, canary, 0.99)
    assert (tail.tied, tail.threshold) == (True, 0.175)  # at or above it
    assert (tail.canary_beyond, tail.baseline_beyond) == (35, 0)


@pytest.mark.parametrize("side", ["up", "down"])
def test_the_tied_tail_is_fishers_exact_test_at_or_beyond_the_pooled_quantile(side):
    rng = np.random.default_rng(41)
    baseline, canary = rng.integers(0, 8, 400).astype(float), rng.integers(0, 8, 300).astype(float)
    canary[:30] = 7.0 if side == "up" else 0.0
    tail = tail_check(baseline, canary, 0.99, side)
    assert tail.tied
    at = (lambda x: x >= tail.threshold) if side == "up" else (lambda x: x <= tail.threshold)
    assert (tail.baseline_beyond, tail.canary_beyond) == (at(baseline).sum(), at(canary).sum())
    table = [[tail.canary_beyond, 300 - tail.canary_beyond], [tail.baseline_beyond, 400 - tail.baseline_beyond]]
    assert tail.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert tail.change == pytest.approx(tail.canary_beyond / 300 / (tail.baseline_beyond / 400) - 1)


def test_the_tied_tail_keeps_its_false_positive_rate_on_a_and_a():
    # Fisher's test is exact under "no difference" whatever the ties: at 5 % it fails about 5 % or fewer.
    p_values = [tail_check(np.asarray(service(seed, 500, FAST)), np.asarray(service(seed + 1000, 500, FAST)),
                           0.99).p_value for seed in range(400)]
    assert np.mean(np.asarray(p_values) < 0.05) <= 0.07


def test_tied_values_without_bounds_are_tested_the_same_and_named_by_value():
    baseline = list(from_counts([850, 140, 10]))
    canary = list(from_counts([820, 135, 10, 0, 0, 35]))
    result = classify(baseline, canary)
    assert (result.label, result.flagged) == ("high", ("tail",)), result.reason
    assert "at or above 0.175 (tied values)" in result.reason


def test_timeouts_in_the_inf_bucket_are_a_tail():
    baseline, canary = from_counts([900, 100]), from_counts([880, 100, 0, 0, 0, 0, 0, 0, 0, 0, 20])  # 2 % over 5 s
    result = classify(baseline, canary)
    assert result.label == "high" and "tail" in result.flagged, result.reason
    assert "in the buckets above le=5" in result.reason
