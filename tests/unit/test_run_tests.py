"""tests/runner.py (make test, through scripts/run_tests.py): a test file that neither of its two pytest processes runs is refused."""

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
