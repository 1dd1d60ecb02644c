"""The local stack's own secrets (deployflow.stack): who gets which, how, and the files' modes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from deployflow.stack import containers, local, processes, secrets

ROOT = Path(__file__).resolve().parents[2]
JWT_CMD = "AIRFLOW__API_AUTH__JWT_SECRET_CMD"
FERNET_CMD = "AIRFLOW__CORE__FERNET_KEY_CMD"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "airflow home"  # a space: the _CMD must quote the path
    secrets.ensure_secrets(home)
    return home


def secret_values(home: Path) -> list[str]:
    return [(home / name).read_text() for name in ("jwt_secret", "fernet_key")] + [secrets.admin_password(home)]


def test_a_second_user_gets_a_password_of_its_own_beside_the_admins_kept(home):
    admin = secrets.admin_password(home)
    approver = secrets.user_password(home, "approver")
    assert approver != admin and secrets.user_password(home, "approver") == approver  # generated once
    assert json.loads(secrets.password_file(home).read_text()) == {"admin": admin, "approver": approver}
    assert mode(secrets.password_file(home)) == 0o600


@pytest.mark.parametrize(("component", "pointers"), [
    ("scheduler", {JWT_CMD}),
    ("dag-processor", {FERNET_CMD}),
    ("api-server", {JWT_CMD, FERNET_CMD}),
    ("triggerer", {FERNET_CMD}),
    ("db-migrate", {FERNET_CMD}),
    ("exporter", set()),  # the release exporter reads the ledger's file: no secret
])
def test_each_process_gets_a_command_for_the_secrets_it_needs_and_no_value(home, component, pointers):
    inherited = {"PATH": "/usr/bin", "AIRFLOW__API_AUTH__JWT_SECRET": "from-the-shell",
                 "AIRFLOW__CORE__FERNET_KEY": "from-the-shell-too", "AIRFLOW__CORE__FERNET_KEY_SECRET": "x"}
    env = secrets.component_env(component, home, inherited)
    assert {name for name in env if "JWT_SECRET" in name or "FERNET_KEY" in name} == pointers
    assert env["PATH"] == "/usr/bin"
    for value in [*secret_values(home), "from-the-shell", "from-the-shell-too"]:
        assert all(value not in v for v in env.values()), component
    assert env.get(JWT_CMD, secrets.secret_command(home / "jwt_secret")) == secrets.secret_command(home / "jwt_secret")


def test_the_shared_environment_holds_no_secret(home):
    env = local.airflow_env(home, 8080)
    assert not [name for name in env if "JWT_SECRET" in name or "FERNET_KEY" in name]
    for value in secret_values(home):
        assert all(value not in v for v in env.values())


def test_airflow_reads_each_secret_through_its_command(home):
    # Airflow honours _CMD only for options it marks sensitive; run its own config parser to be sure.
    read = ("from airflow.configuration import conf; import json; "
            "print(json.dumps([conf.get('api_auth', 'jwt_secret'), conf.get('core', 'fernet_key')]))")
    seen = {}
    for component in ("api-server", "triggerer"):
        env = secrets.component_env(component, home, local.airflow_env(home, 8080))
        done = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, check=True)
        seen[component] = json.loads(done.stdout.strip().splitlines()[-1])
    jwt, fernet = (home / "jwt_secret").read_text(), (home / "fernet_key").read_text()
    assert seen["api-server"] == [jwt, fernet]
    assert seen["triggerer"] == ["", fernet]


def test_secrets_are_generated_once_per_home_0600_and_kept(home):
    before = secret_values(home)
    secrets.ensure_secrets(home)
    assert secret_values(home) == before
    Fernet(before[1].encode())  # a valid key
    assert len(set(before)) == 3
    for name in ("jwt_secret", "fernet_key", "simple_auth_manager_passwords.json"):
        assert mode(home / name) == 0o600
    other = home.parent / "other"
    secrets.ensure_secrets(other)
    assert (other / "fernet_key").read_text() != before[1]


@pytest.mark.parametrize(("kind", "expected"), [
    (stat.S_IFDIR | 0o755, 0o700), (stat.S_IFREG | 0o644, 0o600), (stat.S_IFREG | 0o600, 0o600),
    (stat.S_IFLNK | 0o777, None), (stat.S_IFSOCK | 0o755, None),
])
def test_private_modes(kind, expected):
    assert secrets.private_mode(kind) == expected


def test_make_private_closes_what_an_earlier_stack_left_open(tmp_path):
    top = tmp_path / "home"
    (top / "logs" / "dag_id=x").mkdir(parents=True)
    (top / "airflow.db").write_text("")
    (top / "logs" / "dag_id=x" / "1.log").write_text("")
    outside = tmp_path / "outside"
    outside.write_text("")
    (top / "link").symlink_to(outside)
    for path in (top, top / "logs", top / "logs" / "dag_id=x"):
        path.chmod(0o755)
    for path in (top / "airflow.db", top / "logs" / "dag_id=x" / "1.log", outside):
        path.chmod(0o644)
    secrets.make_private(top)
    assert [mode(p) for p in (top, top / "logs", top / "logs" / "dag_id=x")] == [0o700] * 3
    assert [mode(p) for p in (top / "airflow.db", top / "logs" / "dag_id=x" / "1.log")] == [0o600] * 2
    assert mode(outside) == 0o644  # a symlink's target is not followed


def test_airflow_up_starts_each_process_private_with_only_its_pointers(tmp_path, monkeypatch, capsys):
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir(mode=0o755)
    (home / "airflow.db.old").write_text("")
    (home / "airflow.db.old").chmod(0o644)
    state.mkdir(mode=0o755)
    started = {}

    def run(argv, **kwargs):
        (home / "airflow.db").touch()
        started["db-migrate"] = kwargs

    class Proc:
        pid = 4242

    def popen(argv, **kwargs):
        started["exporter" if argv[0] == sys.executable else argv[1]] = {**kwargs, "argv": argv}
        return Proc()

    monkeypatch.setattr(local.subprocess, "run", run)
    monkeypatch.setattr(processes.subprocess, "Popen", popen)
    monkeypatch.setattr(processes, "_running", lambda home, name: None)
    monkeypatch.setattr(local, "_wait_http", lambda *args, **kwargs: None)
    monkeypatch.setattr(local, "wait_for_airflow", lambda port: started.setdefault("waited", port))
    local.airflow_up(home, 28999, {"DEPLOYFLOW_STATE": str(state)}, exporter_port=29999)

    assert started.pop("waited") == 28999
    assert set(started) == {"db-migrate", "scheduler", "dag-processor", "api-server", "triggerer", "exporter"}
    assert started["exporter"]["argv"] == [sys.executable, "-m", "deployflow.ledger", "exporter", "--port", "29999"]
    for component, kwargs in started.items():
        assert kwargs["umask"] == 0o077, component
        assert kwargs["env"] == secrets.component_env(component, home, local.airflow_env(home, 28999, {"DEPLOYFLOW_STATE": str(state)}))
    assert mode(home) == mode(state) == mode(home / "logs") == mode(home / "pids") == 0o700
    for path in (home / "airflow.db.old", home / "logs" / "scheduler.out", home / "pids" / "scheduler.pid",
                 home / "logs" / "exporter.out", home / "pids" / "exporter.pid"):
        assert mode(path) == 0o600, path
    said = capsys.readouterr().out
    assert secrets.admin_password(home) not in said
    assert str(home / "simple_auth_manager_passwords.json") in said


def test_airflow_down_stops_the_exporter_with_airflows_processes(tmp_path, monkeypatch):
    home = tmp_path / "home"
    secrets.private_dir(home / "pids")
    pids = {name: 5000 + n for n, name in enumerate([*local.COMPONENTS, local.EXPORTER])}
    for name, pid in pids.items():
        processes._pid_file(home, name).write_text(str(pid))
    signalled = []
    monkeypatch.setattr(processes, "_alive", lambda pid: pid in pids.values() and pid not in signalled)
    monkeypatch.setattr(processes.os, "killpg", lambda pid, sig: signalled.append(pid))
    local.airflow_down(home)
    assert signalled == list(pids.values())
    assert list((home / "pids").iterdir()) == []


def test_prometheus_scrapes_the_stacks_exporter_and_loads_the_rules(tmp_path):
    config = yaml.safe_load(containers.PROMETHEUS_CONFIG.format(state=tmp_path, scrape="1s", rules=tmp_path / "rules.yml", exporter=29468))
    [releases] = [job for job in config["scrape_configs"] if job["job_name"] == "deployflow-releases"]
    assert releases["static_configs"] == [{"targets": ["127.0.0.1:29468"]}]
    assert config["rule_files"] == [str(tmp_path / "rules.yml")]
    assert containers.LOCAL_EXPORTER_PORT == 9468  # the exporter's own default: `up` and a bare command agree
    from deployflow.ledger.exporter import DEFAULT_PORT

    assert DEFAULT_PORT == containers.LOCAL_EXPORTER_PORT


def test_make_demo_prints_no_password():
    dry = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--password-file" in dry  # the client still reads it from its file
    assert not re.search(r"\$\([^)]*deployflow\.stack password", dry), "the demo echoes the password into its log"


@pytest.mark.parametrize(("argv", "registry_removed"), [([], False), (["--with-registry"], True)])
def test_a_stacks_down_leaves_the_hosts_registry_unless_asked(tmp_path, monkeypatch, argv, registry_removed):
    """The registry serves every stack on the host: the demo's down must not break a test run's builds."""
    from deployflow.stack import __main__ as stack_cli

    done = []
    monkeypatch.setattr(stack_cli, "airflow_down", lambda home: done.append("airflow"))
    monkeypatch.setattr(stack_cli.docker, "from_env", lambda: "engine")
    monkeypatch.setattr(stack_cli, "containers_down", lambda client, stack: done.append(f"containers of {stack}"))
    monkeypatch.setattr(stack_cli, "registry_down", lambda client: done.append("registry"))
    assert stack_cli.main(["down", "--home", str(tmp_path), *argv]) == 0
    assert done == ["airflow", "containers of local", *(["registry"] if registry_removed else [])]


def test_waiting_for_airflow_waits_for_its_execution_api_too(monkeypatch):
    """The Execution API's first answer builds its routes: asked for at start, not by the first task."""
    asked = []

    class Answer:
        status_code = 200

    monkeypatch.setattr(processes.requests, "get", lambda url, timeout: asked.append(url) or Answer())
    processes.wait_for_airflow(28999)
    assert asked == ["http://127.0.0.1:28999/api/v2/monitor/health", "http://127.0.0.1:28999/execution/health"]


