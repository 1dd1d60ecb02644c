"""``freeze`` and ``unfreeze``: hold every service's releases to some environments (an incident), through the Airflow
Variable ``deployflow_freeze`` that resolve reads. What is written is checked first by the parser resolve uses
(``deployflow.governance.freeze.parse_adhoc``), so a freeze the client sets never fails a release as unreadable."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from deployflow.client.api import AirflowClient, ApiError, BadInput, NothingToDo, Refused
from deployflow.client.output import emit
from deployflow.errors import ConfigError, one_of
from deployflow.governance.freeze import ADHOC_VARIABLE, AdHocFreeze, parse_adhoc
from deployflow.policies import ENVIRONMENTS
from deployflow.release import check_reason

DESCRIPTION = ("deployflow's freeze: every service's releases to these environments are refused until 'until', or "
               "until this Variable is deleted (python -m deployflow.client freeze / unfreeze)")
COLUMNS = ("name", "environments", "reason", "until", "action")
FLAGS = {"name": "--name", "reason": "--reason", "until": "--until", "environments": "--environment"}


@dataclass(frozen=True)
class Changed:
    """A freeze as set or lifted: what it holds now (None: nothing), what was done, and its name."""

    frozen: AdHocFreeze | None
    action: str
    name: str = "?"


def freeze(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """Set the freeze; refuses to replace one that holds unless ``--replace``."""
    done = set_freeze(connect, reason=args.reason, environments=args.environment, until=args.until, name=args.name,
                      replace=args.replace)
    _show(args, done)
    return 0


def unfreeze(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """Lift the freeze, or only its hold on ``--environment``."""
    _show(args, lift_freeze(connect, args.environment))
    return 0


def set_freeze(connect: Callable[[], AirflowClient], *, reason: str, environments: Sequence[str] | None = None,
               until: str | None = None, name: str | None = None, replace: bool = False,
               now: datetime | None = None) -> Changed:
    """Set the freeze (every environment when ``environments`` is empty), checked before Airflow is asked.

    :raises BadInput: a field is wrong (named by its CLI option). :raises Refused: one holds, and not ``replace``.
    """
    now = now or datetime.now(timezone.utc)
    value: dict[str, Any] = {"name": name or f"freeze-{now:%Y%m%dT%H%M%SZ}", "reason": _reason(reason)}
    if until is not None:
        value["until"] = until
    if environments:
        value["environments"] = list(dict.fromkeys(environments))
    text = json.dumps(value)
    frozen = checked(text, now)
    client = connect()
    existing = client.variable(ADHOC_VARIABLE)
    held = _holding(existing, now)
    if held is not None and not replace:
        raise Refused(f"freeze '{held.name}' is set already ({_where(held.environments)}); lift it with unfreeze, "
                      "or give --replace")
    client.set_variable(ADHOC_VARIABLE, text, DESCRIPTION, exists=existing is not None)
    return Changed(frozen, "set" if existing is None else f"replaced {held.name if held else 'a freeze that held nothing'}")


def lift_freeze(connect: Callable[[], AirflowClient], environments: Sequence[str] | None = None,
                now: datetime | None = None) -> Changed:
    """Lift the freeze, or only its hold on ``environments``.

    :raises BadInput: an unknown environment. :raises NothingToDo: no freeze holds there.
    """
    for name in environments or ():
        if name not in ENVIRONMENTS:
            raise BadInput(f"--environment: {one_of(name, ENVIRONMENTS)}")
    now = now or datetime.now(timezone.utc)
    client = connect()
    existing = client.variable(ADHOC_VARIABLE)
    if existing is None:
        raise NothingToDo(f"no freeze is set (there is no Airflow Variable {ADHOC_VARIABLE})")
    held = _holding(existing, now)
    holds = (held.environments or ENVIRONMENTS) if held else ()
    if environments and held is None:
        raise NothingToDo(f"the Airflow Variable {ADHOC_VARIABLE} holds no environment now (ended, or not readable); "
                          "unfreeze without --environment deletes it")
    if environments and (free := [e for e in environments if e not in holds]):
        raise NothingToDo(f"{', '.join(free)} is not frozen by '{held.name}' ({_where(held.environments)})")
    left = [e for e in holds if e not in (environments or holds)]
    if not left:
        try:
            client.delete_variable(ADHOC_VARIABLE)
        except ApiError as exc:
            if exc.status == 404:  # deleted since it was read
                raise NothingToDo(f"no freeze is set (there is no Airflow Variable {ADHOC_VARIABLE})") from None
            raise
        return Changed(held, "lifted" if held else "lifted (it held nothing)", name=_name(existing))
    text = json.dumps({**json.loads(existing), "environments": left})
    client.set_variable(ADHOC_VARIABLE, text, DESCRIPTION, exists=True)
    return Changed(checked(text, now), f"lifted in {', '.join(dict.fromkeys(environments))}")


def checked(text: str, now: datetime) -> AdHocFreeze:
    """The freeze ``text`` says, as resolve will read it; a bad field is named by its option."""
    try:
        frozen = parse_adhoc(text, now)
    except ConfigError as exc:
        field = exc.path.removeprefix(f"{ADHOC_VARIABLE}.").split("[")[0]
        raise BadInput(f"{FLAGS.get(field, field)}: {exc.message}") from None
    if frozen is None:
        raise BadInput(f"--until: {json.loads(text).get('until')!r} is past: the freeze would hold nothing")
    return frozen


def _reason(text: str) -> str:
    try:
        return check_reason(text, "--reason")
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _holding(existing: str | None, now: datetime) -> AdHocFreeze | None:
    """The freeze the Variable holds now; None when there is none, it ended, or it cannot be read (resolve then
    refuses every release, saying why: replacing it is the cure)."""
    if existing is None:
        return None
    try:
        return parse_adhoc(existing, now)
    except ConfigError as exc:
        print(f"the Airflow Variable {ADHOC_VARIABLE} is not readable: {exc}", file=sys.stderr)
        return None


def _name(text: str) -> str:
    """The name a freeze that holds nothing any more had, as far as it can be read."""
    try:
        raw = json.loads(text)
    except ValueError:
        return "?"
    return str(raw.get("name") or "?") if isinstance(raw, dict) else "?"


def _where(environments: Sequence[str] | None) -> str:
    return ", ".join(environments) if environments else "every environment"


def shown(done: Changed) -> tuple[dict[str, Any], dict[str, Any]]:
    """The freeze as set or lifted, as JSON and as a table's row (a freeze that held nothing: only its name)."""
    frozen = done.frozen
    data: dict[str, Any] = {"variable": ADHOC_VARIABLE, "action": done.action, "name": done.name, "reason": None,
                            "until": None, "environments": None}
    row = dict(data)
    if frozen is not None:
        until = frozen.until.isoformat() if frozen.until else None
        data.update(name=frozen.name, reason=frozen.reason, until=until,
                    environments=list(frozen.environments) if frozen.environments else None)
        row = {**data, "environments": _where(frozen.environments), "until": until or "its deletion"}
    return data, row


def _show(args: argparse.Namespace, done: Changed) -> None:
    data, row = shown(done)
    emit(data, as_json=args.json, rows=[row], columns=COLUMNS)
