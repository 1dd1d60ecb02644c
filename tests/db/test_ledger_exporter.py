"""The release exporter's two queries on both databases: the same samples from SQLite and PostgreSQL (the
unit tests pin the samples themselves on SQLite)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from deployflow.ledger import Ledger
from deployflow.ledger.exporter import LedgerCollector, reader_engine
from tests.unit.test_ledger_exporter import entry


@pytest.fixture(params=["sqlite", "postgres"])
def url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def test_both_databases_give_the_same_exact_samples(url):
    ledger = Ledger(url)
    for n, (outcome, environment, seconds, rollback, score) in enumerate([
        ("promoted", "prod", 25.0, None, 99.0), ("rolled_back", "prod", 200.0, 4.0, 80.0),
        ("rolled_back", "dev", 4000.0, 45.0, None), ("failed_before_deploy", "dev", 31.0, None, None),
        ("refused", "prod", None, None, None), ("promoted", "dev", 60.0, None, None), ("rejected", "prod", 90.0, 2.0, None),
    ]):
        ledger.record(entry(f"r{n}", outcome, environment=environment, seconds=seconds, rollback_seconds=rollback, score=score,
                            version=f"{n:012d}", finished=f"2026-12-01T1{n}:00:00+00:00"))
    registry = CollectorRegistry()
    registry.register(LedgerCollector(reader_engine(url)))
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in registry.collect() for s in f.samples}
    prod, dev = {"service": "shop", "environment": "prod"}, {"service": "shop", "environment": "dev"}
    strategy = {"strategy": "blue-green"}

    def key(name: str, **labels: str) -> tuple:
        return (name, tuple(sorted(labels.items())))

    assert found[key("deployflow_ledger_up")] == 1
    assert {k: v for k, v in found.items() if k[0] == "deployflow_releases_total"} == {
        key("deployflow_releases_total", **prod, **strategy, outcome="promoted"): 1,
        key("deployflow_releases_total", **prod, **strategy, outcome="rolled_back"): 1,
        key("deployflow_releases_total", **prod, **strategy, outcome="refused"): 1,
        key("deployflow_releases_total", **dev, **strategy, outcome="rolled_back"): 1,
        key("deployflow_releases_total", **dev, **strategy, outcome="failed_before_deploy"): 1,
        key("deployflow_releases_total", **prod, **strategy, outcome="rejected"): 1,
        key("deployflow_releases_total", **dev, **strategy, outcome="promoted"): 1,
    }
    assert found[key("deployflow_release_duration_seconds_bucket", **dev, **strategy, le="60.0")] == 2
    assert found[key("deployflow_release_duration_seconds_sum", **dev, **strategy)] == 4091.0
    assert found[key("deployflow_rollback_seconds_bucket", **prod, le="5.0")] == 1
    assert found[key("deployflow_rollback_seconds_count", **dev)] == 1
    assert {k: v for k, v in found.items() if k[0] == "deployflow_live_version_info"} == {
        key("deployflow_live_version_info", **prod, version="000000000000", config=""): 1,
        key("deployflow_live_version_info", **dev, version="000000000005", config=""): 1,
    }
    assert {k: v for k, v in found.items() if k[0] == "deployflow_last_analysis_score"} == {
        key("deployflow_last_analysis_score", **prod): 80.0}
