"""The generator registry. Built-in generators register exactly as a plug-in would."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeops_gen.catalog.model import Catalog
from homeops_gen.plan import OutputFile

__all__ = ["Generator", "GeneratorFunction", "register_generator", "registered_generators"]

GeneratorFunction = Callable[[Catalog], Iterable[OutputFile]]


@dataclass(frozen=True)
class Generator:
    """A pure function from the resolved catalog to output files, with a unique name."""

    name: str
    function: GeneratorFunction
    description: str = ""


_REGISTRY: dict[str, Generator] = {}


def register_generator(
    name: str, *, description: str = ""
) -> Callable[[GeneratorFunction], GeneratorFunction]:
    """Decorator: add a generator under ``name``. Registering a name twice is an error."""

    def decorate(function: GeneratorFunction) -> GeneratorFunction:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"a generator named {name!r} is already registered")
        _REGISTRY[name] = Generator(name, function, description or (function.__doc__ or "").strip())
        return function

    return decorate


def registered_generators() -> tuple[Generator, ...]:
    """Every registered generator (built-ins included), sorted by name."""
    import homeops_gen.generators  # noqa: F401  (registers the built-ins on first import)

    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))
