"""Where every metric the generated alerts read comes from: one source of truth.

A metric is produced either by a program homeops_gen generates (the backup, integrity and
restore drill scripts, the NAS's offsite sync, the NAS monitor, the PVE host's LVM snapshot
script), or by a program of the stack (kube-state-metrics, node_exporter, VolSync, kopiur,
CloudNativePG and its barman-cloud plugin), which the catalog may name in
``settings.alerts.external_metrics``. A :class:`Source` may produce a metric only for some
label values: the offsite sync's ``sync="full"`` series comes from the sync script or from
the NAS monitor, never both.

:func:`dangling` joins each alert's expression to the sources; the alerts generator refuses
a catalog whose alerts would read a metric nothing produces (it would fire
``...NeverSucceeded`` forever), and ``out/docs/metrics.md`` tables the join.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog

__all__ = [
    "STACK_EXPORTERS",
    "Read",
    "Source",
    "catalog_metrics",
    "dangling",
    "external_metrics",
    "metrics_read",
    "sources",
]

#: The metrics of the stack's own programs that the generated alerts are written against,
#: by program (the names are those the programs export; see each program's docs).
STACK_EXPORTERS: Mapping[str, tuple[str, ...]] = {
    # CronJob status, for the backup jobs' failure and never-scheduled alerts.
    "kube-state-metrics": (
        "kube_cronjob_status_last_schedule_time",
        "kube_cronjob_status_last_successful_time",
    ),
    # The NAS's filesystems, for the backup disk's free space.
    "node-exporter": ("node_filesystem_avail_bytes", "node_filesystem_size_bytes"),
    # VolSync's operator.
    "volsync": ("volsync_volume_out_of_sync",),
    # kopiur's operator (its telemetry: a policy's last good backup and outcome, the last
    # good verification of its snapshots).
    "kopiur": (
        "kopiur_policy_last_backup_success_timestamp_seconds",
        "kopiur_snapshot_verified_timestamp_seconds",
        "kopiur_snapshotpolicy_last_backup_success",
    ),
    # CloudNativePG's instance manager (its default pg_stat_archiver query) and, for
    # clusters backed up in-tree, its collector.
    "cloudnative-pg": (
        "cnpg_collector_last_available_backup_timestamp",
        "cnpg_pg_stat_archiver_last_archived_time",
        "cnpg_pg_stat_archiver_last_failed_time",
    ),
    # The barman-cloud plugin's sidecar, for clusters backed up through the plugin.
    "plugin-barman-cloud": ("barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",),
}


def external_metrics(declared: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The built-in exporters with the catalog's entries replacing or adding programs."""
    merged = dict(STACK_EXPORTERS)
    merged.update(declared)
    return dict(sorted(merged.items()))


@dataclass(frozen=True)
class Source:
    """``producer`` (a path in ``out/`` when ``generated``, else a program's name) produces
    ``metric``, for the series whose labels include ``labels``."""

    metric: str
    producer: str
    generated: bool
    labels: tuple[tuple[str, str], ...] = ()


_BACKUP = (
    "backup_last_duration_seconds",
    "backup_last_failure_timestamp",
    "backup_last_items",
    "backup_last_run_success",
    "backup_last_size_bytes",
    "backup_last_success_timestamp",
)
_DRILL = (
    "restore_drill_backup_size_bytes",
    "restore_drill_duration_seconds",
    "restore_drill_last_failure_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_last_success_timestamp",
    "restore_drill_restored_items",
)
_INTEGRITY = ("sqlite_integrity_last_check_timestamp", "sqlite_integrity_ok")
_OFFSITE = (
    "offsite_sync_bytes_copied",
    "offsite_sync_duration_seconds",
    "offsite_sync_files_copied",
    "offsite_sync_last_run_success",
    "offsite_sync_last_success_timestamp",
)
_MONITOR = (
    "offsite_sync_last_run_success",
    "offsite_sync_last_success_timestamp",
    "offsite_sync_running",
)
_LVM = (
    "lvm_snapshot_count",
    "lvm_snapshot_created",
    "lvm_snapshot_last_run_success",
    "lvm_snapshot_last_success_timestamp",
    "lvm_thin_pool_free_percent",
)


