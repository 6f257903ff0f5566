"""``python -m homeops_gen explain SERVICE``: every resolved value, where it came from, and
the files generated for the service."""

from __future__ import annotations

from collections.abc import Mapping

from homeops_gen.catalog.loader import CatalogPositions
from homeops_gen.catalog.model import Catalog, Origin, Service
from homeops_gen.catalog.policy import PVC_BLOCKS
from homeops_gen.errors import Location
from homeops_gen.plan import Plan
from homeops_gen.protection import protection_layers
from homeops_gen.schedule import format_duration

__all__ = ["explain_service"]

#: Fields a service states directly, with the built-in value when it is left out.
_STATED = ("namespace", "storage", "churn", "engine", "criticality", "description")


def _origin(origin: Origin, positions: CatalogPositions) -> str:
    if origin.kind in ("catalog", "settings") and origin.loc:
        return f"{origin.kind} {positions.where(origin.loc)}"
    return f"{origin.kind}: {origin.detail}"


def _rows(service: Service, positions: CatalogPositions) -> list[tuple[str, str, str]]:
    loc: Location = ("services", service.index)
    rows = []
    for name in _STATED:
        value = str(getattr(service, name)) or "-"
        where = (
            f"catalog {positions.where((*loc, name))}" if positions.has((*loc, name)) else "default"
        )
        rows.append((name, value, where))
    o = service.origins
    schedule = service.schedule
    derived = [
        (
            "methods",
            ", ".join(service.methods) or "none (storage snapshots and offsite)",
            o["methods"],
        ),
        (
            "schedule",
            f"{schedule.description}, largest gap {format_duration(schedule.max_gap())}",
            o["schedule"],
        ),
        ("retention", str(service.retention), o["retention"]),
        ("stale_after", format_duration(service.stale_after), o["stale_after"]),
        ("snapshots", service.snapshot_layer or "none", o["snapshot_layer"]),
        (
            "offsite",
            "included" if service.offsite.included else f"excluded: {service.offsite.reason}",
            o["offsite"],
        ),
    ]
    if service.uses("dump"):  # only the dump job writes to the NFS backup folder
        derived.append(("backup_path", service.backup_path, o["backup_path"]))
    if service.integrity is not None:
        derived.append(("integrity", service.integrity.description, o["integrity"]))
    if service.drill is not None:
        drill = service.drill.schedule
        gap = format_duration(drill.max_gap())
        derived.append(("drill", f"{drill.description}, largest gap {gap}", o["drill"]))
    elif "drill" in o:
        derived.append(("drill", "none", o["drill"]))
    for name, declared in (("rpo", service.rpo), ("rto", service.rto)):
        if declared is not None:
            where = f"catalog {positions.where((*loc, name))}"
            rows.append((name, format_duration(declared), where))
    rows += [(name, value, _origin(origin, positions)) for name, value, origin in derived]
    if service.uses("dump"):
        rows += [
            ("job.image", service.job.image, "job settings"),
            ("job.shell", service.job.shell, "job settings"),
        ]
    if service.uses("volsync") and service.volsync is not None:
        rows += _volsync_rows(service, positions, "volsync")
    if service.uses("kopiur") and service.kopiur is not None:
        rows += _volsync_rows(service, positions, "kopiur")
        rows += _kopiur_rows(service, positions)
    return rows


def _block_key(service: Service, positions: CatalogPositions) -> str:
    """The key of the service's PVC block as written (``volsync``, ``kopiur`` or ``pvc``)."""
    return next((k for k in PVC_BLOCKS if positions.has(("services", service.index, k))), "volsync")


def _volsync_rows(
    service: Service, positions: CatalogPositions, engine: str
) -> list[tuple[str, str, str]]:
    app = service.volsync if engine == "volsync" else service.kopiur
    assert app is not None
    key = _block_key(service, positions)
    block: Location = ("services", service.index, key)

    def where(key: str, otherwise: str) -> str:
        loc = (*block, key)
        return f"catalog {positions.where(loc)}" if positions.has(loc) else otherwise

    def counts(retain: Mapping[str, int]) -> str:
        return ", ".join(f"{n} {period}" for period, n in retain.items() if n) or "nothing"

    method_default = (
        "policy: settings.volsync.copy_method where the class can take it"
        if app.snapshot_class is not None
        else f"policy: StorageClass {app.storage_class} has no CSI snapshots"
    )
    derived = "policy: counts left out are derived from the retention"
    rows = []
    if key == "pvc":
        rows.append(("pvc.engine", engine, where("engine", "settings.pvc_engine")))
    rows += [
        (f"{key}.copy_method", app.copy_method, where("copy_method", method_default)),
        (f"{key}.retain", counts(app.retain), where("retain", derived)),
    ]
    if app.r2_retain is not None:
        rows.append((f"{key}.r2_retain", counts(app.r2_retain), where("r2_retain", derived)))
    else:
        why = "offsite excluded" if not service.offsite.included else "no R2 store"
        rows.append((f"{key}.r2", "none", f"policy: {why}"))
    return rows


def _kopiur_rows(service: Service, positions: CatalogPositions) -> list[tuple[str, str, str]]:
    """What kopiur runs for the app besides its snapshots: both verifications."""
    app = service.kopiur
    assert app is not None
    rows = []
    if app.quick_verify is not None:
        quick = app.quick_verify
        gap = format_duration(quick.max_gap())
        rows.append(
            (
                "kopiur.quick_verify",
                f"{quick.timing.cron} {quick.zone}, largest gap {gap}",
                "settings.kopiur.quick_verify_cadence",
            )
        )
    if app.deep_verify is not None:
        deep = app.deep_verify
        rows.append(
            (
                "kopiur.deep_verify",
                f"{deep.timing.cron} {deep.zone}, largest gap {format_duration(deep.max_gap())}",
                "the restore drill's cadence (drill)",
            )
        )
    else:
        rows.append(("kopiur.deep_verify", "none", "policy: the app has no kopiur drill"))
    return rows


def explain_service(catalog: Catalog, name: str, plan: Plan, positions: CatalogPositions) -> str:
    """A report of ``name``'s resolved values, their origins, and its generated files."""
    service = catalog.service(name)
    rows = _rows(service, positions)
    width = max(len(row[0]) for row in rows)
    value_width = min(48, max(len(row[1]) for row in rows))
    lines = [f"{service.name} ({positions.where(('services', service.index))})"]
    lines += [
        f"  {field:<{width}}  {value:<{value_width}}  {origin}" for field, value, origin in rows
    ]
    lines.append("protection (RPO = the most data a layer can lose):")
    layers = protection_layers(catalog, service)
    lines += [
        f"  {layer.describe()}" + (", leaves the site" if layer.offsite else "") for layer in layers
    ] or ["  nothing"]
    files = [f.path for f in plan.files if f.subject == service.name]
    lines.append("files:")
    lines += [f"  {path}" for path in files] or ["  (none of its own)"]
    return "\n".join(lines) + "\n"
