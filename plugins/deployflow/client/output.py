"""What a command prints: a table for people, by default, or one JSON document for scripts (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, indent: str = "") -> str:
    """``rows`` under a header of ``columns``, each column as wide as its widest cell; an empty cell is ``-``."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], *cells]
    return "\n".join(indent + "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def emit(data: Any, *, as_json: bool, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print ``data`` as JSON (``as_json``), else ``rows`` as a table of ``columns``."""
    print(json.dumps(data, indent=2, sort_keys=True) if as_json else table(rows, columns))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return " ".join(str(value).split())
