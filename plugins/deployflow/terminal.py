"""What a command shows a person: a table, or an aligned ``key: value`` block. The client's, the ledger's and the
deployer's commands print these by default and JSON with ``--json``; this module imports nothing of the project's,
so every layer may use it.

What Airflow answers, what the ledger holds and what a router reports is untrusted text (a reason, a name, an
error's detail): every cell and line printed to a terminal goes through :func:`terminal_text`, which leaves no
escape sequence, control or format character (a colour, a cursor move, a bidi override) to act on the terminal.
JSON escapes them itself (``\\u001b``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Any

WIDTH = 100  # the columns a table fits in, by cutting its last column
MIN_LAST = 16  # the least a table's last column is cut to, however wide the others are
# ECMA-48: CSI (ESC [ or 0x9B ... final byte), OSC/DCS/SOS/PM/APC strings (up to BEL or ST), two-byte ESC sequences.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x9b[0-?]*[ -/]*[@-~]?"
                     r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?")


def terminal_text(value: object) -> str:
    """``value`` as one line that does nothing to a terminal: escape sequences removed, whitespace runs made one
    space, then every other control (Cc) and format (Cf) character removed."""
    flat = " ".join(_ESCAPE.sub("", str(value)).split())
    return "".join(c for c in flat if unicodedata.category(c) not in ("Cc", "Cf"))


def clip(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters, its last one ``…`` when cut."""
    return text if width is None or len(text) <= width else text[:max(width - 1, 0)] + "…"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, indent: str = "",
          headers: Mapping[str, str] | None = None, limits: Mapping[str, int] | None = None,
          width: int | None = None, right: Collection[str] = ()) -> str:
    """``rows`` under a header of ``columns``, each column as wide as its widest cell; an empty cell is ``-``.

    :param headers: a column's header (default: its name in capitals).
    :param limits: a column's widest cell; a longer one is cut, ending in ``…``.
    :param width: the widest line; the last column is cut to fit (to :data:`MIN_LAST` at least).
    :param right: the columns aligned right (numbers), their header too.
    """
    titles = [(headers or {}).get(c, c.upper()) for c in columns]
    cells = [[clip(_cell(row.get(c)), (limits or {}).get(c)) for c in columns] for row in rows]
    widths = [max([len(t), *(len(r[i]) for r in cells)]) for i, t in enumerate(titles)]
    if width is not None and columns:
        room = max(MIN_LAST, width - len(indent) - sum(widths[:-1]) - 2 * (len(columns) - 1))
        for line in cells:
            line[-1] = clip(line[-1], room)
        widths[-1] = max([len(titles[-1]), *(len(r[-1]) for r in cells)])
    aligned = [str.rjust if c in right else str.ljust for c in columns]
    return "\n".join(indent + "  ".join(a(v, w) for a, v, w in zip(aligned, line, widths)).rstrip()
                     for line in [titles, *cells])


def fields(pairs: Sequence[tuple[str, Any]], *, indent: str = "") -> str:
    """One ``key: value`` line a pair, the values in one column; an empty value is ``-``."""
    wide = max((len(terminal_text(k)) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{indent}{(terminal_text(k) + ':').ljust(wide)} {_cell(v)}".rstrip() for k, v in pairs)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return terminal_text(", ".join(map(str, value))) or "-"
    return terminal_text(value) or "-"
