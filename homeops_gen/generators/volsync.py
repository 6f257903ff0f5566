"""The VolSync Kustomize component and each app's values (``out/kubernetes/``).

``components/volsync/`` is included from an app's Flux Kustomization (``spec.components``)
and filled by ``postBuild.substituteFrom`` with the app's ConfigMap
(``apps/<namespace>/<app>/volsync.yaml``). It holds:

- ``kopia.yaml``: the repository ExternalSecret, a ``kopia`` ReplicationSource writing to the
  filesystem repository on the catalog's NFS share (mounted through ``moverVolumes``), and a
  bootstrap ReplicationDestination with a manual trigger;
- ``r2.yaml``: a second ExternalSecret and a ``restic`` ReplicationSource ``${APP}-r2`` to
  Cloudflare R2 (only when the catalog has an R2 object store);
- ``pvc.yaml``: the app's PVC, populated from the bootstrap destination, so that a fresh
  cluster restores the data before the app starts.

``volsync/kopia-maintenance.yaml`` runs Kopia's maintenance on the shared repository.
Field names follow the CRDs of the VolSync fork that adds the Kopia mover.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from homeops_gen.catalog.model import Catalog, Retention, Service, VolsyncSettings
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.registry import register_generator
from homeops_gen.schedule import Schedule

__all__ = ["COMPONENT", "REPOSITORY_MOUNT", "Variable", "app_values", "component_variables"]

COMPONENT = "kubernetes/components/volsync"
#: moverVolumes mount below /mnt: the Kopia repository is at /mnt/repository.
REPOSITORY_MOUNT = "repository"
_API = "volsync.backube/v1alpha1"
_ESO = "external-secrets.io/v1"
#: Share of the cache volume Kopia may fill with metadata and content caches (MB limits), so
#: that both caches together stay below the volume's size.
_METADATA_SHARE, _CONTENT_SHARE = 0.6, 0.2
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi)?$")
_MIB = {None: 1 / (1024 * 1024), "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2, "Pi": 1024**3}


@dataclass(frozen=True)
class Variable:
    name: str
    #: ``None``: required, no default.
    default: str | None
    description: str

    def ref(self) -> str:
        """``${NAME}`` or ``${NAME:=default}``, as Flux's post-build substitution reads it."""
        return f"${{{self.name}}}" if self.default is None else f"${{{self.name}:={self.default}}}"


def cache_limits_mb(capacity: str) -> tuple[int, int]:
    """Kopia's metadata and content cache limits (MB) for a cache volume of ``capacity``."""
    match = _QUANTITY.match(capacity)
    if match is None:
        raise ValueError(f"not a binary quantity: {capacity!r}")
    mib = float(match.group(1)) * _MIB[match.group(2)]
    return int(mib * _METADATA_SHARE), int(mib * _CONTENT_SHARE)


