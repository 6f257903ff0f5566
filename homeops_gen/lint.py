"""Policy lint: conventions the catalog can be valid without, checked on every generate.

Errors stop a generate (exit 2); warnings are printed and let it pass. Each rule is a
function of the resolved catalog, so ``python -m homeops_gen lint`` and the generate that
runs it see the same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.catalog.policy import INTEGRITY_ENGINES, STATEFUL_ENGINES
from homeops_gen.errors import Location
from homeops_gen.protection import local_rpo, offsite_rpo, protection_layers
from homeops_gen.schedule import Schedule, format_duration
from homeops_gen.schedules import hhmm

__all__ = ["RULES", "LintFinding", "lint_catalog"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class LintFinding:
    rule: str
    severity: Severity
    loc: Location
    message: str


def _loc(service: Service, field: str | None = None) -> Location:
    base: Location = ("services", service.index)
    return (*base, field) if field else base


def iscsi_without_dump(catalog: Catalog) -> Iterator[LintFinding]:
    """Block-level snapshots of an iSCSI zvol cannot restore one database: dump it."""
    for s in catalog.services:
        if (
            s.storage == "iscsi"
            and s.engine in STATEFUL_ENGINES
            and not (s.uses("dump") or s.uses("cnpg"))
        ):
            yield LintFinding(
                "iscsi-without-dump",
                "error",
                _loc(s, "methods" if s.origins["methods"].kind == "catalog" else "storage"),
                f"{s.name} keeps {s.engine} state on an iSCSI volume but has no "
                "application-level backup: add the dump method",
            )


def high_churn_snapshots(catalog: Catalog) -> Iterator[LintFinding]:
    """High-churn volumes in LVM thin snapshots amplify every write (copy-on-write)."""
    for s in catalog.services:
        if s.churn == "high" and s.snapshot_layer == "lvm":
            yield LintFinding(
                "high-churn-snapshot",
                "warning",
                _loc(s, "snapshots"),
                f"{s.name} is high-churn but in the LVM thin snapshots: each snapshot diverges "
                "quickly and amplifies writes; set snapshots: false"
                + (" and rely on its dump" if s.uses("dump") else ""),
            )


def offsite_without_reason(catalog: Catalog) -> Iterator[LintFinding]:
    for s in catalog.services:
        if not s.offsite.included and not s.offsite.reason:
            yield LintFinding(
                "offsite-without-reason",
                "error",
                _loc(s, "offsite"),
                f"{s.name} is kept out of the offsite sync without a reason: write "
                "offsite: {excluded: <why>}",
            )


def rpo_not_met(catalog: Catalog) -> Iterator[LintFinding]:
    """The declared RPO must be met by at least one layer: the best one's largest gap."""
    for s in catalog.services:
        if s.rpo is None:
            continue
        layers = protection_layers(catalog, s)
        best = local_rpo(layers)
        if best is None:
            yield LintFinding(
                "rpo-not-met",
                "error",
                _loc(s, "rpo"),
                f"{s.name} declares an RPO of {format_duration(s.rpo)} but nothing backs it up",
            )
        elif best > s.rpo:
            layer = min(layers, key=lambda layer: layer.rpo)
            yield LintFinding(
                "rpo-not-met",
                "error",
                _loc(s, "rpo"),
                f"{s.name} declares an RPO of {format_duration(s.rpo)} but its most frequent "
                f"layer ({layer.title}, {layer.when}) can lose {format_duration(best)}",
            )


def rto_not_measured(catalog: Catalog) -> Iterator[LintFinding]:
    """A declared RTO is held to by the restore drill; without one nothing measures it."""
    for s in catalog.services:
        if s.rto is not None and s.drill is None:
            yield LintFinding(
                "rto-not-measured",
                "warning",
                _loc(s, "rto"),
                f"{s.name} declares an RTO of {format_duration(s.rto)} but has no restore "
                "drill to measure it (drills restore application-level backups)",
            )


def critical_without_integrity(catalog: Catalog) -> Iterator[LintFinding]:
    """A critical service needs a backup that is verified, and its live database checked."""
    for s in catalog.services:
        if s.criticality != "critical":
            continue
        if not s.methods:
            yield LintFinding(
                "critical-without-integrity",
                "error",
                _loc(s, "criticality"),
                f"{s.name} is critical but only storage snapshots protect it, and nothing "
                "verifies them: give it a backup method (its recipe verifies every backup)",
            )
        elif s.engine in INTEGRITY_ENGINES and s.integrity is None:
            yield LintFinding(
                "critical-without-integrity",
                "error",
                _loc(s, "criticality"),
                f"{s.name} is critical but its {s.engine} database is only checked when it is "
                "backed up: corruption between two backups spreads into them; add "
                "integrity: hourly",
            )


