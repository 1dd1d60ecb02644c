"""score(): group scores, weights, thresholds, critical metrics and no-data policies."""

from __future__ import annotations

import math

import pytest

from deployflow.errors import ConfigError
from deployflow.judge import Classification, Group, classify, classify_counts, score
from tests.unit.test_judge_buckets import from_counts


def verdict_of(metric: str, label: str, critical: bool = False) -> Classification:
    return Classification(label, f"{metric} was {label} (ratio 1.42)", metric=metric, critical=critical)


def passing(*metrics: str) -> list[Classification]:
    return [verdict_of(m, "pass") for m in metrics]


GROUPS = {"latency": {"metrics": ["p50", "p99"], "weight": 60}, "errors": {"metrics": ["5xx"], "weight": 40}}


def test_everything_passing_scores_100():
    verdict = score(passing("p50", "p99", "5xx"), GROUPS)
    assert (verdict.score, verdict.result, verdict.passed) == (100.0, "pass", True)
    assert verdict.group_scores == {"latency": 100.0, "errors": 100.0}
    assert verdict.reasons[0] == "pass: score 100.0 (pass at 95, marginal at 75)"


@pytest.mark.parametrize(
    ("weights", "total", "result"),
    [
        ((60, 40), 70.0, "fail"),  # latency 50, errors 100: (50*60 + 100*40) / 100
        ((20, 80), 90.0, "marginal"),
        ((1, 99), 99.5, "pass"),
    ],
)
def test_total_is_the_weighted_mean_of_group_scores(weights, total, result):
    groups = {"latency": {"metrics": ["p50", "p99"], "weight": weights[0]},
              "errors": {"metrics": ["5xx"], "weight": weights[1]}}
    verdict = score([verdict_of("p50", "pass"), verdict_of("p99", "high"), verdict_of("5xx", "pass")], groups)
    assert verdict.group_scores == {"latency": 50.0, "errors": 100.0}
    assert (verdict.score, verdict.result) == (pytest.approx(total), result)
    assert f"score {total:.1f}" in verdict.reasons[0]
    assert "p99: high: p99 was high (ratio 1.42)" in verdict.reasons
    assert verdict.reasons[-1] == f"groups: latency 50.0 (weight {weights[0]}), errors 100.0 (weight {weights[1]})"


@pytest.mark.parametrize(
    ("options", "result"),
    [({}, "marginal"), ({"pass_threshold": 80}, "pass"), ({"marginal_threshold": 85, "pass_threshold": 90}, "fail")],
)
def test_thresholds_are_options(options, result):
    metrics = passing("a", "b", "c", "d") + [verdict_of("e", "high")]  # 80
    assert score(metrics, **options).result == result


def test_without_groups_every_metric_counts_the_same():
    verdict = score(passing("a", "b", "c") + [verdict_of("d", "low")])
    assert (verdict.score, verdict.group_scores) == (75.0, {"all": 75.0})


def test_a_dict_names_the_metrics():
    verdict = score({"p50": Classification("pass", "fine"), "5xx": Classification("high", "bad")})
    assert [c.metric for c in verdict.classifications] == ["p50", "5xx"]
    assert verdict.score == 50.0


@pytest.mark.parametrize("how", ["option", "field"])
def test_a_failing_critical_metric_fails_whatever_the_score(how):
    metrics = passing(*(f"m{i}" for i in range(19)))
    metrics.append(verdict_of("5xx", "high", critical=how == "field"))
    verdict = score(metrics, critical=["5xx"] if how == "option" else ())
    assert verdict.score == 95.0  # would pass on its own
    assert (verdict.result, verdict.critical_failures) == ("fail", ("5xx",))
    assert verdict.reasons[0].startswith("fail: critical metric 5xx failed, whatever the score 95.0")


def test_a_passing_critical_metric_changes_nothing():
    verdict = score(passing("5xx", "p50"), critical="5xx")
    assert (verdict.result, verdict.critical_failures) == ("pass", ())


# --- no data is never a silent pass ------------------------------------------------------------

NO_DATA = Classification("nodata", "no traffic: baseline had 1000 requests, canary 0", metric="5xx")


@pytest.mark.parametrize(
    ("options", "total", "result", "inconclusive", "words"),
    [
        ({}, 2 / 3 * 100, "fail", False, "5xx: no data, counted as failing (no-data policy 'fail')"),
        ({"nodata_policy": "pass"}, 100.0, "pass", False, "5xx: no data, counted as passing (no-data policy 'pass')"),
        ({"nodata_policy": "extend"}, 100.0, "marginal", True, "extend the analysis window and judge again"),
        ({"nodata_policies": {"5xx": "extend"}}, 100.0, "marginal", True, "5xx: no data, left out of the score"),
        ({"nodata_policy": "pass", "nodata_policies": {"5xx": "fail"}}, 2 / 3 * 100, "fail", False,
         "counted as failing"),
    ],
)
def test_no_data_policies(options, total, result, inconclusive, words):
    verdict = score(passing("p50", "p99") + [NO_DATA], **options)
    assert verdict.score == pytest.approx(total)
    assert (verdict.result, verdict.inconclusive) == (result, inconclusive)
    assert any(words in reason for reason in verdict.reasons), verdict.reasons
    assert any("canary 0" in reason for reason in verdict.reasons)  # the metric's own reason is kept