def retain(retention: Retention, schedule: Schedule | None) -> dict[str, int]:
    """Snapshot counts per period that cover the catalog's retention."""
    days = retention.copies if retention.copies is not None else retention.period.days  # type: ignore[union-attr]
    hourly = 24 if schedule is not None and schedule.max_gap().total_seconds() < 86400 else 0
    return {"hourly": hourly, "daily": days, "weekly": days // 7, "monthly": days // 30}


def component_variables(v: VolsyncSettings) -> dict[str, Variable]:
    """Every variable the component reads, with the catalog's defaults."""
    metadata_mb, content_mb = cache_limits_mb(v.cache_capacity)
    items = [
        Variable("APP", None, "name of the app: prefix of every object"),
        Variable("VOLSYNC_CLAIM", None, "the app's PVC"),
        Variable("VOLSYNC_CAPACITY", "5Gi", "size of the PVC and of a restore"),
        Variable("VOLSYNC_ACCESSMODES", "ReadWriteOnce", "access mode of the PVC"),
        Variable("VOLSYNC_STORAGECLASS", v.storage_class, "StorageClass of the PVC"),
        Variable("VOLSYNC_SNAPSHOTCLASS", v.snapshot_class, "VolumeSnapshotClass for copies"),
        Variable("VOLSYNC_CACHE_STORAGECLASS", v.cache_storage_class, "StorageClass of the cache"),
        Variable(
            "VOLSYNC_CACHE_CAPACITY",
            v.cache_capacity,
            "size of the mover's cache volume (its own variable: cache classes often "
            "cannot grow with the data)",
        ),
        Variable("VOLSYNC_CACHE_ACCESSMODES", "ReadWriteOnce", "access mode of the cache"),
        Variable("VOLSYNC_PUID", str(v.uid), "UID the mover runs as (the app's)"),
        Variable("VOLSYNC_PGID", str(v.gid), "GID and fsGroup the mover runs as"),
        Variable("VOLSYNC_SCHEDULE", "0 * * * *", "cron of the Kopia copy"),
        Variable("VOLSYNC_KOPIA_COMPRESSION", v.kopia_compression, "Kopia compression"),
        Variable("VOLSYNC_KOPIA_PARALLELISM", str(v.kopia_parallelism), "Kopia upload streams"),
        Variable(
            "VOLSYNC_KOPIA_METADATA_CACHE_MB",
            str(metadata_mb),
            f"Kopia metadata cache limit ({_METADATA_SHARE:.0%} of the cache volume)",
        ),
        Variable(
            "VOLSYNC_KOPIA_CONTENT_CACHE_MB",
            str(content_mb),
            f"Kopia content cache limit ({_CONTENT_SHARE:.0%} of the cache volume)",
        ),
        Variable("VOLSYNC_KOPIA_HOURLY", "24", "hourly Kopia snapshots kept"),
        Variable("VOLSYNC_KOPIA_DAILY", "7", "daily Kopia snapshots kept"),
        Variable("VOLSYNC_KOPIA_WEEKLY", "4", "weekly Kopia snapshots kept"),
        Variable("VOLSYNC_KOPIA_MONTHLY", "2", "monthly Kopia snapshots kept"),
        Variable("VOLSYNC_NFS_SERVER", v.nfs_server, "NFS server of the Kopia repository"),
        Variable("VOLSYNC_NFS_PATH", v.kopia_nfs_path, "exported folder of the Kopia repository"),
    ]
    if v.r2 is not None:
        items += [
            Variable("VOLSYNC_R2_SCHEDULE", "30 0 * * *", "cron of the restic copy to R2"),
            Variable("VOLSYNC_R2_DAILY", "7", "daily R2 snapshots kept"),
            Variable("VOLSYNC_R2_WEEKLY", "4", "weekly R2 snapshots kept"),
            Variable("VOLSYNC_R2_MONTHLY", "2", "monthly R2 snapshots kept"),
            Variable("VOLSYNC_R2_PRUNE_DAYS", "7", "days between restic prunes"),
        ]
    return {item.name: item for item in items}


def _cache(var: dict[str, Variable]) -> dict[str, Any]:
    return {
        "cacheCapacity": var["VOLSYNC_CACHE_CAPACITY"].ref(),
        "cacheStorageClassName": var["VOLSYNC_CACHE_STORAGECLASS"].ref(),
        "cacheAccessModes": [var["VOLSYNC_CACHE_ACCESSMODES"].ref()],
    }


def _copy(var: dict[str, Variable]) -> dict[str, Any]:
    """How the point-in-time copy of the volume is made."""
    return {
        "copyMethod": "Snapshot",
        "volumeSnapshotClassName": var["VOLSYNC_SNAPSHOTCLASS"].ref(),
        "storageClassName": var["VOLSYNC_STORAGECLASS"].ref(),
        "accessModes": [var["VOLSYNC_ACCESSMODES"].ref()],
    }


def _mover(var: dict[str, Variable]) -> dict[str, Any]:
    return {
        "moverSecurityContext": {
            "runAsUser": var["VOLSYNC_PUID"].ref(),
            "runAsGroup": var["VOLSYNC_PGID"].ref(),
            "fsGroup": var["VOLSYNC_PGID"].ref(),
        },
    }


def _repository_volume(var: dict[str, Variable]) -> list[dict[str, Any]]:
    return [
        {
            "mountPath": REPOSITORY_MOUNT,
            "volumeSource": {
                "nfs": {
                    "server": var["VOLSYNC_NFS_SERVER"].ref(),
                    "path": var["VOLSYNC_NFS_PATH"].ref(),
                }
            },
        }
    ]


def _kopia_cache_limits(var: dict[str, Variable]) -> dict[str, Any]:
    return {
        "metadataCacheSizeLimitMB": var["VOLSYNC_KOPIA_METADATA_CACHE_MB"].ref(),
        "contentCacheSizeLimitMB": var["VOLSYNC_KOPIA_CONTENT_CACHE_MB"].ref(),
    }


def external_secret(
    name: str, v: VolsyncSettings, key: str, data: dict[str, str], namespace: str | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": _ESO,
        "kind": "ExternalSecret",
        "metadata": metadata,
        "spec": {
            "secretStoreRef": {"kind": v.secret_store_kind, "name": v.secret_store_name},
            "target": {"name": name, "template": {"data": data}},
            "dataFrom": [{"extract": {"key": key}}],
        },
    }


def kopia_repository_data() -> dict[str, str]:
    return {
        "KOPIA_REPOSITORY": f"filesystem:///mnt/{REPOSITORY_MOUNT}",
        "KOPIA_PASSWORD": "{{ .KOPIA_PASSWORD }}",
    }


def kopia_documents(v: VolsyncSettings) -> list[dict[str, Any]]:
    var = component_variables(v)
    secret = "${APP}-volsync"
    source = {
        "apiVersion": _API,
        "kind": "ReplicationSource",
        "metadata": {"name": "${APP}"},
        "spec": {
            "sourcePVC": var["VOLSYNC_CLAIM"].ref(),
            "trigger": {"schedule": var["VOLSYNC_SCHEDULE"].ref()},
            "kopia": {
                "repository": secret,
                "compression": var["VOLSYNC_KOPIA_COMPRESSION"].ref(),
                "parallelism": var["VOLSYNC_KOPIA_PARALLELISM"].ref(),
                "retain": {
                    period: var[f"VOLSYNC_KOPIA_{period.upper()}"].ref()
                    for period in ("hourly", "daily", "weekly", "monthly")
                },
                **_copy(var),
                **_cache(var),
                **_kopia_cache_limits(var),
                **_mover(var),
                "moverVolumes": _repository_volume(var),
            },
        },
    }
    bootstrap = {
        "apiVersion": _API,
        "kind": "ReplicationDestination",
        "metadata": {"name": "${APP}-dst"},
        "spec": {
            # Runs once, when the PVC below asks for it: a fresh cluster restores first.
            "trigger": {"manual": "restore-once"},
            "kopia": {
                "repository": secret,
                "sourceIdentity": {"sourceName": "${APP}"},
                "capacity": var["VOLSYNC_CAPACITY"].ref(),
                **_copy(var),
                **_cache(var),
                **_kopia_cache_limits(var),
                **_mover(var),
                "moverVolumes": _repository_volume(var),
            },
        },
    }
    return [
        external_secret(secret, v, v.kopia_secret_key, kopia_repository_data()),
        source,
        bootstrap,
    ]


def r2_documents(v: VolsyncSettings) -> list[dict[str, Any]]:
    assert v.r2 is not None and v.r2.bucket is not None
    var = component_variables(v)
    secret = "${APP}-volsync-r2"
    endpoint = v.r2.endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
    data = {
        "RESTIC_REPOSITORY": f"s3:https://{endpoint}/{v.r2.bucket}/${{APP}}",
        "RESTIC_PASSWORD": "{{ .RESTIC_PASSWORD }}",
        "AWS_ACCESS_KEY_ID": "{{ .R2_ACCESS_KEY_ID }}",
        "AWS_SECRET_ACCESS_KEY": "{{ .R2_SECRET_ACCESS_KEY }}",
        "AWS_DEFAULT_REGION": v.r2.region,
    }
    source = {
        "apiVersion": _API,
        "kind": "ReplicationSource",
        "metadata": {"name": "${APP}-r2"},
        "spec": {
            "sourcePVC": var["VOLSYNC_CLAIM"].ref(),
            "trigger": {"schedule": var["VOLSYNC_R2_SCHEDULE"].ref()},
            "restic": {
                "repository": secret,
                "pruneIntervalDays": var["VOLSYNC_R2_PRUNE_DAYS"].ref(),
                "retain": {
                    period: var[f"VOLSYNC_R2_{period.upper()}"].ref()
                    for period in ("daily", "weekly", "monthly")
                },
                **_copy(var),
                **_cache(var),
                **_mover(var),
            },
        },
    }
    return [external_secret(secret, v, v.r2_secret_key, data), source]


def pvc_document(v: VolsyncSettings) -> dict[str, Any]:
    var = component_variables(v)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": var["VOLSYNC_CLAIM"].ref()},
        "spec": {
            "accessModes": [var["VOLSYNC_ACCESSMODES"].ref()],
            "dataSourceRef": {
                "apiGroup": "volsync.backube",
                "kind": "ReplicationDestination",
                "name": "${APP}-dst",
            },
            "resources": {"requests": {"storage": var["VOLSYNC_CAPACITY"].ref()}},
            "storageClassName": var["VOLSYNC_STORAGECLASS"].ref(),
        },
    }


