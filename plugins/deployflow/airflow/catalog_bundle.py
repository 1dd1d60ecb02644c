"""The catalog DAG bundle: one small DAG file per catalog file, so that each service parses, times out
and fails on its own.

Airflow records import errors, timeouts and parse times per DAG file. With every service in one file,
one bad YAML file removed every service's DAG and the file's parse grew with the catalog until it passed
the dag-processor's timeouts. This bundle keeps a directory (its ``path``) with one DAG file per
``<catalog>/<name>.yaml``, ``release_<name>.py``, three lines that call
``dag_factory.service_release_dag``; a file's import error is then its service's only, and names the
catalog file and the field.

Airflow calls ``initialize()`` on every process that needs the files (the dag-processor, and each task's
process before it parses the task's DAG file; only the dag-processor warms itself up), and ``refresh()``
on the dag-processor every ``refresh_interval``: both write the files from the catalog as it is on that
host (the checkout every host shares), so a team's new YAML file gets its DAG with no step of anyone's, and a removed one's DAG file goes (Airflow then deactivates the
DAG). A file is rewritten only when its text changes, atomically (several workers may initialize at once);
its text holds its catalog file's digest, so an edited YAML file makes a newer DAG file, which the
dag-processor parses first (``file_parsing_sort_mode = modified_time``), however long its whole cycle.

The one rule across files, a front port two services claim, is checked once per scan
(``deployflow.catalog.claims``) and written into the two DAG files concerned, which fail with an error
naming each other's file.

Configured in airflow.cfg, ``[dag_processor] dag_bundle_config_list``::

    {"name": "catalog", "classpath": "deployflow.airflow.catalog_bundle.CatalogDagBundle",
     "kwargs": {"path": "${AIRFLOW_HOME}/catalog_dags"}}
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from airflow.dag_processing.bundles.local import LocalDagBundle

from deployflow.catalog import catalog_dir
from deployflow.catalog.claims import PortClaims, write_atomically
from deployflow.airflow.runs import in_a_task

# What marks a file of ours: only such files are ever removed from the bundle's directory.
MARK = "# Written by deployflow's catalog DAG bundle"
log = logging.getLogger(__name__)
PORTS_CACHE = ".front_ports.json"  # not a .py file: Airflow lists none but DAG files
DAG_FILE = '''{mark} (deployflow/airflow/catalog_bundle.py) for {service_file!r}.
# Catalog file sha256 {digest}: an edit of it rewrites this file, and Airflow parses a file newer than its last parse first.
"""The Airflow release DAG of one catalog file (named above and below).

