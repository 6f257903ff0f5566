"""Coverage audit: which of a cluster's PersistentVolumeClaims the catalog protects.

``python -m homeops_gen audit --cluster FILE`` reads what ``kubectl get
pvc,statefulset,deployment -A -o json`` prints: one ``List`` (kubectl wraps the items of
several resource types in ``kind: List``, each item carrying its own ``apiVersion`` and
``kind``), or a single object. Every PVC gets one verdict, tried in this order:

1. **covered, its claim**: a service of its namespace names it as its claim: the
   engine block's ``claim`` (sqlite, redis, dragonfly, prometheus, files: what its dump
   job mounts), the ``volsync`` / ``kopiur`` / ``pvc`` block's ``claim`` (default the
   service's name: what VolSync or kopiur copies), or, when it has neither, the service's
   name (:func:`homeops_gen.generators.storage_layers.service_claim`).
2. **not data**: a volume that holds no data of its own, or only copies of it:
   - created by VolSync: its movers' caches (``volsync-{src,dst}-<owner>-cache``) and
     point-in-time copies (``volsync-<owner>-src``, ``-dest``) carry the label
     ``app.kubernetes.io/created-by: volsync`` (since VolSync 0.5) and a controller
     reference to their ReplicationSource or ReplicationDestination (VolSync
     ``internal/controller/volumehandler``, ``utils/labels.go``);
   - created by kopiur: its cache (``kopiur-cache-<owner>``), staged sources and
     verification scratch volumes carry ``app.kubernetes.io/managed-by: kopiur`` and an
     owner reference to a ``kopiur.home-operations.com`` object (kopiur
     ``io/mover.rs``, ``io/staging.rs``, ``io/finalizer.rs``);
   - a generic ephemeral volume: owned by its Pod and deleted with it (Kubernetes names it
     ``<pod>-<volume>``);
   - a dump job's NFS backup volume (``<service>-backup``): where the backups go;
   - a restore drill's scratch copy (``<service>-drill``, or the volumes of the scratch
     CNPG cluster ``<cluster>-drill``, labelled ``cnpg.io/cluster``).
   A name alone (``...-cache``) proves nothing: a PVC someone made by hand is audited.
3. **covered, its CNPG cluster**: CloudNativePG labels every volume of a cluster
   ``cnpg.io/cluster: <cluster>`` (``<cluster>-<n>``, ``<cluster>-<n>-wal``); a service
   whose ``cnpg.cluster`` is that cluster, in the same namespace, covers them.
4. **covered, its workload**: a StatefulSet or Deployment of the namespace uses it (a pod
   volume's ``persistentVolumeClaim.claimName``, or a StatefulSet's claim template: the
   controller names those PVCs ``<template>-<statefulset>-<ordinal>``) and is named like a
   service: its name is the service's, or its pod template carries every label of the
   service's ``job.app_labels`` (default ``app.kubernetes.io/name: <service>``).
5. otherwise **unprotected**, with a catalog item that would cover it.

Every service is looked for in its namespace: a claim its catalog entry names (an engine
or PVC block) must be there; so must its CNPG cluster's volumes; a service that names
neither needs its default claim or a workload named like it. etcd and ``local-disk``
services are not on a PVC and are not looked for. A covered PVC whose StorageClass is not
the one the service's ``storage`` means (``settings.volsync.classes``, default the same
name) is a warning.

Nothing here prints or exits (see :mod:`homeops_gen.cli`); everything is linear in the
number of objects (dictionary look-ups).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from homeops_gen.catalog.policy import PVC_BLOCKS
from homeops_gen.catalog.spec import StorageClass
from homeops_gen.errors import HomeopsError, Location, Problem, format_loc

if typing.TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog, Service

__all__ = [
    "EXIT_UNPROTECTED",
    "KUBECTL_COMMAND",
    "AuditFinding",
    "AuditReport",
    "Claim",
    "ClaimResult",
    "ClusterDump",
    "ClusterDumpError",
    "Workload",
    "audit_cluster",
    "catalog_document",
    "kubectl_dump",
    "parse_dump",
    "read_dump",
]

#: What ``--kubectl`` runs (the kubectl on PATH, against its current context).
KUBECTL_COMMAND = ("kubectl", "get", "pvc,statefulset,deployment", "-A", "-o", "json")
#: The exit code when a PVC is unprotected or a service is missing from the cluster.
EXIT_UNPROTECTED = 1

_PVC, _STS, _DEPLOY = "PersistentVolumeClaim", "StatefulSet", "Deployment"
_KINDS = (_PVC, _STS, _DEPLOY)
#: The catalog's storage names that stand for PVCs (local-disk has none).
_PVC_STORAGES = tuple(s for s in typing.get_args(StorageClass) if s != "local-disk")
_ORDINAL = re.compile(r"^(.*-)([0-9]+)$")
_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")
#: A scalar the snippet may write unquoted (no YAML 1.1 or 1.2 reading makes it other text).
_PLAIN = re.compile(r"[a-z][a-z0-9-]*(\.[a-z0-9-]+)*")
_RESERVED = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
#: A size as the catalog writes it (spec.Quantity), with a unit.
_CATALOG_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)")
_K8S_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")
_UNITS = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


class ClusterDumpError(HomeopsError):
    """The cluster dump cannot be read: not JSON, not kubectl's List, a nameless item."""


