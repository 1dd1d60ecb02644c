"""Fault benchmark (make bench-faults): six faults, each released through the real pipeline under load.

Starts its own Airflow (127.0.0.1:28095, stack "faults", Prometheus on 29095) and releases the sample
service through the REST API, as CI would, with RATE requests/s through the environment's front port
from before the trigger until the run has ended. Each fault starts from a good live version:

1. canary dies mid-analysis (staging: a canary analysed at 20 % against a fresh baseline, with the
   DAG's load task): a good canary whose container is killed (docker kill) once the analysis has judged
   its first interval. Killed rather than FAULT_CRASH_AFTER_S: how long prepare, health and shift take
   under Airflow varies by seconds, and a kill lands inside the analysis every time.
2. a few percent of requests slow (staging, slow-tail: 5 % of requests 500 ms slower).
3. an error burst after health passed (staging, errors-after-start: 30 % of requests answer 500 from
   ERRORS_AFTER_S after start, once the canary has traffic, while its analysis runs).
4. a new version that dies after promotion (prod, blue-green with a 30 s post-promotion watch,
   dies-after-promotion: each instance exits after DIES_AFTER answers to /, a few seconds after the
   switch gives it all traffic).
5. an engine restart during shift (staging, a good version; dockerd restarted once the shift's deployer
   container runs): the release converges on its retry, promoted or rolled back.
6. an engine restart while idle: until every environment serves its live version again.

Per fault: the outcome (the release's ledger entry), the version served afterwards, the failed requests
and the seconds from the first to the last, and fault -> good: from the fault (a new-version container's
death in docker events, the first slow or failed answer, the restart's start) to the last answer not from
the good version (the old one; after a restart during shift the old or the new, both good). The goal: the
good version serving and no failed request outside an engine restart (from its start until the
environment has answered well for STEADY_S). Prints a table and a one-line summary; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
import requests
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from deployflow.analysis.loadgen import LoadGenerator, LoadReport, Sample  # noqa: E402
from deployflow.client import AirflowClient, ApiError, failure_reason  # noqa: E402
from deployflow.ledger import Ledger, default_url  # noqa: E402
from deployflow.stack.containers import containers_down, ensure_images, prometheus_up, registry_up  # noqa: E402
from deployflow.stack.local import airflow_down, airflow_up  # noqa: E402
from deployflow.stack.secrets import admin_password  # noqa: E402
from tests import scenarios  # noqa: E402
from tests.engines import restart_engine  # noqa: E402
from tests.stacks import wait_for_dag  # noqa: E402

PORT = 28095
STACK = "faults"
PORTS = {"dev": 28301, "staging": 28302, "prod": 28303}
PROMETHEUS_PORT = 29095
EXPORTER_PORT = 29470  # its release exporter
DAG_ID = "release_sample-app"
RATE = 100  # requests/s of ours; staging's analysis adds the DAG's own 30/s (a 5 % tail needs the traffic)
SLOW_S = 0.3  # an answer this late took the slow path (500 ms more), not noise
STEADY_S = 1.0  # answering well this long after an engine restart: the restart is over
ERRORS_AFTER_S = 12  # the canary takes traffic ~6 s after start; its analysis runs from ~7 to ~24 s
DIES_AFTER = 6 * RATE // 2  # blue-green's 2 instances share the load: each dies ~6 s after the switch
DEPLOY_TASKS = ("prepare", "health", "shift", "analysis", "promote", "rollback")
WAITING = (None, "scheduled", "queued", "running", "up_for_retry")

Answers = list[tuple[Sample, float]]  # each request's sample, and when its answer came


def stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def short(version: str | None) -> str:
    return (version or "")[:12]


class TimedLoad(LoadGenerator):
    """The load generator, keeping also when each answer came (a slow answer marks a slow fault)."""

    def __init__(self, environment: str) -> None:
        super().__init__(f"http://127.0.0.1:{PORTS[environment]}/", rate=RATE, threads=8)
        self.answers: Answers = []

    def _one(self, session: requests.Session) -> Sample:
        sample = super()._one(session)
        self.answers.append((sample, time.time()))
        return sample

    def stop(self) -> LoadReport:
        report = super().stop()
        self.answers.sort(key=lambda answer: answer[0].at)
        return report


class ContainerEvents:
    """Starts and deaths of an environment's app containers (docker events) while it runs."""

    def __init__(self, client: docker.DockerClient, environment: str) -> None:
        labels = [f"io.deployflow.stack={STACK}", "io.deployflow.role=app", f"io.deployflow.environment={environment}"]
        self.stream = client.events(decode=True, filters={"type": "container", "event": ["start", "die"], "label": labels})
        self.seen: list[tuple[float, str, str, str]] = []  # (time, start | die, version, exit code)
        threading.Thread(target=self._read, daemon=True).start()

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001 - a stream an engine restart broke is closed already
            pass

    def _read(self) -> None:
        try:
            for event in self.stream:
                labels = event["Actor"]["Attributes"]
                version = short(labels.get("io.deployflow.version"))
                self.seen.append((event["timeNano"] / 1e9, event["Action"], version, labels.get("exitCode", "")))
        except Exception:  # noqa: BLE001 - closed, or the engine went away
            pass

    def first(self, action: str, version: str) -> float | None:
        """When a container of ``version`` first started, or first died of itself or a kill (not a clean stop)."""
        return next((at for at, what, v, code in self.seen if what == action and v == version and code != "0"), None)


