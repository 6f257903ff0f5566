"""The VolSync Kustomize components and each app's values (``out/kubernetes/``).

An app includes one component, ``components/volsync-apps/<app>/``, from its Flux
Kustomization (``spec.components``) and fills it with ``postBuild.substituteFrom`` from its
ConfigMap (``apps/<namespace>/<app>/volsync.yaml``). That component lists the shared ones the
app needs:

- ``components/volsync/`` (every app): ``kopia.yaml``, the repository ExternalSecret, a
  ``kopia`` ReplicationSource writing to the filesystem repository on the catalog's NFS share
  (mounted through ``moverVolumes``) and a bootstrap ReplicationDestination with a manual
  trigger; ``pvc.yaml``, the app's PVC, populated from the bootstrap destination, so that a
  fresh cluster restores the data before the app starts;
- ``components/volsync-r2/`` (apps copied offsite, when the catalog has an R2 store):
  ``r2.yaml``, a second ExternalSecret and a ``restic`` ReplicationSource ``${APP}-r2`` to
  Cloudflare R2. An app kept out of the offsite copies never lists it, and its ConfigMap
  carries no ``VOLSYNC_R2_*`` value (``VOLSYNC_R2_SCHEDULE`` has no default, so listing it
  anyway fails instead of shipping the data);
- ``components/volsync-direct/`` (apps whose StorageClass has no CSI snapshots): patches the
  bootstrap to restore straight into the claim (``copyMethod: Direct``, ``destinationPVC``),
  paused, since VolSync's volume populator needs a VolumeSnapshot; the PVC loses its
  ``dataSourceRef`` and no object names a VolumeSnapshotClass.

``volsync/kopia-maintenance.yaml`` runs Kopia's maintenance on the shared repository.
Field names follow the CRDs of the VolSync fork that adds the Kopia mover.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import yaml

from homeops_gen.catalog.model import Catalog, Retention, Service, VolsyncSettings
from homeops_gen.catalog.policy import RETAIN_PERIODS, volsync_retain
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.registry import register_generator
from homeops_gen.schedule import Schedule

__all__ = [
    "APP_COMPONENTS",
    "COMPONENT",
    "DIRECT_COMPONENT",
    "R2_COMPONENT",
    "REPOSITORY_MOUNT",
    "SecretStore",
    "Variable",
    "app_component",
    "app_components",
    "app_files",
    "app_values",
    "component",
    "component_header",
    "component_variables",
    "external_secret",
    "offsite_state",
    "r2_variables",
    "relative",
    "yaml_safe",
]

COMPONENT = "kubernetes/components/volsync"
R2_COMPONENT = "kubernetes/components/volsync-r2"
DIRECT_COMPONENT = "kubernetes/components/volsync-direct"
#: Each app's own component (``<folder>/<app>``), listing the shared ones it needs.
APP_COMPONENTS = "kubernetes/components/volsync-apps"
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
    return volsync_retain(retention, schedule)


#: The component's own fallback counts (an app's ConfigMap always gives its own).
_KOPIA_KEEP = {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 2, "yearly": 0}
_R2_KEEP = {"hourly": 0, "daily": 7, "weekly": 4, "monthly": 2, "yearly": 0}
#: Plain scalars that YAML 1.1 parsers (Flux's among them) read as booleans or null.
_YAML11_SPECIAL = frozenset(
    {
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE"),
        *("on", "On", "ON", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL"),
    }
)


#: Values that read back as themselves without asking the parser: a word (a letter, then
#: letters, digits, ``.``, ``_`` or ``-``; of YAML 1.1's implicit types only booleans and
#: null start with a letter, and _YAML11_SPECIAL holds every spelling of those), or a
#: decimal integer with no sign and no leading zero.
_PLAINLY_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9._-]*|0|[1-9][0-9]*")


def yaml_safe(value: str) -> bool:
    """Whether ``value`` pasted unquoted after ``key: `` reads back as itself (or as the
    integer it spells). Flux substitutes into each object's YAML text and parses it again,
    so a value starting with ``*``, ``&``, ``!``, ``{``, ``[``, ``%`` or ``@``, holding
    ``: `` or `` #``, or spelling a YAML 1.1 boolean or null would change the object."""
    if not value or value in _YAML11_SPECIAL or value != value.strip() or "\n" in value:
        return False
    if _PLAINLY_SAFE.fullmatch(value) is not None:
        return True
    return _reads_back(value)


@lru_cache(maxsize=4096)
def _reads_back(value: str) -> bool:
    """:func:`yaml_safe` by parsing (apps share most values: the cache pays)."""
    try:
        read = yaml.safe_load(f"key: {value}\n")
    except yaml.YAMLError:
        return False
    if not isinstance(read, dict) or list(read) != ["key"]:
        return False
    got = read["key"]
    return bool(got == value or (type(got) is int and str(got) == value))


def component_variables(v: VolsyncSettings) -> dict[str, Variable]:
    """Every variable ``components/volsync`` reads, with the catalog's defaults."""
    metadata_mb, content_mb = cache_limits_mb(v.cache_capacity)
    items = [
        Variable("APP", None, "name of the app: prefix of every object"),
        Variable("VOLSYNC_CLAIM", None, "the app's PVC"),
        Variable("VOLSYNC_CAPACITY", "5Gi", "size of the PVC and of a restore"),
        Variable("VOLSYNC_ACCESSMODES", "ReadWriteOnce", "access mode of the PVC"),
        Variable("VOLSYNC_STORAGECLASS", v.storage_class, "StorageClass of the PVC"),
        Variable(
            "VOLSYNC_COPYMETHOD",
            v.copy_method,
            "how the sources copy the PVC: Snapshot, Clone or Direct",
        ),
        Variable(
            "VOLSYNC_SNAPSHOTCLASS",
            v.snapshot_class,
            "VolumeSnapshotClass for copies (unused by components/volsync-direct apps)",
        ),
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
        *(
            Variable(f"VOLSYNC_KOPIA_{period.upper()}", str(n), f"{period} Kopia snapshots kept")
            for period, n in _KOPIA_KEEP.items()
        ),
        Variable("VOLSYNC_NFS_SERVER", v.nfs_server, "NFS server of the Kopia repository"),
        Variable("VOLSYNC_NFS_PATH", v.kopia_nfs_path, "exported folder of the Kopia repository"),
    ]
    return {item.name: item for item in items}


def r2_variables(v: VolsyncSettings) -> dict[str, Variable]:
    """The variables ``components/volsync-r2`` reads besides those of ``components/volsync``."""
    items = [
        Variable(
            "VOLSYNC_R2_SCHEDULE",
            None,
            "cron of the restic copy to R2 (only offsite-included apps carry it)",
        ),
        *(
            Variable(f"VOLSYNC_R2_{period.upper()}", str(n), f"{period} R2 snapshots kept")
            for period, n in _R2_KEEP.items()
        ),
        Variable("VOLSYNC_R2_PRUNE_DAYS", "7", "days between restic prunes"),
    ]
    return {item.name: item for item in items}


def _all_variables(v: VolsyncSettings) -> dict[str, Variable]:
    return component_variables(v) | r2_variables(v)


def _cache(var: dict[str, Variable]) -> dict[str, Any]:
    return {
        "cacheCapacity": var["VOLSYNC_CACHE_CAPACITY"].ref(),
        "cacheStorageClassName": var["VOLSYNC_CACHE_STORAGECLASS"].ref(),
        "cacheAccessModes": [var["VOLSYNC_CACHE_ACCESSMODES"].ref()],
    }


def _copy(var: dict[str, Variable], method: str | None = None) -> dict[str, Any]:
    """How the point-in-time copy of the volume is made: the app's copy method for the
    sources, ``method`` for the bootstrap destination."""
    return {
        "copyMethod": method or var["VOLSYNC_COPYMETHOD"].ref(),
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


class SecretStore(Protocol):
    """Where an ExternalSecret reads from (the VolSync and kopiur settings both say)."""

    @property
    def secret_store_kind(self) -> str: ...

    @property
    def secret_store_name(self) -> str: ...


def external_secret(
    name: str, v: SecretStore, key: str, data: dict[str, str], namespace: str | None = None
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
                    for period in RETAIN_PERIODS
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
                # The volume populator (pvc.yaml) needs a VolumeSnapshot as the latest image.
                **_copy(var, "Snapshot"),
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
    var = _all_variables(v)
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
                    period: var[f"VOLSYNC_R2_{period.upper()}"].ref() for period in RETAIN_PERIODS
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


def direct_documents() -> list[dict[str, Any]]:
    """``components/volsync-direct``: strategic-merge patches over ``components/volsync`` (and
    ``volsync-r2``) for a StorageClass without CSI snapshots. VolSync's volume populator only
    takes a VolumeSnapshot, so the bootstrap restores straight into the claim instead; it is
    paused, because a Direct restore writes over the live claim (the runbook unpauses it)."""
    return [
        {
            "apiVersion": _API,
            "kind": "ReplicationDestination",
            "metadata": {"name": "${APP}-dst"},
            "spec": {
                "paused": True,
                "kopia": {
                    "copyMethod": "Direct",
                    "destinationPVC": "${VOLSYNC_CLAIM}",
                    # Only for a claim VolSync provisions itself; null deletes them.
                    "capacity": None,
                    "storageClassName": None,
                    "accessModes": None,
                    "volumeSnapshotClassName": None,
                },
            },
        },
        {
            "apiVersion": _API,
            "kind": "ReplicationSource",
            "metadata": {"name": "${APP}"},
            "spec": {"kopia": {"volumeSnapshotClassName": None}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "${VOLSYNC_CLAIM}"},
            "spec": {"dataSourceRef": None},
        },
    ]


def direct_r2_document() -> dict[str, Any]:
    """The R2 source's patch; applied through a target, so it is a no-op without R2."""
    return {
        "apiVersion": _API,
        "kind": "ReplicationSource",
        "metadata": {"name": "${APP}-r2"},
        "spec": {"restic": {"volumeSnapshotClassName": None}},
    }


def app_components(catalog: Catalog, service: Service) -> list[str]:
    """The shared components ``service`` needs (paths below ``out/``), in build order."""
    app = service.volsync
    assert app is not None
    components = [COMPONENT]
    if app.r2_schedule is not None and catalog.settings.volsync.r2 is not None:
        components.append(R2_COMPONENT)
    if app.snapshot_class is None:
        components.append(DIRECT_COMPONENT)
    return components


def app_component(service: Service) -> str:
    """The folder of ``service``'s own component (below ``out/``)."""
    return f"{APP_COMPONENTS}/{service.name}"


def app_values(catalog: Catalog, service: Service) -> dict[str, str]:
    """The values of the variables of every component ``service`` uses (all strings, for a
    ConfigMap); ``VOLSYNC_R2_*`` only for an app copied to R2."""
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
        "VOLSYNC_COPYMETHOD": app.copy_method,
        **({"VOLSYNC_SNAPSHOTCLASS": app.snapshot_class} if app.snapshot_class else {}),
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
        **{f"VOLSYNC_KOPIA_{k.upper()}": str(n) for k, n in app.retain.items()},
        "VOLSYNC_NFS_SERVER": v.nfs_server,
        "VOLSYNC_NFS_PATH": v.kopia_nfs_path,
    }
    variables = component_variables(v)
    if R2_COMPONENT in app_components(catalog, service):
        assert app.r2_schedule is not None and app.r2_retain is not None
        values |= {
            "VOLSYNC_R2_SCHEDULE": app.r2_schedule.timing.cron,
            **{f"VOLSYNC_R2_{k.upper()}": str(n) for k, n in app.r2_retain.items()},
            "VOLSYNC_R2_PRUNE_DAYS": "7",
        }
        variables |= r2_variables(v)
    if app.snapshot_class is None:  # components/volsync-direct drops its only references
        variables.pop("VOLSYNC_SNAPSHOTCLASS")
    assert values.keys() <= variables.keys()
    assert all(n in values for n, var in variables.items() if var.default is None), service.name
    unsafe = sorted(name for name, value in values.items() if not yaml_safe(value))
    if unsafe:  # the catalog's validation keeps these out; never write a ConfigMap Flux breaks
        raise ValueError(f"{service.name}: not YAML-safe after substitution: {unsafe}")
    return values


def component_header(title: str, usage: list[str], variables: dict[str, Variable]) -> str:
    lines = [title, *usage]
    if variables:
        lines += ["", "Variables Flux substitutes (those marked required have no default):"]
    for variable in variables.values():
        default = (
            "required"
            if variable.default is None
            else f"default {variable.default}"
            if variable.default
            else "default empty"
        )
        lines.append(f"  {variable.name}: {variable.description} ({default})")
    return "\n".join(lines)


_USAGE = [
    "Apps do not list it themselves: each includes its own components/volsync-apps/<app>,",
    "which lists the shared components it needs, from its Flux Kustomization:",
    "  spec.components: [<path>/components/volsync-apps/<app>]",
    "  spec.postBuild.substituteFrom: [{kind: ConfigMap, name: <app>-volsync}]",
]


def component(resources: list[str] | None = None, **more: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        **({"resources": sorted(resources)} if resources else {}),
        **more,
    }


def relative(path: str, start: str) -> str:
    return posixpath.relpath(path, start)


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


@register_generator("volsync", description="out/kubernetes: the VolSync components, app values")
def generate_volsync(catalog: Catalog) -> Iterator[OutputFile]:
    apps = [s for s in catalog.services if s.uses("volsync")]
    if not apps:
        return
    v = catalog.settings.volsync
    used = {component for s in apps for component in app_components(catalog, s)}
    title = "VolSync component: copies an app's PVC to a Kopia repository on NFS, and restores it."
    yield OutputFile(
        f"{COMPONENT}/kustomization.yaml",
        YamlDocuments(
            (component(["./kopia.yaml", "./pvc.yaml"]),),
            comment=component_header(title, _USAGE, component_variables(v)),
        ),
    )
    yield OutputFile(f"{COMPONENT}/kopia.yaml", YamlDocuments(tuple(kopia_documents(v))))
    yield OutputFile(f"{COMPONENT}/pvc.yaml", YamlDocuments((pvc_document(v),)))
    if R2_COMPONENT in used:
        title = (
            "VolSync R2 component: a second copy of the app's PVC, with restic, to Cloudflare "
            "R2.\nOnly for apps copied offsite; it needs components/volsync before it."
        )
        yield OutputFile(
            f"{R2_COMPONENT}/kustomization.yaml",
            YamlDocuments(
                (component(["./r2.yaml"]),), comment=component_header(title, [], r2_variables(v))
            ),
        )
        yield OutputFile(f"{R2_COMPONENT}/r2.yaml", YamlDocuments(tuple(r2_documents(v))))
    if DIRECT_COMPONENT in used:
        title = (
            "VolSync component for a StorageClass without CSI snapshots, after components/volsync"
            "\n(and volsync-r2): the bootstrap restores straight into the claim (copyMethod "
            "Direct),\npaused, as VolSync's volume populator needs a VolumeSnapshot; the PVC "
            "has no dataSourceRef."
        )
        r2_target = {
            "group": "volsync.backube",
            "version": "v1alpha1",
            "kind": "ReplicationSource",
            # A regular expression: the name exactly, braces and dollar escaped.
            "name": re.escape("${APP}-r2"),
        }
        kustomization = component(
            patches=[{"path": "./direct.yaml"}, {"path": "./r2.yaml", "target": r2_target}]
        )
        yield OutputFile(
            f"{DIRECT_COMPONENT}/kustomization.yaml",
            YamlDocuments((kustomization,), comment=component_header(title, [], {})),
        )
        yield OutputFile(
            f"{DIRECT_COMPONENT}/direct.yaml", YamlDocuments(tuple(direct_documents()))
        )
        yield OutputFile(f"{DIRECT_COMPONENT}/r2.yaml", YamlDocuments((direct_r2_document(),)))
    yield OutputFile(
        "kubernetes/volsync/kopia-maintenance.yaml", YamlDocuments(tuple(maintenance_documents(v)))
    )
    for service in apps:
        folder = app_component(service)
        components = app_components(catalog, service)
        yield from app_files(
            service,
            "volsync",
            folder,
            components,
            f"VolSync of {service.name} ({service.namespace}): "
            f"{offsite_state(service, R2_COMPONENT in components)}.",
            v.flux_namespace,
            app_values(catalog, service),
        )


def offsite_state(service: Service, copied: bool) -> str:
    """Whether an app is copied to R2, and why not, for its component's header."""
    if copied:
        return "copied to R2"
    if not service.offsite.included:
        return f"not copied to R2: offsite excluded ({service.offsite.reason or 'no reason given'})"
    return "not copied to R2: settings.object_stores has no R2 store"


def app_files(
    service: Service,
    family: str,
    folder: str,
    components: list[str],
    title: str,
    flux_namespace: str,
    values: dict[str, str],
) -> Iterator[OutputFile]:
    """An app's own component (``folder``), listing ``components``, and the ConfigMap
    ``<app>-<family>`` of its values (``apps/<namespace>/<app>/<family>.yaml``)."""
    config = f"{service.name}-{family}"
    comment = f"{title}\nFill it from ConfigMap {config} (namespace {flux_namespace})."
    yield OutputFile(
        f"{folder}/kustomization.yaml",
        YamlDocuments(
            (component(components=[relative(c, folder) for c in components]),),
            comment=comment,
        ),
        subject=service.name,
    )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config, "namespace": flux_namespace},
        "data": values,
    }
    yield OutputFile(
        f"kubernetes/apps/{service.namespace}/{service.name}/{family}.yaml",
        YamlDocuments(
            (config_map,), comment=f"The values of {folder.removeprefix('kubernetes/')}."
        ),
        subject=service.name,
    )
