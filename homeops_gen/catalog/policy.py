"""Policy: map the user's spec to the resolved catalog, once.

Storage class, churn and engine decide the protection methods, the cadence, the retention,
the snapshot layer and offsite membership unless the service says otherwise. Cross-field
rules are checked here as well; every finding is collected (nothing stops at the first) as a
``(location, message)`` pair that the loader maps to ``file:line:col``.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TypeVar, cast

from homeops_gen.catalog.model import (
    Catalog,
    CnpgCluster,
    Drill,
    DrillCheck,
    JobSettings,
    KopiurApp,
    KopiurSettings,
    LvmSnapshots,
    NfsVolumeModule,
    Offsite,
    OffsiteSync,
    Origin,
    PushgatewayScrape,
    Retention,
    Service,
    Settings,
    SnapshotLayer,
    Truenas,
    VolsyncApp,
    VolsyncSettings,
    ZfsSnapshots,
    parse_retention,
)
from homeops_gen.catalog.spec import (
    CatalogSpec,
    ChurnDefaultsSpec,
    DrillSpec,
    EngineSpecs,
    JobSpec,
    Method,
    ObjectStoreSpec,
    OffsiteSettingsSpec,
    PostgresqlSpec,
    PvcEngine,
    PvcSpec,
    ResourcesSpec,
    SecretRef,
    SecurityContextSpec,
    ServiceJobSpec,
    ServiceSpec,
    SettingsSpec,
    Spec,
    TolerationSpec,
    VolsyncRetainSpec,
    VolsyncSpec,
)
from homeops_gen.errors import Finding, Location
from homeops_gen.schedule import (
    WEEKDAYS,
    Runtime,
    Schedule,
    alert_threshold,
    format_duration,
    parse_cadence,
    parse_duration,
    posix_tz,
)

__all__ = ["BUILTIN_CHURN_DEFAULTS", "DEFAULT_IMAGES", "check_partial", "resolve_catalog"]

_T = TypeVar("_T")

#: Cadence and retention by churn when ``settings.defaults.churn`` does not say: databases
#: that change all day are dumped daily and kept two weeks, quiet state weekly for a month
#: (the reference homelab's own policy).
BUILTIN_CHURN_DEFAULTS = {
    "low": ChurnDefaultsSpec(cadence="weekly", retention="30d"),
    "medium": ChurnDefaultsSpec(cadence="daily", retention="14d"),
    "high": ChurnDefaultsSpec(cadence="daily", retention="14d"),
}
#: Engines whose state needs an application-consistent dump, not just a volume copy.
STATEFUL_ENGINES = frozenset(
    {"postgresql", "mysql", "sqlite", "etcd", "vault", "redis", "dragonfly", "prometheus"}
)
SNAPSHOT_LAYER_BY_STORAGE: dict[str, SnapshotLayer] = {
    "nfs": "zfs",
    "iscsi": "zfs",
    "proxmox-lvm": "lvm",
}
INTEGRITY_ENGINES = frozenset({"sqlite"})
#: Default image pin and shell per engine. Each shell supports ``set -o pipefail``
#: (Debian's dash does not, so Debian-based images run bash).
DEFAULT_IMAGES: dict[str, tuple[str, str]] = {
    "postgresql": ("docker.io/library/postgres:17.2", "/bin/bash"),
    "mysql": ("docker.io/library/mariadb:11.4.4", "/bin/bash"),
    "sqlite": ("docker.io/keinos/sqlite3:3.47.2", "/bin/sh"),
    # The script only moves the snapshot the tools image's etcdctl took (see EtcdSpec).
    "etcd": ("docker.io/library/alpine:3.21.0", "/bin/sh"),
    "vault": ("docker.io/hashicorp/vault:1.18.3", "/bin/sh"),
    "redis": ("docker.io/library/redis:7.4.2-alpine", "/bin/sh"),
    "dragonfly": ("docker.io/library/redis:7.4.2-alpine", "/bin/sh"),
    "prometheus": ("docker.io/library/alpine:3.21.0", "/bin/sh"),
    "files": ("docker.io/library/alpine:3.21.0", "/bin/sh"),
}
BUILTIN_JOB = JobSpec(
    concurrency_policy="Forbid",
    successful_jobs_history_limit=3,
    failed_jobs_history_limit=3,
    backoff_limit=1,
    resources=ResourcesSpec(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "1Gi"}),
)


@dataclass
class _Resolver:
    settings: SettingsSpec
    problems: list[Finding] = field(default_factory=list)

    def report(self, loc: Location, message: str) -> None:
        self.problems.append(Finding(loc, message))

    def cadence(
        self, text: str, name: str, loc: Location, runtime: Runtime = "cronjob"
    ) -> Schedule | None:
        """The schedule of a cadence as ``runtime`` runs it, or None (a finding at ``loc``)."""
        defaults = self.settings.defaults
        try:
            schedule = parse_cadence(
                text,
                name=name,
                window_start=defaults.window_start_hour,
                window_hours=defaults.window_hours,
                weekly_day=WEEKDAYS.index(defaults.weekly_day),
                zone=self.zone,
                runtime=runtime,
                controller_zone=self.controller_zone,
            )
        except ValueError as exc:
            self.report(loc, str(exc))
            return None
        return self._runnable(schedule, loc)

    def runs_as(self, schedule: Schedule, runtime: Runtime, loc: Location) -> Schedule | None:
        """The same schedule run by another runtime, or None (a finding at ``loc``)."""
        moved = dataclasses.replace(schedule, runtime=runtime, controller_zone=self.controller_zone)
        return self._runnable(moved, loc)

    def _runnable(self, schedule: Schedule, loc: Location) -> Schedule | None:
        """``schedule``, unless it never fires or its runtime cannot say it (a finding)."""
        try:
            schedule.max_gap()
        except ValueError as exc:
            self.report(loc, str(exc))
            return None
        return schedule

    @property
    def zone(self) -> str:
        """The catalog's zone, or UTC while it is wrong (reported once, by the settings)."""
        return self.settings.timezone if _zone_problem(self.settings.timezone) is None else _UTC

    @property
    def controller_zone(self) -> str:
        zone = self.settings.controller_timezone
        return zone if _zone_problem(zone) is None else _UTC

    def churn_default(self, churn: str) -> tuple[ChurnDefaultsSpec, Origin]:
        configured = self.settings.defaults.churn.get(churn)  # type: ignore[call-overload]
        if configured is not None:
            loc: Location = ("settings", "defaults", "churn", churn)
            return configured, Origin("settings", f"settings.defaults.churn.{churn}", loc)
        return BUILTIN_CHURN_DEFAULTS[churn], Origin(
            "default", f"built-in default for {churn} churn"
        )


_UTC = "Etc/UTC"


@lru_cache(maxsize=64)
def _zone_problem(name: str) -> str | None:
    """Why ``name`` is not a zone the runtimes can read, or None."""
    if name in ("Local", "localtime", "Factory") or name.startswith(("posix/", "right/")):
        return f"{name!r} is not a zone name; use an IANA name such as Europe/Berlin or Etc/UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown IANA time zone {name!r}"
    return None


def resolve_catalog(
    spec: CatalogSpec, source: str = "services.yaml"
) -> tuple[Catalog | None, list[Finding]]:
    """Resolve every default and policy rule; return the catalog, or ``None`` and the findings."""
    resolver = _Resolver(spec.settings)
    settings, services = _resolve(resolver, list(enumerate(spec.services)))
    if resolver.problems or settings is None:
        return None, resolver.problems
    catalog = Catalog(
        version=spec.version,
        settings=settings,
        services=tuple(sorted(services, key=lambda s: s.name)),
        source=source,
    )
    return catalog, []


def check_partial(settings: SettingsSpec, services: list[tuple[int, ServiceSpec]]) -> list[Finding]:
    """Policy findings for the parts of a catalog that passed schema validation.

    Used when other parts failed it, so that one file's problems are reported all at once.
    """
    resolver = _Resolver(settings)
    _resolve(resolver, services)
    return resolver.problems


def _resolve(
    resolver: _Resolver, indexed: list[tuple[int, ServiceSpec]]
) -> tuple[Settings | None, list[Service]]:
    settings = _resolve_settings(resolver, resolver.settings)
    services = [
        service
        for index, service_spec in indexed
        if (service := _resolve_service(resolver, index, service_spec)) is not None
    ]
    _check_unique(resolver, indexed, services)
    _check_cnpg_clusters(resolver, indexed)
    return settings, services


