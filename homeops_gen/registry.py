"""The generator registry. Built-in generators register exactly as a plug-in would.

A plug-in is a module of another package that registers its generators with
:func:`register_generator` when imported, named by an entry point of the group
``homeops_gen.generators`` (``[project.entry-points."homeops_gen.generators"]`` in its
``pyproject.toml``). The built-ins are loaded the same way, by importing their modules.
An entry point may also name a generator function itself; it is then registered under the
entry point's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from homeops_gen.catalog.model import Catalog
from homeops_gen.errors import PlanError
from homeops_gen.plan import OutputFile

__all__ = [
    "ENTRY_POINT_GROUP",
    "Generator",
    "GeneratorFunction",
    "foreign_generators",
    "load_plugins",
    "loaded_plugins",
    "register_generator",
    "registered_generators",
]

GeneratorFunction = Callable[[Catalog], Iterable[OutputFile]]
#: The entry-point group plug-in packages declare their generator modules in.
ENTRY_POINT_GROUP = "homeops_gen.generators"


@dataclass(frozen=True)
class Generator:
    """A pure function from the resolved catalog to output files, with a unique name."""

    name: str
    function: GeneratorFunction
    description: str = ""


_REGISTRY: dict[str, Generator] = {}
_PLUGINS_LOADED = False
#: The entry points loaded from other packages.
_PLUGINS: list[str] = []


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


def load_plugins() -> None:
    """Import every module named in the ``homeops_gen.generators`` entry-point group, once.

    Raises :class:`PlanError` naming the entry point when one cannot be loaded.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    from importlib.metadata import entry_points

    problems = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        _PLUGINS.append(point.name)
        try:
            loaded = point.load()
            if callable(loaded) and not any(g.function is loaded for g in _REGISTRY.values()):
                register_generator(point.name)(loaded)
        except Exception as exc:  # a broken plug-in is the user's input, not our crash
            problems.append(
                f"plug-in {point.name!r} ({point.value}) from entry-point group "
                f"{ENTRY_POINT_GROUP!r} failed to load: {type(exc).__name__}: {exc}"
            )
    if problems:
        raise PlanError(problems)
    _PLUGINS_LOADED = True


def loaded_plugins() -> tuple[str, ...]:
    """The names of the plug-in entry points loaded so far."""
    return tuple(_PLUGINS)


def foreign_generators() -> tuple[str, ...]:
    """Generators registered from outside this package (plug-ins, or a library caller's)."""
    return tuple(
        sorted(
            name
            for name, generator in _REGISTRY.items()
            if not generator.function.__module__.startswith("homeops_gen.generators.")
        )
    ) + tuple(_PLUGINS)


def registered_generators() -> tuple[Generator, ...]:
    """Every registered generator (built-ins and plug-ins), sorted by name."""
    import homeops_gen.generators  # noqa: F401  (registers the built-ins on first import)

    load_plugins()
    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))
