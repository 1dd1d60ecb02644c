"""Backup and restore of the ledger, the release records and the stored configurations.

    python -m deployflow.ledger backup  --to DIR   [--url URL] [--state DIR]
    python -m deployflow.ledger restore --from DIR [--url URL] [--state DIR] [--force]

A backup directory (0700; every file in it 0600: the configurations hold secrets) holds:

    manifest.json          what, when, the versions, a SHA-256 and size per file
    ledger.sqlite          SQLite: a consistent copy (the online backup API, never a file copy of a live WAL file)
    ledger.pgdump          PostgreSQL: pg_dump's custom format of the ledger's two tables
    state/<stack>-<service>-<environment>/release.json    what prepare decided, per environment
    state/config/<stack>-<service>-<environment>/<version>.json    the resolved configurations

Restore checks every checksum of the manifest before it writes anything, refuses a ledger that already has
releases unless ``--force``, and writes the state files that are missing (``--force``: every one).
Exit codes: 0 done, 2 bad input (a missing or tampered backup, a non-empty ledger, a bad URL).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from deployflow.ledger.postgres import pg_bin
from deployflow.ledger.schema import VERSION, releases, schema_version
from deployflow.ledger.store import engine_for
from deployflow.settings import Settings, absolute

MANIFEST = "manifest.json"
FORMAT = 1  # of the backup directory; a restore refuses another
DUMPS = {"sqlite": "ledger.sqlite", "postgresql": "ledger.pgdump"}
TABLES = (releases.name, schema_version.name)


class BackupError(Exception):
    """Bad input: a missing or tampered backup, a ledger that is not empty, a tool that failed (exit 2)."""


# ---- what a backup holds -------------------------------------------------------------------

def state_files(state_dir: Path) -> list[Path]:
    """The release records and stored configurations under a state directory, relative to it, sorted."""
    found = [*state_dir.glob("*/release.json"), *state_dir.glob("config/*/*.json")]
    return sorted(p.relative_to(state_dir) for p in found if p.is_file() and ".tmp" not in p.name)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _backend(url: str) -> str:
    name = sa.engine.make_url(url.replace("postgres://", "postgresql://", 1)).get_backend_name()
    if name not in DUMPS:
        raise BackupError(f"--url: scheme {name!r} is not valid; valid values are {', '.join(DUMPS)}")
    return name


def _write_private(path: Path, data: bytes) -> None:
    for directory in [p for p in reversed(path.parents) if not p.exists()]:  # mkdir's mode is the last one's only
        directory.mkdir(mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# ---- PostgreSQL: commands built here, run by _run ----------------------------------------------

def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL libpq takes (no SQLAlchemy driver), and the password apart, for PGPASSWORD: never on a command line."""
    parsed = sa.engine.make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername="postgresql")
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    bare = sa.engine.URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                                database=parsed.database, query=parsed.query)  # URL.set(password=None) keeps it
    return bare.render_as_string(hide_password=False), env


def pg_dump_command(url: str, out: Path, *, snapshot: str | None = None) -> list[str]:
    """Only the ledger's tables (and the id sequence they own): the ledger may share a database with others.
    ``snapshot``: an exported snapshot to dump in (``pg_export_snapshot()``)."""
    conninfo, _ = libpq(url)
    tables = [f"--table={t}" for t in TABLES]
    at = [f"--snapshot={snapshot}"] if snapshot else []
    return [pg_bin("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", *tables, *at, f"--file={out}",
            f"--dbname={conninfo}"]


def pg_restore_command(url: str, dump: Path) -> list[str]:
    """One transaction; the ledger's tables dropped first (restore has checked they are empty, or was forced)."""
    conninfo, _ = libpq(url)
    return [pg_bin("pg_restore"), "--single-transaction", "--clean", "--if-exists", "--no-owner", "--no-privileges",
            f"--dbname={conninfo}", str(dump)]


def _run(command: list[str], url: str) -> None:
    _, env = libpq(url)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (apt-get install postgresql-client, or set $DEPLOYFLOW_PG_BIN)") from None
    if done.returncode:
        error = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {error[-1] if error else 'no message'}")


# ---- the ledger's copy -----------------------------------------------------------------------

def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"--url: {url!r} names no SQLite file; a backup needs sqlite:///<path>")
    return Path(database)


