"""Backup and restore of the ledger, against SQLite and a real PostgreSQL server: a round trip keeps every
release and state file (0600 in 0700), a backup taken while another process writes is consistent, and restore
refuses a ledger with releases and a tampered backup before it writes anything."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from deployflow.ledger.schema import VERSION
from deployflow.ledger import Ledger
from deployflow.ledger.backup import MANIFEST, BackupError, backup, main, restore
from deployflow.ledger.schema import releases
from tests.db.test_ledger import entry

STATE_FILES = {
    "e2e-shop-prod/release.json": '{"version": "0123456789ab-c0ffee00c0de"}',
    "config/e2e-shop-prod/c0ffee00c0de.json": '{"values": {"API_KEY": "s3cret"}}',
    "config/e2e-shop-dev/0badc0ffee00.json": '{"values": {}}',
}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def other_url(url, request, tmp_path) -> str:
    """A second, empty ledger of the same kind: where a backup is restored."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'elsewhere' / 'ledger.db'}"
    server, _ = url.rsplit("/", 1)
    admin = sa.create_engine(f"{server.replace('postgresql://', 'postgresql+psycopg://')}/postgres", isolation_level="AUTOCOMMIT")
    name = "restored_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]  # parametrized names run long
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def make_state(state: Path) -> None:
    for name, text in STATE_FILES.items():
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text(text)


def test_a_round_trip_keeps_every_release_and_state_file_private(url, other_url, tmp_path):
    ledger = Ledger(url)
    recorded = [entry("r1", config="c0ffee00c0de", digest="sha256:" + "a" * 64, steps={"build": 1.5}),
                entry("r2", environment="dev", outcome="rolled_back", finished="2026-12-02T10:00:00+00:00")]
    for e in recorded:
        ledger.record(e)
    make_state(tmp_path / "state")
    summary = backup(url, tmp_path / "state", tmp_path / "backup")
    assert (summary.releases, summary.files) == (2, 3)
    # Private: the configurations hold secrets.
    assert stat.S_IMODE((tmp_path / "backup").stat().st_mode) == 0o700
    for path in (tmp_path / "backup").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["ledger"]["releases"] == 2 and manifest["ledger"]["schema_version"] == VERSION
    assert {n for n in manifest["files"] if n.startswith("state/")} == {f"state/{n}" for n in STATE_FILES}

    done = restore(other_url, tmp_path / "new-state", tmp_path / "backup")
    assert (done.releases, done.written, done.kept) == (2, 3, 0)
    assert Ledger(other_url).entries() == recorded
    for name, text in STATE_FILES.items():
        restored = tmp_path / "new-state" / name
        assert restored.read_text() == text and stat.S_IMODE(restored.stat().st_mode) == 0o600
    Ledger(other_url).record(entry("r3"))  # the restored ledger takes new releases (PostgreSQL: its id sequence too)
    assert [e.run_id for e in Ledger(other_url).entries()] == ["r1", "r3", "r2"]


def _write_pairs(url: str, stop, started) -> None:
    """Two rows per transaction, until told to stop: a consistent copy holds both of every pair or neither."""
    ledger = Ledger(url)
    ledger._ready()
    n = 0
    while not stop.is_set():
        rows = [replace(entry(f"{side}-{n}"), finished_at=f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}+00:00").to_dict()
                for side in ("a", "b")]
        with ledger.engine.begin() as conn:
            conn.execute(releases.insert(), rows)
        n += 1
        if n == 20:
            started.set()
    ledger.dispose()


def test_a_backup_taken_while_another_process_writes_is_consistent(url, other_url, tmp_path):
    Ledger(url)._ready()
    context = multiprocessing.get_context("spawn")
    stop, started = context.Event(), context.Event()
    writer = context.Process(target=_write_pairs, args=(url, stop, started))
    writer.start()
    try:
        assert started.wait(60), "the writer never got going"
        backup(url, tmp_path / "state", tmp_path / "backup")
        time.sleep(0.2)  # it goes on writing after the copy
    finally:
        stop.set()
        writer.join(30)
    restore(other_url, tmp_path / "state", tmp_path / "backup")
    copied = [e.run_id for e in Ledger(other_url).entries()]
    pairs = {r.split("-", 1)[1] for r in copied}
    assert copied and len(copied) == 2 * len(pairs), "half a transaction in the copy"
    assert {f"{side}-{n}" for n in pairs for side in "ab"} == set(copied)
    assert len(copied) < len(Ledger(url).entries())  # the writer really was writing around the copy
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["ledger"]["releases"] == len(copied)


def test_restore_refuses_a_ledger_with_releases_unless_forced(url, tmp_path):
    ledger = Ledger(url)
    ledger.record(entry("r1"))
    backup(url, tmp_path / "state", tmp_path / "backup")
    ledger.record(entry("r2"))
    with pytest.raises(BackupError, match=r"--url: the ledger already has 2 release\(s\); restore refuses to overwrite it"):
        restore(url, tmp_path / "state", tmp_path / "backup")
    assert [e.run_id for e in Ledger(url).entries()] == ["r1", "r2"]  # untouched
    restore(url, tmp_path / "state", tmp_path / "backup", force=True)
    assert [e.run_id for e in Ledger(url).entries()] == ["r1"]


def _changed_dump(backup_dir: Path) -> None:
    dump = next(p for p in backup_dir.iterdir() if p.name.startswith("ledger."))
    dump.write_bytes(dump.read_bytes() + b"\0")


