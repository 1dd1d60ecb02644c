"""Release breakdown benchmark (make bench-release): where one release's time and CPU go.

Starts its own Airflow (127.0.0.1:28090, stack "bench"), releases the sample service to dev (rolling, 2
replicas) once to warm the caches, measures the idle stack's CPU rate, then releases N new commits (a trivial
change each). Per task: its wall split into Airflow's part (ready->queued, queued->start, process start and DAG
parse, hand-off, what lies between processes) and its own work (execute(), plus its trigger's run). Then the
critical path, and the machine's core-seconds net of the idle stack. Prints the median release's table,
per-column medians, the path and one SUMMARY line; asserts nothing.

    python scripts/bench_release.py [--releases 3] [--idle-s 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins"),
                str(Path(__file__).resolve().parent)]  # tests, deployflow, bench_scale

from bench_scale import busy_core_seconds  # noqa: E402

PORT = 28090
STACK = "bench"
PORTS = {"dev": 28201, "staging": 28202, "prod": 28203}
DAG_ID = "release_sample-app"
PHASES = ("ready->queued", "queued->start", "start+parse", "work", "hand-off", "between", "airflow", "total")
TRIGGER_START = re.compile(r"^trigger \S+ \(ID \d+\) starting")
NO_PROCESS = "skipped by the scheduler, no process"


def stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def ready_at(ti: dict, upstream_end: float | None, run_start: float) -> float:
    """When the task could run: its scheduled_when, unless none or later than its start (a deferred task's resume
    or a retry rewrites it): then its upstreams' last end."""
    scheduled, start = stamp(ti.get("scheduled_when")), stamp(ti.get("start_date"))
    if scheduled is not None and (start is None or scheduled <= start):
        return scheduled
    return upstream_end if upstream_end is not None else run_start


def split_phases(tries: list[dict], logs: dict[int, list[dict]], ready: float) -> dict:
    """One task's wall, ``ready`` to its last try's end_date, split into phases (seconds). ``tries``: its task
    instance (REST fields), one per try; ``logs``: each try's log events ({"timestamp", "event"}). Each process
    logs "::group::Pre Execute", "Worker startup parse complete", "::endgroup::" (parse done), then execute()'s
    own lines, then "::group::Post Execute". start+parse = the first process's start_date (or first event if
    earlier) to its parse end, plus Pre Execute to parse end of each later process (deferral resumes, retries);
    work = parse end to Post Execute of every process, plus each trigger's run ("trigger ... starting" to
    "Trigger fired event") when the log has it; hand-off = the last Post Execute to end_date; between = the rest
    (waiting for the triggerer and to be resumed, a retry's delay, earlier processes' exit). airflow = total -
    work, all but work. ``processes`` counts the processes started.
    """
    last = max(tries, key=lambda t: t.get("try_number") or 0)
    first = min(tries, key=lambda t: t.get("try_number") or 0)
    end = stamp(last.get("end_date"))
    events = sorted((stamp(e["timestamp"]), str(e.get("event", ""))) for t in sorted(logs) for e in logs[t]
                    if isinstance(e, dict) and e.get("timestamp"))
    starts = [at for at, text in events if text == "::group::Pre Execute"]
    row = dict.fromkeys(PHASES, 0.0)
    row.update(processes=len(starts), deferrals=sum(text.startswith("Pausing task as DEFERRED") for _, text in events),
               tries=len(tries), state=last.get("state"), note="", parse_ms=[])
    if end is None:
        row["note"] = f"not finished ({last.get('state')})"
        return row
    if not starts:
        if last.get("state") == "skipped" or not last.get("try_number"):
            row["note"] = NO_PROCESS if last.get("state") == "skipped" else f"{last.get('state')}, no process"
            return row
        start = stamp(first.get("start_date")) or end  # ran, no log to split: all counted as work
        row.update(note="no log", total=end - ready, work=end - start, airflow=start - ready)
        row["ready->queued"] = start - ready
        return row
    start = min(stamp(first.get("start_date")) or starts[0], starts[0])
    queued = stamp(first.get("queued_when"))
    queued = queued if queued is not None and ready <= queued <= start else ready
    row["ready->queued"], row["queued->start"] = queued - ready, start - queued
    process_start, stage, parsed, post = start, "", start, None
    for at, text in events:  # stage: pre (process started), parsed (startup parse logged), work (in execute())
        if text == "::group::Pre Execute":
            process_start, stage = (start if at == starts[0] else at), "pre"
        elif text.startswith("Worker startup parse complete") and stage == "pre":
            stage = "parsed"
        elif text == "::endgroup::" and stage == "parsed":
            stage, parsed = "work", at
            row["start+parse"] += at - process_start
        elif text == "::group::Post Execute" and stage == "work":
            stage, post = "", at
            row["work"] += at - parsed
    trigger = None
    for at, text in events:
        if TRIGGER_START.match(text):
            trigger = at
        elif text.startswith("Trigger fired event") and trigger is not None:
            row["work"] += at - trigger
            trigger = None
    row["parse_ms"] = [e.get("dag_file_parse_ms") for t in logs.values() for e in t
                       if isinstance(e, dict) and str(e.get("event", "")).startswith("Worker startup parse complete")]
    row["hand-off"] = end - post if post is not None else 0.0
    row["total"] = end - ready
    row["between"] = row["total"] - sum(row[p] for p in PHASES[:5])
    row["airflow"] = row["total"] - row["work"]
    if last.get("state") == "skipped":
        row["note"] = "skipped, after starting a process"
    return row


