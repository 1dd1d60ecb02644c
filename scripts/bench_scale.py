"""Scale benchmark: N small services released at once on the Celery setup (deployflow.stack.celery).

    python scripts/bench_scale.py [--counts 1,10,20,50] [--slots 12] [--parse-counts 500,2000]

For each N, N services never released before (each round has its own, so every round does the same work:
a first release to dev) are triggered at once through the REST API: rolling, one instance, one quick
health check, the unit suite only, no analysis, so the figures measure the orchestration; the build is a
cache hit after the first (one commit, one Dockerfile). Printed per N: releases per minute, wall time
against N=1 (the goal: 20 at once within 4x of one), the queued-to-running delay of the task
instances (their ``queued_when`` to ``start_date``: p50/p95/max), the scheduler's loop time (Airflow's
StatsD timer ``scheduler.scheduler_loop_duration``, received here on 127.0.0.1 over UDP), and the worker
slots in use while releases wait (running against deferred task instances, sampled). Then the parse
figures of make bench-parse (500 and 2,000 generated services), and one summary line. Each round
also prints the machine's busy CPU time: on a small machine the releases' own work (containers, task
processes) bounds the rate, not Airflow's scheduling.

Before the releases, the floor: what a task that does nothing costs on the same stack, Airflow's own part
(scheduler, executor, worker, task process, Execution API), net of the idle stack, in core-seconds per task
instance: runs of a DAG of ``FLOOR_TASKS`` chained no-op tasks, one run alone and ``FLOOR_RUNS`` at once.
A release of ``k`` task processes costs at least ``k`` times that, whatever its own work.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from deployflow.client import AirflowClient  # noqa: E402
from deployflow.stack import celery as celery_stack  # noqa: E402
from deployflow.stack.secrets import admin_password  # noqa: E402
from tests import scenarios  # noqa: E402
from tests.parse_figures import HEADER, parse_figures, row  # noqa: E402
from tests.stacks import wait_for_dag  # noqa: E402

STATSD_PORT = 27125
FIRST_PORT = 27201  # the services' proxies: 27201 onwards (27101-27103: the scale tests')
LOOP = re.compile(rb"scheduler\.scheduler_loop_duration:([0-9.]+)\|ms")


class LoopTimes:
    """Airflow's StatsD packets on 127.0.0.1:``port``: the scheduler loop's durations (ms), with when each came."""

    def __init__(self, port: int) -> None:
        self.samples: list[tuple[float, float]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", port))
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            packet = self._socket.recv(65536)
            for match in LOOP.finditer(packet):
                self.samples.append((time.monotonic(), float(match.group(1))))

    def between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.samples if start <= at <= end]


FLOOR_TASKS = 8
FLOOR_RUNS = 10
FLOOR_DAG = f'''"""make bench-scale's floor: {FLOOR_TASKS} chained tasks that do nothing."""
from airflow.sdk import DAG, chain, task

with DAG("floor", schedule=None, max_active_runs=64, default_args={{"retries": 0}}):
    @task
    def nothing() -> None:
        return None

    chain(*(nothing.override(task_id=f"t{{i}}")() for i in range({FLOOR_TASKS})))
