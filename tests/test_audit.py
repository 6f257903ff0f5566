"""The coverage audit (``python -m homeops_gen audit``) against kubectl's view of a cluster.

What the audit reads is modelled on kubectl, not on the audit: ``kubectl get
pvc,statefulset,deployment -A -o json`` prints one ``kind: List`` whose items each carry
their ``apiVersion`` and ``kind`` (kubectl's printer: four-space indent, keys sorted, a
final newline, the list's ``metadata: {resourceVersion: ""}``). The two recorded dumps in
``tests/data/audit/`` were printed by kubectl 1.32 itself, against a stand-in API server
on loopback serving the objects :func:`covered_cluster` and :func:`gapped_cluster` build;
the large dump and the bundled catalog's are built here in the same shape.

The objects are modelled on what their controllers make (each fact in a comment where it
is used): StatefulSet claim templates become ``<template>-<statefulset>-<ordinal>``;
CloudNativePG labels its volumes ``cnpg.io/cluster``; VolSync labels what it creates
``app.kubernetes.io/created-by: volsync`` and owns it from its ReplicationSource; kopiur
labels its caches ``app.kubernetes.io/managed-by: kopiur``; a generic ephemeral volume is
owned by its Pod.
"""

from __future__ import annotations

import json
import os
import re
import stat
import textwrap
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, CliResult, run_module

from homeops_gen.catalog import load_catalog_text

DATA = Path(__file__).parent / "data" / "audit"
Run = Callable[..., CliResult]
Obj = dict[str, Any]

# --- kubectl's objects ------------------------------------------------------------------------

#: The CSI provisioner that binds each StorageClass's volumes (the PVC's annotations).
PROVISIONERS = {
    "openebs-hostpath": "openebs.io/local",
    "local-path": "rancher.io/local-path",
    "freenas-iscsi": "org.democratic-csi.iscsi",
    "iscsi": "org.democratic-csi.iscsi",
    "nfs": "nfs.csi.k8s.io",
    "proxmox-lvm": "csi.proxmox.sinextra.dev",
}


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _meta(ns: str, name: str, labels: Mapping[str, str] | None = None, **more: Any) -> Obj:
    meta: Obj = {
        "creationTimestamp": "2026-03-01T09:30:00Z",
        "name": name,
        "namespace": ns,
        "resourceVersion": str(10000 + int(_uid(ns, name)[:4], 16)),
        "uid": _uid(ns, name),
    }
    if labels:
        meta["labels"] = dict(labels)
    meta.update(more)
    return meta


def pvc(
    ns: str,
    name: str,
    storage_class: str | None = "freenas-iscsi",
    size: str = "1Gi",
    labels: Mapping[str, str] | None = None,
    owners: Sequence[tuple[str, str, str]] = (),
    access: str = "ReadWriteOnce",
) -> Obj:
    """A bound PVC as the API returns it; ``owners``: (apiVersion, kind, name);
    ``storage_class`` ``""``: statically bound to a PV of no class (the NFS backup volumes)."""
    uid = _uid(ns, name)
    annotations = {"pv.kubernetes.io/bind-completed": "yes"}
    if storage_class:  # dynamically provisioned: the external provisioner's annotations
        provisioner = PROVISIONERS.get(storage_class, "csi.example.com")
        annotations |= {
            "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.beta.kubernetes.io/storage-provisioner": provisioner,
            "volume.kubernetes.io/storage-provisioner": provisioner,
        }
    more: Obj = {"annotations": annotations, "finalizers": ["kubernetes.io/pvc-protection"]}
    if owners:
        more["ownerReferences"] = [
            {
                "apiVersion": api,
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": kind,
                "name": owner,
                "uid": _uid(ns, kind, owner),
            }
            for api, kind, owner in owners
        ]
    spec: Obj = {
        "accessModes": [access],
        "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem",
        # the static NFS backup volume's PV is "<namespace>-<name>" (nfs-backup-volume module)
        "volumeName": f"pvc-{uid}" if storage_class else f"{ns}-{name}",
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(ns, name, labels, **more),
        "spec": spec,
        "status": {"accessModes": [access], "capacity": {"storage": size}, "phase": "Bound"},
    }


def _pod_template(labels: Mapping[str, str], mounts: Iterable[str], claims: Obj) -> Obj:
    volumes = [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in claims.items()]
    container: Obj = {
        "image": "ghcr.io/example/app:1.0.0",
        "imagePullPolicy": "IfNotPresent",
        "name": "app",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"mountPath": f"/{m}", "name": m} for m in mounts],
    }
    spec: Obj = {
        "containers": [container],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    }
    if volumes:
        spec["volumes"] = volumes
    # kubectl prints a template's unset creationTimestamp as null
    return {"metadata": {"creationTimestamp": None, "labels": dict(labels)}, "spec": spec}


def statefulset(
    ns: str,
    name: str,
    labels: Mapping[str, str],
    templates: Mapping[str, tuple[str, str]],
    replicas: int = 1,
    claims: Mapping[str, str] | None = None,
) -> Obj:
    """A StatefulSet; ``templates``: claim template name → (StorageClass, size)."""
    claim_templates = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"creationTimestamp": None, "name": template},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "storageClassName": storage_class,
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Pending"},
        }
        for template, (storage_class, size) in templates.items()
    ]
    revision = f"{name}-{_uid(ns, name)[:10]}"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(ns, name, labels, generation=1),
        "spec": {
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "podManagementPolicy": "OrderedReady",
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": dict(labels)},
            "serviceName": name,
            "template": _pod_template(labels, [*templates, *(claims or {})], dict(claims or {})),
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
            "volumeClaimTemplates": claim_templates,
        },
        "status": {
            "availableReplicas": replicas,
            "collisionCount": 0,
            "currentReplicas": replicas,
            "currentRevision": revision,
            "observedGeneration": 1,
            "readyReplicas": replicas,
            "replicas": replicas,
            "updateRevision": revision,
            "updatedReplicas": replicas,
        },
    }


def template_claims(sts: Obj) -> list[Obj]:
    """The PVCs the StatefulSet controller made from ``sts``'s claim templates: named
    ``<template>-<statefulset>-<ordinal>``, labelled with the set's selector."""
    meta, spec = sts["metadata"], sts["spec"]
    return [
        pvc(
            meta["namespace"],
            f"{t['metadata']['name']}-{meta['name']}-{ordinal}",
            t["spec"]["storageClassName"],
            t["spec"]["resources"]["requests"]["storage"],
            labels=spec["selector"]["matchLabels"],
        )
        for t in spec["volumeClaimTemplates"]
        for ordinal in range(spec["replicas"])
    ]


