"""Documents derived from the catalog (``out/docs/``).

- ``protection-matrix.md``: one row per service, each protection layer with its schedule,
  retention and RPO (from :mod:`homeops_gen.protection`), the alerts that watch it, its
  runbook, its restore drill's cadence and CronJob, and its declared RTO;
- ``snapshots.md``: the storage snapshot layers: the ZFS periodic snapshot tasks, the LVM
  thin snapshots and the volumes they leave out, and how to restore from each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.diagrams import catalog_flowchart
from homeops_gen.generators.runbooks import alerts_by_service, has_runbook, runbook_path
from homeops_gen.generators.storage_layers import lvm_exclusions
from homeops_gen.markdown import md_text
from homeops_gen.plan import OutputFile, TemplateRender, Text
from homeops_gen.protection import (
    Layer,
    local_rpo,
    offsite_rpo,
    protection_layers,
    restore_drill,
)
from homeops_gen.registry import register_generator
from homeops_gen.schedule import Schedule, format_duration

__all__ = [
    "generate_metric_doc",
    "generate_protection_matrix",
    "generate_snapshot_doc",
    "matrix_row",
    "schedule_rows",
]

_COLUMNS = {
    "snapshots": ("zfs", "lvm"),
    "backup": ("dump",),
    "volsync": ("volsync", "r2", "kopiur", "kopiur-r2"),
    "wal": ("cnpg-wal", "cnpg-base"),
    "offsite": ("nas-sync", "r2", "kopiur-r2"),
}


def _cell(layers: list[Layer], kinds: tuple[str, ...]) -> str:
    return "<br>".join(layer.describe() for layer in layers if layer.kind in kinds) or "—"


#: The storage layers' own alerts, by the kind of layer they watch.
_LAYER_ALERTS = {"lvm": "LVMSnapshotStale", "nas-sync": "OffsiteSyncStale"}


def _layer_alerts(layers: list[Layer]) -> list[str]:
    """The storage layers' alerts that also watch a service protected by ``layers``."""
    return [_LAYER_ALERTS[layer.kind] for layer in layers if layer.kind in _LAYER_ALERTS]


def has_snapshot_doc(catalog: Catalog) -> bool:
    return bool(catalog.settings.zfs_snapshots or catalog.settings.lvm_snapshots)


def matrix_row(catalog: Catalog, service: Service, alerts: list[str]) -> dict[str, Any]:
    """One service's row of the protection matrix, as plain strings."""
    layers = protection_layers(catalog, service)
    best, away = local_rpo(layers), offsite_rpo(layers)
    offsite = _cell(layers, _COLUMNS["offsite"])
    if not service.offsite.included:
        offsite = f"excluded: {md_text(service.offsite.reason or 'no reason given')}"
    drill = restore_drill(catalog, service)
    snapshots = _cell(layers, _COLUMNS["snapshots"])
    if snapshots == "—" and service.snapshot_layer:
        snapshots = f"{service.snapshot_layer} (no schedule in settings.snapshots)"
    row = {
        "name": service.name,
        "storage": service.storage,
        "churn": service.churn,
        "criticality": service.criticality,
        **{column: _cell(layers, kinds) for column, kinds in _COLUMNS.items()},
        "snapshots": snapshots,
        "offsite": offsite,
        "rpo": format_duration(best) if best is not None else "none",
        "offsite_rpo": format_duration(away) if away is not None else "—",
        "declared_rpo": format_duration(service.rpo) if service.rpo else "",
        "alerts": ", ".join(f"`{a}`" for a in [*alerts, *_layer_alerts(layers)]) or "—",
        "runbook": (
            f"[restore](runbooks/restore-{service.name}.md)"
            if has_runbook(service)
            else "[snapshots](snapshots.md)"
            if service.snapshot_layer and has_snapshot_doc(catalog)
            else "—"
        ),
        "drill": drill.describe() if drill is not None else "—",
        "rto": format_duration(service.rto) if service.rto else "—",
    }
    return {key: str(value).replace("|", "\\|") for key, value in row.items()}


