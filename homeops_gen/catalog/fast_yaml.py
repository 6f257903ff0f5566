"""Read a catalog's YAML with libyaml, giving exactly the data the round-trip parser gives.

The round-trip parser (ruamel, pure Python) keeps every position for error messages but
costs about 4 ms per service. libyaml (PyYAML's C parser) produces the event stream far
faster; the data is built from it here, without recursion, and the scalars are typed with
ruamel's YAML 1.2 resolver, not PyYAML's 1.1 one (``yes`` stays a string, as it does for
ruamel). Whatever could come out differently (tabs, explicit tags, directives, aliases,
merge keys, duplicate keys, floats, dates, octal or hex numbers, several documents) makes
:func:`fast_load` return ``None``, and the caller reads the text with ruamel instead.

Both readers enforce the same limits (:data:`MAX_DEPTH`, :data:`MAX_SCALAR`,
:data:`MAX_DIGITS`, no :data:`FORBIDDEN` character written as an escape) and raise
:class:`ReadError` where one is crossed: a hostile catalog is refused at its position
before it costs deep recursion (libyaml's C composer crashes the process on some hundred
thousand nested ``[``), seconds, or memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from homeops_gen.errors import Location, echo

__all__ = [
    "FORBIDDEN",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_SCALAR",
    "ReadError",
    "character_problem",
    "depth_problem",
    "escape_problem",
    "fast_load",
    "number_problem",
    "scalar_problem",
]

_STR, _INT, _BOOL, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("str", "int", "bool", "null"))
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")

#: Collections nest at most this deep (the document's root is level 1; a real catalog
#: needs about 7).
MAX_DEPTH = 64
#: The longest scalar, key or value, in characters (the longest field, a URL, takes 2048).
MAX_SCALAR = 8192
#: The most digits a number may be written with (a catalog's largest is a 10-digit uid).
MAX_DIGITS = 100


#: Characters refused anywhere in a catalog, comments included, and in what an escape
#: (``"\a"``) writes: C0 and C1 controls but tab and the line breaks, DEL, lone surrogates
#: and the non-characters U+FFFE and U+FFFF (which YAML refuses too), and NEL, LS and PS,
#: which YAML reads as line breaks that editors do not show, so that no line number would be
#: the one the user sees.
FORBIDDEN = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]"
)


class ReadError(Exception):
    """The catalog crosses one of the reader's limits at 1-based ``line`` and ``column``."""

    def __init__(self, line: int, column: int, loc: Location, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.loc, self.message = line, column, loc, message


def character_problem(character: str, escaped: bool = False) -> str:
    """Why a :data:`FORBIDDEN` character is not allowed (``escaped``: written as one)."""
    code = ord(character)
    if code in (0x85, 0x2028, 0x2029):
        kind, why = "character", " (a line break YAML sees and editors do not show)"
    elif 0xD800 <= code <= 0xDFFF:
        kind, why = "lone surrogate", ""
    elif code >= 0xFFFE:
        kind, why = "non-character", ""
    else:
        kind, why = "control character", ""
    if escaped:
        return f"{kind} U+{code:04X}, written as an escape, is not allowed in a catalog"
    where = "a catalog" if why else "YAML"
    return f"{kind} U+{code:04X} is not allowed in {where}{why}"


def escape_problem(value: str, style: str | None) -> str | None:
    """Why a scalar's escapes write a :data:`FORBIDDEN` character, or None."""
    if style != '"':
        return None  # only double-quoted scalars have escapes
    found = FORBIDDEN.search(value)
    return character_problem(found.group(), escaped=True) if found else None


def depth_problem() -> str:
    return f"the catalog nests deeper than {MAX_DEPTH} levels, the limit"


def scalar_problem(value: str, is_key: bool = False) -> str | None:
    """Why ``value`` is too long for a catalog, or None."""
    if len(value) <= MAX_SCALAR:
        return None
    what, limit = ("a key" if is_key else "a value"), f"the limit is {MAX_SCALAR}"
    return f"{what} of {len(value)} characters is too long ({limit}): {echo(value)}"


_NUMBER_NOISE = re.compile(r"^[-+]?(0[xXoObB])?|_")


def number_problem(text: str) -> str | None:
    """Why the number written ``text`` is too large for a catalog, or None."""
    digits = len(_NUMBER_NOISE.sub("", text))
    if digits <= MAX_DIGITS:
        return None
    return f"number too large: {digits} digits (the limit is {MAX_DIGITS}): {echo(text)}"


#: Text whose data the fast path leaves to ruamel: tabs (which ruamel refuses where libyaml
#: does not), explicit tags (``!!bool yes``) and directives (``%YAML 1.1`` changes how
#: ruamel types scalars). Its limits are still checked here.
_DECLINE = re.compile(r"[\t!]|^%", re.MULTILINE)


#: In place of a value the fast path cannot be sure to read as ruamel would (never returned).
_INEXACT: Any = object()
_AWAITING_KEY: Any = object()


class _Frame:
    """A collection being built: a dict (and the key whose value comes next) or a list."""

    __slots__ = ("items", "key", "loc")

    def __init__(self, items: dict[str, Any] | list[Any], loc: Location) -> None:
        self.items = items
        self.key: Any = _AWAITING_KEY
        self.loc = loc


def fast_load(text: str) -> Any | None:
    """The document as plain data (dicts, tuples, scalars), or ``None``: use ruamel.

    Raises :class:`ReadError` when the text crosses one of the limits.
    """
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):  # PyYAML without libyaml
        return None
    try:
        parser = loader(text)
    except ValueError:  # text libyaml cannot take (a lone surrogate): ruamel says why
        return None
    try:
        data, exact = _build(parser.get_event)
    except yaml.YAMLError:
        return None  # ruamel says where, in its words
    finally:
        parser.dispose()
    return data if exact and not _DECLINE.search(text) else None


