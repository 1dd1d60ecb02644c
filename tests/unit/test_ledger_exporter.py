"""The release metrics exporter against a real SQLite ledger: exact samples, each outcome its label, a ledger
that cannot be read, the command's errors, and /metrics over HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from deployflow.ledger import Ledger, ReleaseEntry, default_url
from deployflow.ledger.exporter import OUTCOMES, LedgerCollector, main, parse_args, reader_engine, serve
from deployflow.ledger.schema import releases
from deployflow.outcomes import Outcome
from deployflow.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def entry(run_id: str, outcome: Outcome | str, *, environment: str = "prod", strategy: str = "blue-green", version: str = "aaaaaaaaaaaa",
          finished: str = "2026-12-01T10:00:00+00:00", seconds: float | None = 100.0, rollback_seconds: float | None = None,
          score: float | None = None, config: str | None = None, service: str = "shop") -> ReleaseEntry:
    return ReleaseEntry(service=service, environment=environment, strategy=strategy, version=version, commit=None, image=None,
                        previous=None, requested_by="alice", reason="", run_id=run_id, outcome=outcome, started_at=None,
                        finished_at=finished, seconds=seconds, rollback_seconds=rollback_seconds, config=config,
                        analysis_score=score)


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(LedgerCollector(reader_engine(url)))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def of(found: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in found.items() if n == name}


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return default_url(tmp_path)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_each_outcome_is_its_own_label(url, outcome):
    Ledger(url).record(entry("r1", outcome))
    [(labels_, count)] = of(samples(url), "deployflow_releases_total").items()
    assert (dict(labels_)["outcome"], count) == (outcome.value, 1) and outcome.value in OUTCOMES


def test_a_rejected_release_is_rejected_not_other(url):
    Ledger(url).record(entry("r1", Outcome.REJECTED))
    assert of(samples(url), "deployflow_releases_total") == {
        labels(service="shop", environment="prod", strategy="blue-green", outcome="rejected"): 1}


@pytest.mark.parametrize("stored", ["rolled back to 0123456789ab", "Promoted", "promoted twice", ""])
def test_a_value_this_version_does_not_know_is_other_never_a_new_label(url, stored):
    Ledger(url).record(entry("r1", Outcome.PROMOTED))
    with sa.create_engine(url).begin() as conn:  # a ledger not migrated yet, or written by a newer deployflow
        conn.execute(releases.update().values(outcome=stored))
    [(labels_, count)] = of(samples(url), "deployflow_releases_total").items()
    assert (dict(labels_)["outcome"], count) == ("other", 1)


def test_releases_are_counted_per_outcome_and_no_version_reaches_a_label(url):
    ledger = Ledger(url)
    for n, outcome in enumerate(["promoted", "promoted", "rolled_back", "rolled_back", "rolled_back", "failed",
                                 "failed_before_deploy", "refused", "rejected"]):
        ledger.record(entry(f"r{n}", outcome))
    ledger.record(entry("d1", "promoted", environment="dev", strategy="rolling"))
    found = samples(url)
    prod = {"service": "shop", "environment": "prod", "strategy": "blue-green"}
    assert of(found, "deployflow_releases_total") == {
        labels(**prod, outcome="promoted"): 2, labels(**prod, outcome="rolled_back"): 3, labels(**prod, outcome="failed"): 1,
        labels(**prod, outcome="failed_before_deploy"): 1, labels(**prod, outcome="refused"): 1,
        labels(**prod, outcome="rejected"): 1,
        labels(service="shop", environment="dev", strategy="rolling", outcome="promoted"): 1,
    }
    assert found[("deployflow_ledger_up", ())] == 1


def test_durations_and_rollbacks_are_histograms_with_exact_buckets_sum_and_count(url):
    ledger = Ledger(url)
    for n, (seconds, rollback) in enumerate([(25.0, None), (30.0, None), (200.0, 4.0), (4000.0, 45.0), (None, None)]):
        ledger.record(entry(f"r{n}", "rolled_back" if rollback else "promoted", seconds=seconds, rollback_seconds=rollback))
    # A release that failed before its deploy: its rollback task had nothing to do (0 s) and is no rollback.
    ledger.record(entry("f1", "failed_before_deploy", environment="dev", seconds=50.0, rollback_seconds=0.0))
    found = samples(url)
    release = {"service": "shop", "environment": "prod", "strategy": "blue-green"}
    # Cumulative: 25 and 30 are <= 30; 200 <= 300; 4000 only in +Inf. The release without seconds is left out.
    expected = {"30.0": 2, "60.0": 2, "120.0": 2, "300.0": 3, "600.0": 3, "900.0": 3, "1800.0": 3, "3600.0": 3, "+Inf": 4}
    dev = {"service": "shop", "environment": "dev", "strategy": "blue-green"}
    assert of(found, "deployflow_release_duration_seconds_bucket") == {
        **{labels(**release, le=le): n for le, n in expected.items()},
        **{labels(**dev, le=le): 0 if le == "30.0" else 1 for le in expected}}
    assert of(found, "deployflow_release_duration_seconds_count") == {labels(**release): 4, labels(**dev): 1}
    assert of(found, "deployflow_release_duration_seconds_sum") == {labels(**release): 4255.0, labels(**dev): 50.0}
    rollback = {"service": "shop", "environment": "prod"}
    expected = {"1.0": 0, "2.5": 0, "5.0": 1, "10.0": 1, "30.0": 1, "60.0": 2, "120.0": 2, "300.0": 2, "+Inf": 2}
    assert of(found, "deployflow_rollback_seconds_bucket") == {labels(**rollback, le=le): n for le, n in expected.items()}
    assert of(found, "deployflow_rollback_seconds_count") == {labels(**rollback): 2}  # none in dev
    assert of(found, "deployflow_rollback_seconds_sum") == {labels(**rollback): 49.0}


def test_the_live_version_is_the_last_promoted_release_of_each_environment_only(url):
    ledger = Ledger(url)
    ledger.record(entry("p1", "promoted", version="111111111111", config="c1", finished="2026-12-01T10:00:00+00:00"))
    ledger.record(entry("p2", "promoted", version="222222222222", config="c2", finished="2026-12-01T11:00:00+00:00"))
    ledger.record(entry("p3", "rolled_back", version="333333333333", finished="2026-12-01T12:00:00+00:00"))
    ledger.record(entry("d1", "promoted", environment="dev", version="444444444444", finished="2026-12-01T13:00:00+00:00"))
    ledger.record(entry("d2", "failed_before_deploy", environment="dev", version="555555555555", finished="2026-12-01T14:00:00+00:00"))
    assert of(samples(url), "deployflow_live_version_info") == {
        labels(service="shop", environment="prod", version="222222222222", config="c2"): 1,
        labels(service="shop", environment="dev", version="444444444444", config=""): 1,  # "": no configuration
    }


def test_the_last_analysis_score_is_the_last_analysed_releases(url):
    ledger = Ledger(url)
    ledger.record(entry("a1", "promoted", score=99.0, finished="2026-12-01T10:00:00+00:00"))
    ledger.record(entry("a2", "rolled_back", score=81.5, finished="2026-12-01T11:00:00+00:00"))
    ledger.record(entry("a3", "promoted", score=None, finished="2026-12-01T12:00:00+00:00"))  # not analysed: the last score stays
    ledger.record(entry("s1", "promoted", environment="staging", score=97.0))
    ledger.record(entry("d1", "promoted", environment="dev"))  # never analysed: no series
    assert of(samples(url), "deployflow_last_analysis_score") == {
        labels(service="shop", environment="prod"): 81.5, labels(service="shop", environment="staging"): 97.0}


def test_an_empty_ledger_is_up_with_no_release(url):
    Ledger(url).entries()  # migrated: the tables, no row
    found = samples(url)
    assert found == {("deployflow_ledger_up", ()): 1}


@pytest.mark.parametrize("make", [
    pytest.param(lambda path: None, id="missing"),
    pytest.param(lambda path: path.write_bytes(b"not a database, as a torn copy would be" * 100), id="not-a-database"),
    pytest.param(lambda path: path.write_bytes(b""), id="empty-file-no-tables"),
])
def test_a_ledger_that_cannot_be_read_is_down_logged_once_and_up_again_once_readable(tmp_path, caplog, make):
    path = tmp_path / "ledger.db"
    make(path)
    collector = LedgerCollector(reader_engine(default_url(tmp_path)))
    registry = CollectorRegistry()
    registry.register(collector)
    with caplog.at_level(logging.INFO, logger="deployflow.ledger.exporter"):
        for _ in range(3):
            assert [(s.name, s.value) for f in registry.collect() for s in f.samples] == [("deployflow_ledger_up", 0)]
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        assert "cannot be read" in caplog.records[0].getMessage()
        path.unlink(missing_ok=True)
        collector.engine.dispose()
        Ledger(default_url(tmp_path)).record(entry("r1", "promoted"))
        found = {s.name: s.value for f in registry.collect() for s in f.samples}
    assert found["deployflow_ledger_up"] == 1 and found["deployflow_releases_total"] == 1
    assert caplog.records[-1].getMessage() == "the ledger can be read again"


def test_a_missing_sqlite_ledger_is_not_created_by_the_exporter(tmp_path):
    samples(default_url(tmp_path / "state"))
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--url", "mysql://db/ledger"], {}, "exporter: --url: scheme 'mysql' is not valid; valid values are sqlite, postgresql"),
    ([], {"DEPLOYFLOW_LEDGER_URL": "ledger.db"},
     "exporter: --url: 'ledger.db' is not a database URL; valid forms are sqlite:///PATH, postgresql://USER@HOST/DB"),
    (["--url", "sqlite:///l.db", "--port", "65536"], {}, "exporter: --port: 65536 is not valid; valid values are 0-65535"),
    (["--url", "sqlite:///l.db", "--port", "-1"], {}, "exporter: --port: -1 is not valid; valid values are 0-65535"),
    (["--url", "sqlite:///l.db", "--port", "http"], {}, "exporter: argument --port: invalid int value: 'http'"),
    (["--url", "sqlite:///l.db", "--verbose"], {}, "exporter: unrecognized arguments: --verbose"),
])
def test_bad_arguments_are_one_line_naming_the_option_and_exit_2(monkeypatch, capsys, argv, env, message):
    for name in ("DEPLOYFLOW_LEDGER_URL", "DEPLOYFLOW_STATE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.parametrize(("argv", "env", "url", "port", "bind"), [
    ([], {"DEPLOYFLOW_STATE": "/srv/state"}, "sqlite:////srv/state/ledger.db", 9468, "127.0.0.1"),
    ([], {"DEPLOYFLOW_STATE": "/srv/state", "DEPLOYFLOW_LEDGER_URL": "postgresql://l@db/ledger"}, "postgresql://l@db/ledger", 9468,
     "127.0.0.1"),
    (["--url", "sqlite:///x.db", "--port", "29468", "--bind", "::1"], {"DEPLOYFLOW_STATE": "/srv/state"}, "sqlite:///x.db", 29468, "::1"),
])
def test_the_defaults_come_from_the_environment_and_bind_loopback(monkeypatch, argv, env, url, port, bind):
    for name in ("DEPLOYFLOW_LEDGER_URL", "DEPLOYFLOW_STATE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parse_args(argv, Settings.from_environ())
    assert (args.url, args.port, args.bind) == (url, port, bind)


def test_a_port_in_use_is_one_line_and_exit_2(url, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--url", url, "--port", str(port)]) == 2
    assert capsys.readouterr().err.startswith(f"exporter: cannot listen on 127.0.0.1:{port}: ")


def test_it_answers_metrics_over_http_on_127_0_0_1_by_default(url):
    Ledger(url).record(entry("r1", "promoted"))
    args = parse_args(["--url", url, "--port", "0"], Settings.from_environ())
    server = serve(args.url, args.bind, args.port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        answer = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    assert ('deployflow_releases_total{environment="prod",outcome="promoted",service="shop",strategy="blue-green"} 1.0'
            in answer.text.splitlines())


def test_the_command_serves_the_ledger_of_its_state_directory(tmp_path):
    Ledger(default_url(tmp_path)).record(entry("r1", "refused", seconds=None))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "DEPLOYFLOW_STATE": str(tmp_path)}
    env.pop("DEPLOYFLOW_LEDGER_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "deployflow.ledger", "exporter", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    assert 'deployflow_releases_total{environment="prod",outcome="refused",service="shop",strategy="blue-green"} 1.0' in text