# --- the cluster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One PersistentVolumeClaim of the dump."""

    namespace: str
    name: str
    #: ``spec.storageClassName`` (or the older annotation); ``None``: none (statically bound).
    storage_class: str | None
    #: ``status.capacity.storage``, else ``spec.resources.requests.storage``.
    size: str | None
    labels: Mapping[str, str]
    #: ``(API group, kind)`` of each owner reference.
    owners: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Workload:
    """A StatefulSet or Deployment: what its pods mount."""

    kind: str
    namespace: str
    name: str
    #: The pod template's labels.
    labels: Mapping[str, str]
    #: ``persistentVolumeClaim.claimName`` of the pod template's volumes.
    claims: tuple[str, ...]
    #: A StatefulSet's ``volumeClaimTemplates`` names.
    templates: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ClusterDump:
    source: str
    claims: tuple[Claim, ...]
    workloads: tuple[Workload, ...]


def read_dump(path: str) -> ClusterDump:
    """The dump in the file at ``path`` (``-``: standard input)."""
    if path == "-":
        return parse_dump(sys.stdin.buffer.read(), "<stdin>")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ClusterDumpError([Problem(path, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    return parse_dump(data, path)


def kubectl_dump() -> ClusterDump:
    """Run :data:`KUBECTL_COMMAND` with the kubectl on PATH and read what it prints."""
    command = " ".join(KUBECTL_COMMAND)
    found = shutil.which(KUBECTL_COMMAND[0])
    if found is None:
        raise ClusterDumpError([Problem("kubectl", 0, 0, (), "kubectl is not on PATH")])
    try:
        done = subprocess.run([found, *KUBECTL_COMMAND[1:]], capture_output=True, check=False)
    except OSError as exc:
        message = f"cannot run {found}: {exc.strerror}"
        raise ClusterDumpError([Problem("kubectl", 0, 0, (), message)]) from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        shown = [f"  {line}" for line in said[:20]]
        if len(said) > 20:
            shown.append(f"  ... ({len(said) - 20} more lines)")
        message = "\n".join(
            [f"`{command}` failed (exit {done.returncode})" + ":" * bool(said), *shown]
        )
        raise ClusterDumpError([Problem("kubectl", 0, 0, (), message)])
    return parse_dump(done.stdout, "kubectl")


def _fail(
    source: str, message: str, loc: Location = (), line: int = 0, column: int = 0
) -> NoReturn:
    raise ClusterDumpError([Problem(source, line, column, loc, message)])


def parse_dump(data: bytes, source: str) -> ClusterDump:
    """The PVCs and workloads of kubectl's JSON (UTF-8, or UTF-16/32 with a BOM)."""
    if not data.strip():
        _fail(source, f"empty: expected the JSON that `{' '.join(KUBECTL_COMMAND)}` prints")
    try:
        document = json.loads(data)  # detects UTF-8/16/32 (a PowerShell redirect is UTF-16)
    except json.JSONDecodeError as exc:
        _fail(source, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno)
    except UnicodeDecodeError as exc:
        _fail(source, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}")
    except RecursionError:
        _fail(source, "invalid JSON: nested too deeply for kubectl's output")
    if not isinstance(document, dict):
        _fail(source, f"expected a JSON object (kubectl's List), not {_json_kind(document)}")
    kind = document.get("kind")
    implied: str | None = None
    single = kind in _KINDS
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and kind[:-4] in _KINDS):
        implied = None if kind == "List" else kind[:-4]  # a typed list's items have no kind
        items = document.get("items")
        items = [] if items is None else items  # kubectl prints "items": [] when none
        if not isinstance(items, list):
            _fail(source, f"items must be a list, not {_json_kind(items)}", ("items",))
    elif single:
        items = [document]
    else:
        got = f"kind {kind!r}" if isinstance(kind, str) else "no kind"
        _fail(
            source,
            "not what kubectl prints: expected kind List (kubectl get pvc,statefulset,"
            f"deployment -A -o json) or one PersistentVolumeClaim, StatefulSet or Deployment; "
            f"got {got}",
        )
    return _read_items(items, implied, source, single)


def _read_items(items: list[Any], implied: str | None, source: str, single: bool) -> ClusterDump:
    claims: dict[tuple[str, str], Claim] = {}
    workloads: list[Workload] = []
    others: dict[str, int] = {}
    for index, item in enumerate(items):
        at: Location = () if single else ("items", index)
        if not isinstance(item, dict):
            _fail(source, f"expected an object, not {_json_kind(item)}", at)
        kind = item.get("kind", implied)
        if kind not in _KINDS:
            others[str(kind)] = others.get(str(kind), 0) + 1
            continue
        metadata = item.get("metadata")
        if not isinstance(metadata, dict):
            _fail(source, f"a {kind} without metadata", (*at, "metadata"))
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(name, str) or not name:
            _fail(source, f"a {kind} without metadata.name", (*at, "metadata", "name"))
        if not isinstance(namespace, str) or not namespace:
            _fail(source, f"a {kind} without metadata.namespace", (*at, "metadata", "namespace"))
        spec = _object(item.get("spec"))
        if kind == _PVC:
            claim = _claim(namespace, name, metadata, spec, _object(item.get("status")))
            claims.setdefault(claim.key, claim)
        else:
            workloads.append(_workload(kind, namespace, name, spec))
    if items and not claims and not workloads:
        kinds = ", ".join(sorted(others))
        _fail(
            source,
            f"none of its {len(items)} items is a PersistentVolumeClaim, StatefulSet or "
            f"Deployment (kinds: {kinds}): use `{' '.join(KUBECTL_COMMAND)}`",
        )
    return ClusterDump(source, tuple(claims.values()), tuple(workloads))


def _json_kind(value: Any) -> str:
    for kind, name in (
        (dict, "an object"),
        (list, "a list"),
        (str, "a string"),
        (bool, "a boolean"),
    ):
        if isinstance(value, kind):
            return name
    return "null" if value is None else "a number"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _labels(value: Any) -> dict[str, str]:
    return {k: v for k, v in _object(value).items() if isinstance(v, str)}


def _claim(
    namespace: str,
    name: str,
    metadata: dict[str, Any],
    spec: dict[str, Any],
    status: dict[str, Any],
) -> Claim:
    storage_class = _text(spec.get("storageClassName"))
    if storage_class is None:  # the annotation storageClassName replaced, still honoured
        annotations = _labels(metadata.get("annotations"))
        storage_class = annotations.get("volume.beta.kubernetes.io/storage-class")
    requests = _object(_object(spec.get("resources")).get("requests"))
    size = _text(_object(status.get("capacity")).get("storage")) or _text(requests.get("storage"))
    owners = []
    for ref in _list(metadata.get("ownerReferences")):
        ref = _object(ref)
        group = (_text(ref.get("apiVersion")) or "").rpartition("/")[0]
        owners.append((group, _text(ref.get("kind")) or ""))
    return Claim(
        namespace, name, storage_class, size, _labels(metadata.get("labels")), tuple(owners)
    )


def _workload(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> Workload:
    template = _object(spec.get("template"))
    claims = []
    for volume in _list(_object(template.get("spec")).get("volumes")):
        claim = _text(_object(_object(volume).get("persistentVolumeClaim")).get("claimName"))
        if claim:
            claims.append(claim)
    templates: list[str] = []
    if kind == _STS:
        for entry in _list(spec.get("volumeClaimTemplates")):
            if template_name := _text(_object(_object(entry).get("metadata")).get("name")):
                templates.append(template_name)
    labels = _labels(_object(template.get("metadata")).get("labels"))
    return Workload(kind, namespace, name, labels, tuple(claims), tuple(templates))


# --- the catalog ----------------------------------------------------------------------------


def catalog_document(text: str) -> Mapping[str, Any]:
    """The catalog's YAML as data (already validated by the loader): libyaml when it can,
    else the round-trip reader, as the loader does."""
    from homeops_gen.catalog.fast_yaml import fast_load

    data = fast_load(text)
    if isinstance(data, dict):
        return data
    from homeops_gen.catalog.loader import CatalogPositions

    root = CatalogPositions(text).root
    return root if isinstance(root, Mapping) else {}


@dataclass(frozen=True)
class _Expected:
    """What the cluster must hold for one service."""

    service: Service
    #: Its claims, each with where the catalog names it (``None``: the default, the name).
    claims: tuple[tuple[str, Location | None], ...]
    storage_class: str
    #: Where that StorageClass comes from, for messages.
    class_origin: str
    cnpg: str | None
    #: A CNPG restore drill's scratch cluster.
    cnpg_scratch: str | None


def _classes(document: Mapping[str, Any]) -> dict[str, str]:
    settings = document.get("settings")
    volsync = settings.get("volsync") if isinstance(settings, Mapping) else None
    classes = volsync.get("classes") if isinstance(volsync, Mapping) else None
    found = {}
    for storage, entry in (classes or {}).items():
        if isinstance(entry, Mapping) and isinstance(entry.get("storage_class"), str):
            found[str(storage)] = entry["storage_class"]
    return found


def _expected(service: Service, raw: Mapping[str, Any], classes: dict[str, str]) -> _Expected:
    loc: Location = ("services", service.index)
    # The engine block's claim (the dump job mounts it) and the PVC block's (VolSync or
    # kopiur copies it), else the service's name: storage_layers.service_claim's order.
    claims: dict[str, Location | None] = {}
    engine_claim = getattr(service.connection, "claim", None)
    if isinstance(engine_claim, str):
        claims[engine_claim] = (*loc, service.engine, "claim")
    app = service.volsync or service.kopiur
    if app is not None:
        key = next((k for k in PVC_BLOCKS if isinstance(raw.get(k), Mapping)), None)
        where: Location | None = None
        if key is not None:
            where = (*loc, key, "claim") if "claim" in raw[key] else (*loc, key)
        claims.setdefault(app.claim, where)
    if not claims:
        claims[service.name] = None
    mapped = classes.get(service.storage)
    origin = (
        f"settings.volsync.classes.{service.storage}"
        if mapped is not None
        else "settings.volsync.classes does not map it: the same name"
    )
    cnpg = service.cnpg.name if service.cnpg is not None else None
    drill = service.drill
    scratch = f"{cnpg}-drill" if cnpg and drill is not None and drill.layer == "cnpg" else None
    return _Expected(
        service, tuple(claims.items()), mapped or service.storage, origin, cnpg, scratch
    )


# --- the verdicts ---------------------------------------------------------------------------

Verdict = Literal["covered", "not data", "unprotected"]


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    verdict: Verdict
    #: Why, in a few words (the rule that decided).
    why: str
    #: The covering service, for a covered PVC.
    service: Service | None = None
    #: For an unprotected PVC: the catalog item (YAML lines, a ``services`` entry) to add.
    snippet: tuple[str, ...] = ()
    #: For an unprotected PVC whose workload's snippet is another PVC's: that PVC.
    covered_by_snippet_of: Claim | None = None


@dataclass(frozen=True)
class AuditFinding:
    """A problem at a catalog location (mapped to ``services.yaml:LINE:COL`` by the CLI)."""

    loc: Location
    severity: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class AuditReport:
    #: Every PVC, sorted by namespace and name.
    claims: tuple[ClaimResult, ...]
    #: Catalog-anchored findings, in catalog order.
    findings: tuple[AuditFinding, ...]
    services: int
    #: Services with an error (a claim, CNPG cluster or workload not in the cluster).
    missing: int
    mismatches: int

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.claims if r.verdict == verdict)

    @property
    def exit_code(self) -> int:
        return EXIT_UNPROTECTED if self.count("unprotected") or self.missing else 0

    def summary(self) -> str:
        n = len(self.claims)
        mismatches = f"{self.mismatches} storage-class mismatch" + "es" * (self.mismatches != 1)
        return (
            f"audit: {n} PVC{'s' * (n != 1)}, {self.count('covered')} covered, "
            f"{self.count('not data')} not data, {self.count('unprotected')} unprotected; "
            f"{self.services} service{'s' * (self.services != 1)}, {self.missing} missing, "
            f"{mismatches}"
        )


class _Cluster:
    """The dump, indexed: every question below is a dictionary look-up."""

    def __init__(self, dump: ClusterDump) -> None:
        self.claims = {c.key: c for c in dump.claims}
        self.cnpg: dict[tuple[str, str], list[Claim]] = {}
        for c in dump.claims:
            if (cluster := c.labels.get("cnpg.io/cluster")) is not None:
                self.cnpg.setdefault((c.namespace, cluster), []).append(c)
        self.workloads: dict[str, list[Workload]] = {}
        #: (namespace, claim) or (namespace, "<template>-<statefulset>-") → its workloads.
        self.mounted: dict[tuple[str, str], list[Workload]] = {}
        self.templated: dict[tuple[str, str], list[Workload]] = {}
        for w in dump.workloads:
            self.workloads.setdefault(w.namespace, []).append(w)
            for claim in dict.fromkeys(w.claims):
                self.mounted.setdefault((w.namespace, claim), []).append(w)
            for template in w.templates:
                self.templated.setdefault((w.namespace, f"{template}-{w.name}-"), []).append(w)

    def users(self, claim: Claim) -> list[tuple[Workload, str]]:
        """The workloads that use ``claim``, each with how."""
        found = [(w, "mounted by") for w in self.mounted.get(claim.key, ())]
        if (match := _ORDINAL.match(claim.name)) is not None:
            for w in self.templated.get((claim.namespace, match.group(1)), ()):
                found.append((w, f"claim template {match.group(1)[: -len(w.name) - 2]!r} of"))
        return found


class _Services:
    """The catalog's services, indexed by what the cluster shows of them."""

    def __init__(self, expected: Sequence[_Expected]) -> None:
        self.claims: dict[tuple[str, str], tuple[_Expected, Location | None]] = {}
        self.cnpg: dict[tuple[str, str], _Expected] = {}
        self.scratch_clusters: dict[tuple[str, str], _Expected] = {}
        self.names: dict[tuple[str, str], _Expected] = {}
        self.labels: dict[tuple[str, str, str], list[_Expected]] = {}
        #: Volumes homeops_gen's own jobs and drills make, with what they are.
        self.own_volumes: dict[tuple[str, str], str] = {}
        for e in expected:
            s = e.service
            for claim, where in e.claims:
                self.claims.setdefault((s.namespace, claim), (e, where))
            self.names.setdefault((s.namespace, s.name), e)
            if e.cnpg is not None:
                self.cnpg.setdefault((s.namespace, e.cnpg), e)
            if e.cnpg_scratch is not None:
                self.scratch_clusters.setdefault((s.namespace, e.cnpg_scratch), e)
            for key, value in s.job.app_labels.items():
                self.labels.setdefault((s.namespace, key, value), []).append(e)
            if s.uses("dump"):  # backup_jobs.backup_volume_name
                self.own_volumes.setdefault(
                    (s.namespace, f"{s.name}-backup"),
                    f"the NFS backup volume the dump job of {s.name} writes its backups to",
                )
            if s.drill is not None and s.drill.layer == "volsync":  # drills.scratch_name
                self.own_volumes.setdefault(
                    (s.namespace, f"{s.name}-drill"),
                    f"the scratch copy the restore drill of {s.name} restores into",
                )

    def of_workload(self, w: Workload) -> tuple[_Expected, str] | None:
        """The service a workload is named like (its name, else all its app labels)."""
        if (e := self.names.get((w.namespace, w.name))) is not None:
            return e, "named like the service"
        candidates: dict[int, _Expected] = {}
        for key, value in w.labels.items():
            for e in self.labels.get((w.namespace, key, value), ()):
                candidates.setdefault(e.service.index, e)
        for index in sorted(candidates):
            e = candidates[index]
            labels = e.service.job.app_labels
            if all(w.labels.get(k) == v for k, v in labels.items()):
                shown = ", ".join(f"{k}={v}" for k, v in labels.items())
                return e, f"labelled {shown}"
        return None


def _not_data(claim: Claim, services: _Services) -> str | None:
    """Why ``claim`` holds no data to protect (see the module's rule 2), or ``None``."""
    labels, groups = claim.labels, {group for group, _ in claim.owners}
    if labels.get("app.kubernetes.io/created-by") == "volsync" or "volsync.backube" in groups:
        return "a VolSync mover's cache or point-in-time copy (created by VolSync)"
    if labels.get("app.kubernetes.io/managed-by") == "kopiur" or (
        "kopiur.home-operations.com" in groups
    ):
        return "a kopiur mover's cache, staged copy or verification volume (created by kopiur)"
    if ("", "Pod") in claim.owners:
        return "a generic ephemeral volume (owned by its Pod, deleted with it)"
    if (what := services.own_volumes.get(claim.key)) is not None:
        return what
    if (
        labels.get("app.kubernetes.io/managed-by") == "homeops_gen"
        and labels.get("app.kubernetes.io/component") == "restore-drill"
    ):
        return "a restore drill's scratch copy (made by homeops_gen's drill)"
    cluster = labels.get("cnpg.io/cluster")
    if cluster is not None and (e := services.scratch_clusters.get((claim.namespace, cluster))):
        return f"a volume of {cluster!r}, the scratch CNPG cluster of the drill of {e.service.name}"
    return None


def audit_cluster(catalog: Catalog, document: Mapping[str, Any], dump: ClusterDump) -> AuditReport:
    """Every PVC's verdict and every catalog finding (see the module's rules)."""
    classes = _classes(document)
    raw_services = document.get("services") or ()
    expected = []
    for service in sorted(catalog.services, key=lambda s: s.index):
        raw = raw_services[service.index] if service.index < len(raw_services) else {}
        expected.append(_expected(service, raw if isinstance(raw, Mapping) else {}, classes))
    cluster, services = _Cluster(dump), _Services(expected)
    workload_service = {}
    present: set[int] = set()  # services with a workload named like them
    for namespaced in cluster.workloads.values():
        for w in namespaced:
            if (found := services.of_workload(w)) is not None:
                workload_service[id(w)] = found
                present.add(found[0].service.index)

    results: list[ClaimResult] = []
    covered: dict[int, list[Claim]] = {}  # service index → its PVCs, for the class check
    for claim in sorted(dump.claims, key=lambda c: c.key):
        result = _verdict(claim, cluster, services, workload_service)
        results.append(result)
        if result.service is not None:
            covered.setdefault(result.service.index, []).append(claim)
    results = _add_snippets(results, cluster, catalog, classes)
    holding: dict[str, list[str]] = {}  # the PVCs with data, by namespace, for messages
    for result in results:
        if result.verdict != "not data":
            holding.setdefault(result.claim.namespace, []).append(result.claim.name)

    findings: list[AuditFinding] = []
    missing = mismatches = 0
    for e in expected:
        problems = _presence(e, cluster, e.service.index in present, holding)
        missing += bool(problems)
        findings += problems
        wrong = _class_findings(e, covered.get(e.service.index, ()))
        mismatches += len(wrong)
        findings += wrong
    return AuditReport(tuple(results), tuple(findings), len(expected), missing, mismatches)


def _verdict(
    claim: Claim,
    cluster: _Cluster,
    services: _Services,
    workload_service: dict[int, tuple[_Expected, str]],
) -> ClaimResult:
    if (named := services.claims.get(claim.key)) is not None:
        e, where = named
        how = format_loc(where) if where is not None else "by default: the service's name"
        return ClaimResult(claim, "covered", f"its claim ({how})", e.service)
    if (why := _not_data(claim, services)) is not None:
        return ClaimResult(claim, "not data", why)
    cluster_name = claim.labels.get("cnpg.io/cluster")
    if cluster_name is not None and (of := services.cnpg.get((claim.namespace, cluster_name))):
        why = f"a volume of its CNPG cluster {cluster_name!r} (label cnpg.io/cluster)"
        return ClaimResult(claim, "covered", why, of.service)
    for workload, how in cluster.users(claim):
        if (found := workload_service.get(id(workload))) is not None:
            e, like = found
            return ClaimResult(claim, "covered", f"{how} {workload}, {like}", e.service)
    return ClaimResult(
        claim,
        "unprotected",
        f"no service of namespace {claim.namespace!r} names it as its claim, and no "
        "workload named like a service uses it",
    )


def _presence(
    e: _Expected, cluster: _Cluster, has_workload: bool, holding: Mapping[str, list[str]]
) -> list[AuditFinding]:
    """What the catalog says of the service that the cluster does not show."""
    s = e.service
    loc: Location = ("services", s.index)
    if s.engine == "etcd" or s.storage == "local-disk":
        return []  # not on a PVC (etcd: the control plane's own disk)
    names = holding.get(s.namespace, [])
    found: list[AuditFinding] = []
    for claim, where in e.claims:
        if where is not None and (s.namespace, claim) not in cluster.claims:
            message = f"claim {claim!r} is not in namespace {s.namespace!r}{_nearby(claim, names)}"
            found.append(AuditFinding(where, "error", message))
    if e.cnpg is not None and (s.namespace, e.cnpg) not in cluster.cnpg:
        message = (
            f"no volume of CNPG cluster {e.cnpg!r} (label cnpg.io/cluster={e.cnpg}) is in "
            f"namespace {s.namespace!r}"
        )
        found.append(AuditFinding((*loc, "cnpg", "cluster"), "error", message))
    claim, where = e.claims[0]
    if (
        where is None  # the catalog names no claim: its default, or a workload, will do
        and e.cnpg is None
        and not has_workload
        and (s.namespace, claim) not in cluster.claims
    ):
        labels = ", ".join(f"{k}={v}" for k, v in s.job.app_labels.items())
        workloads = sorted(str(w) for w in cluster.workloads.get(s.namespace, ()))
        others = ", ".join(workloads[:5]) + (", ..." if len(workloads) > 5 else "")
        message = (
            f"nothing of {s.name!r} is in namespace {s.namespace!r}: no PVC {claim!r} (its "
            f"default claim), no StatefulSet or Deployment named {s.name!r} or labelled "
            f"{labels} (its workloads: {others or 'none'}; job.app_labels names the "
            "labels of the service's pods)"
        )
        found.append(AuditFinding((*loc, "name"), "error", message))
    return found


def _nearby(name: str, names: list[str]) -> str:
    """What the namespace has instead, for a message."""
    if not names:
        return " (no PVC of the namespace holds data)"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return f" (its PVCs: {shown}){guess}"


def _class_findings(e: _Expected, claims: Iterable[Claim]) -> list[AuditFinding]:
    """One warning per StorageClass that the service's PVCs are on and should not be.

    A CNPG cluster homeops_gen owns takes its class from ``cnpg.storage_class``, if set.
    """
    s = e.service
    owned_class = s.cnpg.storage_class if s.cnpg is not None and s.cnpg.owned else None
    wrong: dict[tuple[str, str, Location], list[Claim]] = {}
    for claim in claims:
        want: str = e.storage_class
        at: Location = ("services", s.index, "storage")
        if owned_class is not None and claim.labels.get("cnpg.io/cluster") == e.cnpg:
            want, at = owned_class, ("services", s.index, "cnpg", "storage_class")
        if (claim.storage_class or "") != want:
            wrong.setdefault((claim.storage_class or "", want, at), []).append(claim)
    found = []
    for (actual, want, at), group in sorted(wrong.items(), key=lambda item: item[0][:2]):
        names = ", ".join(str(c) for c in group[:5]) + (", ..." if len(group) > 5 else "")
        on = f"on StorageClass {actual!r}" if actual else "bound without a StorageClass"
        verb = "is" if len(group) == 1 else "are"
        if at[-1] == "storage_class":
            means = f"cnpg.storage_class is {want!r}"
        else:
            means = f"storage: {s.storage} means StorageClass {want!r} ({e.class_origin})"
        found.append(AuditFinding(at, "warning", f"{names} {verb} {on}, but {means}"))
    return found


# --- the snippets ---------------------------------------------------------------------------


def _add_snippets(
    results: list[ClaimResult], cluster: _Cluster, catalog: Catalog, classes: dict[str, str]
) -> list[ClaimResult]:
    """A catalog item for each unprotected PVC, one per workload: named after the workload,
    it covers the workload's other PVCs too (rule 4)."""
    taken = {s.name for s in catalog.services}
    reverse: dict[str, list[str]] = {}
    for storage in _PVC_STORAGES:  # settings.volsync.classes, inverted; default the name
        reverse.setdefault(classes.get(storage, storage), []).append(storage)
    first_of: dict[tuple[str, str, str], Claim] = {}
    done = []
    for result in results:
        if result.verdict != "unprotected":
            done.append(result)
            continue
        claim = result.claim
        users = {(w.kind, w.name): (w, how) for w, how in cluster.users(claim)}
        workload, how = next(iter(users.values())) if len(users) == 1 else (None, "")
        if workload is not None:
            group = (claim.namespace, workload.kind, workload.name)
            if (first := first_of.get(group)) is not None:
                why = f"it is {how} {workload} too"
                done.append(_replace(result, covered_by_snippet_of=first, why=why))
                continue
            first_of[group] = claim
        name = _unique(_label(workload.name if workload else claim.name), claim.namespace, taken)
        taken.add(name)
        after = f"  # after {workload}, which uses it" if workload is not None else ""
        done.append(_replace(result, snippet=_snippet(name, claim, reverse, after)))
    return done


def _replace(result: ClaimResult, **changes: Any) -> ClaimResult:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _label(text: str) -> str:
    """``text`` as a service name (a DNS-1123 label)."""
    label = _LABEL_CHARS.sub("-", text.lower()).strip("-")[:63].strip("-")
    return label or "service"


def _unique(name: str, namespace: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    candidate = _label(f"{name}-{namespace}")
    number = 2
    while candidate in taken:
        suffix = f"-{number}"
        candidate = _label(f"{name}"[: 63 - len(suffix)] + suffix)
        number += 1
    return candidate


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as this text."""
    return text if _PLAIN.fullmatch(text) and text not in _RESERVED else json.dumps(text)


def _catalog_quantity(size: str | None) -> tuple[str, str]:
    """The PVC's size as the catalog writes it (binary units, rounded up), and a remark."""
    if size is None:
        return "1Gi", "  # the PVC states no size: set its capacity"
    if _CATALOG_QUANTITY.fullmatch(size):
        return size, ""
    match = _K8S_QUANTITY.fullmatch(size)
    if match is None:
        return "1Gi", f"  # the PVC's size {size!r} is not a quantity: set its capacity"
    amount = float(match.group(1)) * _UNITS[match.group(2) or ""]
    unit = "Gi" if amount >= 2**30 else "Mi"
    return f"{max(1, math.ceil(amount / _UNITS[unit]))}{unit}", f"  # {size}, rounded up"


def _snippet(
    name: str, claim: Claim, reverse: dict[str, list[str]], remark_on_name: str
) -> tuple[str, ...]:
    """A ``services`` entry that covers ``claim`` (its claim, copied by the PVC engine)."""
    storages = reverse.get(claim.storage_class or "")
    if storages:
        storage = storages[0]
        others = " or ".join(storages[1:])
        remark = f"  # or {others}: StorageClass {claim.storage_class} is both" if others else ""
    else:
        storage = "local-hostpath"
        shown = f"StorageClass {claim.storage_class!r}" if claim.storage_class else "no class"
        remark = f"  # {shown} is not in settings.volsync.classes: set the storage it is"
    capacity, size_remark = _catalog_quantity(claim.size)
    fields = f"claim: {_scalar(claim.name)}, " if claim.name != name else ""
    fields += f"capacity: {capacity}"  # a catalog quantity: text in any YAML
    return (
        f"  - name: {_scalar(name)}{remark_on_name}",
        f"    namespace: {_scalar(claim.namespace)}",
        f"    storage: {storage}{remark}",
        "    churn: low",
        "    engine: files",
        f"    pvc: {{{fields}}}{size_remark}",
    )
