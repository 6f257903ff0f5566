"""The generated Kubernetes objects as a cdk8s chart (extra ``homeops-gen[cdk8s]``).

::

    from cdk8s import App
    from homeops_gen import load_catalog
    from homeops_gen.cdk8s import BackupChart

    app = App()
    BackupChart(app, "backups", load_catalog("services.yaml"))
    app.synth()  # dist/backups.k8s.yaml

The chart holds exactly the objects of :func:`homeops_gen.objects.kubernetes_objects`:
``synth`` writes the same objects as the native ``out/kubernetes/`` files (the VolSync
Component, the CNPG folders' kustomize inputs and the CNPG restore drills stay out, see
:mod:`homeops_gen.objects`).

This is the only module that imports cdk8s (and with it jsii, which runs Node.js); the
rest of homeops_gen, the command line included, never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cdk8s
from constructs import Construct

from homeops_gen.objects import kubernetes_objects

if TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog

__all__ = ["BackupChart", "object_id"]

#: Top-level fields cdk8s sets itself; every other field is added by JSON patch, verbatim.
_OWN_FIELDS = ("apiVersion", "kind", "metadata")
#: Metadata fields given to cdk8s directly (``name``: so it never allocates a hashed name;
#: ``labels``/``annotations``: so that chart-level labels still merge in).
_METADATA_FIELDS = ("name", "namespace", "labels", "annotations")


def object_id(obj: Mapping[str, Any]) -> str:
    """The construct id of ``obj``: ``<group>:<kind>:<namespace>:<name>``.

    Unique per Kubernetes identity and stable across runs; ``:`` occurs in no Kubernetes
    name, namespace, kind or group, so two identities never share an id.
    """
    api_version = str(obj["apiVersion"])
    group = api_version.rpartition("/")[0] or "core"
    metadata = obj.get("metadata") or {}
    return f"{group}:{obj['kind']}:{metadata.get('namespace') or ''}:{metadata.get('name')}"


class BackupChart(cdk8s.Chart):
    """A cdk8s chart holding every Kubernetes object homeops_gen generates for a catalog.

    ``chart_kwargs`` go to :class:`cdk8s.Chart` unchanged. homeops_gen passes no chart
    labels; with ``labels=...`` the chart's labels are merged in (the objects' own win).
    ``namespace=...`` reaches only objects without one (every built-in object names its
    namespace). Object names are the generated ones: cdk8s hashes only unnamed objects.
    The objects are the chart's ``api_objects``, in :func:`kubernetes_objects` order.

    Example::

        app = App()
        BackupChart(app, "backups", load_catalog("services.yaml"))
        app.synth()
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        catalog: Catalog,
        *,
        template_dirs: Sequence[str | Path] = (),
        **chart_kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **chart_kwargs)
        seen: set[str] = set()
        for obj in kubernetes_objects(catalog, template_dirs):
            construct_id = object_id(obj)
            if construct_id in seen:
                raise ValueError(f"two generated objects share the identity {construct_id!r}")
            seen.add(construct_id)
            _api_object(self, construct_id, obj)


def _api_object(scope: Construct, construct_id: str, obj: Mapping[str, Any]) -> cdk8s.ApiObject:
    metadata: Mapping[str, Any] = obj.get("metadata") or {}
    if not metadata.get("name"):
        raise ValueError(f"{construct_id}: a generated object has no metadata.name")
    given = {key: metadata[key] for key in _METADATA_FIELDS if metadata.get(key)}
    api_object = cdk8s.ApiObject(
        scope,
        construct_id,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=cdk8s.ApiObjectMetadata(**given),
    )
    # Patches apply after cdk8s's own clean-up (which drops empty maps, lists and nulls),
    # so each value lands exactly as generated.
    for key, value in metadata.items():
        if key not in given:
            api_object.add_json_patch(cdk8s.JsonPatch.add(f"/metadata/{_pointer(key)}", value))
    for key, value in obj.items():
        if key not in _OWN_FIELDS:
            api_object.add_json_patch(cdk8s.JsonPatch.add(f"/{_pointer(key)}", value))
    return api_object


def _pointer(key: str) -> str:
    """``key`` escaped as one JSON Pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