def app_values(catalog: Catalog, service: Service) -> dict[str, str]:
    """The values of every component variable for ``service`` (all strings, for a ConfigMap)."""
    app = service.volsync
    assert app is not None
    v = catalog.settings.volsync
    metadata_mb, content_mb = cache_limits_mb(app.cache_capacity)
    values = {
        "APP": service.name,
        "VOLSYNC_CLAIM": app.claim,
        "VOLSYNC_CAPACITY": app.capacity,
        "VOLSYNC_ACCESSMODES": app.access_mode,
        "VOLSYNC_STORAGECLASS": app.storage_class,
        "VOLSYNC_SNAPSHOTCLASS": app.snapshot_class,
        "VOLSYNC_CACHE_STORAGECLASS": v.cache_storage_class,
        "VOLSYNC_CACHE_CAPACITY": app.cache_capacity,
        "VOLSYNC_CACHE_ACCESSMODES": "ReadWriteOnce",
        "VOLSYNC_PUID": str(app.uid),
        "VOLSYNC_PGID": str(app.gid),
        "VOLSYNC_SCHEDULE": app.schedule.timing.cron,
        "VOLSYNC_KOPIA_COMPRESSION": v.kopia_compression,
        "VOLSYNC_KOPIA_PARALLELISM": str(v.kopia_parallelism),
        "VOLSYNC_KOPIA_METADATA_CACHE_MB": str(metadata_mb),
        "VOLSYNC_KOPIA_CONTENT_CACHE_MB": str(content_mb),
        **{
            f"VOLSYNC_KOPIA_{k.upper()}": str(n)
            for k, n in retain(service.retention, service.schedule).items()
        },
        "VOLSYNC_NFS_SERVER": v.nfs_server,
        "VOLSYNC_NFS_PATH": v.kopia_nfs_path,
    }
    if app.r2_schedule is not None:
        r2 = retain(service.retention, app.r2_schedule)
        values |= {
            "VOLSYNC_R2_SCHEDULE": app.r2_schedule.timing.cron,
            **{f"VOLSYNC_R2_{k.upper()}": str(r2[k]) for k in ("daily", "weekly", "monthly")},
            "VOLSYNC_R2_PRUNE_DAYS": "7",
        }
    assert values.keys() == component_variables(v).keys()
    return values


