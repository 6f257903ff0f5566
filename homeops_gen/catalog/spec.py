"""The user-facing catalog format, ``version: homeops/v1``.

These models describe exactly what a user may write in ``services.yaml``: strict types,
unknown keys rejected, nothing derived. Policy defaults are resolved later, in one place
(:mod:`homeops_gen.catalog.policy`), into the internal model of :mod:`.model`.

Every string that may reach a shell script or an HCL file is constrained here to a safe
alphabet; generators quote it as well, so a value is never trusted on either side alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Tag,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from homeops_gen.errors import echo

__all__ = [
    "AlertRouteSpec",
    "AlertRoutingSpec",
    "BackupsSpec",
    "CatalogSpec",
    "CnpgSpec",
    "CopyMethod",
    "DefaultsSpec",
    "DrillCheckSpec",
    "DrillSpec",
    "Engine",
    "EngineSpecs",
    "IscsiSpec",
    "KopiurSettingsSpec",
    "LvmSnapshotsSpec",
    "Method",
    "NfsSpec",
    "ObjectStoreSpec",
    "OffsiteExcludeSpec",
    "OffsiteExclusion",
    "OffsiteSettingsSpec",
    "PvcEngine",
    "PvcSpec",
    "SecretRef",
    "ServiceSpec",
    "SettingsSpec",
    "TruenasSpec",
    "VolsyncRetainSpec",
    "VolsyncSpec",
    "ZfsSnapshotSpec",
]

# --- constrained scalars ------------------------------------------------------------------


@dataclass(frozen=True)
class Matching:
    """Annotation: the string must fully match ``pattern``; errors say ``description``."""

    pattern: str
    description: str
    max_length: int = 253

    def validate(self, value: str) -> str:
        # A message quotes only the start of a long value (echo), and says what is too long.
        if len(value) > self.max_length:
            raise ValueError(
                f"{echo(value)} is not {self.description}: it is {len(value)} characters "
                f"long, the limit is {self.max_length}"
            )
        if not re.fullmatch(self.pattern, value):
            raise ValueError(f"{echo(value)} is not {self.description}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(pattern=f"^(?:{self.pattern})$", maxLength=self.max_length)
        return json_schema


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def _a_string_in_yaml(value: str) -> str:
    """Names reach YAML both through the emitter (which quotes) and through Flux's text
    substitution (``name: ${APP}``, which cannot): one that YAML 1.1 reads as something else
    than a string would arrive in the cluster as a boolean or a number."""
    from homeops_gen.yaml_emitter import yaml11_reads_as_other

    if yaml11_reads_as_other(value):
        raise ValueError(
            f"{value!r} is read as a boolean, number or null by YAML 1.1 (kubectl, Flux's "
            "substitution into the components); choose another name"
        )
    return value


DnsLabel = Annotated[
    str,
    Matching(
        _LABEL,
        "a DNS-1123 label (lower-case letters, digits and '-', "
        "starting and ending with a letter or digit, at most 63 characters)",
        63,
    ),
    AfterValidator(_a_string_in_yaml),
]
DnsSubdomain = Annotated[
    str,
    Matching(rf"{_LABEL}(\.{_LABEL})*", "a DNS-1123 subdomain (a Kubernetes object name)"),
    AfterValidator(_a_string_in_yaml),
]
Hostname = Annotated[
    str, Matching(r"[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?", "a host name or IP address")
]


def _pinned(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
        raise ValueError(f"{echo(image)} is not pinned: add a version tag or a @sha256 digest")
    return image


def _no_dot_segments(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"{echo(path)} has a '.' or '..' segment")
    return path


AbsPath = Annotated[
    str,
    Matching(
        r"/|(/[A-Za-z0-9._@+-]+)+",
        "an absolute path of letters, digits and ._@+- (no spaces, quotes or trailing '/')",
        1024,
    ),
    AfterValidator(_no_dot_segments),
]
LabelName = Annotated[
    str,
    Matching(
        r"([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?",
        "a label name ([prefix/]name: letters, digits, '-', '_', '.')",
        317,
    ),
]
LabelValue = Annotated[
    str,
    Matching(
        r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?",
        "a label value (at most 63 letters, digits, '-', '_', '.', alphanumeric at both ends)",
        63,
    ),
]
#: A link a browser opens (Alertmanager's and Grafana's ``runbook_url``).
WebUrl = Annotated[
    str,
    Matching(
        r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~@+/-]*)?",
        "an http or https URL without credentials, query or spaces",
        2048,
    ),
]
Url = Annotated[
    str,
    Matching(
        r"(https?|sftp|s3)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~@+/-]*)?",
        "a URL (http, https, sftp or s3) without credentials, query or spaces",
        2048,
    ),
]
SecretKey = Annotated[
    str, Matching(r"[-._a-zA-Z0-9]+", "a Secret key (letters, digits, '-', '_', '.')")
]
#: A database name or user that is safe unquoted in SQL and in shell.
Identifier = Annotated[
    str,
    Matching(
        r"[A-Za-z_][A-Za-z0-9_-]*",
        "an identifier (a letter or '_', then letters, digits, '_' or '-')",
        63,
    ),
]
#: Free text (descriptions, reasons): one line, no control characters (C0, DEL, C1, the
#: Unicode line and paragraph separators) and no bidirectional controls, which would reorder
#: what a reader of the generated docs sees.
Text = Annotated[
    str,
    Matching(
        r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]*",
        "single-line text without control or bidirectional characters",
        500,
    ),
]
#: The longest duration a catalog may give (a retention, an RPO, a deadline): 100 years,
#: far beyond any real one, and within what Python's dates and Kubernetes' integers hold.
MAX_DURATION_YEARS = 100
_MAX_DURATION_MINUTES = MAX_DURATION_YEARS * 525_960  # years of 365.25 days
_MAX_DURATION_SECONDS = _MAX_DURATION_MINUTES * 60
_DURATION_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def _within_duration_limit(text: str) -> str:
    """A ``<n>m|h|d|w`` duration (or ``<n> copies``, not a duration) of at most 100 years."""
    total = 0
    for number, name in re.findall(r"(\d+)\s*([a-z]+)", text):
        total += int(number) * _DURATION_UNIT_MINUTES.get(name, 0)
    if total > _MAX_DURATION_MINUTES:
        raise ValueError(
            f"{echo(text)} is longer than {MAX_DURATION_YEARS} years, the limit for a duration"
        )
    return text


#: ``90m``, ``36h``, ``8d``, ``2w``, or several largest first (``1d2h30m``, as ``explain``
#: prints durations); parsed in :mod:`homeops_gen.schedule`.
Duration = Annotated[
    str,
    Matching(
        r"(?=[0-9])([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?",
        "a duration such as 36h, 8d or 1d12h (weeks, days, hours, minutes, largest first)",
        24,
    ),
    AfterValidator(_within_duration_limit),
]
#: ``14d``, ``2w``, ``36h`` or ``<n> copies``; parsed in :mod:`.model`.
RetentionText = Annotated[
    str,
    Matching(
        r"\s*\d+\s*(h|d|w|copies|copy)\s*", "a retention: <n>h, <n>d, <n>w or '<n> copies'", 32
    ),
    AfterValidator(_within_duration_limit),
]
Quantity = Annotated[
    str, Matching(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi)?", "a storage quantity such as 5Gi")
]
Region = Annotated[
    str, Matching(r"[a-z0-9-]+", "a region name (lower-case letters, digits, '-')", 63)
]
Bucket = Annotated[
    str,
    Matching(
        r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
        "an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')",
        63,
    ),
]
PathPattern = Annotated[
    str, Matching(r"[A-Za-z0-9._*/-]+", "a path pattern (letters, digits, ._*/-)", 256)
]
TimeZone = Annotated[
    str, Matching(r"[A-Za-z]+(/[A-Za-z0-9_+-]+)*", "an IANA time zone such as Europe/Berlin", 64)
]
Port = Annotated[int, Field(ge=1, le=65535)]
ResourceQuantity = Annotated[
    str,
    Matching(
        r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?", "a resource quantity such as 50m or 64Mi"
    ),
]
#: A container image pinned by tag or digest (``:latest`` is not a pin).
Image = Annotated[
    str,
    Matching(
        r"[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?",
        "an image reference such as docker.io/library/postgres:17.2",
        255,
    ),
    AfterValidator(_pinned),
]
ModuleSource = Annotated[
    str,
    Matching(
        r"[A-Za-z0-9._/:@?=&+-]+", "a Terraform module source (path, registry or git URL)", 512
    ),
]

StorageClass = Literal["iscsi", "nfs", "local-hostpath", "proxmox-lvm", "local-disk"]
Churn = Literal["low", "medium", "high"]
Criticality = Literal["low", "normal", "high", "critical"]
Engine = Literal[
    "postgresql", "mysql", "sqlite", "etcd", "vault", "redis", "dragonfly", "prometheus", "files"
]
#: How a service is protected beyond the storage layer's snapshots.
#: ``dump``: an application-level backup CronJob (Terraform); ``volsync``: VolSync
#: ReplicationSources (Kustomize); ``kopiur``: kopiur SnapshotPolicies (Kustomize);
#: ``cnpg``: CloudNativePG WAL archiving and base backups.
Method = Literal["dump", "volsync", "kopiur", "cnpg"]
#: The operators that copy an app's PVC: VolSync (its Kopia fork) or kopiur.
PvcEngine = Literal["volsync", "kopiur"]


class Spec(BaseModel):
    """Base for every catalog model: strict, immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- settings -----------------------------------------------------------------------------


