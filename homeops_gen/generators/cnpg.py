"""CloudNativePG archiving to Garage S3 (``out/kubernetes/cnpg/``) and Garage provisioning.

Per cluster, ``cnpg/<namespace>/<cluster>/``. By default the Cluster is the user's
(``cnpg.owned: false``: a Helm chart, a manifest of their own) and the folder is a Kustomize
Component to list under ``components:`` of the kustomization that holds it:

- ``kustomization.yaml``: the Component: its resources, its patch of ``Cluster <cluster>``,
  and a guard that fails the build when no such Cluster is in it (kustomize skips a
  targeted patch that matches nothing without a word);
- ``cluster-patch.yaml``: what archiving needs, merged into the user's Cluster: the
  barman-cloud plugin as its one WAL archiver (or, in ``in-tree`` mode, the deprecated
  ``spec.backup.barmanObjectStore``) and ``enableSuperuserAccess: true`` when the service's
  dump job reads ``<cluster>-superuser``; nothing else of the spec is touched;
- ``cluster-schema.yaml``: the Cluster's lists keyed by ``name`` (``plugins``, ``env``,
  ``externalClusters``), so that kustomize merges the patch into the user's lists instead
  of replacing them;
- ``recovery/``: the restore drill, a second Component listed after the first: the same
  Cluster bootstrapped from the archive (optionally to a point in time), archiving under
  the *next* serverName so it never writes over the history it came from.

With ``cnpg.owned: true`` the folder is a plain Kustomization with the whole
``cluster.yaml`` (its spec from the catalog) and ``recovery.yaml``, the drill applied in its
place. Either way:

- ``externalsecret.yaml``: the store's access key (and the region, said once in the catalog);
- ``objectstore.yaml`` (plugin mode): the barman-cloud ``ObjectStore``, with the checksum
  settings that non-AWS stores need in the sidecar's environment;
- ``scheduledbackup.yaml``: base backups on CNPG's six-field cron.

Archives go to ``s3://<bucket>/<namespace>/<cluster>-v<generation>/``: same-name clusters of
two namespaces never share one. ``garage/provision.sh`` creates the buckets and keys these
objects need, idempotently.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, CnpgCluster, Settings
from homeops_gen.catalog.policy import CNPG_PLUGIN
from homeops_gen.plan import OutputFile, Text, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = [
    "CHECKSUM_ENV",
    "PATCH_FILE",
    "RECOVERY_FOLDER",
    "SCHEMA_FILE",
    "cluster_documents",
    "cluster_patch",
    "generate_cnpg",
    "recovery_cluster",
    "recovery_patch",
    "recovery_source",
]

_CNPG = "postgresql.cnpg.io/v1"
_BARMAN = "barmancloud.cnpg.io/v1"
#: Newer boto3 checksums break S3 stores other than AWS (Garage among them).
CHECKSUM_ENV = (
    {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
    {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"},
)
#: Keys of the credentials Secret.
ACCESS_KEY, SECRET_KEY, REGION_KEY = "ACCESS_KEY_ID", "ACCESS_SECRET_KEY", "REGION"
#: The Component's files (beside the objects it adds) and the drill's folder.
PATCH_FILE = "cluster-patch.yaml"
SCHEMA_FILE = "cluster-schema.yaml"
RECOVERY_FOLDER = "recovery"
_COMPONENT = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component"}
_KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
#: The Cluster's lists whose items are keyed by ``name``. Without a schema kustomize patches
#: a custom resource's list by replacing it, which would drop the user's own plugins,
#: environment variables and external clusters.
_MERGED_LISTS = ("env", "externalClusters", "plugins")


def object_store_name(cluster: CnpgCluster) -> str:
    return f"{cluster.name}-{cluster.store_name}"


def _barman_configuration(cluster: CnpgCluster) -> dict[str, Any]:
    """What barman-cloud needs, shared by the plugin's ObjectStore and the in-tree mode."""
    secret = cluster.credentials_secret
    return {
        "destinationPath": cluster.destination_path,
        "endpointURL": cluster.store.endpoint,
        "s3Credentials": {
            "accessKeyId": {"name": secret, "key": ACCESS_KEY},
            "secretAccessKey": {"name": secret, "key": SECRET_KEY},
            "region": {"name": secret, "key": REGION_KEY},
        },
        "wal": {"compression": cluster.wal_compression, "maxParallel": cluster.wal_max_parallel},
        "data": {"compression": cluster.data_compression, "jobs": cluster.data_jobs},
    }