def sources(catalog: Catalog) -> list[Source]:
    """Every metric source of the catalog: the generated programs, then the stack's."""
    from homeops_gen.generators import lvm_snapshots, nas_monitor, offsite_sync
    from homeops_gen.generators.backup_jobs import (
        BACKUP_METRICS_JOB,
        DRILL_METRICS_JOB,
        INTEGRITY_METRICS_JOB,
    )
    from homeops_gen.generators.drills import drill_folder

    found: list[Source] = []

    def add(names: Iterable[str], producer: str, labels: tuple[tuple[str, str], ...] = ()) -> None:
        found.extend(Source(name, producer, True, labels) for name in names)

    for service in catalog.services:
        if service.uses("dump"):
            stack = f"terraform/stacks/{service.name}"
            labels = (("service", service.name),)
            add(_BACKUP, f"{stack}/backup.sh", (("job", BACKUP_METRICS_JOB), *labels))
            if service.integrity is not None and service.engine == "sqlite":
                add(
                    _INTEGRITY,
                    f"{stack}/integrity-check.sh",
                    (("job", INTEGRITY_METRICS_JOB), *labels),
                )
            if service.drill is not None and service.drill.layer == "dump":
                add(_DRILL, f"{stack}/drill.sh", (("job", DRILL_METRICS_JOB), *labels))
        if service.drill is not None and service.drill.layer in ("cnpg", "volsync"):
            script = f"{drill_folder(service)}/drill.sh"
            add(_DRILL, script, (("job", DRILL_METRICS_JOB), ("service", service.name)))
    settings = catalog.settings
    offsite = settings.offsite
    if offsite is not None:
        script = f"offsite/{offsite_sync.SCRIPT_NAME}"
        job = ("job", offsite_sync.METRICS_JOB)
        add(_OFFSITE, script, (job, ("sync", "incremental")))
        if offsite.full_sync_by == "script":
            add(_OFFSITE, script, (job, ("sync", "full")))
        elif settings.truenas is not None:
            monitor = f"{nas_monitor.STACK}/{nas_monitor.MONITOR_SCRIPT}"
            add(_MONITOR, monitor, nas_monitor.MONITOR_METRICS_GROUP)
    lvm = settings.lvm_snapshots
    if lvm is not None and any(s.snapshot_layer == "lvm" for s in catalog.services):
        add(_LVM, lvm_snapshots.SCRIPT_PATH, (("job", lvm_snapshots.PUSH_JOB),))
    for program, names in settings.external_metrics.items():
        found.extend(Source(name, program, False) for name in names)
    return found


@dataclass(frozen=True)
class Read:
    """A metric an expression reads, with the label equalities its selector requires."""

    metric: str
    labels: tuple[tuple[str, str], ...]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
#: Where _GROUPING could match in ASCII text, searched for in its lower case (much faster
#: than a case-insensitive search, which has no literal to skip ahead to).
_GROUPING_LOWER = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(")
_RANGE = re.compile(r"\[[^\]]*\]")
_TOKEN = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?")
_EQUALITY = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*")')
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
    | {"group_left", "group_right", "atan2"}
)


def metrics_read(expr: str) -> list[Read]:
    """The metrics a PromQL expression of the generated alerts reads (a small reading of
    the grammar: selectors are names not followed by ``(``, with their ``{...}``)."""
    reads = []
    # Strings outside a selector's braces (label_replace's arguments, say) are no metric
    # names; ranges and grouping clauses hold none either.
    masked = _mask_strings(expr)
    if "[" in masked:
        masked = _RANGE.sub(" ", masked)
    if not masked.isascii() or _GROUPING_LOWER.search(masked.lower()) is not None:
        masked = _GROUPING.sub(" ", masked)
    position = 0
    while (match := _TOKEN.search(masked, position)) is not None:
        position = match.end()
        name, braces, call = match.groups()
        start = match.start()
        if start and (masked[start - 1].isdigit() or masked[start - 1] == "."):
            continue  # the unit of a number, such as 1e3
        if call or name.lower() in _KEYWORDS:
            if call and braces:
                raise ValueError(f"{name}{braces}( is no PromQL")
            continue
        labels = []
        for key, value in _EQUALITY.findall(_unquote_ops(braces or "")):
            labels.append((key, _literal(value)))
        reads.append(Read(name, tuple(labels)))
    return reads


_OTHER_OPS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*\s*(!=|=~|!~)\s*"(?:[^"\\]|\\.)*"')