class NfsSpec(Spec):
    server: Hostname
    #: Each service's backups go to ``<backup_root>/<name>-backup`` unless it sets ``backup_path``.
    backup_root: AbsPath
    #: Size of each service's NFS backup volume (informational for NFS, required by the API).
    capacity: Quantity = "50Gi"


class ObjectStoreSpec(Spec):
    provider: Literal["garage", "r2", "s3"]
    endpoint: Url
    #: The region the client signs with; for Garage it must equal garage.toml's ``s3_region``.
    region: Region
    bucket: Bucket | None = None
    #: Key in the secret store holding ACCESS_KEY_ID and ACCESS_SECRET_KEY for this store
    #: (default: ``<store name>-s3``).
    credentials_key: SecretKey | None = None
    #: Newer AWS SDKs send checksums that non-AWS stores reject; ``when_required`` turns that
    #: off (default: on for Garage).
    checksum_when_required: bool | None = None


class SecretRef(Spec):
    """A key of a Kubernetes Secret in the namespace of the workload that reads it."""

    name: DnsSubdomain
    key: SecretKey


#: A ZFS dataset: a pool name, then child names (``main``, ``main/media``).
Dataset = Annotated[
    str,
    Matching(
        r"[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*",
        "a ZFS dataset (a pool, then '/'-separated children of letters, digits, '_.:-')",
        200,
    ),
]
#: The name of an rclone remote or of a TrueNAS cloud credential.
RemoteName = Annotated[
    str,
    Matching(
        r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
        "a name of letters, digits, '_', '.' and '-' (not starting with '.' or '-')",
        64,
    ),
]
#: The TrueNAS middleware API: ``wss://`` or ``ws://`` for JSON-RPC 2.0 (``/api/current``),
#: ``https://`` or ``http://`` for the REST API of older systems (``/api/v2.0``).
ApiUrl = Annotated[
    str,
    Matching(
        r"(wss?|https?)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~@+/-]*)?",
        "a ws, wss, http or https URL without credentials, query or spaces",
        2048,
    ),
]


class OffsiteExcludeSpec(Spec):
    """A path pattern kept out of the offsite sync that belongs to no single service."""

    pattern: PathPattern
    reason: Text