@dataclass
class Run:
    environment: str
    run_id: str
    state: str
    tasks: dict[str, dict]
    answers: Answers
    events: ContainerEvents
    injected: dict = field(default_factory=dict)


@dataclass
class Row:
    fault: str
    outcome: str
    served: str
    failed: int
    span_s: float | None
    to_good_s: float | None
    notes: str
    met: bool


# ---- figures from the answers: pure functions ------------------------------------------------


def is_bad(sample: Sample, good: set[str]) -> bool:
    return sample.failed or short(sample.version) not in good


def first_slow_or_failed(answers: Answers, new: str) -> float | None:
    """When the new version first answered slow, or any request first failed."""
    return next((s.at for s, done in answers if s.failed or (short(s.version) == new and done - s.at >= SLOW_S)), None)


def fault_to_good(answers: Answers, good: set[str], fault_at: float | None) -> float | None:
    """Seconds from ``fault_at`` to the last answer not from a good version (inf: the load ended on one)."""
    if fault_at is None or not answers:
        return None
    if is_bad(max(answers, key=lambda answer: answer[1])[0], good):
        return float("inf")
    return max([0.0] + [done - fault_at for sample, done in answers if done >= fault_at and is_bad(sample, good)])


def outside_restart(answers: Answers, restart_at: float | None) -> int:
    """The failed requests outside the engine restart itself, which lasts from its start until the environment
    has answered well for STEADY_S (a proxy back before its instances fails a few more)."""
    failed = sum(sample.failed for sample, _ in answers)
    if restart_at is None:
        return failed
    inside, good_since = 0, None
    for sample, _ in answers:
        if sample.at < restart_at:
            continue
        if sample.failed:
            inside, good_since = inside + 1, None
        elif inside:
            good_since = good_since or sample.at
            if sample.at - good_since >= STEADY_S:
                break
    return failed - inside


def span(failures: list[Sample]) -> float | None:
    return (failures[-1].at - failures[0].at) if failures else None


