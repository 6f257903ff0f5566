"""CloudNativePG archiving to Garage S3 (``out/kubernetes/cnpg/``) and Garage provisioning.

Per cluster, ``cnpg/<namespace>/<cluster>/``:

- ``externalsecret.yaml``: the store's access key (and the region, said once in the catalog);
- ``objectstore.yaml`` (plugin mode): the barman-cloud ``ObjectStore``, with the checksum
  settings that non-AWS stores need in the sidecar's environment;
- ``cluster.yaml``: the ``Cluster`` with the barman-cloud plugin as its one WAL archiver
  (or, in ``in-tree`` mode, the deprecated ``spec.backup.barmanObjectStore``);
- ``scheduledbackup.yaml``: base backups on CNPG's six-field cron;
- ``recovery.yaml``: the same cluster bootstrapped from the archive (optionally to a point in
  time), archiving under the *next* serverName so it never writes over its own history.

``garage/provision.sh`` creates the buckets and keys these objects need, idempotently.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, CnpgCluster, Settings
from homeops_gen.catalog.policy import CNPG_PLUGIN
from homeops_gen.plan import OutputFile, Text, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = ["CHECKSUM_ENV", "cluster_documents", "generate_cnpg", "recovery_cluster"]

_CNPG = "postgresql.cnpg.io/v1"
_BARMAN = "barmancloud.cnpg.io/v1"
#: Newer boto3 checksums break S3 stores other than AWS (Garage among them).
CHECKSUM_ENV = (
    {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
    {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"},
)
#: Keys of the credentials Secret.
ACCESS_KEY, SECRET_KEY, REGION_KEY = "ACCESS_KEY_ID", "ACCESS_SECRET_KEY", "REGION"


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


def _cluster(cluster: CnpgCluster, server_name: str, extra: dict[str, Any]) -> dict[str, Any]:
    storage: dict[str, Any] = {"size": cluster.storage_size}
    if cluster.storage_class is not None:
        storage["storageClass"] = cluster.storage_class
    spec: dict[str, Any] = {"instances": cluster.instances}
    if cluster.image is not None:
        spec["imageName"] = cluster.image
    spec |= {"storage": storage, **extra, **_archiving(cluster, server_name)}
    return {
        "apiVersion": _CNPG,
        "kind": "Cluster",
        "metadata": {"name": cluster.name, "namespace": cluster.namespace},
        "spec": spec,
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


def recovery_cluster(cluster: CnpgCluster) -> dict[str, Any]:
    """The cluster rebuilt from its archive; it archives under the next serverName."""
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
    recovery: dict[str, Any] = {"source": "origin"}
    if cluster.recovery_target_time is not None:
        recovery["recoveryTarget"] = {"targetTime": cluster.recovery_target_time}
    extra = {"bootstrap": {"recovery": recovery}, "externalClusters": [origin]}
    return _cluster(cluster, cluster.next_server_name, extra)


def cluster_documents(settings: Settings, cluster: CnpgCluster) -> dict[str, list[dict[str, Any]]]:
    """The files of one cluster's folder, by file name."""
    files = {
        "externalsecret.yaml": [credentials_secret(settings, cluster)],
        "cluster.yaml": [_cluster(cluster, cluster.server_name, {})],
        "scheduledbackup.yaml": [scheduled_backup(cluster)],
        "recovery.yaml": [recovery_cluster(cluster)],
    }
    if cluster.mode == "plugin":
        files["objectstore.yaml"] = [object_store(cluster)]
    return files


def _recovery_comment(cluster: CnpgCluster) -> str:
    target = (
        f"to {cluster.recovery_target_time}"
        if cluster.recovery_target_time
        else "to the latest archived WAL"
    )
    return (
        f"Restore drill for {cluster.name}: recovers {target} from serverName "
        f"{cluster.server_name},\n"
        f"then archives under {cluster.next_server_name}, never over the history it came from.\n"
        "Apply it in place of cluster.yaml (with the lost cluster deleted), then set the\n"
        "service's cnpg.server_generation to the next number in the catalog and regenerate."
    )


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
    owners = {s.cnpg.name: s.name for s in catalog.services if s.cnpg is not None}
    clusters = [s.cnpg for s in catalog.services if s.cnpg is not None and s.uses("cnpg")]
    for cluster in clusters:
        folder = f"kubernetes/cnpg/{cluster.namespace}/{cluster.name}"
        for name, documents in sorted(cluster_documents(catalog.settings, cluster).items()):
            comment = _recovery_comment(cluster) if name == "recovery.yaml" else ""
            yield OutputFile(
                f"{folder}/{name}",
                YamlDocuments(tuple(documents), comment),
                subject=owners[cluster.name],
            )
    if any(c.store.provider == "garage" for c in clusters):
        yield OutputFile("garage/provision.sh", Text(provision_script(catalog, clusters)))
        yield OutputFile("garage/s3_api.toml", Text(garage_region_config(catalog)))
