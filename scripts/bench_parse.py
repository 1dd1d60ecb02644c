"""``make bench-parse``: what the dag-processor pays to parse a catalog of 500 and 2,000 generated services,
before and after the catalog bundle, measured in the same run (the measurement: tests/parse_figures.py).

    python scripts/bench_parse.py [--counts 500 2000] [--keep DIR] [--layouts "one file" "per service"] [--old-timeouts raised|defaults]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from tests.parse_figures import HEADER, parse_figures, row  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--keep", type=Path, help="keep the homes and dag-processor logs under this directory")
    parser.add_argument("--layouts", nargs="+", choices=["one file", "per service"], default=["one file", "per service"])
    parser.add_argument("--old-timeouts", choices=["raised", "defaults"], default="raised",
                        help="the one file's timeouts: raised so that it finishes (default), or Airflow's")
    args = parser.parse_args(argv)
    print(HEADER, flush=True)
    figures = parse_figures(tuple(args.counts), keep=args.keep, layouts=tuple(args.layouts),
                            raise_old_timeouts=args.old_timeouts == "raised", report=lambda run: print(row(run), flush=True))
    for runs in figures.values():
        for layout in args.layouts:
            run = runs[layout]
            if run["dags"] + run["import_errors"] != run["services"] or run["exit_code"] != 0:
                print(f"WARNING: {layout} at {run['services']}: {run['dags']} DAGs and {run['import_errors']} import errors "
                      f"for {run['services']} services, exit code {run['exit_code']} (see {run['log']})")
    for n, runs in figures.items():
        if "ratios" not in runs:
            continue
        r = runs["ratios"]
        print(f"{n} services, per service / one file: wall x{r['wall_s']:.2f}, cpu x{r['cpu_s']:.2f}, "
              f"slowest file x{r['slowest_file_s']:.3f}, peak rss x{r['peak_rss_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
