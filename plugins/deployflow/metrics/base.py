"""What a metrics provider is: it answers range queries and says whether it is up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from deployflow.errors import DeployflowError


class MetricsError(DeployflowError):
    """A query failed; the message names the query and the provider's answer."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)  # (unix time, value); NaN kept

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]


class MetricsProvider(Protocol):
    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """Every series the query returns between ``start`` and ``end``, one point per ``step`` seconds."""

    def is_online(self) -> bool:
        """Whether the provider answers at all."""
