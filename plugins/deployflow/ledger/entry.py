"""One release as the ledger keeps it: who asked, what, where, the outcome, the timings, what it cost its users."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any

from deployflow.outcomes import NOT_GIVEN, Outcome, detail

COST_FIELDS = ("requests", "failed_requests", "saved_by_router", "restore_seconds", "extra_instance_seconds")


@dataclass(frozen=True)
class ReleaseEntry:
    service: str
    environment: str
    strategy: str
    version: str | None
    commit: str | None
    image: str | None
    previous: str | None
    requested_by: str
    reason: str
    run_id: str
    outcome: Outcome  # how it ended (a str in a row: its value)
    started_at: str | None
    finished_at: str
    seconds: float | None
    rollback_seconds: float | None
    failure: str | None = None  # why it did not promote: the refusal, the rejection, the analysis, the failed task or step
    config: str | None = None  # the configuration version released with the image (a keyed hash; None: no configuration)
    committed_at: str | None = None  # the commit's time (ISO 8601): lead time for changes runs from it
    failed_requests: int | None = None  # what the release cost its users: failed requests at the router while it ran
    restore_seconds: float | None = None  # from the failing check to all traffic back on the old version
    extra_instance_seconds: float | None = None  # instance-seconds beyond the live set's, while both ran
    steps: dict[str, float] | None = None  # each task's seconds
    digest: str | None = None  # the image's registry digest: what ran, exactly (recover pulls by it)
    analysis_score: float | None = None  # canary analysis' last score, 0-100 (None: not analysed)
    requests: int | None = None  # requests the router answered while the release ran
    saved_by_router: int | None = None  # connection errors, retries and redispatches the clients never saw
    approval: str | None = None  # the gate's decision: approved, rejected, timed out, refused (None: no gate stood)
    approved_by: str | None = None  # who decided the gate: every approver, in order, or who rejected (None: nobody)
    approved_at: str | None = None  # when the deciding answer came
    freeze_override: str | None = None  # why the release went into a freeze window (it needed an approval)
    promoted_from: str | None = None  # the environment whose promoted image this release took, unbuilt
    tests: dict[str, Any] | None = None  # each suite's counts, seconds, coverage (a promotion: the source's)
    approval_answers: list[dict[str, Any]] | None = None  # every answer the gate took: by, answer, at, comment, counted, reason
    outcome_detail: str | None = None  # the outcome as a sentence a person reads ("rolled back to 1a2b3c"), bounded

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))  # a stored value, or an unknown one refused here

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseEntry:
        """An entry as stored (JSON lines or a row); fields it does not know are left out, missing ones default."""
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

    @classmethod
    def of(
        cls, *, request: dict[str, Any], run_id: str, outcome: Outcome, commit: str | None, image: str | None,
        previous: str | None, started: datetime | None, rollback: dict[str, Any] | None, judged: str | None = None,
        config: str | None = None, committed_at: str | None = None, steps: dict[str, float] | None = None,
        cost: dict[str, Any] | None = None, digest: str | None = None, analysis_score: float | None = None,
        approval: dict[str, Any] | None = None, tests: dict[str, Any] | None = None, said: str | None = None,
    ) -> ReleaseEntry:
        """``judged``: why the release failed before the deployer could say: the first task's refusal of the
        request, a gate's rejection, canary analysis, a failed check or task (else the deployer's reason, in
        rollback). ``said``: the outcome's sentence (the detail; the outcome's value when None)."""
        now = datetime.now(timezone.utc)
        return cls(
            service=request.get("service", "?"), environment=request.get("environment") or NOT_GIVEN,
            strategy=request.get("strategy") or NOT_GIVEN, version=image.rsplit(":", 1)[-1] if image else None,
            commit=commit, image=image, previous=previous, requested_by=request.get("requested_by", "?"),
            reason=request.get("reason", ""), run_id=run_id, outcome=outcome, outcome_detail=detail(said or str(outcome)),
            started_at=started.isoformat() if started else None, finished_at=now.isoformat(),
            seconds=round((now - started).total_seconds(), 1) if started else None,
            rollback_seconds=(rollback or {}).get("seconds"), failure=judged or (rollback or {}).get("because"),
            config=config or None, committed_at=committed_at, steps=steps or None, digest=digest,
            analysis_score=analysis_score, approval=(approval or {}).get("decision"),
            approved_by=(approval or {}).get("by"), approved_at=(approval or {}).get("at"),
            freeze_override=request.get("freeze_override") or None, promoted_from=_taken_from(request),
            tests=tests or None, approval_answers=(approval or {}).get("answers") or None,
            **{k: v for k, v in (cost or {}).items() if k in COST_FIELDS},
        )

    def summary(self) -> str:
        took = f" in {self.seconds:.0f} s" if self.seconds is not None else ""
        because = f" ({self.failure})" if self.failure else ""
        config = f" with configuration {self.config}" if self.config else ""
        return (f"{self.service} {self.version or '(no image)'}{config} -> {self.environment} ({self.strategy}), "
                f"asked by {self.requested_by}: {self.outcome_detail or self.outcome.value}{took}{because}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the outcome's too): a row, a JSON line, an XCom."""
        return {**asdict(self), "outcome": self.outcome.value}


def _taken_from(request: dict[str, Any]) -> str | None:
    """The environment whose promoted image the release took: another's (a promotion) or its own (a rollback)."""
    if request.get("rollback_to"):
        return request.get("environment")
    return request.get("promote_from") or None


_FIELDS = frozenset(f.name for f in fields(ReleaseEntry))  # what from_dict keeps: asked once, not per row
