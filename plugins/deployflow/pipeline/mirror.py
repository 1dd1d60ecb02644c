"""A service's local bare mirror of its repository, under the state directory (``git-mirrors/<service>.git``):
the checkout task fetches each fresh clone into it (from the clone, so no credential is needed twice), and
the Releases view reads it to list the commits between two versions, without a network or a clone.

Commands are built by pure functions (asserted exactly in tests) and run by one small runner with a short
timeout; a commit is only ever a hex string that :data:`COMMIT` matched, never an option or a ref name.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIRRORS = "git-mirrors"  # under the state directory
COMMIT = re.compile(r"[0-9a-f]{7,40}")  # a commit as the ledger names it: its SHA, or the start of it
FIELD = "\x1f"  # between the fields of a line of ``git log`` (the unit separator: in no name or subject)
MAX_COMMITS = 200
TIMEOUT_S = 10.0

Runner = Callable[[Sequence[str]], str]


def mirror_path(state_dir: Path, service: str) -> Path:
    return Path(state_dir) / MIRRORS / f"{service}.git"


def init_command(mirror: Path) -> list[str]:
    return ["git", "init", "--quiet", "--bare", str(mirror)]


def fetch_command(mirror: Path, clone: Path) -> list[str]:
    """Every branch and tag of the clone's origin, as the clone has them, into the mirror (forced: a branch may
    be rewritten; the mirror keeps what it had already fetched only where a ref still holds it)."""
    return ["git", "--git-dir", str(mirror), "fetch", "--quiet", "--no-write-fetch-head", "--", str(clone),
            "+refs/remotes/origin/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]


def log_command(mirror: Path, old: str, new: str, limit: int = MAX_COMMITS) -> list[str]:
    """The commits ``new`` has and ``old`` lacks, newest first: SHA, author, author date, subject."""
    return ["git", "--git-dir", str(mirror), "log", "--no-decorate", "--no-show-signature", f"--max-count={limit}",
            f"--format=%H{FIELD}%an{FIELD}%aI{FIELD}%s", f"{old}..{new}", "--"]


def run_git_briefly(argv: Sequence[str]) -> str:
    """One git command, at most :data:`TIMEOUT_S`; git's own words on a failure (CalledProcessError)."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done.stdout


def keep_mirror(clone: Path, mirror: Path, *, run: Runner) -> str | None:
    """Fetch ``clone`` into ``mirror`` (made first where there is none); a problem, not an exception: the mirror
    only serves the Releases view, a release never waits on it."""
    try:
        if not (mirror / "HEAD").exists():
            mirror.parent.mkdir(parents=True, exist_ok=True)
            run(init_command(mirror))
        run(fetch_command(mirror, clone))
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the repository's mirror {mirror} was not updated: {_said(exc)}"
    return None


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str
    subject: str


@dataclass(frozen=True)
class Changes:
    """The commits between two versions, newest first, or why they cannot be listed (``problem``)."""

    old: str
    new: str
    commits: tuple[Commit, ...] = ()
    problem: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "commits": [asdict(c) for c in self.commits], "problem": self.problem,
                "truncated": self.truncated}


def parse_log(output: str) -> list[Commit]:
    commits = []
    for line in output.splitlines():
        parts = line.split(FIELD, 3)
        if len(parts) == 4:
            commits.append(Commit(*parts))
    return commits


def commits_between(mirror: Path, old: str, new: str, *, run: Runner = run_git_briefly, limit: int = MAX_COMMITS) -> Changes:
    """What ``new`` adds to ``old`` in the mirror; a problem for a commit that is not hex, a mirror that is not
    there, or a commit it does not hold."""
    for name, value in (("old", old), ("new", new)):
        if not COMMIT.fullmatch(value or ""):
            return Changes(old, new, problem=f"{name}: {value!r} is not a commit (7 to 40 lowercase hex digits)")
    if not (mirror / "HEAD").exists():
        return Changes(old, new, problem="no mirror of the service's repository on this host yet (a checkout keeps one "
                                         "under the state directory)")
    try:
        commits = parse_log(run(log_command(mirror, old, new, limit + 1)))
    except (OSError, subprocess.SubprocessError) as exc:
        return Changes(old, new, problem=f"the mirror cannot list these commits: {_said(exc)}")
    return Changes(old, new, tuple(commits[:limit]), truncated=len(commits) > limit)


def _said(exc: BaseException) -> str:
    text = (getattr(exc, "stderr", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
