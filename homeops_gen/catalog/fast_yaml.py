"""Read a catalog's YAML with libyaml, giving exactly the data the round-trip parser gives.

The round-trip parser (ruamel, pure Python) keeps every position for error messages but
costs about 4 ms per service. libyaml (PyYAML's C parser) composes the node tree far
faster; the scalars are then typed with ruamel's YAML 1.2 resolver, not PyYAML's 1.1 one
(``yes`` stays a string, as it does for ruamel). Whatever could come out differently
(tabs, explicit tags, directives, aliases, merge keys, duplicate keys, floats, dates,
octal or hex numbers, several documents) makes :func:`fast_load` return ``None``, and
the caller reads the text with ruamel instead.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["fast_load"]

_STR, _INT, _BOOL, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("str", "int", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)")


class _Fallback(Exception):
    """The fast path cannot be sure to read this as ruamel would."""


#: Text the fast path leaves to ruamel: tabs (which ruamel refuses where libyaml does not),
#: explicit tags (PyYAML's nodes cannot tell ``!!bool yes`` from an implicit scalar) and
#: directives (``%YAML 1.1`` changes how ruamel types scalars).
_DECLINE = re.compile(r"[\t!]|^%", re.MULTILINE)


def fast_load(text: str) -> Any | None:
    """The document as plain data (dicts, tuples, scalars), or ``None``: use ruamel."""
    if _DECLINE.search(text):
        return None
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):  # PyYAML without libyaml
        return None
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    try:
        return _data(node, set())
    except _Fallback:
        return None


@lru_cache(maxsize=1)
def _resolvers() -> tuple[Any, Any, Any]:
    import yaml
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    return VersionedResolver(version=(1, 2)), ScalarNode, yaml.resolver.Resolver()


def _data(node: Any, seen: set[int]) -> Any:
    import yaml

    if id(node) in seen:
        raise _Fallback  # an alias (or a node that contains itself): let ruamel judge
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, seen)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _Fallback
        return tuple(_data(item, seen) for item in node.value)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    raise _Fallback


def _mapping(node: Any, seen: set[int]) -> dict[str, Any]:
    if node.tag != _MAP:
        raise _Fallback
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _data(key_node, seen)
        if not isinstance(key, str) or key in result or key == "<<":
            raise _Fallback  # ruamel rejects duplicates; merge keys and odd keys: let it say
        result[key] = _data(value_node, seen)
    return result


def _scalar(node: Any) -> Any:
    value: str = node.value
    if node.style:  # quoted or block: a string, unless explicitly tagged otherwise
        if node.tag != _STR:
            raise _Fallback
        return value
    pyyaml_resolver = _resolvers()[2]
    if node.tag != pyyaml_resolver.resolve(type(node), value, (True, False)):
        raise _Fallback  # an explicit tag
    tag = _tag(value)
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag == _INT and _DECIMAL.fullmatch(value):
        return int(value)
    raise _Fallback


@lru_cache(maxsize=4096)
def _tag(value: str) -> str:
    ruamel_resolver, ruamel_node, _ = _resolvers()
    tag: str = ruamel_resolver.resolve(ruamel_node, value, (True, False))
    return tag