class OffsiteSettingsSpec(Spec):
    """The NAS-to-NAS offsite copy: an incremental copy of what ZFS says changed, and a
    periodic full sync that also removes what was deleted."""

    target: Url
    incremental: str = "6h"
    full_sync: str = "0 9 * * 0"
    exclude: tuple[OffsiteExcludeSpec, ...] = ()
    #: Who runs the full sync, and so who pushes its ``sync="full"`` series: the generated
    #: script under cron (``script``), or a TrueNAS Cloud Sync task that the NAS monitor
    #: reports (``cloudsync``; needs settings.truenas and ``cloudsync_credential``).
    full_sync_by: Literal["script", "cloudsync"] = "script"
    #: The ZFS dataset whose snapshots the incremental sync diffs; its mountpoint is the
    #: synced root (default: the dataset mounted at settings.nfs.backup_root, ``/mnt/<pool>``).
    dataset: Dataset | None = None
    #: The mountpoint of ``dataset`` (default: ``/mnt/<dataset>``).
    mountpoint: AbsPath | None = None
    #: The incremental sync's two snapshots are ``<dataset>@<prefix>-prev`` and ``-new``.
    snapshot_prefix: Annotated[
        str, Matching(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a snapshot name prefix", 64)
    ] = "cloudsync"
    #: More changed files than this and the incremental sync lists the whole tree instead.
    max_changes: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000
    #: A remote of the NAS's rclone.conf to copy to (default: rclone's on-the-fly sftp
    #: backend from ``target``, with the user and key of ``sftp_user`` / ``sftp_key_file``).
    rclone_remote: RemoteName | None = None
    sftp_user: Identifier = "root"
    sftp_key_file: AbsPath = "/root/.ssh/id_ed25519"
    #: The TrueNAS cloud credential of the Cloud Sync task (with ``full_sync_by: cloudsync``).
    cloudsync_credential: RemoteName | None = None
    #: Where the sync scripts are installed on the NAS (the cron tasks run them from there).
    install_dir: AbsPath = "/root"


class ChurnDefaultsSpec(Spec):
    cadence: str
    retention: RetentionText


class DefaultsSpec(Spec):
    """Policy knobs; every one has a built-in default, so ``defaults`` may be left out."""

    #: Shorthand cadences start within ``[window_start_hour, window_start_hour + window_hours)``.
    window_start_hour: Annotated[int, Field(ge=0, le=23)] = 0
    window_hours: Annotated[int, Field(ge=1, le=24)] = 5
    weekly_day: Literal[
        "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"
    ] = "sunday"
    churn: dict[Churn, ChurnDefaultsSpec] = Field(default_factory=dict)


class TolerationSpec(Spec):
    """A pod toleration, as Kubernetes takes it (``operator: Exists`` matches any value)."""

    key: LabelName | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class SecurityContextSpec(Spec):
    """The job pod's security context (``runAsUser`` ...)."""

    run_as_user: Annotated[int, Field(ge=0, le=2147483647)] | None = None
    run_as_group: Annotated[int, Field(ge=0, le=2147483647)] | None = None
    run_as_non_root: bool | None = None
    fs_group: Annotated[int, Field(ge=0, le=2147483647)] | None = None


class ResourcesSpec(Spec):
    requests: dict[Literal["cpu", "memory"], ResourceQuantity] = Field(default_factory=dict)
    limits: dict[Literal["cpu", "memory"], ResourceQuantity] = Field(default_factory=dict)


class JobSpec(Spec):
    """CronJob settings; ``settings.jobs`` sets defaults, a service's ``job`` overrides them."""

    concurrency_policy: Literal["Forbid", "Replace", "Allow"] | None = None
    #: Default: a quarter of the schedule's largest gap, between 60 s and one hour.
    starting_deadline_seconds: Annotated[int, Field(ge=10, le=_MAX_DURATION_SECONDS)] | None = None
    successful_jobs_history_limit: Annotated[int, Field(ge=0, le=100)] | None = None
    failed_jobs_history_limit: Annotated[int, Field(ge=0, le=100)] | None = None
    backoff_limit: Annotated[int, Field(ge=0, le=20)] | None = None
    active_deadline_seconds: Annotated[int, Field(ge=60, le=_MAX_DURATION_SECONDS)] | None = None
    resources: ResourcesSpec | None = None
    #: Nodes the job may run on (node labels); default: any (etcd: the control plane).
    node_selector: dict[LabelName, LabelValue] | None = None
    #: Taints the job tolerates; default: none (etcd: the control plane's).
    tolerations: tuple[TolerationSpec, ...] | None = None
    #: The pod's security context; default: the image's own user (etcd: root, to read
    #: kubeadm's 0600 client key).
    security_context: SecurityContextSpec | None = None


class ServiceJobSpec(JobSpec):
    #: The container image, pinned by tag or digest (default: per engine, settings.jobs.images).
    image: Image | None = None
    #: The image's shell; must support ``set -o pipefail`` (bash, busybox ash; not dash).
    shell: Literal["/bin/sh", "/bin/bash"] | None = None
    #: Labels of the app's pods. A job that mounts the app's ReadWriteOnce claim (any
    #: storage but nfs) must run on the node that has it attached: it gets a required pod
    #: affinity to these pods (default: app.kubernetes.io/name: <service name>).
    app_labels: dict[LabelName, LabelValue] | None = None


class JobDefaultsSpec(JobSpec):
    images: dict[Engine, Image] = Field(default_factory=dict)


class NfsVolumeModuleSpec(Spec):
    """A Terraform module of your own that provides the NFS backup volume claim."""

    source: ModuleSource
    #: The module output holding the PersistentVolumeClaim's name.
    claim_output: Annotated[str, Matching(r"[a-z_][a-z0-9_]*", "a Terraform identifier", 64)]


class TerraformSpec(Spec):
    #: Default: the module generated into out/terraform/modules/nfs-backup-volume.
    nfs_volume_module: NfsVolumeModuleSpec | None = None


#: How VolSync takes the point-in-time copy a mover reads (the CRDs' ``copyMethod``):
#: ``Snapshot`` a CSI VolumeSnapshot, ``Clone`` a CSI clone of the claim, ``Direct`` the live
#: claim itself (classes without CSI snapshots or clones: local-path, openebs-hostpath).
#: VolSync's ``None`` is its older spelling of ``Direct`` and not offered.
CopyMethod = Literal["Snapshot", "Clone", "Direct"]
#: A snapshot count of VolSync's ``retain`` (int32 in both CRDs).
RetainCount = Annotated[int, Field(ge=0, le=2147483647)]


class VolsyncClassSpec(Spec):
    storage_class: DnsSubdomain
    #: Its CSI VolumeSnapshotClass; leave it out for a class without CSI snapshots (its apps
    #: then default to copy_method Direct and restore without the volume populator).
    snapshot_class: DnsSubdomain | None = None


class VolsyncRetainSpec(Spec):
    """Snapshots kept per period, as both movers' ``retain`` takes them (Kopia also has
    ``latest``, restic ``last`` and ``within``; not offered). A count left out is derived from
    the service's retention."""

    hourly: RetainCount | None = None
    daily: RetainCount | None = None
    weekly: RetainCount | None = None
    monthly: RetainCount | None = None
    yearly: RetainCount | None = None


class SecretStoreRefSpec(Spec):
    kind: Literal["SecretStore", "ClusterSecretStore"] = "ClusterSecretStore"
    name: DnsSubdomain


class VolsyncSettingsSpec(Spec):
    """Defaults of the VolSync component; every field has a built-in default."""

    #: The Kopia filesystem repository on settings.nfs.server
    #: (default: <settings.nfs.backup_root>/volsync-kopia).
    kopia_nfs_path: AbsPath | None = None
    #: Kubernetes StorageClass and VolumeSnapshotClass per catalog storage class
    #: (default: the storage class's own name, and "<name>-snapshot").
    classes: dict[StorageClass, VolsyncClassSpec] = Field(default_factory=dict)
    cache_storage_class: DnsSubdomain = "local-hostpath"
    cache_capacity: Quantity = "2Gi"
    uid: Annotated[int, Field(ge=0)] = 1000
    gid: Annotated[int, Field(ge=0)] = 1000
    kopia_compression: Annotated[
        str, Matching(r"[a-z0-9-]+", "a Kopia compression name such as zstd-fastest", 64)
    ] = "zstd-fastest"
    kopia_parallelism: Annotated[int, Field(ge=1, le=64)] = 2
    #: Keys in settings.secret_store holding KOPIA_PASSWORD, and RESTIC_PASSWORD +
    #: R2_ACCESS_KEY_ID + R2_SECRET_ACCESS_KEY.
    kopia_secret_key: SecretKey = "volsync-kopia"
    r2_secret_key: SecretKey = "volsync-r2"
    #: The settings.object_stores entry for the offsite copy (default: the one whose
    #: provider is r2, if any); no store means no r2.yaml.
    r2_object_store: DnsLabel | None = None
    r2_cadence: str = "daily"
    #: The sources' copyMethod for classes with CSI snapshots (classes without them default
    #: to Direct); a service's volsync.copy_method overrides it.
    copy_method: CopyMethod = "Snapshot"
    #: Namespace of the KopiaMaintenance for the shared repository.
    maintenance_namespace: DnsLabel = "volsync-system"
    maintenance_cadence: str = "daily"
    #: Namespace of the Flux Kustomizations that read the per-app values ConfigMaps.
    flux_namespace: DnsLabel = "flux-system"


class KopiurSettingsSpec(Spec):
    """Defaults of the kopiur component; every field has a built-in default. A kopiur app
    takes its StorageClasses, cache, UID/GID and copy method from settings.volsync, which
    describe the cluster's storage and the apps whatever copies them."""

    #: The ClusterRepository on settings.nfs.server (kopia's filesystem backend on NFS).
    repository: DnsSubdomain = "nfs"
    #: Its folder on the NFS server (default: <settings.nfs.backup_root>/kopiur).
    nfs_path: AbsPath | None = None
    #: The ClusterRepository of the offsite copies (S3 backend on the R2 store of
    #: settings.volsync.r2_object_store); only apps copied offsite write to it.
    r2_repository: DnsSubdomain = "r2"
    r2_cadence: str = "daily"
    #: The operator's namespace: where the repositories' Secrets live.
    namespace: DnsLabel = "kopiur-system"
    #: Keys in settings.secret_store holding KOPIA_PASSWORD, and KOPIA_PASSWORD +
    #: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY for R2.
    secret_key: SecretKey = "kopiur"
    r2_secret_key: SecretKey = "kopiur-r2"
    compression: Annotated[
        str, Matching(r"[a-z0-9-]+", "a Kopia compression name such as zstd", 64)
    ] = "zstd"
    #: The mover's cache volume: kept between runs (Persistent) or made for each (Ephemeral).
    cache_mode: Literal["Ephemeral", "Persistent"] = "Persistent"
    #: Blob-level verification (``kopia snapshot verify``) of each app's snapshots; the deep
    #: one (a scratch restore) runs at the app's restore-drill cadence.
    quick_verify_cadence: str = "daily"
    #: Share of the files quick verification reads back in full (``verifyFilesPercent``).
    verify_files_percent: Annotated[int, Field(ge=0, le=100)] = 10
    #: The repositories' full maintenance (content reclamation); the quick one runs at
    #: every ``maintenance_quick_cadence``.
    maintenance_cadence: str = "daily"
    maintenance_quick_cadence: str = "6h"
    #: What a Restore does when the repository holds no snapshot of the app (first deploy):
    #: ``Continue`` provisions an empty volume, ``Fail`` leaves the claim pending.
    on_missing_snapshot: Literal["Continue", "Fail"] = "Continue"


class GarageSpec(Spec):
    """What garage.toml says, where it matters to clients."""

    #: ``[s3_api] s3_region``: every client must sign with exactly this region.
    s3_region: Region
    #: Name prefix of the access keys the provisioning script creates.
    key_prefix: DnsLabel = "homeops"


LvmName = Annotated[
    str,
    Matching(r"[A-Za-z0-9+_][A-Za-z0-9+_.-]*", "an LVM name (letters, digits, '+_.-')", 64),
]


class LvmSnapshotsSpec(Spec):
    """Proxmox LVM thin snapshots of the proxmox-lvm volumes (the snapshot script's layer)."""

    cadence: str = "0 0,12 * * *"
    retention: RetentionText = "7d"
    #: Alert when the thin pool has less free space than this; below it no new snapshot is
    #: taken (a full thin pool fails the volumes' own writes).
    min_free_percent: Annotated[int, Field(ge=1, le=99)] = 15
    #: The volume group and thin pool the Proxmox CSI volumes live in.
    volume_group: LvmName = "pve"
    thin_pool: LvmName = "data"
    #: The kubeconfig the script maps volumes to claims with (and scales workloads with).
    kubeconfig: AbsPath = "/root/.kube/config"


class ZfsSnapshotSpec(Spec):
    """One periodic ZFS snapshot task on the NAS (TrueNAS), covering nfs and iscsi data."""

    pool: Annotated[str, Matching(r"[A-Za-z0-9_.-]+", "a pool name", 64)]
    naming: Annotated[str, Matching(r"[A-Za-z0-9_.%-]+", "a snapshot naming schema", 128)]
    cadence: str
    retention: RetentionText
    #: The task's dataset (default: the pool's root dataset).
    dataset: Dataset | None = None
    #: Snapshot the child datasets too.
    recursive: bool = True
    #: Child datasets the recursive task leaves out.
    exclude: tuple[Dataset, ...] = ()


class IscsiSpec(Spec):
    """The iSCSI initiator settings of the nodes (open-iscsi's iscsid.conf). The defaults are
    the backup seed's hardening: a session survives a network blip of minutes instead of
    failing the I/O that SQLite and the databases on the zvols are writing."""

    replacement_timeout: Annotated[int, Field(ge=1, le=86400)] = 300
    noop_out_interval: Annotated[int, Field(ge=0, le=3600)] = 10
    noop_out_timeout: Annotated[int, Field(ge=0, le=3600)] = 15
    header_digest: Literal["None", "CRC32C", "CRC32C,None", "None,CRC32C"] = "CRC32C,None"
    data_digest: Literal["None", "CRC32C", "CRC32C,None", "None,CRC32C"] = "CRC32C,None"


class TruenasSpec(Spec):
    """The NAS's middleware API: the NAS monitor reads its Cloud Sync tasks through it."""

    #: ``wss://<nas>/api/current``: JSON-RPC 2.0 over WebSocket (TrueNAS 25.04 and later).
    #: An ``https://<nas>/api/v2.0`` URL selects the REST API of older systems instead
    #: (deprecated in 25.04, removed in 26).
    api: ApiUrl
    #: The API key, a Secret in the monitor's namespace.
    api_key: SecretRef
    #: The user the key belongs to. With it the monitor logs in with ``auth.login_ex``
    #: (``API_KEY_PLAIN``), which TrueNAS 25.04 and later take and which is the only API-key
    #: login of ``/api/current`` from TrueNAS 27 on; without it, ``auth.login_with_api_key``.
    api_key_user: (
        Annotated[str, Matching(r"[A-Za-z_][A-Za-z0-9_.-]*", "a user name", 32)] | None
    ) = None
    #: Check the NAS's TLS certificate (off for a self-signed one).
    verify_tls: bool = True
    #: The monitor CronJob's namespace and how often it asks the NAS.
    namespace: DnsLabel = "monitoring"
    monitor_cadence: str = "hourly"


class SnapshotsSpec(Spec):
    lvm: LvmSnapshotsSpec | None = None
    zfs: tuple[ZfsSnapshotSpec, ...] = ()


def _promql_matchers(text: str) -> str:
    """Parsed as Prometheus parses a selector's matchers (the rules paste it in)."""
    from homeops_gen.promql import parse_matchers

    parse_matchers(text)
    return text


class BackupDiskSpec(Spec):
    """The disk backups land on, watched through node_exporter's filesystem metrics."""

    #: PromQL label matchers selecting that filesystem, e.g. ``mountpoint="/mnt/main"``.
    selector: Annotated[
        str,
        Matching(r"[^\x00-\x1f\x7f]*", 'PromQL label matchers such as mountpoint="/mnt/main"', 500),
        AfterValidator(_promql_matchers),
    ]
    min_free_percent: Annotated[int, Field(ge=1, le=99)] = 10


class PushgatewayScrapeSpec(Spec):
    """How Prometheus scrapes the Pushgateway. The rules match the jobs' own ``job`` label,
    which survives only with ``honor_labels``."""

    #: Generate a ServiceMonitor with ``honorLabels: true``; false: your Prometheus already
    #: scrapes the Pushgateway with ``honor_labels: true``.
    servicemonitor: bool = True
    #: The Pushgateway Service's namespace (default: from settings.pushgateway,
    #: ``<service>.<namespace>.svc...``, else settings.alerts.namespace).
    namespace: DnsLabel | None = None
    #: Labels of the Pushgateway Service (the prometheus-pushgateway chart's by default).
    service_labels: dict[LabelName, LabelValue] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus-pushgateway"}
    )
    #: The Service's port name.
    port: DnsLabel = "http"


