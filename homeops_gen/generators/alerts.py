"""PrometheusRule alerts for every backup the catalog declares, with promtool tests.

Per family (backup jobs, restore drills, VolSync, CNPG, offsite sync, snapshots) three files:

- ``kubernetes/monitoring/prometheusrules/<family>.yaml``: the ``PrometheusRule``;
- ``prometheus/rules/<family>.rules.yaml``: its ``spec`` alone, for ``promtool check rules``;
- ``prometheus/tests/<family>.test.yaml``: ``promtool test rules`` cases for every alert.

Stale thresholds are derived from each schedule's largest gap between runs (see
:func:`homeops_gen.schedule.alert_threshold`), never typed. Each alert carries a
:class:`Probe` saying how its test exercises it: a stale alert is silent one sample-step
before its threshold, pending just after it and firing once its ``for`` has passed; a value
alert fires on its bad value and stays silent on its good one; an absence alert fires when
the series never appears; a shrink alert stays silent on a steady size (its first run
included) and on a small drop, and fires on a large one.

A service's restore drill has a group of its own, ``drill-<service>``: its schedule is
usually far sparser than the backup's, and a group's promtool tests step at the pace of its
sparsest schedule, which would blunt the backup's cases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from homeops_gen.catalog.model import Catalog, CnpgCluster, Drill, Service
from homeops_gen.errors import PlanError
from homeops_gen.generators.backup_jobs import (
    BACKUP_METRICS_JOB,
    DRILL_METRICS_JOB,
    INTEGRITY_METRICS_JOB,
    drill_cronjob_name,
)
from homeops_gen.metrics import dangling
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.promql import parse_matchers, quoted, satisfying_labels
from homeops_gen.registry import register_generator
from homeops_gen.schedule import Schedule, alert_threshold

__all__ = [
    "Alert",
    "Probe",
    "RuleGroup",
    "WatchedRun",
    "drill_alerts",
    "drill_group_name",
    "promtool_tests",
    "rule_group",
    "rule_groups",
    "rules_spec",
    "severity",
    "shrink_alert",
    "shrink_window",
]

#: Input samples every 5 minutes: Prometheus's lookback drops a series after 5m without one.
STEP = dt.timedelta(minutes=5)
#: Tests evaluate the rules at every sample step, so "one step before the threshold" is
#: checked exactly; each rule file holds one group, which keeps long windows cheap.
EVAL = STEP
STALE_FOR = dt.timedelta(minutes=15)
#: In a ``recovers`` probe's values: the time of the failure, and of the recovery.
AT_FAILURE = -1.0
AT_RECOVERY = -2.0
_SEVERITY = {"critical": "critical", "high": "critical", "normal": "warning", "low": "info"}


def severity(criticality: str) -> str:
    return _SEVERITY[criticality]


@dataclass(frozen=True)
class Probe:
    """How the generated promtool test exercises one alert.

    ``stale``: ``series`` holds one timestamp metric, constant 0 ("the last success was at
    the start"); ``absent``: ``series`` is what must be missing (the test gives every other
    alert of that name its series, so that only this one is absent); ``value``: each series
    at its ``firing`` value must fire and at its ``silent`` value must not; ``recovers``: the
    series go from ``silent`` (healthy) to ``firing`` at a failure and to ``recovered`` at
    the next success; the alert must be silent before, fire ``threshold`` plus its ``for``
    after the failure, and clear at the recovery. :data:`AT_FAILURE` and
    :data:`AT_RECOVERY` stand for the times of those two moments, in seconds. ``shrinks``:
    ``series`` holds one size gauge as the Pushgateway serves it (its last push, scraped
    continuously): steady at ``before`` from its first sample (a first run) the alert must
    stay silent; dropping to its ``firing`` value it must fire; dropping to its ``silent``
    value it must stay silent. ``window`` is the range the alert looks back over.
    """

    kind: Literal["stale", "absent", "value", "recovers", "shrinks"]
    series: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    firing: tuple[float, ...] = ()
    silent: tuple[float, ...] = ()
    recovered: tuple[float, ...] = ()
    threshold: dt.timedelta = dt.timedelta()
    #: The labels the alert carries besides the rule's own.
    labels: tuple[tuple[str, str], ...] = ()
    #: ``shrinks``: each series' value before its drop, and the range the alert looks back.
    before: tuple[float, ...] = ()
    window: dt.timedelta = dt.timedelta()


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: dt.timedelta
    labels: dict[str, str]
    summary: str
    description: str
    probe: Probe
    #: The restore runbook of what the alert watches (empty: none).
    runbook_url: str = ""


@dataclass(frozen=True)
class RuleGroup:
    """One PrometheusRule, one rule group, one rule file, one promtool test file."""

    name: str
    alerts: tuple[Alert, ...]
    #: The service the group watches (empty for the storage layers).
    subject: str = ""


def _selector(labels: dict[str, str]) -> str:
    """``{k="v",...}``, each value a PromQL string (the catalog's names never need the
    escapes, but the expression stays valid whatever a value holds)."""
    return "{" + ",".join(f"{k}={quoted(v)}" for k, v in labels.items()) + "}"


def _series(metric: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return metric, tuple(labels.items())


@lru_cache(maxsize=4096)
def prom_duration(span: dt.timedelta) -> str:
    """``1d2h5m`` (Prometheus's duration syntax), ``0s`` for zero."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def stale_alerts(
    name: str,
    metric: str,
    selector: dict[str, str],
    threshold: dt.timedelta,
    labels: dict[str, str],
    what: str,
    absent_for: dt.timedelta,
) -> list[Alert]:
    """``<name>Stale`` and ``<name>NeverSucceeded`` for a last-success timestamp metric."""
    # The alert fires once the age has exceeded the expression's number for ``for``: both
    # together make the threshold, so a short schedule's alert is not pushed later by it.
    hold = min(STALE_FOR, dt.timedelta(seconds=int(threshold.total_seconds()) // 8))
    seconds = int((threshold - hold).total_seconds())
    series = (_series(metric, selector),)
    return [
        Alert(
            f"{name}Stale",
            f"time() - {metric}{_selector(selector)} > {seconds}",
            hold,
            labels,
            f"{what}: no success for over {prom_duration(threshold)}",
            f"The last success of {what} is older than {prom_duration(threshold)}, the largest "
            "gap between two scheduled runs plus a grace.",
            Probe("stale", series, threshold=threshold - hold, labels=tuple(selector.items())),
        ),
        Alert(
            f"{name}NeverSucceeded",
            f"absent({metric}{_selector(selector)})",
            absent_for,
            labels,
            f"{what}: no success recorded",
            f"{metric} for {what} has never been reported, "
            f"{prom_duration(absent_for)} after it should have been.",
            Probe("absent", series, labels=tuple(selector.items())),
        ),
    ]


def _service_labels(service: Service) -> dict[str, str]:
    return {
        "severity": severity(service.criticality),
        "service": service.name,
        "namespace": service.namespace,
    }


def backup_job_alerts(service: Service, catalog: Catalog) -> list[Alert]:
    """The alerts of a service's backup job (the catalog says when a backup has shrunk)."""
    labels = _service_labels(service)
    selector = {"job": BACKUP_METRICS_JOB, "service": service.name}
    alerts = stale_alerts(
        "Backup",
        "backup_last_success_timestamp",
        selector,
        service.stale_after,
        labels,
        f"the {service.name} backup",
        service.stale_after,
    )
    alerts += run_failure_alerts(service, selector, labels)
    settings = catalog.settings
    alerts.append(shrink_alert(service, settings.shrink_fraction, settings.shrink_runs))
    if service.integrity is not None:
        alerts += integrity_alerts(service, service.integrity)
    return alerts


@dataclass(frozen=True)
class WatchedRun:
    """A CronJob whose script reports each run's outcome, and the names of its alerts."""

    #: For people: "the vaultwarden backup".
    what: str
    cronjob: str
    schedule: Schedule
    #: The gauge the script pushes: 0 on any failure, 1 with each success.
    metric: str
    failed: str
    failing: str


def _backup_run(service: Service) -> WatchedRun:
    return WatchedRun(
        f"the {service.name} backup",
        f"{service.name}-backup",
        service.schedule,
        "backup_last_run_success",
        "BackupRunFailed",
        "BackupJobFailing",
    )


def run_failure_alerts(
    service: Service,
    selector: dict[str, str],
    labels: dict[str, str],
    run: WatchedRun | None = None,
) -> list[Alert]:
    """Alerts on the last run's outcome, which clear with the next success.

    ``BackupRunFailed``: the job's script pushes ``backup_last_run_success`` 0 on any failure
    and 1 with each success. ``BackupJobFailing``: kube-state-metrics' view, for runs that die
    before their script can report (image pulls, OOM kills, evictions): the CronJob's last
    scheduled run is older than the time a run may take, and no success came after it.
    ``run`` names another job watched the same way (the restore drill); default: the backup.
    """
    run = run if run is not None else _backup_run(service)
    cronjob = {"namespace": service.namespace, "cronjob": run.cronjob}
    allowance = service.job.run_allowance(run.schedule)
    scheduled = f"kube_cronjob_status_last_schedule_time{_selector(cronjob)}"
    succeeded = f"kube_cronjob_status_last_successful_time{_selector(cronjob)}"
    return [
        Alert(
            run.failed,
            f"{run.metric}{_selector(selector)} == 0",
            dt.timedelta(),
            labels,
            f"{run.what} failed",
            f"The last run of {run.what} reported a failure (its log says why); "
            "the alert clears when a run succeeds.",
            Probe(
                "recovers",
                (_series(run.metric, selector),),
                firing=(0,),
                silent=(1,),
                recovered=(1,),
                labels=tuple(selector.items()),
            ),
        ),
        Alert(
            run.failing,
            f"(time() - {scheduled} > {int(allowance.total_seconds())}) "
            f"and ({scheduled} > {succeeded})",
            dt.timedelta(minutes=5),
            labels,
            f"{run.what} job did not succeed",
            f"CronJob {run.cronjob} in {service.namespace} started a run more than "
            f"{prom_duration(allowance)} ago and no run has succeeded since; the alert clears "
            "when one does.",
            Probe(
                "recovers",
                (
                    _series("kube_cronjob_status_last_schedule_time", cronjob),
                    _series("kube_cronjob_status_last_successful_time", cronjob),
                ),
                # The run at 0 succeeded a minute later; the next is scheduled at the failure
                # and only the recovery's run succeeds.
                firing=(AT_FAILURE, 60),
                silent=(0, 60),
                recovered=(AT_FAILURE, AT_RECOVERY),
                threshold=allowance,
                labels=tuple(cronjob.items()),
            ),
        ),
    ]


def shrink_window(schedule: Schedule, runs: int) -> dt.timedelta:
    """How far back the shrink alert looks: ``runs`` times the schedule's largest gap,
    rounded up to whole minutes.

    The Pushgateway serves a backup's last pushed size until the next push, and Prometheus
    scrapes it all along: over this window ``max_over_time`` sees the size of every run
    pushed inside it and the one before them, so at least the last ``runs`` runs. Where the
    TSDB keeps less than the window, it still sees the previous run's size, scraped up to
    the current push.
    """
    seconds = int((schedule.max_gap() * runs).total_seconds())
    return dt.timedelta(minutes=-(-seconds // 60))


def shrink_alert(service: Service, fraction: float, runs: int) -> Alert:
    """``BackupShrank``: the last backup is smaller than ``fraction`` of the largest of the
    last ``runs`` runs (a first run, alone in its window, never is)."""
    selector = {"job": BACKUP_METRICS_JOB, "service": service.name}
    size = f"backup_last_size_bytes{_selector(selector)}"
    window = shrink_window(service.schedule, runs)
    percent = f"{fraction * 100:g}%"
    return Alert(
        "BackupShrank",
        f"{size} < {fraction!r} * max_over_time({size}[{prom_duration(window)}])",
        dt.timedelta(),
        _service_labels(service),
        f"the {service.name} backup shrank below {percent} of its recent size",
        f"The last {service.name} backup is smaller than {percent} of the largest of its last "
        f"{runs} runs ({prom_duration(window)}): data may be missing from it. The alert clears "
        "with the next backup of a usual size.",
        Probe(
            "shrinks",
            (_series("backup_last_size_bytes", selector),),
            # A 90% drop must fire and a 10% drop must not, whatever the fraction.
            firing=(10,),
            silent=(90,),
            before=(100,),
            window=window,
            labels=tuple(selector.items()),
        ),
    )


def drill_group_name(service: Service) -> str:
    """The rule group (and rule file) of the service's restore drill."""
    return f"drill-{service.name}"


def drill_alerts(service: Service, drill: Drill) -> list[Alert]:
    """A restore drill's alerts: stale and never succeeded (the threshold derived from the
    drill's schedule as a backup's is), failed, and slower than the declared RTO."""
    labels = _service_labels(service)
    selector = {"job": DRILL_METRICS_JOB, "service": service.name}
    what = f"the {service.name} restore drill"
    threshold = alert_threshold(drill.schedule, service.job.run_allowance(drill.schedule))
    alerts = stale_alerts(
        "RestoreDrill",
        "restore_drill_last_success_timestamp",
        selector,
        threshold,
        labels,
        what,
        threshold,
    )
    run = WatchedRun(
        what,
        drill_cronjob_name(service),
        drill.schedule,
        "restore_drill_last_run_success",
        "RestoreDrillFailed",
        "RestoreDrillJobFailing",
    )
    alerts += run_failure_alerts(service, selector, labels, run)
    if service.rto is not None:
        alerts.append(_rto_alert(service, service.rto, selector, labels))
    return alerts


def _rto_alert(
    service: Service, rto: dt.timedelta, selector: dict[str, str], labels: dict[str, str]
) -> Alert:
    seconds = int(rto.total_seconds())
    return Alert(
        "RestoreDrillSlowerThanRTO",
        f"restore_drill_duration_seconds{_selector(selector)} > {seconds}",
        dt.timedelta(),
        labels,
        f"the {service.name} restore drill took longer than its RTO of {prom_duration(rto)}",
        f"The last successful restore drill of {service.name} took longer to restore and check "
        f"its newest backup than the declared RTO ({prom_duration(rto)}); the alert clears "
        "when a drill is fast enough.",
        # A drill that takes exactly its RTO meets it; one second more does not.
        Probe(
            "value",
            (_series("restore_drill_duration_seconds", selector),),
            (seconds + 1,),
            (seconds,),
            labels=tuple(selector.items()),
        ),
    )


def integrity_alerts(service: Service, schedule: Schedule) -> list[Alert]:
    selector = {"job": INTEGRITY_METRICS_JOB, "service": service.name}
    labels = {**_service_labels(service), "severity": "critical"}
    failed = Alert(
        "SQLiteIntegrityFailed",
        f"sqlite_integrity_ok{_selector(selector)} == 0",
        dt.timedelta(),
        labels,
        f"{service.name}: the SQLite database is corrupt",
        f"PRAGMA integrity_check on the live {service.name} database did not answer ok. "
        "Stop writes and restore from the newest backup that passes the check.",
        Probe(
            "value",
            (_series("sqlite_integrity_ok", selector),),
            (0,),
            (1,),
            labels=tuple(selector.items()),
        ),
    )
    threshold = alert_threshold(schedule, service.job.run_allowance(schedule))
    stale = stale_alerts(
        "SQLiteIntegrityCheck",
        "sqlite_integrity_last_check_timestamp",
        selector,
        threshold,
        _service_labels(service),
        f"the {service.name} integrity check",
        threshold,
    )
    return [failed, *stale]


def volsync_alerts(service: Service, r2: bool) -> list[Alert]:
    alerts = []
    for source in [service.name] + ([f"{service.name}-r2"] if r2 else []):
        labels = {**_service_labels(service), "replication_source": source}
        selector = {"obj_namespace": service.namespace, "obj_name": source, "role": "source"}
        # Only sources: a bootstrap ReplicationDestination reports out-of-sync forever.
        alerts += [
            Alert(
                "VolSyncOutOfSync",
                f"volsync_volume_out_of_sync{_selector(selector)} == 1",
                dt.timedelta(hours=1),
                labels,
                f"VolSync {source} missed its schedule",
                f"ReplicationSource {source} in {service.namespace} has not completed a sync "
                "since its last scheduled time.",
                Probe(
                    "value",
                    (_series("volsync_volume_out_of_sync", selector),),
                    (1,),
                    (0,),
                    labels=tuple(selector.items()),
                ),
            ),
            Alert(
                "VolSyncSourceAbsent",
                f"absent(volsync_volume_out_of_sync{_selector(selector)})",
                dt.timedelta(hours=1),
                labels,
                f"VolSync {source} reports nothing",
                f"No metric for ReplicationSource {source} in {service.namespace}: the "
                "component is not applied, or VolSync is not scraped.",
                Probe(
                    "absent",
                    (_series("volsync_volume_out_of_sync", selector),),
                    labels=tuple(selector.items()),
                ),
            ),
        ]
    return alerts


#: kopiur's metrics (its telemetry; see homeops_gen.metrics): a policy's last good backup,
#: its last backup's outcome (1 or 0), and a policy's last good verification.
KOPIUR_LAST_SUCCESS = "kopiur_policy_last_backup_success_timestamp_seconds"
KOPIUR_LAST_OUTCOME = "kopiur_snapshotpolicy_last_backup_success"
KOPIUR_VERIFIED = "kopiur_snapshot_verified_timestamp_seconds"


def _kopiur_threshold(service: Service, schedule: Schedule) -> dt.timedelta:
    """The catalog's ``stale_after`` for the app's own policy, else the gap of ``schedule``
    as kopiur runs it plus the time a snapshot may take."""
    own = service.kopiur is not None and schedule is service.kopiur.schedule
    if own and not service.uses("dump"):  # derived from this schedule, or the catalog's
        return service.stale_after
    return alert_threshold(schedule)


def kopiur_alerts(service: Service) -> list[Alert]:
    """A kopiur app's alerts: each policy (the NFS one and, for an app copied offsite, the
    R2 one) stale, never succeeded and failed; its snapshots' verification stale."""
    app = service.kopiur
    assert app is not None
    alerts: list[Alert] = []
    policies = [(service.name, app.schedule, "")]
    if app.r2_schedule is not None:
        policies.append((f"{service.name}-r2", app.r2_schedule, "Offsite"))
    for policy, schedule, kind in policies:
        labels = {**_service_labels(service), "policy": policy}
        selector = {"namespace": service.namespace, "policy": policy}
        threshold = _kopiur_threshold(service, schedule)
        what = f"kopiur SnapshotPolicy {policy}"
        alerts += stale_alerts(
            f"Kopiur{kind}Backup", KOPIUR_LAST_SUCCESS, selector, threshold, labels, what, threshold
        )
        alerts.append(
            Alert(
                f"Kopiur{kind}BackupFailed",
                f"{KOPIUR_LAST_OUTCOME}{_selector(selector)} == 0",
                dt.timedelta(),
                labels,
                f"{what}: the last snapshot failed",
                f"The last snapshot of SnapshotPolicy {policy} in {service.namespace} failed "
                "(kubectl describe snapshotpolicy and the mover's log say why); the alert "
                "clears when a snapshot succeeds.",
                Probe(
                    "recovers",
                    (_series(KOPIUR_LAST_OUTCOME, selector),),
                    firing=(0,),
                    silent=(1,),
                    recovered=(1,),
                    labels=tuple(selector.items()),
                ),
            )
        )
    if app.quick_verify is not None:
        labels = {**_service_labels(service), "policy": service.name}
        selector = {"namespace": service.namespace, "name": service.name}
        # Each quick verification checks the newest snapshot, so a good one is due every
        # gap of its own schedule; the first waits for a first good snapshot as well.
        threshold = alert_threshold(app.quick_verify)
        alerts += stale_alerts(
            "KopiurVerification",
            KOPIUR_VERIFIED,
            selector,
            threshold,
            labels,
            f"the verification of kopiur SnapshotPolicy {service.name}",
            service.stale_after + threshold,
        )
    return alerts


def cnpg_alerts(service: Service, cluster: CnpgCluster, schedule: Schedule) -> list[Alert]:
    labels = {**_service_labels(service), "cluster": cluster.name}
    pods = f'namespace="{cluster.namespace}",pod=~"{cluster.name}-[0-9]+"'
    pod = {"namespace": cluster.namespace, "pod": f"{cluster.name}-1"}
    metric = (
        "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp"
        if cluster.mode == "plugin"
        else "cnpg_collector_last_available_backup_timestamp"
    )
    threshold = alert_threshold(schedule)
    wal = Alert(
        "CNPGWALArchivingFailing",
        f"cnpg_pg_stat_archiver_last_failed_time{{{pods}}} > "
        f"cnpg_pg_stat_archiver_last_archived_time{{{pods}}}",
        dt.timedelta(minutes=10),
        labels,
        f"{cluster.name}: WAL archiving is failing",
        f"The last WAL archive attempt of {cluster.name} failed after the last success: "
        f"point-in-time recovery from {cluster.store.endpoint} is falling behind.",
        Probe(
            "value",
            (
                _series("cnpg_pg_stat_archiver_last_failed_time", pod),
                _series("cnpg_pg_stat_archiver_last_archived_time", pod),
            ),
            (200, 100),
            (100, 200),
            labels=tuple(pod.items()),
        ),
    )
    seconds = int(threshold.total_seconds())
    stale = Alert(
        "CNPGBaseBackupStale",
        f"time() - max by (namespace) ({metric}{{{pods}}}) > {seconds}",
        STALE_FOR,
        labels,
        f"{cluster.name}: no base backup for over {prom_duration(threshold)}",
        f"The newest base backup of {cluster.name} is older than the largest gap of its "
        "ScheduledBackup plus a grace.",
        Probe(
            "stale",
            (_series(metric, pod),),
            threshold=threshold,
            labels=(("namespace", cluster.namespace),),
        ),
    )
    return [wal, stale]


def offsite_alerts(catalog: Catalog) -> list[Alert]:
    settings = catalog.settings
    alerts: list[Alert] = []
    # A Cloud Sync task's finish is seen only at the NAS monitor's next run: the full sync's
    # last success reaches Prometheus up to the monitor's own largest gap late.
    monitor = None
    if settings.offsite is not None and settings.offsite.full_sync_by == "cloudsync":
        monitor = settings.truenas.monitor_schedule if settings.truenas is not None else None
    for kind, schedule in (
        ("incremental", settings.offsite_incremental),
        ("full", settings.offsite_full_sync),
    ):
        if schedule is None:
            continue
        labels = {"severity": "warning", "layer": "offsite", "sync": kind}
        selector = {"sync": kind}
        threshold = alert_threshold(schedule)
        late_by = monitor.max_gap() if monitor is not None and kind == "full" else None
        if late_by is not None:
            threshold += late_by
        stale = stale_alerts(
            "OffsiteSync",
            "offsite_sync_last_success_timestamp",
            selector,
            threshold,
            labels,
            f"the {kind} offsite sync",
            threshold,
        )
        if late_by is not None:
            late = (
                " The NAS monitor reports the Cloud Sync task's finish up to "
                f"{prom_duration(late_by)} late (its own largest gap), which the "
                "threshold includes."
            )
            stale = [dataclasses.replace(a, description=a.description + late) for a in stale]
        alerts += stale
        alerts.append(
            Alert(
                "OffsiteSyncFailing",
                f"offsite_sync_last_run_success{_selector(selector)} == 0",
                dt.timedelta(minutes=5),
                labels,
                f"the {kind} offsite sync failed",
                f"The last {kind} sync to {settings.offsite_target} did not succeed.",
                Probe(
                    "value",
                    (_series("offsite_sync_last_run_success", selector),),
                    (0,),
                    (1,),
                    labels=tuple(selector.items()),
                ),
            )
        )
    return alerts


def snapshot_alerts(catalog: Catalog) -> list[Alert]:
    settings = catalog.settings
    alerts: list[Alert] = []
    lvm = settings.lvm_snapshots
    if lvm is not None and any(s.snapshot_layer == "lvm" for s in catalog.services):
        labels = {"severity": "warning", "layer": "lvm"}
        threshold = alert_threshold(lvm.schedule)
        alerts += stale_alerts(
            "LVMSnapshot",
            "lvm_snapshot_last_success_timestamp",
            {},
            threshold,
            labels,
            "the LVM thin snapshots",
            threshold,
        )
        alerts += [
            Alert(
                "LVMSnapshotFailing",
                "lvm_snapshot_last_run_success == 0",
                dt.timedelta(minutes=5),
                labels,
                "the LVM thin snapshot run failed",
                "The last run of the LVM snapshot script did not succeed.",
                Probe("value", (_series("lvm_snapshot_last_run_success", {}),), (0,), (1,)),
            ),
            Alert(
                "LVMThinPoolLow",
                f"lvm_thin_pool_free_percent < {lvm.min_free_percent}",
                dt.timedelta(minutes=15),
                labels,
                "the LVM thin pool is nearly full",
                f"Less than {lvm.min_free_percent}% of the thin pool is free: snapshots "
                "will fail, and so may the volumes.",
                Probe(
                    "value",
                    (_series("lvm_thin_pool_free_percent", {}),),
                    (lvm.min_free_percent - 1,),
                    (lvm.min_free_percent + 10,),
                ),
            ),
        ]
    if settings.backup_disk_selector is not None:
        selector = settings.backup_disk_selector
        # A series the selector selects, for the promtool test (the catalog checked one exists).
        matchers = satisfying_labels(parse_matchers(selector)) or {}
        limit = settings.backup_disk_min_free_percent
        alerts.append(
            Alert(
                "BackupDiskNearlyFull",
                f"node_filesystem_avail_bytes{{{selector}}}"
                f" / node_filesystem_size_bytes{{{selector}}} * 100 < {limit}",
                dt.timedelta(minutes=30),
                {"severity": "warning", "layer": "backup-disk"},
                "the backup disk is nearly full",
                f"Less than {limit}% of the filesystem the backups land on is free.",
                Probe(
                    "value",
                    (
                        _series("node_filesystem_avail_bytes", matchers),
                        _series("node_filesystem_size_bytes", matchers),
                    ),
                    (limit - 1, 100),
                    (limit + 10, 100),
                    labels=tuple(matchers.items()),
                ),
            )
        )
    return alerts


#: The groups of the catalog last asked about, in order and by name: the alerts, runbooks
#: and docs generators all need them, in one run, for one catalog.
_LAST_GROUPS: tuple[Catalog, tuple[RuleGroup, ...], dict[str, RuleGroup]] | None = None


def _known_groups(catalog: Catalog) -> tuple[tuple[RuleGroup, ...], dict[str, RuleGroup]]:
    global _LAST_GROUPS
    if _LAST_GROUPS is None or _LAST_GROUPS[0] is not catalog:
        groups = tuple(_rule_groups(catalog))
        _LAST_GROUPS = (catalog, groups, {group.name: group for group in groups})
    return _LAST_GROUPS[1], _LAST_GROUPS[2]


def rule_groups(catalog: Catalog) -> list[RuleGroup]:
    """Every alert of the catalog: a group per service and family, one per storage layer."""
    return list(_known_groups(catalog)[0])


def rule_group(catalog: Catalog, name: str) -> RuleGroup | None:
    """The catalog's rule group ``name`` (``None``: it has none)."""
    return _known_groups(catalog)[1].get(name)


def _rule_groups(catalog: Catalog) -> list[RuleGroup]:
    groups: list[RuleGroup] = []
    r2 = catalog.settings.volsync.r2 is not None
    for service in catalog.services:
        base = catalog.settings.runbook_base_url
        runbook = f"{base}/restore-{service.name}.md" if base else ""
        families: list[tuple[str, list[Alert]]] = []
        if service.uses("dump"):
            families.append((f"backup-{service.name}", backup_job_alerts(service, catalog)))
        if service.drill is not None and service.drill.layer != "kopiur":
            alerts = drill_alerts(service, service.drill)
            if runbook:
                url = f"{runbook}#restore-drill"
                alerts = [dataclasses.replace(a, runbook_url=url) for a in alerts]
            families.append((drill_group_name(service), alerts))
        if service.uses("volsync"):
            # Per app: one kept out of the offsite copies has no R2 source to watch.
            copied = r2 and service.volsync is not None and service.volsync.r2_schedule is not None
            families.append((f"volsync-{service.name}", volsync_alerts(service, copied)))
        if service.uses("kopiur") and service.kopiur is not None:
            families.append((f"kopiur-{service.name}", kopiur_alerts(service)))
        if service.uses("cnpg") and service.cnpg is not None:
            cluster = service.cnpg
            alerts = cnpg_alerts(service, cluster, cluster.base_schedule)
            families.append((f"cnpg-{cluster.key}", alerts))
        for name, alerts in families:
            linked = tuple(
                a if a.runbook_url or not runbook else dataclasses.replace(a, runbook_url=runbook)
                for a in alerts
            )
            groups.append(RuleGroup(name, linked, service.name))
    for name, layer in (
        ("offsite", offsite_alerts(catalog)),
        ("snapshots", snapshot_alerts(catalog)),
    ):
        if layer:
            groups.append(RuleGroup(name, tuple(layer)))
    return sorted(groups, key=lambda g: g.name)


def _rule(alert: Alert) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.for_:
        rule["for"] = prom_duration(alert.for_)
    rule["labels"] = dict(alert.labels)
    rule["annotations"] = _annotations(alert)
    return rule


def _annotations(alert: Alert) -> dict[str, str]:
    annotations = {"summary": alert.summary, "description": alert.description}
    if alert.runbook_url:
        annotations["runbook_url"] = alert.runbook_url
    return annotations


def rules_spec(group: RuleGroup) -> dict[str, Any]:
    """The PrometheusRule ``spec``, which is also a plain Prometheus rule file."""
    return {"groups": [{"name": group.name, "rules": [_rule(a) for a in group.alerts]}]}


def _values(value: float, steps: int) -> str:
    return f"{value:g}+0x{steps}"


def _expected(alert: Alert) -> dict[str, Any]:
    return {
        "exp_labels": {**dict(alert.probe.labels), **alert.labels},
        "exp_annotations": _annotations(alert),
    }


def _series_list(probe: Probe, values: tuple[float, ...], steps: int) -> list[dict[str, str]]:
    return [
        {"series": f"{metric}{_selector(dict(labels))}", "values": _values(v, steps)}
        for (metric, labels), v in zip(probe.series, values, strict=True)
    ]


def _at(span: dt.timedelta) -> str:
    return prom_duration(span)


def _ceil(span: dt.timedelta, step: dt.timedelta) -> dt.timedelta:
    """The first evaluation at or after ``span``."""
    return step * -(-span // step)


def _recovery_test(alert: Alert, step: dt.timedelta) -> dict[str, Any]:
    """Healthy, then a failure at ``failed``: silent until its threshold and ``for`` have
    passed, firing then, and silent again from the next success on."""
    probe = alert.probe
    failed = 2 * step
    # A `>` threshold first holds at the evaluation after it; `== 0` at once.
    first = failed + (step * (probe.threshold // step + 1) if probe.threshold else dt.timedelta())
    firing = first + _ceil(alert.for_, step)
    recovered = firing + step
    moments = {AT_FAILURE: failed, AT_RECOVERY: recovered}

    def value(v: float) -> str:
        return f"{int(moments[v].total_seconds()) if v in moments else v:g}"

    samples = recovered // step + 2
    series = []
    for index, (metric, labels) in enumerate(probe.series):
        phases = [
            (failed // step, probe.silent[index]),
            (recovered // step - failed // step, probe.firing[index]),
            (samples - recovered // step, probe.recovered[index]),
        ]
        values = " ".join(f"{value(v)}x{count - 1}" for count, v in phases)
        series.append({"series": f"{metric}{_selector(dict(labels))}", "values": values})
    fires = dict.fromkeys((failed - step, firing - step, recovered, recovered + step), False)
    fires[firing] = True
    checks: list[dict[str, Any]] = [
        {
            "eval_time": _at(t),
            "alertname": alert.name,
            "exp_alerts": [_expected(alert)] if firing_then else [],
        }
        for t, firing_then in sorted(fires.items())
    ]
    return {"interval": _at(step), "input_series": series, "alert_rule_test": checks}


def _shrink_tests(alert: Alert, step: dt.timedelta) -> list[dict[str, Any]]:
    """A steady size, a large drop and a small drop of a size gauge scraped between pushes.

    The first sample is the first run's (nothing before it in the window). The drop comes
    at ``dropped``: the large one fires from then (plus the alert's ``for``), the small one
    never; the steady size is silent at every one of those moments.
    """
    probe = alert.probe
    # Samples on the evaluation grid, at least four to a window (one of a few minutes too),
    # so that the window holds the former size when the drop is seen.
    step_s, room = int(step.total_seconds()), max(1, int(probe.window.total_seconds()) // 4)
    interval = dt.timedelta(
        seconds=next(d for d in range(min(step_s, room), 0, -1) if step_s % d == 0)
    )
    dropped = 2 * step
    fires = dropped + _ceil(alert.for_, step)
    moments = {dt.timedelta(): False, dropped - step: False, fires: True, fires + step: True}
    samples = (fires + 2 * step) // interval + 1
    before = dropped // interval  # samples of the former size

    def case(after: tuple[float, ...], firing: bool) -> dict[str, Any]:
        series = [
            {
                "series": f"{metric}{_selector(dict(labels))}",
                "values": f"{first:g}x{before - 1} {then:g}x{samples - before - 1}",
            }
            for (metric, labels), first, then in zip(probe.series, probe.before, after, strict=True)
        ]
        checks = [
            {
                "eval_time": _at(t),
                "alertname": alert.name,
                "exp_alerts": [_expected(alert)] if firing and fires_then else [],
            }
            for t, fires_then in sorted(moments.items())
        ]
        return {"interval": _at(interval), "input_series": series, "alert_rule_test": checks}

    return [case(probe.before, False), case(probe.firing, True), case(probe.silent, False)]


def promtool_step(alerts: tuple[Alert, ...]) -> dt.timedelta:
    """The sample and evaluation step of a group's tests: 5 minutes, or coarser for sparse
    schedules, so that a test covers its longest window in about 300 evaluations."""
    longest = max([a.for_ for a in alerts] + [a.probe.threshold for a in alerts] + [dt.timedelta()])
    minutes = max(5, -(-int(longest.total_seconds()) // (300 * 60)))
    return dt.timedelta(minutes=minutes)


def promtool_tests_for(
    alert: Alert, siblings: list[Alert], step: dt.timedelta = STEP
) -> list[dict[str, Any]]:
    """The promtool test groups that prove ``alert`` fires when, and only when, it should.

    ``siblings`` are the family's other alerts of the same name: an absence test gives them
    their series, or they would be absent too.
    """
    probe = alert.probe
    held = max(step, _ceil(alert.for_, step))  # an active alert fires one `for` later
    if probe.kind == "stale":
        before = probe.threshold - step  # one sample-step before the threshold: silent
        pending = step * (probe.threshold // step + 1)  # the first evaluation past it
        firing = pending + held
        # Still silent one step before it fires: a threshold even one step too short
        # would make the alert fire there.
        silent = sorted({before, pending, firing - step})
        checks: list[dict[str, Any]] = [
            {"eval_time": _at(t), "alertname": alert.name, "exp_alerts": []} for t in silent
        ]
        checks.append(
            {"eval_time": _at(firing), "alertname": alert.name, "exp_alerts": [_expected(alert)]}
        )
        steps = (firing + step) // step
        series = _series_list(probe, (0,), steps)
        return [{"interval": _at(step), "input_series": series, "alert_rule_test": checks}]
    if probe.kind == "recovers":
        return [_recovery_test(alert, step)]
    if probe.kind == "shrinks":
        return _shrink_tests(alert, step)
    firing = held + step
    if probe.kind == "absent":
        checks = [
            {"eval_time": _at(firing), "alertname": alert.name, "exp_alerts": [_expected(alert)]}
        ]
        if alert.for_ > step:
            checks.insert(
                0, {"eval_time": _at(alert.for_ - step), "alertname": alert.name, "exp_alerts": []}
            )
        present = [
            series
            for other in siblings
            for series in _series_list(
                other.probe, (1,) * len(other.probe.series), (firing + step) // step
            )
        ]
        return [{"interval": _at(step), "input_series": present, "alert_rule_test": checks}]
    steps = (firing + step) // step
    return [
        {
            "interval": _at(step),
            "input_series": _series_list(probe, probe.firing, steps),
            "alert_rule_test": [
                {
                    "eval_time": _at(firing),
                    "alertname": alert.name,
                    "exp_alerts": [_expected(alert)],
                }
            ],
        },
        {
            "interval": _at(step),
            "input_series": _series_list(probe, probe.silent, steps),
            "alert_rule_test": [
                {"eval_time": _at(firing), "alertname": alert.name, "exp_alerts": []}
            ],
        },
    ]


def promtool_tests(group: RuleGroup) -> dict[str, Any]:
    alerts = group.alerts
    step = promtool_step(alerts)
    return {
        "rule_files": [f"../rules/{group.name}.rules.yaml"],
        "evaluation_interval": _at(step),
        "tests": [
            test
            for alert in alerts
            for test in promtool_tests_for(
                alert,
                [other for other in alerts if other.name == alert.name and other is not alert],
                step,
            )
        ],
    }


@register_generator("alerts", description="PrometheusRules, rule files and promtool tests")
def generate_alerts(catalog: Catalog) -> Iterator[OutputFile]:
    settings = catalog.settings
    groups = rule_groups(catalog)
    problems = dangling(catalog, ((a.name, a.expr) for g in groups for a in g.alerts))
    if problems:
        raise PlanError(problems)
    for group in groups:
        spec = rules_spec(group)
        metadata: dict[str, Any] = {
            "name": f"homeops-{group.name}",
            "namespace": settings.alerts_namespace,
        }
        if settings.alert_rule_labels:
            metadata["labels"] = dict(settings.alert_rule_labels)
        rule = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": metadata,
            "spec": spec,
        }
        yield OutputFile(
            f"kubernetes/monitoring/prometheusrules/{group.name}.yaml",
            YamlDocuments((rule,)),
            subject=group.subject,
        )
        yield OutputFile(
            f"prometheus/rules/{group.name}.rules.yaml",
            YamlDocuments((spec,)),
            subject=group.subject,
        )
        yield OutputFile(
            f"prometheus/tests/{group.name}.test.yaml",
            YamlDocuments((promtool_tests(group),)),
            subject=group.subject,
        )
