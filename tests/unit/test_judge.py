"""classify(): guards, labels per direction, NaN and outlier policies, tolerance, tail and spread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from deployflow.errors import ConfigError
from deployflow.judge import Classification, classify, score
from deployflow.judge.classification import num
from deployflow.judge.samples import outlier_mask
from deployflow.judge.spread import tail_check


def latency(seed: int, n: int = 500, median: float = 0.2, sigma: float = 0.5) -> np.ndarray:
    """Per-request latencies in seconds: lognormal, the usual shape."""
    return median * np.exp(sigma * np.random.default_rng(seed).standard_normal(n))


BASELINE = latency(1)
SAME = latency(2)


# --- guards --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("baseline", "canary", "words"),
    [
        (BASELINE, [], "baseline has 500 values, canary 0"),
        ([], SAME, "baseline has 0 values, canary 500"),
        (None, None, "baseline has 0 values, canary 0"),
        (BASELINE, [math.nan] * 50, "canary 0 (NaN values dropped: baseline 0, canary 50)"),
        (BASELINE, SAME[:9], "canary 9, fewer than min_samples 10"),
        (SAME[:3], BASELINE, "baseline has 3, canary 500, fewer than min_samples 10"),
    ],
)
@pytest.mark.parametrize("direction", ["increase", "decrease", "either"])
def test_no_data_or_too_few_values_is_nodata(baseline, canary, words, direction):
    result = classify(baseline, canary, direction=direction)
    assert result.label == "nodata"
    assert words in result.reason


def test_min_samples_is_an_option():
    assert classify(BASELINE, SAME[:9], min_samples=5).label == "pass"


@pytest.mark.parametrize(
    ("baseline", "canary"),
    [
        (BASELINE, BASELINE[::-1]),  # the same values in another order
        ([0.25] * 20, [0.25] * 35),  # one value everywhere: no variance to test
    ],
)
def test_identical_series_pass_without_statistics(baseline, canary):
    result = classify(baseline, canary)
    assert (result.label, result.estimate, result.p_value) == ("pass", 0.0, 1.0)
    assert "identical" in result.reason


# --- labels per direction ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("direction", "factor", "label"),
    [
        ("increase", 1.0, "pass"),
        ("increase", 1.5, "high"),
        ("increase", 0.6, "pass"),  # faster is not a regression
        ("decrease", 1.0, "pass"),
        ("decrease", 0.6, "low"),
        ("decrease", 1.5, "pass"),  # more throughput is not a regression
        ("either", 1.0, "pass"),
        ("either", 1.5, "high"),
        ("either", 0.6, "low"),
    ],
)
def test_label_follows_the_direction(direction, factor, label):
    result = classify(BASELINE, SAME * factor, direction=direction)
    assert result.label == label, result.reason
    assert result.direction == direction
    assert ("shift" in result.flagged) == (label != "pass")


def test_a_shift_carries_its_numbers():
    result = classify(BASELINE, SAME * 1.5, metric="latency_p50")
    assert result.metric == "latency_p50"
    assert result.ratio == pytest.approx(np.median(SAME * 1.5) / np.median(BASELINE))
    assert result.ci_low < result.estimate < result.ci_high
    assert result.ci_low > 0  # the one-sided bound agrees with the test
    assert result.confidence == pytest.approx(0.995)
    assert (result.n_baseline, result.n_canary) == (500, 500)
    for number in (num(result.estimate), num(result.ratio), num(result.ci_low), num(result.ci_high)):
        assert number in result.reason
    assert "Mann-Whitney p = " in result.reason and "tolerance" in result.reason


def test_the_pass_reason_carries_the_numbers_too():
    result = classify(BASELINE, SAME)
    assert result.label == "pass"
    assert num(result.estimate) in result.reason and num(result.ratio) in result.reason
    assert "p99" in result.reason and "Brown-Forsythe" in result.reason


# --- minimum effect size -------------------------------------------------------------------------

SMALL_SHIFT = (np.random.default_rng(14).normal(100, 10, 5000), np.random.default_rng(15).normal(102, 10, 5000))


@pytest.mark.parametrize(
    ("options", "label"),
    [
        ({}, "pass"),  # +2 % is significant at 5000 samples, but within the 10 % tolerance
        ({"tolerance": 0.01}, "high"),
        ({"tolerance": 0.0, "min_shift": 5.0}, "pass"),  # +2 ms is below the absolute floor
        ({"tolerance": 0.0, "min_shift": 1.0}, "high"),
    ],
)
def test_a_significant_but_tiny_shift_passes(options, label):
    result = classify(*SMALL_SHIFT, **options)
    assert result.p_value < 1e-10
    assert result.label == label, result.reason


# --- what a shift test misses: spread and tail (Kayenta#780) -------------------------------------

def test_same_median_three_times_the_spread_is_high():
    rng = np.random.default_rng(12)
    baseline, canary = rng.normal(100, 5, 400), rng.normal(100, 15, 400)
    result = classify(baseline, canary)
    assert result.label == "high"
    assert result.p_value > 0.05  # the median test alone would pass it
    assert "spread" in result.flagged
    assert "the median held" in result.reason and "the spread is wider" in result.reason
    assert "x2.98" in result.reason


def test_a_p99_only_regression_is_high():
    baseline = latency(11, 1000)
    canary = latency(12, 1000) + (np.random.default_rng(13).random(1000) < 0.04) * 1.0  # 4 % take 1 s longer
    result = classify(baseline, canary)
    assert result.label == "high"
    assert abs(result.ratio - 1) < 0.05
    assert result.flagged[0] == "tail"
    assert "the upper tail is heavier: canary p99 1.26 vs baseline 0.661" in result.reason


def test_a_heavier_lower_tail_is_low_when_lower_is_worse():
    rng = np.random.default_rng(13)
    baseline, canary = rng.normal(100, 5, 1000), rng.normal(100, 5, 1000)
    canary[:40] -= 50  # 4 % of intervals starved
    assert classify(baseline, canary, direction="increase").label == "pass"
    result = classify(baseline, canary, direction="decrease")
    assert result.label == "low"
    assert result.flagged[0] == "tail" and "lower tail is heavier" in result.reason


@pytest.mark.parametrize("side", ["up", "down"])
def test_tail_check_is_fishers_exact_test_on_the_pooled_quantile(side):
    rng = np.random.default_rng(31)
    baseline, canary = rng.normal(0, 1, 300), rng.normal(0, 1.6, 200)
    tail = tail_check(baseline, canary, 0.95, side)
    pooled = np.concatenate([baseline, canary])
    assert tail.threshold == pytest.approx(np.quantile(pooled, 0.95 if side == "up" else 0.05))
    beyond = (lambda x: x > tail.threshold) if side == "up" else (lambda x: x < tail.threshold)
    assert (tail.baseline_beyond, tail.canary_beyond) == (beyond(baseline).sum(), beyond(canary).sum())
    table = [[tail.canary_beyond, 200 - tail.canary_beyond], [tail.baseline_beyond, 300 - tail.baseline_beyond]]
    assert tail.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert tail.p_value < 1e-4 and tail.change > 0.3


def test_a_small_sample_widens_the_tail_so_the_test_can_reach_significance():
    tail = tail_check(np.arange(100.0), np.arange(100.0) + 0.5, 0.99)
    assert tail.quantile == pytest.approx(0.95)  # 10 of 200 pooled values, not 2
    assert tail.baseline_beyond + tail.canary_beyond == 10


def test_a_narrower_spread_passes():
    rng = np.random.default_rng(16)
    assert classify(rng.normal(100, 15, 400), rng.normal(100, 5, 400)).label == "pass"


# --- NaN, infinities, outliers -------------------------------------------------------------------

WITH_NANS = np.where(np.arange(500) % 50 == 0, math.nan, SAME)  # 10 NaNs


@pytest.mark.parametrize(
    ("canary", "label", "words"),
    [
        (WITH_NANS, "pass", "NaN values dropped: baseline 0, canary 10"),
        (WITH_NANS * 1.5, "high", "NaN values dropped: baseline 0, canary 10"),
    ],
)
def test_nan_policy_drop_judges_the_rest_and_says_so(canary, label, words):
    result = classify(BASELINE, canary)
    assert (result.label, result.n_canary) == (label, 490)
    assert words in result.reason


def test_nan_policy_fail_makes_nodata_which_the_score_fails_beside_metrics_with_data():
    result = classify(BASELINE, WITH_NANS, nan_policy="fail", metric="latency")
    assert result.label == "nodata"
    assert "nan_policy 'fail'" in result.reason and "canary 10 of 500" in result.reason
    assert score([result, classify(BASELINE, SAME, metric="p99")]).result == "fail"
    alone = score([result])  # nothing was judged: the caller's policy decides
    assert (alone.result, alone.reasons[0]) == ("nodata", "nodata (no metric had data to judge)")
    assert classify(BASELINE, SAME, nan_policy="fail").label == "pass"


def test_infinities_are_the_worst_values_not_missing_ones():
    timeouts = SAME.copy()
    timeouts[:100] = math.inf  # 20 % of requests timed out
    result = classify(BASELINE, timeouts)
    assert result.label == "high"
    assert math.isfinite(result.estimate) and math.isfinite(result.ci_high)
    assert "infinite values clipped: baseline 0, canary 100" in result.reason


def test_a_few_infinities_on_both_sides_keep_the_numbers_finite():
    baseline, canary = BASELINE.copy(), SAME.copy()
    baseline[0], canary[0] = math.inf, -math.inf
    result = classify(baseline, canary)
    assert result.label == "pass"
    assert all(math.isfinite(v) for v in (result.estimate, result.ci_low, result.ci_high, result.ratio))


STEADY = np.random.default_rng(21).normal(0.2, 0.02, 300)
GLITCHED = np.where(np.arange(300) % 20 == 0, 100.0, np.random.default_rng(22).normal(0.2, 0.02, 300))  # 15 of 100 s


@pytest.mark.parametrize(
    ("outliers", "label", "removed"),
    [
        ("none", "high", None),
        ("tukey", "pass", "outliers removed: baseline 0, canary 15"),
        ("mad", "pass", "outliers removed: baseline 0, canary 15"),
    ],
)
def test_outlier_removal_is_off_by_default(outliers, label, removed):
    result = classify(STEADY, GLITCHED, outliers=outliers)
    assert result.label == label, result.reason
    if removed:
        assert removed in result.reason and result.n_canary == 285


@pytest.mark.parametrize(
    ("method", "values", "outliers"),
    [
        ("tukey", [1, 2, 3, 4, 5, 6, 7, 8, 40], [40]),  # Q3 7, IQR 4: fence at 19
        ("tukey", [1, 2, 3, 4, 5, 6, 7, 8, 18], []),
        ("mad", [10, 11, 12, 13, 14, 40], [40]),
        ("mad", [5, 5, 5, 5, 9], []),  # MAD 0: nothing can be called an outlier
    ],
)
def test_outlier_mask(method, values, outliers):
    array = np.asarray(values, dtype=float)
    assert array[outlier_mask(array, method)].tolist() == outliers


# --- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"direction": "up"}, "direction"),
        ({"nan_policy": "ignore"}, "nan_policy"),
        ({"outliers": "iqr"}, "outliers"),
        ({"alpha": 0.0}, "alpha"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"min_samples": 1}, "min_samples"),
        ({"tail_quantile": 1.0}, "tail_quantile"),
    ],
)
def test_bad_options_name_the_field(options, path):
    with pytest.raises(ConfigError) as error:
        classify(BASELINE, SAME, **options)
    assert error.value.path == path


def test_an_unknown_option_is_an_error_not_ignored():
    with pytest.raises(TypeError, match="tolerence"):
        classify(BASELINE, SAME, tolerence=0.2)


def test_a_bad_label_is_refused():
    with pytest.raises(ConfigError, match="'pass', 'high', 'low', 'nodata'"):
        Classification("fine", "")
