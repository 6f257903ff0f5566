"""The PVE host's LVM thin snapshots of the Proxmox CSI volumes (``out/snapshots/``).

Proxmox CSI creates a volume's disk as ``vm-<vmid>-<PV name>`` in the storage the
StorageClass names, the PV name being ``pvc-<uid>``; on an LVM-thin storage that disk is a
thin LV of the pool ``settings.snapshots.lvm`` names. Generated, when that setting is there
and some service's snapshot layer is ``lvm`` (the same condition the snapshot alerts use):

* ``lvm-pvc-snapshot.sh`` (installed as ``/usr/local/bin/lvm-pvc-snapshot``): ``run`` takes a
  thin snapshot of every such LV whose claim is not excluded, keeps the retention and pushes
  the ``lvm_snapshot_*`` and ``lvm_thin_pool_free_percent`` series the alerts read;
  ``restore <namespace>/<claim> [<snapshot>] --yes`` swaps a claim's LV for a snapshot with
  its workload scaled down;
* ``lvm-pvc-snapshot.service`` and ``.timer``: the systemd units that run it on the
  catalog's schedule, in the catalog's zone.

The exclusions, retention and free-space floor are written into the script itself: they
are the values ``lvm-pvc-snapshot.env`` records (with the reason for each exclusion), but a
copy of that file on the host, stale or missing, cannot change what the script does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from homeops_gen.catalog.model import Catalog, LvmSnapshots
from homeops_gen.generators.storage_layers import lvm_exclusions
from homeops_gen.plan import OutputFile, TemplateRender
from homeops_gen.registry import register_generator
from homeops_gen.schedule import WEEKDAYS, Schedule, parse_cron

__all__ = [
    "INSTALL_PATH",
    "PUSH_JOB",
    "SCRIPT_PATH",
    "generate_lvm_snapshots",
    "on_calendar",
]

#: Where the service unit expects the script on the PVE host, and where it is in ``out/``.
INSTALL_PATH = "/usr/local/bin/lvm-pvc-snapshot"
SCRIPT_PATH = "snapshots/lvm-pvc-snapshot.sh"
#: The Pushgateway job the script pushes to (its only grouping label).
PUSH_JOB = "lvm-pvc-snapshot"
#: How long a restore waits for the workload's pods to go and the LV to close (the CSI
#: driver detaches the disk from the node's VM only after the pod has gone).
RESTORE_WAIT_SECONDS = 300
#: Mon..Sun in systemd's order, as cron numbers them (0 = Sunday).
_SYSTEMD_WEEK = (1, 2, 3, 4, 5, 6, 0)


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of ``values`` in the given order, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _numbers(values: frozenset[int], low: int, high: int) -> str:
    """A systemd calendar component: ``*``, or a list of two-digit values and ``a..b`` ranges."""
    if values == frozenset(range(low, high + 1)):
        return "*"
    parts = []
    for first, last in _runs(sorted(values)):
        if last - first >= 2:
            parts.append(f"{first:02d}..{last:02d}")
        else:
            parts.extend(f"{v:02d}" for v in range(first, last + 1))
    return ",".join(parts)


def _weekdays(values: frozenset[int]) -> str:
    """The weekday component (empty: any day), in systemd's Monday-first week."""
    if values == frozenset(range(7)):
        return ""
    ordered = [i for i, day in enumerate(_SYSTEMD_WEEK) if day in values]
    parts = []
    for first, last in _runs(ordered):
        names = [WEEKDAYS[_SYSTEMD_WEEK[i]][:3].capitalize() for i in range(first, last + 1)]
        parts.append(f"{names[0]}..{names[-1]}" if len(names) > 2 else ",".join(names))
    return ",".join(parts) + " "


def on_calendar(schedule: Schedule) -> list[str]:
    """The ``OnCalendar=`` values that elapse exactly when ``schedule`` fires, in its zone.

    systemd ANDs a calendar event's weekday and day of month, while cron ORs them when both
    are restricted; that cron schedule becomes one event per side (a timer elapses when any
    of its events does). A first-weekday guard is an AND, which one event says directly.
    """
    minute, hour, dom, month, dow = parse_cron(schedule.cron)
    time = f"{_numbers(hour.values, 0, 23)}:{_numbers(minute.values, 0, 59)}:00"
    months = _numbers(month.values, 1, 12)
    zone = f" {schedule.zone}"

    def event(weekdays: frozenset[int], days: frozenset[int]) -> str:
        return f"{_weekdays(weekdays)}*-{months}-{_numbers(days, 1, 31)} {time}{zone}"

    every_day, every_weekday = frozenset(range(1, 32)), frozenset(range(7))
    if schedule.first_weekday is not None:
        return [event(frozenset({schedule.first_weekday}), dom.values)]
    if dom.wildcard or dow.wildcard:  # cron ANDs them (the starred one allows every day)
        return [event(dow.values if dom.wildcard else every_weekday, dom.values)]
    return [event(dow.values, every_day), event(every_weekday, dom.values)]


def _script_context(catalog: Catalog, lvm: LvmSnapshots) -> dict[str, object]:
    retention = lvm.retention
    return {
        "volume_group": lvm.volume_group,
        "thin_pool": lvm.thin_pool,
        "kubeconfig": lvm.kubeconfig,
        "exclusions": [e.pvc for e in lvm_exclusions(catalog)],
        "retention": str(retention),
        "retention_seconds": (
            int(retention.period.total_seconds()) if retention.period is not None else 0
        ),
        "retention_copies": retention.copies or 0,
        "min_free_percent": lvm.min_free_percent,
        "push_url": f"{catalog.settings.host_pushgateway.rstrip('/')}/metrics/job/{PUSH_JOB}",
        "restore_wait_seconds": RESTORE_WAIT_SECONDS,
        "schedule": lvm.schedule.description,
    }


@register_generator(
    "lvm-snapshots",
    description="out/snapshots: the PVE host's LVM thin-snapshot script and its systemd units",
)
def generate_lvm_snapshots(catalog: Catalog) -> Iterator[OutputFile]:
    lvm = catalog.settings.lvm_snapshots
    if lvm is None or not any(s.snapshot_layer == "lvm" for s in catalog.services):
        return
    yield OutputFile(
        SCRIPT_PATH,
        TemplateRender("snapshots/lvm-pvc-snapshot.sh.j2", _script_context(catalog, lvm)),
    )
    yield OutputFile(
        "snapshots/lvm-pvc-snapshot.service",
        TemplateRender("snapshots/lvm-pvc-snapshot.service.j2", {"exec": INSTALL_PATH}),
    )
    yield OutputFile(
        "snapshots/lvm-pvc-snapshot.timer",
        TemplateRender(
            "snapshots/lvm-pvc-snapshot.timer.j2",
            {"events": on_calendar(lvm.schedule), "schedule": lvm.schedule.description},
        ),
    )
