"""Which layers protect each service, and the recovery point each one gives.

One function, :func:`protection_layers`, answers this for the protection matrix, the
runbooks and the policy lint alike, so the documents and the checks cannot disagree.
A layer's RPO is the most data it can lose: the largest gap between two of its runs (for
CloudNativePG's WAL archive, PostgreSQL's ``archive_timeout``). An offsite layer adds the
gap of the sync that carries the copy off the site to the gap of the copy it carries.

A restore drill protects nothing by itself: it proves the newest application-level backup
restores. :func:`restore_drill` says when it runs, what runs it and the RTO it is held to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from homeops_gen.catalog.model import Catalog, Service, VolsyncApp
from homeops_gen.schedule import Schedule, format_duration

__all__ = [
    "DRILL_TITLES",
    "DUMP_TITLES",
    "WAL_ARCHIVE_TIMEOUT",
    "Layer",
    "LayerKind",
    "RestoreDrill",
    "local_rpo",
    "offsite_rpo",
    "protection_layers",
    "restore_drill",
]

LayerKind = Literal[
    "zfs",
    "lvm",
    "dump",
    "volsync",
    "kopiur",
    "cnpg-wal",
    "cnpg-base",
    "nas-sync",
    "r2",
    "kopiur-r2",
]

#: CloudNativePG's default ``archive_timeout``: a WAL segment is archived at least this often.
WAL_ARCHIVE_TIMEOUT = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Layer:
    kind: LayerKind
    #: What the layer is, for people: "ZFS snapshots", "pg_dumpall + pg_dump", ...
    title: str
    #: When it runs, for people ("every 6h", a cron expression, "continuous").
    when: str
    retention: str
    #: The most data this layer can lose.
    rpo: dt.timedelta
    #: Whether the copy leaves the site.
    offsite: bool
    #: What else runs with it (the SQLite integrity check).
    note: str = ""
    #: The schedules that fire it, as their runtimes run them.
    schedules: tuple[Schedule, ...] = ()

    def describe(self) -> str:
        """``title: when, keeps retention (RPO x)``, and its note, in one line."""
        text = (
            f"{self.title}: {self.when}, keeps {self.retention} (RPO {format_duration(self.rpo)})"
        )
        return f"{text}; {self.note}" if self.note else text


def when(schedule: Schedule) -> str:
    """The schedule as its runtime is given it, with the zone it reads it in."""
    timing = schedule.timing
    return f"{timing.cron}{schedule.guard} {timing.zone}"


def _snapshot_layers(catalog: Catalog, service: Service) -> list[Layer]:
    settings = catalog.settings
    if service.snapshot_layer == "zfs" and settings.zfs_snapshots:
        tasks = settings.zfs_snapshots
        best = min(tasks, key=lambda t: t.schedule.max_gap())
        return [
            Layer(
                "zfs",
                "ZFS snapshots",
                "; ".join(sorted({when(t.schedule) for t in tasks})),
                ", ".join(sorted({str(t.retention) for t in tasks})),
                best.schedule.max_gap(),
                offsite=False,
                schedules=tuple(t.schedule for t in tasks),
            )
        ]
    lvm = settings.lvm_snapshots
    if service.snapshot_layer == "lvm" and lvm is not None:
        return [
            Layer(
                "lvm",
                "LVM thin snapshots",
                when(lvm.schedule),
                str(lvm.retention),
                lvm.schedule.max_gap(),
                offsite=False,
                schedules=(lvm.schedule,),
            )
        ]
    return []


#: What each engine's dump recipe runs (see templates/scripts/).
DUMP_TITLES = {
    "postgresql": "pg_dumpall + pg_dump",
    "mysql": "mariadb-dump",
    "sqlite": "sqlite3 .backup",
    "etcd": "etcdctl snapshot",
    "vault": "vault raft snapshot",
    "redis": "BGSAVE + RDB copy",
    "dragonfly": "BGSAVE + RDB copy",
    "prometheus": "TSDB snapshot",
    "files": "tar.gz",
}


def _keeps(counts: Mapping[str, int]) -> str:
    """VolSync's ``retain`` counts for people: ``24 hourly, 14 daily``."""
    return ", ".join(f"{n} {period}" for period, n in counts.items() if n) or "nothing"


def _pvc_layers(
    service: Service,
    app: VolsyncApp,
    local: tuple[LayerKind, str],
    offsite: tuple[LayerKind, str],
) -> list[Layer]:
    """The layers of a PVC copy (VolSync's or kopiur's): the local repository and, for an
    app copied offsite, R2; ``local`` and ``offsite`` are each layer's kind and title."""
    keeps = _keeps(app.retain) if app.retain_set else str(service.retention)
    layers = [
        Layer(
            *local,
            when(app.schedule),
            keeps,
            app.schedule.max_gap(),
            False,
            schedules=(app.schedule,),
        )
    ]
    # None for an app kept out of the offsite copies: no R2 layer, nothing claimed.
    if app.r2_schedule is not None:
        r2_keeps = app.r2_retain if app.r2_retain_set else None
        layers.append(
            Layer(
                *offsite,
                when(app.r2_schedule),
                _keeps(r2_keeps) if r2_keeps else str(service.retention),
                app.r2_schedule.max_gap(),
                True,
                schedules=(app.r2_schedule,),
            )
        )
    return layers


