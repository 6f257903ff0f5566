"""The resolved catalog: what generators read.

Every default and policy decision has already been applied (see :mod:`.policy`), so a
generator never re-derives a cadence or a retention. Each :class:`Service` also records
where each resolved value came from (:attr:`Service.origins`), for ``explain`` and for
error messages that point at the catalog line responsible.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from homeops_gen.catalog.spec import (
    AlertRoutingSpec,
    DrillsSpec,
    Engine,
    IscsiSpec,
    Method,
    ObjectStoreSpec,
    OffsiteExcludeSpec,
    Spec,
)
from homeops_gen.errors import Location
from homeops_gen.schedule import Schedule, format_duration

__all__ = [
    "Catalog",
    "CnpgCluster",
    "Drill",
    "DrillCheck",
    "JobSettings",
    "KopiurApp",
    "KopiurSettings",
    "LvmSnapshots",
    "Offsite",
    "OffsiteSync",
    "Origin",
    "Retention",
    "Service",
    "Settings",
    "SnapshotLayer",
    "Truenas",
    "VolsyncApp",
    "VolsyncSettings",
    "ZfsSnapshots",
    "parse_retention",
]

SnapshotLayer = Literal["zfs", "lvm"]
_RETENTION = re.compile(r"^\s*(\d+)\s*(h|d|w|copies|copy)\s*$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


@dataclass(frozen=True)
class Retention:
    """Keep backups for ``period``, or keep the newest ``copies``; exactly one is set."""

    period: dt.timedelta | None = None
    copies: int | None = None

    def __str__(self) -> str:
        if self.copies is not None:
            return f"{self.copies} copies" if self.copies != 1 else "1 copy"
        assert self.period is not None
        return format_duration(self.period)


def parse_retention(text: str) -> Retention:
    match = _RETENTION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a retention: use <n>h, <n>d, <n>w or '<n> copies'")
    count, unit = int(match.group(1)), match.group(2)
    if count == 0:
        raise ValueError("retention must keep at least one backup")
    if unit.startswith("cop"):
        return Retention(copies=count)
    return Retention(period=dt.timedelta(hours=count * _UNIT_HOURS[unit]))


@dataclass(frozen=True)
class Origin:
    """Where a resolved value came from: the catalog, a built-in default, or a policy rule."""

    kind: Literal["catalog", "settings", "default", "policy"]
    detail: str
    #: For ``catalog`` and ``settings`` origins: the location in the catalog document.
    loc: Location = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class Offsite:
    included: bool
    #: Why the service is kept out of the offsite sync (``None`` when included).
    reason: str | None = None


@dataclass(frozen=True)
class JobSettings:
    """How a service's backup CronJobs run."""

    image: str
    shell: str
    concurrency_policy: str
    #: ``None``: derived from each job's schedule (see :meth:`starting_deadline`).
    starting_deadline_seconds: int | None
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    backoff_limit: int
    #: ``None``: derived from each job's schedule (see :meth:`active_deadline`).
    active_deadline_seconds: int | None
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    #: Where the pod may run: node labels, tolerated taints (each Kubernetes' toleration
    #: fields, snake_case), and whose pods it must run beside (empty: anywhere).
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...]
    security_context: Mapping[str, int | bool]
    #: The app's pods' labels: a job mounting its ReadWriteOnce claim runs beside them.
    app_labels: Mapping[str, str]
    #: Whether the job's pod must run beside the app's (it mounts a ReadWriteOnce claim).
    beside_app: bool

    def starting_deadline(self, schedule: Schedule) -> int:
        """Seconds a missed run may still start: a quarter of the largest gap, 60 s to 1 h.

        A deadline of a few seconds loses the run whenever the controller is briefly late.
        """
        if self.starting_deadline_seconds is not None:
            return self.starting_deadline_seconds
        quarter = int(schedule.calendar_gap().total_seconds()) // 4
        return max(60, min(3600, quarter))

    def active_deadline(self, schedule: Schedule) -> int:
        """Seconds a run may take: four hours, or less so that a run that started as late as
        its starting deadline still ends before the next one is due (with
        ``concurrencyPolicy: Forbid`` a longer run would skip the next)."""
        if self.active_deadline_seconds is not None:
            return self.active_deadline_seconds
        room = int(schedule.calendar_smallest_gap().total_seconds())
        return max(60, min(4 * 3600, room - self.starting_deadline(schedule)))

    def run_allowance(self, schedule: Schedule) -> dt.timedelta:
        """From the scheduled time to the last moment a healthy run can report success."""
        return dt.timedelta(
            seconds=self.starting_deadline(schedule) + self.active_deadline(schedule)
        )


