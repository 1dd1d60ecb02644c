"""Promotion between environments: a later environment takes the exact image (by digest) and the test results
that an earlier one promoted, without building again (Kargo's freight, Octopus's lifecycles).

The ledger is the proof: a release counts as promoted in an environment when its row there says ``promoted``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from deployflow.errors import ConfigError
from deployflow.ledger.entry import ReleaseEntry
from deployflow.outcomes import Outcome

COMMIT = re.compile(r"[0-9a-f]{7,64}")
SHOWN = 5  # promoted commits a refusal lists


@dataclass(frozen=True)
class Artifact:
    """What an earlier environment proved: the image by digest, the commit it was built from, its tests.

    The release DAG reads it where it would read the build's and the checkout's results."""

    ref: str
    digest: str | None
    sha: str
    short_sha: str
    committed_at: str | None
    tests: dict[str, Any] | None
    source: str  # the environment that promoted it
    run_id: str  # the run that promoted it there
    config: str | None = None  # its configuration version there (a rollback puts it back too)

    @property
    def image(self) -> str:
        """What to deploy: by digest where the registry gave one, so what runs is exactly what was proved."""
        return f"{self.ref}@{self.digest}" if self.digest else self.ref

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, entry: ReleaseEntry) -> Artifact:
        if not entry.image or not entry.commit:
            raise ValueError(f"the release {entry.run_id} has no image or commit")
        return cls(ref=entry.image, digest=entry.digest, sha=entry.commit, short_sha=entry.commit[:12],
                   committed_at=entry.committed_at, tests=entry.tests, source=entry.environment, run_id=entry.run_id,
                   config=entry.config)


def promoted(entries: Iterable[ReleaseEntry]) -> list[ReleaseEntry]:
    """The promoted releases that carry an image and a commit, newest first."""
    rows = [e for e in entries if e.outcome is Outcome.PROMOTED and e.image and e.commit]
    return sorted(rows, key=lambda e: e.finished_at, reverse=True)


def promoted_artifact(entries: Iterable[ReleaseEntry], *, service: str, source: str, commit: str | None) -> Artifact:
    """The artifact ``source`` promoted: its newest promoted release, or the newest of ``commit`` (a SHA or a
    prefix of one) when the request names a commit. Refuses, naming what ``source`` did promote, otherwise."""
    rows = promoted(entries)
    if commit is not None and not COMMIT.fullmatch(commit):
        raise ConfigError("params.git_ref", f"{commit!r} is not a commit: with promote_from, Git ref names a commit "
                                            f"{source} promoted (7 to 64 hex digits) or is left at its default")
    if commit is not None:
        rows = [e for e in rows if e.commit.startswith(commit)]
    if rows:
        return Artifact.of(rows[0])
    found = [e.commit[:12] for e in promoted(entries)][:SHOWN]
    listed = f"; its promoted commits, newest first: {', '.join(found)}" if found else ""
    what = f"commit {commit}" if commit is not None else f"any release of {service}"
    raise ConfigError("params.promote_from", f"{source} has never promoted {what}{listed}")


def rollback_artifact(entries: Iterable[ReleaseEntry], *, service: str, environment: str, to: str) -> Artifact:
    """What a rollback of ``environment`` puts back: the newest release it promoted before the live one (``to`` is
    ``previous``: a different image or configuration), or its newest promoted release of commit ``to``. Refuses,
    naming what the environment did promote, otherwise."""
    rows = promoted(entries)
    if not rows:
        raise ConfigError("params.rollback_to", f"{service} has never been promoted in {environment}: nothing to roll back to")
    live = rows[0]
    if to == "previous":
        found = [e for e in rows[1:] if (e.digest or e.image, e.config) != (live.digest or live.image, live.config)]
    else:
        found = [e for e in rows if e.commit.startswith(to)]
    if found:
        return Artifact.of(found[0])
    listed = ", ".join(e.commit[:12] + (f" (configuration {e.config})" if e.config else "") for e in rows[:SHOWN])
    what = "no release before the live one" if to == "previous" else f"never promoted commit {to}"
    raise ConfigError("params.rollback_to", f"{environment} has {what}; its promoted releases, newest first: {listed}")
