"""The storage layers' own files: the offsite sync's filters and the snapshot exclusions.

- ``offsite/rclone-filter.txt``: rclone filter rules (``--filter-from``) for the NAS-to-NAS
  sync, each exclusion with its reason as a comment: the services kept out of the offsite
  copy whose data is on the NAS, then the catalog's own patterns.
- ``offsite/incremental-exclude.txt``: the same exclusions as extended regular expressions,
  one a line, for the incremental sync's changed-file list (``grep -v -E -f``); a path is
  relative to the synced root, as rclone sees it.
- ``snapshots/lvm-pvc-snapshot.env``: the PVCs the LVM thin-snapshot script skips
  (``EXCLUDE_PVCS``, ``<namespace>/<claim>``) with the reason for each, and its schedule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.plan import OutputFile, Text
from homeops_gen.registry import register_generator

__all__ = [
    "CLOUDSYNC_DESCRIPTION",
    "Exclusion",
    "SnapshotExclusion",
    "generate_offsite_filters",
    "generate_snapshot_exclusions",
    "glob_regex",
    "lvm_exclusions",
    "offsite_exclusions",
    "service_claim",
]


#: The description of the TrueNAS Cloud Sync task that runs the full sync: the task
#: definitions create it under this name and the NAS monitor finds it by it.
CLOUDSYNC_DESCRIPTION = "homeops_gen offsite full sync"


@dataclass(frozen=True)
class Exclusion:
    #: An rclone filter pattern: anchored at the synced root when it starts with ``/``.
    pattern: str
    reason: str
    #: The service it keeps out (empty for the catalog's own patterns).
    service: str = ""


def offsite_exclusions(catalog: Catalog) -> list[Exclusion]:
    """What the offsite sync leaves out: excluded services on the NAS, then the patterns."""
    services = [
        Exclusion(f"/{s.dataset}/**", s.offsite.reason or "excluded", s.name)
        for s in catalog.services
        if not s.offsite.included and s.storage == "nfs"
    ]
    patterns = [Exclusion(e.pattern, e.reason) for e in catalog.settings.offsite_exclude]
    return sorted(services, key=lambda e: e.pattern) + patterns


def glob_regex(pattern: str) -> str:
    """An rclone glob as an extended regular expression over root-relative paths.

    ``*`` stays within one path element, ``**`` crosses them; a pattern without a leading
    ``/`` matches at the end of the path, on whole elements, as rclone's does; one with a
    trailing ``/`` is a folder, and matches everything in it.
    """
    anchored = pattern.startswith("/")
    if pattern.endswith("/"):
        pattern += "**"
    body = ""
    for token in re.split(r"(\*\*|\*|\?)", pattern.lstrip("/")):
        if token == "**":
            body += ".*"
        elif token == "*":
            body += "[^/]*"
        elif token == "?":
            body += "[^/]"
        else:
            body += re.sub(r"([.^$+(){}\[\]|\\])", r"\\\1", token)
    return ("^" if anchored else "(^|/)") + body + "$"


def _not_in_the_sync(catalog: Catalog) -> list[Service]:
    """Excluded services whose data has no folder of its own in the synced NFS tree."""
    return [s for s in catalog.services if not s.offsite.included and s.storage != "nfs"]


def _rclone_filter(catalog: Catalog, exclusions: list[Exclusion]) -> str:
    lines = [
        f"# rclone filter rules for the offsite sync to {catalog.settings.offsite_target}:",
        "# rclone sync|copy --filter-from rclone-filter.txt. Paths are relative to the synced",
        "# root (the NFS root of the NAS); each exclusion says why.",
    ]
    for exclusion in exclusions:
        who = f"{exclusion.service}: " if exclusion.service else ""
        lines += ["", f"# {who}{exclusion.reason}", f"- {exclusion.pattern}"]
    away = _not_in_the_sync(catalog)
    if away:
        lines += ["", "# Also kept out, but with no folder in the synced tree (not NFS data):"]
        lines += [f"#   {s.name} ({s.storage}): {s.offsite.reason}" for s in away]
    lines += ["", "# Everything else is copied.", "+ **"]
    return "\n".join(lines) + "\n"


def _incremental_list(exclusions: list[Exclusion]) -> str:
    lines = [
        "# The offsite exclusions as extended regular expressions, one a line, for the",
        "# incremental sync's list of changed files (relative to the synced root):",
        "#   ... | grep -v -E -f incremental-exclude.txt > files.txt",
        "#   rclone copy --files-from-raw files.txt --no-traverse ...",
        "# Each line is the rclone pattern of rclone-filter.txt (named below) translated.",
    ]
    for exclusion in exclusions:
        lines.append(f"# {exclusion.pattern}")
        lines.append(glob_regex(exclusion.pattern))
    return "\n".join(lines) + "\n"


@register_generator("offsite-filters", description="out/offsite: the offsite sync's exclusions")
def generate_offsite_filters(catalog: Catalog) -> Iterator[OutputFile]:
    if catalog.settings.offsite_target is None:
        return
    exclusions = offsite_exclusions(catalog)
    yield OutputFile("offsite/rclone-filter.txt", Text(_rclone_filter(catalog, exclusions)))
    yield OutputFile("offsite/incremental-exclude.txt", Text(_incremental_list(exclusions)))


def service_claim(service: Service) -> str:
    """The service's data PVC: from its engine or PVC block, else its name."""
    claim = getattr(service.connection, "claim", None)
    app = service.volsync or service.kopiur
    if claim is None and app is not None:
        claim = app.claim
    return str(claim or service.name)


@dataclass(frozen=True)
class SnapshotExclusion:
    service: Service
    pvc: str
    reason: str


def lvm_exclusions(catalog: Catalog) -> list[SnapshotExclusion]:
    """The proxmox-lvm services left out of the thin snapshots, and why (policy or catalog)."""
    exclusions = []
    for s in catalog.services:
        if s.storage != "proxmox-lvm" or s.snapshot_layer == "lvm":
            continue
        reason = s.origins["snapshot_layer"].detail
        if s.origins["snapshot_layer"].kind == "catalog":
            reason = "the catalog says snapshots: false"
        covered = "; its dump covers it" if s.uses("dump") else "; no other local copy"
        exclusions.append(
            SnapshotExclusion(s, f"{s.namespace}/{service_claim(s)}", reason + covered)
        )
    return exclusions


@register_generator(
    "snapshot-exclusions", description="out/snapshots: what the LVM thin snapshots skip"
)
def generate_snapshot_exclusions(catalog: Catalog) -> Iterator[OutputFile]:
    lvm = catalog.settings.lvm_snapshots
    if lvm is None:
        return
    exclusions = lvm_exclusions(catalog)
    retention = lvm.retention
    lines = [
        "# Environment of lvm-pvc-snapshot on the PVE host: which proxmox-lvm PVCs its thin",
        "# snapshots skip (<namespace>/<claim>, space-separated), and how long it keeps them.",
        f"# Schedule: {lvm.schedule.description} (the timer on the host must match).",
        "#",
    ]
    lines += [f"# {e.pvc}: {e.reason}" for e in exclusions] or ["# (none excluded)"]
    lines.append(f'EXCLUDE_PVCS="{" ".join(e.pvc for e in exclusions)}"')
    if retention.period is not None:
        lines.append(f"RETENTION_HOURS={int(retention.period.total_seconds()) // 3600}")
    else:
        lines.append(f"RETENTION_COPIES={retention.copies}")
    lines.append(f"MIN_FREE_PERCENT={lvm.min_free_percent}")
    yield OutputFile("snapshots/lvm-pvc-snapshot.env", Text("\n".join(lines) + "\n"))
