"""A release request: what a person (UI form), CI (REST conf) or the schedule asks for.

The same rules feed Airflow's trigger-form Params (JSON schema, checked by
Airflow before a run exists) and :meth:`ReleaseRequest.from_params` (checked
again by the first task, so a run created some other way cannot skip them,
and so what a JSON schema cannot say, such as "no unknown key", is still said).

A manual or REST trigger names its environment; only the nightly schedule
releases without one, to the catalog's ``nightly.environment``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from deployflow.catalog import GIT_REF_PATTERN, STRATEGIES, Service, check_git_ref
from deployflow.catalog.parsing import TEMPLATE_MARKERS
from deployflow.catalog.refs import MAX_LENGTH as GIT_REF_MAX
from deployflow.errors import ConfigError, one_of
from deployflow.governance.approvals import literal_markdown

USE_CATALOG = "catalog"
STRATEGY_CHOICES = (USE_CATALOG, *STRATEGIES)
REASON_MAX = 500
# A reason is one line of text in the ledger and the logs: no control character (Cc), no format character
# (Cf: the bidi controls U+202A-202E, U+2066-2069, U+200E/F that make text read differently from what it
# is, zero-width ones), no line or paragraph separator.
REASON_REFUSED_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
# The form's share of that rule, for Airflow's JSON-schema check before a run exists: the C0/C1 controls,
# the bidi and zero-width characters, the separators. (The first task checks every category above.)
# '$(?!\n)': the end of the text for Python's re.search too, whose '$' also matches before a final newline.
# No '{{', '{%' or '{#' either: a reason is data, never a template, wherever it is shown (as a catalog value).
PREVIOUS = "previous"
# What a rollback names: the release before the live one, or an earlier promoted release's commit (a prefix).
ROLLBACK_TO_PATTERN = r"^(previous|[0-9a-f]{7,64})$(?!\n)"
REASON_PATTERN = (
    r"^(?!.*\{[{%#])[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]*$(?!\n)"
)
# The label of null in an optional select of the trigger form (Airflow's is the text "null"): nothing.
NOT_GIVEN = {"null": ""}
# A nightly service's environment by default: what Airflow's check of a scheduled run passes and the form counts
# as empty (a required field holding "" keeps the Trigger button disabled); the first task refuses it elsewhere.
NIGHTLY_DEFAULT = ""


def param_schema(service: Service) -> dict[str, dict[str, Any]]:
    """JSON-schema fragments for the trigger form, one per parameter, with their defaults.

    Airflow's form (3.3) stars a field, and keeps Trigger disabled while it is empty, when its ``type`` does not
    allow "null": an optional field's type is ``["null", ...]``, its default null, shown empty (``NOT_GIVEN``).

    ``environment`` has no default, so Airflow refuses a trigger that does not name one (HTTP 400, no run)
    unless the service has a nightly schedule: a scheduled run must pass Airflow's check with the defaults
    alone, so there the default is "", which only the schedule may leave as it is (the first task refuses
    it for any other run) and the form still counts as empty. A scheduled run's ref is the nightly's.
    """
    environments = list(service.environments)
    environment: dict[str, Any] = {
        "type": "string",
        "enum": environments,
        "title": "Environment",
        "description": "Where to release (required). Each has its own strategy in the catalog.",
    }
    git_ref = service.source.default_ref
    if service.nightly is not None:
        environment.update(enum=[*environments, NIGHTLY_DEFAULT], default=NIGHTLY_DEFAULT, description=(
            f"Where to release (required; only the nightly schedule leaves it empty, for {service.nightly.environment}). "
            "Each has its own strategy in the catalog."))
        git_ref = service.nightly.ref or git_ref
    return {
        "environment": environment,
        "git_ref": {
            "default": git_ref,
            "type": "string",
            "pattern": GIT_REF_PATTERN,
            "minLength": 1,
            "maxLength": GIT_REF_MAX,
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
            "default": None,
            "type": ["null", "string"],
            "maxLength": REASON_MAX,
            "pattern": REASON_PATTERN,
            "title": "Reason",
            "description": "Why this release (recorded in the release ledger); one line of text.",
        },
        "promote_from": {
            "default": None,
            "type": ["null", "string"],
            "enum": [None, *environments],
            "values_display": dict(NOT_GIVEN),
            "title": "Promote from",
            "description": "Release the image (by digest) and test results an earlier environment promoted, "
                           "without building; Git ref then names that release's commit, or is left as it is "
                           "for the latest. Empty: build the Git ref (unless the environment requires another).",
        },
        "rollback_to": {
            "default": None,
            "type": ["null", "string"],
            "pattern": ROLLBACK_TO_PATTERN,
            "title": "Roll back to",
            "description": "Put back a release this environment promoted before, its image by digest and its "
                           "configuration version, with no checkout, build or tests: 'previous' (the one before "
                           "the live one) or its commit (7 to 64 hex digits). Empty: release the Git ref.",
        },
        "freeze_override": {
            "default": None,
            "type": ["null", "string"],
            "maxLength": REASON_MAX,
            "pattern": REASON_PATTERN,
            "title": "Freeze override",
            "description": "Release into a freeze window anyway, for this reason; the release then waits "
                           "for an approval, and the override is recorded.",
        },
        "force": {
            "default": False,
            "type": ["null", "boolean"],  # optional: no star on a checkbox (None is False)
            "title": "Force",
            "description": "Build, test and deploy even if this commit and configuration are already live (they "
                           "end 'already live' at once otherwise, and the live commit with a new configuration "
                           "reuses its tested image).",
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
    promote_from: str = ""
    freeze_override: str = ""
    rollback_to: str = ""
    force: bool = False  # the whole pipeline, whatever is live

    @classmethod
    def from_params(
        cls, service: Service, params: Mapping[str, Any], *, requested_by: str = "", scheduled: bool = False,
    ) -> ReleaseRequest:
        """Validate ``params`` against ``service``; the strategy is resolved from the catalog if asked.

        ``scheduled``: the run is the nightly schedule's, the only one that may leave the environment out.
        """
        valid = tuple(param_schema(service))
        unknown = sorted(set(params) - set(valid), key=str)
        if unknown:
            others = f" (and {', '.join(map(str, unknown[1:]))} too)" if len(unknown) > 1 else ""
            raise ConfigError(f"params.{unknown[0]}", f"unknown parameter{others}; valid ones are {', '.join(valid)}")
        environment = _environment(service, params.get("environment"), scheduled)
        git_ref = check_git_ref(params.get("git_ref") or service.source.default_ref, "params.git_ref")
        strategy = params.get("strategy") or USE_CATALOG
        if strategy not in STRATEGY_CHOICES:
            raise ConfigError("params.strategy", one_of(strategy, STRATEGY_CHOICES))
        if strategy == USE_CATALOG:
            strategy = service.environments[environment].strategy
        reason = check_reason(params.get("reason") or "", "params.reason")
        rollback_to = _rollback_to(params.get("rollback_to") or "", params.get("promote_from") or "")
        # A rollback takes this environment's own earlier release: what it requires was met when that was promoted.
        promote_from = "" if rollback_to else _promote_from(service, environment, params.get("promote_from") or "")
        freeze_override = check_reason(params.get("freeze_override") or "", "params.freeze_override")
        force = params.get("force") or False
        if not isinstance(force, bool):
            raise ConfigError("params.force", f"{force!r} is not valid; must be true or false")
        return cls(service.name, environment, git_ref, strategy, reason, requested_by, promote_from, freeze_override,
                   rollback_to, force)

    def to_dict(self) -> dict[str, str | bool]:
        return asdict(self)


def _environment(service: Service, environment: Any, scheduled: bool) -> str:
    valid = tuple(service.environments)
    if environment in (None, NIGHTLY_DEFAULT):
        if scheduled and service.nightly is not None:
            return service.nightly.environment
        # Never a silent default: a release to the wrong environment is the one mistake not to make quietly.
        raise ConfigError("params.environment", f"is required (only the nightly schedule may leave it out); "
                                                f"valid values are {', '.join(repr(v) for v in valid)}")
    if environment not in valid:
        raise ConfigError("params.environment", one_of(environment, valid))
    return environment


def _promote_from(service: Service, environment: str, source: Any) -> str:
    """The environment whose promoted release this one takes: the request's, else what the environment requires."""
    required = service.environments[environment].requires
    if source == "":
        return required or ""
    others = tuple(name for name in service.environments if name != environment)
    if source not in others:
        raise ConfigError("params.promote_from", one_of(source, others) if others else "no other environment to promote from")
    if required is not None and source != required:
        raise ConfigError("params.promote_from", f"{environment} requires {required}: promote from {required!r} "
                                                 f"(or leave it empty), not {source!r}")
    return source