One DAG file per catalog file: an error in that file is this DAG's import error only. Rewritten from the
catalog on every bundle refresh; edit the YAML file, not this one.
"""
from deployflow.airflow.dag_factory import service_release_dag

dag = service_release_dag({service_file!r}, shared_ports={shared!r})
'''


CATALOG_ERROR_FILE = "catalog_error.py"
CATALOG_ERROR = '''{mark} (deployflow/airflow/catalog_bundle.py): no catalog, so no release DAG (airflow dag).
from deployflow.errors import ConfigError

raise ConfigError("(catalog)", {message!r})
'''


def warm(dag_files: Iterable[Path]) -> None:
    """Build and serialize one service's DAG in this process, so that processes forked from it start warm.

    The dag-processor parses each DAG file in a process forked from itself, and Airflow pre-imports only
    the airflow.* modules a DAG file names: without this, every file's parse would import deployflow and
    the Docker provider again, and fill again the caches the first DAG fills (the serialization schema
    and its defaults, jsonschema's validators): the better part of a second each. Best effort: a DAG
    file that fails here fails the same way in its own parse, with its import error; the next is tried.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.serialization.serialized_objects import DagSerialization

        from deployflow.airflow import dag_factory  # noqa: F401 (the import is the point)

        for path in dag_files:
            bag = DagBag(dag_folder=str(path), load_op_links=False)  # the parse's own path
            for dag in bag.dags.values():
                DagSerialization.to_dict(dag)
            if bag.dags:
                return
    except Exception:  # noqa: BLE001 (only slower parses: never the bundle's failure)
        log.warning("could not warm the dag-processor for the catalog's DAG files", exc_info=True)


def dag_file_name(service: str) -> str:
    return f"release_{service}.py"


def write_dag_files(catalog: Path, target: Path, claims: PortClaims | None = None) -> dict[str, Path]:
    """Make ``target`` hold exactly one DAG file per ``catalog/*.yaml`` (and none of ours for any other),
    rewriting only the files whose text changed. Returns the DAG files by service (file stem).

    A catalog directory that does not exist concerns every service: its DAG files are kept (each then
    fails to find its YAML file, an import error naming it) and one more, ``catalog_error.py``, is the
    import error that names the directory, so even a first start with a wrong ``DEPLOYFLOW_CATALOG``
    shows why there is no release DAG, in the UI, not only in the dag-processor's log.
    """
    target.mkdir(parents=True, exist_ok=True)
    error_file = target / CATALOG_ERROR_FILE
    if not catalog.is_dir():
        message = f"the catalog directory {catalog} does not exist (set DEPLOYFLOW_CATALOG)"
        text = CATALOG_ERROR.format(mark=MARK, message=message)
        if not error_file.is_file() or error_file.read_text() != text:
            write_atomically(error_file, text)
        return {}
    error_file.unlink(missing_ok=True)
    catalog = catalog.resolve()  # the DAG files and their errors name the catalog files by absolute path
    files = sorted(catalog.glob("*.yaml"))
    claims = claims or PortClaims(target / PORTS_CACHE)
    shared = claims.scan(files)
    wanted: dict[str, Path] = {}
    for service_file in files:
        name = service_file.stem
        # A name no service may have still gets its DAG file, whose import error says what is wrong with it.
        path = target / dag_file_name(re.sub(r"[^A-Za-z0-9._-]", "_", name))
        try:
            digest = hashlib.sha256(service_file.read_bytes()).hexdigest()[:16]
        except OSError:
            continue  # removed since the glob: no DAG file
        text = DAG_FILE.format(mark=MARK, name=name, service_file=str(service_file), digest=digest,
                               shared=shared.get(name, {}))
        if not path.is_file() or path.read_text() != text:
            write_atomically(path, text)
        wanted[name] = path
    for stale in set(target.glob("*.py")) - set(wanted.values()):
        try:
            if stale.read_text().startswith(MARK):
                stale.unlink(missing_ok=True)
        except FileNotFoundError:
            continue  # another process of this host removed it first
    return wanted


class CatalogDagBundle(LocalDagBundle):
    """A local directory of generated DAG files, one per catalog file (see the module's docstring).

    :param path: where the DAG files are written (a directory of this host's own, e.g. under AIRFLOW_HOME).
    :param catalog: the catalog directory; default ``$DEPLOYFLOW_CATALOG``, else the checkout's include/services.
    """

    def __init__(self, *, path: str, catalog: str | None = None, **kwargs) -> None:
        super().__init__(path=path, **kwargs)
        self.catalog = Path(catalog) if catalog else None
        self._claims: PortClaims | None = None  # kept across refreshes: a scan re-reads changed files only

    def _write(self) -> dict[str, Path]:
        if self._claims is None:
            self._claims = PortClaims(self.path / PORTS_CACHE)
        return write_dag_files(self.catalog or catalog_dir(), self.path, self._claims)

    def initialize(self) -> None:
        files = self._write()
        if not in_a_task():  # a task parses its own DAG file only: warming would build a second DAG for nothing
            warm(files.values())
        super().initialize()

    def refresh(self) -> None:
        """Write the DAG files from the catalog as it is now (new, changed and removed services)."""
        self._write()
