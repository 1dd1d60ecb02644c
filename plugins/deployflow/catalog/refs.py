"""Git ref names, by git's own rules: one check for the catalog (``source.default_ref``, ``nightly.ref``)
and the release request (``params.git_ref``).

The rules are those of ``git check-ref-format`` (no ``..``, no ``//``, no ``@{``, nothing starting with ``/``
or ``-``, no component starting with ``.`` or ending in ``.lock``, nothing ending in ``/`` or ``.``, not ``@``
alone), over a narrower alphabet than git's: letters, digits and ``. _ / @ + -``. Git would also take
``$ ( ) ; ' "`` and any non-ASCII letter; a ref travels into build arguments, image labels, log lines and the
ledger, where a shell metacharacter or an invisible character (a bidi control) has no business. Git itself
refuses control characters, space and ``~ ^ : ? * [ \\``, so ``HEAD~1`` is not a ref name either: name a
branch, a tag, or a commit (a bare 40- or 64-hex SHA is fine).
"""

from __future__ import annotations

import re

from deployflow.errors import ConfigError, shown

MAX_LENGTH = 200
ALPHABET = "letters, digits and . _ / @ + -"
_CHARACTER = re.compile(r"[A-Za-z0-9._/@+-]")

# The same rules as one pattern, for the trigger form's JSON schema: Airflow checks it with Python's
# re.search before a run exists, the UI with an ECMA regex, and it reads the same in both. '$(?!\n)' is
# the end of the text in both (Python's '$' alone also matches before a trailing newline).
GIT_REF_PATTERN = (
    r"^(?!-)(?!/)(?!@$)(?!.*\.\.)(?!.*//)(?!(?:.*/)?\.)(?!.*\.lock(?:/|$))(?!.*[/.]$)"
    rf"[A-Za-z0-9._/@+-]{{1,{MAX_LENGTH}}}$(?!\n)"
)


def git_ref_problem(ref: str) -> str | None:
    """What is wrong with ``ref`` as a ref name, in a phrase (``"contains '..'"``); None when nothing is."""
    if not ref:
        return "is empty"
    if len(ref) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    for sequence in ("..", "//", "@{"):
        if sequence in ref:
            return f"contains {shown(sequence)}"
    if ref.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if ref.startswith("/") or ref.endswith("/"):
        return "starts or ends with '/'"
    if ref.endswith("."):
        return "ends with '.'"
    if ref == "@":
        return "is '@' alone"
    for component in ref.split("/"):
        if component.startswith("."):
            return f"has a component starting with '.' ({shown(component)})"
        if component.endswith(".lock"):
            return f"has a component ending in '.lock' ({shown(component)})"
    for char in ref:
        if not _CHARACTER.fullmatch(char):
            return f"contains {_named(char)}; a ref name is made of {ALPHABET}"
    return None


def check_git_ref(value: object, path: str) -> str:
    """``value`` if it is a valid ref name; else a :class:`ConfigError` at ``path`` saying which rule it breaks."""
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string (a branch, tag or commit name), got {shown(value)}")
    problem = git_ref_problem(value)
    if problem is not None:
        raise ConfigError(path, f"{shown(value)} is not a valid branch, tag or commit name: it {problem}")
    return value


def _named(char: str) -> str:
    """A character as a person can read it in an error, even when it is invisible."""
    return repr(char) if char.isprintable() and char != " " else f"U+{ord(char):04X}"