def _header(v: VolsyncSettings) -> str:
    lines = [
        "VolSync component: copies an app's PVC to a Kopia repository on NFS"
        + (" and, with restic, to Cloudflare R2." if v.r2 is not None else "."),
        "Include it from the app's Flux Kustomization and fill it from the app's ConfigMap:",
        "  spec.components: [../../components/volsync]",
        "  spec.postBuild.substituteFrom: [{kind: ConfigMap, name: <app>-volsync}]",
        "",
        "Variables Flux substitutes (those marked required have no default):",
    ]
    for variable in component_variables(v).values():
        default = "required" if variable.default is None else f"default {variable.default}"
        lines.append(f"  {variable.name}: {variable.description} ({default})")
    return "\n".join(lines)


def maintenance_documents(v: VolsyncSettings) -> list[dict[str, Any]]:
    name = "volsync-kopia-maintenance"
    cache_mb = cache_limits_mb(v.cache_capacity)
    maintenance = {
        "apiVersion": _API,
        "kind": "KopiaMaintenance",
        "metadata": {"name": "volsync-kopia", "namespace": v.maintenance_namespace},
        "spec": {
            "repository": {"repository": name, "repositoryType": "filesystem"},
            "trigger": {"schedule": v.maintenance_schedule.timing.cron},
            "cacheCapacity": v.cache_capacity,
            "cacheStorageClassName": v.cache_storage_class,
            "metadataCacheSizeLimitMB": cache_mb[0],
            "contentCacheSizeLimitMB": cache_mb[1],
            "podSecurityContext": {"runAsUser": v.uid, "runAsGroup": v.gid, "fsGroup": v.gid},
            "moverVolumes": [
                {
                    "mountPath": REPOSITORY_MOUNT,
                    "volumeSource": {"nfs": {"server": v.nfs_server, "path": v.kopia_nfs_path}},
                }
            ],
        },
    }
    secret = external_secret(
        name, v, v.kopia_secret_key, kopia_repository_data(), v.maintenance_namespace
    )
    return [secret, maintenance]


