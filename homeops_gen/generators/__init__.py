"""Built-in generators. Importing this package registers them (see :mod:`homeops_gen.registry`)."""

from __future__ import annotations

from homeops_gen.generators import (
    alerts,
    backup_jobs,
    catalog_view,
    cnpg,
    dashboard,
    docs,
    drills,
    iscsi,
    kopiur,
    lvm_snapshots,
    nas_monitor,
    offsite_sync,
    routing,
    runbooks,
    scrape,
    storage_layers,
    truenas_tasks,
    volsync,
)

__all__ = [
    "alerts",
    "backup_jobs",
    "catalog_view",
    "cnpg",
    "dashboard",
    "docs",
    "drills",
    "iscsi",
    "kopiur",
    "lvm_snapshots",
    "nas_monitor",
    "offsite_sync",
    "routing",
    "runbooks",
    "scrape",
    "storage_layers",
    "truenas_tasks",
    "volsync",
]
