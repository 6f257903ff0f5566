"""The resolved catalog, as reviewable data (``catalog/resolved.yaml``) and as ``README.md``.

A policy change shows up in review as a diff of ``resolved.yaml``: every service's methods,
schedule, largest gap between runs, retention, snapshot layer and offsite membership.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.plan import OutputFile, TemplateRender, YamlDocuments
from homeops_gen.registry import register_generator
from homeops_gen.schedule import WEEKDAYS, format_duration

__all__ = ["generate_index", "generate_resolved_catalog", "summarize_service"]


def summarize_service(service: Service) -> dict[str, Any]:
    """Every resolved value of ``service`` that a reviewer cares about, as plain data."""
    schedule = service.schedule
    summary: dict[str, Any] = {
        "name": service.name,
        "namespace": service.namespace,
        "storage": service.storage,
        "churn": service.churn,
        "engine": service.engine,
        "criticality": service.criticality,
        "methods": list(service.methods),
    }
    if service.methods:
        summary["schedule"] = {"cron": schedule.cron}
        if schedule.first_weekday is not None:
            summary["schedule"]["only_on_first"] = WEEKDAYS[schedule.first_weekday]
        summary["schedule"]["largest_gap"] = format_duration(schedule.max_gap())
        summary["retention"] = str(service.retention)
    if service.uses("dump"):
        summary["backup_path"] = service.backup_path
    if service.integrity is not None:
        summary["integrity_check"] = {"cron": service.integrity.cron}
    summary["snapshots"] = service.snapshot_layer or "none"
    summary["offsite"] = "included" if service.offsite.included else "excluded"
    if service.offsite.reason is not None:
        summary["offsite_reason"] = service.offsite.reason
    return summary


@register_generator("resolved-catalog", description="catalog/resolved.yaml: every resolved value")
def generate_resolved_catalog(catalog: Catalog) -> Iterator[OutputFile]:
    settings = catalog.settings
    document = {
        "version": catalog.version,
        "settings": {
            "timezone": settings.timezone,
            "nfs": {"server": settings.nfs_server, "backup_root": settings.nfs_backup_root},
            "pushgateway": settings.pushgateway,
        },
        "services": [summarize_service(s) for s in catalog.services],
    }
    yield OutputFile("catalog/resolved.yaml", YamlDocuments((document,)))


@register_generator("index", description="README.md: what out/ holds, one row per service")
def generate_index(catalog: Catalog) -> Iterator[OutputFile]:
    rows = [summarize_service(s) for s in catalog.services]
    methods_in_use = sorted({m for s in catalog.services for m in s.methods})
    from homeops_gen.generators.alerts import rule_groups

    context = {
        "catalog": catalog,
        "rows": rows,
        "methods_in_use": methods_in_use,
        "storages_in_use": sorted({s.storage for s in catalog.services}),
        "alert_groups": len(rule_groups(catalog)),
    }
    yield OutputFile("README.md", TemplateRender("markdown/index.md.j2", context))
