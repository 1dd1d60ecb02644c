"""``make bench-view``: how long the Releases view takes to answer its grid with many services: 500 services x
3 environments (500 catalog files) and 100,000 ledger rows, on SQLite (and on PostgreSQL with ``--postgres URL``,
a scratch database whose deployflow tables this writes).

The app is the plugin's (``deployflow.airflow.releases_view.app.releases_app``), called through FastAPI's
TestClient, signed in by Airflow's simple auth manager with a real token (``tests/airflow_auth.py``): each
request pays the token's check, the catalog's reading (a stat per file; parsed only on the first request,
which is timed apart), the ledger's grid query, the locks, Airflow's answer for the runs that hold or wait
(a fake here: no Airflow database), the auth manager's two checks per service, and the JSON or the page.
Prints the first request, then the median and worst of ``--repeat`` more (wall time, and the median CPU time of
this process, which the machine's other work does not stretch), for the page, the JSON and the ledger's query
alone; then a SUMMARY line. No figure is asserted: it is measured, and printed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="deployflow-bench-view-airflow-")  # never the demo's home
os.environ.setdefault("AIRFLOW_CONFIG", str(ROOT / "airflow.cfg"))
os.environ.setdefault("DEPLOYFLOW_HOME", str(ROOT))

import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from deployflow.airflow.releases_view.app import releases_app  # noqa: E402
from deployflow.airflow.releases_view.board import Gate, RunStatus  # noqa: E402
from deployflow.airflow.releases_view.view import Readers  # noqa: E402
from deployflow.catalog.watching import WatchedCatalog  # noqa: E402
from deployflow.ledger import Ledger, default_url, engine_for  # noqa: E402
from deployflow.ledger.live import cells  # noqa: E402
from deployflow.ledger.locks import locks, queue  # noqa: E402
from deployflow.ledger.schema import releases  # noqa: E402
from deployflow.policies import ENVIRONMENTS  # noqa: E402
from tests.airflow_auth import signed_in_airflow  # noqa: E402
from tests.parse_figures import generate  # noqa: E402
from tests.unit.fakes import FakeAirflowState  # noqa: E402

STRATEGIES = {"dev": "rolling", "staging": "canary", "prod": "blue-green"}
LOCKED = 30  # environments with a release under way (every third waiting at its approval gate, every fifth with a queue)


def seed(url: str, services: int, rows: int, rng: random.Random) -> FakeAirflowState:
    """``rows`` releases spread over ``services`` x 3 environments and a year (80 % promoted), and :data:`LOCKED`
    locks; the fake Airflow's answer for the runs that hold or wait."""
    ledger = Ledger(url)
    ledger.entries(service="-")  # the schema
    with ledger.engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar_one():
            raise SystemExit(f"{url} has releases already: give a scratch database")
    batch = []
    for n in range(rows):
        service, environment = f"svc-{rng.randrange(services):04d}", ENVIRONMENTS[rng.randrange(3)]
        roll = rng.random()
        outcome = ("promoted" if roll < 0.8 else "rolled_back" if roll < 0.9 else "failed_before_deploy" if roll < 0.97
                   else "refused")
        version = f"{rng.getrandbits(48):012x}"
        day = n * 365 // rows
        batch.append({
            "service": service, "environment": environment, "strategy": STRATEGIES[environment], "version": version,
            "commit": version + "0" * 28, "digest": f"sha256:{rng.getrandbits(256):064x}", "config": "c0ffee00c0de",
            "run_id": f"run-{n}", "requested_by": rng.choice(("ci", "alice", "bob")), "reason": "benchmark",
            "outcome": outcome, "finished_at": f"2026-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}T{n % 24:02d}:{n % 60:02d}:00+00:00",
            "seconds": rng.uniform(20, 900), "failed_requests": rng.randrange(3),
        })
    runs = {}
    held, waiting = [], []
    for k in range(LOCKED):
        service, environment, dag_id = f"svc-{k * 7 % services:04d}", ENVIRONMENTS[k % 3], f"release_svc-{k * 7 % services:04d}"
        held.append({"service": service, "environment": environment, "run_id": f"holder-{k}", "dag_id": dag_id,
                     "taken_at": "2026-12-06T11:00:00+00:00"})
        runs[(dag_id, f"holder-{k}")] = RunStatus("running", (Gate("approve_deploy", "2026-12-06T11:05:00+00:00"),) if k % 3 == 0 else ())
        if k % 5 == 0:
            waiting.append({"service": service, "environment": environment, "run_id": f"waiter-{k}", "dag_id": dag_id,
                            "queued_at": "2026-12-06T11:10:00.000000+00:00"})
            runs[(dag_id, f"waiter-{k}")] = RunStatus("running")
    with ledger.engine.begin() as conn:
        for start in range(0, len(batch), 10_000):
            conn.execute(releases.insert(), batch[start:start + 10_000])
        conn.execute(locks.insert(), held)
        conn.execute(queue.insert(), waiting)
    ledger.dispose()
    return FakeAirflowState(runs=runs)


