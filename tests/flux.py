"""Flux's post-build variable substitution, as the kustomize-controller applies it.

After ``kustomize build``, Flux substitutes ``${VAR}``, ``${VAR:=default}`` and
``${VAR:-default}`` in each object's YAML, from ``postBuild.substitute`` and the ConfigMaps of
``postBuild.substituteFrom``. Variable names are letters, digits and underscores. With
``strict``, a variable without a default that is not set is an error (``flux envsubst
--strict``); otherwise it becomes an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?:(:?[=-])([^}]*))?\}")


class UnsetVariable(KeyError):
    pass


def substitute(text: str, values: Mapping[str, str], *, strict: bool = True) -> str:
    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3)
        value = values.get(name)
        if operator and operator.startswith(":") and not value:
            return default  # ":=" and ":-": also when set but empty
        if operator and value is None:
            return default
        if value is None:
            if strict:
                raise UnsetVariable(name)
            return ""
        return value

    return _REFERENCE.sub(replace, text)


def references(text: str) -> set[str]:
    """The variable names ``text`` refers to."""
    return {match.group(1) for match in _REFERENCE.finditer(text)}
