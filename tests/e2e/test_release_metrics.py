"""Release metrics end to end: the stack's exporter serves what the record task wrote to the ledger, the
stack's Prometheus scrapes it and loads the example alerting rules, which promtool accepts."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from deployflow.stack import containers
from tests.e2e.harness import EXPORTER_PORT, PROMETHEUS_PORT, ROOT, release, short_sha

pytestmark = pytest.mark.e2e

RULES = ROOT / "include" / "prometheus"
DEV = {"service": "sample-app", "environment": "dev"}


def promtool(docker_client: docker.DockerClient, *args: str, mount: Path = RULES) -> str:
    """promtool of the stack's Prometheus image, with no network and ``mount`` read-only at the same path."""
    containers.ensure_images(docker_client)
    output = docker_client.containers.run(
        containers.PROMETHEUS_IMAGE, entrypoint="promtool", command=list(args), network_mode="none", working_dir=str(mount),
        volumes={str(mount): {"bind": str(mount), "mode": "ro"}}, remove=True, stdout=True, stderr=True)
    return output.decode()


def test_the_example_rules_pass_promtool_check_and_their_unit_tests(docker_client):
    checked = promtool(docker_client, "check", "rules", str(RULES / "rules.yml"))
    print(checked)
    assert "SUCCESS: 3 rules found" in checked
    tested = promtool(docker_client, "test", "rules", "rules.test.yml")
    print(tested)
    assert "SUCCESS" in tested


def test_the_stacks_prometheus_configuration_with_the_rules_passes_promtool(docker_client, tmp_path):
    (tmp_path / "targets").mkdir()
    (tmp_path / "rules.yml").write_text(containers.RULES.read_text())
    config = containers.PROMETHEUS_CONFIG.format(state=tmp_path, scrape="1s", rules=tmp_path / "rules.yml", exporter=EXPORTER_PORT)
    (tmp_path / "prometheus.yml").write_text(config)
    checked = promtool(docker_client, "check", "config", str(tmp_path / "prometheus.yml"), mount=tmp_path)
    assert "is valid prometheus config file syntax" in checked and "SUCCESS: 3 rules found" in checked, checked


def scrape(show: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exporter's samples: (name, sorted labels) -> value; ``show``: print them (pytest -s shows them)."""
    text = requests.get(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", timeout=10).text
    if show:
        print(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def releases(samples: dict, outcome: str) -> float:
    return sample(samples, "deployflow_releases_total", **DEV, strategy="rolling", outcome=outcome)


def prometheus(query: str) -> list[dict]:
    answer = requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": query}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def eventually(what: str, probe, timeout: float = 90):
    """``probe()``'s first truthy answer within ``timeout``; fails naming ``what`` and the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"{what} within {timeout:.0f} s; last answer {last!r}")


def test_a_promotion_and_a_rollback_are_counted_scraped_and_alerted(airflow, sample_repo: Path):
    before = scrape()
    assert sample(before, "deployflow_ledger_up") in (0.0, 1.0)  # 0: no release recorded yet in this session
    good = short_sha(sample_repo, "main")

    # force: main may be live in dev already (an earlier module), and an already-live run is no promotion.
    assert release(airflow, "dev", "main", force=True)["state"] == "success"
    run = release(airflow, "dev", "ready-never")
    assert run["state"] == "failed" and run["tasks"]["rollback"] == "success", run["tasks"]

    after = scrape(show=True)
    assert sample(after, "deployflow_ledger_up") == 1.0
    assert releases(after, "promoted") == releases(before, "promoted") + 1
    assert releases(after, "rolled_back") == releases(before, "rolled_back") + 1
    assert releases(after, "failed") == releases(before, "failed")
    rollbacks = sample(after, "deployflow_rollback_seconds_count", **DEV)
    assert rollbacks == sample(before, "deployflow_rollback_seconds_count", **DEV) + 1
    assert sample(after, "deployflow_rollback_seconds_bucket", **DEV, le="+Inf") == rollbacks
    durations = sample(after, "deployflow_release_duration_seconds_count", **DEV, strategy="rolling")
    assert durations == sample(before, "deployflow_release_duration_seconds_count", **DEV, strategy="rolling") + 2
    [live] = [dict(labels) for name, labels in after  # other e2e tests release other services (gov-app) before this
              if name == "deployflow_live_version_info" and DEV.items() <= dict(labels).items()]
    assert live["version"] == good, live  # the rolled back version never shows as live
    bad = short_sha(sample_repo, "ready-never")
    assert all(bad not in str(labels) for _, labels in after)  # no version in a label but the live one

    # Prometheus scrapes the exporter (job deployflow-releases) and has the same count.
    query = 'deployflow_releases_total{service="sample-app",environment="dev",outcome="rolled_back"}'
    scraped = eventually("Prometheus has not scraped the rollback",
                         lambda: [r for r in prometheus(query) if float(r["value"][1]) == releases(after, "rolled_back")])
    assert scraped[0]["metric"]["job"] == "deployflow-releases"
    # ... and has loaded the example rules: the rollback alerts (pending for 30 s, then firing).
    alerts = eventually("the rollback did not alert", timeout=120, probe=lambda: [
        a for a in requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        if a["labels"]["alertname"] == "DeployflowReleaseRolledBack" and DEV.items() <= a["labels"].items()])
    assert alerts[0]["annotations"]["summary"] == "A release of sample-app to dev was rolled back"
