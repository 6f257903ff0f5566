"""The generated Kubernetes objects as plain data, straight from the plan.

::

    from homeops_gen import load_catalog
    from homeops_gen.objects import kubernetes_objects

    for obj in kubernetes_objects(load_catalog("services.yaml")):
        print(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])

Each object is a fresh ``dict`` of ``dict``/``list``/``str``/``int``/``float``/``bool``/
``None`` (JSON-compatible), equal to what ``yaml.safe_load_all`` reads back from the
rendered ``out/kubernetes/`` files. Nothing is read from or written to ``out/``.

Left out, because they are not objects to apply as they are:

- ``kubernetes/components/``: the VolSync Kustomize Component; its objects hold Flux
  ``${VAR}`` placeholders, filled per app by ``postBuild.substituteFrom``, and its
  ``kustomization.yaml`` is a ``Component``, not an API object;
- ``kubernetes/cnpg/<namespace>/<cluster>/recovery.yaml``: the restore drill, applied *in
  place of* ``cluster.yaml`` (same ``Cluster`` name and namespace). Applied beside it, it
  would overwrite the running cluster's spec and move its WAL archive to the next
  ``serverName``; ``recovery/``, the same drill as a Component for a Cluster that is the
  user's;
- ``kustomization.yaml``, ``cluster-patch.yaml`` and ``cluster-schema.yaml`` of a CNPG
  folder: kustomize's inputs (the Component and its patch of the user's own Cluster, or an
  owned cluster's Kustomization), not objects;
- of a drill folder (``kubernetes/drills/<namespace>/<service>/``), its ``kustomization.yaml``
  (whose configMapGenerator makes the ConfigMap of the script, which is therefore not among
  the objects either) and the scratch objects the drill's script creates and deletes on each
  run (``claim.yaml``, ``replicationdestination.yaml``, ``verify-job.yaml``,
  ``cluster.json``); its ``rbac.yaml`` and ``cronjob.yaml`` are objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from homeops_gen.plan import OutputFile, YamlDocuments

if TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog

__all__ = ["EXCLUDED_PATTERNS", "KUBERNETES_ROOT", "is_object_file", "kubernetes_objects"]

#: Plan paths below this folder hold Kubernetes manifests.
KUBERNETES_ROOT = "kubernetes/"
#: Manifest paths (``PurePosixPath.full_match`` patterns) whose documents are not objects to
#: apply as they are; see the module docstring.
EXCLUDED_PATTERNS = (
    "kubernetes/components/**",
    "kubernetes/cnpg/*/*/recovery.yaml",
    "kubernetes/cnpg/*/*/recovery/**",
    "kubernetes/cnpg/*/*/kustomization.yaml",
    "kubernetes/cnpg/*/*/cluster-patch.yaml",
    "kubernetes/cnpg/*/*/cluster-schema.yaml",
    "kubernetes/drills/*/*/kustomization.yaml",
    "kubernetes/drills/*/*/claim.yaml",
    "kubernetes/drills/*/*/replicationdestination.yaml",
    "kubernetes/drills/*/*/verify-job.yaml",
)
_YAML_SUFFIXES = (".yaml", ".yml")


def is_object_file(path: str) -> bool:
    """Whether the plan file at ``path`` holds objects :func:`kubernetes_objects` returns."""
    pure = PurePosixPath(path)
    return (
        path.startswith(KUBERNETES_ROOT)
        and pure.suffix in _YAML_SUFFIXES
        and not any(_full_match(pure, pattern) for pattern in EXCLUDED_PATTERNS)
    )


def kubernetes_objects(
    catalog: Catalog, template_dirs: Sequence[str | Path] = ()
) -> list[dict[str, Any]]:
    """Every concrete Kubernetes object generated for ``catalog``, as plain deep copies.

    Ordered by output path, then by document order within a file; only documents that
    have ``apiVersion`` and ``kind`` are objects. ``template_dirs`` matter only for a
    manifest rendered from a template (the built-in ones are all data).
    """
    from homeops_gen.plan import build_plan

    plan = build_plan(catalog)
    dirs = tuple(Path(d).resolve() for d in template_dirs)
    objects: list[dict[str, Any]] = []
    for output in plan.files:  # the plan is sorted by path
        if not is_object_file(output.path):
            continue
        for index, document in enumerate(_documents(output, dirs)):
            if isinstance(document, Mapping) and "apiVersion" in document and "kind" in document:
                objects.append(_plain(document, f"{output.path}[{index}]"))
    return objects


def _documents(output: OutputFile, template_dirs: tuple[Path, ...]) -> Iterator[Any]:
    if isinstance(output.payload, YamlDocuments):
        yield from output.payload.documents
        return
    # A templated (or literal) manifest: render it, then read it back as YAML.
    from ruamel.yaml import YAML

    from homeops_gen.render import render_file

    text = render_file(output, template_dirs).decode("utf-8")
    yield from YAML(typ="safe", pure=True).load_all(text)


def _plain(node: Any, where: str) -> Any:
    """A deep copy of ``node`` built from JSON types only (ruamel subclasses unwrapped)."""
    if node is None or type(node) in (str, int, float, bool):
        return _check_float(node, where)
    if isinstance(node, Mapping):
        copy: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: mapping key {key!r} is not a string")
            copy[str(key)] = _plain(value, f"{where}.{key}")
        return copy
    if isinstance(node, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        from ruamel.yaml.scalarbool import ScalarBoolean

        return bool(node) if isinstance(node, ScalarBoolean) else int(node)
    if isinstance(node, float):
        return _check_float(float(node), where)
    raise TypeError(f"{where}: {type(node).__name__} is not JSON data")


def _check_float(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{where}: {value!r} is not JSON data")
    return value


def _full_match(path: PurePosixPath, pattern: str) -> bool:
    """``PurePath.full_match`` (3.13) for 3.11: ``**`` spans any number of segments."""
    return _match_parts(path.parts, PurePosixPath(pattern).parts)


def _match_parts(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    from fnmatch import fnmatchcase

    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_parts(parts[1:], rest)