def deployment(ns: str, name: str, labels: Mapping[str, str], claims: Mapping[str, str]) -> Obj:
    """A Deployment; ``claims``: pod volume name → claim name."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            ns, name, labels, generation=1, annotations={"deployment.kubernetes.io/revision": "1"}
        ),
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "Recreate"},
            "template": _pod_template(labels, claims, dict(claims)),
        },
        "status": {
            "availableReplicas": 1,
            "observedGeneration": 1,
            "readyReplicas": 1,
            "replicas": 1,
            "updatedReplicas": 1,
        },
    }


def kubectl_list(items: Iterable[Obj]) -> str:
    """What ``kubectl get ... -o json`` prints for these items."""
    document = {"apiVersion": "v1", "items": list(items), "kind": "List"}
    document["metadata"] = {"resourceVersion": ""}
    return json.dumps(document, indent=4, sort_keys=True) + "\n"


KINDS = ("PersistentVolumeClaim", "StatefulSet", "Deployment")
# Owners and labels of the volumes operators make.
VOLSYNC_SOURCE = ("volsync.backube/v1alpha1", "ReplicationSource")
KOPIUR_POLICY = ("kopiur.home-operations.com/v1alpha1", "SnapshotPolicy")
CNPG_CLUSTER = ("postgresql.cnpg.io/v1", "Cluster")
VOLSYNC_LABELS = {"app.kubernetes.io/created-by": "volsync"}
KOPIUR_CACHE_LABELS = {
    "app.kubernetes.io/managed-by": "kopiur",
    "kopiur.home-operations.com/component": "mover-cache",
}


def volsync_cache(ns: str, app: str, storage_class: str = "openebs-hostpath") -> Obj:
    # VolSync's mover: "volsync-<src|dst>-<owner>-cache", owned by the ReplicationSource
    return pvc(
        ns,
        f"volsync-src-{app}-cache",
        storage_class,
        "2Gi",
        labels=VOLSYNC_LABELS,
        owners=[(*VOLSYNC_SOURCE, app)],
    )


def kopiur_cache(ns: str, app: str, storage_class: str = "openebs-hostpath") -> Obj:
    # kopiur's persistent cache: "kopiur-cache-<owner>", managed-by kopiur, owner-referenced
    return pvc(
        ns,
        f"kopiur-cache-{app}",
        storage_class,
        "2Gi",
        labels=KOPIUR_CACHE_LABELS,
        owners=[(*KOPIUR_POLICY, app)],
    )


def cnpg_volumes(ns: str, cluster: str, instances: int, storage_class: str, wal: bool) -> list[Obj]:
    # CNPG: "<cluster>-<serial>" (and "-wal"), labelled cnpg.io/cluster and cnpg.io/pvcRole
    found = []
    for serial in range(1, instances + 1):
        for suffix, role in (("", "PG_DATA"), ("-wal", "PG_WAL"))[: 1 + wal]:
            labels = {
                "cnpg.io/cluster": cluster,
                "cnpg.io/instanceName": f"{cluster}-{serial}",
                "cnpg.io/pvcRole": role,
            }
            found.append(
                pvc(
                    ns,
                    f"{cluster}-{serial}{suffix}",
                    storage_class,
                    "10Gi",
                    labels=labels,
                    owners=[(*CNPG_CLUSTER, cluster)],
                )
            )
    return found


def backup_volume(ns: str, service: str) -> Obj:
    # the dump job's NFS volume: a static PV, no StorageClass (nfs-backup-volume module)
    return pvc(ns, f"{service}-backup", "", "50Gi", access="ReadWriteMany")


def app_labels(name: str, instance: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": name}
    if instance:
        labels["app.kubernetes.io/instance"] = instance
    return labels


# --- the small catalog and its cluster --------------------------------------------------------

SETTINGS = """\
  object_stores:
    garage: {provider: garage, endpoint: "http://garage:3900", region: garage, bucket: cnpg}
  volsync:
    classes:
      local-hostpath: {storage_class: openebs-hostpath}
      iscsi: {storage_class: freenas-iscsi, snapshot_class: freenas-iscsi-snapshot}
"""
HEAD = MINIMAL_HEAD.replace("services:\n", SETTINGS + "services:\n")
SERVICES = """\
  - name: notes
    namespace: notes
    storage: iscsi
    churn: low
    engine: sqlite
    sqlite: {claim: notes-data, database: /data/notes.db}
  - name: media
    namespace: media
    storage: nfs
    churn: low
    engine: files
    offsite: {excluded: Replaceable downloads}
  - name: sonarr
    namespace: media
    storage: local-hostpath
    churn: low
    engine: files
    kopiur: {claim: sonarr-config, capacity: 2Gi}
  - name: home-assistant
    namespace: home
    storage: local-hostpath
    churn: medium
    engine: files
    volsync: {capacity: 5Gi}
    drill: {layer: volsync}
  - name: vault
    namespace: vault
    storage: iscsi
    churn: low
    engine: vault
    vault: {address: "http://vault.vault.svc:8200", token: {name: vault-token, key: token}}
  - name: postgres
    namespace: dbaas
    storage: iscsi
    churn: high
    engine: postgresql
    postgresql: {host: pg-rw.dbaas.svc.cluster.local, password: {name: pg-su, key: password}}
    cnpg: {cluster: pg, object_store: garage}
    drill: {layer: cnpg}
  - name: mysql
    namespace: dbaas
    storage: iscsi
    churn: high
    engine: mysql
    mysql: {host: mysql-primary.dbaas.svc.cluster.local, password: {name: my-root, key: password}}
  - name: wiki
    namespace: wiki
    storage: iscsi
    churn: low
    engine: sqlite
    sqlite: {claim: wiki-data, database: /data/wiki.db}