#: The matrix's name for each scheduled layer.
_LAYER_NAMES = {
    "zfs": "ZFS snapshots",
    "lvm": "LVM thin snapshots",
    "dump": "application backup",
    "volsync": "VolSync Kopia (NFS)",
    "r2": "VolSync restic (R2)",
    "kopiur": "kopiur Kopia (NFS)",
    "kopiur-r2": "kopiur Kopia (R2)",
    "cnpg-base": "CNPG base backup",
    "nas-sync": "NAS incremental sync",
}
_KOPIA_MAINTENANCE = "Kopia maintenance"
_KOPIUR_SHARED = ("kopiur maintenance (full)", "kopiur maintenance (quick)")
_KOPIUR_VERIFY = "kopiur quick verification"
_RESTORE_DRILL = "restore drill"
#: The table's order: the layers as the matrix lists them, then the shared jobs, then the
#: restore drills (which prove a layer rather than protect).
_ORDER = [
    *_LAYER_NAMES.values(),
    "NAS full sync",
    _KOPIA_MAINTENANCE,
    *_KOPIUR_SHARED,
    _KOPIUR_VERIFY,
    _RESTORE_DRILL,
]


def schedule_rows(catalog: Catalog) -> list[dict[str, str]]:
    """Every schedule of the outputs once: the layer, who runs it, the text it is given, the
    zone it reads it in, what DST does to it, and the services it serves."""
    found: dict[tuple[str, Schedule], list[str]] = {}
    for service in catalog.services:
        for layer in protection_layers(catalog, service):
            for schedule in layer.schedules:
                found.setdefault((_LAYER_NAMES[layer.kind], schedule), []).append(service.name)
        drill = restore_drill(catalog, service)
        if drill is not None:
            found.setdefault((_RESTORE_DRILL, drill.schedule), []).append(service.name)
        if service.uses("kopiur") and service.kopiur and service.kopiur.quick_verify:
            key = (_KOPIUR_VERIFY, service.kopiur.quick_verify)
            found.setdefault(key, []).append(service.name)
    settings = catalog.settings
    shared: list[tuple[str, Schedule | None]] = [("NAS full sync", settings.offsite_full_sync)]
    if any(s.uses("volsync") for s in catalog.services):
        shared.append((_KOPIA_MAINTENANCE, settings.volsync.maintenance_schedule))
    if any(s.uses("kopiur") for s in catalog.services):
        shared.append((_KOPIUR_SHARED[0], settings.kopiur.maintenance_full))
        shared.append((_KOPIUR_SHARED[1], settings.kopiur.maintenance_quick))
    for name, job in shared:
        if job is not None:
            found.setdefault((name, job), [])
    rows: list[dict[str, str]] = []
    for (name, schedule), services in found.items():
        timing = schedule.timing
        rows.append(
            {
                "layer": name,
                "runtime": timing.runtime,
                "cron": f"`{timing.cron}`{schedule.guard}",
                "zone": timing.zone,
                "dst": timing.dst,
                "services": ", ".join(sorted(set(services))) or "all",
            }
        )
    return sorted(rows, key=lambda r: (_ORDER.index(r["layer"]), r["services"], r["cron"]))


@register_generator("protection-matrix", description="out/docs/protection-matrix.md")
def generate_protection_matrix(catalog: Catalog) -> Iterator[OutputFile]:
    alerts = alerts_by_service(catalog)
    rows = [matrix_row(catalog, s, alerts.get(s.name, [])) for s in catalog.services]
    runbooks = [runbook_path(s).removeprefix("docs/") for s in catalog.services if has_runbook(s)]
    context = {
        "catalog": catalog,
        "rows": rows,
        "schedules": schedule_rows(catalog),
        # Every service's data through its layers, as one Mermaid flowchart ("Layers").
        "layers_diagram": catalog_flowchart(catalog),
        "runbooks": runbooks,
        "snapshot_doc": has_snapshot_doc(catalog),
    }
    yield OutputFile("docs/protection-matrix.md", TemplateRender("markdown/matrix.md.j2", context))