def _resolve_settings(resolver: _Resolver, spec: SettingsSpec) -> Settings | None:
    for key in ("timezone", "controller_timezone"):
        if (problem := _zone_problem(getattr(spec, key))) is not None:
            resolver.report(("settings", key), problem)
    for churn, churn_spec in sorted(spec.defaults.churn.items()):
        loc: Location = ("settings", "defaults", "churn", churn)
        resolver.cadence(churn_spec.cadence, f"defaults-{churn}", (*loc, "cadence"))
    offsite = spec.offsite
    incremental = full_sync = None
    if offsite is not None:
        incremental = resolver.cadence(
            offsite.incremental,
            "offsite-incremental",
            ("settings", "offsite", "incremental"),
            "cron",
        )
        full_sync = resolver.cadence(
            offsite.full_sync, "offsite-full-sync", ("settings", "offsite", "full_sync"), "cron"
        )
    _check_object_stores(resolver, spec)
    module = spec.terraform.nfs_volume_module
    volsync = _resolve_volsync_settings(resolver, spec)
    if volsync is None:
        return None
    kopiur = _resolve_kopiur_settings(resolver, spec, volsync)
    if kopiur is None:
        return None
    garage_stores = [st for _, st in sorted(spec.object_stores.items()) if st.provider == "garage"]
    lvm = _resolve_lvm(resolver, spec)
    truenas = _resolve_truenas(resolver, spec)
    return Settings(
        offsite=_resolve_offsite_sync(resolver, spec, offsite, truenas) if offsite else None,
        truenas=truenas,
        host_pushgateway=spec.host_pushgateway or spec.pushgateway,
        external_metrics=_external_metrics(spec),
        shrink_fraction=spec.backups.shrink_fraction,
        shrink_runs=spec.backups.shrink_runs,
        drills=spec.drills,
        lvm_snapshots=lvm,
        zfs_snapshots=_resolve_zfs(resolver, spec),
        runbook_base_url=(spec.alerts.runbook_base_url or "").rstrip("/") or None,
        backup_disk_selector=spec.backup_disk.selector if spec.backup_disk else None,
        backup_disk_min_free_percent=spec.backup_disk.min_free_percent if spec.backup_disk else 10,
        alerts_namespace=spec.alerts.namespace,
        pushgateway_scrape=_pushgateway_scrape(spec),
        alert_rule_labels=dict(sorted(spec.alerts.rule_labels.items())),
        alert_routing=spec.alerts.routing,
        iscsi=spec.iscsi,
        volsync=volsync,
        kopiur=kopiur,
        secret_store_kind=spec.secret_store.kind,
        secret_store_name=spec.secret_store.name,
        garage_s3_region=(
            spec.garage.s3_region
            if spec.garage
            else garage_stores[0].region
            if garage_stores
            else None
        ),
        garage_key_prefix=spec.garage.key_prefix if spec.garage else "homeops",
        nfs_capacity=spec.nfs.capacity,
        nfs_volume_module=(
            NfsVolumeModule(module.source, module.claim_output, generated=False)
            if module is not None
            else NfsVolumeModule("../../modules/nfs-backup-volume", "claim_name", generated=True)
        ),
        timezone=spec.timezone,
        controller_timezone=resolver.controller_zone,
        container_timezone=posix_tz(spec.timezone) or spec.timezone,
        nfs_server=spec.nfs.server,
        nfs_backup_root=spec.nfs.backup_root,
        pushgateway=spec.pushgateway,
        object_stores=dict(sorted(spec.object_stores.items())),
        offsite_target=offsite.target if offsite else None,
        offsite_incremental=incremental,
        offsite_full_sync=full_sync,
        offsite_exclude=tuple(sorted(offsite.exclude, key=lambda e: e.pattern)) if offsite else (),
    )


#: The cron form VolSync's CRDs accept for ``trigger.schedule`` (numbers, no names).
VOLSYNC_CRON = re.compile(
    r"^(@(annually|yearly|monthly|weekly|daily|hourly))|"
    r"((((\d+,)*\d+|(\d+(\/|-)\d+)|\*(\/\d+)?)\s?){5})$"
)


def _resolve_lvm(resolver: _Resolver, spec: SettingsSpec) -> LvmSnapshots | None:
    lvm = spec.snapshots.lvm
    if lvm is None:
        return None
    loc: Location = ("settings", "snapshots", "lvm")
    schedule = resolver.cadence(lvm.cadence, "lvm-snapshots", (*loc, "cadence"), "systemd")
    try:
        retention = parse_retention(lvm.retention)
    except ValueError as exc:
        resolver.report((*loc, "retention"), str(exc))
        return None
    if schedule is None:
        return None
    return LvmSnapshots(
        schedule,
        retention,
        lvm.min_free_percent,
        lvm.volume_group,
        lvm.thin_pool,
        lvm.kubeconfig,
    )


def _external_metrics(spec: SettingsSpec) -> dict[str, tuple[str, ...]]:
    from homeops_gen.metrics import external_metrics  # only when a catalog is resolved

    return external_metrics(spec.alerts.external_metrics)


def _resolve_truenas(resolver: _Resolver, spec: SettingsSpec) -> Truenas | None:
    truenas = spec.truenas
    if truenas is None:
        return None
    loc: Location = ("settings", "truenas")
    url = urllib.parse.urlsplit(truenas.api)
    protocol = "jsonrpc" if url.scheme in ("ws", "wss") else "rest"
    path = url.path.rstrip("/")
    if protocol == "jsonrpc" and not path.startswith("/api"):
        resolver.report(
            (*loc, "api"),
            f"{truenas.api!r} is not the JSON-RPC endpoint: TrueNAS serves it at "
            "wss://<nas>/api/current (or /api/<version>)",
        )
    if url.scheme == "ws":
        resolver.report(
            (*loc, "api"),
            f"{truenas.api!r} sends the API key without TLS, and TrueNAS (25.04 and later) "
            "revokes a key it receives that way: use wss:// (with verify_tls: false for a "
            "self-signed certificate)",
        )
    if protocol == "rest" and path != "/api/v2.0":
        resolver.report(
            (*loc, "api"),
            f"{truenas.api!r} is not the REST API: it is https://<nas>/api/v2.0 (TrueNAS "
            "25.04 and later: wss://<nas>/api/current)",
        )
    schedule = resolver.cadence(truenas.monitor_cadence, "nas-monitor", (*loc, "monitor_cadence"))
    if schedule is None:
        return None
    return Truenas(
        url=truenas.api,
        protocol=protocol,
        api_key_secret=truenas.api_key.name,
        api_key_key=truenas.api_key.key,
        api_key_user=truenas.api_key_user,
        verify_tls=truenas.verify_tls,
        namespace=truenas.namespace,
        monitor_schedule=schedule,
    )


def _resolve_offsite_sync(
    resolver: _Resolver,
    spec: SettingsSpec,
    offsite: OffsiteSettingsSpec,
    truenas: Truenas | None,
) -> OffsiteSync | None:
    loc: Location = ("settings", "offsite")
    dataset = offsite.dataset
    root = spec.nfs.backup_root.rstrip("/")
    if dataset is None:
        if re.fullmatch(r"/mnt/[A-Za-z][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*", root):
            dataset = root.removeprefix("/mnt/")
        else:
            resolver.report(
                (*loc, "dataset"),
                f"settings.nfs.backup_root {root!r} is not below /mnt, so the dataset to "
                "snapshot cannot be derived: name it (e.g. dataset: main)",
            )
            return None
    target = urllib.parse.urlsplit(offsite.target)
    if offsite.rclone_remote is not None:
        destination = f"{offsite.rclone_remote}:{target.path or '/'}"
    elif target.scheme == "sftp":
        options = [f"host={target.hostname}"]
        if target.port is not None:
            options.append(f"port={target.port}")
        options += [f"user={offsite.sftp_user}", f"key_file={offsite.sftp_key_file}"]
        destination = f":sftp,{','.join(options)}:{target.path or '/'}"
    else:
        resolver.report(
            (*loc, "target"),
            f"a {target.scheme} target needs rclone_remote, a remote of the NAS's rclone.conf "
            "to copy to (only sftp targets get an on-the-fly backend)",
        )
        return None
    if offsite.full_sync_by == "cloudsync":
        if truenas is None:
            resolver.report(
                (*loc, "full_sync_by"),
                "a Cloud Sync task is reported by the NAS monitor, which needs "
                "settings.truenas (its API URL and key)",
            )
        if offsite.cloudsync_credential is None:
            resolver.report(
                (*loc, "cloudsync_credential"),
                "full_sync_by: cloudsync needs the TrueNAS cloud credential the task "
                "copies with (cloudsync_credential)",
            )
    return OffsiteSync(
        target=offsite.target,
        dataset=dataset,
        mountpoint=offsite.mountpoint or f"/mnt/{dataset}",
        snapshot_prefix=offsite.snapshot_prefix,
        max_changes=offsite.max_changes,
        destination=destination,
        full_sync_by=offsite.full_sync_by,
        cloudsync_credential=offsite.cloudsync_credential,
        install_dir=offsite.install_dir,
    )