def upstreams(tasks: list[dict]) -> dict[str, list[str]]:
    """Each task's upstream task ids, from REST /dags/{dag}/tasks (each task's downstream_task_ids)."""
    found: dict[str, list[str]] = {t["task_id"]: [] for t in tasks}
    for task in tasks:
        for down in task.get("downstream_task_ids") or ():
            found.setdefault(down, []).append(task["task_id"])
    return found


def critical_path(upstream: dict[str, list[str]], ends: dict[str, float | None], last: str | None = None,
                  work: dict[str, float] | None = None) -> list[str]:
    """From ``last`` (default: the task that ended last) back to a task with no upstream: at each task, the
    upstream that finished last (ran or skipped; one without an end_date never counts). Ties: the one that did
    more work, then the task id. Returned first task first."""
    work = work or {}
    key = lambda t: (ends[t], work.get(t, 0.0), t)
    done = [t for t in ends if ends[t] is not None]
    node = last if last is not None else max(done, key=key)
    path = [node]
    while True:
        before = [t for t in upstream.get(node, ()) if ends.get(t) is not None and t not in path]
        if not before:
            return path[::-1]
        node = max(before, key=key)
        path.append(node)


def net_core_seconds(busy: float, wall: float, idle_cores: float) -> float:
    """The machine's busy core-seconds over ``wall`` seconds, less what the idle stack burns in that time."""
    return busy - idle_cores * wall


def median_index(values: list[float]) -> int:
    """The median's index (the lower of an even count)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def breakdown(client, run: dict, structure: dict[str, list[str]]) -> dict:
    """One finished run's per-task phases, its critical path and its wall."""
    run_id, run_start = run["dag_run_id"], stamp(run["start_date"])
    tis = {ti["task_id"]: ti for ti in client.task_instances(DAG_ID, run_id)}
    ends = {t: stamp(ti.get("end_date")) for t, ti in tis.items()}
    rows = {}
    for task_id, ti in tis.items():
        tries, logs = [ti], {}
        if (ti.get("try_number") or 0) > 1:
            try:
                history = client._call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
                tries = list({t["try_number"]: t for t in [*history["task_instances"], ti]}.values())
            except Exception:  # an older API: the last try only
                pass
        for number in range(1, (ti.get("try_number") or 0) + 1):
            try:
                logs[number] = client.task_log(DAG_ID, run_id, task_id, number)
            except Exception:  # no log kept: counted as "no log"
                logs[number] = []
        up = [ends[u] for u in structure.get(task_id, ()) if ends.get(u) is not None]
        ready = ready_at(ti, max(up, default=None), run_start)
        rows[task_id] = {**split_phases(tries, logs, ready), "ready": ready, "ended": ends[task_id]}
    last = "record" if ends.get("record") is not None else None
    path = critical_path(structure, ends, last, {t: r["work"] for t, r in rows.items()})
    return {"run_id": run_id, "state": run["state"], "wall": stamp(run["end_date"]) - run_start, "tasks": rows,
            "start": run_start,
            "path": path, "path_work": sum(rows[t]["work"] for t in path),
            "processes": sum(r["processes"] for r in rows.values())}


def catalog_for(work: Path, repo: Path) -> Path:
    """The scenarios' catalog, dev made rolling with 2 replicas."""
    from tests import scenarios

    directory = scenarios.write_catalog(work / "catalog", repo, PORTS)
    path = directory / "sample-app.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["environments"]["dev"].update(replicas=2, strategy="rolling")
    path.write_text(yaml.safe_dump(entry))
    return directory


