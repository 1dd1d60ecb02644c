"""What a release store is: it keeps one environment's release record."""

from __future__ import annotations

from typing import Protocol

from deployflow.record import Record


class ReleaseStore(Protocol):
    def load(self) -> Record | None:
        """The environment's last release record, whatever its version; None before the first release."""

    def save(self, record: Record) -> None:
        """Keep ``record`` as the environment's release record, in one atomic write."""


class TokenHome(Protocol):
    """Where a deployer reads the environment's newest fencing token (``deployflow.rollout.fence``), beside the
    release record it keeps; the ledger stays the tokens' source of truth on Airflow's side."""

    def token(self) -> int:
        """The newest token handed to a step of the environment (0: none yet); one small read."""

    def hand_token(self, token: int) -> None:
        """Make ``token`` the newest, in one atomic write (Airflow's side, as a step takes it)."""