def test_extend_does_not_hide_a_real_failure():
    verdict = score([verdict_of("p50", "high"), verdict_of("p99", "pass"), NO_DATA], nodata_policy="extend")
    assert (verdict.score, verdict.result, verdict.inconclusive) == (50.0, "fail", False)


# --- an interval with nothing to judge has no score, whatever the policy -------------------------
# What the pipeline feeds the judge: request counts, and latencies read back from the histogram's buckets (an
# idle version's buckets are there, each with an increase of 0). The groups and critical metric are the catalog's.

BUSY = (from_counts([300, 80, 15, 5]), 400)  # 400 requests, tied in four buckets
IDLE = (from_counts([0]), 0)  # every bucket's increase 0: no request
FEW = (from_counts([3, 2]), 5)  # below min_samples and min_total (10)
CATALOG = {"groups": {"errors": ["error_rate"], "latency": ["latency"]}, "critical": ["error_rate"]}


def interval(baseline: tuple, canary: tuple) -> list[Classification]:
    (base_latency, base_requests), (new_latency, new_requests) = baseline, canary
    return [classify_counts(0, base_requests, 0, new_requests, metric="error_rate"),
            classify(base_latency, new_latency, metric="latency")]


@pytest.mark.parametrize("policy", ["fail", "pass", "extend"])
@pytest.mark.parametrize(
    ("baseline", "canary", "why"),
    [
        (BUSY, IDLE, "no request reached v2 in the window judged"),
        (IDLE, IDLE, "no request reached v2 in the window judged"),
        (IDLE, BUSY, "v1 had no request to compare v2 with"),
        (FEW, FEW, "no metric had data to judge"),  # the metrics' reasons: too few values, too little traffic
    ],
)
def test_an_interval_with_nothing_to_judge_is_nodata_never_a_score(policy, baseline, canary, why):
    verdict = score(interval(baseline, canary), CATALOG["groups"], critical=CATALOG["critical"],
                    nodata_policy=policy, sides=("v1", "v2"))
    assert math.isnan(verdict.score) and verdict.group_scores == {}
    assert (verdict.result, verdict.passed) == ("nodata", False)
    assert verdict.reasons[0] == f"nodata ({why})"
    assert [r.split(":")[0] for r in verdict.reasons[1:]] == ["error_rate", "latency"]  # each metric's own reason
    assert all(": no data: " in r for r in verdict.reasons[1:])


def test_one_metric_with_data_is_scored_and_the_policy_weighs_the_other():
    quiet_latency = classify(BUSY[0], IDLE[0], metric="latency")
    judged = classify_counts(2, 400, 1, 400, metric="error_rate")
    verdict = score([judged, quiet_latency], CATALOG["groups"], nodata_policy="fail")
    assert (verdict.score, verdict.result) == (50.0, "fail")


def test_a_critical_metric_without_data_fails_under_the_default_policy():
    verdict = score(passing(*(f"m{i}" for i in range(30))) + [NO_DATA], critical=["5xx"])
    assert (verdict.result, verdict.critical_failures) == ("fail", ("5xx",))


def test_a_critical_metric_nobody_measured_fails():
    verdict = score(passing("p50", "p99"), critical=["5xx"])
    assert (verdict.result, verdict.critical_failures) == ("fail", ("5xx",))
    assert "5xx: no data, counted as failing (no-data policy 'fail'): no classification was given" in verdict.reasons


def test_a_grouped_metric_with_no_classification_is_nodata():
    verdict = score(passing("p50", "p99"), GROUPS)
    assert verdict.group_scores == {"latency": 100.0, "errors": 0.0}
    assert (verdict.score, verdict.result) == (60.0, "fail")
    assert "5xx: no data, counted as failing (no-data policy 'fail'): no classification was given" in verdict.reasons


# --- configuration errors name the field -------------------------------------------------------

@pytest.mark.parametrize(
    ("classifications", "groups", "options", "path", "words"),
    [
        (passing("p50", "cpu"), GROUPS, {}, "groups", "metric 'cpu' is in no group"),
        ([Classification("pass", "fine")], None, {}, "classifications[0].metric", "is empty"),
        (passing("a", "a"), None, {}, "classifications[1].metric", "given twice"),
        (passing("a"), {"g": {"metrics": ["a"], "weight": 0}}, {}, "groups.g.weight", "above 0"),
        (passing("a"), {"g": {"metrics": []}}, {}, "groups.g.metrics", "at least one"),
        (passing("a"), {"g": {"metric": ["a"]}}, {}, "groups.g.metric", "unknown field"),
        (passing("a"), None, {"nodata_policy": "ignore"}, "nodata_policy", "'fail', 'pass', 'extend'"),
        (passing("a"), None, {"nodata_policies": {"a": "skip"}}, "nodata_policies.a", "'skip' is not valid"),
        (passing("a"), None, {"pass_threshold": 70}, "pass_threshold", "marginal_threshold <= pass_threshold"),
        ([], None, {}, "classifications", "nothing to score"),
    ],
)
def test_configuration_errors(classifications, groups, options, path, words):
    with pytest.raises(ConfigError) as error:
        score(classifications, groups, **options)
    assert error.value.path == path
    assert words in error.value.message


def test_groups_may_be_group_objects_or_plain_lists():
    groups = {"latency": Group(("p50",), weight=3.0), "errors": ["5xx"]}
    verdict = score([verdict_of("p50", "high"), verdict_of("5xx", "pass")], groups)
    assert verdict.score == pytest.approx(25.0)  # (0 * 3 + 100 * 1) / 4
