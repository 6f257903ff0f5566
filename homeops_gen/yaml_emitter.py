"""A fast block-style YAML emitter for plain data, byte-identical to the ruamel dump.

ruamel's pure-Python serializer costs about 8 ms per Kubernetes object, which made
rendering dominate every run (20 s for 1,000 services). This emitter writes the layout of
:func:`homeops_gen.render.to_yaml` (mappings indented by 2, sequences by 4 with the dash at
2, flow ``{}``/``[]`` when empty) directly, and borrows ruamel's own scalar analysis and
implicit-type resolver to decide how each string is written (plain, ``'single'`` or
``"double"`` quoted), cached per string. Anything outside that subset (multi-line strings,
floats, nulls, nested sequences, non-string keys, very long scalars) raises :class:`Unsupported`,
and the caller falls back to ruamel. A test compares both on every generated document.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["Unsupported", "emit_documents", "yaml11_reads_as_other"]

_STR = "tag:yaml.org,2002:str"
#: Beyond this, ruamel may fold a plain scalar (width 4096 less the indentation).
_MAX_SCALAR = 2000
#: ruamel writes a key of 128 characters or more as a complex key (``? key``).
_MAX_KEY = 100


class Unsupported(Exception):
    """The data holds something this emitter does not write exactly as ruamel would."""


@lru_cache(maxsize=1)
def _ruamel_parts() -> tuple[Any, Any, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import ScalarNode

    yaml = YAML(typ="rt")
    yaml.width = 4096
    emitter = yaml.Emitter(io.StringIO(), allow_unicode=yaml.allow_unicode, dumper=yaml)
    return emitter, yaml.resolver, ScalarNode


#: Large enough for every distinct string of a 10,000-service catalog (about 212,000).
@lru_cache(maxsize=1 << 19)
def _scalar(text: str, key: bool) -> str:
    """``text`` as ruamel writes a ``str`` scalar (a mapping key when ``key``)."""
    if len(text) > _MAX_SCALAR:
        raise Unsupported("a long string")
    emitter, resolver, node = _ruamel_parts()
    analysis = emitter.analyze_scalar(text)
    if analysis.multiline:  # any of YAML's line breaks (\n, \r, \x85, \u2028, \u2029)
        raise Unsupported("a multi-line string")
    implicit = resolver.resolve(node, text, (True, False)) == _STR
    if implicit and yaml11_reads_as_other(text):
        return "'" + text + "'"  # no quote inside: none of those forms has one
    if implicit and not (key and analysis.empty) and analysis.allow_block_plain:
        return text
    if analysis.allow_double_quoted and "'" in text:
        return _double_quoted(text)
    if analysis.allow_single_quoted:
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


#: YAML 1.1 as Kubernetes reads it (gopkg.in/yaml.v2, under sigs.k8s.io/yaml: kubectl, the
#: API server, Flux): words it takes for booleans and nulls, which YAML 1.2 (ruamel, and the
#: rest of this emitter) reads as strings.
_YAML11_WORDS = frozenset(
    [
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE"),
        *("on", "On", "ON", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL"),
    ]
)
#: yaml.v2's numbers, once its reader has dropped every "_": Go's ParseInt with base 0
#: (0x, 0o, 0b, a leading 0 for octal) and its float syntax.
_YAML11_NUMBER = re.compile(
    r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+"
    r"|(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)"
)


@lru_cache(maxsize=1 << 16)
def yaml11_reads_as_other(text: str) -> bool:
    """Whether a plain scalar ``text`` is something else than a string to a YAML 1.1 reader:
    Kubernetes' (booleans ``y``/``on``/``no``, ``0x1f``, ``1e3``, ``1_000``...) or PyYAML's
    (YAML 1.1's timestamps, sexagesimal numbers, ``.inf``, ``<<``, ``=``). Such a string is
    always written quoted."""
    if text in _YAML11_WORDS or _YAML11_NUMBER.fullmatch(text.replace("_", "")):
        return True
    if not text or not (text[0] in "-+.0123456789<=" or text[0].isdigit()):
        return False
    import yaml

    resolver = yaml.resolver.Resolver()
    resolved = resolver.resolve(yaml.nodes.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved != _STR)


def _double_quoted(text: str) -> str:
    if any(not (ch.isprintable() or ch == " ") for ch in text):
        raise Unsupported("a string that needs escapes")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(value: Any) -> str:
    """A scalar value as written after ``key: `` or ``- ``."""
    kind = type(value)  # exact types: ruamel represents subclasses (enums, ...) its own way
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is str:
        return _scalar(value, key=False)
    # None among them: ruamel writes it as "null" or as nothing, depending on its state.
    raise Unsupported(f"a {type(value).__name__} value")


def _key(key: Any) -> str:
    if type(key) is not str:
        raise Unsupported("a key that is not a string")
    if len(key) > _MAX_KEY:
        raise Unsupported("a long key")
    return _scalar(key, key=True)


def _empty(value: Any) -> str | None:
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, list | tuple) and not value:
        return "[]"
    return None


def _mapping(data: Mapping[Any, Any], indent: int, out: list[str], first: str | None) -> None:
    """Write ``data`` at ``indent``; ``first`` is the prefix of its first line (``- ``)."""
    pad = " " * indent
    for index, (key, value) in enumerate(data.items()):
        lead = first if index == 0 and first is not None else pad
        _entry(f"{lead}{_key(key)}:", value, indent, out)


def _entry(head: str, value: Any, indent: int, out: list[str]) -> None:
    flow = _empty(value)
    if flow is not None:
        out.append(f"{head} {flow}")
    elif isinstance(value, Mapping):
        out.append(head)
        _mapping(value, indent + 2, out, None)
    elif isinstance(value, list | tuple):
        out.append(head)
        _sequence(value, indent + 2, out)
    else:
        out.append(f"{head} {_value(value)}")


def _sequence(items: Sequence[Any], indent: int, out: list[str]) -> None:
    dash = " " * indent + "- "
    for item in items:
        flow = _empty(item)
        if flow is not None:
            out.append(dash + flow)
        elif isinstance(item, Mapping):
            _mapping(item, indent + 2, out, dash)
        elif isinstance(item, list | tuple):
            raise Unsupported("a sequence inside a sequence")
        else:
            out.append(dash + _value(item))


def emit_documents(documents: Sequence[Any]) -> str:
    """The documents as ruamel's ``dump_all`` writes them with homeops_gen's settings."""
    out: list[str] = []
    for index, document in enumerate(documents):
        if index:
            out.append("---")
        if not isinstance(document, Mapping) or not document:
            raise Unsupported("a document that is not a non-empty mapping")
        _mapping(document, 0, out, None)
    return "\n".join(out) + "\n"
