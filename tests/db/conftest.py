"""A real PostgreSQL server for the ledger's tests: Debian's ``postgresql`` (``.ci/run`` installs it), a
throwaway cluster in a temporary directory on 127.0.0.1, stopped at the end. Without PostgreSQL these
tests fail; they never skip."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployflow.ledger.postgres import postgres_bin


def _bin(name: str) -> str:
    try:
        return str(postgres_bin(name))
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}; .ci/run installs it", pytrace=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as the postgres user then (Debian's package makes it)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_postgres(command), capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The server's URL (trust authentication, user postgres), on a free port of 127.0.0.1."""
    # Not under pytest's temporary directory: it is root's alone (0700), and the server runs as postgres.
    top = Path(tempfile.mkdtemp(prefix="deployflow-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
    data = top / "data"
    port = _free_port()
    _run([_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"])
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"
    _run([_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(top / "log"), "-w", "start"])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str, request) -> Iterator[str]:
    """A fresh database of that server for one test."""
    import sqlalchemy as sa

    # One database per test: a digest of its whole id (a cut-off name would make long parametrized ids share one).
    name = "ledger_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:24]
    admin = sa.create_engine(f"{postgres_server.replace('postgresql://', 'postgresql+psycopg://')}/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield f"{postgres_server}/{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"
