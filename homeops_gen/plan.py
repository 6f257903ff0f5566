"""The plan: every output file, as data, before anything is rendered or written."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeops_gen.errors import PlanError

if TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog

__all__ = [
    "MANIFEST_NAME",
    "OutputFile",
    "Payload",
    "Plan",
    "TemplateRender",
    "Text",
    "YamlDocuments",
    "build_plan",
    "check_output_path",
    "iter_plan",
]

#: The writer's record of the files it owns in the output folder.
MANIFEST_NAME = ".homeops_gen-manifest"


@dataclass(frozen=True)
class YamlDocuments:
    """One or more YAML documents, serialised from data (never templated text)."""

    documents: tuple[Any, ...]
    #: Comment lines written after the header, before the first document.
    comment: str = ""


@dataclass(frozen=True)
class TemplateRender:
    """A Jinja template (path inside ``templates/``) and the context it is rendered with."""

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Text:
    """Literal text, written as is (after the header)."""

    content: str


Payload = YamlDocuments | TemplateRender | Text


@dataclass(frozen=True)
class OutputFile:
    """One file of the output tree. ``generator`` is filled in by :func:`build_plan`."""

    path: str
    payload: Payload
    generator: str = ""
    #: The service the file is for (empty for shared files), for ``explain``.
    subject: str = ""


@dataclass(frozen=True)
class Plan:
    """The output files, sorted by path; no two share a path."""

    files: tuple[OutputFile, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def by_generator(self, name: str) -> tuple[OutputFile, ...]:
        return tuple(f for f in self.files if f.generator == name)


def check_output_path(path: str) -> str | None:
    """Why ``path`` is not a safe relative output path, or ``None`` if it is."""
    if not path or "\\" in path or path.startswith("/"):  # PurePosixPath(path).is_absolute()
        return "must be a relative POSIX path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain empty, '.' or '..' segments"
    if path == MANIFEST_NAME:
        return "is reserved for the writer's manifest"
    return None


def build_plan(catalog: Catalog, generators: Sequence[Any] | None = None) -> Plan:
    """Run every generator (default: all registered) over ``catalog`` and collect the files.

    Raises :class:`PlanError` when a path is unsafe or claimed by two generators.
    """
    return Plan(tuple(sorted(iter_plan(catalog, generators), key=lambda f: f.path)))


def iter_plan(catalog: Catalog, generators: Sequence[Any] | None = None) -> Iterator[OutputFile]:
    """The files of :func:`build_plan` one at a time, in the generators' order, so that a
    caller can render and compare each and let it go. Raises :class:`PlanError` once every
    generator has run, listing every unsafe or twice-claimed path (those are not yielded).
    """
    if generators is None:
        from homeops_gen.registry import registered_generators

        generators = registered_generators()
    claimed: dict[str, str] = {}
    problems: list[str] = []
    for generator in generators:
        for output in _run(generator.name, generator.function(catalog)):
            reason = check_output_path(output.path)
            if reason is not None:
                problems.append(f"generator {output.generator!r}: path {output.path!r} {reason}")
            elif (first := claimed.get(output.path)) is not None:
                problems.append(
                    f"path {output.path!r} is claimed by generators "
                    f"{first!r} and {output.generator!r}"
                )
            else:
                claimed[output.path] = output.generator
                yield output
            del output  # not held while the next file is made (a dashboard is megabytes)
    if problems:
        raise PlanError(problems)


def _run(name: str, outputs: Iterable[OutputFile]) -> Iterable[OutputFile]:
    for output in outputs:
        if type(output) is OutputFile:  # what dataclasses.replace builds, without its cost
            yield OutputFile(output.path, output.payload, name, output.subject)
        else:
            yield dataclasses.replace(output, generator=name)
        del output