def _method_layers(catalog: Catalog, service: Service) -> list[Layer]:
    layers: list[Layer] = []
    schedule = service.schedule
    if service.uses("dump"):
        integrity = service.integrity
        layers.append(
            Layer(
                "dump",
                DUMP_TITLES[service.engine],
                when(schedule),
                str(service.retention),
                schedule.max_gap(),
                offsite=False,
                note=f"integrity check {integrity.description}" if integrity else "",
                schedules=(schedule,),
            )
        )
    if service.uses("volsync") and service.volsync is not None:
        layers += _pvc_layers(
            service,
            service.volsync,
            ("volsync", "VolSync Kopia (NFS)"),
            ("r2", "VolSync restic (R2)"),
        )
    if service.uses("kopiur") and service.kopiur is not None:
        k = catalog.settings.kopiur
        layers += _pvc_layers(
            service,
            service.kopiur,
            ("kopiur", f"kopiur Kopia (NFS, {k.repository})"),
            ("kopiur-r2", f"kopiur Kopia (R2, {k.r2_repository})"),
        )
    cluster = service.cnpg
    if service.uses("cnpg") and cluster is not None:
        base = cluster.base_schedule
        where = f"{cluster.store_name} {cluster.destination_path}{cluster.server_name}"
        offsite = cluster.store.provider in ("r2", "s3")
        layers += [
            Layer(
                "cnpg-wal",
                f"CNPG WAL archive ({where})",
                "continuous",
                cluster.retention_policy,
                WAL_ARCHIVE_TIMEOUT,
                offsite,
            ),
            Layer(
                "cnpg-base",
                "CNPG base backup",
                when(base),
                cluster.retention_policy,
                base.max_gap(),
                offsite,
                schedules=(base,),
            ),
        ]
    return layers


def _nas_sync_layer(catalog: Catalog, service: Service, local: list[Layer]) -> Layer | None:
    """The NAS-to-NAS sync, when it carries this service's data or its dumps."""
    settings = catalog.settings
    sync = settings.offsite_incremental
    if sync is None or not service.offsite.included:
        return None
    dump = next((layer for layer in local if layer.kind == "dump"), None)
    if dump is not None:
        carried, what = dump.rpo, "the dumps"
    elif service.storage == "nfs":
        carried, what = dt.timedelta(), "the dataset"
    else:
        return None
    return Layer(
        "nas-sync",
        f"NAS sync of {what} to {settings.offsite_target}",
        when(sync),
        "mirror",
        carried + sync.max_gap(),
        offsite=True,
        schedules=(sync,),
    )


#: The layers of the services of the catalog last asked about (lint, runbooks and the matrix
#: all ask, in one run, for one catalog).
_LAST: tuple[Catalog, dict[str, tuple[Service, tuple[Layer, ...]]]] | None = None


def protection_layers(catalog: Catalog, service: Service) -> list[Layer]:
    """Every layer protecting ``service``, local ones first, each with its RPO."""
    global _LAST
    if _LAST is None or _LAST[0] is not catalog:
        _LAST = (catalog, {})
    known = _LAST[1]
    if service.name not in known or known[service.name][0] is not service:
        layers = _snapshot_layers(catalog, service) + _method_layers(catalog, service)
        sync = _nas_sync_layer(catalog, service, layers)
        known[service.name] = (service, (*layers, *([sync] if sync is not None else [])))
    return list(known[service.name][1])


def local_rpo(layers: list[Layer]) -> dt.timedelta | None:
    """The best recovery point of any layer (``None``: nothing protects the service)."""
    return min((layer.rpo for layer in layers), default=None)


def offsite_rpo(layers: list[Layer]) -> dt.timedelta | None:
    """The best recovery point of the layers that leave the site."""
    return min((layer.rpo for layer in layers if layer.offsite), default=None)