def _unquote_ops(braces: str) -> str:
    """Keep only the ``=`` matchers (not ``!=``, ``=~`` or ``!~``) of a selector."""
    if "!" not in braces and "=~" not in braces:
        return braces  # only ``=`` matchers (most selectors)
    return _OTHER_OPS.sub(" ", braces)


def _literal(quoted_value: str) -> str:
    inner = quoted_value[1:-1]
    if "\\" not in inner and inner.isprintable():
        return inner  # no escape and no control character: JSON would read it as is
    import json

    value: str = json.loads(quoted_value)
    return value


#: The names of the metrics each expression of the catalog last asked about reads: the
#: alerts generator's check and ``docs/metrics.md`` read the same alerts, in one run, for
#: one catalog. Only the names are kept: the reads' labels (a 10,000-service catalog's
#: alerts select about 600,000) serve the check once.
_LAST_METRICS: tuple[Catalog, dict[str, tuple[str, ...]]] | None = None


def _known_metrics(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    global _LAST_METRICS
    if _LAST_METRICS is None or _LAST_METRICS[0] is not catalog:
        _LAST_METRICS = (catalog, {})
    return _LAST_METRICS[1]


def _names(reads: Iterable[Read]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(sys.intern(read.metric) for read in reads))


def catalog_metrics(catalog: Catalog, expr: str) -> tuple[str, ...]:
    """The names of the metrics ``expr``, an expression of ``catalog``'s alerts, reads (by
    :func:`metrics_read`, each once, in order; remembered for the catalog last asked
    about)."""
    known = _known_metrics(catalog)
    names = known.get(expr)
    if names is None:
        names = known[expr] = _names(metrics_read(expr))
    return names


def dangling(catalog: Catalog, exprs: Iterable[tuple[str, str]]) -> list[str]:
    """For ``(alert, expr)`` pairs, one line per metric read that no source produces for
    the labels the alert selects."""
    produced = _Produced(sources(catalog))
    known = _known_metrics(catalog)
    problems = []
    for alert, expr in exprs:
        reads = metrics_read(expr)
        if expr not in known:
            known[expr] = _names(reads)
        for read in reads:
            if not produced.covers(read):
                labels = ",".join(f"{k}={v!r}" for k, v in read.labels)
                problems.append(
                    f"alert {alert} reads {read.metric}{{{labels}}}, which no generated "
                    "program pushes and settings.alerts.external_metrics does not name"
                )
    return problems


class _Produced:
    """The sources, indexed so that joining a read to them costs the same however many
    services push the metric.

    A source produces a read when each of its labels the read also selects has the value
    the read wants (a label the read does not select is no constraint). The sources of a
    metric fall into a few shapes (the names of their labels, in order); for a shape and
    the positions of those names a read selects, a set holds the sources' values there.
    """

    def __init__(self, found: Iterable[Source]) -> None:
        self._shapes: dict[str, dict[tuple[str, ...], list[tuple[str, ...]]]] = {}
        for source in found:
            keys = tuple(key for key, _ in source.labels)
            values = tuple(value for _, value in source.labels)
            self._shapes.setdefault(source.metric, {}).setdefault(keys, []).append(values)
        self._projections: dict[
            tuple[str, tuple[str, ...], tuple[int, ...]], frozenset[tuple[str, ...]]
        ] = {}

    def covers(self, read: Read) -> bool:
        """Whether some source produces ``read``."""
        wanted = dict(read.labels)
        for keys, values in self._shapes.get(read.metric, {}).items():
            positions = tuple(i for i, key in enumerate(keys) if key in wanted)
            if not positions:
                return True  # a source of this shape constrains nothing the read selects
            index = (read.metric, keys, positions)
            projection = self._projections.get(index)
            if projection is None:
                projection = frozenset(tuple(v[i] for i in positions) for v in values)
                self._projections[index] = projection
            if tuple(wanted[keys[i]] for i in positions) in projection:
                return True
        return False


def _mask_strings(expr: str) -> str:
    """``expr`` with each string literal outside ``{...}`` blanked to ``""`` (a literal is
    inside when more ``{`` than ``}`` come before it, counted once, left to right)."""
    parts: list[str] = []
    kept = seen = opened = closed = 0
    for match in _STRING.finditer(expr):
        start = match.start()
        opened += expr.count("{", seen, start)
        closed += expr.count("}", seen, start)
        seen = start
        if opened <= closed:
            parts += (expr[kept:start], '""')
            kept = match.end()
    if not parts:
        return expr
    parts.append(expr[kept:])
    return "".join(parts)