def _build(next_event: Callable[[], Any]) -> tuple[Any, bool]:
    """The document that the events make, and whether it is exactly ruamel's."""
    import yaml

    scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
    mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    frames: list[_Frame] = []
    documents: list[Any] = []
    exact = True
    while (event := next_event()) is not None:
        kind = type(event)
        if kind in ends:
            done = frames.pop()
            value = done.items if isinstance(done.items, dict) else tuple(done.items)
        elif kind is scalar or kind is mapping_start or kind is sequence_start:
            if len(frames) >= MAX_DEPTH:
                raise _read_error(event, (), depth_problem())  # the position says where
            if event.tag is not None:
                exact = False  # an explicit tag
            if kind is scalar:
                value = _scalar(event, frames)
            else:
                top = frames[-1] if frames else None
                if top is not None and isinstance(top.items, dict) and top.key is _AWAITING_KEY:
                    # As ruamel's reader says it (the loader's composer), at the same place.
                    what = "a mapping" if kind is mapping_start else "a list"
                    message = f"a key must be a single value, not {what}"
                    raise _read_error(event, _loc(frames), message)
                frames.append(_Frame({} if kind is mapping_start else [], _loc(frames)))
                continue
        elif kind is alias:
            value = _INEXACT  # ruamel's aliases share one object; let ruamel judge
        else:
            if kind is yaml.DocumentStartEvent and documents:
                exact = False  # several documents: ruamel says it expects one
            continue
        if value is _INEXACT:
            exact = False
        if not frames:
            documents.append(value)
            continue
        top = frames[-1]
        items = top.items
        if isinstance(items, list):
            items.append(value)
        elif top.key is _AWAITING_KEY:
            if not isinstance(value, str) or value in items or value == "<<":
                exact = False  # ruamel rejects duplicates; merge keys and odd keys: let it say
                value = _INEXACT
            top.key = value
        else:
            if top.key is not _INEXACT:
                items[top.key] = value
            top.key = _AWAITING_KEY
    return (documents[0] if documents else None), exact and len(documents) == 1


def _loc(frames: list[_Frame]) -> Location:
    """Where the next node goes: below the innermost collection, at its key or index."""
    if not frames:
        return ()
    top = frames[-1]
    if isinstance(top.items, list):
        return (*top.loc, len(top.items))
    if top.key is _AWAITING_KEY or not isinstance(top.key, str):
        return top.loc  # a key is located at its mapping
    return (*top.loc, top.key)


def _read_error(event: Any, loc: Location, message: str) -> ReadError:
    mark = event.start_mark
    return ReadError(mark.line + 1, mark.column + 1, loc, message)


def _scalar(event: Any, frames: list[_Frame]) -> Any:
    value: str = event.value
    is_key = bool(frames) and isinstance(frames[-1].items, dict)
    is_key = is_key and frames[-1].key is _AWAITING_KEY
    if (problem := scalar_problem(value, is_key) or escape_problem(value, event.style)) is not None:
        raise _read_error(event, _loc(frames), problem)
    if event.style:  # quoted or block: a string
        return value
    tag = _tag(value)
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _INT:
        if (problem := number_problem(value)) is not None:
            raise _read_error(event, _loc(frames), problem)
        if _DECIMAL.fullmatch(value):
            return int(value)
    return _INEXACT


@lru_cache(maxsize=1)
def _resolvers() -> tuple[Any, Any]:
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    return VersionedResolver(version=(1, 2)), ScalarNode


@lru_cache(maxsize=4096)
def _tag(value: str) -> str:
    ruamel_resolver, ruamel_node = _resolvers()
    tag: str = ruamel_resolver.resolve(ruamel_node, value, (True, False))
    return tag
