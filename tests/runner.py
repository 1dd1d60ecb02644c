"""``make test``: every test, in two pytest processes side by side.

The end-to-end tests (``tests/e2e``: one Airflow stack for the session, some fifty real releases, one after
another) take most of the time and, waiting on Airflow, leave about half of the machine idle. Beside them run
the rest: the Celery setup's tests (``tests/scale``: a stack of its own, on ports of its own) and the tests
that start no stack (unit, DAG integrity, ledger). Each process has its own pytest base directory and Airflow
home; the registry both push to is started once, first. The end-to-end output streams; the other process's
is printed when it ends, after a header. The exit code is the first non-zero one of the two; after a failure
both directories (the stacks' homes and task logs) stay where the last line says.

    python scripts/run_tests.py [pytest arguments for both, e.g. -x]   (its entry point)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from deployflow.stack.containers import registry_up

ROOT = Path(__file__).resolve().parents[1]
MAIN = ["tests/e2e"]
DURATIONS = ["--durations=20"]  # each process ends with its slowest tests: where make test's time goes
BESIDE = ["tests/scale", "tests/unit", "tests/dags", "tests/db", "tests/test_lint.py", "tests/test_architecture.py",
          "tests/test_docs.py"]


def pytest(paths: list[str], args: list[str], base: Path, airflow_home: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home)}
    command = [sys.executable, "-m", "pytest", *paths, f"--basetemp={base}", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, **popen)


def main(args: list[str]) -> int:
    paths = [ROOT / p for p in (*MAIN, *BESIDE)]
    missing = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests").rglob("test_*.py")
                     if "node_modules" not in f.parts and not any(f == p or p in f.parents for p in paths))
    if missing:  # a new test file must be run by one of the two
        print(f"[tests] {', '.join(missing)} run in neither process: add them to MAIN or BESIDE in {__file__}")
        return 2
    registry_up(docker.from_env())  # both processes push to it: started here, not by both at once
    top = Path(tempfile.mkdtemp(prefix="deployflow-tests-"))
    log = top / "beside.log"
    started = time.monotonic()
    with log.open("wb") as out:
        beside = pytest(BESIDE, [*DURATIONS, *args], top / "beside", ROOT / ".airflow-test-beside", stdout=out, stderr=subprocess.STDOUT)
        try:
            main_rc = pytest(MAIN, [*DURATIONS, *args], top / "e2e", ROOT / ".airflow-test").wait()
        except BaseException:  # interrupted: the other process stops too (its own teardown runs on SIGINT)
            beside.send_signal(signal.SIGINT)
            beside.wait()
            raise
        if beside.poll() is None:
            print(f"[tests] end-to-end tests done in {time.monotonic() - started:.0f} s; waiting for {' '.join(BESIDE)}",
                  flush=True)
        beside_rc = beside.wait()
    print(f"\n[tests] ===== {' '.join(BESIDE)} (run beside the end-to-end tests) =====", flush=True)
    sys.stdout.buffer.write(log.read_bytes())
    print(f"[tests] end-to-end: exit {main_rc}; {' '.join(BESIDE)}: exit {beside_rc}; "
          f"{time.monotonic() - started:.0f} s in all", flush=True)
    if main_rc or beside_rc:
        print(f"[tests] the tests' directories (Airflow homes and logs) stay in {top}")
    else:
        shutil.rmtree(top, ignore_errors=True)
    return main_rc or beside_rc
