"""The one finder of PostgreSQL's programs (deployflow.ledger.postgres): the newest major version by number, then
$PATH, then an error that names the program and the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployflow.ledger.postgres import postgres_bin


def install(root: Path, version: str, name: str = "initdb") -> Path:
    program = root / version / "bin" / name
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return program


def test_the_newest_major_wins_by_number_not_as_a_string(tmp_path):
    install(tmp_path, "9")  # as strings, "9" > "16" > "10"
    install(tmp_path, "9.6")
    newest = install(tmp_path, "16")
    install(tmp_path, "10")
    assert postgres_bin("initdb", tmp_path) == newest


def test_a_version_without_the_program_and_a_directory_that_is_no_version_are_passed_over(tmp_path):
    older = install(tmp_path, "15", "pg_dump")
    install(tmp_path, "17", "initdb")  # the server of 17, not its client
    install(tmp_path, "common", "pg_dump")
    assert postgres_bin("pg_dump", tmp_path) == older


def test_path_when_no_version_has_it(tmp_path, monkeypatch):
    on_path = tmp_path / "path" / "pg_ctl"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert postgres_bin("pg_ctl", tmp_path / "no-such-root") == on_path


def test_none_is_an_error_naming_the_program_and_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"PostgreSQL's initdb is not installed \(apt-get install postgresql\)"):
        postgres_bin("initdb", tmp_path)
