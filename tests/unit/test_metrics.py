from __future__ import annotations

import math

import pytest
import requests

from deployflow.analysis.comparison import bucket_samples, render, selector
from deployflow.metrics.base import MetricsError, Series
from deployflow.metrics.factory import provider_class
from deployflow.metrics.prometheus import PrometheusProvider, range_params


class FakeResponse:
    def __init__(self, body: object) -> None:
        self.body = body

    def json(self) -> object:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class FakeSession:
    """A fake requests.Session: one canned answer, every call recorded."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict]] = []

    def get(self, url: str, **kwargs: object) -> FakeResponse:
        self.calls.append((url, kwargs))
        if isinstance(self.answer, requests.RequestException):
            raise self.answer
        return FakeResponse(self.answer)


MATRIX = {
    "status": "success",
    "data": {"resultType": "matrix", "result": [
        {"metric": {"code": "200"}, "values": [[1700000000, "12"], [1700000001, "NaN"]]},
        {"metric": {"code": "500"}, "values": [[1700000000, "+Inf"]]},
    ]},
}


def test_range_query_is_sent_as_prometheus_expects():
    session = FakeSession(MATRIX)
    series = PrometheusProvider("http://127.0.0.1:9090/", session).query_range("up", 100.0, 160.5, 2)
    assert session.calls == [("http://127.0.0.1:9090/api/v1/query_range",
                              {"params": {"query": "up", "start": "100.000", "end": "160.500", "step": "2"}, "timeout": 10.0})]
    assert series[0].labels == {"code": "200"} and series[0].points[0] == (1700000000.0, 12.0)
    assert math.isnan(series[0].points[1][1]) and math.isnan(series[1].points[0][1])  # NaN kept, Inf made NaN


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, "refused 'sum(': bad_data: parse error"),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "returned 'vector', not a range"),
        (requests.ConnectionError("refused"), "did not answer 'sum('"),
        (ValueError("not JSON"), "did not answer 'sum('"),
    ],
)
def test_errors_name_the_query(answer, says):
    with pytest.raises(MetricsError) as caught:
        PrometheusProvider("http://p", FakeSession(answer)).query_range("sum(", 0, 1, 1)
    assert says in str(caught.value)


def test_online_and_factory():
    assert PrometheusProvider("http://p", FakeSession(requests.ConnectionError("x"))).is_online() is False
    assert provider_class("prometheus") is PrometheusProvider
    with pytest.raises(ValueError, match="valid values are 'prometheus'"):
        provider_class("datadog")


def test_selector_and_rendering_keep_promql_braces():
    sel = selector("shop", "prod", "canary")
    assert sel == 'service="shop",environment="prod",track="canary"'
    query = 'sum by (le) (increase(h_bucket{{selector},path!~"/x"}[{window}]))'
    assert render(query, selector=sel, window_s=29.6) == (
        'sum by (le) (increase(h_bucket{service="shop",environment="prod",track="canary",path!~"/x"}[30s]))')


def test_histogram_increase_becomes_one_value_per_request():
    series = [Series({"le": le}, [(0, n)]) for le, n in (("0.01", 2.2), ("0.005", 1.0), ("0.05", 2.0), ("+Inf", 3.0))]
    # cumulative 1 | 2.2 | 2 (extrapolation noise, never negative) | 3
    assert bucket_samples(series) == [0.0025, 0.0075, 0.05]
    assert bucket_samples([]) == []
    assert range_params("q", 1, 2, 0.5)["step"] == "0.5"


class FakeProvider:
    """A fake metrics provider: answers by track from canned series; records each query."""

    def __init__(self, by_track: dict[str, dict[str, list[Series]]]) -> None:
        self.by_track = by_track
        self.queries: list[str] = []

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.queries.append(query)
        track = query.split('track="')[1].split('"')[0]
        kind = "errors" if "by (code)" in query else "latency"
        return self.by_track.get(track, {}).get(kind, [])

    def is_online(self) -> bool:
        return True


def codes(ok: float, errors: float) -> list[Series]:
    return [Series({"code": "200"}, [(0, ok)]), Series({"code": "500"}, [(0, errors)])]


def buckets(fast: float, slow: float) -> list[Series]:
    return [Series({"le": "0.005"}, [(0, fast)]), Series({"le": "0.1"}, [(0, fast + slow)]), Series({"le": "+Inf"}, [(0, fast + slow)])]


def analysis(provider: FakeProvider, **config: object):
    from deployflow.analysis.comparison import CanaryAnalysis
    from deployflow.catalog import parse_service

    service = parse_service({"name": "shop", "source": {"repo": "/srv/shop"},
                             "environments": {"staging": {"port": 18998, "analysis": config}}})
    return CanaryAnalysis(provider, service="shop", environment="staging", config=service.environments["staging"].analysis)


@pytest.mark.parametrize(
    ("canary", "result", "label"),
    [
        ({"errors": codes(400, 2), "latency": buckets(400, 2)}, "pass", {"error_rate": "pass", "latency": "pass"}),
        ({"errors": codes(280, 120), "latency": buckets(400, 2)}, "fail", {"error_rate": "high", "latency": "pass"}),
        ({"errors": codes(400, 2), "latency": buckets(40, 360)}, "fail", {"error_rate": "pass", "latency": "high"}),
        ({}, "nodata", {"error_rate": "nodata", "latency": "nodata"}),
        ({"errors": codes(0, 0), "latency": buckets(0, 0)}, "nodata", {"error_rate": "nodata", "latency": "nodata"}),
    ],
)
def test_an_interval_is_judged_against_the_baseline_track(canary, result, label):
    provider = FakeProvider({"baseline": {"errors": codes(400, 2), "latency": buckets(400, 2)}, "canary": canary})
    report = analysis(provider).judge(1, 1000.0, 1030.0)
    assert report.result == result, report.table()
    assert {name: c.label for name, c in report.classifications.items()} == label
    assert all('track="baseline"' in q or 'track="canary"' in q for q in provider.queries)
    table = report.table()
    assert table.splitlines()[0].split() == ["metric", "label", "estimate", "interval", "ratio", "reason"]
    assert report.to_dict()["metrics"]["error_rate"]["label"] == label["error_rate"]


def test_without_a_baseline_the_stable_track_is_the_control():
    provider = FakeProvider({"stable": {"errors": codes(400, 2), "latency": buckets(400, 2)},
                             "canary": {"errors": codes(400, 2), "latency": buckets(400, 2)}})
    assert analysis(provider, baseline=False).judge(1, 0.0, 30.0).result == "pass"
    assert any('track="stable"' in q for q in provider.queries)


@pytest.mark.parametrize("policy", ["fail", "pass", "extend"])
def test_an_interval_with_no_request_on_the_canary_is_nodata_whatever_the_policy(policy):
    # Prometheus answers an idle canary's queries with its series, each bucket's and code's increase 0.
    provider = FakeProvider({"baseline": {"errors": codes(400, 2), "latency": buckets(400, 2)},
                             "canary": {"errors": codes(0, 0), "latency": buckets(0, 0)}})
    report = analysis(provider, no_data=policy).judge(1, 0.0, 30.0)
    assert report.result == "nodata"  # the analysis' progress applies the policy (test_analysis_progress.py)
    assert report.table().splitlines()[-1] == "score -: nodata (no request reached the canary track in the window judged)"
    assert (report.to_dict()["score"], report.to_dict()["result"]) == (None, "nodata")


class VersionsProvider:
    """A fake provider that answers by version, and records each query with its time range."""

    def __init__(self, by_version: dict[str, dict[str, list[Series]]]) -> None:
        self.by_version = by_version
        self.asked: list[tuple[str, float, float]] = []

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.asked.append((query, start, end))
        version = query.split('version="')[1].split('"')[0]
        return self.by_version.get(version, {}).get("errors" if "by (code)" in query else "latency", [])


def version_comparison(provider, **watch: object):
    from deployflow.analysis.comparison import VersionComparison
    from deployflow.catalog import parse_service

    env = parse_service({"name": "shop", "source": {"repo": "/srv/shop"},
                         "environments": {"prod": {"port": 18997, "post_promotion": watch}}}).environments["prod"]
    clock = iter([1000.0, 1033.0]).__next__  # the watch begins at 1000; the interval is judged at 1033
    return VersionComparison(provider, service="shop", environment="prod", config=env.analysis, watch=env.post_promotion,
                             old="v1", new="v2", clock=clock)


GOOD = {"errors": codes(4000, 4), "latency": buckets(4000, 4)}


@pytest.mark.parametrize(
    ("new", "failure"),
    [
        (GOOD, None),
        ({"errors": codes(280, 120), "latency": buckets(400, 2)}, "error_rate"),
        ({"errors": codes(400, 0), "latency": buckets(40, 360)}, "latency"),
        ({}, None),  # a quiet service: nodata, which the watch's policy decides (test_post_promotion.py)
    ],
)
def test_the_watch_judges_the_new_version_against_the_old_one_before_it(new, failure):
    provider = VersionsProvider({"v1": GOOD, "v2": new})
    judge = version_comparison(provider)
    judge.begin()
    judged = judge.judge(1)
    assert (judged.failure is None) == (failure is None), judged.table
    if failure:
        assert failure in judged.failure
    # The table as data too, for the release record (the Releases view's post-promotion rows).
    assert judged.verdict["interval"] == 1 and set(judged.verdict["metrics"]) == {"error_rate", "latency"}
    assert judged.verdict["result"] == ("fail" if failure else "nodata" if not new else "pass"), judged.verdict
    # The old version over the hour before the watch; the new one since, up to the scrape lag.
    old = [(q, s, e) for q, s, e in provider.asked if 'version="v1"' in q]
    since = [(q, s, e) for q, s, e in provider.asked if 'version="v2"' in q]
    assert old and all(e == 1000.0 and "[3600s]" in q for q, s, e in old), old
    assert since and all(e == 1030.0 and "[30s]" in q for q, s, e in since), since
    assert all('environment="prod"' in q and 'service="shop"' in q for q, _, _ in provider.asked)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (GOOD, {}, "no request reached v2 in the window judged"),
        (GOOD, {"errors": codes(0, 0), "latency": buckets(0, 0)}, "no request reached v2 in the window judged"),
        ({}, GOOD, "v1 had no request to compare v2 with"),  # a prod with no traffic before the switch
    ],
)
@pytest.mark.parametrize("policy", ["fail", "pass", "hold"])
def test_the_watch_reports_an_interval_with_nothing_to_compare_as_nodata(old, new, why, policy):
    judge = version_comparison(VersionsProvider({"v1": old, "v2": new}), no_data=policy)
    judge.begin()
    judged = judge.judge(1)
    assert (judged.failure, judged.nodata) == (None, f"nodata ({why})")  # the watch applies the policy
    assert judged.table.splitlines()[-1] == f"score -: nodata ({why})"


@pytest.mark.parametrize("before", ["flaky too", "no request"])
def test_the_watch_fails_errors_above_max_error_rate(before):
    # 2 % errors before and after: no regression, but above the 1 % the catalog allows at all; and with nothing
    # to compare with, the new version's own errors are still judged against it.
    flaky = {"errors": codes(980, 20), "latency": buckets(1000, 0)}
    old = flaky if before == "flaky too" else {}
    judge = version_comparison(VersionsProvider({"v1": old, "v2": flaky}), max_error_rate=0.01)
    judge.begin()
    assert judge.judge(1).failure == "20 of 1000 requests answered 5xx (2.0%), above max_error_rate 1.0%"
