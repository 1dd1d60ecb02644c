from __future__ import annotations

import os
import subprocess
from pathlib import Path

from datetime import datetime

import pytest

from deployflow.pipeline.checkout import (
    Checkout, checkout, checkout_command, clone_command, commit_of, ls_remote_command, ref_candidates, remote_commit,
    resolve_command,
)
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


# --- the commit a ref names, asked of the remote before any checkout (resolve's measure against what is live) ------

def test_the_ls_remote_command_is_exact():
    assert ls_remote_command("/srv/a", "v1") == ["git", "ls-remote", "--", "/srv/a", "v1", "v1^{}"]


LISTING = "\n".join([
    f"{'1' * 40}\tHEAD", f"{'2' * 40}\trefs/heads/v2", f"{'3' * 40}\trefs/tags/v2", f"{'4' * 40}\trefs/tags/v2^{{}}",
    f"{'5' * 40}\trefs/heads/release/v2", f"{'6' * 40}\trefs/heads/main",
])


@pytest.mark.parametrize(("ref", "commit"), [
    ("HEAD", "1" * 40),
    ("v2", "4" * 40),  # a tag before a branch of that name, as rev-parse takes it; an annotated tag's commit
    ("main", "6" * 40),
    ("release/v2", "5" * 40),
    ("2222222", None),  # a short SHA: only a clone can tell
    ("nope", None),
])
def test_the_remote_listing_names_the_commit_as_a_checkout_would(ref, commit):
    assert remote_commit(LISTING, ref) == commit


@pytest.mark.parametrize("ref", ["HEAD", "main", "feature", "v1", "v1-annotated"])
def test_the_commit_of_a_ref_is_the_one_its_checkout_gets(repo, tmp_path, ref):
    git(repo, "tag", "-a", "v1-annotated", "-m", "annotated", "feature")
    assert commit_of(str(repo), ref) == checkout(str(repo), ref, tmp_path / "src").sha


def test_a_full_sha_names_itself_and_what_the_remote_cannot_say_is_none(repo, tmp_path):
    sha = git(repo, "rev-parse", "feature")
    asked = []
    assert commit_of(str(repo), sha, run=lambda argv: asked.append(argv) or "") == sha and asked == []
    assert commit_of(str(repo), sha[:7]) is None
    assert commit_of(str(tmp_path / "missing"), "main") is None  # the checkout says why
