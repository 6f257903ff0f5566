"""The NAS's offsite sync (``out/offsite/``), when the catalog has ``settings.offsite``.

The NAS copies its NFS tree to the offsite NAS in two ways: an incremental copy of what ZFS
says changed since the last run (``zfs diff`` of two rotating snapshots, then ``rclone copy``
of that list), and a periodic full sync (``rclone sync``, which also removes what was
deleted), run either by the same script or by a TrueNAS Cloud Sync task
(``offsite.full_sync_by``). Generated, beside the filters of :mod:`storage_layers`:

* ``offsite-sync.sh``: both modes, one lock, the Pushgateway report the offsite alerts read
  (``offsite_sync_*{sync="incremental"|"full"}``);
* ``offsite-sync.cron``: the ``/etc/cron.d`` lines that run it, with what DST does to each.

:func:`sync_commands` gives the same entries to the TrueNAS cron job definitions.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Iterator

from homeops_gen.catalog.model import Catalog
from homeops_gen.plan import OutputFile, TemplateRender, Text
from homeops_gen.registry import register_generator
from homeops_gen.schedule import WEEKDAYS, Schedule, format_duration

__all__ = ["LOG_FILE", "METRICS_JOB", "SCRIPT_NAME", "generate_offsite_sync", "sync_commands"]

SCRIPT_NAME = "offsite-sync.sh"
#: The Pushgateway ``job`` of the pushes; the grouping key adds ``sync="<mode>"``.
METRICS_JOB = "offsite-sync"
#: Where the cron entries append the script's log.
LOG_FILE = "/var/log/offsite-sync.log"


def _schedules(catalog: Catalog) -> list[tuple[str, Schedule]]:
    """The modes the script runs under cron, with their schedules."""
    settings = catalog.settings
    offsite = settings.offsite
    found = []
    if offsite is not None and settings.offsite_incremental is not None:
        found.append(("incremental", settings.offsite_incremental))
    if offsite is not None and offsite.full_sync_by == "script" and settings.offsite_full_sync:
        found.append(("full", settings.offsite_full_sync))
    return found


def _command(install_dir: str, kind: str, schedule: Schedule) -> str:
    script = shlex.quote(f"{install_dir.rstrip('/')}/{SCRIPT_NAME}")
    guard = "" if schedule.first_weekday is None else f" --only-on-weekday {schedule.first_weekday}"
    return f"{script} {kind}{guard} >> {LOG_FILE} 2>&1"


def sync_commands(catalog: Catalog) -> list[tuple[str, str, str]]:
    """``(mode, cron expression, command line)`` of each scheduled run of the sync script.

    The command line is for root's shell under cron and appends to :data:`LOG_FILE`; it
    holds no ``%`` (which cron would turn into a newline). A "first <weekday> of the month"
    schedule (day-of-month ``1-7``) passes ``--only-on-weekday``: cron alone would run on
    each of those seven days.
    """
    offsite = catalog.settings.offsite
    if offsite is None:
        return []
    return [
        (kind, schedule.cron, _command(offsite.install_dir, kind, schedule))
        for kind, schedule in _schedules(catalog)
    ]


def _cron_file(catalog: Catalog) -> str:
    settings = catalog.settings
    lines = [
        "# The NAS's offsite sync (settings.offsite): install as /etc/cron.d/offsite-sync (cron",
        "# ignores /etc/cron.d files whose names hold a dot), or create the same entries as",
        "# TrueNAS cron jobs.",
        f"# cron reads the times on the NAS's clock, which must be in {settings.timezone}",
        "# (settings.timezone).",
    ]
    for kind, schedule in _schedules(catalog):
        timing = schedule.timing
        guard = ""
        if schedule.first_weekday is not None:
            guard = f", first {WEEKDAYS[schedule.first_weekday].capitalize()} only"
        text = (
            f"{kind} ({timing.cron}{guard}): {timing.dst}; at most "
            f"{format_duration(timing.largest)} between two runs."
        )
        lines += textwrap.wrap(text, 92, initial_indent="# ", subsequent_indent="#   ")
    offsite = settings.offsite
    if offsite is not None and offsite.full_sync_by == "cloudsync":
        lines.append(
            "# The full sync is the TrueNAS Cloud Sync task (full_sync_by: cloudsync), not cron."
        )
    lines += [
        "SHELL=/bin/bash",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    lines += [f"{cron} root {command}" for _, cron, command in sync_commands(catalog)]
    return "\n".join(lines) + "\n"


@register_generator(
    "offsite-sync", description="out/offsite: the NAS's offsite sync script and its cron lines"
)
def generate_offsite_sync(catalog: Catalog) -> Iterator[OutputFile]:
    settings = catalog.settings
    offsite = settings.offsite
    if offsite is None:
        return
    context = {
        "dataset": offsite.dataset,
        "mountpoint": offsite.mountpoint,
        "target": offsite.target,
        "prev": f"{offsite.snapshot_prefix}-prev",
        "new": f"{offsite.snapshot_prefix}-new",
        "max_changes": offsite.max_changes,
        "destination": offsite.destination,
        "push_url": f"{settings.host_pushgateway.rstrip('/')}/metrics/job/{METRICS_JOB}/sync",
        "full_mode": offsite.full_sync_by == "script",
    }
    yield OutputFile(f"offsite/{SCRIPT_NAME}", TemplateRender(f"offsite/{SCRIPT_NAME}.j2", context))
    yield OutputFile("offsite/offsite-sync.cron", Text(_cron_file(catalog)))
