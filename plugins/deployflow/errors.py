"""Errors that name what was wrong, where, and what would have been right."""

from __future__ import annotations

from collections.abc import Iterable


class DeployflowError(Exception):
    """Base of every error deployflow raises on purpose."""


class ConfigError(DeployflowError, ValueError):
    """A value in a catalog file or a release request is not valid.

    ``path`` is the dotted path of the field (``environments.prod.strategy``);
    ``source`` the file or request it came from.
    """

    def __init__(self, path: str, message: str, *, source: str | None = None) -> None:
        self.path = path
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {message}")

    def in_source(self, source: str) -> ConfigError:
        """The same error, said of ``source`` (a file name)."""
        return ConfigError(self.path, self.message, source=source)


SHOWN_CHARS = 80  # of a value quoted in an error: enough to recognise it, never a whole hostile file


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (and saying how long it was)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def one_of(value: object, valid: Iterable[str]) -> str:
    """The message for a value outside an enumeration, listing the valid ones."""
    names = ", ".join(repr(v) for v in valid)
    return f"{shown(value)} is not valid; valid values are {names}"


class StageFailed(DeployflowError):
    """A release stage (checkout, build, test) failed; the message says why."""
