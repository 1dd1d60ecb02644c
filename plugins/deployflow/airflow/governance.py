"""What the first task decides beyond the request's own rules: is the environment frozen (and is the freeze
overridden), and which promoted artifact does a promotion take. Read from the catalog, the Airflow Variable of
the ad-hoc freeze, and the ledger; the release's later tasks read the decision from resolve's XCom.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.sdk import Variable

from deployflow.airflow.ledger import releases_in
from deployflow.governance import freeze
from deployflow.catalog import Service
from deployflow.errors import ConfigError
from deployflow.governance.promotion import promoted_artifact, rollback_artifact
from deployflow.release import ReleaseRequest

FREEZE_VARIABLE = "deployflow_freeze"  # JSON: {"name", "reason", "until", "environments"}: every service's freeze

log = logging.getLogger(__name__)


def govern(service: Service, request: ReleaseRequest, *, now: datetime) -> dict[str, Any]:
    """The freeze the request overrides (``freeze``) and the artifact it promotes (``artifact``); refuses
    (:class:`ConfigError`) a release into a freeze without an override, and a promotion of nothing."""
    decided: dict[str, Any] = {}
    env = service.environments[request.environment]
    adhoc = freeze.parse_adhoc(Variable.get(FREEZE_VARIABLE, default=None), now)
    frozen = freeze.frozen(env.freeze, adhoc, request.environment, now)
    if frozen is not None and not request.freeze_override:
        raise ConfigError("params.freeze_override", f"{frozen.message(request.environment)}; to release anyway, "
                                                    "give a reason in freeze_override (the release then needs an approval)")
    if frozen is not None:
        log.warning("freeze overridden: %s; reason: %s (the release waits for an approval)",
                    frozen.message(request.environment), request.freeze_override)
        decided["freeze"] = {"name": frozen.name, "source": frozen.source, "ends_at": frozen.ends_at.isoformat() if frozen.ends_at else None,
                             "message": frozen.message(request.environment)}
    elif request.freeze_override:
        log.info("freeze_override given, but %s is not frozen: no approval is needed for it", request.environment)
    if request.promote_from:
        decided["artifact"] = _artifact(service, request).to_dict()
    if request.rollback_to:
        artifact = rollback_artifact(releases_in(service.name, request.environment), service=service.name,
                                     environment=request.environment, to=request.rollback_to)
        log.info("rolling %s back to %s (configuration %s, promoted there by run %s): %s, no checkout, build or tests",
                 request.environment, artifact.short_sha, artifact.config or "none", artifact.run_id, artifact.image)
        decided["artifact"] = artifact.to_dict()
    return decided


def _artifact(service: Service, request: ReleaseRequest):  # -> Artifact
    defaults = {service.source.default_ref, *((service.nightly.ref,) if service.nightly and service.nightly.ref else ())}
    commit = None if request.git_ref in defaults else request.git_ref
    entries = releases_in(service.name, request.promote_from)
    artifact = promoted_artifact(entries, service=service.name, source=request.promote_from, commit=commit)
    log.info("promoting %s from %s: %s (promoted there by run %s), no build", artifact.short_sha, artifact.source,
             artifact.image, artifact.run_id)
    return artifact


def approval_needed(service: Service, resolved: dict[str, Any], position: str) -> list[str]:
    """Why the gate at ``position`` (``deploy`` or ``promote``) waits for a person, from resolve's result
    (the request and its decision); empty: it need not wait."""
    env = service.environments[resolved["environment"]]
    why = []
    if env.approval.required and env.approval.before == position:
        why.append(f"{env.name} asks for an approval before it {'deploys' if position == 'deploy' else 'promotes'}")
    if position == "deploy" and resolved.get("freeze"):
        why.append(f"the freeze is overridden: {resolved['freeze']['message']} "
                   f"(reason: {resolved.get('freeze_override')})")
    return why