"""
CATALOG = HEAD + SERVICES


def covered_cluster() -> list[Obj]:
    """Every object of the small catalog's cluster: each PVC covered or not data."""
    vault = statefulset(
        "vault", "vault", app_labels("vault", "vault"), {"data": ("freenas-iscsi", "10Gi")}, 3
    )
    mysql = statefulset(
        "dbaas",
        "mysql-primary",  # a chart's name for it: covered through the labels
        {**app_labels("mysql", "mysql"), "app.kubernetes.io/component": "primary"},
        {"data": ("freenas-iscsi", "20Gi")},
    )
    jellyfin = deployment(
        "media",
        "jellyfin",
        app_labels("media", "jellyfin"),
        {"config": "jellyfin-config", "media": "jellyfin-media", "cache": "jellyfin-cache"},
    )
    return [
        pvc("notes", "notes-data"),
        backup_volume("notes", "notes"),
        deployment("notes", "notes", app_labels("notes"), {"data": "notes-data"}),
        pvc("media", "jellyfin-config", "nfs", "10Gi", app_labels("media", "jellyfin")),
        pvc("media", "jellyfin-media", "nfs", "500Gi", access="ReadWriteMany"),
        # a user's PVC whose name ends in -cache: audited like any other (mounted: covered)
        pvc("media", "jellyfin-cache", "nfs", "20Gi"),
        # a generic ephemeral volume: "<pod>-<volume>", owned by its Pod
        pvc(
            "media",
            "jellyfin-7d9c5b6f4-x2k4p-transcode",
            "openebs-hostpath",
            "50Gi",
            owners=[("v1", "Pod", "jellyfin-7d9c5b6f4-x2k4p")],
        ),
        jellyfin,
        pvc("media", "sonarr-config", "openebs-hostpath", "2Gi"),
        kopiur_cache("media", "sonarr"),
        deployment("media", "sonarr", app_labels("sonarr"), {"config": "sonarr-config"}),
        pvc("home", "home-assistant", "openebs-hostpath", "5Gi"),
        volsync_cache("home", "home-assistant"),
        # the restore drill's scratch claim, while a drill runs (drills.py's labels)
        pvc(
            "home",
            "home-assistant-drill",
            "openebs-hostpath",
            "5Gi",
            labels={
                "app.kubernetes.io/name": "home-assistant",
                "app.kubernetes.io/component": "restore-drill",
                "app.kubernetes.io/managed-by": "homeops_gen",
            },
        ),
        deployment(
            "home", "home-assistant", app_labels("home-assistant"), {"config": "home-assistant"}
        ),
        vault,
        *template_claims(vault),
        backup_volume("vault", "vault"),
        *cnpg_volumes("dbaas", "pg", 2, "freenas-iscsi", wal=True),
        # the CNPG restore drill's scratch cluster "<cluster>-drill", while a drill runs
        *cnpg_volumes("dbaas", "pg-drill", 1, "freenas-iscsi", wal=False),
        backup_volume("dbaas", "postgres"),
        mysql,
        *template_claims(mysql),
        backup_volume("dbaas", "mysql"),
        pvc("wiki", "wiki-data"),
        backup_volume("wiki", "wiki"),
        deployment("wiki", "wiki", app_labels("wiki"), {"data": "wiki-data"}),
    ]


def _without(objects: list[Obj], *names: tuple[str, str]) -> list[Obj]:
    """``objects`` less those of the given (kind, name)."""
    return [o for o in objects if (o["kind"], o["metadata"]["name"]) not in names]


def gapped_cluster() -> list[Obj]:
    """The covered cluster with gaps planted (see :data:`GAPS`)."""
    objects = _without(
        covered_cluster(),
        ("PersistentVolumeClaim", "wiki-data"),
        ("Deployment", "wiki"),
        ("StatefulSet", "mysql-primary"),  # its claim's PVC stays (whenDeleted: Retain)
        ("PersistentVolumeClaim", "home-assistant"),
    )
    queue = statefulset(
        "queue", "queue", app_labels("queue"), {"data": ("freenas-iscsi", "8Gi")}, 2
    )
    return [
        *objects,
        # the wiki's claim is called otherwise in the cluster
        pvc("wiki", "wiki-database"),
        deployment("wiki", "wiki", app_labels("wiki"), {"data": "wiki-database"}),
        # home-assistant's claim, on another StorageClass than local-hostpath means
        pvc("home", "home-assistant", "local-path", "5Gi"),
        # a StatefulSet no service knows of, and a hand-made PVC named like a cache
        queue,
        *template_claims(queue),
        pvc("tools", "build-cache", "nfs", "10G"),
    ]


def kubectl_order(objects: Iterable[Obj]) -> list[Obj]:
    """The order kubectl prints ``get pvc,statefulset,deployment -A``: by type as asked,
    each as the API lists it (by namespace, then name)."""
    rank = {"PersistentVolumeClaim": 0, "StatefulSet": 1, "Deployment": 2}
    return sorted(
        objects, key=lambda o: (rank[o["kind"]], o["metadata"]["namespace"], o["metadata"]["name"])
    )


# --- the bundled catalog's cluster ------------------------------------------------------------


def bundled_cluster() -> list[Obj]:
    """A cluster the bundled services.yaml covers, written from its entries: the claims it
    names, the workloads of the services that name none, the volumes its operators and
    jobs make. No classes are mapped there: each StorageClass is named like its storage."""
    objects: list[Obj] = []

    def deploy(ns: str, name: str, claims: Mapping[str, str], labels: str | None = None) -> None:
        objects.append(deployment(ns, name, app_labels(labels or name, name), claims))

    def sts(
        ns: str, name: str, template: str, sc: str, replicas: int = 1, labels: str | None = None
    ) -> None:
        made = statefulset(
            ns, name, app_labels(labels or name, name), {template: (sc, "10Gi")}, replicas
        )
        objects.extend([made, *template_claims(made)])

    # iSCSI databases, dumped to NFS (each dump job's backup volume "<service>-backup")
    objects += cnpg_volumes("dbaas", "pg-cluster", 3, "iscsi", wal=False)
    sts("dbaas", "mysql-primary", "data", "iscsi", labels="mysql")
    sts("vault", "vault", "data", "iscsi", replicas=3)
    for ns, claim, name in (
        ("vaultwarden", "vaultwarden-data", "vaultwarden"),
        ("redis", "redis-data", "redis-master"),
        ("plotting-book", "plotting-book-data", "plotting-book"),
    ):
        objects.append(pvc(ns, claim, "iscsi", "5Gi"))
        deploy(ns, name, {"data": claim}, labels=ns)
    objects.append(pvc("monitoring", "prometheus-data", "nfs", "200Gi"))
    for ns, service in (
        ("dbaas", "postgresql"),
        ("dbaas", "mysql"),
        ("kube-system", "etcd"),
        ("vault", "vault"),
        ("vaultwarden", "vaultwarden"),
        ("redis", "redis"),
        ("plotting-book", "plotting-book"),
        ("monitoring", "prometheus"),
    ):
        objects.append(backup_volume(ns, service))
    # NFS applications: their default claim, or a workload named or labelled like them
    objects.append(pvc("immich", "immich-library", "nfs", "1Ti", access="ReadWriteMany"))
    deploy("immich", "immich-server", {"library": "immich-library"}, labels="immich")
    for ns, name in (
        ("forgejo", "forgejo"),
        ("audiblez", "audiblez"),
        ("audiblez", "ebook2audiobook"),
        ("ytldp", "ytldp"),
    ):
        objects.append(pvc(ns, name, "nfs", "50Gi"))
    for ns, name, claims in (
        ("paperless", "paperless-ngx", ("paperless-data", "paperless-media")),
        ("nextcloud", "nextcloud", ("nextcloud-nextcloud",)),
        ("frigate", "frigate", ("frigate-config", "frigate-media")),
        ("ollama", "ollama", ("ollama-data",)),
        ("real-estate", "real-estate-crawler", ("crawler-data",)),
    ):
        objects += [pvc(ns, claim, "nfs", "20Gi") for claim in claims]
        deploy(ns, name, {c: c for c in claims})
    objects += [pvc("crowdsec", c, "nfs", "1Gi") for c in ("crowdsec-db", "crowdsec-config")]
    deploy(
        "crowdsec", "crowdsec-lapi", {"db": "crowdsec-db", "config": "crowdsec-config"}, "crowdsec"
    )
    sts("monitoring", "clickhouse", "data", "nfs")
    # Proxmox LVM volumes
    for name in ("calibre", "freshrss", "actualbudget"):
        objects.append(pvc(name, name, "proxmox-lvm", "5Gi"))
    for name in ("novelapp", "headscale", "uptime-kuma"):
        objects.append(pvc(name, f"{name}-config", "proxmox-lvm", "2Gi"))
        deploy(name, name, {"config": f"{name}-config"})
    sts("monitoring", "loki", "storage", "proxmox-lvm")
    # local-hostpath: VolSync and kopiur apps, their movers' caches
    for ns, name, cache in (
        ("home", "home-assistant", volsync_cache),
        ("database", "dragonfly", volsync_cache),
        ("media", "sonarr", kopiur_cache),
        ("media", "radarr", kopiur_cache),
    ):
        objects += [pvc(ns, name, "local-hostpath", "5Gi"), cache(ns, name, "local-hostpath")]
        deploy(ns, name, {"data": name})
    objects += cnpg_volumes("immich", "immich-postgres", 2, "local-hostpath", wal=False)
    return kubectl_order(objects)


