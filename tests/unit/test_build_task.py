"""The build task checks the ref out first, then builds (issue 24: the checkout task is gone, a task process less per
release): one XCom carries the checkout's fields and the image's; a bad ref or repository fails build with the
checkout's words; a git error is tried once more inside build, as the checkout task's retry did."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from deployflow.airflow import checkout_step, operators
from deployflow.airflow.checkout_step import RENAMED, build_result, check_out
from deployflow.catalog import parse_service
from deployflow.errors import StageFailed
from deployflow.pipeline.build import BuiltImage
from deployflow.pipeline.checkout import Checkout, run_git
from tests.unit.fakes import FakeEngine
from tests.unit.test_checkout import git

DIGEST = "sha256:" + "d" * 64
# What the checkout task's XCom held, and what the build task's did: each must be in build's one XCom now.
CHECKOUT_KEYS = {"sha", "short_sha", "ref", "path", "seconds", "committed_at", "workspace", "coverage_dir"}
BUILD_KEYS = {"ref", "image_id", "size_mb", "seconds", "digest", "pushed"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A service's repository with a Dockerfile on main."""
    path = tmp_path / "origin"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "Dockerfile").write_text("FROM scratch\n")
    git(path, "add", ".")
    git(path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "one")
    return path


class RunTI:
    """Resolve's request to pull; what build pushes, in order (its early push and its return value alike)."""

    def __init__(self, request: dict) -> None:
        self.request, self.pushed = request, []

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.request if (task_ids, key) == ("resolve", "return_value") else None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed.append((key, value))