def _rollback_to(target: Any, promote_from: Any) -> str:
    if target == "":
        return ""
    if not isinstance(target, str) or not re.fullmatch(ROLLBACK_TO_PATTERN, target):
        raise ConfigError("params.rollback_to", f"{target!r} is neither {PREVIOUS!r} nor a commit (7 to 64 hex digits)")
    if promote_from:
        raise ConfigError("params.rollback_to", f"a rollback takes this environment's own earlier release, not "
                                                f"{promote_from}'s: leave promote_from empty")
    return target


def check_reason(reason: Any, field: str) -> str:
    """``reason`` if it is one line of visible text of at most REASON_MAX characters, and no template; else a
    :class:`ConfigError` of ``field`` naming what is wrong (a release's reason, an override's, a gate's comment)."""
    if not isinstance(reason, str) or len(reason) > REASON_MAX:
        raise ConfigError(field, f"must be text of at most {REASON_MAX} characters")
    for char in reason:
        category = unicodedata.category(char)
        if category in REASON_REFUSED_CATEGORIES:
            name = unicodedata.name(char, "a control character")
            raise ConfigError(field, f"contains U+{ord(char):04X} ({name}, category {category}); "
                                     "a reason is one line of visible text")
    marker = next((m for m in TEMPLATE_MARKERS if m in reason), None)
    if marker:
        raise ConfigError(field, f"contains {marker!r}; a reason is data, never a template")
    return reason


