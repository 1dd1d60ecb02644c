"""``make test``: every test, in three pytest processes side by side.

The end-to-end tests (``tests/e2e``: some fifty real releases, each a few minutes of waiting on Airflow, on
health checks and on analysis windows) take most of the time and leave most of the machine idle. They run as
two processes, each on an Airflow stack of its own (``DEPLOYFLOW_E2E_SHARD``: tests/e2e/harness.py derives the
stack's name, its ports and its second engine from it): shard 1 runs the modules of ``E2E_SHARDS[1]``, shard 0
every other module of tests/e2e (a new module lands there). The split is by the modules' measured times, so
that both take about as long. Beside them run the rest: the Celery setup's tests (``tests/scale``: a stack of
its own, on ports of its own) and the tests that start no stack (unit, DAG integrity, ledger). Each process has
its own pytest base directory and Airflow home; the registry all push to is started once, first. Shard 0's
output streams; the others' are printed when they end, after a header. The exit code is the first non-zero
one; after a failure the directories (the stacks' homes and task logs) stay where the last line says.

    python scripts/run_tests.py [pytest arguments for all of them, e.g. -x]   (its entry point)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker

from deployflow.stack.containers import registry_up

ROOT = Path(__file__).resolve().parents[1]
MAIN = ["tests/e2e"]
# The e2e modules of shard 1; shard 0 runs the rest of MAIN (analysis, configuration, deferred_waits, deploy,
# docker_host, steering). Split by measured times: both shards at once with stress-ng --cpu 1 (2 cores, nothing
# else), shard 0 took 36 min and shard 1 43.5 min with steering, which took about 4 of them; moved to shard 0.
E2E_SHARDS = [[], [f"tests/e2e/test_{name}.py" for name in (
    "environment_lock", "fencing", "governance", "governance_browser", "grants", "kubernetes_deployer_image",
    "locked_registry", "recover", "release_build_and_test", "release_metrics", "releases_browser",
    "releases_handles_browser", "releases_inflight_browser", "report", "rerelease", "rollback",
    "stack_secrets")]]
# Set for e2e shard 0: a file the runner writes once every other test process has ended. The engine restart test,
# shard 0's last, waits for it (tests/e2e/test_restart.py): it restarts the engine they all share.
ALONE_AFTER = "DEPLOYFLOW_TESTS_ALONE_AFTER"
DURATIONS = ["--durations=20"]  # each process ends with its slowest tests: where make test's time goes
BESIDE = ["tests/scale", "tests/unit", "tests/dags", "tests/db", "tests/test_lint.py", "tests/test_architecture.py",
          "tests/test_docs.py"]


def pytest(paths: list[str], args: list[str], base: Path, airflow_home: Path, extra_env: dict[str, str] | None = None,
           **popen) -> subprocess.Popen:
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), **(extra_env or {})}
    command = [sys.executable, "-m", "pytest", *paths, f"--basetemp={base}", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, **popen)


def e2e_shard(shard: int) -> tuple[list[str], dict[str, str]]:
    """The paths (and ``--ignore`` options) of the e2e shard ``shard``, and its environment."""
    if shard:
        return E2E_SHARDS[shard], {"DEPLOYFLOW_E2E_SHARD": str(shard)}
    others = [f"--ignore={path}" for rest in E2E_SHARDS[1:] for path in rest]
    return [*MAIN, *others], {"DEPLOYFLOW_E2E_SHARD": "0"}


def tell_when_others_end(side: dict[str, tuple[subprocess.Popen, Path]], alone: Path) -> None:
    """Write ``alone`` once every process beside end-to-end shard 0 has ended: shard 0 runs the engine restart test
    last, and it waits for this file."""
    for process, _ in side.values():
        process.wait()
    alone.write_text("the other test processes have ended\n")


def main(args: list[str]) -> int:
    paths = [ROOT / p for p in (*MAIN, *BESIDE)]
    missing = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests").rglob("test_*.py")
                     if "node_modules" not in f.parts and not any(f == p or p in f.parents for p in paths))
    if missing:  # a new test file must be run by one of the processes
        print(f"[tests] {', '.join(missing)} run in neither process: add them to MAIN or BESIDE in {__file__}")
        return 2
    registry_up(docker.from_env())  # every process pushes to it: started here, not by all at once
    top = Path(tempfile.mkdtemp(prefix="deployflow-tests-"))
    started = time.monotonic()
    alone = {ALONE_AFTER: str(top / "alone")}
    side: dict[str, tuple[subprocess.Popen, Path]] = {}  # the processes whose output is printed when they end

    def beside_process(name: str, paths: list[str], home: Path, extra_env: dict[str, str] | None = None) -> None:
        log = top / f"{name}.log"
        with log.open("wb") as out:
            side[name] = (pytest(paths, [*DURATIONS, *args], top / name, home, extra_env, stdout=out,
                                 stderr=subprocess.STDOUT), log)

    beside_process("beside", BESIDE, ROOT / ".airflow-test-beside")
    for shard in range(1, len(E2E_SHARDS)):
        paths, env = e2e_shard(shard)
        beside_process(f"e2e-{shard}", paths, ROOT / f".airflow-test-{shard}", env)
    paths, env = e2e_shard(0)
    threading.Thread(target=tell_when_others_end, args=(side, top / "alone"), daemon=True).start()
    try:
        main_rc = pytest(paths, [*DURATIONS, *args], top / "e2e", ROOT / ".airflow-test", {**env, **alone}).wait()
    except BaseException:  # interrupted: the others stop too (their own teardown runs on SIGINT)
        for process, _ in side.values():
            process.send_signal(signal.SIGINT)
        for process, _ in side.values():
            process.wait()
        raise
    codes = {"end-to-end shard 0": main_rc}
    for name, (process, log) in side.items():
        if process.poll() is None:
            print(f"[tests] {time.monotonic() - started:.0f} s: waiting for {name}", flush=True)
        codes[name] = process.wait()
        print(f"\n[tests] ===== {name} (run beside end-to-end shard 0) =====", flush=True)
        sys.stdout.buffer.write(log.read_bytes())
        print(f"[tests] {name} done after {time.monotonic() - started:.0f} s", flush=True)
    print(f"[tests] {'; '.join(f'{name}: exit {rc}' for name, rc in codes.items())}; "
          f"{time.monotonic() - started:.0f} s in all", flush=True)
    failed = next((rc for rc in codes.values() if rc), 0)
    if failed:
        print(f"[tests] the tests' directories (Airflow homes and logs) stay in {top}")
    else:
        shutil.rmtree(top, ignore_errors=True)
    return failed