@pytest.fixture
def world(tmp_path, monkeypatch, repo):
    """The build task of a service at ``repo``, a fake engine and registry, a workspace and state of its own."""
    monkeypatch.setenv("DEPLOYFLOW_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    engine = FakeEngine([{"stream": "Step 1/1 : FROM scratch\n"}], [{"aux": {"Digest": DIGEST}}])
    monkeypatch.setattr(operators.Variable, "get", lambda key, default=None: {"deployflow_registry": "127.0.0.1:5000"}.get(key, default))
    monkeypatch.setattr(operators, "DockerHook", lambda **_: SimpleNamespace(api_client=engine))
    monkeypatch.setattr(operators, "registry_credentials", lambda: None)
    service = parse_service({"name": "shop", "source": {"repo": str(repo)}, "environments": {"dev": {"port": 18101}}})
    return SimpleNamespace(task=operators.ImageBuildOperator(task_id="build", service=service), engine=engine, repo=repo,
                           tmp_path=tmp_path)


def build(world, git_ref: str = "main", **request: object) -> tuple[dict, RunTI]:
    ti = RunTI({"git_ref": git_ref, "environment": "dev", **request})
    return world.task.execute({"ti": ti, "run_id": "manual__1", "dag_run": SimpleNamespace(run_type="manual")}), ti


def test_build_checks_out_then_builds_and_its_one_xcom_carries_the_checkout_s_fields_and_the_image_s(world):
    result, ti = build(world)
    sha = git(world.repo, "rev-parse", "main")
    # Every key of both results is there: the checkout's that the image's use otherwise under their new names.
    assert set(result) == {RENAMED.get(k, k) for k in CHECKOUT_KEYS} | BUILD_KEYS
    workspace = world.tmp_path / "ws" / "shop" / "manual__1"
    assert {k: result[k] for k in ("sha", "short_sha", "git_ref", "path", "workspace", "coverage_dir")} == {
        "sha": sha, "short_sha": sha[:12], "git_ref": "main", "path": str(workspace / "src"), "workspace": str(workspace),
        "coverage_dir": str(workspace / "coverage")}
    assert result["committed_at"] == git(world.repo, "show", "-s", "--format=%cI", sha)
    assert isinstance(result["checkout_seconds"], float) and isinstance(result["seconds"], float)
    # The image's own fields keep their names and meanings: what DEPLOY_IMAGE and the record read.
    assert (result["ref"], result["digest"], result["pushed"]) == (f"127.0.0.1:5000/shop:{sha[:12]}", DIGEST, True)
    assert (workspace / "src" / "Dockerfile").is_file() and (workspace / "coverage").is_dir()
    [(kind, built)] = [c for c in world.engine.calls if c[0] == "build"]
    assert (built["path"], built["buildargs"]["APP_COMMIT"]) == (str(workspace / "src"), sha)  # the checked-out tree
    # Before the build, the checkout's part alone: a build that fails still leaves the commit (no image).
    assert ti.pushed == [("return_value", {k: v for k, v in result.items() if k not in BUILD_KEYS})]


@pytest.mark.parametrize(("ref", "elsewhere", "said"), [
    ("mian", None, "checkout: ref 'mian' is not a branch, tag or commit of the repository"),
    ("main", "missing", "checkout: cannot clone "),
])
def test_a_bad_ref_or_repository_fails_build_with_the_checkout_s_words_before_any_docker_call(world, ref, elsewhere, said):
    if elsewhere:
        world.task.service = parse_service({"name": "shop", "source": {"repo": str(world.tmp_path / elsewhere)},
                                           "environments": {"dev": {"port": 18101}}})
    with pytest.raises(AirflowFailException) as failed:
        build(world, ref)
    assert str(failed.value).startswith(said)
    assert world.engine.calls == []


def test_a_promotion_s_build_skips_saying_why_should_it_run_all_the_same(world):
    artifact = {"short_sha": "fedcba987654", "source": "staging", "run_id": "staging__1"}
    with pytest.raises(AirflowSkipException, match="promoting fedcba987654 as staging promoted it .*nothing to check out"):
        build(world, artifact=artifact)
    assert world.engine.calls == [] and not (world.tmp_path / "ws").exists()


def test_a_git_error_is_tried_once_more_after_a_pause_and_then_fails_the_build_with_git_s_words(world, monkeypatch):
    service = world.task.service
    calls: list[list[str]] = []

    def flaky(argv, fails: int):
        calls.append(list(argv))
        if argv[1] == "clone" and sum(c[1] == "clone" for c in calls) <= fails:
            raise OSError("No space left on device")
        return run_git(argv)

    for fails in (1, 2):
        calls.clear()
        paused: list[float] = []
        monkeypatch.setattr(checkout_step, "git_runner", lambda source: lambda argv: flaky(argv, fails))
        log = logging.getLogger("test")
        if fails == 1:  # the second try converges: the first try's half-made tree is gone
            source, checked_out = check_out(service, "main", "manual__1", log, pause=paused.append)
            assert source.sha == git(world.repo, "rev-parse", "main") == checked_out["sha"]
        else:
            with pytest.raises(StageFailed, match=r"^checkout: .* at 'main': No space left on device$"):
                check_out(service, "main", "manual__1", log, pause=paused.append)
        assert [c[1] for c in calls].count("clone") == 2 and paused == [checkout_step.GIT_RETRY_DELAY_S]


def test_a_refusal_is_not_tried_again(world):
    paused: list[float] = []
    with pytest.raises(StageFailed, match="ref 'mian' is not"):
        check_out(world.task.service, "mian", "manual__1", logging.getLogger("test"), pause=paused.append)
    assert paused == []


def test_the_results_cannot_hold_a_key_twice_with_two_meanings():
    checked_out = Checkout(sha="0" * 40, ref="main", path="/ws/src", seconds=0.1).to_dict()
    built = BuiltImage(ref="r/shop:000000000000", image_id="sha256:e", size_mb=1.0, seconds=9.0).to_dict()
    merged = build_result(checked_out, built)
    assert (merged["ref"], merged["git_ref"], merged["seconds"], merged["checkout_seconds"]) == ("r/shop:000000000000", "main", 9.0, 0.1)
    with pytest.raises(ValueError, match="would hold path twice"):
        build_result(checked_out, {**built, "path": "/elsewhere"})


def test_a_build_run_again_starts_from_an_empty_coverage_directory(world):
    # An earlier attempt's data and suite marks (pipeline/suites.py) would let the coverage gate count them.
    result, _ = build(world)
    coverage = Path(result["coverage_dir"])
    for leftover in (".coverage.unit", ".passed.unit", ".gate.unit"):
        (coverage / leftover).write_text("earlier attempt")
    again, _ = build(world)
    assert again["coverage_dir"] == str(coverage) and list(coverage.iterdir()) == []