# --- a large cluster, and its catalog ---------------------------------------------------------


#: What :func:`large` plants: PVCs no service covers, services missing from the cluster
#: (their catalog location and error), and a claim on another StorageClass.
LARGE_UNPROTECTED = {f"orphans/orphan-{k}" for k in range(5)}
LARGE_SERVICES = 781


def large(planted: bool) -> tuple[str, list[Obj]]:
    """A catalog of 780 services and a cluster of 2,000 PVCs that it covers, in the shapes
    above: VolSync apps with their movers' caches, NFS apps mounted by a Deployment
    labelled like them, iSCSI StatefulSets of three, CNPG clusters with WAL volumes and
    their dump jobs' backup volumes. ``planted``: app7's claim is gone, a service ``ghost``
    has nothing in the cluster, web3's media is on StorageClass local-path, and five PVCs
    are no service's."""
    services: list[str] = []
    objects: list[Obj] = []
    for i in range(240):
        apps, web, kv = f"apps-{i % 25}", f"web-{i % 25}", f"kv-{i % 25}"
        services += [
            f"  - {{name: app{i}, namespace: {apps}, storage: local-hostpath, churn: low, "
            "engine: files, pvc: {capacity: 1Gi}}",
            f"  - {{name: web{i}, namespace: {web}, storage: nfs, churn: low, engine: files}}",
            f"  - {{name: kv{i}, namespace: {kv}, storage: iscsi, churn: low, engine: files}}",
        ]
        if not (planted and i == 7):
            objects.append(pvc(apps, f"app{i}", "openebs-hostpath", "1Gi"))
        objects += [
            volsync_cache(apps, f"app{i}"),
            deployment(apps, f"app{i}", app_labels(f"app{i}"), {"data": f"app{i}"}),
        ]
        volumes = {"config": f"web{i}-config", "media": f"web{i}-media"}
        if i < 15:
            volumes["extra"] = f"web{i}-extra"
        for volume, claim in volumes.items():
            wrong = planted and i == 3 and volume == "media"
            objects.append(pvc(web, claim, "local-path" if wrong else "nfs", "20Gi"))
        objects.append(deployment(web, f"web{i}-server", app_labels(f"web{i}", "server"), volumes))
        made = statefulset(
            kv, f"kv{i}", app_labels(f"kv{i}"), {"data": ("freenas-iscsi", "5Gi")}, 3
        )
        objects += [made, *template_claims(made)]
        if i % 4 == 0:
            db = f"db-{i % 25}"
            services.append(
                f"  - {{name: db{i}, namespace: {db}, storage: iscsi, churn: high, "
                f"engine: postgresql, postgresql: {{host: db{i}-rw.{db}.svc}}, "
                f"cnpg: {{cluster: db{i}, object_store: garage}}}}"
            )
            objects += cnpg_volumes(db, f"db{i}", 2, "freenas-iscsi", wal=True)
            objects.append(backup_volume(db, f"db{i}"))
    if planted:
        services.append(
            "  - {name: ghost, namespace: ghost, storage: nfs, churn: low, engine: files}"
        )
        objects += [pvc("orphans", f"orphan-{k}", "nfs", "1Gi") for k in range(5)]
    # two thousand: more volumes of web0's, mounted by a Deployment labelled like it
    pads = [
        f"web0-pad-{k}"
        for k in range(2000 - sum(o["kind"] == "PersistentVolumeClaim" for o in objects))
    ]
    objects.append(
        deployment("web-0", "web0-sidecar", app_labels("web0", "sidecar"), {c: c for c in pads})
    )
    objects += [pvc("web-0", claim, "nfs", "1Gi") for claim in pads]
    return HEAD + "\n".join(services) + "\n", kubectl_order(objects)


# --- reading the report -----------------------------------------------------------------------

FINDING = re.compile(r"^(?:.*/)?services\.yaml:(\d+):(\d+): (\S+): (error|warning): (.*)$")
SUMMARY = re.compile(r"^homeops_gen: audit: .*$", re.MULTILINE)


def verdicts(err: str) -> dict[str, str]:
    """Each PVC's verdict in the report: ``covered by <service>``, ``not data`` or
    ``unprotected``."""
    found = {}
    for line in err.splitlines():
        if not line.startswith("cluster: "):
            continue
        key, _, rest = line.removeprefix("cluster: ").partition(": ")
        if rest.startswith("covered by "):
            found[key] = "covered by " + rest.removeprefix("covered by ").split(" ")[0]
        elif rest.startswith("not data: "):
            found[key] = "not data"
        else:
            assert rest.startswith("not covered by any service ("), line
            found[key] = "unprotected"
    return found


def findings(err: str) -> list[tuple[int, int, str, str, str]]:
    """``(line, column, location, severity, message)`` of each catalog finding."""
    return [
        (int(m[1]), int(m[2]), m[3], m[4], m[5])
        for line in err.splitlines()
        if (m := FINDING.match(line))
    ]