@dataclass(frozen=True)
class VolsyncSettings:
    """Defaults of the VolSync component (``settings.volsync``, resolved)."""

    nfs_server: str
    kopia_nfs_path: str
    storage_class: str
    #: ``None``: the default class has no CSI snapshots.
    snapshot_class: str | None
    cache_storage_class: str
    cache_capacity: str
    uid: int
    gid: int
    kopia_compression: str
    kopia_parallelism: int
    secret_store_kind: str
    secret_store_name: str
    kopia_secret_key: str
    r2_secret_key: str
    #: The offsite object store (``None``: no restic copy to R2).
    r2: ObjectStoreSpec | None
    maintenance_namespace: str
    maintenance_schedule: Schedule
    flux_namespace: str
    #: The sources' copyMethod for classes with CSI snapshots.
    copy_method: str = "Snapshot"


@dataclass(frozen=True)
class VolsyncApp:
    """One app's VolSync values: what its Flux Kustomization substitutes into the component."""

    claim: str
    capacity: str
    access_mode: str
    cache_capacity: str
    storage_class: str
    #: ``None``: the class has no CSI snapshots (the bootstrap restores directly into the
    #: claim instead of through the volume populator, which needs a VolumeSnapshot).
    snapshot_class: str | None
    uid: int
    gid: int
    #: The R2 schedule (``None``: no copy to R2, for lack of a store or because the service
    #: is kept out of the offsite copies).
    r2_schedule: Schedule | None
    #: The app's own schedule as the VolSync controller runs it.
    schedule: Schedule
    #: The sources' ``copyMethod``: Snapshot, Clone or Direct.
    copy_method: str = "Snapshot"
    #: Kopia's ``retain`` counts (hourly, daily, weekly, monthly, yearly).
    retain: Mapping[str, int] = field(default_factory=dict)
    #: restic's ``retain`` counts on R2 (``None`` without R2).
    r2_retain: Mapping[str, int] | None = None
    #: Whether the catalog set the counts (``volsync.retain`` / ``r2_retain``) rather than
    #: the service's retention.
    retain_set: bool = False
    r2_retain_set: bool = False


@dataclass(frozen=True)
class KopiurApp(VolsyncApp):
    """One app's kopiur values: what its Flux Kustomization substitutes into the component.
    Its schedules are run by kopiur (``runtime="kopiur"``, in the catalog's zone)."""

    #: Blob-level verification of its snapshots (``verification.quick``).
    quick_verify: Schedule | None = None
    #: The scratch restore (``verification.deep``): its restore drill (``None``: no drill).
    deep_verify: Schedule | None = None
    #: A verification passes with at least this many files (``successExpr``).
    min_files: int = 1


@dataclass(frozen=True)
class KopiurSettings:
    """Defaults of the kopiur component and its repositories (``settings.kopiur``, with the
    storage defaults of ``settings.volsync``)."""

    repository: str
    nfs_server: str
    nfs_path: str
    r2_repository: str
    #: The offsite object store (``None``: no offsite repository).
    r2: ObjectStoreSpec | None
    namespace: str
    secret_store_kind: str
    secret_store_name: str
    secret_key: str
    r2_secret_key: str
    compression: str
    cache_mode: str
    cache_storage_class: str
    cache_capacity: str
    storage_class: str
    #: ``None``: the default class has no CSI snapshots.
    snapshot_class: str | None
    copy_method: str
    uid: int
    gid: int
    verify_files_percent: int
    maintenance_full: Schedule
    maintenance_quick: Schedule
    on_missing_snapshot: str
    flux_namespace: str
    #: The zone every kopiur cron is read in (the catalog's; kopiur honours it).
    timezone: str


@dataclass(frozen=True)
class ZfsSnapshots:
    """One TrueNAS periodic snapshot task."""

    pool: str
    naming: str
    schedule: Schedule
    retention: Retention
    #: The dataset the task snapshots (the pool's root dataset unless the catalog says).
    dataset: str = ""
    recursive: bool = True
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class LvmSnapshots:
    schedule: Schedule
    retention: Retention
    min_free_percent: int
    volume_group: str = "pve"
    thin_pool: str = "data"
    kubeconfig: str = "/root/.kube/config"