@register_generator("snapshot-doc", description="out/docs/snapshots.md: the snapshot layers")
def generate_snapshot_doc(catalog: Catalog) -> Iterator[OutputFile]:
    settings = catalog.settings
    if not has_snapshot_doc(catalog):
        return
    zfs_services = [s.name for s in catalog.services if s.snapshot_layer == "zfs"]
    lvm_services = [s.name for s in catalog.services if s.snapshot_layer == "lvm"]
    context = {
        "settings": settings,
        "zfs": [
            {
                "pool": task.pool,
                "naming": task.naming,
                "cron": task.schedule.description,
                "gap": format_duration(task.schedule.max_gap()),
                "retention": str(task.retention),
            }
            for task in settings.zfs_snapshots
        ],
        "zfs_services": zfs_services,
        "lvm": settings.lvm_snapshots,
        "lvm_gap": (
            format_duration(settings.lvm_snapshots.schedule.max_gap())
            if settings.lvm_snapshots
            else ""
        ),
        "lvm_services": lvm_services,
        "lvm_excluded": lvm_exclusions(catalog),
    }
    yield OutputFile("docs/snapshots.md", TemplateRender("markdown/snapshots.md.j2", context))


@register_generator("metric-doc", description="out/docs/metrics.md: each metric's source")
def generate_metric_doc(catalog: Catalog) -> Iterator[OutputFile]:
    """Every metric the alerts read or the generated programs push, where it comes from and
    which alerts read it (the join the alerts generator checks)."""
    from homeops_gen.generators.alerts import rule_groups
    from homeops_gen.metrics import catalog_metrics, sources

    readers: dict[str, set[str]] = {}
    for group in rule_groups(catalog):
        for alert in group.alerts:
            for metric in catalog_metrics(catalog, alert.expr):
                readers.setdefault(metric, set()).add(alert.name)
    # Per-service producers collapse into one row: <service> in the path, the services listed.
    rows: dict[tuple[str, str, str], list[str]] = {}
    for source in sources(catalog):
        if not source.generated and source.metric not in readers:
            continue  # an exporter's metric no alert of this catalog reads
        labels = dict(source.labels)
        service = labels.pop("service", "")
        path = source.producer.replace(f"/{service}/", "/<service>/") if service else ""
        producer = (
            f"`out/{path or source.producer}`" if source.generated else md_text(source.producer)
        )
        series = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        key = (source.metric, producer, f"`{{{series}}}`" if series else "all")
        rows.setdefault(key, []).extend([service] if service else [])
    lines = [
        "# Metrics and their sources",
        "",
        "Every metric the generated alerts read, and every metric the generated programs",
        "push: who produces it (a generated file, or a program of the stack named in",
        "`settings.alerts.external_metrics`), for which series, and the alerts that read it.",
        "Generation refuses an alert that reads a metric nothing here produces.",
        "",
    ]
    if not rows:
        lines.append("No alert reads a metric, and no generated program pushes one.")
        yield OutputFile("docs/metrics.md", Text("\n".join(lines) + "\n"))
        return
    lines += ["| metric | produced by | series | services | read by |", "|---|---|---|---|---|"]
    for (metric, producer, series), services in sorted(rows.items()):
        alerts = ", ".join(sorted(readers.get(metric, ()))) or "—"
        listed = ", ".join(sorted(services)) or "—"
        lines.append(f"| `{metric}` | {producer} | {series} | {listed} | {alerts} |")
    yield OutputFile("docs/metrics.md", Text("\n".join(lines) + "\n"))
