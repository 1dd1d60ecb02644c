"""How a release ended: one enumeration, written once by the record task and read by everyone (the ledger,
the figures, the exporter, the notifier), never a sentence a reader parses. Its value is the ledger's
``outcome`` and the exporter's ``outcome`` label; the sentence a person reads is the separate detail."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    PROMOTED = "promoted"  # the new version serves
    ROLLED_BACK = "rolled_back"  # a deploy step or check failed; the old version serves again (nothing, on a first deploy)
    REJECTED = "rejected"  # an approval gate did not approve (rejected, timed out); rolled back if the deploy had begun
    REFUSED = "refused"  # resolve refused the request: bad input, a freeze, not a deployer, a value not granted
    FAILED_BEFORE_DEPLOY = "failed_before_deploy"  # resolve, build (its checkout too), a suite (or its coverage gate) or prepare failed: nothing deployed
    FAILED = "failed"  # the deploy began and was not rolled back (the rollback failed, or had nothing to undo)
    ALREADY_LIVE = "already_live"  # the live commit and configuration again: nothing ran after resolve, nothing changed


VALUES = tuple(outcome.value for outcome in Outcome)
NOT_GIVEN = "none"  # the environment (or strategy) of a request refused before it named one
MAX_DETAIL = 300  # the detail is one sentence, not a log


def detail(text: str) -> str:
    """``text`` as the ledger keeps an outcome's detail: one line, at most :data:`MAX_DETAIL` characters."""
    return one_line(text, MAX_DETAIL)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (a reason may hold a check's multi-line output), cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def of_sentence(sentence: str) -> Outcome:
    """The outcome an earlier deployflow wrote as a sentence ("rolled back to 1a2b3c", "failed during deploy"):
    for the ledger's migration to schema 6 and the import of old JSON lines only, once. A value is itself."""
    if sentence in VALUES:
        return Outcome(sentence)
    for prefix, outcome in _SENTENCES:
        if sentence.startswith(prefix):
            return outcome
    return Outcome.FAILED  # no version wrote another: a row edited by hand ended somehow, and not promoted


_SENTENCES = (
    ("promoted", Outcome.PROMOTED), ("refused", Outcome.REFUSED), ("rejected", Outcome.REJECTED),
    ("rolled back", Outcome.ROLLED_BACK), ("failed before deploy", Outcome.FAILED_BEFORE_DEPLOY),
    ("failed during deploy", Outcome.FAILED),
)
