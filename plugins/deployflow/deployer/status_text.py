"""What ``python -m deployflow.deployer status`` shows a person: the environment in a ``key: value`` block, a table
of its sets (traffic, versions, the platform's counts), a table of each list the platform gives per set (Docker's
instances), and the router's view (HAProxy's servers as a table, a Service's selector or a route's weights as
lines). ``--json`` prints :func:`deployflow.rollout.status.status`'s dict instead, as the other steps print theirs.

The layout follows the dict's shape, not a platform's names, so a key a platform or router adds shows up too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployflow.terminal import fields, table

SET_COLUMNS = ("set", "traffic", "versions", "images", "configs")


def status_text(status: Mapping[str, Any]) -> str:
    """The status as blocks a person reads, separated by a blank line."""
    sets: Mapping[str, Mapping[str, Any]] = status.get("sets") or {}
    router: Mapping[str, Any] = status.get("router") or {}
    head = [("service", status.get("service")), ("environment", status.get("environment")),
            ("live", status.get("live") or "none (no set takes traffic)")]
    head += [(_words(key), _flat(value)) for key, value in router.items() if not _is_table(value)]
    blocks = [fields(head)]
    if not sets:
        blocks.append(f"No sets in {status.get('environment')}: nothing released there yet")
    else:
        blocks.append(_sets(sets))
        lists = dict.fromkeys(k for found in sets.values() for k, v in found.items() if _is_list_of_rows(v) and v)
        blocks += [_members(name, sets) for name in lists]
    blocks += [_named_rows(key, value) for key, value in router.items() if _is_table(value) and value]
    return "\n\n".join(blocks)


def _sets(sets: Mapping[str, Mapping[str, Any]]) -> str:
    """One row a set; the platform's own counts (replicas, ready) as columns after the versions."""
    known = {"versions", "images", "configs", "traffic_percent"}
    extra = list(dict.fromkeys(k for found in sets.values() for k, v in found.items()
                               if k not in known and not _is_list_of_rows(v)))
    rows = [{**{k: _shown(found.get(k)) for k in extra}, "set": colour, "traffic": f"{found.get('traffic_percent', 0)} %",
             "versions": found.get("versions"), "images": found.get("images"), "configs": found.get("configs")}
            for colour, found in sets.items()]
    return table(rows, (*SET_COLUMNS, *extra), right=("traffic", *extra))


def _members(name: str, sets: Mapping[str, Mapping[str, Any]]) -> str:
    """A list of dicts each set has (``instances``): one row each, after the set it belongs to."""
    rows = [{**{k: _shown(v) for k, v in member.items()}, "set": colour}
            for colour, found in sets.items() for member in found.get(name) or ()]
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "set"))
    return table(rows, ("set", *columns), headers={"name": _singular(name).upper()}, right=_numbers(rows))


def _named_rows(key: str, value: Mapping[str, Mapping[str, Any]]) -> str:
    """A dict of dicts (HAProxy's ``servers``): one row each, its name first."""
    label = _singular(key)
    rows = [{**{k: _shown(v) for k, v in found.items()}, label: name} for name, found in value.items()]
    columns = list(dict.fromkeys(k for row in rows for k in row if k != label))
    return table(rows, (label, *columns), right=_numbers(rows))


def _numbers(rows: list[dict[str, Any]]) -> set[str]:
    """The columns whose every value is a number, to align right."""
    kinds: dict[str, bool] = {}
    for row in rows:
        for key, value in row.items():
            kinds[key] = kinds.get(key, True) and isinstance(value, (int, float)) and not isinstance(value, bool)
    return {key for key, numeric in kinds.items() if numeric}


def _is_list_of_rows(value: Any) -> bool:
    """A list of dicts (an empty list too: a set with no instance left has ``instances: []``)."""
    return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())


def _flat(value: Any) -> Any:
    """A router's dict of scalars (route weights) as one value: ``name 90, other 10``."""
    return ", ".join(f"{k} {_shown(v)}" for k, v in value.items()) if isinstance(value, Mapping) else value


def _shown(value: Any) -> Any:
    return ("yes" if value else "no") if isinstance(value, bool) else value


def _words(key: str) -> str:
    return key.replace("_", " ")


def _singular(key: str) -> str:
    return key[:-1] if key.endswith("s") else key