def _changed_config(backup_dir: Path) -> None:
    (backup_dir / "state/config/e2e-shop-prod/c0ffee00c0de.json").write_text('{"values": {"API_KEY": "other"}}')


def _changed_checksum(backup_dir: Path) -> None:
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    manifest["files"]["state/e2e-shop-prod/release.json"]["sha256"] = "0" * 64
    (backup_dir / MANIFEST).write_text(json.dumps(manifest))


def _missing_file(backup_dir: Path) -> None:
    (backup_dir / "state/e2e-shop-prod/release.json").unlink()


def _path_outside(backup_dir: Path) -> None:
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    manifest["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    (backup_dir / MANIFEST).write_text(json.dumps(manifest))


# Short ids: the PostgreSQL fixtures name each test's database after the first 50 characters of its name.
@pytest.mark.parametrize(("tamper", "message"), [
    pytest.param(_changed_dump, r"ledger\.\w+: checksum does not match the manifest's", id="dump"),
    pytest.param(_changed_config, r"c0ffee00c0de\.json: checksum does not match the manifest's", id="config"),
    pytest.param(_changed_checksum, r"release\.json: checksum does not match the manifest's", id="sum"),
    pytest.param(_missing_file, r"release\.json is missing; the manifest lists it", id="gone"),
    pytest.param(_path_outside, r"files\.\.\./\.\./etc/passwd: a path outside the backup", id="outside"),
    pytest.param(lambda b: (b / MANIFEST).write_text("{"), r"manifest\.json is not JSON", id="json"),
    pytest.param(lambda b: (b / MANIFEST).unlink(), r"has no manifest\.json: not a deployflow backup", id="nomanifest"),
])
def test_restore_refuses_tampering(url, other_url, tmp_path, tamper, message):
    """Before it writes anything."""
    Ledger(url).record(entry("r1"))
    make_state(tmp_path / "state")
    backup(url, tmp_path / "state", tmp_path / "backup")
    tamper(tmp_path / "backup")
    with pytest.raises(BackupError, match=message):
        restore(other_url, tmp_path / "new-state", tmp_path / "backup")
    assert Ledger(other_url).entries() == [] and not (tmp_path / "new-state").exists()


def test_the_command_says_what_it_did_and_exits_2_on_bad_input(sqlite_url, tmp_path, capsys):
    Ledger(sqlite_url).record(entry("r1"))
    state = ["--state", str(tmp_path / "state"), "--url", sqlite_url]
    assert main(["backup", "--to", str(tmp_path / "backup"), *state]) == 0
    assert "1 release(s)" in capsys.readouterr().out
    assert main(["backup", "--to", str(tmp_path / "backup"), *state]) == 2  # not empty: never mixes two backups
    assert capsys.readouterr().err.strip() == f"backup: --to: {tmp_path / 'backup'} is not empty; a backup goes to a new or empty directory"
    assert main(["restore", "--from", str(tmp_path / "backup"), *state]) == 2
    assert "refuses to overwrite it (--force does)" in capsys.readouterr().err
    assert main(["restore", "--from", str(tmp_path / "backup"), "--url", "mysql://x/y"]) == 2
    assert "scheme 'mysql' is not valid; valid values are sqlite, postgresql" in capsys.readouterr().err


def test_a_sqlite_backup_into_a_postgres_ledger_is_refused(sqlite_url, postgres_url, tmp_path):
    Ledger(sqlite_url).record(entry("r1"))
    backup(sqlite_url, tmp_path / "state", tmp_path / "backup")
    with pytest.raises(BackupError, match="holds a sqlite ledger"):
        restore(postgres_url, tmp_path / "state", tmp_path / "backup")



def test_restored_state_directories_are_private(sqlite_url, tmp_path):
    Ledger(sqlite_url).record(entry("r1"))
    make_state(tmp_path / "state")
    backup(sqlite_url, tmp_path / "state", tmp_path / "backup")
    restore(f"sqlite:///{tmp_path / 'ledger2.db'}", tmp_path / "lost" / "state", tmp_path / "backup")
    for directory in [tmp_path / "lost" / "state", *(p for p in (tmp_path / "lost" / "state").rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_postgres_commands_are_built_exactly_and_keep_the_password_off_the_command_line(monkeypatch):
    from deployflow.ledger.backup import libpq, pg_dump_command, pg_restore_command

    monkeypatch.setenv("DEPLOYFLOW_PG_BIN", "/opt/pg/bin")
    url = "postgresql+psycopg://deployflow:pa%40ss@db.internal:5433/ledger"
    assert libpq(url) == ("postgresql://deployflow@db.internal:5433/ledger", {"PGPASSWORD": "pa@ss"})
    assert pg_dump_command(url, Path("/b/ledger.pgdump"), snapshot="00000003-1") == [
        "/opt/pg/bin/pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--table=deployflow_releases",
        "--table=deployflow_schema", "--snapshot=00000003-1", "--file=/b/ledger.pgdump",
        "--dbname=postgresql://deployflow@db.internal:5433/ledger"]
    assert pg_restore_command("postgres://u@h/l", Path("/b/ledger.pgdump")) == [
        "/opt/pg/bin/pg_restore", "--single-transaction", "--clean", "--if-exists", "--no-owner", "--no-privileges",
        "--dbname=postgresql://u@h/l", "/b/ledger.pgdump"]