def test_a_base_image_that_cannot_be_made_ends_with_the_scripts_line_and_no_traceback(monkeypatch):
    """build.sh's last line says why; the stack exits with its code and says nothing more (no
    CalledProcessError), and builds nothing on a missing base."""
    ran = []

    def run(argv, **kwargs):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 1)

    class NoEngine:
        def __getattr__(self, name):
            raise AssertionError(f"the engine was asked for {name}")

    monkeypatch.setattr(containers.subprocess, "run", run)
    with pytest.raises(SystemExit) as exited:
        containers.ensure_images(NoEngine())
    assert exited.value.code == 1
    assert ran == [["bash", str(ROOT / "include/images/base/build.sh")]]


@pytest.mark.parametrize("uid, debootstrap, last_line", [
    ("0", False, "[base-image] building deployflow/base:none needs debootstrap: apt-get install debootstrap"),
    ("1000", True, "[base-image] building deployflow/base:none with debootstrap needs root: run 'make images' once as "
                   "root (or pull python:3.11-slim-bookworm and tag it deployflow/base:none)"),
])
def test_the_base_image_script_ends_each_refusal_with_what_to_do(tmp_path, uid, debootstrap, last_line):
    """A PATH of date, a fake id and maybe a fake debootstrap: no engine answers, no pull is tried."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "date").symlink_to(subprocess.run(["bash", "-c", "command -v date"], capture_output=True,
                                                 text=True).stdout.strip())
    for name, body in (("id", f"echo {uid}"), *((("debootstrap", "exit 0"),) if debootstrap else ())):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(["/bin/bash", str(ROOT / "include/images/base/build.sh")], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "BASE_IMAGE": "deployflow/base:none", "SKIP_PULL": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == last_line


def test_a_pid_file_whose_pid_another_process_took_since_is_not_running(tmp_path):
    """A PID is reused once its process ends: a stale file naming a process that started after it was written
    (this test's own) is no stack process, so it is neither taken as running nor signalled by a stop."""
    home = tmp_path / "home"
    secrets.private_dir(home / "pids")
    path = processes._pid_file(home, "scheduler")
    path.write_text(str(os.getpid()))
    assert processes._running(home, "scheduler") == os.getpid()  # written after this process started: its own
    written = processes._started_at(os.getpid()) - processes.REUSED_AFTER_S - 3600
    os.utime(path, (written, written))  # the file of a scheduler that ended an hour before this process began
    assert processes._running(home, "scheduler") is None
    processes.stop_process(home, "scheduler")  # signals nothing: this process is still here to assert it
    assert path.exists()