def snippets(err: str) -> dict[str, str]:
    """The catalog entry printed after each ``...; add:`` line, by PVC."""
    found: dict[str, str] = {}
    lines = err.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("cluster: ") and line.endswith("; add:"):
            key = line.removeprefix("cluster: ").partition(": ")[0]
            body = lines[index + 1 :]
            end = next((n for n, entry in enumerate(body) if not entry.startswith("  ")), len(body))
            found[key] = "\n".join(body[:end]) + "\n"
    return found


def summary(err: str) -> str:
    (line,) = SUMMARY.findall(err)
    return line.removeprefix("homeops_gen: ")


def key_at(text: str, service: str, key: str) -> tuple[int, int]:
    """Where ``key`` (``storage``, ``sqlite.claim``, ...) of the entry of ``service`` is,
    read off the text: the entry's line (``- name: <service>`` or a flow mapping), then
    the first line below it that holds the key."""
    lines = text.splitlines()
    start = next(
        n
        for n, line in enumerate(lines)
        if line.strip() == f"- name: {service}" or line.strip().startswith(f"- {{name: {service},")
    )
    *outer, last = key.split(".")
    for n in range(start, len(lines)):
        line = lines[n]
        if n > start and line.startswith("  - "):
            break
        pattern = r"\b" + r":\s*\{[^}]*\b".join(map(re.escape, [*outer, last])) + r":"
        if (m := re.search(pattern, line)) is not None:
            return n + 1, m.end() - len(last)
    raise AssertionError(f"{service}: no {key}")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with the small catalog, the working folder of the run."""
    (tmp_path / "services.yaml").write_text(CATALOG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_dump(folder: Path, objects: Iterable[Obj], name: str = "cluster.json") -> Path:
    path = folder / name
    path.write_text(kubectl_list(kubectl_order(objects)), encoding="utf-8")
    return path


# --- the recorded dumps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "objects"), [("covered", covered_cluster), ("gaps", gapped_cluster)]
)
def test_the_recorded_dumps_are_what_kubectl_printed_for_these_objects(
    name: str, objects: Callable[[], list[Obj]]
) -> None:
    """The builders, printed as :func:`kubectl_list` prints them, are byte for byte the
    recorded kubectl output: so the generated dumps below have kubectl's shape too."""
    recorded = (DATA / f"{name}.json").read_text(encoding="utf-8")
    assert kubectl_list(kubectl_order(objects())) == recorded
    document = json.loads(recorded)
    assert (document["kind"], document["metadata"]) == ("List", {"resourceVersion": ""})
    assert {item["kind"] for item in document["items"]} == set(KINDS)


COVERED = {
    "dbaas/data-mysql-primary-0": "covered by mysql",
    "dbaas/mysql-backup": "not data",
    "dbaas/pg-1": "covered by postgres",
    "dbaas/pg-1-wal": "covered by postgres",
    "dbaas/pg-2": "covered by postgres",
    "dbaas/pg-2-wal": "covered by postgres",
    "dbaas/pg-drill-1": "not data",
    "dbaas/postgres-backup": "not data",
    "home/home-assistant": "covered by home-assistant",
    "home/home-assistant-drill": "not data",
    "home/volsync-src-home-assistant-cache": "not data",
    "media/jellyfin-7d9c5b6f4-x2k4p-transcode": "not data",
    "media/jellyfin-cache": "covered by media",
    "media/jellyfin-config": "covered by media",
    "media/jellyfin-media": "covered by media",
    "media/kopiur-cache-sonarr": "not data",
    "media/sonarr-config": "covered by sonarr",
    "notes/notes-backup": "not data",
    "notes/notes-data": "covered by notes",
    "vault/data-vault-0": "covered by vault",
    "vault/data-vault-1": "covered by vault",
    "vault/data-vault-2": "covered by vault",
    "vault/vault-backup": "not data",
    "wiki/wiki-backup": "not data",
    "wiki/wiki-data": "covered by wiki",
}


def test_a_covered_cluster_has_nothing_to_report(folder: Path, run_cli: Run) -> None:
    result = run_cli("audit", "--cluster", str(DATA / "covered.json"))
    assert result.code == 0, result.err
    assert verdicts(result.err) == COVERED
    assert findings(result.err) == []
    assert summary(result.err) == (
        "audit: 25 PVCs, 15 covered, 10 not data, 0 unprotected; 8 services, 0 missing, "
        "0 storage-class mismatches"
    )
    assert result.out == ""
    quiet = run_cli("audit", "-q", "--cluster", str(DATA / "covered.json"))
    assert (quiet.code, quiet.err) == (0, f"homeops_gen: {summary(result.err)}\n")
    # control: without its claim, notes is missing from the cluster
    dump = write_dump(folder, _without(covered_cluster(), ("PersistentVolumeClaim", "notes-data")))
    missing = run_cli("audit", "--cluster", str(dump))
    assert missing.code == 1
    line, column = key_at(CATALOG, "notes", "sqlite.claim")
    assert findings(missing.err) == [
        (
            line,
            column,
            "services[0].sqlite.claim",
            "error",
            "claim 'notes-data' is not in namespace 'notes' (no PVC of the namespace holds data)",
        )
    ]


GAPS = {
    **{k: v for k, v in COVERED.items() if k not in ("wiki/wiki-data",)},
    "wiki/wiki-database": "covered by wiki",  # mounted by the Deployment named wiki
    "dbaas/data-mysql-primary-0": "unprotected",  # its StatefulSet is gone
    "queue/data-queue-0": "unprotected",
    "queue/data-queue-1": "unprotected",
    "tools/build-cache": "unprotected",  # a name ending in -cache is no excuse
}


def test_planted_gaps_are_each_found_where_they_are(folder: Path, run_cli: Run) -> None:
    result = run_cli("audit", "--cluster", str(DATA / "gaps.json"))
    assert result.code == 1
    assert verdicts(result.err) == GAPS
    assert findings(result.err) == [
        (
            *key_at(CATALOG, "home-assistant", "storage"),
            "services[3].storage",
            "warning",
            "home/home-assistant is on StorageClass 'local-path', but storage: local-hostpath "
            "means StorageClass 'openebs-hostpath' (settings.volsync.classes.local-hostpath)",
        ),
        (
            *key_at(CATALOG, "mysql", "name"),
            "services[6].name",
            "error",
            "nothing of 'mysql' is in namespace 'dbaas': no PVC 'mysql' (its default claim), "
            "no StatefulSet or Deployment named 'mysql' or labelled "
            "app.kubernetes.io/name=mysql (its workloads: none; job.app_labels names the "
            "labels of the service's pods)",
        ),
        (
            *key_at(CATALOG, "wiki", "sqlite.claim"),
            "services[7].sqlite.claim",
            "error",
            "claim 'wiki-data' is not in namespace 'wiki' (its PVCs: "
            "wiki-database); did you mean 'wiki-database'?",
        ),
    ]
    assert summary(result.err) == (
        "audit: 28 PVCs, 14 covered, 10 not data, 4 unprotected; 8 services, 2 missing, "
        "1 storage-class mismatch"
    )
    lines = result.err.splitlines()
    assert (
        "cluster: queue/data-queue-1: not covered by any service (StorageClass freenas-iscsi, "
        "8Gi); the entry added for queue/data-queue-0 covers it too (it is claim template "
        "'data' of StatefulSet queue too)"
    ) in lines
    assert (
        "cluster: tools/build-cache: not covered by any service (StorageClass nfs, 10G); add:"
        in lines
    )