def dump_ledger(url: str, out: Path) -> int:
    """The copy, and how many releases it holds (counted in the same snapshot as the copy)."""
    if _backend(url) == "postgresql":
        return _pg_dump(url, out)
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise BackupError(f"--url: the ledger {source_path} does not exist")
    _write_private(out, b"")
    # The online backup API copies a snapshot inside one read transaction: writers go on, the copy is consistent.
    source, target = sqlite3.connect(source_path, timeout=30), sqlite3.connect(out)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        tables = {row[0] for row in target.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return target.execute(f"SELECT count(*) FROM {releases.name}").fetchone()[0] if releases.name in tables else 0
    finally:
        target.close()
        source.close()


def _pg_dump(url: str, out: Path) -> int:
    """pg_dump inside a snapshot this connection exported and counted in, so the manifest's count is the dump's."""

    engine = engine_for(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar()
            count = conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar() or 0
            _run(pg_dump_command(url, out, snapshot=snapshot), url)
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"--url: the ledger cannot be read: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    out.chmod(0o600)
    return count


def ledger_releases(url: str) -> int:
    """Releases in the ledger at ``url`` (0: no table yet)."""

    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(releases.name):
                return 0
            return conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar() or 0
    finally:
        engine.dispose()


def load_ledger(url: str, dump: Path) -> None:
    if _backend(url) == "postgresql":
        _run(pg_restore_command(url, dump), url)
        return
    target_path = _sqlite_path(url)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    # Page by page into the live file through SQLite itself: a reader or the WAL never sees half a database.
    source, target = sqlite3.connect(dump), sqlite3.connect(target_path, timeout=30)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


# ---- backup and restore ------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    releases: int
    files: int
    bytes: int


def backup(url: str, state_dir: Path, to: Path, *, now: datetime | None = None) -> Summary:
    if to.exists() and any(to.iterdir()):
        raise BackupError(f"--to: {to} is not empty; a backup goes to a new or empty directory")
    to.mkdir(parents=True, exist_ok=True, mode=0o700)
    to.chmod(0o700)
    backend = _backend(url)
    dump = to / DUMPS[backend]
    count = dump_ledger(url, dump)
    files = {DUMPS[backend]: dump}
    for relative in state_files(state_dir):
        copy = to / "state" / relative
        _write_private(copy, (state_dir / relative).read_bytes())
        files[str(Path("state") / relative)] = copy
    for directory in [p for p in to.rglob("*") if p.is_dir()]:
        directory.chmod(0o700)
    manifest = {
        "format": FORMAT, "created_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "ledger": {"backend": backend, "file": DUMPS[backend], "schema_version": VERSION, "releases": count},
        "state_dir": str(state_dir),
        "files": {name: {"sha256": sha256(path), "bytes": path.stat().st_size} for name, path in sorted(files.items())},
    }
    _write_private(to / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return Summary(count, len(files) - 1, sum(f["bytes"] for f in manifest["files"].values()))


def read_manifest(source: Path) -> dict:
    """The manifest, once every file it names is there with its checksum and nothing outside it is."""
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"--from: {source} has no {MANIFEST}: not a deployflow backup") from None
    except ValueError as exc:
        raise BackupError(f"--from: {path} is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"--from: {path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                          f"is not valid; valid values are {FORMAT}")
    for name, expected in manifest["files"].items():
        file = source / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BackupError(f"--from: {path}: files.{name}: a path outside the backup")
        if not file.is_file():
            raise BackupError(f"--from: {file} is missing; the manifest lists it")
        if sha256(file) != expected.get("sha256"):
            raise BackupError(f"--from: {file}: checksum does not match the manifest's (changed or damaged); nothing restored")
    dump = manifest.get("ledger", {}).get("file")
    if dump not in DUMPS.values() or dump not in manifest["files"]:
        raise BackupError(f"--from: {path}: ledger.file {dump!r} is not valid; valid values are {', '.join(DUMPS.values())}")
    return manifest


@dataclass(frozen=True)
class Restored:
    releases: int
    written: int
    kept: int


def restore(url: str, state_dir: Path, source: Path, *, force: bool = False) -> Restored:
    manifest = read_manifest(source)
    dump = source / manifest["ledger"]["file"]
    if DUMPS[_backend(url)] != dump.name:
        raise BackupError(f"--url: the backup holds a {manifest['ledger']['backend']} ledger ({dump.name}); "
                          f"restore it into a ledger of that kind")
    found = ledger_releases(url)
    if found and not force:
        raise BackupError(f"--url: the ledger already has {found} release(s); restore refuses to overwrite it (--force does)")
    load_ledger(url, dump)
    written = kept = 0
    for name in manifest["files"]:
        if not name.startswith("state/"):
            continue
        target = state_dir / Path(name).relative_to("state")
        if target.exists() and not force:
            kept += 1  # what the host has now is newer than the backup, or the same
            continue
        _write_private(target, (source / name).read_bytes())
        target.parent.chmod(0o700)
        written += 1
    return Restored(ledger_releases(url), written, kept)


# ---- the command ------------------------------------------------------------------------------

def parse_args(argv: list[str], settings: Settings) -> argparse.Namespace:
    """The command and its options; ``url``: the one named, else the ledger of that state directory."""
    parser = argparse.ArgumentParser(prog="python -m deployflow.ledger", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, where in (("backup", "--to"), ("restore", "--from")):
        command = commands.add_parser(name)
        command.add_argument(where, dest="dir", type=Path, required=True, help="the backup directory")
        command.add_argument("--state", type=absolute, default=settings.state_dir,
                             help="the state directory (default $DEPLOYFLOW_STATE, else the checkout's .state)")
        command.add_argument("--url", help="the ledger (default $DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory)")
        if name == "restore":
            command.add_argument("--force", action="store_true", help="overwrite a ledger with releases, and every state file")
    args = parser.parse_args(argv)
    args.url = args.url or replace(settings, state_dir=args.state).ledger_url
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, Settings.from_environ())
    try:
        if args.command == "backup":
            done = backup(args.url, args.state, args.dir)
            print(f"backup: {done.releases} release(s) and {done.files} release record(s) and configuration(s) in {args.dir} "
                  f"({done.bytes} bytes; 0600 files in a 0700 directory: the configurations hold secrets)")
        else:
            done = restore(args.url, args.state, args.dir, force=args.force)
            print(f"restore: {done.releases} release(s) into the ledger; {done.written} state file(s) written, "
                  f"{done.kept} already there and kept, in {args.state}")
    except BackupError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