'''


def floor_round(client: AirflowClient, runs: int, idle: float) -> dict:
    """``runs`` runs of the floor DAG at once: their wall, and the core-seconds per task instance net of the idle
    stack."""
    started, busy = time.monotonic(), busy_core_seconds()
    run_ids = {client.trigger("floor", {})["dag_run_id"] for _ in range(runs)}
    body = {"dag_ids": ["floor"], "states": ["success", "failed"], "page_limit": 1000}
    while True:
        ended = {r["dag_run_id"]: r["state"] for r in client._call("POST", "/api/v2/dags/~/dagRuns/list", json=body)["dag_runs"]
                 if r["dag_run_id"] in run_ids}
        if len(ended) == runs:
            break
        time.sleep(1)
    wall = time.monotonic() - started
    net = busy_core_seconds() - busy - idle * wall
    return {"runs": runs, "wall": wall, "ok": sum(s == "success" for s in ended.values()),
            "per_task": net / (runs * FLOOR_TASKS)}


def service_entry(name: str, repo: Path, port: int) -> dict:
    return {
        "name": name, "owner": "bench", "port": 8000,
        "source": {"repo": str(repo), "context": ".", "default_ref": "main"},
        "tests": {"suites": ["unit"], "coverage_threshold": 0, "coverage_source": "app"},
        "environments": {"dev": {"port": port, "replicas": 1, "strategy": "rolling",
                                 "health": {"consecutive": 1, "interval_s": 0.5, "timeout_s": 30}}},
    }


def write_catalog(directory: Path, repo: Path, counts: list[int]) -> dict[int, list[str]]:
    """One file per service, a fresh set of services per round; the services of each round."""
    rounds, index = {}, 0
    directory.mkdir(parents=True, exist_ok=True)
    for n in counts:
        rounds[n] = []
        for _ in range(n):
            index += 1
            name = f"scale-{index:03d}"
            (directory / f"{name}.yaml").write_text(yaml.safe_dump(service_entry(name, repo, FIRST_PORT + index - 1)))
            rounds[n].append(name)
    return rounds


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _count(client: AirflowClient, state: str) -> int:
    answer = client._call("GET", "/api/v2/dags/~/dagRuns/~/taskInstances", params={"state": state, "limit": 1})
    return int(answer["total_entries"])


def finished_runs(client: AirflowClient, runs: dict[str, str]) -> dict[str, str]:
    """The runs of ``runs`` (by service) that ended, with their state: one call a poll, whatever N (a call per run
    and poll was 10 requests a second at N=20, on the API server the releases themselves use)."""
    body = {"dag_ids": [f"release_{service}" for service in runs], "states": ["success", "failed"],
            "page_limit": len(runs)}
    ended = client._call("POST", "/api/v2/dags/~/dagRuns/list", json=body)["dag_runs"]
    by_dag = {run["dag_id"]: run for run in ended}
    return {service: by_dag[f"release_{service}"]["state"] for service, run_id in runs.items()
            if f"release_{service}" in by_dag and by_dag[f"release_{service}"]["dag_run_id"] == run_id}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def busy_core_seconds() -> float:
    """The machine's CPU time not idle since boot (/proc/stat, every core): whoever used it."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


IDLE_S = 60.0  # longer than the dag-processor's and the scheduler's periodic work, so the rate includes it


def idle_cores(seconds: float) -> float:
    """The machine's busy cores, on average over ``seconds``, with the stack up and no release running."""
    started, busy = time.monotonic(), busy_core_seconds()
    time.sleep(seconds)
    return (busy_core_seconds() - busy) / (time.monotonic() - started)


def release_round(client: AirflowClient, services: list[str], loops: LoopTimes) -> dict:
    """Trigger a release of each service at once, follow them to the end, sampling slots every 2 s."""
    for service in services:
        wait_for_dag(client, f"release_{service}", timeout=300)
    started, busy = time.monotonic(), busy_core_seconds()
    runs = {service: client.trigger(f"release_{service}", {"environment": "dev", "git_ref": "main"})["dag_run_id"]
            for service in services}
    states: dict[str, str] = {}
    samples: list[tuple[int, int]] = []
    while len(states) < len(runs):
        samples.append((_count(client, "running"), _count(client, "deferred")))
        states.update(finished_runs(client, runs))
        time.sleep(2)
    wall, busy = time.monotonic() - started, busy_core_seconds() - busy
    delays, failures, retried = [], {}, {}
    for service, run_id in runs.items():
        for ti in client.task_instances(f"release_{service}", run_id):
            queued, start = _when(ti.get("queued_when")), _when(ti.get("start_date"))
            if queued and start:
                delays.append((start - queued).total_seconds())
            if ti["state"] == "failed":
                failures.setdefault(ti["task_id"], []).append((service, run_id, ti["try_number"]))
            elif ti["state"] == "success" and (ti.get("try_number") or 1) > 1:  # slower, not failed: say why it was
                retried.setdefault(ti["task_id"], []).append((service, run_id, 1))
    return {"n": len(services), "wall": wall, "ok": sum(s == "success" for s in states.values()),
            "delays": delays, "loops": loops.between(started, started + wall), "slots": samples, "busy": busy,
            "failures": {task_id: (len(found), why(client, task_id, *found[0])) for task_id, found in failures.items()},
            "retried": {task_id: (len(found), why(client, task_id, *found[0])) for task_id, found in retried.items()}}


def why(client: AirflowClient, task_id: str, service: str, run_id: str, try_number: int) -> str:
    """A failed try's error on one line: its exception (a deployer step's carries the deployer's own reason), else
    its last log line."""
    try:
        entries = client.task_log(f"release_{service}", run_id, task_id, try_number)
    except Exception as exc:  # noqa: BLE001 - a figure's footnote: say why it is missing, go on
        return f"(its log could not be read: {exc})"
    errors = [f"{d.get('exc_type')}: {d.get('exc_value')}" for e in entries for d in e.get("error_detail") or []]
    last = errors[-1] if errors else (str(entries[-1].get("event", "")) if entries else "(no log)")
    return " ".join(last.split())[:300]


def show(result: dict, one: float | None, slots: int) -> None:
    n, wall, delays, loops = result["n"], result["wall"], result["delays"], result["loops"]
    running = [r for r, _ in result["slots"]]
    deferred = [d for _, d in result["slots"]]
    print(f"N={n:>3}: {result['ok']}/{n} succeeded in {wall:6.1f} s = {n / wall * 60:5.1f} releases/min"
          + (f", {wall / one:4.2f}x the time of one" if one else ""))
    print(f"       queued->running of {len(delays)} task instances: p50 {percentile(delays, .5):.2f} s, "
          f"p95 {percentile(delays, .95):.2f} s, max {max(delays, default=float('nan')):.2f} s")
    print(f"       scheduler loop ({len(loops)} loops): p50 {percentile(loops, .5):.0f} ms, "
          f"p95 {percentile(loops, .95):.0f} ms, max {max(loops, default=float('nan')):.0f} ms")
    print(f"       worker slots ({slots} on the default queue): running mean {statistics.fmean(running or [0]):.1f}, "
          f"max {max(running, default=0)}; deferred mean {statistics.fmean(deferred or [0]):.1f}, "
          f"max {max(deferred, default=0)} ({len(running)} samples, every 2 s)")
    net = result["busy"] - result["idle_cores"] * wall  # what the releases cost, the idle stack's own rate taken off
    print(f"       CPU: {result['busy']:.0f} core-seconds busy ({result['busy'] / n:.0f} per release), "
          f"{result['busy'] / wall:.2f} of the machine's {os.cpu_count()} cores on average (the whole machine); "
          f"net of the idle stack ({result['idle_cores']:.2f} cores): {net / n:.1f} core-s per release")
    for task_id, (count, reason) in sorted(result["failures"].items()):
        print(f"       failed: {task_id} in {count} run(s); the first's last try: {reason}")
    for task_id, (count, reason) in sorted(result["retried"].items()):
        print(f"       retried, then succeeded: {task_id} in {count} run(s); the first's first try: {reason}")




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,20,50", help="the Ns, comma-separated")
    parser.add_argument("--slots", type=int, default=12, help="worker-a's Celery concurrency (the default queue)")
    parser.add_argument("--parse-counts", default="500,2000",
                        help="the catalog sizes of the parse figures, comma-separated; empty: none (make bench-parse alone)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.counts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="deployflow-bench-scale-"))
    work.chmod(0o711)  # the postgres user passes through to its own directory (celery_services)
    repo = scenarios.make_repo(work / "repo", crash_after_s=10)
    rounds = write_catalog(work / "catalog", repo, counts)
    (work / "dags").mkdir()
    (work / "dags" / "floor.py").write_text(FLOOR_DAG)
    loops = LoopTimes(STATSD_PORT)
    extra = {"DEPLOYFLOW_CATALOG": str(work / "catalog"), "DEPLOYFLOW_WORKSPACE": str(work / "ws"),
             "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),  # the floor's DAG (the checkout's dags/ has none)
             "AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
             "AIRFLOW__METRICS__STATSD_PORT": str(STATSD_PORT)}
    top = work / "celery"
    results, floors = [], []
    try:
        celery_stack.up(top, celery_stack.PORT, extra, concurrency={"worker-a": args.slots})
        client = AirflowClient(f"http://127.0.0.1:{celery_stack.PORT}", timeout=90)
        client.login("admin", admin_password(top / "secrets"))
        for service in (name for names in rounds.values() for name in names):
            wait_for_dag(client, f"release_{service}", timeout=300)
        wait_for_dag(client, "floor", timeout=300)
        idle = idle_cores(IDLE_S)
        print(f"idle stack: {idle:.2f} cores over {IDLE_S:.0f} s (taken off each round's CPU for its net figure)")
        for runs in (1, FLOOR_RUNS):
            floors.append(floor_round(client, runs, idle))
            print(f"floor: {runs} run(s) of {FLOOR_TASKS} chained no-op tasks, {floors[-1]['ok']}/{runs} succeeded in "
                  f"{floors[-1]['wall']:.1f} s: {floors[-1]['per_task']:.2f} net core-s per task instance", flush=True)
        one = None
        for n in counts:
            result = {**release_round(client, rounds[n], loops), "idle_cores": idle}
            one = one or (result["wall"] if n == 1 else None)
            show(result, one if n != 1 else None, args.slots)
            results.append(result)
    finally:
        celery_stack.down(top)
        shutil.rmtree(work, ignore_errors=True)
    parse_counts = tuple(int(n) for n in args.parse_counts.split(",") if n)
    parse = "not measured (--parse-counts '')"
    if parse_counts:
        # Airflow's default timeouts for the one file too: what a user gets (make bench-parse raises them to time it).
        print(f"parse (make bench-parse, one cold dag-processor cycle, Airflow's default timeouts):\n{HEADER}", flush=True)
        figures = parse_figures(counts=parse_counts, raise_old_timeouts=False, report=lambda run: print(row(run), flush=True))
        parse = ", ".join(f"{n} services: {runs['per service']['dags']} DAGs per service (slowest file "
                          f"{runs['per service']['slowest_file_s']:.1f} s, {runs['per service']['peak_tree_rss_mb']:.0f} MB) "
                          f"vs {runs['one file']['dags']} in one file" for n, runs in figures.items())
    by_n = {r["n"]: r for r in results}
    twenty = f"{by_n[20]['wall'] / one:.2f}x" if 20 in by_n and one else "n/a"
    all_delays = [d for r in results for d in r["delays"]]
    rates = ", ".join(f"N={r['n']} {r['n'] / r['wall'] * 60:.1f}/min" for r in results)
    per_release = ", ".join(f"N={r['n']} {(r['busy'] - r['idle_cores'] * r['wall']) / r['n']:.1f}" for r in results)
    floor = ", ".join(f"{f['runs']} at once {f['per_task']:.2f}" for f in floors)
    print(f"SUMMARY bench-scale: {rates}; net core-s per release {per_release}; floor, net core-s per no-op task {floor}; "
          f"20 at once = {twenty} of one (goal <= 4x); queued->running p95 {percentile(all_delays, .95):.2f} s "
          f"(goal < 5 s); failed {sum(r['n'] - r['ok'] for r in results)}"
          + f"; parse {parse}")
    return 0 if all(r["ok"] == r["n"] for r in results) and all(f["ok"] == f["runs"] for f in floors) else 1


if __name__ == "__main__":
    sys.exit(main())
