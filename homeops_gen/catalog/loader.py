"""Load ``services.yaml``: parse, validate, resolve, and map every problem to ``file:line:col``.

The round-trip parser keeps the position of every key and value, so a pydantic error at
``("services", 2, "retention")`` becomes ``services.yaml:14:16: services[2].retention: ...``.
All problems are collected and raised together in one :class:`CatalogError`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from homeops_gen.catalog.model import Catalog
from homeops_gen.catalog.policy import Finding, resolve_catalog
from homeops_gen.catalog.spec import CatalogSpec
from homeops_gen.errors import CatalogError, Location, Problem

__all__ = ["SUPPORTED_VERSION", "load_catalog", "load_catalog_data", "load_catalog_text"]

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
    """Load a catalog from YAML text; ``source`` names it in error messages."""
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
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise CatalogError(
            [Problem(source, line, column, (), f"invalid YAML: {message}")]
        ) from None
    if not isinstance(root, Mapping):
        found = "an empty document" if root is None else f"a {type(root).__name__}"
        raise CatalogError(
            [Problem(source, 1, 1, (), f"the catalog must be a mapping, not {found}")]
        )
    return root


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
        message = (
            (
                f"unsupported catalog version {version!r}; this homeops_gen reads "
                f"{SUPPORTED_VERSION!r}"
            )
            if "version" in data
            else (f"required field 'version' is missing (use {SUPPORTED_VERSION!r})")
        )
        raise CatalogError(
            _locate(root, source, [(("version",) if "version" in data else (), message)])
        )
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_locate(root, source, _findings(exc, data))) from None
    catalog, findings = resolve_catalog(spec, source)
    if catalog is None:
        raise CatalogError(_locate(root, source, findings))
    return catalog


def _findings(exc: ValidationError, data: Any) -> list[Finding]:
    findings: list[Finding] = []
    for error in exc.errors(include_url=False):
        loc = _data_loc(data, error["loc"])
        kind, message = error["type"], error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}" + _suggest(loc)
        elif kind == "missing":
            message = f"required field {loc[-1]!r} is missing"
        findings.append((loc, message))
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
        annotation = _unwrap(annotation, part)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return _strip_optional(field.annotation) if field else None
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    return _strip_optional(args[-1]) if args else None


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _locate(root: Any, source: str, findings: Iterable[Finding]) -> list[Problem]:
    problems = {Problem(source, *_position(root, loc), loc, message) for loc, message in findings}
    return sorted(problems)


def _position(root: Any, loc: Location) -> tuple[int, int]:
    """1-based line and column of the node at ``loc``, or of its deepest existing ancestor."""
    if root is None:
        return 0, 0
    node, line, column = root, 1, 1
    for part in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, Mapping) and part in node and lc is not None:
            line, column = lc.value(part) if _is_scalar(node[part]) else lc.key(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node) and lc:
            line, column = lc.item(part)
        else:
            break
        node = node[part]
        line, column = line + 1, column + 1
    return line, column


def _is_scalar(node: Any) -> bool:
    return not isinstance(node, Mapping | list)
