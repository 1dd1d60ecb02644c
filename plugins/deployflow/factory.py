"""Name-to-implementation lookup shared by the plug-in axes' factories."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module


def implementation(axis: str, name: str, table: Mapping[str, str]) -> type:
    """The class ``table`` names for ``name`` (``"module:Class"``, imported on first use).

    An unknown name is an error that lists the valid ones, never a silent default.
    """
    if name not in table:
        raise ValueError(f"{axis} {name!r} is not known; valid values are {', '.join(repr(n) for n in table)}")
    module, cls = table[name].split(":")
    return getattr(import_module(module), cls)