#: An Alertmanager receiver's name (the receivers themselves, with their webhooks and keys,
#: are yours: the generated route tree refers to them by name).
ReceiverName = Annotated[
    str,
    Matching(
        r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?",
        "a receiver name (letters, digits, '.', '_', '-', at most 63)",
        63,
    ),
]


class AlertRouteSpec(Spec):
    """One child route: alerts whose labels equal every matcher go to ``receiver``."""

    receiver: ReceiverName
    matchers: dict[LabelName, LabelValue] = Field(min_length=1)
    #: Also try the routes after this one (Alertmanager's ``continue``).
    also_later_routes: bool = False


class AlertRoutingSpec(Spec):
    """Where the generated alerts go: Alertmanager's route tree, first match wins."""

    #: The receiver of every alert no route matches.
    receiver: ReceiverName
    group_by: tuple[LabelName, ...] = ("alertname", "service")
    routes: tuple[AlertRouteSpec, ...] = ()


#: A Prometheus metric name.
MetricName = Annotated[
    str, Matching(r"[a-zA-Z_:][a-zA-Z0-9_:]*", "a metric name (letters, digits, '_', ':')", 200)
]


class AlertsSpec(Spec):
    #: Namespace of the PrometheusRule objects.
    namespace: DnsLabel = "monitoring"
    #: Where the generated runbooks are published (your Git forge's view of
    #: out/docs/runbooks); alerts link ``<url>/restore-<service>.md``. Without it the alerts
    #: carry no ``runbook_url`` (lint warns): a path inside the repository opens nowhere.
    runbook_base_url: WebUrl | None = None
    #: Labels the Prometheus ruleSelector looks for (e.g. release: kube-prometheus-stack).
    rule_labels: dict[LabelName, LabelValue] = Field(default_factory=dict)
    pushgateway_scrape: PushgatewayScrapeSpec = Field(default_factory=PushgatewayScrapeSpec)
    #: Generate an Alertmanager route tree (alertmanager.yml and an AlertmanagerConfig).
    routing: AlertRoutingSpec | None = None
    #: Metrics the alerts may read that programs outside homeops_gen produce, by program.
    #: The stack's exporters are built in (kube-state-metrics, node-exporter, volsync, kopiur,
    #: cloudnative-pg, plugin-barman-cloud: see out/docs/metrics.md); an entry here replaces
    #: that program's list or adds a program. An alert reading a metric that neither a
    #: generated program nor one of these produces is refused.
    external_metrics: dict[DnsLabel, tuple[MetricName, ...]] = Field(default_factory=dict)


