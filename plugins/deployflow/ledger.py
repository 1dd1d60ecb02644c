"""The release ledger: one JSON line per release (who, what, where, outcome, timings)."""

from __future__ import annotations

import fcntl
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


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
    outcome: str
    started_at: str | None
    finished_at: str
    seconds: float | None
    rollback_seconds: float | None
    failure: str | None = None  # why the release was rolled back: the analysis, or the failed deploy step
    config: str | None = None  # the configuration version released with the image (a keyed hash; None: no configuration)

    @classmethod
    def of(
        cls, *, request: dict[str, Any], run_id: str, outcome: str, commit: str | None, image: str | None,
        previous: str | None, started: datetime | None, rollback: dict[str, Any] | None, judged: str | None = None,
        config: str | None = None,
    ) -> ReleaseEntry:
        """``judged``: why the release failed before the deployer could say: the first task's refusal of the
        request, or canary analysis (else the deployer's reason, in rollback)."""
        now = datetime.now(timezone.utc)
        return cls(
            service=request.get("service", "?"), environment=request.get("environment", "?"),
            strategy=request.get("strategy", "?"), version=image.rsplit(":", 1)[-1] if image else None,
            commit=commit, image=image, previous=previous, requested_by=request.get("requested_by", "?"),
            reason=request.get("reason", ""), run_id=run_id, outcome=outcome,
            started_at=started.isoformat() if started else None, finished_at=now.isoformat(),
            seconds=round((now - started).total_seconds(), 1) if started else None,
            rollback_seconds=(rollback or {}).get("seconds"), failure=judged or (rollback or {}).get("because"),
            config=config or None,
        )

    def summary(self) -> str:
        took = f" in {self.seconds:.0f} s" if self.seconds is not None else ""
        because = f" ({self.failure})" if self.failure else ""
        config = f" with configuration {self.config}" if self.config else ""
        return (f"{self.service} {self.version or '(no image)'}{config} -> {self.environment} ({self.strategy}), "
                f"asked by {self.requested_by}: {self.outcome}{took}{because}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: ReleaseEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # two environments may record at once
            handle.write(json.dumps(entry.to_dict()) + "\n")

    def entries(self) -> list[ReleaseEntry]:
        if not self.path.exists():
            return []
        return [ReleaseEntry(**json.loads(line)) for line in self.path.read_text().splitlines() if line.strip()]
