"""What a release store is: it keeps one environment's release record."""

from __future__ import annotations

from typing import Protocol

from deployflow.record import Record


class ReleaseStore(Protocol):
    def load(self) -> Record | None:
        """The environment's last release record, whatever its version; None before the first release."""

    def save(self, record: Record) -> None:
        """Keep ``record`` as the environment's release record, in one atomic write."""