class Bench:
    def __init__(self, airflow: AirflowClient, client: docker.DockerClient, repo: Path, state: Path) -> None:
        self.airflow = airflow
        self.docker = client
        self.repo = repo
        self.ledger = Ledger(default_url(state))
        self.good = {short(scenarios.git(repo, "rev-parse", "main"))}  # versions built from good code
        self.names = (f"good-{n}" for n in itertools.count(1))

    # ---- releasing ----------------------------------------------------------------------------

    def fresh_good(self) -> tuple[str, str]:
        ref = next(self.names)
        self.good.add(version := scenarios.branch(self.repo, ref))
        return ref, version

    def serving(self, environment: str) -> str | None:
        """The version that answers / (a few tries: a faulty version answers 500 to some)."""
        for _ in range(5):
            try:
                return short(requests.get(f"http://127.0.0.1:{PORTS[environment]}/", timeout=5).json()["version"])
            except (requests.RequestException, ValueError, KeyError):
                time.sleep(0.2)
        return None

    def good_live(self, environment: str) -> str:
        """The good version live in ``environment``: the one there, else a fresh one released."""
        if (live := self.serving(environment)) in self.good:
            return live
        ref, _ = self.fresh_good()
        self.release(environment, ref)
        if (live := self.serving(environment)) not in self.good:
            raise RuntimeError(f"no good version live in {environment} after releasing {ref} (serving {live})")
        print(f"good version live in {environment}: {live}", flush=True)
        return live

    def release(self, environment: str, ref: str, inject: Callable[[str], dict] | None = None) -> Run:
        """One release under load; ``inject(run_id)`` brings the fault while it runs."""
        with contextlib.closing(ContainerEvents(self.docker, environment)) as events, TimedLoad(environment) as load:
            time.sleep(1)  # the load runs steady before the trigger
            conf = {"environment": environment, "git_ref": ref, "reason": "bench-faults"}
            run_id = self.airflow.trigger(DAG_ID, conf)["dag_run_id"]
            injected = inject(run_id) if inject else {}
            state = self.airflow.wait(DAG_ID, run_id, timeout=1500)["state"]
        tasks = {ti["task_id"]: ti for ti in self.airflow.task_instances(DAG_ID, run_id)}
        return Run(environment, run_id, state, tasks, load.answers, events, injected)

    def task_state(self, run_id: str, task_id: str) -> str | None:
        tis = self.airflow.task_instances(DAG_ID, run_id)
        return next((ti["state"] for ti in tis if ti["task_id"] == task_id), None)

    # ---- reading a run ------------------------------------------------------------------------

    def row(self, fault: str, run: Run, *, old: str, new: str, good: set[str], fault_at: float | None,
            restart_at: float | None = None, notes: str = "") -> Row:
        served = self.serving(run.environment)
        label = "old" if served == old else "new" if served == new else "other"
        failures = [sample for sample, _ in run.answers if sample.failed]
        outside = outside_restart(run.answers, restart_at)
        extra = [notes, self.why(run), f"{outside} failed outside the restart" if restart_at else ""]
        entry = next((e for e in self.ledger.entries() if e.run_id == run.run_id), None)
        return Row(fault, entry.outcome.value if entry else f"run {run.state}",
                   f"{label} {served}" if served else "none", len(failures), span(failures),
                   fault_to_good(run.answers, good, fault_at), "; ".join(n for n in extra if n),
                   met=served in good and not outside)

    def why(self, run: Run) -> str:
        """The first deploy task that failed, and its reason; the tasks that were retried."""
        notes = [f"{t} tried {ti['try_number']}x" for t, ti in run.tasks.items() if t in DEPLOY_TASKS and ti["try_number"] > 1]
        failed = next((t for t in DEPLOY_TASKS if run.tasks.get(t, {}).get("state") == "failed"), None)
        if failed:
            reason = failure_reason(self.airflow.task_log(DAG_ID, run.run_id, failed, run.tasks[failed]["try_number"]))
            notes.insert(0, f"{failed}: {(reason or '?').split(': ', 1)[-1][:160]}")
        return "; ".join(notes)

    def analysis_timing(self, run: Run, new: str) -> str:
        """When the analysis ran, in seconds after the canary started."""
        started = run.events.first("start", new)
        analysis = run.tasks.get("analysis", {})
        begin, end = stamp(analysis.get("start_date")), stamp(analysis.get("end_date"))
        if started is None or begin is None or end is None:
            return ""
        return f"analysis {begin - started:.0f}-{end - started:.0f} s after the canary started"

    # ---- the faults ---------------------------------------------------------------------------

    def canary_dies(self) -> Row:
        old = self.good_live("staging")
        ref, new = self.fresh_good()

        def kill_after_first_interval(run_id: str) -> dict:
            while self.task_state(run_id, "analysis") in WAITING:
                try:
                    if self.airflow.xcom(DAG_ID, run_id, "analysis", key="verdict").get("interval", 0) >= 1:
                        for container in self.containers("staging", new):  # the canary (the baseline runs the old)
                            container.kill()
                        return {}
                except ApiError:
                    pass  # no interval judged yet
                time.sleep(0.5)
            return {"note": "the analysis ended before the kill"}

        run = self.release("staging", ref, kill_after_first_interval)
        killed, started = run.events.first("die", new), run.events.first("start", new)
        notes = run.injected.get("note") or self.analysis_timing(run, new)
        if killed and started:
            notes += f", killed at {killed - started:.0f} s"
        return self.row("canary dies mid-analysis", run, old=old, new=new, good={old}, fault_at=killed, notes=notes)

    def regressed_canary(self, fault: str, ref: str, note: str) -> Row:
        old = self.good_live("staging")
        new = short(scenarios.git(self.repo, "rev-parse", ref))
        run = self.release("staging", ref)
        slow = sum(short(s.version) == new and done - s.at >= SLOW_S for s, done in run.answers)
        return self.row(fault, run, old=old, new=new, good={old}, fault_at=first_slow_or_failed(run.answers, new),
                        notes=f"{note}; {slow} slow answers from the canary; " + self.analysis_timing(run, new))

    def dies_after_promotion(self) -> Row:
        old = self.good_live("prod")
        new = short(scenarios.git(self.repo, "rev-parse", "dies-after-promotion"))
        run = self.release("prod", "dies-after-promotion")
        died, switched = run.events.first("die", new), stamp(run.tasks.get("shift", {}).get("end_date"))
        notes = f"first death {died - switched:+.1f} s after shift ended" if died and switched else "it never died"
        return self.row("dies after promotion", run, old=old, new=new, good={old}, fault_at=died, notes=notes)

    def restart_during_shift(self) -> Row:
        old = self.good_live("staging")
        ref, new = self.fresh_good()
        shifting = {"label": ["io.deployflow.role=deployer", "io.deployflow.step=shift"]}

        def restart_once_shift_runs(run_id: str) -> dict:
            for polls in itertools.count():
                if self.docker.containers.list(filters=shifting):
                    break
                if polls % 10 == 0 and self.task_state(run_id, "shift") not in WAITING:
                    return {"note": "shift ended before the restart"}
                time.sleep(0.1)
            restart_at = time.time()
            return {"restart_at": restart_at, "engine_s": restart_engine(self.docker)}

        run = self.release("staging", ref, restart_once_shift_runs)
        restart_at = run.injected.get("restart_at")
        notes = run.injected.get("note") or f"engine back in {run.injected['engine_s']:.1f} s"
        return self.row("engine restart in shift", run, old=old, new=new, good={old, new}, fault_at=restart_at,
                        restart_at=restart_at, notes=notes)

    def restart_idle(self) -> Row:
        live = {environment: self.good_live(environment) for environment in PORTS}
        loads = {environment: TimedLoad(environment) for environment in PORTS}
        for load in loads.values():
            load.start()
        time.sleep(3)
        restart_at = time.time()
        engine_s = restart_engine(self.docker)
        deadline = time.monotonic() + 180
        while {e: self.serving(e) for e in PORTS} != live and time.monotonic() < deadline:
            time.sleep(0.5)
        back_s = time.time() - restart_at
        time.sleep(5)  # and stays so
        for load in loads.values():
            load.stop()
        served = {e: self.serving(e) for e in PORTS}
        failures = sorted((s for load in loads.values() for s, _ in load.answers if s.failed), key=lambda s: s.at)
        outside = sum(outside_restart(load.answers, restart_at) for load in loads.values())
        notes = f"engine back in {engine_s:.1f} s; " + ", ".join(f"{e} {served[e]}" for e in PORTS)
        return Row("engine restart idle", f"recovered in {back_s:.1f} s" if served == live else "not recovered",
                   f"old in {sum(served[e] == live[e] for e in PORTS)}/{len(PORTS)}", len(failures), span(failures),
                   max(fault_to_good(load.answers, {live[e]}, restart_at) for e, load in loads.items()),
                   f"{notes}; {outside} failed outside the restart", met=served == live and not outside)

    def containers(self, environment: str, version: str) -> list:
        labels = [f"io.deployflow.stack={STACK}", "io.deployflow.role=app", f"io.deployflow.environment={environment}",
                  f"io.deployflow.version={version}"]
        return self.docker.containers.list(filters={"label": labels})


