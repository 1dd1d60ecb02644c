"""What a client command prints: a table for people, by default, or one JSON document for scripts (``--json``).
The table and the terminal-safe text are :mod:`deployflow.terminal`'s, shared with the ledger's and the
deployer's commands."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from deployflow.terminal import table


def emit(data: Any, *, as_json: bool, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print ``data`` as JSON (``as_json``), else ``rows`` as a table of ``columns``."""
    print(as_document(data) if as_json else table(rows, columns))


def as_document(data: Any) -> str:
    """``data`` as the JSON document ``--json`` prints (ASCII: a control character in it is escaped)."""
    return json.dumps(data, indent=2, sort_keys=True)