def _resolve_zfs(resolver: _Resolver, spec: SettingsSpec) -> tuple[ZfsSnapshots, ...]:
    tasks = []
    for index, task in enumerate(spec.snapshots.zfs):
        loc: Location = ("settings", "snapshots", "zfs", index)
        schedule = resolver.cadence(
            task.cadence, f"zfs-{task.pool}-{index}", (*loc, "cadence"), "cron"
        )
        try:
            retention = parse_retention(task.retention)
        except ValueError as exc:
            resolver.report((*loc, "retention"), str(exc))
            continue
        dataset = task.dataset or task.pool
        if dataset.split("/")[0] != task.pool:
            resolver.report((*loc, "dataset"), f"{dataset!r} is not in pool {task.pool!r}")
        for n, child in enumerate(task.exclude):
            if not child.startswith(dataset + "/"):
                resolver.report(
                    (*loc, "exclude", n),
                    f"{child!r} is not a child dataset of {dataset!r}: a task excludes "
                    "only datasets below its own",
                )
        if task.exclude and not task.recursive:
            resolver.report(
                (*loc, "exclude"), "only a recursive task has child datasets to exclude"
            )
        if schedule is not None:
            tasks.append(
                ZfsSnapshots(
                    task.pool,
                    task.naming,
                    schedule,
                    retention,
                    dataset,
                    task.recursive,
                    task.exclude,
                )
            )
    return tuple(tasks)


def _resolve_stale_after(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    schedule: Schedule,
    job: JobSettings,
    snapshots: Schedule | None = None,
) -> tuple[timedelta, Origin]:
    """When the last good backup is stale. ``snapshots``: the kopiur schedule of an app whose
    only backup kopiur takes (its alerts watch kopiur's runs, not a job's)."""
    if snapshots is not None:
        schedule = snapshots
        if spec.stale_after is None:
            return alert_threshold(snapshots), Origin(
                "policy",
                "the largest real gap between kopiur's runs (DST included) plus the time a "
                "snapshot may take",
            )
    if spec.stale_after is None:
        return alert_threshold(schedule, job.run_allowance(schedule)), Origin(
            "policy",
            "the largest real gap between runs (DST included) plus the job's starting and "
            "active deadlines",
        )
    threshold = parse_duration(spec.stale_after)
    gap = schedule.max_gap()
    if threshold < gap:
        resolver.report(
            (*loc, "stale_after"),
            f"stale_after {spec.stale_after} is shorter than the largest real gap between runs "
            f"of this schedule ({format_duration(gap)}{_gap_date(schedule)}; cron "
            f"{schedule.description} in {schedule.zone}): the alert would fire between two "
            "healthy runs",
        )
    return threshold, Origin("catalog", "stale_after", (*loc, "stale_after"))


def _gap_date(schedule: Schedule) -> str:
    """``, from the run of 2025-03-29 01:24 GMT``: where a DST transition makes the largest
    gap (empty when the calendar's own gap is the largest)."""
    start = schedule.timing.gap.start
    if start is None:
        return ""
    local = datetime.fromtimestamp(start, zoneinfo.ZoneInfo(schedule.zone))
    return f", from the run of {local:%Y-%m-%d %H:%M %Z}"


def _pushgateway_scrape(spec: SettingsSpec) -> PushgatewayScrape | None:
    scrape = spec.alerts.pushgateway_scrape
    if not scrape.servicemonitor:
        return None
    host = (urllib.parse.urlsplit(spec.pushgateway).hostname or "").split(".")
    from_url = host[1] if len(host) >= 3 and host[2] == "svc" else None
    return PushgatewayScrape(
        namespace=scrape.namespace or from_url or spec.alerts.namespace,
        service_labels=dict(sorted(scrape.service_labels.items())),
        port=scrape.port,
    )


def _r2_store(spec: SettingsSpec) -> ObjectStoreSpec | None:
    """The object store VolSync copies offsite to: the named one, else the first R2 store."""
    name = spec.volsync.r2_object_store
    if name is not None:
        return spec.object_stores.get(name)
    stores = sorted(spec.object_stores.items())
    return next((store for _, store in stores if store.provider == "r2"), None)


def _resolve_volsync_settings(resolver: _Resolver, spec: SettingsSpec) -> VolsyncSettings | None:
    v = spec.volsync
    loc: Location = ("settings", "volsync")
    r2 = _r2_store(spec)
    if r2 is None and v.r2_object_store is not None:
        resolver.report(
            (*loc, "r2_object_store"),
            f"object store '{v.r2_object_store}' is not defined in settings.object_stores",
        )
    if r2 is not None and r2.bucket is None:
        resolver.report(
            ("settings", "object_stores"), "the R2 object store used by VolSync needs a bucket"
        )
    maintenance = resolver.cadence(
        v.maintenance_cadence, "kopia-maintenance", (*loc, "maintenance_cadence"), "volsync"
    )
    resolver.cadence(v.r2_cadence, "volsync-r2", (*loc, "r2_cadence"), "volsync")
    for storage, entry in sorted(v.classes.items()):
        if entry.snapshot_class is not None and entry.storage_class in NO_CSI_SNAPSHOTS:
            resolver.report(
                (*loc, "classes", storage, "snapshot_class"),
                f"StorageClass '{entry.storage_class}' has no CSI snapshots "
                f"({NO_CSI_SNAPSHOTS[entry.storage_class]}): leave snapshot_class out",
            )
    if maintenance is None:
        return None
    default_class = v.classes.get("local-hostpath")
    storage_class = default_class.storage_class if default_class else "local-hostpath"
    snapshot_class = default_class.snapshot_class if default_class else "local-hostpath-snapshot"
    if storage_class in NO_CSI_SNAPSHOTS:
        snapshot_class = None
    # The component's own default: what an app of the default class gets.
    copy_method = v.copy_method
    if (copy_method == "Snapshot" and snapshot_class is None) or storage_class in NO_CSI_SNAPSHOTS:
        copy_method = "Direct"
    return VolsyncSettings(
        nfs_server=spec.nfs.server,
        kopia_nfs_path=v.kopia_nfs_path or f"{spec.nfs.backup_root.rstrip('/')}/volsync-kopia",
        storage_class=storage_class,
        snapshot_class=snapshot_class,
        cache_storage_class=v.cache_storage_class,
        cache_capacity=v.cache_capacity,
        uid=v.uid,
        gid=v.gid,
        kopia_compression=v.kopia_compression,
        kopia_parallelism=v.kopia_parallelism,
        secret_store_kind=spec.secret_store.kind,
        secret_store_name=spec.secret_store.name,
        kopia_secret_key=v.kopia_secret_key,
        r2_secret_key=v.r2_secret_key,
        r2=r2,
        maintenance_namespace=v.maintenance_namespace,
        maintenance_schedule=maintenance,
        flux_namespace=v.flux_namespace,
        copy_method=copy_method,
    )