class BackupsSpec(Spec):
    """What makes a backup's success meaningful, catalog-wide."""

    #: Alert when a backup is smaller than this fraction of the largest of its recent runs.
    shrink_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    #: How many of its recent runs (by the schedule's largest gap) that largest is taken over.
    shrink_runs: Annotated[int, Field(ge=2, le=100)] = 7


class DrillsSpec(Spec):
    """How the drills of CNPG archives and VolSync repositories run, catalog-wide."""

    #: The drill's own pod: kubectl, a POSIX shell and curl (it drives the scratch objects
    #: through the API and pushes the outcome).
    kubectl_image: Image = "docker.io/alpine/k8s:1.32.3"
    #: The VolSync drill's verify pod: the mover image, which carries kopia, restic and jq.
    volsync_image: Image = "ghcr.io/perfectra1n/volsync:0.17.11"
    #: Share of the files of the newest Kopia snapshots whose content the drill reads back
    #: (``kopia snapshot verify --verify-files-percent``).
    verify_files_percent: Annotated[int, Field(ge=1, le=100)] = 10
    #: Share of the offsite restic repository's packs read back (``restic check
    #: --read-data-subset``).
    read_data_percent: Annotated[int, Field(ge=1, le=100)] = 5


class SettingsSpec(Spec):
    #: IANA time zone the catalog's times are meant in: every CronJob's ``timeZone``, and
    #: the NAS's and the PVE host's clocks.
    timezone: TimeZone = "Etc/UTC"
    #: The zone the VolSync and CNPG operators read their crons in (their process's ``TZ``).
    controller_timezone: TimeZone = "Etc/UTC"
    nfs: NfsSpec
    pushgateway: Url
    #: The Pushgateway as the NAS and the PVE host reach it (a NodePort or an ingress;
    #: default: settings.pushgateway, which outside the cluster resolves only if your DNS
    #: does).
    host_pushgateway: Url | None = None
    object_stores: dict[DnsLabel, ObjectStoreSpec] = Field(default_factory=dict)
    offsite: OffsiteSettingsSpec | None = None
    #: The NAS's API, for the NAS monitor (see ``offsite.full_sync_by``).
    truenas: TruenasSpec | None = None
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    jobs: JobDefaultsSpec = Field(default_factory=JobDefaultsSpec)
    terraform: TerraformSpec = Field(default_factory=TerraformSpec)
    volsync: VolsyncSettingsSpec = Field(default_factory=VolsyncSettingsSpec)
    #: The engine of the services' ``pvc`` blocks that name none.
    pvc_engine: PvcEngine = "volsync"
    kopiur: KopiurSettingsSpec = Field(default_factory=KopiurSettingsSpec)
    garage: GarageSpec | None = None
    #: Where every generated ExternalSecret reads its credentials from.
    secret_store: SecretStoreRefSpec = SecretStoreRefSpec(name="onepassword")
    snapshots: SnapshotsSpec = Field(default_factory=SnapshotsSpec)
    backup_disk: BackupDiskSpec | None = None
    #: The initiator hardening generated for the nodes when a service is on iSCSI.
    iscsi: IscsiSpec = Field(default_factory=IscsiSpec)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    backups: BackupsSpec = Field(default_factory=BackupsSpec)
    drills: DrillsSpec = Field(default_factory=DrillsSpec)


