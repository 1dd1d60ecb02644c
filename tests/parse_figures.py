"""The parse half of ``make bench-scale``: what the dag-processor pays to parse a catalog of 500 and
2,000 generated services, before and after the catalog bundle, measured in the same run.

For each count, the real ``airflow dag-processor --num-runs 1`` parses every DAG file once (a cold
cycle: a fresh SQLite home, so every DAG is written), with the project's airflow.cfg (one parsing
process), in two layouts:

- ``one file``: every service's DAG from one DAG file (``dag_factory.release_dags``), each task holding
  its own copy of the DAG's params: the layout before issue 14. Its timeouts are raised for the run
  so that it finishes and has a time to compare; whether it fits the defaults is said beside it.
- ``per service``: the catalog bundle, one DAG file per catalog file, params on the DAG only.

Printed per layout: the dag-processor's wall time for the cycle (start to exit), its CPU time with its
parse processes', the sum of the per-file parse times Airflow records (``dag.last_parse_duration``),
the slowest file's against ``dagbag_import_timeout`` (30 s) and ``dag_file_processor_timeout`` (50 s),
the DAGs and import errors in the database after the cycle, peak RSS (the largest single process,
and the process tree's sum sampled every 0.2 s; forked parse processes share pages with their parent,
so the sum over-counts), and milliseconds per service; then the ratios of one to the other.

``parse_figures(counts)`` returns the figures as a dict (``make bench-scale``), ``HEADER`` and ``row`` print them
(``make bench-parse``: scripts/bench_parse.py).
"""

from __future__ import annotations

import copy
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "include" / "services" / "sample-app.yaml"
IMPORT_TIMEOUT_S, PROCESSOR_TIMEOUT_S = 30, 50  # Airflow's defaults ([core] and [dag_processor]); airflow.cfg keeps them
FIRST_PORT = 30000  # three front ports per service from here: clear of the stack's own ports and 20000-20999
ONE_FILE = '''"""Every service's release DAG from one DAG file: the layout before the catalog bundle (airflow DAG)."""
from deployflow.airflow.dag_factory import release_dags

globals().update(release_dags(params_per_task=True))
'''