@dataclass(frozen=True)
class OffsiteSync:
    """How the NAS runs the offsite copy (settings.offsite, resolved)."""

    target: str
    #: The dataset the incremental sync snapshots and diffs, and its mountpoint (the root
    #: every filter path is relative to).
    dataset: str
    mountpoint: str
    snapshot_prefix: str
    max_changes: int
    #: rclone's destination: ``<remote>:<path>``, or an on-the-fly sftp backend
    #: (``:sftp,host=...:<path>``) when the catalog names no remote.
    destination: str
    #: ``script`` (the generated full-sync script pushes ``sync="full"``) or ``cloudsync``
    #: (a TrueNAS Cloud Sync task, reported by the NAS monitor).
    full_sync_by: str
    cloudsync_credential: str | None
    install_dir: str


@dataclass(frozen=True)
class Truenas:
    """The NAS's middleware API, as the NAS monitor calls it."""

    url: str
    #: ``jsonrpc`` (JSON-RPC 2.0 over WebSocket) or ``rest`` (``/api/v2.0``, older systems).
    protocol: str
    api_key_secret: str
    api_key_key: str
    #: The key's user (``auth.login_ex``), or ``None`` (``auth.login_with_api_key``).
    api_key_user: str | None
    verify_tls: bool
    namespace: str
    monitor_schedule: Schedule


@dataclass(frozen=True)
class CnpgCluster:
    """A CloudNativePG cluster's archiving, resolved from its service's ``cnpg`` block."""

    name: str
    namespace: str
    mode: str
    #: Whether homeops_gen generates the whole Cluster; otherwise a Component patches the
    #: user's own Cluster and leaves its spec (instances, storage, image, ...) alone.
    owned: bool
    #: The owned Cluster's spec (``None`` when the Cluster is the user's).
    instances: int | None
    storage_size: str | None
    storage_class: str | None
    image: str | None
    #: ``spec.enableSuperuserAccess: true``: the service's dump job reads
    #: ``<cluster>-superuser``, which CNPG keeps only then.
    superuser_access: bool
    store_name: str
    store: ObjectStoreSpec
    #: ``s3://<bucket>/<namespace>/``: the plugin and barman add ``<serverName>/`` below it,
    #: so same-name clusters of two namespaces never share an archive.
    destination_path: str
    server_name: str
    #: The serverName a cluster restored from this archive must archive under.
    next_server_name: str
    #: Barman's ``<n>d|w|m``.
    retention_policy: str
    wal_compression: str
    wal_max_parallel: int
    data_compression: str
    data_jobs: int
    checksum_when_required: bool
    credentials_secret: str
    credentials_key: str
    recovery_target_time: str | None
    #: The base-backup schedule (the catalog's local intent, run by the operator).
    base_schedule: Schedule

    @property
    def backup_schedule(self) -> str:
        """The ScheduledBackup's six-field cron (seconds first), in the operator's zone."""
        return self.base_schedule.timing.cron

    @property
    def key(self) -> str:
        """``<namespace>-<cluster>``: unique per cluster, in file and rule-group names."""
        return f"{self.namespace}-{self.name}"

    @property
    def folder(self) -> str:
        """The output folder of the cluster's archiving (a Component, or the owned Cluster)."""
        return f"kubernetes/cnpg/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NfsVolumeModule:
    source: str
    claim_output: str
    #: Whether homeops_gen generates the module (``source`` is then relative to a stack).
    generated: bool


@dataclass(frozen=True)
class PushgatewayScrape:
    namespace: str
    service_labels: Mapping[str, str]
    port: str