def offsite_unreachable(catalog: Catalog) -> Iterator[LintFinding]:
    """Offsite is on, but no layer carries the data off the site."""
    nas_sync = catalog.settings.offsite_target is not None
    stores = catalog.settings.volsync.r2 is not None or catalog.settings.object_stores
    if not nas_sync and not stores:
        return  # the catalog declares no offsite layer at all: nothing to check against
    for s in catalog.services:
        if s.offsite.included and offsite_rpo(protection_layers(catalog, s)) is None:
            yield LintFinding(
                "offsite-unreachable",
                "warning",
                _loc(s, "offsite" if s.origins["offsite"].kind == "catalog" else "storage"),
                f"{s.name} is marked offsite, but no layer copies it off the site (the NAS "
                "sync carries NFS datasets and dump folders, R2 the VolSync apps, an S3 or R2 "
                "store the CNPG archives): exclude it with a reason, or give it a layer "
                "that leaves the site",
            )


def _scheduled(catalog: Catalog) -> Iterator[tuple[Schedule, Location, str, str]]:
    """Every schedule the outputs run: where the catalog sets it, who runs it, and what."""
    for s in catalog.services:
        where = s.origins["schedule"].loc or _loc(s, "cadence")
        if s.uses("dump"):
            yield s.schedule, where, s.name, "backup"
        if s.volsync is not None and s.uses("volsync"):
            yield s.volsync.schedule, where, s.name, "VolSync sync"
        if s.kopiur is not None and s.uses("kopiur"):
            yield s.kopiur.schedule, where, s.name, "kopiur snapshot"
        if s.cnpg is not None and s.uses("cnpg"):
            yield s.cnpg.base_schedule, where, s.name, "CNPG base backup"
        if s.integrity is not None:
            yield s.integrity, _loc(s, "integrity"), s.name, "integrity check"
        if s.drill is not None:
            where = s.origins["drill"].loc or _loc(s, "drill")
            yield s.drill.schedule, where, s.name, "restore drill"
    settings = catalog.settings
    offsite: Location = ("settings", "offsite")
    if settings.offsite_incremental is not None:
        yield settings.offsite_incremental, (*offsite, "incremental"), "the NAS", "incremental sync"
    if settings.offsite_full_sync is not None:
        yield settings.offsite_full_sync, (*offsite, "full_sync"), "the NAS", "full sync"
    if settings.lvm_snapshots is not None:
        where = ("settings", "snapshots", "lvm", "cadence")
        yield settings.lvm_snapshots.schedule, where, "the PVE host", "LVM snapshots"
    for index, task in enumerate(settings.zfs_snapshots):
        where = ("settings", "snapshots", "zfs", index, "cadence")
        yield task.schedule, where, "the NAS", f"{task.pool} ZFS snapshot task"


def dst_shifted_cadence(catalog: Catalog) -> Iterator[LintFinding]:
    """A run at a local time a DST transition skips or repeats: a longer gap or a double run."""
    seen: set[tuple[Location, str]] = set()
    for schedule, where, subject, layer in _scheduled(catalog):
        timing = schedule.timing
        hit = timing.shifted
        if not hit or timing.every_hour or (where, timing.cron) in seen:
            continue  # a run in every hour: no placement avoids the transitions
        seen.add((where, timing.cron))
        calendar, real = schedule.calendar_gap(), timing.largest
        gap = (
            f"the largest real gap between its runs is {format_duration(real)}, "
            f"{format_duration(real - calendar)} more than on the calendar"
            if real > calendar
            else f"the largest real gap stays {format_duration(real)}"
        )
        yield LintFinding(
            "dst-shifted-cadence",
            "warning",
            where,
            f"{subject} runs its {layer} ({timing.runtime}, {timing.cron!r} in {timing.zone}) "
            f"at {', '.join(hhmm(m) for m in hit[:3])}, inside a DST transition: {timing.dst}; "
            f"{gap}. The alerts allow for it; move it out of the transition to keep its "
            "cadence",
        )


def alerts_without_runbook_url(catalog: Catalog) -> Iterator[LintFinding]:
    """Alerts link their service's runbook only when the catalog says where it is published."""
    if catalog.settings.runbook_base_url is not None:
        return
    linked = [
        s for s in catalog.services if any(s.uses(m) for m in ("dump", "volsync", "kopiur", "cnpg"))
    ]
    if linked:
        yield LintFinding(
            "alerts-without-runbook-url",
            "warning",
            ("settings", "alerts"),
            f"the alerts of {len(linked)} services link no runbook: set "
            "settings.alerts.runbook_base_url to where out/docs/runbooks is published (e.g. "
            "your Git forge's view of it), so that Alertmanager and Grafana can open "
            "<url>/restore-<service>.md",
        )


RULES: tuple[Callable[[Catalog], Iterator[LintFinding]], ...] = (
    iscsi_without_dump,
    high_churn_snapshots,
    offsite_without_reason,
    rpo_not_met,
    critical_without_integrity,
    rto_not_measured,
    offsite_unreachable,
    dst_shifted_cadence,
    alerts_without_runbook_url,
)


def lint_catalog(catalog: Catalog) -> list[LintFinding]:
    """Every finding of every rule, errors first, then by position."""
    findings = [finding for rule in RULES for finding in rule(catalog)]
    return sorted(findings, key=lambda f: (f.severity != "error", f.loc, f.rule))
