"""Configuration releases for real: a secret from an Airflow connection and plain values reach prod's
instances and leak nowhere; a flag flipped on in staging reaches the canary first and is judged; a bad
configuration is rolled back by the same checks, and the old values serve again.

Each test gives an environment a ``config`` block by rewriting the session's catalog file for the length
of one release (every task reads the catalog when it starts), then puts the file back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests

from deployflow.configuration import config_version_of
from deployflow.ledger import Ledger, default_url
from deployflow.analysis.loadgen import LoadGenerator, Sample
from tests.e2e.harness import (
    DAG_ID, PORTS, PROMETHEUS_PORT, app_containers, configured, log_text, release, release_together, served_version,
)

pytestmark = pytest.mark.e2e

CONNECTION = "sample_app_api"  # named after the service: granted to it without a grants file


@pytest.fixture(scope="module")
def live(airflow):
    """Something serves in staging and prod, so each release here replaces a live version (a canary, a switch)."""
    missing = []
    for environment in ("staging", "prod"):
        try:
            served_version(environment)
        except requests.RequestException:
            missing.append(environment)
    if missing:
        runs = release_together(airflow, missing, "main")
        assert {env: run["state"] for env, run in runs.items()} == dict.fromkeys(missing, "success"), runs


@pytest.fixture(scope="module")
def api_secret(airflow) -> Iterator[str]:
    """A fresh secret, kept as the password of an Airflow connection (as a secrets backend would serve it)."""
    value = secrets.token_urlsafe(24)
    created = airflow.session.post(f"{airflow.base_url}/api/v2/connections", timeout=30, json={
        "connection_id": CONNECTION, "conn_type": "generic", "password": value})
    assert created.status_code in (200, 201), created.text
    yield value
    airflow.session.delete(f"{airflow.base_url}/api/v2/connections/{CONNECTION}", timeout=30)


def front(environment: str, path: str = "/") -> dict:
    return requests.get(f"http://127.0.0.1:{PORTS[environment]}{path}", timeout=5).json()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_xcoms(airflow, run_id: str) -> str:
    """Every XCom value of the run, as text."""
    listed = airflow.session.get(f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/~/xcomEntries",
                                 params={"limit": 1000}, timeout=30)
    assert listed.status_code == 200, listed.text
    entries = listed.json()["xcom_entries"]
    assert entries, "the run pushed no XCom at all"
    return "\n".join(json.dumps(airflow.xcom(DAG_ID, run_id, e["task_id"], e["key"])) for e in entries)


def run_logs(airflow, run_id: str) -> str:
    tis = airflow.task_instances(DAG_ID, run_id)
    return "\n".join(log_text(airflow, run_id, ti["task_id"], n) for ti in tis for n in range(1, (ti["try_number"] or 0) + 1))


def test_prod_gets_a_secret_from_a_connection_and_plain_values_and_the_secret_leaks_nowhere(
        airflow, docker_client, catalog, stack_state, api_secret, live):
    config = {"values": {"SAMPLE_GREETING": "hello from prod"},
              "secrets": {"SAMPLE_API_KEY": {"connection": CONNECTION, "field": "password"}},
              "files": {"sample.json": '{"greeting": "hello"}'}}
    with configured(catalog, "prod", config):
        run = release(airflow, "prod", "main")
    assert run["state"] == "success", run["tasks"]
    shown = front("prod", "/config")
    # The instances have both, and the configuration version the ledger names.
    assert shown["sha256"] == {"SAMPLE_API_KEY": sha256(api_secret), "SAMPLE_GREETING": sha256("hello from prod")}
    assert shown["files"] == {"sample.json": sha256('{"greeting": "hello"}')}
    state = stack_state
    entries = Ledger(default_url(state)).entries(environment="prod")
    entry = next(e.to_dict() for e in entries if e.run_id == run["run_id"])
    ledger = json.dumps([e.to_dict() for e in entries])
    assert entry["config"] == shown["config_version"] and len(entry["config"]) == 12
    running = app_containers(docker_client, "prod")
    assert {config_version_of(c.labels["io.deployflow.version"]) for c in running} == {entry["config"]}
    # The environment's limits (the defaults: 500m CPU, 1 GiB, 512 pids), as the engine applies them.
    limits = {(c.attrs["HostConfig"]["NanoCpus"], c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["PidsLimit"]) for c in running}
    assert limits == {(500_000_000, 2**30, 512)}
    # ... and the secret is nowhere else: task logs, XCom, the ledger, release records, the image, Prometheus.
    assert api_secret not in run_logs(airflow, run["run_id"])
    assert api_secret not in run_xcoms(airflow, run["run_id"])
    assert api_secret not in ledger
    for path in state.rglob("*"):
        if path.is_file() and "config" not in path.relative_to(state).parts:
            assert api_secret.encode() not in path.read_bytes(), path
    stored = list((state / "config").rglob("*.json"))
    assert stored and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)
    image = app_containers(docker_client, "prod")[0].attrs["Config"]["Image"]
    assert api_secret not in json.dumps(docker_client.api.history(image))
    assert api_secret not in json.dumps(docker_client.images.get(image).attrs["Config"])
    series = requests.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/series", timeout=10,
                          params={"match[]": '{service="sample-app"}'})
    assert series.status_code == 200 and series.json()["data"], series.text
    assert api_secret not in series.text
    # Another environment's instances get none of prod's configuration.
    assert front("staging", "/config")["sha256"] == {}


@dataclass(frozen=True)
class FlagSample(Sample):
    answered: float = 0.0
    colour: str = ""
    flag: str = ""


class FlagLoad(LoadGenerator):
    """The load generator, each answer with the colour that served it and the flag it saw."""

    def _one(self, session: requests.Session) -> FlagSample:
        at = time.time()
        try:
            response = session.get(self.url, timeout=self.timeout)
            body = response.json() if response.status_code == 200 else {}
        except (requests.RequestException, ValueError) as exc:
            return FlagSample(at, None, None, type(exc).__name__, answered=time.time())
        return FlagSample(at, response.status_code, body.get("version"), answered=time.time(), colour=body.get("track", ""),
                          flag=body.get("flags", {}).get("FLAG_NEW_CHECKOUT", ""))


def test_a_flag_flipped_on_in_staging_reaches_the_canary_first_and_is_judged(airflow, catalog, live):
    before = front("staging")
    assert before["flags"] == {}
    # The commit that serves now (earlier tests leave any): only the configuration changes.
    with configured(catalog, "staging", {"flags": {"new_checkout": True}}), \
            FlagLoad(f"http://127.0.0.1:{PORTS['staging']}/", rate=20, threads=2) as load:
        run = release(airflow, "staging", before["commit"])
    assert run["state"] == "success" and run["tasks"]["analysis"] == "success", run["tasks"]
    assert front("staging")["flags"] == {"FLAG_NEW_CHECKOUT": "true"}  # same image, the flag on everywhere now
    assert front("staging")["version"] == before["version"]
    judged = next(ti for ti in airflow.task_instances(DAG_ID, run["run_id"]) if ti["task_id"] == "analysis")
    judged_until = _timestamp(judged["end_date"])
    answers = [s for s in load.report.samples if s.status == 200]
    on = [s for s in answers if s.flag == "true"]
    assert on, "no answer ever had the flag on"
    # Until the analysis passed, the flag was on only in the canary's colour, beside the old colour without it.
    while_judged = [s for s in answers if on[0].at <= s.at and s.answered < judged_until]
    colours = {flag: {s.colour for s in while_judged if s.flag == flag} for flag in ("true", "")}
    assert len(colours["true"]) == 1 and colours["true"].isdisjoint(colours[""]) and colours[""], colours
    share = sum(s.flag == "true" for s in while_judged) / len(while_judged)
    assert share < 0.5, f"{share:.0%} of answers had the flag on during the canary's first step"


def test_a_bad_configuration_is_rolled_back_by_its_analysis_and_the_old_values_serve(airflow, catalog, live):
    before = front("staging", "/config")
    bad = {"flags": {"new_checkout": True}, "values": {"FAULT_ERROR_RATE": "0.5"}}  # the new setting breaks half the requests
    with configured(catalog, "staging", bad):
        run = release(airflow, "staging", front("staging")["commit"])  # the same image: the configuration alone is bad
    assert (run["state"], run["tasks"]["analysis"], run["tasks"]["rollback"]) == ("failed", "failed", "success"), run["tasks"]
    assert front("staging", "/config") == before  # the previous configuration, with the previous image
    rolled = airflow.xcom(DAG_ID, run["run_id"], "rollback")
    assert config_version_of(rolled["to"]) == before["config_version"], rolled


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
