"""tests/runner.py (make test, through scripts/run_tests.py): a test file that none of its pytest processes runs is refused; the e2e modules split in two shards, each on a stack of its own."""

from __future__ import annotations

from tests import runner


def test_a_test_file_in_neither_process_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    for path in ("tests/e2e/test_a.py", "tests/unit/test_b.py", "tests/test_lint.py", "tests/new/test_c.py",
                 "tests/k8s/node_modules/x/test_d.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "registry_up", lambda client: (_ for _ in ()).throw(AssertionError("started")))
    assert runner.main([]) == 2
    assert capsys.readouterr().out == (f"[tests] tests/new/test_c.py run in neither process: add them to MAIN or BESIDE "
                                       f"in {runner.__file__}\n")


def test_each_e2e_module_runs_in_exactly_one_shard():
    """Shard 1 names files that exist; shard 0 runs tests/e2e without them: together every module, none twice."""
    modules = {str(f.relative_to(runner.ROOT)) for f in (runner.ROOT / "tests" / "e2e").glob("test_*.py")}
    first, env0 = runner.e2e_shard(0)
    second, env1 = runner.e2e_shard(1)
    ignored = {option.removeprefix("--ignore=") for option in first if option.startswith("--ignore=")}
    assert first[0] == "tests/e2e" and set(second) == ignored and set(second) < modules
    assert len(second) == len(set(second)) and len(modules - ignored) >= 5  # shard 0 keeps the rest
    assert (env0, env1) == ({"DEPLOYFLOW_E2E_SHARD": "0"}, {"DEPLOYFLOW_E2E_SHARD": "1"})


def test_the_two_e2e_stacks_share_no_port_name_or_engine():
    """tests/e2e/harness.py under each DEPLOYFLOW_E2E_SHARD (a process of its own: the shard is read on import)."""
    import json
    import os
    import subprocess
    import sys

    show = ("import json; from tests.e2e import harness as h, receivers as r; print(json.dumps({"
            "'ports': [h.PORT, *h.PORTS.values(), *h.GOV_PORTS.values(), *h.HOST_PORTS.values(), h.PROMETHEUS_PORT, "
            "h.EXPORTER_PORT, r.WEBHOOK_PORT, r.SMTP_PORT, r.DOWN_PORT], "
            "'names': [h.STACK, h.HOST_ENGINE, h.HOST_CONNECTION, h.HOST_QUEUE]}))")
    seen = []
    for shard in ("0", "1"):
        env = {**os.environ, "DEPLOYFLOW_E2E_SHARD": shard, "PYTHONPATH": f"{runner.ROOT}{os.pathsep}{runner.ROOT / 'plugins'}"}
        out = subprocess.run([sys.executable, "-c", show], env=env, cwd=runner.ROOT, check=True, capture_output=True,
                             text=True).stdout
        seen.append(json.loads(out))
    zero, one = seen
    assert zero["ports"][0] == 28080 and zero["names"][0] == "e2e"  # shard 0: the stack as it always was
    assert len(set(zero["ports"])) == len(zero["ports"]) == len(set(one["ports"]))
    assert not set(zero["ports"]) & set(one["ports"]) and not set(zero["names"]) & set(one["names"])


def test_the_engine_restart_test_runs_in_shard_0_and_last_there():
    """It restarts the engine every process shares: shard 0 runs it, after its other modules (tests/e2e/conftest.py),
    and it waits for the file the runner writes once the other processes have ended."""
    from types import SimpleNamespace
    from pathlib import Path

    from tests.e2e import conftest

    assert not any(path.endswith("test_restart.py") for path in runner.E2E_SHARDS[1])
    items = [SimpleNamespace(path=Path(f"tests/e2e/{name}")) for name in ("test_analysis.py", "test_restart.py",
                                                                          "test_steering.py", "test_deploy.py")]
    conftest.pytest_collection_modifyitems(items)
    assert [item.path.name for item in items] == ["test_analysis.py", "test_steering.py", "test_deploy.py", "test_restart.py"]


def test_the_runner_says_the_others_have_ended_only_once_every_one_has(tmp_path):
    import subprocess
    import sys

    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    slow = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    done = tmp_path / "alone"
    import threading

    telling = threading.Thread(target=runner.tell_when_others_end, args=({"beside": (quick, done), "e2e-1": (slow, done)}, done))
    telling.start()
    quick.wait()
    telling.join(timeout=1)
    assert telling.is_alive() and not done.exists()  # the slow one still runs
    slow.communicate(b"")
    telling.join(timeout=30)
    assert done.read_text() == "the other test processes have ended\n"