def _resolve_kopiur_settings(
    resolver: _Resolver, spec: SettingsSpec, volsync: VolsyncSettings
) -> KopiurSettings | None:
    k = spec.kopiur
    loc: Location = ("settings", "kopiur")
    full = resolver.cadence(
        k.maintenance_cadence, "kopiur-maintenance", (*loc, "maintenance_cadence"), "kopiur"
    )
    quick = resolver.cadence(
        k.maintenance_quick_cadence,
        "kopiur-maintenance-quick",
        (*loc, "maintenance_quick_cadence"),
        "kopiur",
    )
    resolver.cadence(
        k.quick_verify_cadence, "kopiur-verify", (*loc, "quick_verify_cadence"), "kopiur"
    )
    resolver.cadence(k.r2_cadence, "kopiur-r2", (*loc, "r2_cadence"), "kopiur")
    if k.repository == k.r2_repository:
        resolver.report(
            (*loc, "r2_repository"),
            f"the offsite ClusterRepository needs a name of its own, not '{k.repository}'",
        )
    if full is None or quick is None:
        return None
    return KopiurSettings(
        repository=k.repository,
        nfs_server=spec.nfs.server,
        nfs_path=k.nfs_path or f"{spec.nfs.backup_root.rstrip('/')}/kopiur",
        r2_repository=k.r2_repository,
        r2=volsync.r2,
        namespace=k.namespace,
        secret_store_kind=spec.secret_store.kind,
        secret_store_name=spec.secret_store.name,
        secret_key=k.secret_key,
        r2_secret_key=k.r2_secret_key,
        compression=k.compression,
        cache_mode=k.cache_mode,
        cache_storage_class=volsync.cache_storage_class,
        cache_capacity=volsync.cache_capacity,
        storage_class=volsync.storage_class,
        snapshot_class=volsync.snapshot_class,
        copy_method=volsync.copy_method,
        uid=volsync.uid,
        gid=volsync.gid,
        verify_files_percent=k.verify_files_percent,
        maintenance_full=full,
        maintenance_quick=quick,
        on_missing_snapshot=k.on_missing_snapshot,
        flux_namespace=volsync.flux_namespace,
        timezone=resolver.zone,
    )


#: Kubernetes StorageClasses known to have neither CSI snapshots nor CSI clones (their
#: provisioners are not CSI drivers): only copyMethod Direct works on them.
NO_CSI_SNAPSHOTS = {
    "local-path": "rancher's local-path-provisioner is not a CSI driver",
    "openebs-hostpath": "OpenEBS's hostpath LocalPV provisioner is not a CSI driver",
}
#: The periods of VolSync's ``retain``, as both movers take them.
RETAIN_PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")


def volsync_retain(retention: Retention, schedule: Schedule | None) -> dict[str, int]:
    """Snapshot counts per period that cover the catalog's retention (hourly ones only for a
    schedule that runs more than once a day)."""
    days = retention.copies if retention.copies is not None else retention.period.days  # type: ignore[union-attr]
    hourly = 24 if schedule is not None and schedule.max_gap().total_seconds() < 86400 else 0
    return {
        "hourly": hourly,
        "daily": days,
        "weekly": days // 7,
        "monthly": days // 30,
        "yearly": days // 365,
    }


def _retain(
    resolver: _Resolver,
    where: Location,
    given: VolsyncRetainSpec | None,
    derived: dict[str, int],
) -> dict[str, int]:
    """The derived counts with the catalog's own over them; keeping nothing is an error."""
    counts = dict(derived)
    if given is not None:
        counts |= {k: n for k, n in given.model_dump().items() if n is not None}
        if not any(counts.values()):
            resolver.report(where, "keeps no snapshot at all: give at least one count above 0")
    return {period: counts[period] for period in RETAIN_PERIODS}


def _copy_method(
    resolver: _Resolver, where: Location, block: VolsyncSpec, storage_class: str, snapshots: bool
) -> str:
    """The sources' copyMethod: the block's, else settings.volsync's where the class can
    take it, else Direct; a method the class cannot take is an error."""
    method = block.copy_method
    no_csi = NO_CSI_SNAPSHOTS.get(storage_class)
    possible = {"Direct"} | (set() if no_csi else {"Clone"})
    if snapshots:
        possible.add("Snapshot")
    if method is None:
        fallback = resolver.settings.volsync.copy_method
        return fallback if fallback in possible else "Direct"
    if method not in possible:
        why = no_csi or "settings.volsync.classes gives it no snapshot_class"
        resolver.report(
            where,
            f"copy_method {method} needs CSI {'snapshots' if method == 'Snapshot' else 'clones'}"
            f", which StorageClass '{storage_class}' has not ({why}); use "
            f"{' or '.join(sorted(possible, reverse=True))}",
        )
    return method


def _resolve_volsync(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    schedule: Schedule | None,
    retention: Retention | None,
    engine: PvcEngine = "volsync",
) -> VolsyncApp | None:
    """One app's VolSync (or kopiur) values, from its PVC block and settings.volsync."""
    found = pvc_block(spec, resolver.settings.pvc_engine)
    if found is None or found[0] != engine:
        return None
    _, key, v = found
    defaults = resolver.settings.volsync
    where: Location = (*loc, "cadence")
    own = resolver.runs_as(schedule, engine, where) if schedule is not None else None
    if own is None:
        return None
    if engine == "volsync" and not VOLSYNC_CRON.match(own.timing.cron):
        resolver.report(
            where,
            f"VolSync cannot run cron {own.timing.cron!r}: its CRD takes numbers, single "
            "ranges, lists and steps only",
        )
    block: Location = (*loc, key)
    classes = defaults.classes.get(spec.storage)
    storage_class = classes.storage_class if classes else spec.storage
    snapshot_class = classes.snapshot_class if classes else f"{spec.storage}-snapshot"
    if storage_class in NO_CSI_SNAPSHOTS:
        snapshot_class = None
    copy_method = _copy_method(
        resolver, (*block, "copy_method"), v, storage_class, snapshot_class is not None
    )
    offsite, _ = _resolve_offsite(spec, loc)
    r2_schedule = None
    if _r2_store(resolver.settings) is not None and offsite.included:
        r2_cadence = (
            (defaults.r2_cadence, ("settings", "volsync", "r2_cadence"))
            if engine == "volsync"
            else (resolver.settings.kopiur.r2_cadence, ("settings", "kopiur", "r2_cadence"))
        )
        r2_schedule = resolver.cadence(r2_cadence[0], f"{spec.name}-r2", r2_cadence[1], engine)
    elif v.r2_retain is not None:
        why = (
            "the service is kept out of the offsite copies"
            if not offsite.included
            else "settings.object_stores has no R2 store"
        )
        resolver.report((*block, "r2_retain"), f"there is no copy to R2: {why}")
    if retention is None:
        return None
    kopia = _retain(resolver, (*block, "retain"), v.retain, volsync_retain(retention, own))
    r2 = None
    if r2_schedule is not None:
        derived = volsync_retain(retention, r2_schedule)
        r2 = _retain(resolver, (*block, "r2_retain"), v.r2_retain, derived)
    kind = VolsyncApp if engine == "volsync" else KopiurApp
    return kind(
        claim=v.claim or spec.name,
        capacity=v.capacity,
        access_mode=v.access_mode,
        cache_capacity=v.cache_capacity or defaults.cache_capacity,
        storage_class=storage_class,
        snapshot_class=snapshot_class,
        uid=defaults.uid if v.uid is None else v.uid,
        gid=defaults.gid if v.gid is None else v.gid,
        r2_schedule=r2_schedule,
        schedule=own,
        copy_method=copy_method,
        retain=kopia,
        r2_retain=r2,
        retain_set=v.retain is not None,
        r2_retain_set=v.r2_retain is not None and r2 is not None,
    )


def _resolve_kopiur(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    schedule: Schedule | None,
    retention: Retention | None,
    drill: Drill | None,
) -> KopiurApp | None:
    """One app's kopiur values: its PVC block's as for VolSync, run by kopiur, with the
    quick verification of settings.kopiur and the deep one at its restore drill's cadence."""
    app = _resolve_volsync(resolver, loc, spec, schedule, retention, "kopiur")
    if app is None:
        return None
    k = resolver.settings.kopiur
    quick = resolver.cadence(
        k.quick_verify_cadence,
        f"{spec.name}-verify",
        ("settings", "kopiur", "quick_verify_cadence"),
        "kopiur",
    )
    deep = None
    if drill is not None and drill.layer == "kopiur":
        deep = resolver.runs_as(drill.schedule, "kopiur", (*loc, "drill"))
    min_files = drill.min_files if drill is not None and drill.min_files is not None else 1
    return dataclasses.replace(
        cast(KopiurApp, app), quick_verify=quick, deep_verify=deep, min_files=max(1, min_files)
    )


