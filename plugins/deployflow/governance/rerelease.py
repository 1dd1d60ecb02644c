"""A release measured against what the environment runs: the live release's commit and configuration again is
nothing to do ("already live"); its commit with another configuration takes its tested image, unbuilt, as a
promotion takes an earlier environment's; anything else is built and tested.

The ledger says what is live (the newest promoted release with an image and a commit, as a rollback reads it);
the commit comes from the remote (``pipeline.checkout.commit_of``) and the configuration version from the
environment's configuration, both before any checkout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from deployflow.governance.promotion import Artifact, promoted
from deployflow.ledger.entry import ReleaseEntry
from deployflow.outcomes import Outcome

BUILD, REUSE, ALREADY_LIVE = "build", "reuse", "already_live"


@dataclass(frozen=True)
class Rerelease:
    """What the release needs: ``need`` is BUILD, REUSE (``artifact``: the live release's image and tests) or
    ALREADY_LIVE (``artifact``: the live release); ``reason`` says why, for the log, the client and the ledger."""

    need: str
    reason: str
    artifact: Artifact | None = None


def against_live(entries: Iterable[ReleaseEntry], *, environment: str, commit: Callable[[], str | None],
                 config: Callable[[], str], others_running: Callable[[], int] = lambda: 0) -> Rerelease:
    """What a release needs in ``environment``, whose ledger rows are ``entries``: of the commit ``commit()`` names
    (None: not known before a checkout), with the configuration version ``config()`` ('' for none). Each is asked
    only when the answer depends on it (the remote, the secrets, the scheduler), in that order.

    The live release's commit and configuration again is nothing to do, unless what serves is not known (a release
    after it began its deploy and was not rolled back) or other runs of the service (``others_running()``) may
    change it before this one would have: then its image is deployed again through the lock, unbuilt."""
    rows = list(entries)
    live = next(iter(promoted(rows)), None)
    if live is None:
        return Rerelease(BUILD, f"nothing promoted in {environment} yet")
    sha = commit()
    if sha is None:
        return Rerelease(BUILD, "the ref's commit is known only after a checkout")
    if sha != live.commit:
        return Rerelease(BUILD, f"commit {sha[:12]} is not the live one ({live.commit[:12]})")
    artifact = Artifact.of(live)
    same = f"{live.commit[:12]} is live in {environment} (run {live.run_id})"
    version = config()
    if (live.config or "") != version:
        return Rerelease(REUSE, f"{same} with configuration {live.config or 'none'}: releasing configuration "
                                f"{version or 'none'} with its image, unbuilt", artifact)
    unsettled = [e for e in rows if e.finished_at > live.finished_at and e.outcome is Outcome.FAILED]
    if unsettled:
        last = max(unsettled, key=lambda e: e.finished_at)
        return Rerelease(REUSE, f"{same}, but run {last.run_id} failed during its deploy since: deploying its image "
                                "again, unbuilt", artifact)
    others = others_running()
    if others:
        return Rerelease(REUSE, f"{same}, but {others} other run(s) of the service may change it first: deploying its "
                                "image again through the lock, unbuilt", artifact)
    return Rerelease(ALREADY_LIVE, f"{same} with the same configuration ({version or 'none'}): nothing to build, "
                                   "test or deploy", artifact)