def generate(n: int, directory: Path) -> list[Path]:
    """Write ``n`` small valid services modelled on sample-app.yaml, with distinct names and front ports."""
    directory.mkdir(parents=True, exist_ok=True)
    sample = yaml.safe_load(SAMPLE.read_text())
    paths = []
    for i in range(n):
        doc = copy.deepcopy(sample)
        doc["name"] = name = f"svc-{i:04d}"
        doc["description"] = f"Release of generated service {i}"
        for k, env in enumerate(doc["environments"].values()):
            env["port"] = FIRST_PORT + 3 * i + k
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def _env(home: Path, catalog: Path, layout: str, dags: Path, raise_timeouts: bool = True) -> dict[str, str]:
    env = {
        **os.environ,
        "DEPLOYFLOW_HOME": str(ROOT), "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
        "PYTHONPATH": str(ROOT / "plugins"), "DEPLOYFLOW_CATALOG": str(catalog),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if layout == "one file":
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = (
            '[{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}]')
    if layout == "one file" and raise_timeouts:
        # raised for this run only, so that it finishes and has a time to compare (see the docstring)
        env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "0"
        env["AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT"] = "3600"
    return env


def _migrated_db(work: Path) -> Path:
    """One migrated SQLite database, copied for each run (a migration takes most of a minute)."""
    home = work / "template"
    home.mkdir()
    subprocess.run(["airflow", "db", "migrate"], env=_env(home, work, "per service", work), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return home / "airflow.db"


class _PeakRss:
    """Samples the RSS of a process and its descendants every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.root, self.tree, self.single = psutil.Process(pid), 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for proc in procs:
                try:
                    sizes.append(proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            self.tree, self.single = max(self.tree, sum(sizes)), max(self.single, max(sizes, default=0))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def parse_once(n: int, layout: str, catalog: Path, work: Path, template_db: Path, raise_timeouts: bool = True) -> dict:
    """One cold cycle of the real dag-processor over ``catalog`` in ``layout``; its figures."""
    home = work / f"{layout.replace(' ', '-')}-{n}{'' if raise_timeouts or layout != 'one file' else '-defaults'}"
    dags = home / "dags"
    dags.mkdir(parents=True)
    shutil.copy(template_db, home / "airflow.db")
    if layout == "one file":
        (dags / "release.py").write_text(ONE_FILE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # its CPU includes the parse processes it reaped
    started = time.perf_counter()
    with open(home / "dag-processor.log", "wb") as log:
        proc = subprocess.Popen(["airflow", "dag-processor", "--num-runs", "1"],
                                env=_env(home, catalog, layout, dags, raise_timeouts),
                                stdout=log, stderr=subprocess.STDOUT)
        peak = _PeakRss(proc.pid)
        proc.wait()
        peak.stop()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with sqlite3.connect(home / "airflow.db") as db:
        durations = [d for (d,) in db.execute("SELECT last_parse_duration FROM dag WHERE is_stale = 0")]
        per_file = {f: d for f, d in db.execute(
            "SELECT relative_fileloc, MAX(last_parse_duration) FROM dag WHERE is_stale = 0 GROUP BY relative_fileloc")}
        errors = db.execute("SELECT COUNT(*) FROM import_error").fetchone()[0]
    slowest = max(per_file.values(), default=0.0)
    return {
        "services": n, "layout": layout, "timeouts": "raised" if layout == "one file" and raise_timeouts else "defaults",
        "exit_code": proc.returncode, "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "parse_sum_s": sum(per_file.values()), "slowest_file_s": slowest, "files": len(per_file),
        "dags": len(durations), "import_errors": errors,
        "fits_import_timeout": slowest < IMPORT_TIMEOUT_S, "fits_processor_timeout": slowest < PROCESSOR_TIMEOUT_S,
        "peak_rss_mb": peak.single / 2**20, "peak_tree_rss_mb": peak.tree / 2**20,
        "ms_per_service": 1000 * wall / n, "cpu_ms_per_service": 1000 * (after.ru_utime - before.ru_utime
                                                                           + after.ru_stime - before.ru_stime) / n,
        "log": str(home / "dag-processor.log"),
    }


def parse_figures(counts: tuple[int, ...] = (500, 2000), keep: Path | None = None, *,
                  layouts: tuple[str, ...] = ("one file", "per service"), raise_old_timeouts: bool = True,
                  report=None) -> dict:
    """Each layout's figures per count, and per service / one file ratios: ``{count: {"one file": ...,
    "per service": ..., "ratios": ...}}``. ``keep``: a directory to keep the homes and logs in (default: a
    temporary one, removed). ``raise_old_timeouts`` False runs the one file with Airflow's defaults: what
    a user gets (past 50 s its parse is killed). ``report``: called with each run's figures as it ends."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deployflow-bench-parse-", dir=keep))
    try:
        template_db = _migrated_db(work)
        figures: dict = {}
        for n in counts:
            catalog = work / f"catalog-{n}"
            generate(n, catalog)
            runs: dict = {}
            for layout in layouts:
                runs[layout] = parse_once(n, layout, catalog, work, template_db, raise_old_timeouts)
                if report is not None:
                    report(runs[layout])
            if set(layouts) == {"one file", "per service"}:
                old, new = runs["one file"], runs["per service"]
                runs["ratios"] = {key: (new[key] / old[key] if old[key] else None) for key in (
                    "wall_s", "cpu_s", "parse_sum_s", "slowest_file_s", "peak_rss_mb", "peak_tree_rss_mb")}
            figures[n] = runs
        return figures
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


HEADER = (f"{'services':>8} {'layout':<23} {'wall s':>8} {'cpu s':>8} {'parse s':>9} {'slowest s':>9} {'dags':>6} "
          f"{'errors':>6} {'rss MB':>8} {'tree MB':>9} {'ms/svc':>7}  slowest file vs timeouts (30 s / 50 s)")


def row(run: dict) -> str:
    """One run's figures, as a line under HEADER."""
    missing = run["services"] - run["dags"] - run["import_errors"]
    fits = (f"{missing} services with neither a DAG nor an import error of their own (timed out or killed: see the log)" if missing > 0
            else "within both" if run["fits_import_timeout"] else
            "past the 30 s import timeout" + ("" if run["fits_processor_timeout"] else " and the 50 s processor timeout"))
    layout = run["layout"] + (" (defaults)" if run["timeouts"] == "defaults" and run["layout"] == "one file" else "")
    return (f"{run['services']:>8} {layout:<23} {run['wall_s']:>8.1f} {run['cpu_s']:>8.1f} {run['parse_sum_s']:>9.1f} "
            f"{run['slowest_file_s']:>9.2f} {run['dags']:>6} {run['import_errors']:>6} {run['peak_rss_mb']:>8.0f} "
            f"{run['peak_tree_rss_mb']:>9.0f} {run['ms_per_service']:>7.1f}  {fits}")
