"""Load ``services.yaml``: parse, validate, resolve, and map every problem to ``file:line:col``.

The round-trip parser keeps the position of every key and value, so a pydantic error at
``("services", 2, "retention")`` becomes ``services.yaml:14:16: services[2].retention: ...``.
All problems are collected and raised together in one :class:`CatalogError`.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from homeops_gen.catalog.model import Catalog
from homeops_gen.catalog.policy import check_partial, resolve_catalog
from homeops_gen.catalog.spec import CatalogSpec, ServiceSpec, SettingsSpec
from homeops_gen.errors import CatalogError, Finding, Location, Problem

__all__ = [
    "SUPPORTED_VERSION",
    "CatalogPositions",
    "load_catalog",
    "load_catalog_data",
    "load_catalog_text",
]

SUPPORTED_VERSION = "homeops/v1"


def load_catalog(path: str | Path) -> Catalog:
    """Load, validate and resolve the catalog at ``path``; raise :class:`CatalogError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError([Problem(source, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise CatalogError([Problem(source, 0, 0, (), "not UTF-8 text")]) from None
    return load_catalog_text(text, source)


def load_catalog_text(text: str, source: str = "<string>") -> Catalog:
    """Load a catalog from YAML text; ``source`` names it in error messages.

    A valid catalog is read by libyaml (:mod:`.fast_yaml`), which is many times faster than
    the round-trip parser; that one, which keeps positions, reads any catalog the fast path
    does not take, and every catalog with a problem, so that errors name their line.
    """
    from homeops_gen.catalog.fast_yaml import fast_load

    data = fast_load(text)
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


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        raise CatalogError([_yaml_problem(exc, source, text.count("\n"))]) from None
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
    message = "; ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
    return Problem(source, line, column, (), f"invalid YAML: {message}")


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
        (list, "a list"),
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
                f"unsupported catalog version {version!r}; this "
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
            findings.append(Finding(loc, f"unknown field {loc[-1]!r}" + _suggest(loc), True))
            continue
        if kind == "missing":
            message = f"required field {loc[-1]!r} is missing"
        elif kind in _TYPE_MESSAGES:
            got = "nothing" if value is None else _kind(value)
            message = f"{_TYPE_MESSAGES[kind]}, got {got}"
        elif kind == "literal_error":
            message = f"{value!r} is not one of {error['ctx']['expected']}"
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
        Problem(source, *_position(root, finding.loc, finding.at_key), finding.loc, finding.message)
        for finding in findings
    }
    return sorted(problems)


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
            line, column = lc.value(part) if on_value else lc.key(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node) and lc:
            line, column = lc.item(part)
        else:
            break
        node = node[part]
        line, column = line + 1, column + 1
    return line, column


def _is_scalar(node: Any) -> bool:
    return not isinstance(node, Mapping | list)


class CatalogPositions:
    """Where things are in a catalog's text: parsed once, asked many times."""

    def __init__(self, text: str, source: str = "services.yaml") -> None:
        self.source = source
        try:
            self.root: Any = YAML(typ="rt").load(text)
        except MarkedYAMLError:
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
