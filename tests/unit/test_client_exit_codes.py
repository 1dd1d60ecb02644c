"""The client's exit codes, written once (deployflow/client/exit_codes.py): every error class's code has a meaning,
``--help`` lists them, and ``make demo``, which exits 2 whatever its recipe's code, says the client's code and what
it means on its last line before make's error."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployflow.client import api, exit_codes
from deployflow.client import cli as client

ROOT = Path(__file__).resolve().parents[2]


def test_every_error_of_the_client_has_a_documented_code():
    errors = [kind for _, kind in inspect.getmembers(api, inspect.isclass) if issubclass(kind, api.ClientError)]
    codes = {kind.__name__: kind.exit_code for kind in errors if isinstance(kind.exit_code, int)}
    codes.update({"ApiError 401": api.ApiError(401, "").exit_code, "ApiError 500": api.ApiError(500, "").exit_code})
    assert len(codes) >= 9 and set(codes.values()) <= set(exit_codes.EXIT_CODES), codes


def test_help_lists_every_code(capsys):
    with pytest.raises(SystemExit):
        client.main(["--help"])
    shown = capsys.readouterr().out
    listed = shown[shown.index("exit codes:"):]
    assert all(f"  {code:>3}  " in listed for code in exit_codes.EXIT_CODES), listed
    assert max(len(line) for line in listed.splitlines()) <= exit_codes.WIDTH


@pytest.mark.parametrize(("code", "says"), [
    (1, "deployflow.client exited 1: the release failed (the run ended failed;"),
    (2, "deployflow.client exited 2: refused or bad input: Airflow refused the trigger"),
    (137, "deployflow.client exited 137: killed by signal 9 (not one of its own codes)"),
    (42, "deployflow.client exited 42: not one of its own codes (0, 1, 2, 3, 4, 5, 6, 7, 8, 130)"),
])
def test_a_code_in_one_line(code, says):
    assert exit_codes.meaning(code).startswith(says) and "\n" not in exit_codes.meaning(code)


def test_a_bad_argument_is_a_usage_line(capsys):
    assert exit_codes.main(["one"]) == 2
    assert capsys.readouterr().err == "usage: python -m deployflow.client.exit_codes CODE (a number; got one)\n"


def fake_python(tmp_path: Path, client_code: int) -> Path:
    """A ``$(PY)`` whose ``-m deployflow.client`` exits ``client_code`` at once; the rest is the real Python."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$2" = "deployflow.client" ]; then echo "release FAILED"; exit {client_code}; fi\n'
                      f'exec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script


def make_demo(tmp_path: Path, client_code: int) -> subprocess.CompletedProcess:
    """The real ``make demo`` recipe around a stand-in client. -o: the OS check, up and venv count as made (no
    package, no stack, no pip); AIRFLOW_HOME: nothing of the checkout's is read; a make of its own, also under
    ``make test`` (whose MAKELEVEL and MAKEFLAGS would add "Entering directory" lines)."""
    env = {name: value for name, value in os.environ.items() if name not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "-s", "--no-print-directory", "-o", "needs-demo", "-o", "up", "-o", "venv", "demo",
                           f"PY={fake_python(tmp_path, client_code)}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**env, "AIRFLOW_HOME": str(tmp_path / "home")})


@pytest.mark.parametrize("client_code", [1, 7])
def test_make_demo_says_the_clients_code_last_though_make_exits_2(tmp_path, client_code):
    ran = make_demo(tmp_path, client_code)
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    assert ran.stdout.splitlines()[-1] == exit_codes.meaning(client_code), ran.stdout
    assert "call python -m deployflow.client itself" in ran.stdout.splitlines()[-2]
    assert f"Error {client_code}" in ran.stderr  # make's own line names the recipe's code too


def test_make_demo_says_nothing_more_when_the_release_succeeds(tmp_path):
    ran = make_demo(tmp_path, 0)
    assert ran.returncode == 0 and "deployflow.client exited" not in ran.stdout, (ran.stdout, ran.stderr)
