"""Release scenarios of the sample service: a scratch git repository with one
branch per scenario, and a catalog that points at it. Shared by the
end-to-end tests and the benchmarks, so both release real commits without
touching this repository.

Branches: main (good), broken-unit (a failing unit test), broken-build (a
failing Dockerfile step), ready-never (readiness never passes), crash (exits
``crash_after_s`` after start), errors (30 % of requests answer 500), slow
(60 ms more latency), slow-tail (5 % of requests 500 ms slower, the median
unchanged), errors-after-start (30 % of requests answer 500 from
``errors_after_s`` after start, once the health checks have passed),
dies-after-promotion (exits after answering ``dies_after_requests`` requests
to /: with blue-green it gets none until it serves all traffic, so it passes its
health checks and dies once promoted, under load). The fault knobs are baked in at build time;
the sample's suites ignore them, as unit tests miss real regressions.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parents[1]

BROKEN_UNIT_TEST = '''
def test_release_blocker():
    assert 2 + 2 == 5, "deliberately failing unit test"
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(repo: Path, *, crash_after_s: int, errors_after_s: int = 20, dies_after_requests: int = 150) -> Path:
    shutil.copytree(ROOT / "include" / "sample_app", repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".coverage*", ".pytest_cache"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "scenarios@example.invalid")
    git(repo, "config", "user.name", "scenarios")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "sample app")
    git(repo, "checkout", "-qb", "broken-unit")
    (repo / "tests" / "unit" / "test_release_blocker.py").write_text(BROKEN_UNIT_TEST)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a unit test that fails")
    git(repo, "checkout", "-qb", "broken-build", "main")
    with (repo / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("RUN echo 'this step breaks the build' && exit 3\n")
    git(repo, "commit", "-qam", "a Dockerfile step that fails")
    faults = (
        ("ready-never", {"FAULT_READY_NEVER": "1"}),
        ("crash", {"FAULT_CRASH_AFTER_S": str(crash_after_s)}),
        ("errors", {"FAULT_ERROR_RATE": "0.3"}),
        ("slow", {"FAULT_LATENCY_MS": "60"}),
        ("slow-tail", {"FAULT_SLOW_FRACTION": "0.05", "FAULT_SLOW_MS": "500"}),
        ("errors-after-start", {"FAULT_ERROR_RATE": "0.3", "FAULT_ERRORS_AFTER_S": str(errors_after_s)}),
        ("dies-after-promotion", {"FAULT_CRASH_AFTER_REQUESTS": str(dies_after_requests)}),
    )
    for name, knobs in faults:
        git(repo, "checkout", "-qb", name, "main")
        for knob, value in knobs.items():
            _bake(repo, knob, value)
        git(repo, "commit", "-qam", f"{name}: " + " ".join(f"{knob}={value}" for knob, value in knobs.items()))
    git(repo, "checkout", "-q", "main")
    return repo


def _bake(repo: Path, knob: str, value: str) -> None:
    dockerfile = repo / "Dockerfile"
    text = dockerfile.read_text()
    if f"ARG {knob}=\n" not in text:
        raise ValueError(f"the sample's Dockerfile has no 'ARG {knob}=' line")
    dockerfile.write_text(text.replace(f"ARG {knob}=\n", f"ARG {knob}={value}\n"))


def branch(repo: Path, name: str, base: str = "main") -> str:
    """A new commit on a new branch (a new version of the same code); returns its short SHA."""
    git(repo, "checkout", "-qb", name, base)
    (repo / "RELEASE").write_text(f"{name}\n")
    git(repo, "add", "RELEASE")
    git(repo, "commit", "-qm", f"release {name}")
    sha = git(repo, "rev-parse", "HEAD")[:12]
    git(repo, "checkout", "-q", "main")
    return sha


def write_catalog(directory: Path, repo: Path, ports: dict[str, int], *, scale_down_delay_s: int = 10,
                  suites: tuple[str, ...] | None = None) -> Path:
    """The shipped sample-app entry, pointed at ``repo``, on ``ports``, with short waits; its test suites
    ``suites`` (default: the shipped entry's, all three)."""
    entry = yaml.safe_load((ROOT / "include" / "services" / "sample-app.yaml").read_text())
    entry["source"] = {"repo": str(repo), "context": ".", "default_ref": "main"}
    if suites is not None:
        entry["tests"]["suites"] = list(suites)
    health = {"consecutive": 3, "interval_s": 0.5, "timeout_s": 10}
    entry["environments"] = {
        "dev": {"port": ports["dev"], "replicas": 3, "strategy": "rolling", "rolling": {"batch_size": 1}, "health": health},
        "staging": {"port": ports["staging"], "replicas": 2, "strategy": "canary", "health": health,
                    "canary": {"steps": [20, 50, 100], "pause_s": 4, "replicas": 1},
                    "analysis": {"interval_s": 5, "intervals": 3, "load_rate": 30}},
        # prod: blue-green, but a canary when asked (strategy param), with no load of its own
        "prod": {"port": ports["prod"], "replicas": 2, "strategy": "blue-green", "health": health,
                 "blue_green": {"scale_down_delay_s": scale_down_delay_s},
                 # The watch after promotion (prod's default: on), short: it covers the scale-down delay. As in
                 # the shipped sample, prod has no traffic of its own: its watch says so and passes (no_data: pass).
                 "post_promotion": {"duration_s": 10, "interval_s": 5, "no_data": "pass"},
                 "canary": {"steps": [50, 100], "pause_s": 2, "replicas": 1},
                 "analysis": {"interval_s": 4, "intervals": 2, "load_rate": 0, "no_data": "fail"}},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sample-app.yaml").write_text(yaml.safe_dump(entry))
    return directory


GOVERNED = "gov-app"


def write_governed(directory: Path, repo: Path, ports: dict[str, int], *, channels: list[dict], approvers: list[str],
                   approval_timeout_s: int, now: datetime | None = None) -> Path:
    """A second service, ``gov-app``, built from the same repository, with the governance rules: dev frozen by a
    daily window that holds from an hour before ``now`` to twelve hours after it (Europe/Paris); staging a quick
    rolling release; prod behind an approval by ``approvers`` and requiring staging; ``channels`` told of every
    release."""
    local = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo("Europe/Paris"))
    opens, closes = local - timedelta(hours=1), local + timedelta(hours=12)
    health = {"consecutive": 2, "interval_s": 0.5, "timeout_s": 10}
    entry = {
        "name": GOVERNED, "owner": "platform-team", "port": 8000,
        "source": {"repo": str(repo), "context": ".", "default_ref": "main"},
        "tests": {"suites": ["unit", "integration", "performance"], "coverage_threshold": 80, "coverage_source": "app"},
        "notifications": channels,
        "environments": {
            "dev": {"port": ports["dev"], "replicas": 1, "strategy": "rolling", "health": health,
                    "freeze": [{"name": "e2e-window", "start": f"{opens.minute} {opens.hour} * * *",
                                "end": f"{closes.minute} {closes.hour} * * *", "timezone": "Europe/Paris"}]},
            "staging": {"port": ports["staging"], "replicas": 1, "strategy": "rolling", "health": health},
            "prod": {"port": ports["prod"], "replicas": 1, "strategy": "blue-green", "health": health,
                     "blue_green": {"scale_down_delay_s": 2}, "post_promotion": {"enabled": False},
                     "approval": {"required": True, "approvers": approvers, "timeout_s": approval_timeout_s,
                                  "before": "deploy"},
                     "requires": "staging"},
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{GOVERNED}.yaml").write_text(yaml.safe_dump(entry))
    return directory


HOSTED = "host-app"


def write_hosted(directory: Path, repo: Path, ports: dict[str, int], *, connection: str, queue: str) -> Path:
    """A third service, ``host-app``, built from the same repository, whose dev runs on the Docker host of the
    Airflow connection ``connection`` (its deploy steps routed to ``queue``): a quick rolling release."""
    health = {"consecutive": 2, "interval_s": 0.5, "timeout_s": 10}
    entry = {
        "name": HOSTED, "owner": "platform-team", "port": 8000,
        "source": {"repo": str(repo), "context": ".", "default_ref": "main"},
        "tests": {"suites": ["unit"], "coverage_threshold": 0, "coverage_source": "app"},
        "environments": {
            "dev": {"port": ports["dev"], "replicas": 2, "strategy": "rolling", "health": health,
                    "docker_host": {"connection": connection, "queue": queue}},
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{HOSTED}.yaml").write_text(yaml.safe_dump(entry))
    return directory
