"""Check out one ref of a service's repository into a release workspace.

Commands are built by pure functions (asserted exactly in tests) and run by
one small runner, so what touches git is visible in one place.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from deployflow.errors import StageFailed

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], str]
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def clone_command(location: str, dest: Path) -> list[str]:
    # --no-checkout: the ref is checked out detached below, whatever branch HEAD names.
    return ["git", "clone", "--quiet", "--no-checkout", "--", location, str(dest)]


def resolve_command(dest: Path, candidate: str) -> list[str]:
    return ["git", "-C", str(dest), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"]


def checkout_command(dest: Path, sha: str) -> list[str]:
    return ["git", "-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha]


def commit_time_command(dest: Path, sha: str) -> list[str]:
    """The commit's time (committer date, ISO 8601): where the ledger's lead time for changes starts."""
    return ["git", "-C", str(dest), "show", "-s", "--format=%cI", sha]


def log_command(dest: Path, old: str, new: str, limit: int) -> list[str]:
    """The commits in ``new`` that ``old`` lacks, newest first, one line each (what an approver reads)."""
    return ["git", "-C", str(dest), "log", "--oneline", "--no-decorate", f"--max-count={limit}", f"{old}..{new}", "--"]


def ls_remote_command(location: str, ref: str) -> list[str]:
    """The remote's refs whose name ends in ``ref``, an annotated tag's commit too: what a ref names, without a clone."""
    return ["git", "ls-remote", "--", location, ref, f"{ref}^{{}}"]


def remote_commit(listing: str, ref: str) -> str | None:
    """The commit ``ref`` names in ``git ls-remote`` output, as a checkout resolves it: ``HEAD``, then a tag (its
    peeled commit), then a branch; None when the listing does not say (a short SHA, a ref the remote lacks: only
    a clone can tell)."""
    names = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        names[name.strip()] = sha.strip()
    candidates = ["HEAD"] if ref == "HEAD" else [f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}"]
    return next((names[c] for c in candidates if c in names), None)


def ref_candidates(ref: str) -> list[str]:
    """Names to try for ``ref`` in a fresh clone: as given, then as a branch of origin."""
    return [ref] if ref == "HEAD" else [ref, f"origin/{ref}"]


# The tree is the image's build context: COPY keeps its modes, and the image's own user must read
# them, whatever umask the task inherited (the local stack runs Airflow under 077).
TREE_UMASK = 0o022


def run_git(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
    """Run one git command; a failure raises with git's own words. ``env`` adds to the environment (never to
    argv, which any process can read): how credentials reach git (``credentials_env``). Git never prompts."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=600, check=False, umask=TREE_UMASK,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})})
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done.stdout.strip()


@dataclass(frozen=True)
class Checkout:
    sha: str
    ref: str
    path: str
    seconds: float
    committed_at: str | None = None

    @property
    def short_sha(self) -> str:
        return self.sha[:12]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "short_sha": self.short_sha}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Checkout:
        return cls(sha=str(data["sha"]), ref=str(data["ref"]), path=str(data["path"]), seconds=float(data["seconds"]),
                   committed_at=data.get("committed_at"))


def credentials_env(login: str, password: str) -> dict[str, str]:
    """What git reads an https repository's credentials from, for one command: an ``http.extraHeader`` set
    through git's environment-only configuration (``GIT_CONFIG_COUNT``), so nothing is written to the
    clone's .git/config, the URL or the command line."""
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}"}


def checkout(location: str, ref: str, dest: Path, *, run: Runner = run_git) -> Checkout:
    """Clone ``location`` into ``dest`` (emptied first) and check out ``ref`` detached."""
    started = time.monotonic()
    if dest.exists():
        shutil.rmtree(dest)  # a retried task starts from a clean tree
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(clone_command(location, dest))
    except subprocess.CalledProcessError as exc:
        raise StageFailed(f"checkout: cannot clone {location}: {(exc.stderr or '').strip()}") from exc
    sha = _resolve(dest, ref, run)
    run(checkout_command(dest, sha))
    committed_at = run(commit_time_command(dest, sha)).strip() or None
    return Checkout(sha=sha, ref=ref, path=str(dest), seconds=round(time.monotonic() - started, 3), committed_at=committed_at)


def _resolve(dest: Path, ref: str, run: Runner) -> str:
    for candidate in ref_candidates(ref):
        try:
            return run(resolve_command(dest, candidate))
        except subprocess.CalledProcessError:
            continue
    raise StageFailed(f"checkout: ref {ref!r} is not a branch, tag or commit of the repository")


def commit_of(location: str, ref: str, *, run: Runner = run_git) -> str | None:
    """The commit ``ref`` names in the repository at ``location``, asked of the remote without a clone (a second
    or less; a full SHA names itself, as it does for ``git rev-parse``); None when only a checkout can tell, or the
    remote does not answer (the checkout then says why)."""
    if FULL_SHA.fullmatch(ref):
        return ref
    try:
        return remote_commit(run(ls_remote_command(location, ref)), ref)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log.warning("git ls-remote %s %s: %s", location, ref, (getattr(exc, "stderr", "") or str(exc)).strip())
        return None


def commits_between(dest: Path, old: str, new: str, *, limit: int = 20, run: Runner = run_git) -> list[str]:
    """``git log --oneline old..new`` in the repository at ``dest``: what the release adds to what is live."""
    output = run(log_command(dest, old, new, limit))
    return output.splitlines() if output else []