NOTE_MAX = 1000  # characters: Airflow keeps a run's note in a column of this size
RUN_ID_PART_MAX = 60  # of the environment and of the ref in a run id: the time stays in view


def run_note(request: Mapping[str, Any], version: str | None = None) -> str:
    """What a release run says of itself in Airflow's run list (its note, which Airflow renders as Markdown):
    ``prod · blue-green · main@3f2a9c1 · by alice: hotfix``.

    :param request: a trigger's conf, or resolve's result (the request resolved: its strategy, and ``freeze``
        where it overrides one).
    :param version: the commit's short SHA once known (a promotion's at resolve, a build's at checkout).
    """
    strategy = request.get("strategy") or USE_CATALOG
    ref = str(request.get("git_ref") or "the default ref")
    if version and not version.startswith(ref) and not ref.startswith(version):
        ref = f"{ref}@{version}"
    if request.get("promote_from"):
        ref += f" from {request['promote_from']}"
    if request.get("rollback_to"):
        ref = f"rollback to {request['rollback_to']}" + (f"@{version}" if version and version != request["rollback_to"] else "")
    parts = [str(request.get("environment") or "no environment"),
             "the catalog's strategy" if strategy == USE_CATALOG else str(strategy), ref]
    if request.get("freeze"):
        parts.append("freeze overridden")
    if request.get("already_live"):
        parts.append("already live")
    who = f"by {literal_markdown(request['requested_by'])}" if request.get("requested_by") else ""
    # Anyone's words: shown as written, never a link or HTML of their own.
    why = literal_markdown(request["reason"]) if request.get("reason") else ""
    parts.append(f"{who}: {why}" if who and why else who or why)
    note = " · ".join(p for p in parts if p)
    return note if len(note) <= NOTE_MAX else note[:NOTE_MAX - 1] + "…"


def release_run_id(environment: str | None, git_ref: str | None, at: datetime) -> str:
    """A release run's id that reads like its note: ``prod__main__20261206T174300`` (UTC, to the second).
    Only Airflow's run-id characters that are safe in a path and a URL: letters, digits, ``.``, ``_`` and ``-``."""
    def part(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-.")[:RUN_ID_PART_MAX] or "-"

    when = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{part(environment or 'default')}__{part(git_ref or 'default')}__{when}"
