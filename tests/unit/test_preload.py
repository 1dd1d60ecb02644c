"""The scheduler and a Celery worker import the release DAG's code before they fork, so task processes start warm
(airflow_local_settings.py, deployflow/airflow/preload.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A process named as Airflow names it imports Airflow's local settings, then forks as an executor would: does the
# child find the DAG's code imported, and was the parent's import done once?
PROBE = """
import os, sys
sys.argv = {argv!r}
import airflow_local_settings  # noqa: F401
assert "deployflow.airflow.dag_factory" not in sys.modules  # nothing imported until a fork
pid = os.fork()
if pid == 0:
    from deployflow.airflow.preload import MODULES  # every one, the notifiers and the Docker host's code included
    os._exit(0 if all(name in sys.modules for name in MODULES) else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize(("argv", "warm"), [
    (["/venv/bin/airflow", "scheduler", "--skip-serve-logs"], True),
    (["/venv/bin/airflow", "celery", "worker", "--queues", "default"], True),
    (["/venv/bin/airflow", "api-server"], False),
    (["/venv/bin/airflow", "dag-processor"], False),  # it warms itself (catalog_bundle.warm)
])
def test_a_process_that_forks_tasks_preloads_the_dags_code_before_its_first_fork(argv, warm):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ("0" if warm else "3")  # its last line: the log says how long it took


# resolve and record announce every release; where the environment has no channel, that costs no import of the
# http and smtp providers' notifiers in the task's process.
ANNOUNCE = """
import sys
from deployflow.airflow.announce import announce
from deployflow.catalog import parse_service
service = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18003}}})
told = announce(service, "started", {"environment": "dev"}, {}, version="abc1234")
heavy = [name for name in ("deployflow.airflow.notifications", "airflow.providers.http.notifications.http",
                           "airflow.providers.smtp.notifications.smtp") if name in sys.modules]
print(told, heavy)
"""


def test_announcing_to_an_environment_with_no_channel_imports_no_notifier():
    done = subprocess.run([sys.executable, "-c", ANNOUNCE], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[] []"
