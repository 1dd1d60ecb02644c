"""``make bench-exporter``: what one scrape of the release exporter costs, on SQLite ledgers of 1,000 to
100,000 releases (10 services, 3 environments, a tenth of them rolled back, each to its own version).

Prints, per size, the scrape's wall and CPU time (median and worst of 20, after one to warm the page
cache), the bytes and samples of /metrics. SQLite runs in the exporter's process, so its CPU time is the
database's work too; the wall time also counts whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from deployflow.ledger import Ledger, default_url  # noqa: E402
from deployflow.ledger.exporter import LedgerCollector, reader_engine  # noqa: E402
from deployflow.ledger.schema import releases  # noqa: E402


def ledger_of(directory: Path, size: int, rng: random.Random) -> str:
    url = default_url(directory)
    ledger = Ledger(url)
    ledger.entries()  # the schema
    rows = []
    for n in range(size):
        roll = rng.random()
        outcome = ("promoted" if roll < 0.8 else "rolled_back" if roll < 0.9
                   else "failed_before_deploy" if roll < 0.97 else "refused")
        environment, strategy = (("dev", "rolling"), ("staging", "canary"), ("prod", "blue-green"))[n % 3]
        rows.append({
            "service": f"svc{n % 10}", "environment": environment, "strategy": strategy, "version": f"{rng.getrandbits(48):012x}",
            "run_id": f"run-{n}", "requested_by": "ci", "reason": "", "outcome": outcome, "config": "c0ffee00c0de",
            "finished_at": f"2026-{1 + n * 12 // size:02d}-01T{n % 24:02d}:{n % 60:02d}:00+00:00",
            "seconds": rng.uniform(20, 4000), "rollback_seconds": rng.uniform(1, 100) if outcome == "rolled_back" else None,
            "analysis_score": rng.uniform(50, 100) if strategy == "canary" else None,
        })
    with ledger.engine.begin() as conn:
        conn.execute(releases.insert(), rows)
    ledger.dispose()
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args(argv)
    rng = random.Random(13)
    print(f"{'releases':>9} {'wall ms (median/max)':>21} {'cpu ms (median/max)':>20} {'bytes':>7} {'samples':>8}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="deployflow-bench-exporter-") as directory:
            registry = CollectorRegistry()
            registry.register(LedgerCollector(reader_engine(ledger_of(Path(directory), size, rng))))
            generate_latest(registry)
            wall, cpu = [], []
            for _ in range(20):
                started, started_cpu = time.perf_counter(), time.process_time()
                text = generate_latest(registry).decode()
                wall.append(1000 * (time.perf_counter() - started))
                cpu.append(1000 * (time.process_time() - started_cpu))
            wall.sort()
            cpu.sort()
            samples = sum(1 for line in text.splitlines() if not line.startswith("#"))
            print(f"{size:>9} {wall[10]:>12.1f} / {wall[-1]:>6.1f} {cpu[10]:>11.1f} / {cpu[-1]:>6.1f} {len(text):>7} {samples:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
