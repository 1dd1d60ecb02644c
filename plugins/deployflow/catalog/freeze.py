"""parse_windows(): an environment's ``freeze`` list of the catalog, into :class:`FreezeWindow` values.

    freeze:
      - {name: weekend, start: "0 18 * * 5", end: "0 8 * * 1", timezone: Europe/Paris}
      - {name: year-end, start: "0 0 20 12 *", end: "0 0 3 1 *", timezone: UTC}

Each window is read through :class:`Fields` and validated by the dataclass itself; a refusal names the
item's dotted path (``environments.prod.freeze[0].timezone``) and what is valid. Names are unique within
the list: they are what a refused release is told.
"""

from __future__ import annotations

from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.errors import ConfigError
from deployflow.governance.freeze import FreezeWindow

WINDOW_FIELDS = ("name", "start", "end", "timezone")
EXAMPLE = "- {name: weekend, start: '0 18 * * 5', end: '0 8 * * 1', timezone: Europe/Paris}"


def parse_windows(raw: Any, path: str) -> tuple[FreezeWindow, ...]:
    """The windows of ``raw`` (None or empty: none), in their order; raises :class:`ConfigError` with the path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(path, f"must be a list of windows, such as {EXAMPLE}")
    windows: list[FreezeWindow] = []
    where: dict[str, int] = {}
    for i, item in enumerate(raw):
        window = _window(Fields(item, f"{path}[{i}]", WINDOW_FIELDS))
        if window.name in where:
            raise ConfigError(f"{path}[{i}].name", f"{window.name!r} is already the name of {path}[{where[window.name]}]; "
                                                   "each window needs a name of its own")
        where[window.name] = i
        windows.append(window)
    return tuple(windows)


def _window(f: Fields) -> FreezeWindow:
    for key in ("name", "start", "end"):
        f.required(key)
    values = {"name": f.string("name"), "start": f.string("start"), "end": f.string("end"),
              "timezone": f.string("timezone", "UTC")}
    try:
        return FreezeWindow(**values)
    except ConfigError as exc:  # the dataclass names its own field; here it becomes the catalog's path
        raise ConfigError(f.at(exc.path), exc.message) from None

