"""A release request: what a person (UI form), CI (REST conf) or the schedule asks for.

The same rules feed Airflow's trigger-form Params (JSON schema, checked by
Airflow before a run exists) and :meth:`ReleaseRequest.from_params` (checked
again by the first task, so a run created some other way cannot skip them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from deployflow.catalog import GIT_REF, STRATEGIES, Service
from deployflow.errors import ConfigError, one_of

USE_CATALOG = "catalog"
STRATEGY_CHOICES = (USE_CATALOG, *STRATEGIES)
REASON_MAX = 500
GIT_REF_PATTERN = GIT_REF.pattern


def param_schema(service: Service) -> dict[str, dict[str, Any]]:
    """JSON-schema fragments for the trigger form, one per parameter, with defaults."""
    environments = list(service.environments)
    return {
        "environment": {
            "default": environments[0],
            "type": "string",
            "enum": environments,
            "title": "Environment",
            "description": "Where to release. Each has its own strategy in the catalog.",
        },
        "git_ref": {
            "default": service.source.default_ref,
            "type": "string",
            "pattern": GIT_REF_PATTERN,
            "minLength": 1,
            "maxLength": 200,
            "title": "Git ref",
            "description": "Branch, tag or commit to release.",
        },
        "strategy": {
            "default": USE_CATALOG,
            "type": "string",
            "enum": list(STRATEGY_CHOICES),
            "title": "Strategy",
            "description": "'catalog' uses the environment's strategy from the service catalog.",
        },
        "reason": {
            "default": "",
            "type": "string",
            "maxLength": REASON_MAX,
            "title": "Reason",
            "description": "Why this release (recorded in the release ledger).",
        },
    }


@dataclass(frozen=True)
class ReleaseRequest:
    service: str
    environment: str
    git_ref: str
    strategy: str
    reason: str
    requested_by: str

    @classmethod
    def from_params(cls, service: Service, params: Mapping[str, Any], *, requested_by: str = "") -> ReleaseRequest:
        """Validate ``params`` against ``service``; the strategy is resolved from the catalog if asked."""
        unknown = sorted(set(params) - set(param_schema(service)))
        if unknown:
            raise ConfigError(f"params.{unknown[0]}", f"unknown parameter; valid ones are {', '.join(param_schema(service))}")
        environment = params.get("environment")
        if environment not in service.environments:
            raise ConfigError("params.environment", one_of(environment, tuple(service.environments)))
        git_ref = params.get("git_ref") or service.source.default_ref
        if not isinstance(git_ref, str) or not re.match(GIT_REF_PATTERN, git_ref):
            raise ConfigError("params.git_ref", f"{git_ref!r} is not valid; must be a branch, tag or commit name")
        strategy = params.get("strategy") or USE_CATALOG
        if strategy not in STRATEGY_CHOICES:
            raise ConfigError("params.strategy", one_of(strategy, STRATEGY_CHOICES))
        if strategy == USE_CATALOG:
            strategy = service.environments[environment].strategy
        reason = params.get("reason") or ""
        if not isinstance(reason, str) or len(reason) > REASON_MAX:
            raise ConfigError("params.reason", f"must be text of at most {REASON_MAX} characters")
        return cls(service.name, environment, git_ref, strategy, reason, requested_by)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
