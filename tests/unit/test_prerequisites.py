"""scripts/prerequisites.py: what a make target needs from the OS, installed as root, else said in one line.

A fake machine stands for shutil.which, the uid, apt-get and the Docker engine's answer; the runner's commands
are recorded, never run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployflow.settings import DEFAULT_BASE_IMAGE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "prerequisites.py"
_spec = importlib.util.spec_from_file_location("prerequisites", SCRIPT)
prerequisites = sys.modules["prerequisites"] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(prerequisites)

EVERY_COMMAND = {"docker", "dockerd", "debootstrap", "git", "redis-server", "initdb", "pgrep", "node", "npm", "chromium",
                 "chromedriver", "apt-get"}
APT_UPDATE = ["apt-get", "update", "-qq"]
APT_INSTALL = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]


@dataclass
class FakeSystem:
    """A machine with ``commands`` on PATH; an engine that answers (or says ``engine_error``) and has ``images``;
    apt-get installs what it is asked for (its packages' commands appear), ``started`` engines answer at once."""

    commands: set[str] = field(default_factory=lambda: set(EVERY_COMMAND))
    root: bool = True
    engine: bool = True
    engine_error: str = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
    images: set[str] = field(default_factory=lambda: {DEFAULT_BASE_IMAGE})
    venv: bool = True
    systemd: bool = False
    apt_fails: bool = False
    ran: list[list[str]] = field(default_factory=list)
    started: list[tuple[list[str], str]] = field(default_factory=list)

    PROVIDES = {"docker.io": {"docker", "dockerd"}, "postgresql": {"initdb"}, "chromium-driver": {"chromedriver"},
                "nodejs": {"node"}, "procps": {"pgrep"}}

    def which(self, command: str) -> str | None:
        return f"/usr/bin/{command}" if command in self.commands else None

    def matches(self, pattern: str) -> bool:
        return pattern == "/run/systemd/system" and self.systemd

    def has_module(self, name: str) -> bool:
        return name == "ensurepip" and self.venv

    def is_root(self) -> bool:
        return self.root

    def docker_answers(self) -> tuple[bool, str]:
        return (True, "") if self.engine and "docker" in self.commands else (False, self.engine_error)

    def has_image(self, tag: str) -> bool:
        return tag in self.images

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        self.ran.append(list(argv))
        if self.apt_fails and argv[:2] == ["apt-get", "install"]:
            return 100, "Reading package lists...\nE: Unable to locate package debootstrap\n"
        if argv[:2] == ["apt-get", "install"]:
            for package in argv[len(APT_INSTALL):]:
                self.commands |= self.PROVIDES.get(package, {package})
                self.venv |= package == "python3-venv"
        if argv == ["systemctl", "start", "docker"]:
            self.engine = True
        return 0, ""

    def start(self, argv: Sequence[str], log: str) -> None:
        self.started.append((list(argv), log))
        self.engine = True


def check(target: str, system: FakeSystem) -> tuple[int, list[str]]:
    said: list[str] = []
    return prerequisites.check(target, system, say=said.append), said


@pytest.mark.parametrize("root", [True, False], ids=["root", "user"])
@pytest.mark.parametrize("target", sorted(prerequisites.TARGETS))
def test_nothing_missing_runs_nothing(target: str, root: bool) -> None:
    system = FakeSystem(root=root)
    assert check(target, system) == (0, [])
    assert system.ran == [] and system.started == []


@pytest.mark.parametrize("target, gone, packages", [
    ("demo", {"git", "chromium", "redis-server"}, ["git"]),  # what demo does not need stays out
    ("bench-scale", {"redis-server"}, ["redis-server"]),
    ("celery-up", {"redis-server", "initdb"}, ["redis-server", "postgresql"]),
    ("test", {"chromium", "chromedriver", "npm", "node"}, ["nodejs", "npm", "chromium", "chromium-driver"]),
    ("bench-faults", {"pgrep"}, ["procps"]),
    ("venv", set(), ["python3-venv"]),
])
def test_missing_as_root_is_one_install_of_exactly_those_packages(target: str, gone: set[str],
                                                                  packages: list[str]) -> None:
    system = FakeSystem(commands=EVERY_COMMAND - gone, venv=target != "venv")
    code, said = check(target, system)
    assert code == 0
    assert system.ran == [APT_UPDATE, APT_INSTALL + packages]
    assert len(said) == 1 and said[0].startswith(f"[prerequisites] make {target}: installing {packages[0]} (")


def test_base_image_present_needs_no_debootstrap() -> None:
    system = FakeSystem(commands=EVERY_COMMAND - {"debootstrap"})
    assert check("demo", system) == (0, [])
    assert system.ran == []


def test_base_image_absent_needs_debootstrap_and_says_why() -> None:
    system = FakeSystem(commands=EVERY_COMMAND - {"debootstrap"}, images=set())
    code, said = check("demo", system)
    assert code == 0 and system.ran == [APT_UPDATE, APT_INSTALL + ["debootstrap"]]
    assert said == [f"[prerequisites] make demo: installing debootstrap (to build the base image {DEFAULT_BASE_IMAGE}, "
                    "which the engine does not have)"]


def test_new_machine_as_root_installs_once_then_starts_the_engine() -> None:
    """No Docker at all: its image store is empty, so debootstrap comes in the same install."""
    system = FakeSystem(commands={"apt-get"}, engine=False, images=set())
    code, said = check("demo", system)
    assert code == 0
    assert system.ran == [APT_UPDATE, APT_INSTALL + ["docker.io", "debootstrap", "git"]]
    assert system.started == [(prerequisites.DOCKERD, prerequisites.DOCKERD_LOG)]
    assert said[1] == ("[prerequisites] make demo: no Docker engine answers; starting it: "
                       "dockerd --bridge=none --iptables=false --ip6tables=false")


def test_engine_down_under_systemd_is_started_by_its_unit() -> None:
    system = FakeSystem(engine=False, systemd=True, commands=EVERY_COMMAND | {"systemctl"})
    assert check("images", system)[0] == 0
    assert system.ran == [["systemctl", "start", "docker"]] and system.started == []


@pytest.mark.parametrize("target, gone, line", [
    ("demo", {"debootstrap"}, "make demo needs debootstrap (to build the base image deployflow/base:bookworm, which the "
                              "engine does not have): apt-get install debootstrap"),
    ("bench-scale", {"redis-server", "initdb"}, "make bench-scale needs redis-server (the Celery broker), postgresql "
                                                "(PostgreSQL's initdb and pg_ctl): apt-get install redis-server postgresql"),
    ("test-unit", {"git"}, "make test-unit needs git (to check out the commit a release builds): apt-get install git"),
])
def test_missing_as_user_is_one_line_and_runs_nothing(target: str, gone: set[str], line: str) -> None:
    system = FakeSystem(root=False, commands=EVERY_COMMAND - gone, images=set())
    assert check(target, system) == (1, [line])
    assert system.ran == [] and system.started == []


def test_root_without_apt_is_told_like_a_user() -> None:
    system = FakeSystem(commands=EVERY_COMMAND - {"apt-get", "git"})
    assert check("demo", system) == (1, ["make demo needs git (to check out the commit a release builds): "
                                         "apt-get install git"])
    assert system.ran == []


@pytest.mark.parametrize("error, advice", [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
     "a running Docker engine: start it as root with `dockerd --bridge=none --iptables=false --ip6tables=false &` "
     "(or `systemctl start docker`)"),
    ("permission denied while trying to connect to the Docker daemon socket",
     "access to the Docker engine (its socket refused this user): add the user to the docker group "
     "(usermod -aG docker $USER, then log in again), or run as root"),
])
def test_engine_down_as_user_says_how_and_starts_nothing(error: str, advice: str) -> None:
    system = FakeSystem(root=False, engine=False, engine_error=error)
    assert check("celery-up", system) == (1, [f"make celery-up needs {advice}"])
    assert system.ran == [] and system.started == []