def test_each_entry_to_add_covers_its_pvcs(folder: Path, run_cli: Run) -> None:
    result = run_cli("audit", "--cluster", str(DATA / "gaps.json"))
    entries = snippets(result.err)
    assert set(entries) == {"dbaas/data-mysql-primary-0", "queue/data-queue-0", "tools/build-cache"}
    parsed = {key: yaml.safe_load(textwrap.dedent(text)) for key, text in entries.items()}
    assert parsed == {
        # freenas-iscsi is what settings.volsync.classes maps iscsi to
        "dbaas/data-mysql-primary-0": [
            {"name": "data-mysql-primary-0", "namespace": "dbaas", "storage": "iscsi",
             "churn": "low", "engine": "files", "pvc": {"capacity": "20Gi"}},
        ],
        # named after the StatefulSet: its other claim's PVC is covered through it
        "queue/data-queue-0": [
            {"name": "queue", "namespace": "queue", "storage": "iscsi", "churn": "low",
             "engine": "files", "pvc": {"claim": "data-queue-0", "capacity": "8Gi"}},
        ],
        # 10G (decimal) is 9.3Gi: rounded up to what the catalog writes
        "tools/build-cache": [
            {"name": "build-cache", "namespace": "tools", "storage": "nfs", "churn": "low",
             "engine": "files", "pvc": {"capacity": "10Gi"}},
        ],
    }  # fmt: skip
    pasted = CATALOG + "".join(entries.values())
    load_catalog_text(pasted, "services.yaml")  # a valid catalog
    (folder / "services.yaml").write_text(pasted, encoding="utf-8")
    again = run_cli("audit", "--cluster", str(DATA / "gaps.json"))
    assert {
        k: v for k, v in verdicts(again.err).items() if k not in GAPS or GAPS[k] == "unprotected"
    } == {
        "dbaas/data-mysql-primary-0": "covered by data-mysql-primary-0",
        "queue/data-queue-0": "covered by queue",
        "queue/data-queue-1": "covered by queue",
        "tools/build-cache": "covered by build-cache",
    }
    # what remains is the catalog's to fix: wiki's claim, mysql's workload, the class
    assert [f[2] for f in findings(again.err)] == [
        "services[3].storage",
        "services[6].name",
        "services[7].sqlite.claim",
    ]
    assert again.code == 1


def test_an_entry_guesses_no_storage_it_cannot_and_keeps_names_unique(
    folder: Path, run_cli: Run
) -> None:
    dump = write_dump(
        folder,
        [
            *covered_cluster(),
            pvc("other", "notes", "ceph-block", "1500M"),  # a service is named notes
            pvc("other", "app.data", "nfs", "3Gi"),  # a name but not a service name
        ],
    )
    result = run_cli("audit", "--cluster", str(dump))
    assert result.code == 1
    entries = snippets(result.err)
    assert entries["other/notes"] == (
        "  - name: notes-other\n"
        "    namespace: other\n"
        "    storage: local-hostpath  # StorageClass 'ceph-block' is not in "
        "settings.volsync.classes: set the storage it is\n"
        "    churn: low\n"
        "    engine: files\n"
        "    pvc: {claim: notes, capacity: 2Gi}  # 1500M, rounded up\n"
    )
    assert yaml.safe_load(entries["other/app.data"]) == [
        {"name": "app-data", "namespace": "other", "storage": "nfs", "churn": "low",
         "engine": "files", "pvc": {"claim": "app.data", "capacity": "3Gi"}},
    ]  # fmt: skip
    pasted = CATALOG + "".join(entries.values())
    (folder / "services.yaml").write_text(pasted, encoding="utf-8")
    again = run_cli("audit", "--cluster", str(dump))
    assert again.code == 0, again.err
    assert verdicts(again.err)["other/notes"] == "covered by notes-other"
    # the guess is flagged until the class is mapped
    ((_, _, loc, severity, message),) = findings(again.err)
    assert (loc, severity) == ("services[9].storage", "warning")  # after app-data
    assert message.startswith("other/notes is on StorageClass 'ceph-block'")


# --- the bundled catalog ----------------------------------------------------------------------


def test_the_bundled_catalog_covers_a_cluster_built_from_it(tmp_path: Path, run_cli: Run) -> None:
    text = (REPO / "services.yaml").read_text(encoding="utf-8")
    (tmp_path / "services.yaml").write_text(text, encoding="utf-8")
    catalog = str(tmp_path / "services.yaml")
    objects = bundled_cluster()
    dump = write_dump(tmp_path, objects)
    result = run_cli("audit", "-q", "--catalog", catalog, "--cluster", str(dump))
    assert result.code == 0, result.err
    # not data: 8 dump jobs' backup volumes, 2 VolSync and 2 kopiur caches
    assert summary(result.err) == (
        "audit: 51 PVCs, 39 covered, 12 not data, 0 unprotected; 32 services, 0 missing, "
        "0 storage-class mismatches"
    )
    # controls: a named claim gone; the workload of a service that names none gone
    broken = _without(
        objects, ("PersistentVolumeClaim", "vaultwarden-data"), ("Deployment", "immich-server")
    )
    result = run_cli("audit", "--catalog", catalog, "--cluster", str(write_dump(tmp_path, broken)))
    assert result.code == 1
    where = [(f[0], f[1], f[2], f[3]) for f in findings(result.err)]
    assert where == [
        (*key_at(text, "vaultwarden", "claim"), "services[4].sqlite.claim", "error"),
        (*key_at(text, "immich", "name"), "services[8].name", "error"),
    ]
    assert verdicts(result.err)["immich/immich-library"] == "unprotected"