# --- per-engine connection blocks -----------------------------------------------------------


class PostgresqlSpec(Spec):
    host: Hostname
    port: Port = 5432
    user: Identifier = "postgres"
    password: SecretRef | None = None
    databases: tuple[Identifier, ...] = ()


class MysqlSpec(Spec):
    host: Hostname
    port: Port = 3306
    user: Identifier = "root"
    password: SecretRef | None = None
    databases: tuple[Identifier, ...] = ()


class SqliteSpec(Spec):
    claim: DnsSubdomain
    #: Where the backup job mounts the claim; ``database`` and ``extra_paths`` lie below it.
    mount_path: AbsPath = "/data"
    database: AbsPath
    #: Files and folders copied next to each backup (Vaultwarden: RSA keys, attachments, ...).
    extra_paths: tuple[AbsPath, ...] = ()


class EtcdSpec(Spec):
    endpoints: Url = "https://127.0.0.1:2379"
    cert_dir: AbsPath = "/etc/kubernetes/pki/etcd"
    #: The image whose ``etcdctl`` takes and checks the snapshot (in init containers: it has
    #: no shell). The default is the one kubeadm runs etcd from, so the control-plane node
    #: already has it; match your cluster's etcd version.
    tools_image: Image = "registry.k8s.io/etcd:3.5.17-0"


