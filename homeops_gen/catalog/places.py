"""Where catalog locations are in its text, read from libyaml's composed nodes.

:class:`CatalogPlaces` gives what :meth:`~homeops_gen.catalog.loader.CatalogPositions.at`
gives (a scalar at its value, a mapping or list at its key, an empty value or an
``at_key`` finding at its key) far faster: composing a 1,000-service catalog with libyaml
is a fraction of a second, ruamel's round-trip reader takes seconds. A text libyaml may
read otherwise than ruamel (what :func:`~homeops_gen.catalog.fast_yaml.fast_load`
declines: merge keys, tags, ...) or no libyaml at all is placed by ruamel, as before.
"""

from __future__ import annotations

from typing import Any

from homeops_gen.errors import Location

_NULL_TAG = "tag:yaml.org,2002:null"


class CatalogPlaces:
    """Where things are in a catalog's text: composed once, asked many times."""

    def __init__(self, text: str, source: str = "services.yaml") -> None:
        from homeops_gen.catalog.fast_yaml import fast_load

        self.source = source
        self.root: Any = None
        self._ruamel: Any = None
        try:
            import yaml

            if isinstance(fast_load(text), dict):
                self.root = yaml.compose(text, Loader=yaml.CSafeLoader)
        except Exception:  # no libyaml, or text it does not take: ruamel places it
            self.root = None
        if self.root is None:
            from homeops_gen.catalog.loader import CatalogPositions

            self._ruamel = CatalogPositions(text, source)

    def at(self, loc: Location, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of ``loc``, or of its deepest existing ancestor."""
        if self._ruamel is not None:
            found: tuple[int, int] = self._ruamel.at(loc, at_key)
            return found
        import yaml

        node, line, column = self.root, 1, 1
        for depth, part in enumerate(loc, start=1):
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == part), None)
                if pair is None:
                    break
                key, node = pair
                # a scalar points at its value (as ruamel), unless it is empty or the
                # finding is about the key itself
                scalar = isinstance(node, yaml.ScalarNode) and node.tag != _NULL_TAG
                on_value = scalar and not (at_key and depth == len(loc))
                mark = node.start_mark if on_value else key.start_mark
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                mark = node.start_mark
            else:
                break
            line, column = mark.line + 1, mark.column + 1
        return line, column

    def where(self, loc: Location) -> str:
        """``file:line:col`` of ``loc``'s key."""
        line, column = self.at(loc, at_key=True)
        return f"{self.source}:{line}:{column}"