FAULTS = {
    "canary-dies": Bench.canary_dies,
    "slow-tail": lambda bench: bench.regressed_canary("a few percent slow", "slow-tail", "5 % of requests 500 ms slower"),
    "errors-after-health": lambda bench: bench.regressed_canary(
        "errors after health", "errors-after-start", f"30 % errors from {ERRORS_AFTER_S} s after start"),
    "dies-after-promotion": Bench.dies_after_promotion,
    "restart-in-shift": Bench.restart_during_shift,
    "restart-idle": Bench.restart_idle,
}


def bench_catalog(directory: Path, repo: Path) -> Path:
    """The scenarios' catalog on this bench's ports; prod watches a new version for 30 s after promotion."""
    path = scenarios.write_catalog(directory, repo, PORTS) / "sample-app.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["environments"]["prod"]["post_promotion"] = {"enabled": True, "duration_s": 30, "interval_s": 5}
    path.write_text(yaml.safe_dump(entry))
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(FAULTS), help="run this fault only (repeatable)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="deployflow-faults-"))
    repo = scenarios.make_repo(work / "repo", crash_after_s=10, errors_after_s=ERRORS_AFTER_S, dies_after_requests=DIES_AFTER)
    catalog = bench_catalog(work / "catalog", repo)
    client = docker.from_env()
    ensure_images(client)
    registry_up(client)
    containers_down(client, STACK)
    home, state = work / "airflow", work / "state"
    prometheus = prometheus_up(client, STACK, state, PROMETHEUS_PORT, exporter_port=EXPORTER_PORT)
    airflow_up(home, PORT, {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_WORKSPACE": str(work / "ws"),
                            "DEPLOYFLOW_STACK": STACK, "DEPLOYFLOW_STATE": str(state),
                            "DEPLOYFLOW_PROMETHEUS_URL": prometheus}, exporter_port=EXPORTER_PORT)
    rows: list[Row] = []
    try:
        airflow = AirflowClient(f"http://127.0.0.1:{PORT}")
        airflow.login("admin", admin_password(home))
        wait_for_dag(airflow, DAG_ID)
        bench = Bench(airflow, client, repo, state)
        for name in args.only or FAULTS:
            try:
                rows.append(FAULTS[name](bench))
            except Exception as exc:  # noqa: BLE001 - one fault's trouble is its row, the others still run
                rows.append(Row(name, "bench error", "?", 0, None, None, f"{type(exc).__name__}: {exc}", met=False))
            print(line(rows[-1]), flush=True)
    finally:
        airflow_down(home)
        containers_down(client, STACK)
    report(rows)
    return 0


COLUMNS = ("fault", "outcome", "version served", "failed", "failed span s", "fault -> good s", "notes")
WIDTHS = (24, 20, 18, 6, 13, 15, 0)


def seconds(value: float | None) -> str:
    return "-" if value is None else "never" if value == float("inf") else f"{value:.1f}"


def line(row: Row) -> str:
    cells = (row.fault, row.outcome, row.served, str(row.failed), seconds(row.span_s), seconds(row.to_good_s), row.notes)
    return " | ".join(f"{c:<{w}}" if w else c for c, w in zip(cells, WIDTHS))


def report(rows: list[Row]) -> None:
    print("\n" + " | ".join(f"{c:<{w}}" if w else c for c, w in zip(COLUMNS, WIDTHS)))
    for row in rows:
        print(line(row))
    print(f"\nbench-faults: {len(rows)} faults, {sum(r.met for r in rows)} ended on the good version "
          "with 0 failed requests outside an engine restart")


if __name__ == "__main__":
    sys.exit(main())