def credentials_secret(settings: Settings, cluster: CnpgCluster) -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": cluster.credentials_secret, "namespace": cluster.namespace},
        "spec": {
            "secretStoreRef": {
                "kind": settings.secret_store_kind,
                "name": settings.secret_store_name,
            },
            "target": {
                "name": cluster.credentials_secret,
                "template": {
                    "data": {
                        ACCESS_KEY: "{{ .ACCESS_KEY_ID }}",
                        SECRET_KEY: "{{ .ACCESS_SECRET_KEY }}",
                        # The region the client signs with: Garage's s3_region, from the catalog.
                        REGION_KEY: cluster.store.region,
                    }
                },
            },
            "dataFrom": [{"extract": {"key": cluster.credentials_key}}],
        },
    }


def object_store(cluster: CnpgCluster) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "configuration": _barman_configuration(cluster),
        "retentionPolicy": cluster.retention_policy,
    }
    if cluster.checksum_when_required:
        spec["instanceSidecarConfiguration"] = {"env": [dict(e) for e in CHECKSUM_ENV]}
    return {
        "apiVersion": _BARMAN,
        "kind": "ObjectStore",
        "metadata": {"name": object_store_name(cluster), "namespace": cluster.namespace},
        "spec": spec,
    }


def _archiving(cluster: CnpgCluster, server_name: str) -> dict[str, Any]:
    """The Cluster spec fields that make it archive WAL under ``server_name``."""
    if cluster.mode == "plugin":
        return {
            "plugins": [
                {
                    "name": CNPG_PLUGIN,
                    "isWALArchiver": True,
                    "parameters": {
                        "barmanObjectName": object_store_name(cluster),
                        "serverName": server_name,
                    },
                }
            ]
        }
    archiving: dict[str, Any] = {
        "backup": {
            "barmanObjectStore": {**_barman_configuration(cluster), "serverName": server_name},
            "retentionPolicy": cluster.retention_policy,
        }
    }
    if cluster.checksum_when_required:
        archiving["env"] = [dict(e) for e in CHECKSUM_ENV]
    return archiving


def _superuser(cluster: CnpgCluster) -> dict[str, Any]:
    """CNPG keeps ``<cluster>-superuser``, which the dump job reads, only with this."""
    return {"enableSuperuserAccess": True} if cluster.superuser_access else {}


def _cluster(cluster: CnpgCluster, server_name: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The whole Cluster homeops_gen owns (``cnpg.owned: true``), its spec from the catalog."""
    storage: dict[str, Any] = {"size": cluster.storage_size}
    if cluster.storage_class is not None:
        storage["storageClass"] = cluster.storage_class
    spec: dict[str, Any] = {
        "instances": cluster.instances,
        "imageName": cluster.image,
        "storage": storage,
        **_superuser(cluster),
        **extra,
        **_archiving(cluster, server_name),
    }
    return {
        "apiVersion": _CNPG,
        "kind": "Cluster",
        "metadata": {"name": cluster.name, "namespace": cluster.namespace},
        "spec": spec,
    }


def cluster_patch(cluster: CnpgCluster) -> dict[str, Any]:
    """What archiving adds to the user's own Cluster; nothing else of its spec is set."""
    return {
        "apiVersion": _CNPG,
        "kind": "Cluster",
        "metadata": {"name": cluster.name},
        "spec": {**_superuser(cluster), **_archiving(cluster, cluster.server_name)},
    }


def recovery_source(cluster: CnpgCluster) -> dict[str, Any]:
    """The ``externalClusters`` entry ``origin``: the cluster's archive, read only."""
    origin: dict[str, Any] = {"name": "origin"}
    if cluster.mode == "plugin":
        origin["plugin"] = {
            "name": CNPG_PLUGIN,
            "parameters": {
                "barmanObjectName": object_store_name(cluster),
                "serverName": cluster.server_name,
            },
        }
    else:
        origin["barmanObjectStore"] = {
            **_barman_configuration(cluster),
            "serverName": cluster.server_name,
        }
    return origin


def _recovery(cluster: CnpgCluster) -> dict[str, Any]:
    """``bootstrap`` and ``externalClusters`` of the cluster rebuilt from its archive."""
    origin = recovery_source(cluster)
    recovery: dict[str, Any] = {"source": "origin"}
    if cluster.recovery_target_time is not None:
        recovery["recoveryTarget"] = {"targetTime": cluster.recovery_target_time}
    return {"bootstrap": {"recovery": recovery}, "externalClusters": [origin]}


def recovery_cluster(cluster: CnpgCluster) -> dict[str, Any]:
    """The owned cluster rebuilt from its archive; it archives under the next serverName."""
    return _cluster(cluster, cluster.next_server_name, _recovery(cluster))


def recovery_patch(cluster: CnpgCluster) -> dict[str, Any]:
    """The user's Cluster rebuilt from its archive, merged after :func:`cluster_patch`.

    Its own bootstrap (usually ``initdb``) is replaced, not merged: CNPG takes one method.
    Archiving moves to the next serverName.
    """
    spec = _recovery(cluster)
    spec["bootstrap"] = {"$patch": "replace", **spec["bootstrap"]}
    if cluster.mode == "plugin":
        parameters = {"serverName": cluster.next_server_name}
        spec["plugins"] = [{"name": CNPG_PLUGIN, "parameters": parameters}]
    else:
        spec["backup"] = {"barmanObjectStore": {"serverName": cluster.next_server_name}}
    return {
        "apiVersion": _CNPG,
        "kind": "Cluster",
        "metadata": {"name": cluster.name},
        "spec": spec,
    }


def cluster_schema() -> dict[str, Any]:
    """The OpenAPI definition kustomize merges the Cluster patches with (``openapi.path``)."""
    keyed = {
        "type": "array",
        "items": {"type": "object"},
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "x-kubernetes-patch-merge-key": "name",
        "x-kubernetes-patch-strategy": "merge",
    }
    return {
        "definitions": {
            "io.cnpg.postgresql.v1.Cluster": {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "postgresql.cnpg.io", "kind": "Cluster", "version": "v1"}
                ],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "spec": {
                        "type": "object",
                        "properties": {name: dict(keyed) for name in _MERGED_LISTS},
                    },
                },
            }
        }
    }


