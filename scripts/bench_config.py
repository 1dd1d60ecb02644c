"""Configuration benchmark (make bench-config): what a configuration-only release costs, against an image release.

Starts its own Airflow (127.0.0.1:28096, stack "config") and releases the sample service through the REST
API under a steady 100 requests/s through the environment's proxy. In staging (canary, analysed) and prod
(blue-green, watched after promotion), in turn:

- an image release: a new commit, no configuration change;
- a configuration-only release: the same commit, one flag flipped (staging) or one value changed (prod);
- in staging, a bad configuration (half the requests fail), rolled back by the analysis.

For each: the run's outcome and time, the build and test stages' time (a configuration-only release runs
them again for the same image today), the deploy tasks' time, prepare's configuration resolution time (from
its log line), failed requests at the load generator, and what the ledger says the release cost (failed
requests at the router, extra instance-seconds). Prints a table and a one-line summary; asserts nothing.
"""

from __future__ import annotations

import re
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from deployflow.analysis.loadgen import LoadGenerator  # noqa: E402
from deployflow.client import AirflowClient  # noqa: E402
from deployflow.ledger import Ledger, default_url  # noqa: E402
from tests import scenarios  # noqa: E402
from tests.stacks import bench_stack  # noqa: E402

PORT = 28096
STACK = "config"
EXPORTER_PORT = 29471  # its release exporter
PORTS = {"dev": 28401, "staging": 28402, "prod": 28403}
DAG_ID = "release_sample-app"
BEFORE_DEPLOY = ("resolve", "build", "test.")  # task ids, or a group's prefix (build checks out first)
DEPLOY = ("prepare", "health", "shift", "analysis", "promote", "rollback")
_RESOLVED = re.compile(r"configuration \w+ of \w+: .* in (\d+\.\d+) s")


def stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def span(tis: dict, names: tuple[str, ...]) -> float:
    """Seconds from the first of ``names`` to start to the last to end (the ones that ran)."""
    ran = [t for task_id, t in tis.items() if (task_id in names or task_id.startswith(tuple(n for n in names if n.endswith("."))))
           and t.get("start_date") and t.get("end_date")]
    if not ran:
        return float("nan")
    return max(stamp(t["end_date"]) for t in ran) - min(stamp(t["start_date"]) for t in ran)


class Bench:
    def __init__(self, client: AirflowClient, repo: Path, catalog: Path, state: Path) -> None:
        self.client, self.repo, self.catalog, self.state = client, repo, catalog, state
        self.rows: list[dict] = []

    def configure(self, environment: str, config: dict | None) -> None:
        path = self.catalog / "sample-app.yaml"
        entry = yaml.safe_load(path.read_text())
        entry["environments"][environment].pop("config", None)
        if config:
            entry["environments"][environment]["config"] = config
        path.write_text(yaml.safe_dump(entry))

    def release(self, name: str, environment: str, ref: str) -> dict:
        with LoadGenerator(f"http://127.0.0.1:{PORTS[environment]}/", rate=100) as load:
            run_id = self.client.trigger(DAG_ID, {"environment": environment, "git_ref": ref, "reason": "bench"})["dag_run_id"]
            run = self.client.wait(DAG_ID, run_id, timeout=900)
        tis = {ti["task_id"]: ti for ti in self.client.task_instances(DAG_ID, run_id)}
        prepare = "\n".join(str(e.get("event", "")) for e in self.client.task_log(DAG_ID, run_id, "prepare", 1))
        resolved = _RESOLVED.search(prepare)
        entry = next((e for e in Ledger(default_url(self.state)).entries() if e.run_id == run_id), None)
        row = {"release": name, "environment": environment, "outcome": run["state"],
               "run_s": stamp(run["end_date"]) - stamp(run["start_date"]), "build_test_s": span(tis, BEFORE_DEPLOY),
               "deploy_s": span(tis, DEPLOY), "resolve_config_s": float(resolved.group(1)) if resolved else 0.0,
               "requests": load.report.sent, "failed": len(load.report.failures),
               "router_failed": entry.failed_requests if entry else None,
               "extra_instance_s": entry.extra_instance_seconds if entry else None}
        self.rows.append(row)
        return row


def main(argv: list[str] | None = None) -> int:
    work = Path(tempfile.mkdtemp(prefix="deployflow-bench-config-"))
    repo = scenarios.make_repo(work / "repo", crash_after_s=10)
    catalog = scenarios.write_catalog(work / "catalog", repo, PORTS)
    with bench_stack(work, catalog, name=STACK, port=PORT, prometheus_port=29096, exporter_port=EXPORTER_PORT) as (airflow, _):
        bench = Bench(airflow, repo, catalog, work / "state")
        for environment in ("staging", "prod"):
            print(f"baseline: {bench.release('baseline', environment, 'main')}", flush=True)
        for environment, change in (("staging", {"flags": {"new_checkout": True}}),
                                    ("prod", {"values": {"SAMPLE_GREETING": "hello"}})):
            ref = f"bench-config-{environment}"
            scenarios.branch(repo, ref)
            print(bench.release("image", environment, ref), flush=True)
            bench.configure(environment, change)
            print(bench.release("configuration only", environment, ref), flush=True)
        bench.configure("staging", {"flags": {"new_checkout": True}, "values": {"FAULT_ERROR_RATE": "0.5"}})
        print(bench.release("bad configuration", "staging", "bench-config-staging"), flush=True)
    report(bench.rows)
    return 0


def report(rows: list[dict]) -> None:
    columns = ("release", "environment", "outcome", "run_s", "build_test_s", "deploy_s", "resolve_config_s", "requests", "failed",
               "router_failed", "extra_instance_s")
    print("\n" + " | ".join(f"{c:>18}" for c in columns))
    for row in rows:
        print(" | ".join(f"{row[c]:>18.2f}" if isinstance(row[c], float) else f"{row[c]!s:>18}" for c in columns))
    parts = []
    for environment in ("staging", "prod"):
        image = next(r for r in rows if r["release"] == "image" and r["environment"] == environment)
        config = next(r for r in rows if r["release"] == "configuration only" and r["environment"] == environment)
        parts.append(f"{environment} configuration-only {config['run_s']:.0f} s = {config['run_s'] / image['run_s']:.2f}x an image "
                     f"release (deploy {config['deploy_s'] / image['deploy_s']:.2f}x, resolve {config['resolve_config_s']:.2f} s)")
    failed = sum(r["failed"] for r in rows if r["release"] not in ("baseline", "bad configuration"))  # a first deploy: nothing served before
    print("bench-config: " + "; ".join(parts) + f"; failed requests outside the first deploys and the bad configuration: {failed}")


if __name__ == "__main__":
    sys.exit(main())