def release(client, ref: str) -> tuple[dict, float, float]:
    """One release of ``ref`` to dev: the finished run, the busy core-seconds and seconds it took."""
    busy, started = busy_core_seconds(), time.monotonic()
    run_id = client.trigger(DAG_ID, {"environment": "dev", "git_ref": ref, "reason": "bench-release"})["dag_run_id"]
    run = client.wait(DAG_ID, run_id, timeout=900, poll=0.5)
    return run, busy_core_seconds() - busy, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    from tests import scenarios
    from tests.stacks import bench_stack

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=3, help="measured releases (default 3)")
    parser.add_argument("--idle-s", type=float, default=20, help="seconds to sample the idle stack's CPU (default 20)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="deployflow-bench-release-"))
    repo = scenarios.make_repo(work / "repo", crash_after_s=10)
    results, idle = [], 0.0
    with bench_stack(work, catalog_for(work, repo), name=STACK, port=PORT, prometheus_port=29091,
                     exporter_port=29469) as (airflow, _docker):
        structure = upstreams(airflow._call("GET", f"/api/v2/dags/{DAG_ID}/tasks")["tasks"])
        run, _, seconds = release(airflow, "main")
        print(f"warm-up release of main -> dev: {run['state']} in {seconds:.1f} s", flush=True)
        time.sleep(3)  # the last task processes exit
        busy = busy_core_seconds()
        time.sleep(args.idle_s)
        idle = (busy_core_seconds() - busy) / args.idle_s
        print(f"idle stack: {idle:.2f} cores over {args.idle_s:.0f} s", flush=True)
        for n in range(args.releases):
            ref = f"bench-release-{n}"
            scenarios.branch(repo, ref)
            run, busy, seconds = release(airflow, ref)
            result = breakdown(airflow, run, structure)
            result.update(busy=busy, measured_s=seconds, net_core_s=net_core_seconds(busy, seconds, idle))
            results.append(result)
            print(f"release {n + 1}: {run['state']} in {result['wall']:.1f} s, {result['processes']} task processes, "
                  f"{result['net_core_s']:.1f} net core-s", flush=True)
    report(results, idle)
    if args.json:
        args.json.write_text(json.dumps({"idle_cores": idle, "releases": results}, indent=1, default=str))
    return 0


def report(results: list[dict], idle: float) -> None:
    walls = [r["wall"] for r in results]
    chosen = results[median_index(walls)]
    print(f"\nmedian release {chosen['run_id']} ({chosen['state']}, {chosen['wall']:.1f} s); seconds per task:")
    print(f"{'task':<18}" + "".join(f"{p:>14}" for p in PHASES) + "  note")
    order = sorted(chosen["tasks"], key=lambda t: chosen["tasks"][t]["ended"] or 0)
    for task_id in order:
        row = chosen["tasks"][task_id]
        parse = [ms for ms in row["parse_ms"] if ms is not None]
        note = row["note"] + (f" {row['processes']} processes" if row["processes"] > 1 else "")
        note += f" parse {'+'.join(str(ms) for ms in parse)} ms" if parse else ""
        print(f"{task_id:<18}" + "".join(f"{row[p]:>14.2f}" for p in PHASES) + f"  {note.strip()}")
    print(f"\nmedians across {len(results)} releases:")
    for task_id in order:
        rows = [r["tasks"][task_id] for r in results if task_id in r["tasks"]]
        print(f"{task_id:<18}" + "".join(f"{statistics.median(x[p] for x in rows):>14.2f}" for p in PHASES))
    sums = {p: statistics.median(sum(row[p] for row in r["tasks"].values()) for r in results) for p in PHASES}
    print(f"{'(sum of tasks)':<18}" + "".join(f"{sums[p]:>14.2f}" for p in PHASES))
    print("\ncritical path of the median release (airflow: its end less the previous one's, less its work):")
    previous = chosen["start"]
    for task_id in chosen["path"]:
        row = chosen["tasks"][task_id]
        print(f"  {task_id:<18} work {row['work']:6.2f} s  airflow {row['ended'] - previous - row['work']:6.2f} s "
              f"({row['ready'] - previous:4.2f} s of it until scheduled)  {row['note']}")
        previous = row["ended"]
    wall, path_work = chosen["wall"], chosen["path_work"]
    on_path, ratio = wall - path_work, wall / path_work
    print(f"  run end after the last: {chosen['start'] + wall - previous:.2f} s; release wall {wall:.1f} s = path "
          f"work {path_work:.1f} s + Airflow {on_path:.1f} s: {ratio:.2f}x the path's work (goal <= 1.5)")
    processes = statistics.median(r["processes"] for r in results)
    net = statistics.median(r["net_core_s"] for r in results)
    print(f"\nSUMMARY bench-release: median release wall {wall:.1f} s; critical-path work {path_work:.1f} s; "
          f"wall/path work {ratio:.2f}x (goal <= 1.5); Airflow on the path {on_path:.1f} s; {processes:.0f} task "
          f"processes per release; {net:.1f} net core-s per release (idle stack {idle:.2f} cores subtracted)")

if __name__ == "__main__":
    sys.exit(main())