CNPG_PLUGIN = "barman-cloud.cloudnative-pg.io"
#: The spec of a Cluster homeops_gen owns (``cnpg.owned: true``) when the catalog does not say.
CNPG_DEFAULT_INSTANCES = 3
CNPG_DEFAULT_STORAGE_SIZE = "10Gi"
#: CNPG's PostgreSQL 17 operand image, the major of the dump job's default client.
CNPG_DEFAULT_IMAGE = "ghcr.io/cloudnative-pg/postgresql:17.2"
#: ``cnpg`` fields that describe an owned Cluster's spec.
CNPG_OWNED_FIELDS = ("instances", "storage_size", "storage_class", "image")
#: CNPG's superuser: the user of ``<cluster>-superuser``, the only one it creates.
CNPG_SUPERUSER = "postgres"
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not a valid S3 bucket name (beyond the character rules), or None."""
    if ".." in bucket:
        return "two adjacent periods"
    if _IP_ADDRESS.match(bucket):
        return "formatted as an IP address"
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return "a reserved prefix or suffix"
    if ".-" in bucket or "-." in bucket:
        return "a period next to a hyphen"
    return None


def barman_retention(retention: Retention) -> str | None:
    """Barman's ``<n>d|w|m`` for a retention, or None when it has no such form."""
    if retention.period is None:
        return None
    hours = int(retention.period.total_seconds()) // 3600
    if hours % 24:
        return None
    days = hours // 24
    return f"{days // 7}w" if days % 7 == 0 and days >= 7 else f"{days}d"


def _check_object_stores(resolver: _Resolver, spec: SettingsSpec) -> None:
    for name, store in sorted(spec.object_stores.items()):
        loc: Location = ("settings", "object_stores", name)
        if store.bucket is not None and (problem := bucket_problem(store.bucket)) is not None:
            resolver.report(
                (*loc, "bucket"), f"{store.bucket!r} is not a valid S3 bucket name: {problem}"
            )
        garage = spec.garage
        if store.provider == "garage" and garage is not None and store.region != garage.s3_region:
            resolver.report(
                (*loc, "region"),
                f"region {store.region!r} differs from Garage's s3_region {garage.s3_region!r} "
                "(settings.garage): Garage answers 400 to every request signed for another "
                "region; say the region once",
            )


def _resolve_cnpg(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    schedule: Schedule | None,
    retention: Retention | None,
    superuser_access: bool,
) -> CnpgCluster | None:
    c = spec.cnpg
    if c is None or spec.engine != "postgresql":
        return None
    where: Location = (*loc, "cnpg")
    if not c.owned:
        for unused in CNPG_OWNED_FIELDS:
            if getattr(c, unused) is not None:
                resolver.report(
                    (*where, unused),
                    f"'{unused}' applies only to a Cluster homeops_gen owns (cnpg.owned: true); "
                    "the generated component patches archiving into your own Cluster and "
                    "keeps its spec: set it there",
                )
    store = resolver.settings.object_stores.get(c.object_store)
    if store is None:
        resolver.report(
            (*where, "object_store"),
            f"object store '{c.object_store}' is not defined in settings.object_stores",
        )
        return None
    if store.bucket is None:
        resolver.report(
            ("settings", "object_stores", c.object_store),
            f"object store '{c.object_store}' needs a bucket for CNPG archives",
        )
        return None
    policy = barman_retention(retention) if retention is not None else None
    if retention is not None and policy is None:
        resolver.report(
            (*loc, "retention"),
            f"retention {retention} cannot be said in barman's <n>d|w|m form "
            "(whole days, weeks or months)",
        )
    if schedule is None or policy is None:
        return None
    # Same cadence, staggered on its own: not at the minute the service's dump job starts.
    cadence = spec.cadence or resolver.churn_default(spec.churn)[0].cadence
    base_backup = resolver.cadence(cadence, f"{spec.name}-cnpg", (*loc, "cadence"), "cnpg")
    if base_backup is None:
        return None
    generation = c.server_generation
    return CnpgCluster(
        name=c.cluster,
        namespace=spec.namespace,
        mode=c.mode,
        owned=c.owned,
        instances=(c.instances or CNPG_DEFAULT_INSTANCES) if c.owned else None,
        storage_size=(c.storage_size or CNPG_DEFAULT_STORAGE_SIZE) if c.owned else None,
        storage_class=c.storage_class,
        image=(c.image or CNPG_DEFAULT_IMAGE) if c.owned else None,
        superuser_access=superuser_access,
        store_name=c.object_store,
        store=store,
        destination_path=f"s3://{store.bucket}/{spec.namespace}/",
        server_name=f"{c.cluster}-v{generation}",
        next_server_name=f"{c.cluster}-v{generation + 1}",
        retention_policy=policy,
        base_schedule=base_backup,
        wal_compression=c.wal_compression,
        wal_max_parallel=c.wal_max_parallel,
        data_compression=c.data_compression,
        data_jobs=c.data_jobs,
        checksum_when_required=(
            store.checksum_when_required
            if store.checksum_when_required is not None
            else store.provider == "garage"
        ),
        credentials_secret=f"{c.cluster}-{c.object_store}-s3",
        credentials_key=store.credentials_key or f"{c.object_store}-s3",
        recovery_target_time=c.recovery_target_time,
    )


def _cnpg_dump_credentials(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    methods: tuple[Method, ...],
    connection: Spec | None,
) -> tuple[Spec | None, bool]:
    """The dump job's connection to a CNPG cluster, and whether the superuser must be on.

    CNPG requires a password and keeps ``<cluster>-superuser`` (user ``postgres``) only with
    ``enableSuperuserAccess: true``; ``pg_dumpall`` needs a superuser. Without a declared
    password the dump reads that Secret, and the generated Cluster or patch turns it on.
    """
    c = spec.cnpg
    if (
        c is None
        or "dump" not in methods
        or "cnpg" not in methods
        or not isinstance(connection, PostgresqlSpec)
    ):
        return connection, False
    where: Location = (*loc, "postgresql")
    superuser = f"{c.cluster}-superuser"
    password = connection.password
    if password is None:
        if connection.user != CNPG_SUPERUSER:
            resolver.report(
                (*where, "user"),
                f"the dump of CNPG cluster {c.cluster!r} connects as {connection.user!r}, whose "
                "password CNPG does not know: declare its Secret in postgresql.password, or "
                f"leave the user {CNPG_SUPERUSER!r} (the dump then reads {superuser!r})",
            )
            return connection, False
        default = SecretRef(name=superuser, key="password")
        return connection.model_copy(update={"password": default}), True
    name_loc: Location = (*where, "password", "name")
    if password.name == superuser:
        if connection.user != CNPG_SUPERUSER:
            resolver.report(
                (*where, "user"),
                f"{superuser!r} holds the password of CNPG's superuser {CNPG_SUPERUSER!r}, "
                f"not of {connection.user!r}",
            )
        if password.key != "password":
            resolver.report(
                (*where, "password", "key"),
                f"CNPG keeps the superuser's password under key 'password' of {superuser!r}, "
                f"not {password.key!r}",
            )
        return connection, True
    if password.name == f"{c.cluster}-app":
        resolver.report(
            name_loc,
            f"{password.name!r} is the Secret of the application database's owner "
            "(bootstrap.initdb.owner), not of a superuser, and the dump runs pg_dumpall, "
            f"which needs one: use {{name: {superuser}, key: password}} (the generated "
            "Cluster or patch then sets enableSuperuserAccess: true) or a superuser role's "
            "Secret of your own",
        )
    elif password.name in {f"{c.cluster}-{kind}" for kind in ("ca", "server", "replication")}:
        resolver.report(
            name_loc,
            f"{password.name!r} is a TLS Secret CNPG keeps for the cluster; it holds no "
            f"password: use {{name: {superuser}, key: password}}",
        )
    return connection, False


def _check_cnpg_clusters(resolver: _Resolver, indexed: list[tuple[int, ServiceSpec]]) -> None:
    """One ``cnpg`` block per Cluster, and distinct ``<namespace>-<cluster>`` file names."""
    by_cluster: dict[tuple[str, str], int] = {}
    by_key: dict[str, tuple[str, str]] = {}
    for index, spec in indexed:
        if spec.cnpg is None:
            continue
        cluster = (spec.namespace, spec.cnpg.cluster)
        where: Location = ("services", index, "cnpg", "cluster")
        first = by_cluster.setdefault(cluster, index)
        if first != index:
            other = next(s for i, s in indexed if i == first)
            resolver.report(
                where,
                f"CNPG cluster {'/'.join(cluster)} is already declared by service "
                f"{other.name!r} (services[{first}]); one Cluster has one archive: declare "
                "its cnpg block once",
            )
            continue
        key = "-".join(cluster)
        seen = by_key.setdefault(key, cluster)
        if seen != cluster:
            resolver.report(
                where,
                f"CNPG clusters {'/'.join(seen)} and {'/'.join(cluster)} would share the "
                f"alert files of cnpg-{key}; rename one of them",
            )