#: What each engine's restore drill does with the newest backup, inside its own pod (see
#: templates/scripts/drill/).
DRILL_TITLES = {
    "postgresql": "replays all.sql.gz into a scratch PostgreSQL server (initdb in the pod, "
    "no TCP) and reads each pg_dump archive through",
    "mysql": "replays all.sql.gz into a scratch mariadbd (its data folder in the pod, no TCP)",
    "sqlite": "copies the database and runs PRAGMA integrity_check on the copy",
    "redis": "checks a copy of the RDB with redis-check-rdb and loads it into a scratch "
    "redis-server, counting its keys",
    "files": "unpacks files.tar.gz and verifies every file against the backup's SHA256SUMS",
    "prometheus": "unpacks the TSDB snapshot and has promtool list every block and read "
    "every chunk of it (tsdb analyze --extended)",
    "vault": "unpacks the raft snapshot, verifies its SHA256SUMS and has vault operator raft "
    "snapshot inspect (offline) decode it",
    "etcd": "verifies the snapshot against its SHA-256 file, has etcdutl snapshot status read "
    "every page and etcdutl snapshot restore it (checking the hash the snapshot carries) into a "
    "scratch data folder",
}
#: The drills that restore into scratch objects of the cluster (kubernetes/drills/).
LAYER_DRILL_TITLES = {
    "cnpg": "recovers the newest base backup and the WAL after it from the object store into "
    "a scratch one-instance Cluster, runs the checks in it, then deletes it",
    "kopiur": "restores the newest snapshot into a scratch claim of the app's size and class, "
    "and fails unless the files came back with matching checksums (successExpr)",
    "volsync": "restores the newest Kopia snapshot into a scratch claim through a "
    "ReplicationDestination, counts what came back and has kopia snapshot verify (and restic "
    "check of the offsite copy) read the repositories back, then deletes it all",
}


@dataclass(frozen=True)
class RestoreDrill:
    """A service's scheduled restore drill: the CronJob that runs it and when."""

    cronjob: str
    namespace: str
    schedule: Schedule
    #: What it restores into and how, for people.
    title: str
    #: What it checks of the backup and the restored copy, for people (the catalog's checks
    #: and minimums).
    checks: tuple[str, ...]
    #: The declared recovery time objective the drill's duration is held to.
    rto: dt.timedelta | None
    #: What it restores: ``dump``, ``cnpg``, ``volsync`` or ``kopiur``.
    layer: str = "dump"
    #: The kind of object that runs it (kopiur's deep verification is a SnapshotPolicy's).
    runner: str = "CronJob"

    @property
    def when(self) -> str:
        return when(self.schedule)

    def describe(self) -> str:
        """``<cron> <zone>, CronJob `ns/name```: when and what runs it, in one line."""
        return f"{self.when}, {self.runner} `{self.namespace}/{self.cronjob}`"


#: The restore drills of the services of the catalog last asked about (the matrix, its
#: schedule table and the runbooks all ask, in one run, for one catalog).
_LAST_DRILLS: tuple[Catalog, dict[str, tuple[Service, RestoreDrill | None]]] | None = None


def restore_drill(catalog: Catalog, service: Service) -> RestoreDrill | None:
    """The service's restore drill as generated (``None``: it has none)."""
    global _LAST_DRILLS
    if _LAST_DRILLS is None or _LAST_DRILLS[0] is not catalog:
        _LAST_DRILLS = (catalog, {})
    known = _LAST_DRILLS[1].get(service.name)
    if known is None or known[0] is not service:
        known = _LAST_DRILLS[1][service.name] = (service, _restore_drill(catalog, service))
    return known[1]


def _restore_drill(catalog: Catalog, service: Service) -> RestoreDrill | None:
    from homeops_gen.generators.backup_jobs import cron_jobs, drill_cronjob_name

    drill = service.drill
    if drill is None:
        return None
    schedule, runner = drill.schedule, "CronJob"
    if drill.layer == "kopiur":
        if service.kopiur is None or service.kopiur.deep_verify is None:
            return None
        schedule, runner = service.kopiur.deep_verify, "SnapshotPolicy"
        checks = [
            "no verify errors, and at least "
            f"{service.kopiur.min_files} restored file{'s' if service.kopiur.min_files > 1 else ''}"
            " with matching checksums"
        ]
        return RestoreDrill(
            service.name,
            service.namespace,
            schedule,
            LAYER_DRILL_TITLES["kopiur"],
            tuple(checks),
            service.rto,
            "kopiur",
            runner,
        )
    if drill.layer == "dump":
        job = next((j for j in cron_jobs(catalog, service) if j.resource == "restore_drill"), None)
        if job is None:
            return None
        cronjob, title = job.name, DRILL_TITLES[service.engine]
    else:
        cronjob, title = drill_cronjob_name(service), LAYER_DRILL_TITLES[drill.layer]
    least = service.min_size_bytes
    what = "the newest backup" if drill.layer == "dump" else "the restored copy"
    checks = [f"{what} is at least {least} bytes" if least > 1 else f"{what} is not empty"]
    checks += [check.what for check in drill.checks]
    if drill.min_keys is not None:
        checks.append(f"the restored data set holds at least {drill.min_keys} keys")
    if drill.min_files is not None:
        checks.append(f"the restored tree holds at least {drill.min_files} files")
    return RestoreDrill(
        cronjob,
        service.namespace,
        drill.schedule,
        title,
        tuple(checks),
        service.rto,
        drill.layer,
    )
