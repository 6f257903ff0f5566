"""Strict validation of custom objects against the upstream CRDs.

The CRDs are test data read at test time, never copied into this repository. They are
found in ``HOMEOPS_CRD_DIR``, else in the cache ``python tests/fetch_crds.py`` fills (used
only when it holds every file of ``tests/data/crds.lock.json`` with the locked bytes), else
in ``../shared/crds`` beside the clone. Validation is strict the way ``kubectl
--validate=strict`` is: a field the schema does not declare is an error, unless the schema
says ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import fetch_crds
import jsonschema
import pytest
import yaml
from conftest import REPO

#: Kinds served by the VolSync fork that adds the Kopia mover (upstream lacks ``kopia``).
FORK_KINDS = {"ReplicationSource", "ReplicationDestination", "KopiaMaintenance"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


#: The copy CI keeps beside the clone (the last place looked; the tests monkeypatch it).
SHARED_CRDS = REPO.parent / "shared" / "crds"


def crd_dir() -> Path:
    """The CRD folder: ``HOMEOPS_CRD_DIR``, else a complete cache, else ``../shared/crds``.

    When there is none, skip locally and fail under CI=true, saying what to run.
    """
    explicit = os.environ.get("HOMEOPS_CRD_DIR")
    if explicit:
        if Path(explicit).is_dir():
            return Path(explicit)
        _no_crds(f"HOMEOPS_CRD_DIR={explicit} is not a folder")
    cache = fetch_crds.default_cache()
    missing = _cache_problems(cache)
    if not missing:
        return cache
    if SHARED_CRDS.is_dir():
        return SHARED_CRDS
    state = f"is incomplete ({missing[0]})" if cache.is_dir() else "does not exist"
    _no_crds(f"the cache {cache} {state} and there is no {SHARED_CRDS}")


#: ``(cache, lock)`` pairs found complete: checked once per session (crd_dir runs per object).
_COMPLETE: set[tuple[Path, Path]] = set()


def _cache_problems(cache: Path) -> tuple[str, ...]:
    """Why ``cache`` is not the locked set. A complete cache is hashed once per session; an
    incomplete one once per state of its files (size, mtime, inode), so a fetch run during
    the session is noticed."""
    lock = fetch_crds.LOCK
    if (cache, lock) in _COMPLETE:
        return ()
    state = []
    for entry in _lock_entries(lock):
        try:
            info = (cache / entry.file).stat()
        except OSError:
            return (f"{entry.file}: missing",)
        state.append((entry.file, info.st_size, info.st_mtime_ns, info.st_ino))
    found = _hashed_problems(cache, lock, tuple(state))
    if not found:
        _COMPLETE.add((cache, lock))
    return found


@functools.cache
def _lock_entries(lock: Path) -> list[fetch_crds.Entry]:
    return fetch_crds.load_lock(lock)


@functools.cache
def _hashed_problems(cache: Path, lock: Path, state: tuple[Any, ...]) -> tuple[str, ...]:
    del state  # only the key of the memo: another state is checked again
    return tuple(fetch_crds.problems(cache, _lock_entries(lock)))


def _no_crds(why: str) -> NoReturn:
    message = (
        f"no upstream CRDs: {why}. Run `{fetch_crds.FETCH_COMMAND}` in {REPO} to download and "
        "verify them (offline: add `--from DIR` with a copy), or set HOMEOPS_CRD_DIR"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"the upstream CRDs are required under CI=true: {message}")
    pytest.skip(message)


@functools.cache
def _crd_files(folder: Path) -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    """``(group, kind) -> (file, CRD)``; the Kopia fork wins for the kinds it serves. A file
    may hold several CRDs (one YAML document each)."""
    found: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for path in sorted(folder.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict):
                continue
            if document.get("kind") != "CustomResourceDefinition":
                continue
            key = (document["spec"]["group"], document["spec"]["names"]["kind"])
            if key not in found or "kopia-fork" in path.parent.name:
                found[key] = (path, document)
    return found


@functools.cache
def _validator(group: str, version: str, kind: str) -> jsonschema.protocols.Validator:
    entry = _crd_files(crd_dir()).get((group, kind))
    if entry is None:
        raise KeyError(f"no CRD for {kind}.{group} in {crd_dir()}")
    document = entry[1]
    versions = {v["name"]: v for v in document["spec"]["versions"]}
    if version not in versions or not versions[version].get("served"):
        raise KeyError(
            f"{kind}.{group} does not serve {version} (serves "
            f"{sorted(n for n, v in versions.items() if v.get('served'))})"
        )
    schema = copy.deepcopy(versions[version]["schema"]["openAPIV3Schema"])
    # The API server declares these for every custom resource, whether the CRD's schema
    # lists them or not (kopiur's leave them out).
    schema["properties"] = {**_ROOT_FIELDS, **schema.get("properties", {})}
    return jsonschema.Draft7Validator(strict(schema))


_ROOT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}


def strict(schema: Any) -> Any:
    """The OpenAPI schema as JSON Schema that rejects undeclared fields."""
    schema = copy.deepcopy(schema)
    _tighten(schema)
    return schema


def _tighten(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    # Closed before ``nullable`` widens the type: a nullable object is as strict as any.
    if (
        node.get("type") == "object"
        and "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        node["additionalProperties"] = False
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    for value in node.values():
        _tighten(value)


#: The Kubernetes version whose built-in schemas (kubernetes-validate) check built-in kinds.
KUBERNETES_VERSION = "1.32"


def _builtin_problems(obj: Mapping[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(obj), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path)) or '(object)'}: {error.message}"]
    return []


def validate(obj: Mapping[str, Any]) -> list[str]:
    """Every schema violation of one object, as ``path: message`` (CRD or built-in kind)."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    if (group, str(obj.get("kind"))) not in _crd_files(crd_dir()):
        return _builtin_problems(obj)
    validator = _validator(group, version, str(obj.get("kind")))
    problems = [
        f"{'.'.join(map(str, error.absolute_path)) or '(object)'}: {error.message}"
        for error in validator.iter_errors(dict(obj))
    ]
    name = obj.get("metadata", {}).get("name", "")
    if not _DNS_SUBDOMAIN.match(str(name)):
        problems.append(f"metadata.name: {name!r} is not a valid object name")
    return sorted(problems)


def validate_all(objects: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Problems by ``Kind/name``; an empty dict when everything is valid."""
    found = {}
    for obj in objects:
        problems = validate(obj)
        if problems:
            found[f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"] = problems
    return found
