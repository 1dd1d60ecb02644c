"""Deploy benchmark (make bench-deploy): failed requests, rollback speed, release overhead.

Starts its own Airflow (127.0.0.1:28090, stack "bench") and releases the
sample service through the REST API, as CI would, under a steady 100
requests/s through the environment's proxy:

- a blue-green switch and a canary ramp of a good version;
- ROLLBACKS releases of a version that crashes after start (caught while
  the old colour stands by) and of a version whose readiness never passes.

For each rollback it reports the time from the failing check to the moment
all traffic is on the old version (negative: HAProxy had already moved it),
and Airflow's gap before the rollback task starts. Finally it compares the
deploy part of a release with the raw Docker operations it needs. Prints a
table and a one-line summary; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import docker
import requests

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from deployflow.analysis.loadgen import LoadGenerator  # noqa: E402
from deployflow.client import AirflowClient  # noqa: E402
from tests import scenarios  # noqa: E402
from tests.stacks import bench_stack  # noqa: E402

PORT = 28090
STACK = "bench"
EXPORTER_PORT = 29469  # its release exporter
PORTS = {"dev": 28201, "staging": 28202, "prod": 28203}
DAG_ID = "release_sample-app"
CRASH_AFTER_S = 10


def stamp(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else float("nan")


def log_text(client: AirflowClient, run_id: str, task_id: str) -> str:
    return "\n".join(str(e.get("event", "")) for e in client.task_log(DAG_ID, run_id, task_id, 1))


def deployer_time(log: str, pattern: str) -> float | None:
    """Wall time of the first deployer log line matching ``pattern``."""
    match = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ " + pattern, log)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=timezone.utc).timestamp()


class Bench:
    def __init__(self, client: AirflowClient, repo: Path) -> None:
        self.client = client
        self.repo = repo
        self.rows: list[dict] = []

    def release(self, environment: str, ref: str) -> tuple[dict, dict, LoadGenerator]:
        with LoadGenerator(f"http://127.0.0.1:{PORTS[environment]}/", rate=100) as load:
            run_id = self.client.trigger(DAG_ID, {"environment": environment, "git_ref": ref, "reason": "bench"})["dag_run_id"]
            run = self.client.wait(DAG_ID, run_id, timeout=900)
        tis = {ti["task_id"]: ti for ti in self.client.task_instances(DAG_ID, run_id)}
        return run, tis, load

    def switch(self, name: str, environment: str) -> dict:
        ref = f"bench-{len(self.rows)}"
        scenarios.branch(self.repo, ref)
        run, tis, load = self.release(environment, ref)
        row = {
            "scenario": name, "outcome": run["state"], "requests": load.report.sent, "failed": len(load.report.failures),
            "run_s": stamp(run["end_date"]) - stamp(run["start_date"]),
            "deploy_s": stamp(tis["promote"]["end_date"]) - stamp(tis["prepare"]["start_date"]),
        }
        self.rows.append(row)
        return row

    def rollback(self, ref: str, environment: str = "prod") -> dict:
        before = requests.get(f"http://127.0.0.1:{PORTS[environment]}/", timeout=5).json()["version"]
        run, tis, load = self.release(environment, ref)
        run_id = run["dag_run_id"]
        if tis["health"]["state"] == "failed":  # never ready: traffic never moved
            check = stamp(tis["health"]["end_date"])
            failed_task = "health"
        else:
            check = deployer_time(log_text(self.client, run_id, "promote"), "promote failed") or stamp(tis["promote"]["end_date"])
            failed_task = "promote"
        new_served = [s.at for s in load.report.samples if not s.failed and s.version and s.version != before]
        all_old_at = max(new_served) if new_served else None
        row = {
            "scenario": f"rollback ({ref})", "outcome": "rolled back" if tis["rollback"]["state"] == "success" else run["state"],
            "requests": load.report.sent, "failed": len(load.report.failures),
            "check_to_old_s": (all_old_at - check) if all_old_at else 0.0,
            "airflow_gap_s": stamp(tis["rollback"]["start_date"]) - stamp(tis[failed_task]["end_date"]),
            "rollback_task_s": tis["rollback"]["duration"],
            "run_s": stamp(run["end_date"]) - stamp(run["start_date"]),
        }
        self.rows.append(row)
        return row


def raw_docker_seconds(client: docker.DockerClient, image: str, replicas: int) -> float:
    """The irreducible work of a blue-green release: start N, wait until ready, stop N."""
    started = time.monotonic()
    containers = [
        client.containers.run(image, detach=True, network_mode="host", name=f"bench-raw-{n}",
                              environment={"PORT": str(28290 + n), "BIND": "127.0.0.1"})
        for n in range(replicas)
    ]
    for n in range(replicas):
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{28290 + n}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
    for container in containers:
        container.stop(timeout=10)
        container.remove()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=3, help="releases of the crashing version")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="deployflow-bench-"))
    repo = scenarios.make_repo(work / "repo", crash_after_s=CRASH_AFTER_S)
    catalog = scenarios.write_catalog(work / "catalog", repo, PORTS)
    with bench_stack(work, catalog, name=STACK, port=PORT, prometheus_port=29091, exporter_port=EXPORTER_PORT) as (
            airflow, client):
        bench = Bench(airflow, repo)
        for environment in ("prod", "staging"):  # the versions every scenario replaces
            run, _, _ = bench.release(environment, "main")
            print(f"baseline main -> {environment}: {run['state']}", flush=True)
        print(bench.switch("blue-green switch", "prod"), flush=True)
        print(bench.switch("canary ramp", "staging"), flush=True)
        for _ in range(args.rollbacks):
            print(bench.rollback("crash"), flush=True)
        print(bench.rollback("ready-never"), flush=True)
        image = requests.get(f"http://127.0.0.1:{PORTS['prod']}/", timeout=5).json()["version"][:12]
        raw = statistics.median(raw_docker_seconds(client, f"127.0.0.1:5000/sample-app:{image}", 2) for _ in range(3))
    report(bench.rows, raw)
    return 0


def report(rows: list[dict], raw: float) -> None:
    columns = ("scenario", "outcome", "requests", "failed", "check_to_old_s", "airflow_gap_s", "rollback_task_s", "deploy_s", "run_s")
    print("\n" + " | ".join(f"{c:>16}" for c in columns))
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        print(" | ".join(f"{c:>16.2f}" if isinstance(c, float) else f"{c!s:>16}" for c in cells))
    crashes = [r for r in rows if r["scenario"] == "rollback (crash)"]
    to_old = [r["check_to_old_s"] for r in crashes]
    gaps = [r["airflow_gap_s"] for r in rows if "airflow_gap_s" in r]
    switch = next(r for r in rows if r["scenario"] == "blue-green switch")
    deploy_work = switch["deploy_s"] - 10  # less the configured 10 s scale-down delay, which is waiting on purpose
    print(f"\nraw Docker work of a 2-replica blue-green release (start 2, wait ready, stop 2): {raw:.2f} s")
    print(f"deploy tasks of that release: {switch['deploy_s']:.1f} s, {deploy_work:.1f} s without the scale-down delay "
          f"= {deploy_work / raw:.1f}x the raw Docker work; whole run {switch['run_s']:.1f} s")
    failed = {r["scenario"]: r["failed"] for r in rows}
    print(
        "bench-deploy: failed requests " + ", ".join(f"{k}={v}" for k, v in failed.items())
        + f"; crash check->all traffic on old median {statistics.median(to_old):.2f} s max {max(to_old):.2f} s"
        + f"; Airflow gap before rollback task median {statistics.median(gaps):.1f} s"
        + f"; deploy {deploy_work / raw:.1f}x raw Docker"
    )


if __name__ == "__main__":
    sys.exit(main())
