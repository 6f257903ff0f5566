"""Load ``services.yaml``: parse, validate, resolve, and map every problem to ``file:line:col``.

The round-trip parser keeps the position of every key and value, so a pydantic error at
``("services", 2, "retention")`` becomes ``services.yaml:14:16: services[2].retention: ...``.
All problems are collected and raised together in one :class:`CatalogError`.

Nothing in the text gets past the reader unchecked: its size, its characters, its nesting
depth, the length of each scalar and the size of each number are bounded, and every tag
and value YAML itself cannot read (``!!bool maybe``, ``2026-02-30``) is a problem at its
position, like a syntax error; none of them reaches the user as a traceback.
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import typing
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from ruamel.yaml.nodes import ScalarNode

from homeops_gen.catalog.fast_yaml import (
    FORBIDDEN,
    MAX_DEPTH,
    ReadError,
    character_problem,
    depth_problem,
    escape_problem,
    fast_load,
    number_problem,
    scalar_problem,
)
from homeops_gen.catalog.model import Catalog
from homeops_gen.catalog.policy import check_partial, resolve_catalog
from homeops_gen.catalog.spec import CatalogSpec, ServiceSpec, SettingsSpec
from homeops_gen.errors import ECHO_LIMIT, CatalogError, Finding, Location, Problem, echo

__all__ = [
    "MAX_SIZE",
    "SUPPORTED_VERSION",
    "CatalogPositions",
    "load_catalog",
    "load_catalog_data",
    "load_catalog_text",
]

SUPPORTED_VERSION = "homeops/v1"
#: The largest catalog read: bytes of a file, characters of a text (a catalog of a thousand
#: services is about 250 KB).
MAX_SIZE = 16 * 1024 * 1024


def load_catalog(path: str | Path) -> Catalog:
    """Load, validate and resolve the catalog at ``path``; raise :class:`CatalogError`."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as file:  # universal newlines, as read_text
            size = os.fstat(file.fileno()).st_size
            if size > MAX_SIZE:
                raise CatalogError([_too_large(source, size, "bytes")])
            text = file.read(MAX_SIZE + 1)  # not a regular file: read no more than needed
    except OSError as exc:
        raise CatalogError([Problem(source, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise CatalogError([_not_utf8(path, source)]) from None
    return load_catalog_text(text, source)


def _not_utf8(path: str | Path, source: str) -> Problem:
    """Where the first byte that is not UTF-8 stands (line and column of the file)."""
    with open(path, "rb") as file:
        data = file.read(MAX_SIZE + 1)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8")) + 1
        byte = data[exc.start]
        return Problem(source, line, column, (), f"not UTF-8 text: byte 0x{byte:02x}")
    return Problem(source, 0, 0, (), "not UTF-8 text")


def load_catalog_text(text: str, source: str = "<string>") -> Catalog:
    """Load a catalog from YAML text; ``source`` names it in error messages.

    A valid catalog is read by libyaml (:mod:`.fast_yaml`), which is many times faster than
    the round-trip parser; that one, which keeps positions, reads any catalog the fast path
    does not take, and every catalog with a problem, so that errors name their line.
    """
    _check_text(text, source)
    try:
        data = fast_load(text)
    except ReadError as exc:
        raise CatalogError([_read_problem(exc, source)]) from None
    if isinstance(data, dict):
        try:
            return _validate(data, source, None)
        except CatalogError:
            pass  # read it again with positions, to say where the problems are
    root = _parse_yaml(text, source)
    return _validate(_plain(root), source, root)


def load_catalog_data(data: Mapping[str, Any], source: str = "<data>") -> Catalog:
    """Load a catalog from already-parsed data (no line numbers in errors)."""
    return _validate(_plain(data), source, None)


def _too_large(source: str, size: int, unit: str) -> Problem:
    return Problem(
        source, 0, 0, (), f"the catalog is {size} {unit}; the limit is {MAX_SIZE} (16 MiB)"
    )


def _check_text(text: str, source: str) -> None:
    """Refuse a text too large to read, or with a character YAML or an editor would misread."""
    if len(text) > MAX_SIZE:
        raise CatalogError([_too_large(source, len(text), "characters")])
    found = FORBIDDEN.search(text)
    if found is not None:
        where = _line_column(text, found.start())
        raise CatalogError([Problem(source, *where, (), character_problem(found.group()))])


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting line breaks as YAML does."""
    before = text[:index]
    line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    return line, index - max(before.rfind("\n"), before.rfind("\r"))


def _read_problem(exc: ReadError, source: str) -> Problem:
    return Problem(source, exc.line, exc.column, exc.loc, exc.message)


_YAML_TAG = "tag:yaml.org,2002:"
#: The tags a catalog may carry: YAML's own (a round-trip reader keeps any other as an
#: object that no field takes, and would report it as the wrong type).
_KNOWN_TAGS = frozenset(
    _YAML_TAG + name
    for name in (
        "str", "int", "bool", "null", "float", "map", "seq", "timestamp", "binary", "set",
        "omap", "pairs", "merge",
    )
)  # fmt: skip


#: The tags a key may have: every key of a catalog is a name (``<<`` merges a mapping in).
_KEY_TAGS = frozenset((_YAML_TAG + "str", _YAML_TAG + "merge"))
#: What a scalar of a tag is, in a message.
_TAG_KINDS = {
    _YAML_TAG + "null": "null (nothing)",
    _YAML_TAG + "bool": "a boolean",
    _YAML_TAG + "int": "a number",
    _YAML_TAG + "float": "a number",
    _YAML_TAG + "timestamp": "a date",
    _YAML_TAG + "binary": "binary data",
}


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


class _Composer(Composer):
    """ruamel's composer within the reader's limits, each reported where it is crossed."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._loc: list[str | int] = []
        self._key = False

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.depth >= MAX_DEPTH and not self.parser.check_event(AliasEvent):
            raise self._read_error(self.parser.peek_event(), depth_problem(), at=())
        # ruamel composes a key with no index, its value with the key's node as the index.
        self._key = index is None and parent is not None
        if self._key and self.parser.check_event(MappingStartEvent, SequenceStartEvent):
            what = "a mapping" if self.parser.check_event(MappingStartEvent) else "a list"
            message = f"a key must be a single value, not {what}"
            raise self._read_error(self.parser.peek_event(), message)
        if index is None:  # the document's root, or a key: located at its mapping
            return super().compose_node(parent, index)
        self._loc.append(index if isinstance(index, int) else _key_part(index))
        try:
            return super().compose_node(parent, index)
        finally:
            self._loc.pop()

    def compose_scalar_node(self, anchor: Any) -> Any:
        event = self.parser.peek_event()
        value = event.value
        problem = scalar_problem(value, self._key) or escape_problem(value, event.style)
        if problem is not None:
            raise self._read_error(event, problem)
        key = self._key
        node = super().compose_scalar_node(anchor)
        if node.tag == _YAML_TAG + "int" and (problem := number_problem(node.value)) is not None:
            raise self._read_error(event, problem)
        if key and node.tag not in _KEY_TAGS:
            kind = _TAG_KINDS.get(node.tag, f"a {_shown_tag(node.tag)}")
            message = f"a key must be text, not {kind}: quote it, or leave it out"
            raise self._read_error(event, message)
        return node

    def _read_error(self, event: Any, message: str, at: Location | None = None) -> ReadError:
        mark = event.start_mark
        loc = tuple(self._loc) if at is None else at
        return ReadError(mark.line + 1, mark.column + 1, loc, message)


def _key_part(node: Any) -> str | int:
    return str(node.value) if isinstance(node, ScalarNode) else "?"


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor that refuses unknown tags and reports every value it
    cannot construct (``!!int abc``, ``2026-02-30``) at the value, as a YAML error."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        tag = str(node.tag)
        if tag not in _KNOWN_TAGS:
            raise ConstructorError(
                None,
                None,
                f"unknown tag {echo(_shown_tag(tag), 60)}: a catalog uses only YAML's own tags "
                "(!!str, !!int, !!bool ...), if any",
                node.start_mark,
            )
        try:
            return super().construct_object(node, deep)
        except (MarkedYAMLError, ReadError):
            raise
        except Exception:  # the constructors' ValueError, KeyError, OverflowError ...
            raise ConstructorError(None, None, _unreadable(node, tag), node.start_mark) from None


def _unreadable(node: Any, tag: str) -> str:
    if not isinstance(node, ScalarNode):
        return f"cannot read this {_shown_tag(tag)}"
    value = echo(node.value)
    explicit = getattr(node.ctag, "handle", None) is not None
    if tag == _YAML_TAG + "timestamp" and not explicit:
        return f"{value} reads as a date or time but is not one; quote it if it is text"
    return f"{value} is not a valid {_shown_tag(tag)}"


def _round_trip() -> YAML:
    """A round-trip reader within the limits."""
    yaml = YAML(typ="rt")
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    return yaml


def _parse_yaml(text: str, source: str) -> Any:
    try:
        root = _round_trip().load(text)
    except ReadError as exc:
        raise CatalogError([_read_problem(exc, source)]) from None
    except MarkedYAMLError as exc:
        raise CatalogError([_yaml_problem(exc, source, text.count("\n"))]) from None
    except YAMLError as exc:  # without a position (the reader's: _check_text comes first)
        first_line = next(iter(str(exc).splitlines()), "")
        raise CatalogError([Problem(source, 0, 0, (), f"invalid YAML: {first_line}")]) from None
    except Exception as exc:  # a reader that fails on some input must not show a traceback
        message = f"invalid YAML: the reader failed ({type(exc).__name__})"
        raise CatalogError([Problem(source, 0, 0, (), message)]) from None
    if not isinstance(root, Mapping):
        raise CatalogError(
            [Problem(source, 1, 1, (), f"the catalog must be a mapping, not {_kind(root)}")]
        )
    return root


def _yaml_problem(exc: MarkedYAMLError, source: str, last_line: int) -> Problem:
    """Locate a syntax error; past the end of the file, point where the construct began."""
    mark, opened = exc.problem_mark, exc.context_mark
    if mark is None or (opened is not None and mark.line >= last_line):
        mark = opened or mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    parts = (_shorten(part) for part in (exc.context, exc.problem) if part)
    message = "; ".join(parts) or "syntax error"
    return Problem(source, line, column, (), f"invalid YAML: {message}")


def _shorten(text: str, limit: int = 200) -> str:
    """A parser's message, which may quote values (a duplicate key's), cut to ``limit``."""
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value: Any) -> str:
    """How a YAML user would name the type of ``value``."""
    if value is None:
        return "an empty document"
    for kind, name in (
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
        (Mapping, "a mapping"),
        (list | tuple, "a list"),  # _plain makes every list a tuple
        (bytes, "binary data"),
        (datetime.date, "a date"),  # and date-times
        (AbstractSet, "a set"),
    ):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _plain(node: Any) -> Any:
    """Plain Python values for strict validation: mappings → dict, sequences → tuple."""
    if isinstance(node, Mapping):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return tuple(_plain(item) for item in node)
    for kind in (bool, int, float, str):  # ruamel's ScalarInt, ScalarString, ... subclasses
        if isinstance(node, kind):
            return kind(node)
    return node


def _validate(data: dict[str, Any], source: str, root: Any) -> Catalog:
    version = data.get("version")
    if version != SUPPORTED_VERSION:
        if "version" in data:
            finding = Finding(
                ("version",),
                f"unsupported catalog version {echo(version)}; this "
                f"homeops_gen reads {SUPPORTED_VERSION!r}",
            )
        else:
            finding = Finding(
                (), f"required field 'version' is missing (use version: {SUPPORTED_VERSION})"
            )
        raise CatalogError(_locate(root, source, [finding]))
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        findings = _findings(exc, data) + _partial_policy_findings(data)
        raise CatalogError(_locate(root, source, findings)) from None
    catalog, findings = resolve_catalog(spec, source)
    if catalog is None:
        raise CatalogError(_locate(root, source, findings))
    return catalog


def _partial_policy_findings(data: dict[str, Any]) -> list[Finding]:
    """Cross-field problems among the services that passed schema validation."""
    try:
        settings = SettingsSpec.model_validate(data.get("settings"))
    except ValidationError:
        return []  # every policy rule needs the settings
    services = data.get("services")
    indexed = []
    for index, item in enumerate(services if isinstance(services, tuple) else ()):
        try:
            indexed.append((index, ServiceSpec.model_validate(item)))
        except ValidationError:
            continue
    return check_partial(settings, indexed)


#: pydantic's wording for type errors, in the words of a YAML file.
_TYPE_MESSAGES = {
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
}


def _findings(exc: ValidationError, data: Any) -> list[Finding]:
    findings: list[Finding] = []
    for error in exc.errors(include_url=False):
        loc = _data_loc(data, error["loc"])
        kind, value = error["type"], error.get("input")
        if kind == "extra_forbidden":
            findings.append(Finding(loc, f"unknown field {echo(loc[-1])}" + _suggest(loc), True))
            continue
        if kind == "missing":
            message = f"required field {loc[-1]!r} is missing"
        elif kind in _TYPE_MESSAGES:
            got = "nothing" if value is None else _kind(value)
            message = f"{_TYPE_MESSAGES[kind]}, got {got}"
        elif kind == "literal_error":
            message = f"{echo(value)} is not one of {error['ctx']['expected']}"
        else:
            message = error["msg"].removeprefix("Value error, ")
        findings.append(Finding(loc, message))
    return findings


def _data_loc(data: Any, loc: Iterable[str | int]) -> Location:
    """Drop the parts of a pydantic location that are not keys in the data (union tags)."""
    parts = tuple(loc)
    kept: list[str | int] = []
    node = data
    for position, part in enumerate(parts):
        if _has_child(node, part):
            node = node[part]
        elif position < len(parts) - 1:
            continue  # a union tag such as "exclusion": not a key the user wrote
        kept.append(part)
    return tuple(kept)


def _has_child(node: Any, part: str | int) -> bool:
    if isinstance(node, Mapping):
        return part in node
    return isinstance(node, tuple) and isinstance(part, int) and part < len(node)


def _suggest(loc: Location) -> str:
    allowed = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fields_at(loc: Location) -> list[str]:
    """The field names that the model at ``loc`` accepts (for spelling suggestions)."""
    annotation: Any = CatalogSpec
    for part in loc:
        model = _model_in(annotation)
        if isinstance(part, str) and model is not None and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        # an index or a dict key: the annotation still describes the container's items
    model = _model_in(annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: through Optional, unions, Annotated, tuples, dicts."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _locate(root: Any, source: str, findings: Iterable[Finding]) -> list[Problem]:
    problems = {
        Problem(
            source,
            *_position(root, finding.loc, finding.at_key),
            finding.loc,
            _brief(finding.message),
        )
        for finding in findings
    }
    return sorted(problems)


#: A quoted value in a message: Python's repr of a string.
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"(?:[^"\\\n]|\\.)*"')
#: Messages longer than this quote a long value; only those are shortened.
_LONG_MESSAGE = 500


def _brief(message: str) -> str:
    """``message``, quoting only the start of each long value in it, when it is long.

    The schema's messages quote values through :func:`echo` already; a rule's message that
    quotes a value (a schedule's cadence, say) in full is shortened here, so that no value
    of thousands of characters comes back as a message of thousands of characters.
    """
    if len(message) <= _LONG_MESSAGE:
        return message

    def shorten(quoted: re.Match[str]) -> str:
        text = quoted.group()
        if len(text) <= ECHO_LIMIT + 2:
            return text
        head = text[: ECHO_LIMIT + 1]
        if (len(head) - len(head.rstrip("\\"))) % 2:  # not half an escape
            head = head[:-1]
        return head + text[0] + "..."

    message = _QUOTED.sub(shorten, message)
    return message if len(message) <= 2 * _LONG_MESSAGE else message[:_LONG_MESSAGE] + "..."


def _position(root: Any, loc: Location, at_key: bool = False) -> tuple[int, int]:
    """1-based line and column of the node at ``loc``, or of its deepest existing ancestor.

    Scalars point at their value, except empty values (ruamel marks the next token) and
    ``at_key`` findings; mappings and lists point at their key.
    """
    if root is None:
        return 0, 0
    node, line, column = root, 1, 1
    for depth, part in enumerate(loc, start=1):
        lc = getattr(node, "lc", None)
        if isinstance(node, Mapping) and part in node and lc is not None:
            child = node[part]
            on_value = _is_scalar(child) and child is not None
            on_value = on_value and not (at_key and depth == len(loc))
            found = _line_col(lc.value if on_value else lc.key, part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node) and lc:
            found = _line_col(lc.item, part)
        else:
            break
        if found is None:  # a key merged in by '<<', an !!omap entry: no position of its own
            break
        node = node[part]
        line, column = found[0] + 1, found[1] + 1
    return line, column


def _line_col(get: Any, part: str | int) -> tuple[int, int] | None:
    try:
        found = get(part)
    except (KeyError, IndexError, TypeError):
        return None
    return (found[0], found[1]) if found else None


def _is_scalar(node: Any) -> bool:
    return not isinstance(node, Mapping | list)


class CatalogPositions:
    """Where things are in a catalog's text: parsed once, asked many times."""

    def __init__(self, text: str, source: str = "services.yaml") -> None:
        self.source = source
        try:
            self.root: Any = _round_trip().load(text)
        except Exception:  # a catalog that does not load has no positions to give
            self.root = None

    def at(self, loc: Location, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of ``loc`` (or of its deepest existing ancestor)."""
        return _position(self.root, loc, at_key)

    def has(self, loc: Location) -> bool:
        """Whether the user wrote ``loc`` (rather than leaving it to a default)."""
        node = self.root
        for part in loc:
            if not _has_child(node, part) and not (
                isinstance(node, list) and isinstance(part, int) and part < len(node)
            ):
                return False
            node = node[part]
        return True

    def where(self, loc: Location) -> str:
        line, column = self.at(loc, at_key=True)
        return f"{self.source}:{line}:{column}"
