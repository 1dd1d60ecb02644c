"""The governed blocks of an environment: ``approval`` (a person approves), ``requires`` (an earlier environment
must have promoted the version first); the freeze windows and notification channels have parsers of their own
(``freeze.py``, ``notifications.py``).

```yaml
environments:
  prod:
    approval: {required: true, approvers: [alice, bob, carol], min_approvals: 2, timeout_s: 3600, before: deploy}
    requires: staging
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import APPROVAL_POSITIONS, Approval, Environment
from deployflow.errors import ConfigError, one_of, shown

# An Airflow user name as the auth managers know it (simple auth manager, FAB, Keycloak): no spaces or quotes.
APPROVER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
APPROVAL_TIMEOUT_MAX_S = 7 * 24 * 3600


def approval(raw: Any, path: str) -> Approval:
    f = Fields(raw, path, ("required", "approvers", "min_approvals", "timeout_s", "before"))
    required = f.get("required", True)  # writing the block asks for a gate unless it says otherwise
    if not isinstance(required, bool):
        raise ConfigError(f.at("required"), f"{shown(required)} is not valid; must be true or false")
    approvers = f.strings("approvers", pattern=APPROVER, hint="an Airflow user name: letters, digits and . _ @ + -")
    if len(set(approvers)) != len(approvers):
        raise ConfigError(f.at("approvers"), f"names an approver twice: {list(approvers)}")
    return Approval(
        required=required,
        approvers=approvers,
        min_approvals=_min_approvals(f, approvers),
        timeout_s=f.integer("timeout_s", 3600, low=10, high=APPROVAL_TIMEOUT_MAX_S),
        before=f.choice("before", APPROVAL_POSITIONS, "deploy"),
    )


def _min_approvals(f: Fields, approvers: tuple[str, ...]) -> int:
    """How many of ``approvers`` must approve; with none listed, one approval by anyone but the requester."""
    if not approvers and f.get("min_approvals", 1) != 1:
        raise ConfigError(f.at("min_approvals"), f"{shown(f.get('min_approvals'))} is not valid without approvers: "
                                                 "list the approvers to count, or leave it at 1")
    return f.integer("min_approvals", 1, low=1, high=max(1, len(approvers)))


def check_requires(environments: Mapping[str, Environment], path: str) -> None:
    """Each ``requires`` names another environment of the service, and no chain of them comes back to itself."""
    for env in environments.values():
        if env.requires is None:
            continue
        at = f"{path}.{env.name}.requires"
        others = tuple(name for name in environments if name != env.name)
        if env.requires not in others:
            raise ConfigError(at, one_of(env.requires, others) if others else "names no other environment of the service")
        seen, step = [env.name], env.requires
        while step is not None:
            if step in seen:
                raise ConfigError(at, f"makes a loop: {' -> '.join([*seen, step])}")
            seen.append(step)
            step = environments[step].requires


def requires(raw: Any, path: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(path, f"must be the name of an environment, got {shown(raw)}")
    return raw
