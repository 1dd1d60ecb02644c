"""classify_counts(): error rates as proportions (the fix for Kayenta#426's sparse series)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from deployflow.errors import ConfigError
from deployflow.judge import classify, classify_counts, newcombe_interval, proportion_test


@pytest.mark.parametrize(
    ("counts", "options", "label", "test"),
    [
        ((0, 1000, 5, 1000), {"alpha": 0.05}, "high", "Fisher's exact test"),  # one-sided p = 0.031
        ((0, 1000, 5, 1000), {}, "pass", "Fisher's exact test"),  # at the default 0.005 it is not enough
        ((0, 1000, 10, 1000), {}, "high", "two-proportion z-test"),  # 5 expected per side: Cochran allows z
        ((1, 1000, 1, 1000), {"alpha": 0.05}, "pass", "Fisher's exact test"),
        ((1, 2000, 6, 2000), {"alpha": 0.05}, "pass", "Fisher's exact test"),  # 7 errors in all: p = 0.0625
        ((20, 2000, 40, 2000), {}, "high", "two-proportion z-test"),
        ((20, 2000, 20, 2000), {}, "pass", "two-proportion z-test"),
        ((40, 2000, 20, 2000), {}, "pass", "two-proportion z-test"),  # fewer errors is not a regression
    ],
)
def test_error_rates_are_judged_as_proportions(counts, options, label, test):
    result = classify_counts(*counts, **options)
    assert result.label == label, result.reason
    assert test in result.reason


def test_a_sparse_error_series_passes_but_its_totals_do_not():
    # Kayenta#426: per-interval errors are mostly zeros, so the rank test sees nothing.
    baseline_series, canary_series = np.zeros(60), np.zeros(60)
    canary_series[[5, 17, 29, 33, 41, 52, 58, 59]] = [2, 1, 1, 2, 1, 1, 2, 1]  # 11 errors vs none
    assert classify(baseline_series, canary_series).label == "pass"
    assert classify_counts(0, 6000, 11, 6000).label == "high"


@pytest.mark.parametrize(
    ("counts", "words"),
    [
        ((0, 0, 0, 0), "no traffic: baseline had 0 requests, canary 0"),
        ((10, 1000, 0, 0), "canary 0"),
        ((0, 1000, 0, 5), "canary 5, fewer than min_total 10"),
        ((None, 1000, 3, 1000), "a count is missing"),
        ((1, 1000, math.nan, 1000), "a count is missing"),
    ],
)
def test_no_traffic_is_nodata(counts, words):
    result = classify_counts(*counts)
    assert result.label == "nodata"
    assert words in result.reason


def test_the_reason_and_fields_carry_the_numbers():
    result = classify_counts(20, 2000, 40, 2000, metric="errors")
    assert (result.metric, result.n_baseline, result.n_canary) == ("errors", 2000, 2000)
    assert result.estimate == pytest.approx(0.01)
    assert result.ratio == pytest.approx(2.0)
    assert result.ci_low < 0.01 < result.ci_high
    assert result.flagged == ("rate",)
    for words in ("2 % (40 of 2000)", "1 % (20 of 2000)", "+1 points", "ratio 2", "p = 0.0046"):
        assert words in result.reason


def test_ratio_is_nan_when_the_baseline_had_no_errors():
    assert math.isnan(classify_counts(0, 1000, 10, 1000).ratio)


@pytest.mark.parametrize(
    ("counts", "options", "label", "words"),
    [
        # 1.00 % -> 1.01 % over 100 M requests each: z = 7, but a 1 % relative rise.
        ((1_000_000, 100_000_000, 1_010_000, 100_000_000), {}, "pass", "significant but small"),
        ((1_000_000, 100_000_000, 1_010_000, 100_000_000), {"tolerance": 0.0, "min_difference": 0.0}, "high",
         "the error rate rose"),
        # 0 -> 50 errors in 10 M: infinitely more, but 0.0005 points.
        ((0, 10_000_000, 50, 10_000_000), {}, "pass", "significant but small"),
        ((0, 10_000_000, 50, 10_000_000), {"min_difference": 0.0}, "high", "the error rate rose"),
    ],
)
def test_minimum_effect_size(counts, options, label, words):
    result = classify_counts(*counts, **options)
    assert result.p_value < 1e-6
    assert result.label == label
    assert words in result.reason


@pytest.mark.parametrize(
    ("direction", "counts", "label"),
    [
        ("increase", (20, 2000, 60, 2000), "high"),
        ("increase", (60, 2000, 20, 2000), "pass"),
        ("decrease", (60, 2000, 20, 2000), "low"),  # e.g. cache hits: fewer is worse
        ("decrease", (20, 2000, 60, 2000), "pass"),
        ("either", (20, 2000, 60, 2000), "high"),
        ("either", (60, 2000, 20, 2000), "low"),
        ("either", (20, 2000, 22, 2000), "pass"),
    ],
)
def test_directions(direction, counts, label):
    assert classify_counts(*counts, direction=direction).label == label


@pytest.mark.parametrize(("be", "bt", "ce", "ct"), [(0, 1000, 5, 1000), (2, 500, 6, 700), (2, 40, 1, 60)])
def test_fisher_p_values_match_scipy(be, bt, ce, ct):
    test = proportion_test(be, bt, ce, ct)
    assert test.name == "Fisher's exact test"
    table = [[ce, ct - ce], [be, bt - be]]
    assert test.p_up == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert test.p_down == pytest.approx(stats.fisher_exact(table, alternative="less").pvalue)


@pytest.mark.parametrize(("be", "bt", "ce", "ct"), [(20, 2000, 40, 2000), (300, 10_000, 260, 9_000)])
def test_z_test_p_values_match_the_uncorrected_chi_square(be, bt, ce, ct):
    test = proportion_test(be, bt, ce, ct)
    assert test.name == "two-proportion z-test"
    chi2 = stats.chi2_contingency([[ce, ct - ce], [be, bt - be]], correction=False)
    assert 2 * min(test.p_up, test.p_down) == pytest.approx(chi2.pvalue)


@pytest.mark.parametrize(
    ("baseline", "canary", "expected"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, method 10 (hybrid score), 95 %.
        ((48, 80), (56, 70), (0.0524, 0.3339)),
        ((3, 10), (9, 10), (0.1705, 0.8090)),
        ((0, 29), (5, 56), (-0.0381, 0.1926)),
        ((0, 20), (0, 10), (-0.1611, 0.2775)),
        ((0, 10), (0, 10), (-0.2775, 0.2775)),
        ((0, 20), (10, 10), (0.6791, 1.0)),
        ((0, 10), (10, 10), (0.6075, 1.0)),
    ],
)
def test_newcombe_interval_matches_the_published_table(baseline, canary, expected):
    low, high = newcombe_interval(*baseline, *canary, 0.95)
    assert (round(low, 4), round(high, 4)) == expected


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ((5, 4, 0, 10), "baseline: 5 errors out of 4 requests"),
        ((0, 10, -1, 10), "canary_errors must be a finite count"),
        ((0, math.inf, 0, 10), "baseline_total must be a finite count"),
    ],
)
def test_impossible_counts_are_errors(counts, message):
    with pytest.raises(ValueError, match=message):
        classify_counts(*counts)


def test_prometheus_fractional_counts_are_rounded():
    assert classify_counts(19.9999, 2000.0001, 40.0002, 1999.9998).n_canary == 2000


@pytest.mark.parametrize(
    ("options", "path"),
    [({"alpha": 0.6}, "alpha"), ({"tolerance": -1}, "tolerance"), ({"min_difference": 1.0}, "min_difference"),
     ({"min_total": 0}, "min_total"), ({"direction": "down"}, "direction")],
)
def test_bad_options_name_the_field(options, path):
    with pytest.raises(ConfigError) as error:
        classify_counts(1, 100, 2, 100, **options)
    assert error.value.path == path