#: The service keys of the blocks that describe an app's PVC copy.
PVC_BLOCKS = ("volsync", "kopiur", "pvc")
_ENGINE_TITLES = {"volsync": "VolSync", "kopiur": "kopiur"}


def pvc_block(spec: ServiceSpec, default: PvcEngine) -> tuple[PvcEngine, str, VolsyncSpec] | None:
    """The engine that copies the service's PVC, the key of its block and the block (the
    first of :data:`PVC_BLOCKS` given; more than one is reported by :func:`_check_methods`)."""
    for key in PVC_BLOCKS:
        block = getattr(spec, key)
        if block is None:
            continue
        if isinstance(block, PvcSpec):
            return block.engine or default, key, block
        return cast(PvcEngine, key), key, block
    return None


def _derive_methods(spec: ServiceSpec, default: PvcEngine) -> tuple[tuple[Method, ...], str]:
    found = pvc_block(spec, default)
    if spec.storage == "local-hostpath":
        if spec.cnpg is not None:
            return ("cnpg",), "local-hostpath PostgreSQL managed by CNPG → WAL archiving"
        engine = found[0] if found else default
        return (engine,), f"local-hostpath volumes are copied by {_ENGINE_TITLES[engine]}"
    methods: list[Method] = []
    reasons = []
    if spec.engine in STATEFUL_ENGINES:
        methods.append("dump")
        reasons.append(f"{spec.engine} on {spec.storage} needs an application-level dump")
    if spec.cnpg is not None:
        methods.append("cnpg")
        reasons.append("a cnpg block → WAL archiving")
    if found is not None:
        engine, key, _ = found
        methods.append(engine)
        reasons.append(f"a {key} block → {_ENGINE_TITLES[engine]}")
    if not methods:
        reasons.append(f"{spec.engine} on {spec.storage}: storage snapshots and offsite suffice")
    return tuple(methods), "; ".join(reasons)


def _check_methods(
    resolver: _Resolver, loc: Location, spec: ServiceSpec, methods: tuple[Method, ...]
) -> None:
    if len(set(methods)) != len(methods):
        resolver.report((*loc, "methods"), "a method is listed twice")
    if "cnpg" in methods and (spec.engine != "postgresql" or spec.cnpg is None):
        resolver.report(
            (*loc, "methods"), "method 'cnpg' needs engine 'postgresql' and a cnpg block"
        )
    given = [key for key in PVC_BLOCKS if getattr(spec, key) is not None]
    for key in given[1:]:
        resolver.report(
            (*loc, key),
            f"blocks {' and '.join(repr(k) for k in given)} both describe the PVC copy: keep one",
        )
    found = pvc_block(spec, resolver.settings.pvc_engine)
    for engine in ("volsync", "kopiur"):
        if engine not in methods:
            continue
        if found is None or found[0] != engine:
            other = f" (its {found[1]} block is copied by {found[0]})" if found else ""
            resolver.report(
                (*loc, "methods"),
                f"method '{engine}' needs a {engine} block, or a pvc block with engine "
                f"{engine} (capacity){other}",
            )
        if spec.storage == "local-disk" or spec.engine == "etcd":
            resolver.report(
                (*loc, "methods"),
                f"method '{engine}' needs a PVC; {spec.engine} on {spec.storage} has none",
            )
    if "dump" in methods and spec.engine == "files" and spec.files is None:
        resolver.report((*loc, "methods"), "method 'dump' for engine 'files' needs a files block")


def _engine_connection(
    resolver: _Resolver, loc: Location, spec: ServiceSpec, methods: tuple[Method, ...]
) -> Spec | None:
    for engine in sorted(set(EngineSpecs)):
        if getattr(spec, engine) is not None and engine != spec.engine:
            resolver.report(
                (*loc, engine),
                f"block '{engine}' does not match the service's engine '{spec.engine}'",
            )
    block: Spec | None = getattr(spec, spec.engine)
    if block is not None:
        return block
    model = EngineSpecs[spec.engine]
    if all(not f.is_required() for f in model.model_fields.values()):
        return model()
    if "dump" in methods:
        required = ", ".join(n for n, f in model.model_fields.items() if f.is_required())
        resolver.report(
            loc,
            f"engine '{spec.engine}' with method 'dump' needs a '{spec.engine}' block ({required})",
        )
    return None


def _resolve_retention(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    cadence: tuple[str, Origin],
    schedule: Schedule,
    default: tuple[ChurnDefaultsSpec, Origin],
) -> tuple[Retention | None, Origin]:
    if spec.retention is not None:
        text, origin = spec.retention, Origin("catalog", "retention", (*loc, "retention"))
    else:
        text, origin = default[0].retention, _field_origin(default[1], "retention")
    try:
        retention = parse_retention(text)
    except ValueError as exc:
        resolver.report(origin.loc or (*loc, "retention"), str(exc))
        return None, origin
    gap = schedule.max_gap()
    if retention.period is not None and retention.period < gap:
        # Blame what the user wrote: the service's own retention or cadence, else the default.
        if spec.retention is not None or spec.cadence is not None:
            where: Location = (*loc, "retention" if spec.retention is not None else "cadence")
        else:
            where = origin.loc or cadence[1].loc or loc
        note = "" if origin.kind == "catalog" else f" ({origin.detail})"
        resolver.report(
            where,
            f"retention {retention}{note} is shorter than the largest gap between runs of "
            f"cadence {cadence[0]!r} ({format_duration(gap)}): a backup would expire before "
            "the next one is taken; keep it longer or use '<n> copies'",
        )
    return retention, origin


def _field_origin(origin: Origin, key: str) -> Origin:
    """The origin of one key of a defaults block (``...churn.low`` → ``...churn.low.cadence``)."""
    if origin.kind != "settings":
        return origin
    return Origin(origin.kind, f"{origin.detail}.{key}", (*origin.loc, key))


def _resolve_offsite(spec: ServiceSpec, loc: Location) -> tuple[Offsite, Origin]:
    if spec.offsite is None:
        return Offsite(True), Origin("default", "every service is synced offsite unless excluded")
    origin = Origin("catalog", "offsite", (*loc, "offsite"))
    if isinstance(spec.offsite, bool):
        return Offsite(spec.offsite), origin
    return Offsite(False, spec.offsite.excluded), origin


def _resolve_snapshots(
    resolver: _Resolver, loc: Location, spec: ServiceSpec
) -> tuple[SnapshotLayer | None, Origin]:
    layer = SNAPSHOT_LAYER_BY_STORAGE.get(spec.storage)
    if spec.snapshots is not None:
        if spec.snapshots and layer is None:
            resolver.report(
                (*loc, "snapshots"),
                f"storage '{spec.storage}' has no snapshot layer (zfs: nfs, iscsi; "
                "lvm: proxmox-lvm)",
            )
        return (layer if spec.snapshots else None), Origin(
            "catalog", "snapshots", (*loc, "snapshots")
        )
    if layer == "lvm" and spec.churn == "high":
        return None, Origin(
            "policy",
            "high-churn volumes stay out of LVM thin snapshots (copy-on-write amplification)",
        )
    if layer is None:
        return None, Origin("policy", f"storage '{spec.storage}' has no snapshot layer")
    return layer, Origin("policy", f"storage '{spec.storage}' is snapshotted by {layer}")