def test_the_audit_knows_the_names_the_generators_give() -> None:
    """Each bundled service's claim (storage_layers.service_claim), its dump job's backup
    volume (backup_jobs.backup_volume_name) and its drill's scratch volume or cluster
    (drills.scratch_name): what the generators name, the audit reads so."""
    from homeops_gen.audit import audit_cluster, catalog_document, parse_dump
    from homeops_gen.catalog import load_catalog
    from homeops_gen.generators.backup_jobs import backup_volume_name
    from homeops_gen.generators.drills import scratch_name
    from homeops_gen.generators.storage_layers import service_claim

    catalog = load_catalog(REPO / "services.yaml")
    document = catalog_document((REPO / "services.yaml").read_text(encoding="utf-8"))
    objects, expected = [], {}
    for s in catalog.services:
        if s.storage == "local-disk":
            continue  # etcd: no PVC
        claim = service_claim(s)
        objects.append(pvc(s.namespace, claim, s.storage))
        expected[f"{s.namespace}/{claim}"] = ("covered", s.name)
        if s.uses("dump"):
            objects.append(pvc(s.namespace, backup_volume_name(s), "", access="ReadWriteMany"))
            expected[f"{s.namespace}/{backup_volume_name(s)}"] = ("not data", None)
        if s.drill is not None and s.drill.layer == "volsync":
            objects.append(pvc(s.namespace, scratch_name(s), s.storage))
            expected[f"{s.namespace}/{scratch_name(s)}"] = ("not data", None)
        if s.drill is not None and s.drill.layer == "cnpg":
            objects += cnpg_volumes(s.namespace, scratch_name(s), 1, s.storage, wal=False)
            expected[f"{s.namespace}/{scratch_name(s)}-1"] = ("not data", None)
    dump = parse_dump(kubectl_list(kubectl_order(objects)).encode(), "cluster.json")
    report = audit_cluster(catalog, document, dump)
    got = {str(r.claim): (r.verdict, r.service.name if r.service else None) for r in report.claims}
    assert got == expected
    assert "dbaas/postgresql-backup" in got and "immich/immich-postgres-drill-1" in got


# --- a large cluster --------------------------------------------------------------------------


def test_a_large_cluster_is_audited_and_every_planted_gap_found(
    tmp_path: Path, run_cli: Run
) -> None:
    for planted in (False, True):
        text, objects = large(planted)
        (tmp_path / "services.yaml").write_text(text, encoding="utf-8")
        dump = write_dump(tmp_path, objects)
        result = run_cli(
            "audit", "-q", "--catalog", str(tmp_path / "services.yaml"), "--cluster", str(dump)
        )
        if not planted:
            assert result.code == 0, result.err[-2000:]
            assert summary(result.err) == (
                "audit: 2000 PVCs, 1700 covered, 300 not data, 0 unprotected; 780 services, "
                "0 missing, 0 storage-class mismatches"
            )
            continue
        assert result.code == 1
        assert {
            k for k, v in verdicts(result.err).items() if v == "unprotected"
        } == LARGE_UNPROTECTED
        index = {name: n for n, name in enumerate(re.findall(r"\{name: ([a-z0-9-]+),", text))}
        assert [(f[0], f[1], f[2], f[3]) for f in findings(result.err)] == [
            (*key_at(text, "web3", "storage"), f"services[{index['web3']}].storage", "warning"),
            (*key_at(text, "app7", "pvc"), f"services[{index['app7']}].pvc", "error"),
            (*key_at(text, "ghost", "name"), f"services[{index['ghost']}].name", "error"),
        ]
        assert summary(result.err) == (
            f"audit: 2000 PVCs, 1695 covered, 300 not data, 5 unprotected; {LARGE_SERVICES} "
            "services, 2 missing, 1 storage-class mismatch"
        )


# --- input: stdin, kubectl, a single object, bad dumps ----------------------------------------


def test_standard_input_and_utf16_read_as_the_file(
    folder: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from_file = run_cli("audit", "--cluster", str(DATA / "gaps.json"))
    recorded = (DATA / "gaps.json").read_bytes()
    # Windows PowerShell's `kubectl ... > dump.json` writes UTF-16 with a BOM
    for data in (recorded, recorded.decode().encode("utf-16")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        from_stdin = run_cli("audit", "--cluster", "-")
        assert (from_stdin.code, from_stdin.err) == (from_file.code, from_file.err)
    assert from_file.code == 1  # control: the gaps are found either way


def test_a_single_object_is_a_dump_of_one(folder: Path, run_cli: Run) -> None:
    """``kubectl get pvc NAME -o json`` prints the object itself, not a List."""
    dump = folder / "one.json"
    dump.write_text(json.dumps(pvc("tools", "scratch", "nfs", "5Gi"), indent=4), encoding="utf-8")
    result = run_cli("audit", "--cluster", str(dump))
    assert result.code == 1
    assert verdicts(result.err) == {"tools/scratch": "unprotected"}
    assert summary(result.err).startswith("audit: 1 PVC, 0 covered, 0 not data, 1 unprotected; ")


TRUNCATED = '{\n    "apiVersion": "v1",\n    "items": [\n        {"kind": "Pod",,\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # the second comma of line 4: json's position of the error, 1-based
        (
            TRUNCATED,
            f"cluster.json:4:{TRUNCATED.splitlines()[3].index(',,') + 2}: invalid JSON: "
            "Expecting property name enclosed in double quotes",
        ),
        (
            "",
            "cluster.json: empty: expected the JSON that `kubectl get pvc,statefulset,"
            "deployment -A -o json` prints",
        ),
        ("[]", "cluster.json: expected a JSON object (kubectl's List), not a list"),
        (
            '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}',
            "cluster.json: not what kubectl prints: expected kind List (kubectl get pvc,"
            "statefulset,deployment -A -o json) or one PersistentVolumeClaim, StatefulSet or "
            "Deployment; got kind 'Pod'",
        ),
        (
            '{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod"}, {"kind": "Service"}]}',
            "cluster.json: none of its 2 items is a PersistentVolumeClaim, StatefulSet or "
            "Deployment (kinds: Pod, Service): use `kubectl get pvc,statefulset,deployment -A -o "
            "json`",
        ),
        (
            '{"kind": "List", "items": [{"kind": "PersistentVolumeClaim", '
            '"metadata": {"name": "a"}}]}',
            "cluster.json: items[0].metadata.namespace: a PersistentVolumeClaim without "
            "metadata.namespace",
        ),
        ("[" * 200_000, "cluster.json: invalid JSON: nested too deeply for kubectl's output"),
        (b'{"kind": "\xff"}', "cluster.json: not UTF-8 text: byte 0xff at offset 10"),
    ],
    ids=["json", "empty", "array", "pod", "pods", "nameless", "deep", "bytes"],
)
def test_a_bad_dump_is_bad_input(folder: Path, content: str | bytes, message: str) -> None:
    path = folder / "cluster.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = run_module("audit", "--cluster", "cluster.json", cwd=folder)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    first, last = result.err.splitlines()[0], result.err.splitlines()[-1]
    assert first.startswith(message), first
    assert last == "homeops_gen: 1 problem; nothing was written"


