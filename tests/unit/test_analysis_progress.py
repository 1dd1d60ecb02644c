"""The canary analysis's progress: when intervals are due, what each result decides, and its JSON form."""

from __future__ import annotations

import json

import pytest

from deployflow.analysis.progress import AnalysisProgress, Outcome

C, P, F = Outcome.CONTINUE, Outcome.PASS, Outcome.FAIL
REASONS = ("score 55/100 (pass >= 95, marginal >= 50)", "latency: canary slower")
WHY = "; ".join(REASONS)


def progress(intervals: int = 2, **kwargs: object) -> AnalysisProgress:
    return AnalysisProgress(**{"started": 1000.0, "interval_s": 5, "intervals": intervals, "scrape_lag_s": 3.0, **kwargs})


def run(state: AnalysisProgress, results: list[str]) -> tuple[list[Outcome], str, AnalysisProgress]:
    outcomes, reason = [], ""
    for result in results:
        decision, state = state.advance(result, REASONS)
        outcomes.append(decision.outcome)
        reason = decision.reason
    return outcomes, reason, state


@pytest.mark.parametrize(
    "intervals, results, outcomes, reason",
    [
        (2, ["pass", "pass"], [C, P], "canary analysis passed: 2 of 2 interval(s), 2 with data"),
        (1, ["pass"], [P], "canary analysis passed: 1 of 1 interval(s), 1 with data"),
        (3, ["pass", "pass", "pass"], [C, C, P], "canary analysis passed: 3 of 3 interval(s), 3 with data"),
        # a fail ends it at once, whatever came before
        (2, ["fail"], [F], f"canary analysis failed at interval 1: {WHY}"),
        (2, ["pass", "fail"], [C, F], f"canary analysis failed at interval 2: {WHY}"),
        (2, ["marginal", "marginal", "marginal", "fail"], [C, C, C, F], f"canary analysis failed at interval 4: {WHY}"),
        # marginal counts neither way
        (2, ["marginal", "pass", "marginal", "pass"], [C, C, C, P], "canary analysis passed: 2 of 4 interval(s), 4 with data"),
        (2, ["pass", "marginal"], [C, C], "interval 2: marginal; 1 passing of 2 so far, 2 needed within 4"),
        # twice the intervals judged without enough passes: inconclusive
        (2, ["marginal"] * 4, [C, C, C, F], f"canary analysis inconclusive: 0 passing of 4 intervals, 4 with data; {WHY}"),
        (2, ["pass", "marginal", "marginal", "marginal"], [C, C, C, F],
         f"canary analysis inconclusive: 1 passing of 4 intervals, 4 with data; {WHY}"),
        (1, ["marginal", "marginal"], [C, F], f"canary analysis inconclusive: 0 passing of 2 intervals, 2 with data; {WHY}"),
        # the last allowed interval may still pass it: passing is decided first
        (3, ["marginal"] * 3 + ["pass"] * 3, [C] * 5 + [P], "canary analysis passed: 3 of 6 interval(s), 6 with data"),
    ],
)
def test_results_decide_the_analysis(intervals, results, outcomes, reason):
    got, last_reason, state = run(progress(intervals), results)
    assert got == outcomes
    assert last_reason == reason
    assert (state.judged, state.passed) == (len(results), results.count("pass"))


def test_advancing_leaves_the_old_state_as_it_was():
    before = progress()
    _, after = before.advance("pass")
    assert (before.judged, before.passed) == (0, 0)
    assert (after.judged, after.passed) == (1, 1)


@pytest.mark.parametrize(
    "judged, now, due",
    [
        (0, 1007.999, False),  # started 1000 + 1 x 5 s + 3 s of scrape lag
        (0, 1008.0, True),
        (1, 1012.9, False),
        (1, 1013.0, True),
        (3, 1023.0, True),
        (3, 1022.0, False),
    ],
)
def test_an_interval_is_due_an_interval_and_the_scrape_lag_after_the_previous(judged, now, due):
    state = progress(judged=judged)
    assert state.next_due() == 1000 + (judged + 1) * 5 + 3
    assert state.due(now) is due
    assert state.number == judged + 1