def _selector(kind: str, name: str) -> dict[str, str]:
    return {"group": "postgresql.cnpg.io", "version": "v1", "kind": kind, "name": name}


def component(cluster: CnpgCluster, resources: list[str]) -> dict[str, Any]:
    """The Component that adds archiving to the user's ``Cluster <name>``.

    The patch targets the Cluster by name in any namespace (a kustomization often sets the
    namespace after its components ran). A targeted patch that matches nothing is skipped
    silently, so a no-op replacement (the Cluster's name into the ScheduledBackup's
    ``spec.cluster.name``) makes a build without that Cluster fail instead.
    """
    return {
        **_COMPONENT,
        "openapi": {"path": SCHEMA_FILE},
        "resources": [f"./{r}" for r in resources],
        "patches": [{"path": f"./{PATCH_FILE}", "target": _selector("Cluster", cluster.name)}],
        "replacements": [
            {
                "source": {**_selector("Cluster", cluster.name), "fieldPath": "metadata.name"},
                "targets": [
                    {
                        "select": _selector("ScheduledBackup", cluster.name),
                        "fieldPaths": ["spec.cluster.name"],
                    }
                ],
            }
        ],
    }


def recovery_component(cluster: CnpgCluster) -> dict[str, Any]:
    """The restore drill; its guard fails the build unless the archiving Component came
    first (listed before it, that Component's patch would move archiving back onto the
    serverName the cluster restores from)."""
    backup = _selector("ScheduledBackup", cluster.name)
    return {
        **_COMPONENT,
        "patches": [{"path": f"./{PATCH_FILE}", "target": _selector("Cluster", cluster.name)}],
        "replacements": [
            {
                "source": {**backup, "fieldPath": "spec.cluster.name"},
                "targets": [{"select": backup, "fieldPaths": ["spec.cluster.name"]}],
            }
        ],
    }


def scheduled_backup(cluster: CnpgCluster) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedule": cluster.backup_schedule,
        "cluster": {"name": cluster.name},
        "backupOwnerReference": "self",
        "immediate": True,
    }
    if cluster.mode == "plugin":
        spec |= {"method": "plugin", "pluginConfiguration": {"name": CNPG_PLUGIN}}
    else:
        spec["method"] = "barmanObjectStore"
    return {
        "apiVersion": _CNPG,
        "kind": "ScheduledBackup",
        "metadata": {"name": cluster.name, "namespace": cluster.namespace},
        "spec": spec,
    }


def cluster_documents(settings: Settings, cluster: CnpgCluster) -> dict[str, list[dict[str, Any]]]:
    """The files of one cluster's folder, by path relative to it."""
    files = {
        "externalsecret.yaml": [credentials_secret(settings, cluster)],
        "scheduledbackup.yaml": [scheduled_backup(cluster)],
    }
    if cluster.mode == "plugin":
        files["objectstore.yaml"] = [object_store(cluster)]
    if cluster.owned:
        files["cluster.yaml"] = [_cluster(cluster, cluster.server_name, {})]
        resources = [f"./{name}" for name in sorted(files)]
        files["kustomization.yaml"] = [{**_KUSTOMIZATION, "resources": resources}]
        files["recovery.yaml"] = [recovery_cluster(cluster)]
        return files
    files["kustomization.yaml"] = [component(cluster, sorted(files))]
    files[PATCH_FILE] = [cluster_patch(cluster)]
    files[SCHEMA_FILE] = [cluster_schema()]
    files[f"{RECOVERY_FOLDER}/kustomization.yaml"] = [recovery_component(cluster)]
    files[f"{RECOVERY_FOLDER}/{PATCH_FILE}"] = [recovery_patch(cluster)]
    return files