def _resolve_service(resolver: _Resolver, index: int, spec: ServiceSpec) -> Service | None:
    loc: Location = ("services", index)
    before = len(resolver.problems)
    origins: dict[str, Origin] = {}
    methods = _resolve_methods(resolver, loc, spec, origins)
    connection = _engine_connection(resolver, loc, spec, methods)
    connection, superuser = _cnpg_dump_credentials(resolver, loc, spec, methods, connection)
    schedule, retention = _resolve_timing(resolver, loc, spec, methods, origins)
    integrity = _resolve_integrity(resolver, loc, spec, origins)
    drill = _resolve_drill(resolver, loc, spec, methods, origins)
    offsite, origins["offsite"] = _resolve_offsite(spec, loc)
    snapshot_layer, origins["snapshot_layer"] = _resolve_snapshots(resolver, loc, spec)
    backup_path, origins["backup_path"] = _resolve_backup_path(resolver, loc, spec)
    _check_mount_paths(resolver, loc, spec)
    _check_job_names(resolver, loc, spec, methods)
    volsync = (
        _resolve_volsync(resolver, loc, spec, schedule, retention) if "volsync" in methods else None
    )
    kopiur = (
        _resolve_kopiur(resolver, loc, spec, schedule, retention, drill)
        if "kopiur" in methods
        else None
    )
    cnpg = _resolve_cnpg(resolver, loc, spec, schedule, retention, superuser)
    job = _resolve_job(resolver.settings, spec)
    if len(resolver.problems) > before or schedule is None or retention is None:
        return None
    only_kopiur = kopiur.schedule if kopiur is not None and "dump" not in methods else None
    stale_after, origins["stale_after"] = _resolve_stale_after(
        resolver, loc, spec, schedule, job, only_kopiur
    )
    return Service(
        name=spec.name,
        namespace=spec.namespace,
        description=spec.description,
        storage=spec.storage,
        churn=spec.churn,
        engine=spec.engine,
        criticality=spec.criticality,
        methods=methods,
        schedule=schedule,
        retention=retention,
        offsite=offsite,
        snapshot_layer=snapshot_layer,
        integrity=integrity,
        backup_path=backup_path,
        stale_after=stale_after,
        rpo=parse_duration(spec.rpo) if spec.rpo else None,
        dataset=spec.dataset or spec.name,
        job=job,
        connection=connection,
        volsync=volsync,
        kopiur=kopiur,
        cnpg=cnpg,
        index=index,
        origins=origins,
        drill=drill,
        rto=parse_duration(spec.rto) if spec.rto else None,
        min_size_bytes=parse_byte_size(spec.min_size) if spec.min_size else 1,
    )


def _resolve_methods(
    resolver: _Resolver, loc: Location, spec: ServiceSpec, origins: dict[str, Origin]
) -> tuple[Method, ...]:
    if spec.methods is not None:
        methods = spec.methods
        origins["methods"] = Origin("catalog", "methods", (*loc, "methods"))
    else:
        methods, why = _derive_methods(spec, resolver.settings.pvc_engine)
        origins["methods"] = Origin("policy", why)
    _check_methods(resolver, loc, spec, methods)
    return methods


def _resolve_timing(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    methods: tuple[Method, ...],
    origins: dict[str, Origin],
) -> tuple[Schedule | None, Retention | None]:
    """The schedule and retention, from the service or its churn's defaults."""
    if not methods:
        for unused in ("cadence", "retention", "integrity"):
            if getattr(spec, unused) is not None:
                resolver.report(
                    (*loc, unused),
                    f"'{unused}' applies to nothing: the service has "
                    "no protection method (set methods, or remove it)",
                )
    default, default_origin = resolver.churn_default(spec.churn)
    if spec.cadence is not None:
        cadence = (spec.cadence, Origin("catalog", "cadence", (*loc, "cadence")))
    else:
        cadence = (default.cadence, _field_origin(default_origin, "cadence"))
    origins["schedule"] = cadence[1]
    schedule = resolver.cadence(cadence[0], spec.name, cadence[1].loc or (*loc, "cadence"))
    if schedule is None:
        return None, None
    retention, origins["retention"] = _resolve_retention(
        resolver, loc, spec, cadence, schedule, (default, default_origin)
    )
    return schedule, retention


def _resolve_integrity(
    resolver: _Resolver, loc: Location, spec: ServiceSpec, origins: dict[str, Origin]
) -> Schedule | None:
    if spec.integrity is None:
        return None
    origins["integrity"] = Origin("catalog", "integrity", (*loc, "integrity"))
    if spec.engine not in INTEGRITY_ENGINES:
        resolver.report(
            (*loc, "integrity"),
            f"integrity checks are supported for {', '.join(sorted(INTEGRITY_ENGINES))}, "
            f"not '{spec.engine}'",
        )
    return resolver.cadence(spec.integrity, f"{spec.name}-integrity", (*loc, "integrity"))


#: Engines whose application-level backup has a restore drill.
DRILL_ENGINES = frozenset(
    {"postgresql", "mysql", "sqlite", "redis", "files", "vault", "prometheus", "etcd"}
)
_SQL_DRILL_ENGINES = frozenset({"postgresql", "mysql", "sqlite"})
#: The backups a drill can restore, in the order the default takes the first one a service
#: has: its dump, its CNPG archive (a scratch Cluster recovered from the object store), its
#: VolSync repository (a ReplicationDestination into a scratch claim).
DRILL_LAYERS: tuple[str, ...] = ("dump", "cnpg", "volsync", "kopiur")
_BYTE_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTE_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_byte_size(text: str) -> int:
    """``64Ki`` → 65536: a number of bytes with an optional binary or decimal suffix."""
    match = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?", text)
    if match is None:
        raise ValueError(f"{text!r} is not a size")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2) or ""]


def _drill_layers(spec: ServiceSpec, methods: tuple[Method, ...]) -> tuple[str, ...]:
    """The service's backups a restore drill exists for, in :data:`DRILL_LAYERS` order (a
    dump's drill only for the engines that have one)."""
    dump = spec.engine in DRILL_ENGINES
    return tuple(m for m in DRILL_LAYERS if m in methods and (m != "dump" or dump))


def _has_drill(spec: ServiceSpec, methods: tuple[Method, ...]) -> bool:
    """Whether the service has a backup that a restore drill exists for."""
    return bool(_drill_layers(spec, methods))


def _resolve_drill(
    resolver: _Resolver,
    loc: Location,
    spec: ServiceSpec,
    methods: tuple[Method, ...],
    origins: dict[str, Origin],
) -> Drill | None:
    """The drill: on by default for a backup that has one, off with ``false``."""
    asked = spec.drill
    where: Location = (*loc, "drill")
    if asked is False:
        origins["drill"] = Origin("catalog", "drill: false", where)
        return None
    layers = _drill_layers(spec, methods)
    if not layers:
        if asked is not None:
            why = (
                "the service has no backup to restore"
                if not methods
                else f"restore drills of a dump exist for {', '.join(sorted(DRILL_ENGINES))}, "
                f"not '{spec.engine}' yet"
            )
            resolver.report(where, why)
        return None
    block = asked if isinstance(asked, DrillSpec) else DrillSpec()
    layer = layers[0]
    if block.layer is not None:
        if block.layer not in layers:
            resolver.report(
                (*where, "layer"),
                f"the service has no {block.layer} backup to drill (it has: {', '.join(layers)})",
            )
            return None
        layer = block.layer
    if block.cadence is not None:
        text, origin = block.cadence, Origin("catalog", "drill.cadence", (*where, "cadence"))
    else:
        text = "weekly" if spec.criticality == "critical" else "monthly"
        origin = Origin("policy", f"a {spec.criticality} service is drilled {text}")
    origins["drill"] = origin
    schedule = resolver.cadence(text, f"{spec.name}-drill", origin.loc or where)
    checks = _drill_checks(resolver, where, spec, block, layer)
    applies = {"min_keys": layer == "dump" and spec.engine == "redis"}
    applies["min_files"] = layer in ("volsync", "kopiur") or (
        layer == "dump" and spec.engine == "files"
    )
    for field_name, ok in applies.items():
        if getattr(block, field_name) is not None and not ok:
            target = "redis dumps" if field_name == "min_keys" else "files dumps, VolSync, kopiur"
            resolver.report(
                (*where, field_name),
                f"{field_name} applies to {target}, not to the {layer} drill of '{spec.engine}'",
            )
    if schedule is None:
        return None
    if schedule.first_weekday is not None and (layer != "dump" or spec.engine == "etcd"):
        # Only a script can skip the days 1-7 that are not the weekday; these drills' steps
        # run in kubectl and the movers, and the etcd drill's in its tools image.
        why = (
            f"the {layer} drill cannot run on the first <weekday> of a month"
            if layer != "dump"
            else "the etcd drill's etcdutl steps (init containers) cannot skip the days that "
            "are not the first <weekday>"
        )
        resolver.report(origin.loc or where, f"{why}; give drill.cadence a cron or a plain cadence")
        return None
    return Drill(schedule, checks, block.min_keys, block.min_files, layer)


