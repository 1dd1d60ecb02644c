"""What a release decided and how far it got: the record every deploy step reads first."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from deployflow.errors import DeployflowError

COLOURS = ("blue", "green")  # the two sets that take turns (platforms.base)

log = logging.getLogger("deployflow.deployer")

PROMOTED, ROLLED_BACK = "promoted", "rolled back"


class StepFailed(DeployflowError):
    """A deploy step could not finish; traffic is already back on the old version if it had moved
    (``restore_seconds``: how long that took from the failing check)."""

    def __init__(self, message: str, *, restore_seconds: float | None = None) -> None:
        super().__init__(message)
        self.restore_seconds = restore_seconds


@dataclass(frozen=True)
class Target:
    """A version and the image reference that runs it."""

    version: str
    image: str


@dataclass(frozen=True)
class Record:
    """What ``prepare`` found and decided, and how far the release got.

    ``colour`` is the set the new version runs in, ``live`` the set that served
    before (the same set when the platform replaces instances in place), and
    ``percent`` the share of traffic the last finished step gave the new version.
    """

    version: str
    image: str
    colour: str
    live: str | None
    previous: Target | None
    already_live: bool = False
    outcome: str | None = None  # PROMOTED or ROLLED_BACK: a later release of this version starts afresh
    percent: int = 0
    baseline: bool = False  # a fresh baseline of the old version runs beside the canary
    failure: str | None = None  # why a step failed (the deployer's error), for rollback to report
    restore_seconds: float | None = None  # from the failing check to all traffic on the old version (a watch's abort)
    counters: dict[str, int] | None = None  # the router's counters when the release began (cost.py)
    timeline: tuple[tuple[float, int], ...] = ()  # (wall time, instances beyond the environment's size) (cost.py)
    watch: tuple[dict[str, Any], ...] = ()  # the post-promotion watch's verdicts so far, an interval each (watch.py)

    @property
    def serving(self) -> str | None:
        """The set that serves once this release is over (or now, if it never finished)."""
        return self.colour if self.outcome == PROMOTED or self.already_live else self.live

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """A record as saved; fields of older records that no longer exist are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["previous"] = Target(**values["previous"]) if values.get("previous") else None
        values["timeline"] = tuple(tuple(point) for point in values.get("timeline") or ())
        values["watch"] = tuple(dict(verdict) for verdict in values.get("watch") or ())
        values.setdefault("image", "")
        if "live" not in values:  # a record from before the engine kept it: the old version ran in the other colour
            values["live"] = COLOURS[1 - COLOURS.index(values["colour"])] if values["previous"] else None
        return cls(**values)


def nothing_to_roll_back(record: Record | None, environment: str) -> dict[str, Any] | None:
    """Rollback's answer when it has no work: this release changed nothing, or it was already
    rolled back (a retry after the work was done); None when there is work."""
    if record is None or record.already_live or record.outcome == PROMOTED:
        log.info("rollback: this release changed nothing in %s; nothing to roll back", environment)
        return {"rolled_back": False, "reason": "nothing deployed by this release", "seconds": 0.0}
    if record.outcome == ROLLED_BACK:
        return {"rolled_back": True, "to": record.previous.version if record.previous else None, "because": record.failure,
                "seconds": 0.0}
    return None
