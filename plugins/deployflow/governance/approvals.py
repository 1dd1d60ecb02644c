"""Separation of duties at an approval gate: who may answer it, how the answers add up, and how free text
reaches the page the approver reads.

Nobody answers the gate of a run they triggered; where the catalog lists ``approvers``, only they answer; the
gate passes when ``min_approvals`` distinct people approved, and a single rejection rejects. Airflow is told
to assign the gate to the approvers but the requester, so its API refuses anyone else (HTTP 403); :func:`tally`
is the gate's own check of every answer when it resumes, and holds where Airflow's cannot: a gate with no
approvers listed (Airflow can only name who may answer, not who may not), an auth manager that lets every
user answer (the simple auth manager's all-admins mode), or a second answer by someone who approved already.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from deployflow.catalog.model import Approval


class Count(Enum):
    """What one answer does to the gate."""

    APPROVED = "approved"  # enough distinct people approved: the gate passes
    WAITING = "waiting"  # an approval counted, more are needed: the gate waits again
    REJECTED = "rejected"  # the gate fails
    REFUSED = "refused"  # the answer does not count: the gate waits for someone else


@dataclass(frozen=True)
class Tally:
    count: Count
    approved_by: tuple[str, ...]  # who approved so far, in the order they did
    reason: str  # a sentence a person reads (the task log, the ledger)


def answerers(rule: Approval, requester: str | None) -> tuple[str, ...]:
    """Who may answer, for Airflow to assign: the approvers but the requester (empty: anyone but the requester,
    which Airflow cannot say, so the gate checks it on resume)."""
    return tuple(name for name in rule.approvers if name != requester)


def shortfall(rule: Approval, requester: str | None) -> str | None:
    """Why the gate can never pass for this requester (None: it can): too few approvers are left besides them."""
    left = answerers(rule, requester)
    if not rule.approvers or len(left) >= rule.min_approvals:
        return None
    return (f"{requester} triggered the run and may not approve it; {len(left)} other approver(s) "
            f"({', '.join(left) or 'none'}) cannot make the {rule.min_approvals} approval(s) needed")


def tally(rule: Approval, requester: str | None, approved_by: Sequence[str], *, by: str | None, approves: bool) -> Tally:
    """Count one answer ``by`` a user (``approves``: Approve, else Reject) after the approvals ``approved_by``."""
    so_far = tuple(approved_by)

    def refused(reason: str) -> Tally:
        return Tally(Count.REFUSED, so_far, f"{reason}: the answer does not count, the gate waits for another")

    if not by:
        return refused("an answer by no named user")
    if by == requester:
        return refused(f"{by} triggered the run and may not answer its approval")
    if rule.approvers and by not in rule.approvers:
        return refused(f"{by} is not one of the approvers ({', '.join(rule.approvers)})")
    if not approves:
        return Tally(Count.REJECTED, so_far, f"rejected by {by}")
    if by in so_far:
        return refused(f"{by} approved already; {rule.min_approvals} different people must approve")
    now = (*so_far, by)
    if len(now) >= rule.min_approvals:
        return Tally(Count.APPROVED, now, f"approved by {', '.join(now)}")
    return Tally(Count.WAITING, now, f"{len(now)} of {rule.min_approvals} approvals ({', '.join(now)}): "
                                     "the gate waits for another approver")


# Every ASCII punctuation character: CommonMark lets a backslash make each one literal.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def literal_markdown(text: str) -> str:
    """``text`` as it reads, once rendered as Markdown on one line: no link, image, HTML, emphasis or code of
    its own (a trigger's reason, a commit subject are anyone's words)."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))