def _drill_checks(
    resolver: _Resolver, where: Location, spec: ServiceSpec, block: DrillSpec, layer: str
) -> tuple[DrillCheck, ...]:
    if block.checks and (spec.engine not in _SQL_DRILL_ENGINES or layer in ("volsync", "kopiur")):
        resolver.report(
            (*where, "checks"),
            f"checks are SQL, for {', '.join(sorted(_SQL_DRILL_ENGINES))} dumps and CNPG, "
            f"not the {layer} drill of '{spec.engine}'",
        )
        return ()
    databases: tuple[str, ...] = getattr(getattr(spec, spec.engine, None), "databases", ())
    checks = []
    for n, check in enumerate(block.checks):
        at: Location = (*where, "checks", n)
        if (check.table is None) == (check.query is None):
            resolver.report(at, "a check is a table (with min_rows) or a query, exactly one")
            continue
        if check.query is not None and check.min_rows:
            resolver.report((*at, "min_rows"), "min_rows applies to a table check")
        database = check.database or ""
        if spec.engine == "sqlite":
            if check.database is not None:
                resolver.report((*at, "database"), "an SQLite backup is one database")
        elif check.database is None:
            if not databases:
                resolver.report(
                    at,
                    f"name the database to check in: the service lists no {spec.engine} "
                    "databases to default to",
                )
                continue
            database = databases[0]
        elif databases and check.database not in databases:
            resolver.report(
                (*at, "database"),
                f"{check.database!r} is not one of the service's databases "
                f"({', '.join(databases)})",
            )
        if check.table is not None:
            query = f"SELECT count(*) >= {check.min_rows} FROM {check.table}"
            rows = "row" if check.min_rows == 1 else "rows"
            what = f"table {check.table} holds at least {check.min_rows} {rows}"
        else:
            assert check.query is not None
            query, what = check.query, f"the query {check.query!r} is true"
        checks.append(DrillCheck(database, query, what + (f" in {database}" if database else "")))
    return tuple(checks)


def _resolve_backup_path(
    resolver: _Resolver, loc: Location, spec: ServiceSpec
) -> tuple[str, Origin]:
    if spec.backup_path is not None:
        return spec.backup_path, Origin("catalog", "backup_path", (*loc, "backup_path"))
    root = resolver.settings.nfs.backup_root.rstrip("/")
    return f"{root}/{spec.name}-backup", Origin(
        "policy", "<settings.nfs.backup_root>/<name>-backup"
    )


#: Where etcd's backup must run: on a control-plane node (etcd listens there, its client
#: certificates are on the host), as root (kubeadm writes the client key 0600).
_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
ENGINE_PLACEMENT: dict[str, JobSpec] = {
    "etcd": JobSpec(
        node_selector={_CONTROL_PLANE: ""},
        tolerations=(TolerationSpec(key=_CONTROL_PLANE, operator="Exists", effect="NoSchedule"),),
        security_context=SecurityContextSpec(run_as_user=0, run_as_group=0),
    ),
}


def _resolve_job(settings: SettingsSpec, spec: ServiceSpec) -> JobSettings:
    """Each knob from the service's ``job``, else ``settings.jobs``, else the built-in."""
    layers: list[JobSpec] = [j for j in (spec.job, settings.jobs, BUILTIN_JOB) if j is not None]
    image, shell = DEFAULT_IMAGES[spec.engine]
    own = spec.job or ServiceJobSpec()
    resources = _first(j.resources for j in layers)
    placement = [*layers[:-1], ENGINE_PLACEMENT.get(spec.engine, JobSpec())]
    node_selector = next((j.node_selector for j in placement if j.node_selector is not None), {})
    tolerations = next((j.tolerations for j in placement if j.tolerations is not None), ())
    security = next((j.security_context for j in placement if j.security_context), None)
    block = getattr(spec, spec.engine, None)
    mounts_claim = getattr(block, "claim", None) is not None
    return JobSettings(
        image=_first([own.image, settings.jobs.images.get(spec.engine), image]),
        shell=_first([own.shell, shell]),
        concurrency_policy=_first(j.concurrency_policy for j in layers),
        starting_deadline_seconds=next(
            (j.starting_deadline_seconds for j in layers if j.starting_deadline_seconds), None
        ),
        successful_jobs_history_limit=_first(j.successful_jobs_history_limit for j in layers),
        failed_jobs_history_limit=_first(j.failed_jobs_history_limit for j in layers),
        backoff_limit=_first(j.backoff_limit for j in layers),
        active_deadline_seconds=next(
            (j.active_deadline_seconds for j in layers if j.active_deadline_seconds), None
        ),
        requests=dict(sorted(resources.requests.items())),
        limits=dict(sorted(resources.limits.items())),
        node_selector=dict(sorted(node_selector.items())),
        tolerations=tuple(t.model_dump(exclude_none=True) for t in tolerations),
        security_context=security.model_dump(exclude_none=True) if security else {},
        app_labels=dict(sorted((own.app_labels or {"app.kubernetes.io/name": spec.name}).items())),
        # Any claim but an NFS one is ReadWriteOnce: it attaches to one node at a time.
        beside_app=mounts_claim and spec.storage != "nfs",
    )


def _first(values: Iterable[_T | None]) -> _T:
    """The first value that is set; the built-in layer guarantees there is one."""
    return next(v for v in values if v)


#: Where every backup job mounts its own volumes (the NFS backup folder, its scripts): the
#: engine's claim cannot be mounted there, over them or under them.
JOB_MOUNTS = {"backup": "/backup", "scripts": "/scripts"}


def _overlaps(a: str, b: str) -> bool:
    """Whether mounting at ``a`` and at ``b`` in one container collides (same, or nested)."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _check_mount_paths(resolver: _Resolver, loc: Location, spec: ServiceSpec) -> None:
    """Paths the job reads must lie below the folder where it mounts the claim, which must
    not collide with the job's own mounts (Kubernetes refuses two mounts at one path)."""
    block = getattr(spec, spec.engine)
    if block is None:
        return
    for name in ("mount_path", "data_dir"):
        path = getattr(block, name, None)
        for volume, reserved in JOB_MOUNTS.items():
            if path is not None and _overlaps(path, reserved):
                resolver.report(
                    (*loc, spec.engine, name),
                    f"{path} collides with {reserved}, where the backup job mounts its "
                    f"{volume} volume; mount the claim elsewhere (the default is /data)",
                )
                break
    mount = getattr(block, "mount_path", None)
    if mount is None:
        return
    inside = [("database", getattr(block, "database", None))]
    inside += [
        (f"{field}[{i}]", p)
        for field in ("extra_paths", "paths")
        for i, p in enumerate(getattr(block, field, ()))
    ]
    for name, path in inside:
        if path is not None and not (path + "/").startswith(mount.rstrip("/") + "/"):
            resolver.report(
                (*loc, spec.engine, *_split_field(name)), f"{path} is not below mount_path {mount}"
            )


#: Kubernetes refuses CronJob names longer than 52 characters (the Job name gets a suffix).
CRONJOB_NAME_LIMIT = 52


def _check_job_names(
    resolver: _Resolver, loc: Location, spec: ServiceSpec, methods: tuple[Method, ...]
) -> None:
    drilled = _has_drill(spec, methods) and spec.drill is not False
    suffixes = (
        (["-backup"] if "dump" in methods else [])
        + (["-integrity-check"] if spec.integrity is not None else [])
        + (["-restore-drill"] if drilled else [])
    )
    for suffix in suffixes:
        if len(spec.name + suffix) > CRONJOB_NAME_LIMIT:
            resolver.report(
                (*loc, "name"),
                f"the CronJob name {spec.name + suffix!r} is longer than "
                f"{CRONJOB_NAME_LIMIT} characters; use a shorter service name",
            )
            return


def _split_field(name: str) -> Location:
    field, _, index = name.partition("[")
    return (field, int(index.rstrip("]"))) if index else (field,)


def _check_unique(
    resolver: _Resolver, indexed: list[tuple[int, ServiceSpec]], services: list[Service]
) -> None:
    first_by_name: dict[str, int] = {}
    duplicates: set[int] = set()
    for index, spec in indexed:
        first = first_by_name.setdefault(spec.name, index)
        if first != index:
            duplicates.add(index)
            resolver.report(
                ("services", index, "name"),
                f"duplicate service name {spec.name!r} (first defined at services[{first}])",
            )
    by_path: dict[str, Service] = {}
    for service in sorted(services, key=lambda s: s.index):
        if not service.uses("dump") or service.index in duplicates:
            continue  # a duplicate name shares its twin's default path: one report is enough
        other = by_path.setdefault(service.backup_path, service)
        if other is not service:
            where = "backup_path" if service.origins["backup_path"].kind == "catalog" else "name"
            resolver.report(
                ("services", service.index, where),
                f"backup path {service.backup_path} is also used by '{other.name}'; "
                "their rotations would delete each other's backups",
            )