def timed(call, repeat: int) -> tuple[float, list[float], list[float]]:
    """The first call's wall milliseconds, then each of ``repeat`` more: wall, and this process's CPU (the app runs
    in it, the database too on SQLite: what the machine's other work cannot stretch)."""
    started = time.perf_counter()
    call()
    first = 1000 * (time.perf_counter() - started)
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.process_time() - started_cpu))
    return first, wall, cpu


def measure(label: str, url: str, catalog: Path, airflow: FakeAirflowState, headers: dict[str, str], repeat: int) -> float:
    """Print the figures of one ledger; return the page's median wall time."""
    engine = engine_for(url, reader=True)
    client = TestClient(releases_app(Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine, airflow=airflow)))
    sizes = {}

    def get(path: str):
        def call():
            answer = client.get(path, headers=headers)
            answer.raise_for_status()
            sizes[path] = len(answer.content)
        return call

    query = timed(lambda: cells(engine), repeat)
    page = timed(get("/"), repeat)  # first: the catalog's files parsed
    json = timed(get("/api/grid"), repeat)
    found = client.get("/api/grid", headers=headers).json()["services"]
    print(f"{label}: {len(found)} services x {len(ENVIRONMENTS)} environments, "
          f"{sum(1 for row in found for cell in row['cells'] if cell['live'])} cells with a live version")
    print(f"  {'':<26} {'first':>8} {'wall p50':>9} {'wall max':>9} {'cpu p50':>8} {'bytes':>9}")
    for name, (first, wall, cpu), size in (("ledger query (cells)", query, ""), ("grid page GET /", page, sizes["/"]),
                                           ("grid JSON GET /api/grid", json, sizes["/api/grid"])):
        print(f"  {name:<26} {first:>5.0f} ms {statistics.median(wall):>6.0f} ms {max(wall):>6.0f} ms "
              f"{statistics.median(cpu):>5.0f} ms {size:>9}")
    engine.dispose()
    return statistics.median(page[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed requests after the first (default 10)")
    parser.add_argument("--postgres", metavar="URL", help="also on this scratch PostgreSQL database")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deployflow-bench-view-") as work:
        work = Path(work)
        catalog = work / "catalog"
        started = time.perf_counter()
        generate(args.services, catalog)
        ledgers = {"SQLite": default_url(work)}
        if args.postgres:
            ledgers["PostgreSQL"] = args.postgres
        states = {name: seed(url, args.services, args.rows, random.Random(23)) for name, url in ledgers.items()}
        print(f"seeded {args.services} catalog files and {args.rows:,} releases per ledger in {time.perf_counter() - started:.0f} s")
        with signed_in_airflow(work) as tokens:
            headers = tokens.header("bench", "viewer")  # a reader: every service's two checks are asked
            medians = {name: measure(name, url, catalog, states[name], headers, args.repeat) for name, url in ledgers.items()}
    figures = ", ".join(f"{name} p50 {ms:.0f} ms" for name, ms in medians.items())
    print(f"SUMMARY releases view grid page, {args.services} services x {len(ENVIRONMENTS)} environments and "
          f"{args.rows:,} ledger rows: {figures} (the target: under 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
