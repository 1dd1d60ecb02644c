"""Where PostgreSQL's programs are: the one finder of its server and client binaries (initdb, pg_ctl, pg_dump,
pg_restore) for the ledger's backup, the Celery setup's server and the ledger's tests; the backup's client
programs may be named by ``$DEPLOYFLOW_PG_BIN``.

Debian installs each major version in ``/usr/lib/postgresql/<major>/bin`` (``9.6``, ``16``): the newest major
is taken, by number (16 before 9.6; a newer pg_dump reads older servers), then ``$PATH``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")


def _major(directory: Path) -> tuple[int, ...] | None:
    """``16`` -> (16,), ``9.6`` -> (9, 6); None for a directory that is no version."""
    parts = directory.name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else None


def postgres_bin(name: str, root: Path = DEBIAN_ROOT) -> Path:
    """The program ``name`` of the newest PostgreSQL under ``root`` (``<root>/<major>/bin/<name>``), else the one
    on ``$PATH``. FileNotFoundError, naming the program and the Debian package, when there is none."""
    majors = [(major, directory) for directory in root.glob("*") if (major := _major(directory)) is not None]
    for _, directory in sorted(majors, reverse=True):
        if (directory / "bin" / name).is_file():
            return directory / "bin" / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")


def pg_bin(name: str) -> str:
    """pg_dump or pg_restore: $DEPLOYFLOW_PG_BIN, else ``postgres_bin``; else the bare name, which the backup
    reports as not installed."""
    if os.environ.get("DEPLOYFLOW_PG_BIN"):
        return str(Path(os.environ["DEPLOYFLOW_PG_BIN"]) / name)
    try:
        return str(postgres_bin(name))
    except FileNotFoundError:
        return name