@register_generator("volsync", description="out/kubernetes: the VolSync component, app values")
def generate_volsync(catalog: Catalog) -> Iterator[OutputFile]:
    apps = [s for s in catalog.services if s.uses("volsync")]
    if not apps:
        return
    v = catalog.settings.volsync
    resources = ["./kopia.yaml", "./pvc.yaml"] + (["./r2.yaml"] if v.r2 is not None else [])
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": sorted(resources),
    }
    yield OutputFile(
        f"{COMPONENT}/kustomization.yaml", YamlDocuments((kustomization,), comment=_header(v))
    )
    yield OutputFile(f"{COMPONENT}/kopia.yaml", YamlDocuments(tuple(kopia_documents(v))))
    yield OutputFile(f"{COMPONENT}/pvc.yaml", YamlDocuments((pvc_document(v),)))
    if v.r2 is not None:
        yield OutputFile(f"{COMPONENT}/r2.yaml", YamlDocuments(tuple(r2_documents(v))))
    yield OutputFile(
        "kubernetes/volsync/kopia-maintenance.yaml", YamlDocuments(tuple(maintenance_documents(v)))
    )
    for service in apps:
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{service.name}-volsync", "namespace": v.flux_namespace},
            "data": app_values(catalog, service),
        }
        yield OutputFile(
            f"kubernetes/apps/{service.namespace}/{service.name}/volsync.yaml",
            YamlDocuments((config_map,)),
            subject=service.name,
        )