def _target(cluster: CnpgCluster) -> str:
    if cluster.recovery_target_time:
        return f"to {cluster.recovery_target_time}"
    return "to the latest archived WAL"


def _comment(cluster: CnpgCluster, name: str) -> str:
    """The comment lines of one file of the folder (most have none)."""
    if name == "recovery.yaml":
        return (
            f"Restore drill for {cluster.name}: recovers {_target(cluster)} from serverName "
            f"{cluster.server_name},\n"
            f"then archives under {cluster.next_server_name}, never over the history it came "
            "from.\n"
            "Apply it in place of cluster.yaml (with the lost cluster deleted), then set the\n"
            "service's cnpg.server_generation to the next number in the catalog and regenerate."
        )
    if cluster.owned:
        return ""
    if name == "kustomization.yaml":
        return (
            f"WAL archiving and base backups for your Cluster {cluster.namespace}/"
            f"{cluster.name}: list this folder\n"
            "under `components:` of the kustomization that holds the Cluster. Only the\n"
            "archiving fields are patched in (cluster-patch.yaml); instances, storage, image\n"
            "and the rest of its spec stay yours. The build fails when the Cluster is not in it."
        )
    if name == SCHEMA_FILE:
        return (
            "The Cluster's lists keyed by name, for kustomize (openapi.path): the patch merges\n"
            "into your plugins, env and externalClusters instead of replacing them."
        )
    if name == f"{RECOVERY_FOLDER}/kustomization.yaml":
        return (
            f"Restore drill for {cluster.name}: recovers {_target(cluster)} from serverName "
            f"{cluster.server_name}\n"
            f"and archives under {cluster.next_server_name}, never over the history it came "
            "from. With the lost\n"
            "cluster deleted, list this folder under `components:` after its parent folder,\n"
            "apply, then set the service's cnpg.server_generation to the next number in the\n"
            "catalog, regenerate and drop this component again."
        )
    return ""


def provision_script(catalog: Catalog, clusters: list[CnpgCluster]) -> str:
    """An idempotent script that creates the Garage buckets and keys the clusters use."""
    prefix = catalog.settings.garage_key_prefix
    pairs = sorted(
        {
            (c.store.bucket or "", f"{prefix}-{c.store.bucket}")
            for c in clusters
            if c.store.provider == "garage"
        }
    )
    lines = [
        "#!/usr/bin/env bash",
        "# Creates the Garage buckets and access keys the CNPG archives use. Safe to run again:",
        "# existing buckets and keys are kept. GARAGE is the garage CLI, for example",
        '#   GARAGE="kubectl exec -n garage garage-0 -- /garage" ./provision.sh',
        "# Store each key's ID and secret (garage key info --show-secret NAME) in the secret",
        "# store under the object store's credentials_key, as ACCESS_KEY_ID and ACCESS_SECRET_KEY.",
        "set -euo pipefail",
        "",
        ': "${GARAGE:=garage}"',
        "",
        "ensure_bucket() {",
        '  $GARAGE bucket info "$1" > /dev/null 2>&1 || $GARAGE bucket create "$1"',
        "}",
        "",
        "ensure_key() {",
        '  $GARAGE key info "$1" > /dev/null 2>&1 || $GARAGE key create "$1"',
        "}",
        "",
    ]
    for bucket, key in pairs:
        b, k = shlex.quote(bucket), shlex.quote(key)
        lines += [
            f"ensure_bucket {b}",
            f"ensure_key {k}",
            f"$GARAGE bucket allow --read --write --owner {b} --key {k}",
            "",
        ]
    return "\n".join(lines)


def garage_region_config(catalog: Catalog) -> str:
    region = catalog.settings.garage_s3_region
    return (
        "# The s3_api section of garage.toml: clients sign with this region (the catalog's).\n"
        "[s3_api]\n"
        f's3_region = "{region}"\n'
    )


@register_generator("cnpg", description="out/kubernetes/cnpg: WAL archiving to Garage S3")
def generate_cnpg(catalog: Catalog) -> Iterator[OutputFile]:
    archived = [(s.name, s.cnpg) for s in catalog.services if s.cnpg is not None and s.uses("cnpg")]
    for service, cluster in archived:
        for name, documents in sorted(cluster_documents(catalog.settings, cluster).items()):
            yield OutputFile(
                f"{cluster.folder}/{name}",
                YamlDocuments(tuple(documents), _comment(cluster, name)),
                subject=service,
            )
    clusters = [cluster for _, cluster in archived]
    if any(c.store.provider == "garage" for c in clusters):
        yield OutputFile("garage/provision.sh", Text(provision_script(catalog, clusters)))
        yield OutputFile("garage/s3_api.toml", Text(garage_region_config(catalog)))
