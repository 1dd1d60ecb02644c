"""A process of the stack: started in a session of its own with its output in ``<home>/logs/<name>.out`` and its
PID in ``<home>/pids/<name>.pid``, under a umask of 077; stopped by that PID (its whole process group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from deployflow.stack.secrets import PRIVATE_UMASK, _open_private, private_dir


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def _pid_file(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# A PID is reused once its process has ended: a live process that started this long after its PID file was
# written is another one (the tolerance covers a wall clock stepped back since the boot).
REUSED_AFTER_S = 60.0


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux's /proc: the boot time and the process's
    start in clock ticks since); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat, starttime
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def _running(home: Path, name: str) -> int | None:
    """The PID of process ``name`` where it runs: its PID file's, unless that PID is gone or now another
    process's (after a reboot, or a stop that never ran: `make demo` found a shell there and started no
    scheduler; `make demo-down` would have signalled that shell's group)."""
    path = _pid_file(home, name)
    if path.exists():
        pid = int(path.read_text())
        started = _started_at(pid)
        if _alive(pid) and (started is None or started <= path.stat().st_mtime + REUSED_AFTER_S):
            return pid
    return None


def start_process(home: Path, name: str, command: list[str], env: dict[str, str]) -> int:
    """Start ``command`` as process ``name`` of the stack at ``home`` (its own session, its output in
    ``home/logs/<name>.out``, its PID in ``home/pids``) unless it runs already; its PID."""
    pid = _running(home, name)
    if pid:
        return pid
    private_dir(home / "pids")
    private_dir(home / "logs")
    out = _open_private(home / "logs" / f"{name}.out", "ab")
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            umask=PRIVATE_UMASK)
    with _open_private(_pid_file(home, name), "w") as pid_file:
        pid_file.write(str(proc.pid))
    say(f"started {name} (pid {proc.pid}, log {home / 'logs' / (name + '.out')})")
    return proc.pid


def stop_process(home: Path, name: str, grace: float = 30) -> None:
    """Stop process ``name`` of the stack at ``home`` by its PID: its whole process group (task runners
    included), SIGTERM then, after ``grace`` seconds, SIGKILL."""
    pid = _running(home, name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
        _reap(pid)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _pid_file(home, name).unlink(missing_ok=True)
    say(f"stopped {name} (pid {pid})")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for_airflow(port: int) -> None:
    """Until the API server answers on ``port``, and then its Execution API: the Execution API's first request
    builds its versioned routes (Cadwyn), about 7 s of CPU on this machine's 2 cores (py-spy), which would
    otherwise land in the first task of the first release (its start took seconds, not tens of ms)."""
    _wait_http(f"http://127.0.0.1:{port}/api/v2/monitor/health", "Airflow API server", timeout=180)
    _wait_http(f"http://127.0.0.1:{port}/execution/health", "Airflow's Execution API", timeout=120)


def _wait_http(url: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(1)
    raise SystemExit(f"[stack] {what} did not answer at {url} within {timeout:.0f} s ({last})")
