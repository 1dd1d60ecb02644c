"""What each make target needs from the operating system, checked before any slow step.

    python3 scripts/prerequisites.py TARGET     (the Makefile runs it first; .ci/run with ``test``)

It runs with the system's python3 before the virtualenv exists: the standard library only. Missing Debian
packages are installed where this runs as root and apt-get is here (one line says which and why); otherwise
one line says what to install, and the exit code is 1. A Docker engine that does not answer is started where
this runs as root (systemd's unit where systemd runs, else ``dockerd --bridge=none --iptables=false
--ip6tables=false``, as on the project's machines); otherwise one line says how, and the exit code is 1.
``python3 scripts/prerequisites.py --table`` prints what every target needs.

The plan (``missing``, ``apt_commands``, ``engine_command``) is pure; ``check`` runs it through a ``System``
(``HostSystem`` here, a fake in the tests).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, sleep
from typing import Protocol

# deployflow.settings.DEFAULT_BASE_IMAGE (a test keeps them equal); $BASE_IMAGE names another, as for build.sh.
BASE_IMAGE = os.environ.get("BASE_IMAGE") or "deployflow/base:bookworm"
DOCKERD = ["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false"]
DOCKERD_LOG = "/tmp/deployflow-dockerd.log"  # tests/engines.py restarts the engine with its output there
ENGINE_WAIT = 60  # seconds for a started engine to answer

ALWAYS, ENGINE_DOWN, NO_BASE_IMAGE = "always", "engine down", "no base image"


@dataclass(frozen=True)
class Need:
    """One thing from the OS: present when ``command`` is on PATH, or a file matches ``path``, or the system
    python has ``module``; ``package`` (Debian's) provides it; needed ``when`` the state says so."""

    package: str
    why: str
    command: str = ""
    path: str = ""
    module: str = ""
    when: str = ALWAYS


@dataclass(frozen=True)
class State:
    """What the Docker engine said: whether it answers (else its error), and whether it has the base image."""

    engine: bool
    base_image: bool
    error: str = ""


VENV = (Need("python3-venv", "to make the virtualenv", module="ensurepip"),)
DOCKER = (
    Need("docker.io", "the Docker client", command="docker"),
    Need("docker.io", "dockerd, to start the Docker engine", command="dockerd", when=ENGINE_DOWN),
    Need("debootstrap", f"to build the base image {BASE_IMAGE}, which the engine does not have", command="debootstrap",
         when=NO_BASE_IMAGE),
)
RELEASE = (Need("git", "to check out the commit a release builds", command="git"),)
POSTGRESQL = Need("postgresql", "PostgreSQL's initdb and pg_ctl", path="/usr/lib/postgresql/*/bin/initdb", command="initdb")
CELERY = (Need("redis-server", "the Celery broker", command="redis-server"), POSTGRESQL)
ENGINE_RESTART = (Need("procps", "pgrep, to restart the Docker engine under a release", command="pgrep"),)
SCHEMAS = (Need("nodejs", "the Gateway API schemas' npm install", command="node"),
           Need("npm", "the Gateway API schemas' npm install", command="npm"))
BROWSER = (Need("chromium", "the browser tests drive Debian's Chromium", command="chromium"),
           Need("chromium-driver", "the browser tests' chromedriver", command="chromedriver"))

DEMO = VENV + DOCKER + RELEASE
TARGETS: dict[str, tuple[Need, ...]] = {
    "venv": VENV,
    "images": VENV + DOCKER,
    "up": DEMO,
    "demo": DEMO,
    "celery-up": DEMO + CELERY,
    "bench-deploy": DEMO,
    "bench-release": DEMO,
    "bench-config": DEMO,
    "bench-faults": DEMO + ENGINE_RESTART,
    "bench-scale": DEMO + CELERY,
    "test-unit": VENV + RELEASE + SCHEMAS,
    "test": DEMO + CELERY + ENGINE_RESTART + SCHEMAS + BROWSER,
}


class System(Protocol):
    """The machine, as the check sees it."""

    def which(self, command: str) -> str | None: ...  # shutil.which
    def matches(self, pattern: str) -> bool: ...  # a file matches the glob
    def has_module(self, name: str) -> bool: ...  # the system python has it
    def is_root(self) -> bool: ...
    def docker_answers(self) -> tuple[bool, str]: ...  # `docker info`: answered, else its error
    def has_image(self, tag: str) -> bool: ...
    def run(self, argv: Sequence[str]) -> tuple[int, str]: ...  # exit code and output
    def start(self, argv: Sequence[str], log: str) -> None: ...  # in the background, its output in log


def present(need: Need, system: System) -> bool:
    return bool((need.command and system.which(need.command)) or (need.path and system.matches(need.path))
                or (need.module and system.has_module(need.module)))


def needs_engine(target: str) -> bool:
    return any(need.package == "docker.io" for need in TARGETS[target])


def missing(target: str, system: System, state: State) -> list[Need]:
    """What ``target`` needs and the machine lacks, one per package, in the table's order."""
    applies = {ALWAYS: True, ENGINE_DOWN: not state.engine, NO_BASE_IMAGE: not state.base_image}
    lacking: dict[str, Need] = {}
    for need in TARGETS[target]:
        if applies[need.when] and need.package not in lacking and not present(need, system):
            lacking[need.package] = need
    return list(lacking.values())


def described(needs: list[Need]) -> str:
    return ", ".join(f"{need.package} ({need.why})" for need in needs)


def apt_commands(needs: list[Need]) -> list[list[str]]:
    """``apt-get update``, then one install of exactly these packages."""
    return [["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *(need.package for need in needs)]]


def engine_command(system: System) -> list[str]:
    """systemd's unit where systemd runs the machine, else the engine as the project's machines run it."""
    if system.matches("/run/systemd/system") and system.which("systemctl"):
        return ["systemctl", "start", "docker"]
    return DOCKERD


def engine_advice(error: str) -> str:
    """How a user who is not root gets an engine that answers."""
    if "permission denied" in error.lower():
        return ("access to the Docker engine (its socket refused this user): add the user to the docker group "
                "(usermod -aG docker $USER, then log in again), or run as root")
    return f"a running Docker engine: start it as root with `{' '.join(DOCKERD)} &` (or `systemctl start docker`)"


def probe(target: str, system: System) -> State:
    if not needs_engine(target) or not system.which("docker"):
        return State(engine=False, base_image=False)
    answers, error = system.docker_answers()
    return State(engine=answers, base_image=answers and system.has_image(BASE_IMAGE), error=error)


def check(target: str, system: System, say=print) -> int:
    """Install or report what ``target`` lacks, then start or report the engine: 0 when all is there."""
    state = probe(target, system)
    lacking = missing(target, system, state)
    root = system.is_root() and system.which("apt-get") is not None
    if not root:
        if needs_engine(target) and system.which("docker") and not state.engine:
            # The engine first: what it has decides whether debootstrap is needed.
            say(f"make {target} needs {engine_advice(state.error)}")
            return 1
        if lacking:
            say(f"make {target} needs {described(lacking)}: apt-get install {' '.join(n.package for n in lacking)}")
            return 1
        return 0
    if lacking:
        say(f"[prerequisites] make {target}: installing {described(lacking)}")
        for argv in apt_commands(lacking):
            code, output = system.run(argv)
            if code:
                last = output.strip().splitlines()[-1] if output.strip() else "no output"
                say(f"make {target}: `{' '.join(argv)}` failed (exit {code}): {last}")
                return 1
    if needs_engine(target) and not state.engine and not system.docker_answers()[0]:  # apt may have started it
        return start_engine(target, system, say)
    return 0


def start_engine(target: str, system: System, say=print, wait: float = ENGINE_WAIT) -> int:
    argv = engine_command(system)
    say(f"[prerequisites] make {target}: no Docker engine answers; starting it: {' '.join(argv)}")
    if argv == DOCKERD:
        system.start(argv, DOCKERD_LOG)
    else:
        system.run(argv)
    deadline = monotonic() + wait
    while True:
        answers, error = system.docker_answers()
        if answers:
            return 0
        if monotonic() > deadline:
            say(f"make {target}: the Docker engine did not answer within {wait:.0f} s ({error.strip() or 'no error'}); "
                f"its log: {DOCKERD_LOG if argv == DOCKERD else 'journalctl -u docker'}")
            return 1
        sleep(1)


class HostSystem:
    """This machine."""

    def which(self, command: str) -> str | None:
        return shutil.which(command)

    def matches(self, pattern: str) -> bool:
        return bool(glob.glob(pattern))

    def has_module(self, name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def docker_answers(self) -> tuple[bool, str]:
        try:
            done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return done.returncode == 0, done.stderr

    def has_image(self, tag: str) -> bool:
        return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        return done.returncode, done.stdout + done.stderr

    def start(self, argv: Sequence[str], log: str) -> None:
        with open(log, "ab") as out:  # the engine keeps it open; this process may end
            subprocess.Popen(list(argv), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)


def table() -> str:
    """Markdown: each target and the Debian packages it may install, with why."""
    rows = ["| make target | Debian packages (why) |", "|---|---|"]
    for target, needs in TARGETS.items():
        by_package: dict[str, list[str]] = {}
        for need in needs:
            why = need.why + {ALWAYS: "", ENGINE_DOWN: " where none answers", NO_BASE_IMAGE: ""}[need.when]
            by_package.setdefault(need.package, []).append(why)
        rows.append(f"| `{target}` | " + "; ".join(f"`{p}` ({' and '.join(w)})" for p, w in by_package.items()) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv == ["--table"]:
        print(table())
        return 0
    if len(argv) != 1 or argv[0] not in TARGETS:
        print(f"usage: {Path(__file__).name} TARGET | --table; TARGET is one of {', '.join(TARGETS)} "
              f"(got {' '.join(argv) or 'nothing'})", file=sys.stderr)
        return 2
    return check(argv[0], HostSystem())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