@pytest.mark.parametrize("now, window", [(1008.0, (1000.0, 1005.0)), (1030.5, (1000.0, 1027.5))])
def test_every_window_starts_with_the_analysis_and_ends_a_scrape_lag_before_now(now, window):
    assert progress().window(now) == window


def test_the_state_survives_a_json_round_trip_and_goes_on_the_same():
    _, _, state = run(progress(intervals=3), ["pass", "marginal"])
    text = json.dumps(state.to_dict())
    restored = AnalysisProgress.from_dict(json.loads(text))
    assert restored == state
    assert json.loads(text) == {"started": 1000.0, "interval_s": 5, "intervals": 3, "scrape_lag_s": 3.0, "no_data": "fail",
                                "judged": 2, "passed": 1, "nodata": 0}
    assert run(restored, ["pass", "pass"])[:2] == run(state, ["pass", "pass"])[:2] == (
        [C, P], "canary analysis passed: 3 of 4 interval(s), 4 with data")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"started": 1.0, "interval_s": 5}, "intervals: missing"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2, "step": 1}, "step: not a field of the analysis progress; valid fields are started, "),
        ({"started": 1.0, "interval_s": 0, "intervals": 2}, "interval_s: 0 must be > 0"),
        ({"started": 1.0, "interval_s": 5, "intervals": 0}, "intervals: 0 must be >= 1"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2, "judged": 5}, "judged: 5 must be between 0 and 4"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2, "judged": 1, "passed": 2}, "passed: 2 must be between 0 and judged (1)"),
        ({"started": "now", "interval_s": 5, "intervals": 2}, "started: 'now' is not a finite number"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2.0}, "intervals: 2.0 is not a whole number"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2, "no_data": "hold"},
         "no_data: 'hold' is not valid; valid values are 'fail', 'pass', 'extend'"),
        ({"started": 1.0, "interval_s": 5, "intervals": 2, "judged": 1, "nodata": 2}, "nodata: 2 must be between 0 and judged (1)"),
    ],
)
def test_a_bad_state_is_refused_naming_the_field(data, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        AnalysisProgress.from_dict(data)


def test_an_unknown_result_is_refused_listing_the_valid_ones():
    with pytest.raises(ValueError, match="result: 'silent' is not valid; valid values are 'pass', 'marginal', 'fail', 'nodata'"):
        progress().advance("silent")


# --- a nodata interval (no metric had data) is what the analysis' no_data policy makes it ----------

@pytest.mark.parametrize(
    "policy, intervals, results, outcomes, reason",
    [
        ("fail", 2, ["nodata"], [F], f"canary analysis failed at interval 1: {WHY}; no-data policy 'fail'"),
        ("fail", 2, ["pass", "nodata"], [C, F], f"canary analysis failed at interval 2: {WHY}; no-data policy 'fail'"),
        # "pass" counts it as passing, and the verdict says how little was judged
        ("pass", 2, ["nodata", "nodata"], [C, P], "canary analysis passed: 2 of 2 interval(s), 0 with data"),
        ("pass", 2, ["nodata"], [C], "interval 1: nodata, counted as pass (no-data policy 'pass'); 1 passing of 1 so far, "
                                     "2 needed within 4"),
        # "extend" waits for data: neither way, up to twice the intervals
        ("extend", 2, ["nodata"], [C], "interval 1: nodata, counted as marginal (no-data policy 'extend'); 0 passing of 1 "
                                       "so far, 2 needed within 4"),
        ("extend", 2, ["nodata", "pass", "pass"], [C, C, P], "canary analysis passed: 2 of 3 interval(s), 2 with data"),
        ("extend", 2, ["nodata"] * 4, [C, C, C, F],
         f"canary analysis inconclusive: 0 passing of 4 intervals, 0 with data; {WHY}; no-data policy 'extend'"),
    ],
)
def test_the_no_data_policy_decides_a_nodata_interval(policy, intervals, results, outcomes, reason):
    got, last_reason, state = run(progress(intervals, no_data=policy), results)
    assert (got, last_reason) == (outcomes, reason)
    assert (state.judged, state.nodata) == (len(results), results.count("nodata"))
