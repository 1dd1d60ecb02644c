from __future__ import annotations

import os
import subprocess
from pathlib import Path

from datetime import datetime

import pytest

from deployflow.pipeline.checkout import Checkout, checkout, checkout_command, clone_command, ref_candidates, resolve_command
from deployflow.errors import StageFailed


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "origin"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    git(path, "config", "user.name", "t")
    (path / "app.txt").write_text("one\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "one")
    git(path, "tag", "v1")
    git(path, "checkout", "-qb", "feature")
    (path / "app.txt").write_text("two\n")
    git(path, "commit", "-qam", "two")
    git(path, "checkout", "-q", "main")
    return path


def test_commands_are_exact():
    dest = Path("/ws/src")
    assert clone_command("/srv/a", dest) == ["git", "clone", "--quiet", "--no-checkout", "--", "/srv/a", "/ws/src"]
    assert resolve_command(dest, "main") == [
        "git", "-C", "/ws/src", "rev-parse", "--verify", "--quiet", "--end-of-options", "main^{commit}",
    ]
    assert checkout_command(dest, "abc") == [
        "git", "-C", "/ws/src", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", "abc",
    ]
    assert ref_candidates("HEAD") == ["HEAD"]
    assert ref_candidates("feature") == ["feature", "origin/feature"]


@pytest.mark.parametrize("ref", ["HEAD", "main", "feature", "v1"])
def test_checkout_resolves_branches_tags_and_head(repo, tmp_path, ref):
    expected = git(repo, "rev-parse", f"{ref}^{{commit}}")
    result = checkout(str(repo), ref, tmp_path / "ws" / "src")
    assert result.sha == expected
    assert result.short_sha == expected[:12]
    assert (tmp_path / "ws" / "src" / "app.txt").read_text() == ("two\n" if ref == "feature" else "one\n")


def test_checkout_gives_the_commit_time_for_lead_time(repo, tmp_path):
    result = checkout(str(repo), "main", tmp_path / "src")
    assert result.committed_at == git(repo, "show", "-s", "--format=%cI", "main")
    assert datetime.fromisoformat(result.committed_at).tzinfo is not None
    assert Checkout.from_dict(result.to_dict()) == result


def test_checkout_by_commit_sha(repo, tmp_path):
    sha = git(repo, "rev-parse", "feature")
    assert checkout(str(repo), sha, tmp_path / "src").sha == sha


def test_unknown_ref_is_a_clear_failure(repo, tmp_path):
    with pytest.raises(StageFailed, match="ref 'nope' is not a branch, tag or commit"):
        checkout(str(repo), "nope", tmp_path / "src")


def test_unreachable_repository_is_a_clear_failure(tmp_path):
    with pytest.raises(StageFailed, match="cannot clone"):
        checkout(str(tmp_path / "missing"), "main", tmp_path / "src")


def test_a_retry_starts_from_a_clean_tree(repo, tmp_path):
    dest = tmp_path / "src"
    checkout(str(repo), "main", dest)
    (dest / "leftover").write_text("from a failed attempt")
    checkout(str(repo), "main", dest)
    assert not (dest / "leftover").exists()


def test_the_tree_is_readable_by_others_whatever_the_umask(repo, tmp_path):
    # The tree is a build context: COPY keeps its modes, and a service's image user is not its owner.
    previous = os.umask(0o077)
    try:
        result = checkout(str(repo), "main", tmp_path / "ws" / "src")
    finally:
        os.umask(previous)
    assert (Path(result.path) / "app.txt").stat().st_mode & 0o777 == 0o644
