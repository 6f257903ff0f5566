"""Errors that carry positions back to the user's files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CatalogError",
    "Finding",
    "HomeopsError",
    "Location",
    "OutputError",
    "PlanError",
    "Problem",
    "RenderError",
    "echo",
    "format_loc",
]

#: A path into the catalog document: mapping keys and sequence indexes.
Location = tuple[str | int, ...]


#: How many characters of a value a message quotes.
ECHO_LIMIT = 40


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for a message; of a long string, only its first ``limit`` characters
    (``'abc'...``), so that a megabyte value does not come back as a megabyte message."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}..."
    return repr(value)


def format_loc(loc: Location) -> str:
    """Render ``("services", 2, "retention")`` as ``services[2].retention``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


class Finding(NamedTuple):
    """A problem at a location in the catalog document, before it is mapped to a line."""

    loc: Location
    message: str
    #: Point at the key rather than its value (an unknown key, for example).
    at_key: bool = False


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, at a 1-based line and column when known."""

    file: str
    line: int
    column: int
    loc: Location
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        if not self.loc:  # about the whole file: unreadable, not YAML, not a mapping
            return f"{where}: {self.message}"
        return f"{where}: {format_loc(self.loc)}: {self.message}"


class HomeopsError(Exception):
    """Base class for errors the CLI reports without a traceback (exit code 2)."""

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems: tuple[Problem | str, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def lines(self) -> Sequence[str]:
        return [str(p) for p in self.problems]


class CatalogError(HomeopsError):
    """The catalog is malformed or invalid; ``problems`` lists every finding, sorted by position."""


class PlanError(HomeopsError):
    """Generators disagree: two claim one path, or a path is not a safe relative path."""


class RenderError(HomeopsError):
    """A template failed to render (a user override with a syntax error or unknown variable)."""


class OutputError(HomeopsError):
    """The output folder cannot be written as planned: a file it does not own is in the way."""
