"""Fields: reads one mapping of a catalog document and refuses a bad value with its dotted path.

Every refusal is a :class:`ConfigError` that names the field (``environments.prod.port``)
and what would have been right: the valid fields, values or range.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from deployflow.errors import ConfigError, one_of, shown


class Fields:
    """Reads one mapping of a YAML document, tracking the dotted path for errors."""

    def __init__(self, raw: Any, path: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "(top level)", f"must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(_join(path, str(unknown[0])), f"unknown field; valid fields are {', '.join(allowed)}")
        self.raw = raw
        self.path = path

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def required(self, key: str) -> Any:
        if self.raw.get(key) in (None, ""):
            raise ConfigError(self.at(key), "is required")
        return self.raw[key]

    def string(self, key: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        """A string; with ``pattern``, one the pattern matches whole (fullmatch: no trailing newline slips past '$')."""
        value = self.raw.get(key, default)
        if value is None:
            raise ConfigError(self.at(key), "is required")
        if not isinstance(value, str):
            raise ConfigError(self.at(key), f"must be a string, got {shown(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(self.at(key), f"{shown(value)} is not valid; {hint}")
        return value

    def relative_path(self, key: str, default: str, *, inside: str) -> str:
        """A path relative to ``inside`` (the repository, the build context) that stays there as written:
        not absolute, no ``..`` component, no control character (NUL, newline). Symlinks are the build's to
        check, once the files exist (``deployflow.pipeline.build.contained_build_paths``)."""
        value = self.string(key, default)
        hint = f"must be a relative path inside {inside}, without '..'"
        for char in value:
            if unicodedata.category(char) == "Cc":
                raise ConfigError(self.at(key), f"{shown(value)} is not valid: it contains U+{ord(char):04X}; {hint}")
        if not value or value.startswith("/") or os.path.isabs(value) or ".." in value.split("/"):
            raise ConfigError(self.at(key), f"{shown(value)} is not valid; {hint}")
        return value

    def strings(self, key: str, *, pattern: re.Pattern[str], hint: str) -> tuple[str, ...]:
        """An optional list of strings, each matching ``pattern``; an error names the item (``hostnames[0]``)."""
        values = self.raw.get(key, []) or []
        if not isinstance(values, list):
            raise ConfigError(self.at(key), "must be a list")
        for i, value in enumerate(values):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ConfigError(f"{self.at(key)}[{i}]", f"{shown(value)} is not valid; {hint}")
        return tuple(values)

    def choice(self, key: str, valid: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value not in valid:
            raise ConfigError(self.at(key), one_of(value, valid))
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
            raise ConfigError(self.at(key), f"{shown(value)} is not valid; must be a whole number from {low} to {high}")
        return int(value)

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(self.at(key), f"{shown(value)} is not valid; must be a number from {low:g} to {high:g}")
        return float(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