class VaultSpec(Spec):
    address: Url
    token: SecretRef


class RedisSpec(Spec):
    host: Hostname
    port: Port = 6379
    password: SecretRef | None = None
    #: The data volume, mounted at ``data_dir``, from which the RDB file is copied.
    claim: DnsSubdomain
    data_dir: AbsPath = "/data"
    rdb_file: Annotated[str, Matching(r"[A-Za-z0-9._-]+", "a file name", 255)] = "dump.rdb"


class PrometheusSpec(Spec):
    url: Url
    #: The TSDB volume, mounted at ``data_dir`` (snapshots appear in ``<data_dir>/snapshots``).
    claim: DnsSubdomain
    data_dir: AbsPath = "/prometheus"


class FilesSpec(Spec):
    claim: DnsSubdomain
    mount_path: AbsPath = "/data"
    #: What to archive, below ``mount_path`` (default: all of it).
    paths: tuple[AbsPath, ...] = ()


#: The engine block a service may carry, by engine name.
EngineSpecs: dict[str, type[Spec]] = {
    "postgresql": PostgresqlSpec,
    "mysql": MysqlSpec,
    "sqlite": SqliteSpec,
    "etcd": EtcdSpec,
    "vault": VaultSpec,
    "redis": RedisSpec,
    "dragonfly": RedisSpec,
    "prometheus": PrometheusSpec,
    "files": FilesSpec,
}


# --- method blocks ------------------------------------------------------------------------


class VolsyncSpec(Spec):
    """A local-hostpath app volume copied by VolSync (Kopia locally, restic to R2)."""

    capacity: Quantity
    #: The app's PVC (default: the service name).
    claim: DnsSubdomain | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"] = "ReadWriteOnce"
    #: Size of the mover's cache volume (default: settings.volsync.cache_capacity).
    cache_capacity: Quantity | None = None
    #: UID/GID the mover runs as; match the app's (default: settings.volsync).
    uid: Annotated[int, Field(ge=0)] | None = None
    gid: Annotated[int, Field(ge=0)] | None = None
    #: The sources' copyMethod (default: settings.volsync.copy_method, or Direct for a class
    #: without CSI snapshots).
    copy_method: CopyMethod | None = None
    #: Kopia snapshots kept (counts left out: derived from the service's retention).
    retain: VolsyncRetainSpec | None = None
    #: restic snapshots kept on R2 (only for an offsite-included app with an R2 store).
    r2_retain: VolsyncRetainSpec | None = None


class PvcSpec(VolsyncSpec):
    """An app volume copied by the engine it names, else by settings.pvc_engine. The same
    fields as a ``volsync`` or ``kopiur`` block, which fix the engine instead."""

    engine: PvcEngine | None = None


class CnpgSpec(Spec):
    """A CloudNativePG cluster archiving WAL and base backups to an object store."""

    cluster: DnsLabel
    #: Name of an entry of ``settings.object_stores``.
    object_store: DnsLabel
    #: ``plugin``: the barman-cloud plugin (current CNPG); ``in-tree``: the deprecated
    #: ``spec.backup.barmanObjectStore``, for clusters that still run it.
    mode: Literal["plugin", "in-tree"] = "plugin"
    #: ``false`` (default): the Cluster is yours (a Helm chart, your own manifest); homeops_gen
    #: generates a Kustomize Component that patches archiving into it and leaves its spec
    #: alone. ``true``: homeops_gen generates the whole Cluster (``cluster.yaml``) from the
    #: fields below.
    owned: bool = False
    #: Owned Clusters only: ``spec.instances`` (default 3).
    instances: Annotated[int, Field(ge=1, le=9)] | None = None
    #: Owned Clusters only: ``spec.storage.size`` (default 10Gi).
    storage_size: Quantity | None = None
    #: Owned Clusters only: ``spec.storage.storageClass`` (default: the cluster's default class).
    storage_class: DnsSubdomain | None = None
    #: Owned Clusters only: ``spec.imageName``, pinned (default
    #: ghcr.io/cloudnative-pg/postgresql:17.2, the same major as the dump job's client).
    image: Image | None = None
    #: The archive folder is ``s3://<bucket>/<namespace>/<cluster>-v<generation>/``; after a
    #: restore, bump it to the next one (the recovery manifest uses it), so the new cluster
    #: never archives over the history it was restored from.
    server_generation: Annotated[int, Field(ge=1, le=999)] = 1
    wal_compression: Literal["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"] = "zstd"
    wal_max_parallel: Annotated[int, Field(ge=1, le=64)] = 4
    data_compression: Literal["bzip2", "gzip", "lz4", "snappy"] = "gzip"
    data_jobs: Annotated[int, Field(ge=1, le=32)] = 2
    #: Point-in-time target of the recovery manifest (RFC 3339); default: the latest WAL.
    recovery_target_time: (
        Annotated[
            str,
            Matching(
                r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                r"(Z|[+-][0-9]{2}:?[0-9]{2})",
                "an RFC 3339 time such as 2026-03-23T10:00:00Z",
                40,
            ),
        ]
        | None
    ) = None