@dataclass(frozen=True)
class Settings:
    timezone: str
    #: The same zone as a POSIX rule for containers (``TZ``); the name if no rule was found.
    container_timezone: str
    #: The zone VolSync and CNPG read their crons in.
    controller_timezone: str
    nfs_server: str
    nfs_backup_root: str
    pushgateway: str
    #: The ServiceMonitor to generate for the Pushgateway (``None``: the user scrapes it).
    pushgateway_scrape: PushgatewayScrape | None
    object_stores: Mapping[str, ObjectStoreSpec]
    offsite_target: str | None
    offsite_incremental: Schedule | None
    offsite_full_sync: Schedule | None
    offsite_exclude: tuple[OffsiteExcludeSpec, ...]
    nfs_capacity: str
    nfs_volume_module: NfsVolumeModule
    volsync: VolsyncSettings
    kopiur: KopiurSettings
    secret_store_kind: str
    secret_store_name: str
    #: Garage's ``s3_region`` (settings.garage, else the region of the Garage object store).
    garage_s3_region: str | None
    garage_key_prefix: str
    lvm_snapshots: LvmSnapshots | None
    zfs_snapshots: tuple[ZfsSnapshots, ...]
    #: Where the runbooks are published (``None``: alerts carry no runbook link).
    runbook_base_url: str | None
    #: PromQL label matchers of the backup disk, and the free space below which to alert.
    backup_disk_selector: str | None
    backup_disk_min_free_percent: int
    alerts_namespace: str
    alert_rule_labels: Mapping[str, str]
    #: The Alertmanager route tree to generate (``None``: routing is yours).
    alert_routing: AlertRoutingSpec | None = None
    #: The nodes' iSCSI initiator settings.
    iscsi: IscsiSpec = field(default_factory=IscsiSpec)
    #: How the NAS runs the offsite copy (``None``: no settings.offsite).
    offsite: OffsiteSync | None = None
    #: The NAS's API for the NAS monitor (``None``: no monitor).
    truenas: Truenas | None = None
    #: The Pushgateway as the NAS's and the PVE host's scripts reach it.
    host_pushgateway: str = ""
    #: The metrics programs outside homeops_gen produce, by program (built-ins merged with
    #: settings.alerts.external_metrics).
    external_metrics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: A backup smaller than this fraction of the largest of its last ``shrink_runs`` runs
    #: alerts.
    shrink_fraction: float = 0.5
    shrink_runs: int = 7
    #: How the CNPG and VolSync drills run (``settings.drills``).
    drills: DrillsSpec = field(default_factory=DrillsSpec)


@dataclass(frozen=True)
class DrillCheck:
    """One query the drill runs on the restored copy; its single value must be true."""

    #: The database it runs in (empty for SQLite).
    database: str
    query: str
    #: What it shows, for messages and docs ("table users holds at least 1 row").
    what: str


@dataclass(frozen=True)
class Drill:
    """A service's restore drill, resolved from its ``drill`` block and criticality."""

    schedule: Schedule
    checks: tuple[DrillCheck, ...] = ()
    min_keys: int | None = None
    min_files: int | None = None
    #: What it restores: the dump (a Terraform CronJob beside the backup), the CNPG archive
    #: or the VolSync repository (Kubernetes manifests in ``kubernetes/drills/``).
    layer: str = "dump"


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    description: str
    storage: str
    churn: str
    engine: Engine
    criticality: str
    methods: tuple[Method, ...]
    schedule: Schedule
    retention: Retention
    offsite: Offsite
    snapshot_layer: SnapshotLayer | None
    integrity: Schedule | None
    #: NFS directory the application-level backups are written to.
    backup_path: str
    #: Alert when the last success is older than this.
    stale_after: dt.timedelta
    #: The declared recovery point objective, if any.
    rpo: dt.timedelta | None
    #: Its folder below the NAS's NFS root (offsite filter patterns).
    dataset: str
    job: JobSettings
    #: The engine's connection block with its defaults filled in, or ``None``.
    connection: Spec | None
    volsync: VolsyncApp | None
    cnpg: CnpgCluster | None
    #: Index of the service in the catalog's ``services`` list (for error positions).
    index: int
    origins: Mapping[str, Origin] = field(default_factory=dict)
    #: The restore drill of its application-level backup (``None``: no drill).
    drill: Drill | None = None
    #: The declared recovery time objective, if any.
    rto: dt.timedelta | None = None
    #: A backup smaller than this many bytes fails.
    min_size_bytes: int = 1
    kopiur: KopiurApp | None = None

    def uses(self, method: Method) -> bool:
        return method in self.methods


@dataclass(frozen=True)
class Catalog:
    version: str
    settings: Settings
    #: Sorted by name.
    services: tuple[Service, ...]
    #: Display name of the file the catalog came from (used in messages only).
    source: str = "services.yaml"

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)