def test_failed_install_is_one_line() -> None:
    system = FakeSystem(commands=EVERY_COMMAND - {"git"}, apt_fails=True)
    code, said = check("demo", system)
    assert code == 1
    assert said[-1] == ("make demo: `apt-get install -y -qq --no-install-recommends git` failed (exit 100): "
                        "E: Unable to locate package debootstrap")


def test_engine_that_never_answers_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class DeadEngine(FakeSystem):
        def start(self, argv: Sequence[str], log: str) -> None:
            self.started.append((list(argv), log))

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(prerequisites, "monotonic", lambda: next(clock))
    monkeypatch.setattr(prerequisites, "sleep", lambda seconds: None)
    system = DeadEngine(engine=False)
    code, said = prerequisites.check("images", system, say=(said := []).append), said
    assert code == 1
    assert said[-1].startswith("make images: the Docker engine did not answer within 60 s (Cannot connect")
    assert said[-1].endswith("its log: /tmp/deployflow-dockerd.log")


def test_targets_without_docker_never_ask_the_engine() -> None:
    class NoEngineCalls(FakeSystem):
        def docker_answers(self) -> tuple[bool, str]:
            raise AssertionError("asked the engine")

    assert check("test-unit", NoEngineCalls(engine=False)) == (0, [])


def test_unknown_target_is_refused_with_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert prerequisites.main(["dmeo"]) == 2
    err = capsys.readouterr().err
    assert "TARGET is one of venv, images, up, demo, celery-up" in err and "(got dmeo)" in err


def test_base_image_is_the_settings_default() -> None:
    assert prerequisites.BASE_IMAGE == DEFAULT_BASE_IMAGE


def dry_run(target: str) -> list[str]:
    """What ``make TARGET`` would run on a machine where nothing is made yet: a make of its own, also when the
    suite itself runs under ``make test`` (whose MAKELEVEL and MAKEFLAGS would add "Entering directory" lines)."""
    env = {name: value for name, value in os.environ.items() if name not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-n", "-B", "PYTHON=python3", target], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.mark.parametrize("target", sorted(set(prerequisites.TARGETS) - {"venv"}))
def test_each_target_checks_its_prerequisites_before_any_slow_step(target: str) -> None:
    commands = dry_run(target)
    assert commands[0] == f"python3 scripts/prerequisites.py {target}"
    venv = next(i for i, command in enumerate(commands) if command.startswith("python3 -m venv"))
    assert commands[venv - 1] == "python3 scripts/prerequisites.py venv"


def test_every_target_that_needs_docker_is_checked() -> None:
    rules = re.findall(r"^([a-z0-9-]+):([^=#\n]*)", (ROOT / "Makefile").read_text(), flags=re.M)
    using_docker = {target for target, needs in rules if "images" in needs.split() or target == "images"}
    assert using_docker - {"kind-e2e"} <= set(prerequisites.TARGETS)  # kind-e2e checks kind, kubectl, a bridge itself


def test_the_demo_venv_leaves_the_test_tools_out_and_the_tests_add_them() -> None:
    demo, tests = dry_run("demo"), dry_run("test")
    assert not any("requirements-test.txt" in command for command in demo)
    assert any("install -q -r requirements.txt -r requirements-test.txt" in command for command in tests)


def test_ci_installs_from_the_same_list() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert "python3 scripts/prerequisites.py test\nmake test\n" in ci
    assert not re.search(r"apt-get install[^\n]*(docker|debootstrap|postgresql|redis|chromium)", ci)