def test_a_missing_dump_or_usage_error_is_bad_input(folder: Path) -> None:
    result = run_module("audit", "--cluster", "nowhere.json", cwd=folder)
    assert (result.code, result.err.splitlines()[0]) == (
        2,
        "nowhere.json: cannot read: No such file or directory",
    )
    for args, said in (
        ((), "one of the arguments --cluster --kubectl is required"),
        (("--cluster", "x.json", "--kubectl"), "not allowed with argument"),
        (("--cluster", "x.json", "--out", "o"), "--out does not apply to audit"),
    ):
        result = run_module("audit", *args, cwd=folder)
        assert result.code == 2 and said in result.err and "Traceback" not in result.err, args
    # control: a good dump is read from the same folder
    (folder / "x.json").write_bytes((DATA / "covered.json").read_bytes())
    assert run_module("audit", "-q", "--cluster", "x.json", cwd=folder).code == 0


def test_github_annotations_name_the_catalog_lines(folder: Path, run_cli: Run) -> None:
    result = run_cli("audit", "-q", "--format", "github", "--cluster", str(DATA / "gaps.json"))
    assert result.code == 1
    notes = result.out.splitlines()
    line, column = key_at(CATALOG, "wiki", "sqlite.claim")
    assert (
        f"::error file=services.yaml,line={line},col={column}::services[7].sqlite.claim: error: "
        "claim 'wiki-data' is not in namespace 'wiki' (its PVCs: wiki-database); did you mean "
        "'wiki-database'?"
    ) in notes
    line, column = key_at(CATALOG, "home-assistant", "storage")
    assert (
        sum(n.startswith(f"::warning file=services.yaml,line={line},col={column}::") for n in notes)
        == 1
    )
    # an unprotected PVC: at the services list, the entry to add on escaped new lines
    services_line = CATALOG.splitlines().index("services:") + 1
    (build,) = [n for n in notes if "tools/build-cache" in n]
    assert build == (
        f"::error file=services.yaml,line={services_line},col=1::tools/build-cache: not covered "
        "by any service (StorageClass nfs, 10G); add:%0A  - name: build-cache%0A    namespace: "
        "tools%0A    storage: nfs%0A    churn: low%0A    engine: files%0A    pvc: {capacity: "
        "10Gi}  # 10G, rounded up"
    )
    assert len(notes) == 3 + 4  # three catalog findings, four unprotected PVCs
    # control: text format prints none
    assert run_cli("audit", "-q", "--cluster", str(DATA / "gaps.json")).out == ""


def _stand_in(folder: Path, script: str) -> dict[str, str]:
    """A ``kubectl`` first on PATH that runs ``script`` (sh)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_kubectl_is_run_with_the_documented_command(folder: Path) -> None:
    env = _stand_in(folder, f'echo "$@" > "{folder}/args"\nexec cat "{DATA / "gaps.json"}"\n')
    result = run_module("audit", "-q", "--kubectl", cwd=folder, env=env)
    assert (folder / "args").read_text() == "get pvc,statefulset,deployment -A -o json\n"
    assert result.code == 1 and "Traceback" not in result.err
    from_file = run_module("audit", "-q", "--cluster", str(DATA / "gaps.json"), cwd=folder)
    assert result.err == from_file.err  # the same audit as of the recorded dump


def test_a_failing_or_missing_kubectl_is_bad_input(folder: Path) -> None:
    env = _stand_in(
        folder,
        'echo "error: You must be logged in to the server (Unauthorized)" >&2\nexit 1\n',
    )
    result = run_module("audit", "--kubectl", cwd=folder, env=env)
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.splitlines()[-1] == "homeops_gen: 1 problem; nothing was written"
    assert result.err.splitlines()[:2] == [
        "kubectl: `kubectl get pvc,statefulset,deployment -A -o json` failed (exit 1):",
        "  error: You must be logged in to the server (Unauthorized)",
    ]
    empty = folder / "empty-bin"
    empty.mkdir()
    result = run_module("audit", "--kubectl", cwd=folder, env={"PATH": str(empty)})
    assert (result.code, result.err.splitlines()[0]) == (2, "kubectl: kubectl is not on PATH")
    # control: kubectl printing nothing is not a dump either
    env = _stand_in(folder, "exit 0\n")
    result = run_module("audit", "--kubectl", cwd=folder, env=env)
    assert result.code == 2 and result.err.startswith("kubectl: empty: ")


# --- lean, and placed as the loader places ----------------------------------------------------


def _imported(result: CliResult) -> set[str]:
    """The modules ``-X importtime`` (PYTHONPROFILEIMPORTTIME) reports."""
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in result.err.splitlines()
        if line.startswith("import time:")
    }


def test_the_audit_imports_no_generator(folder: Path) -> None:
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    result = run_module("audit", "-q", "--cluster", str(DATA / "covered.json"), cwd=folder, env=env)
    assert result.code == 0
    modules = _imported(result)
    assert "homeops_gen.audit" in modules
    heavy = {
        m for m in modules if m.startswith(("homeops_gen.generators", "jinja2", "homeops_gen.lint"))
    }
    assert heavy == set()
    # control: lint imports its module, and the listing shows it
    assert "homeops_gen.lint" in _imported(run_module("lint", cwd=folder, env=env))


def _locations(node: Any, loc: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    """Every location in a document, and one missing child of each collection."""
    yield loc
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _locations(value, (*loc, key))
        yield (*loc, "no-such-key")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _locations(value, (*loc, index))
        yield (*loc, len(node))
    else:
        yield (*loc, "below-a-scalar")


@pytest.mark.parametrize("which", ["bundled", "small", "merge-key"])
def test_catalog_places_are_the_loaders_positions(which: str) -> None:
    from homeops_gen.catalog.loader import CatalogPositions
    from homeops_gen.catalog.places import CatalogPlaces

    text = {
        "bundled": (REPO / "services.yaml").read_text(encoding="utf-8"),
        "small": CATALOG,
        # what libyaml may read otherwise is left to ruamel
        "merge-key": CATALOG.replace(
            "  - name: notes\n", "  - <<: {churn: low}\n    name: notes\n", 1
        ),
    }[which]
    places, positions = CatalogPlaces(text, "services.yaml"), CatalogPositions(text)
    assert (places.root is None) == (which == "merge-key")
    locations = list(_locations(yaml.safe_load(text)))
    assert len(locations) > 100
    for loc in locations:
        assert places.at(loc, at_key=True) == positions.at(loc, at_key=True), loc
        assert places.at(loc) == positions.at(loc), loc
    # control: at the values, not the keys, the positions differ
    assert any(places.at(loc, at_key=True) != positions.at(loc) for loc in locations)
