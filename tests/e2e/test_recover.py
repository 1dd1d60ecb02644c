"""Disaster recovery for real: a release with a configuration to dev, a backup, the host lost (every container of
dev and its release, router and configuration state gone), the backup restored into a fresh ledger, and
``python -m deployflow.ledger recover`` run as an operator would, without Airflow: dev serves its last promoted
version with its configuration again through its proxy, and the time is printed. The host is lost and brought
back three times, restore and recover run from the checkout, then from another directory with no
DEPLOYFLOW_STATE (the checkout's .state), then from there with a relative one: the state directory a container
mounts is absolute, and the same for every command, wherever they run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deployflow.ledger import Ledger, ReleaseEntry, default_url
from tests.e2e.harness import PORTS, ROOT, STACK, release
from tests.e2e.test_configuration import configured, sha256

pytestmark = pytest.mark.e2e

SERVICE = "sample-app"


def front(environment: str, path: str = "/") -> dict:
    return requests.get(f"http://127.0.0.1:{PORTS[environment]}{path}", timeout=5).json()


def ledger_command(*argv: str, env: dict[str, str | None], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The command in ``cwd``, with ``env`` over this process's environment (None: unset)."""
    given = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), **env}
    return subprocess.run([sys.executable, "-m", "deployflow.ledger", *argv], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={name: value for name, value in given.items() if value is not None})


def lose_the_host(docker_client, state, environment: str) -> None:
    """As a rebuilt host: no container of the environment (instances, proxy), no router, release or configuration state."""
    labels = [f"io.deployflow.stack={STACK}", f"io.deployflow.environment={environment}"]
    for container in docker_client.containers.list(all=True, filters={"label": labels}):
        container.remove(force=True)
    name = f"{STACK}-{SERVICE}-{environment}"
    for path in (state / name, state / "config" / name):
        shutil.rmtree(path, ignore_errors=True)
    (state / "targets" / f"{name}.json").unlink(missing_ok=True)


def assert_back(done: subprocess.CompletedProcess, served: dict, entry: ReleaseEntry, docker_client, way: str) -> None:
    """recover said what it brought back, and dev serves that version with that configuration again."""
    assert done.returncode == 0, f"{way}: {done.stdout}{done.stderr}"
    # What it brought back, by digest, and the time, per service and in all.
    assert re.search(rf"{SERVICE} in dev: back on {served['version'][:12]}\S* \(\S+@{entry.digest}, configuration {entry.config};.* in \d+\.\d s",
                     done.stdout), done.stdout
    # Every service with a promoted release in dev comes back (the governed gov-app's too, where it has one).
    assert re.search(r"recover dev: (\d+) of \1 service\(s\) back in \d+\.\d s", done.stdout), done.stdout
    # The environment serves that version with that configuration through its proxy again.
    again = front("dev")
    assert again["version"] == served["version"]
    assert front("dev", "/config")["config_version"] == entry.config
    assert front("dev", "/config")["sha256"]["SAMPLE_GREETING"] == sha256("hello after the flood")
    images = {c.attrs["Config"]["Image"] for c in docker_client.containers.list(
        filters={"label": [f"io.deployflow.stack={STACK}", "io.deployflow.role=app", "io.deployflow.environment=dev",
                           f"io.deployflow.service={SERVICE}"]})}
    assert images == {f"{entry.image.rsplit(':', 1)[0]}@{entry.digest}"}


def test_a_lost_dev_host_comes_back_from_a_backup_on_its_last_promoted_release(airflow, docker_client, catalog, stack_state, tmp_path):
    state = stack_state
    config = {"values": {"SAMPLE_GREETING": "hello after the flood"}}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ways = {  # where the operator runs the commands, and how the state directory is named there
        "from the checkout": (ROOT, {"DEPLOYFLOW_STATE": str(state)}),
        # No DEPLOYFLOW_STATE: the checkout's .state (DEPLOYFLOW_HOME's), never the working directory's.
        "from elsewhere, no DEPLOYFLOW_STATE": (elsewhere, {"DEPLOYFLOW_STATE": None, "DEPLOYFLOW_HOME": str(state.parent)}),
        "from elsewhere, a relative DEPLOYFLOW_STATE": (elsewhere, {"DEPLOYFLOW_STATE": os.path.relpath(state, elsewhere)}),
    }
    with configured(catalog, "dev", config):
        run = release(airflow, "dev", "main")
        assert run["state"] == "success", run["tasks"]
        served, shown = front("dev"), front("dev", "/config")
        [entry] = [e for e in Ledger(default_url(state)).entries(environment="dev") if e.run_id == run["run_id"]]
        assert entry.outcome == "promoted" and entry.digest and entry.config == shown["config_version"]

        backup = tmp_path / "backup"
        base = {"DEPLOYFLOW_CATALOG": str(catalog), "DEPLOYFLOW_STACK": STACK}
        done = ledger_command("backup", "--to", str(backup), env={**base, "DEPLOYFLOW_STATE": str(state)})
        assert done.returncode == 0, done.stderr
        assert (backup / "state" / "config" / f"{STACK}-{SERVICE}-dev" / f"{entry.config}.json").is_file()

        for number, (way, (cwd, where)) in enumerate(ways.items()):
            lose_the_host(docker_client, state, "dev")
            with pytest.raises(requests.RequestException):
                front("dev")
            # The ledger restored into a fresh database (the session's own stays for the other tests), the state in place.
            env = {**base, **where, "DEPLOYFLOW_LEDGER_URL": f"sqlite:///{tmp_path / f'restored-{number}' / 'ledger.db'}"}
            done = ledger_command("restore", "--from", str(backup), env=env, cwd=cwd)
            assert done.returncode == 0, f"{way}: {done.stderr}"
            assert "written" in done.stdout, way

            started = time.monotonic()
            done = ledger_command("recover", "--environment", "dev", env=env, cwd=cwd)
            took = time.monotonic() - started
            print(way, done.stdout, done.stderr, f"recover took {took:.1f} s as measured by the test", sep="\n")
            assert_back(done, served, entry, docker_client, way)