class OffsiteExclusion(Spec):
    excluded: Text


def _offsite_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "flag"
    return "exclusion" if isinstance(value, dict | OffsiteExclusion) else None


#: A table, optionally schema-qualified, that is safe unquoted in SQL and in shell.
TableName = Annotated[
    str,
    Matching(
        r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?",
        "a table name (letters, digits and '_', optionally schema.table)",
        127,
    ),
]
#: One SQL query on one line. It reaches the drill only as a line of a file the drill's
#: database client reads (never shell code); ';' would let one line run several statements.
SqlQuery = Annotated[
    str,
    Matching(
        r"[^\x00-\x1f\x7f-\x9f;\u2028\u2029.\- ][^\x00-\x1f\x7f-\x9f;\u2028\u2029]*",
        "one SQL query on one line, without ';' or control characters, not starting with "
        "'.', '-' or a space (sqlite3 and psql would read those as their own commands)",
        1000,
    ),
]
#: A size in bytes: a number with an optional binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T)
#: suffix.
ByteSize = Annotated[
    str,
    Matching(r"[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?", "a size such as 4096, 64Ki or 10M", 24),
]


class DrillCheckSpec(Spec):
    """One assertion a restore drill makes on the restored copy of an SQL engine: a table
    holding at least ``min_rows`` rows, or a query whose single value is true."""

    #: The database it runs in (PostgreSQL and MySQL; default: the service's first one).
    database: Identifier | None = None
    table: TableName | None = None
    min_rows: Annotated[int, Field(ge=0)] = 0
    query: SqlQuery | None = None


#: The backups a restore drill exists for: a dump, a CNPG archive, a VolSync repository,
#: a kopiur repository (its deep verification, a scratch restore kopiur runs itself).
DrillLayer = Literal["dump", "cnpg", "volsync", "kopiur"]


class DrillSpec(Spec):
    """The service's restore drill: restore the newest backup into a scratch copy in the
    drill's own pod, check it, and report how long it took."""

    #: How often (default: weekly for critical services, monthly otherwise).
    cadence: str | None = None
    #: SQL engines: what the restored copy must hold.
    checks: tuple[DrillCheckSpec, ...] = ()
    #: Redis: the restored data set holds at least this many keys.
    min_keys: Annotated[int, Field(ge=0)] | None = None
    #: files and VolSync: the restored tree holds at least this many files.
    min_files: Annotated[int, Field(ge=0)] | None = None
    #: Which backup the drill restores when the service has more than one: its dump, its
    #: CNPG archive or its VolSync repository (default: the first of these it has).
    layer: DrillLayer | None = None


def _drill_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, dict):
        return "drill"
    return None


class ServiceSpec(Spec):
    name: DnsLabel
    namespace: DnsLabel
    description: Text = ""
    storage: StorageClass
    churn: Churn
    engine: Engine
    criticality: Criticality = "normal"
    #: Protection methods; derived from storage and engine when left out.
    methods: tuple[Method, ...] | None = None
    cadence: str | None = None
    retention: RetentionText | None = None
    #: ``true``/``false``, or ``{excluded: <reason>}``; derived from storage when left out.
    offsite: (
        Annotated[
            Annotated[bool, Tag("flag")] | Annotated[OffsiteExclusion, Tag("exclusion")],
            Discriminator(
                _offsite_kind,
                custom_error_type="offsite",
                custom_error_message="expected true, false or {excluded: <reason>}",
            ),
        ]
        | None
    ) = None
    #: Whether the storage layer's snapshots include this volume; derived from churn when left out.
    snapshots: bool | None = None
    #: Cadence of a standalone integrity-check job (SQLite only).
    integrity: str | None = None
    #: The most data the service may lose, checked by ``lint`` against its schedule.
    rpo: Duration | None = None
    #: Its folder on the NAS (below the NFS root), for the offsite filter (default: the name).
    dataset: (
        Annotated[
            str,
            Matching(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", "a relative folder path", 255),
            AfterValidator(_no_dot_segments),
        ]
        | None
    ) = None
    #: Alert when the last good backup is older than this (default: the schedule's largest
    #: gap between runs plus a grace); never shorter than that gap.
    stale_after: Duration | None = None
    #: The restore drill: ``true``/``false``, or its settings (default: on for every
    #: application-level backup whose engine has a drill).
    drill: (
        Annotated[
            Annotated[bool, Tag("flag")] | Annotated[DrillSpec, Tag("drill")],
            Discriminator(
                _drill_kind,
                custom_error_type="drill",
                custom_error_message="expected true, false or the drill's settings",
            ),
        ]
        | None
    ) = None
    #: The declared recovery time objective: alert when a drill's restore takes longer.
    rto: Duration | None = None
    #: A backup smaller than this fails (default: 1; an empty backup always fails).
    min_size: ByteSize | None = None
    backup_path: AbsPath | None = None
    job: ServiceJobSpec | None = None
    postgresql: PostgresqlSpec | None = None
    mysql: MysqlSpec | None = None
    sqlite: SqliteSpec | None = None
    etcd: EtcdSpec | None = None
    vault: VaultSpec | None = None
    redis: RedisSpec | None = None
    dragonfly: RedisSpec | None = None
    prometheus: PrometheusSpec | None = None
    files: FilesSpec | None = None
    #: The app's PVC, copied by VolSync (``volsync``), by kopiur (``kopiur``), or by
    #: ``pvc.engine`` / settings.pvc_engine (``pvc``): at most one of the three.
    volsync: VolsyncSpec | None = None
    kopiur: VolsyncSpec | None = None
    pvc: PvcSpec | None = None
    cnpg: CnpgSpec | None = None


class CatalogSpec(Spec):
    version: Literal["homeops/v1"]
    settings: SettingsSpec
    services: tuple[ServiceSpec, ...] = ()
