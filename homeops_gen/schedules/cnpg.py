"""CNPG's ``ScheduledBackup.spec.schedule``: six fields, seconds first, parsed by
robfig/cron v1 (``cron.Parse``) and read in the zone of the operator's process.

v1 rejects macros behind a seconds field ("Expected 5 to 6 fields" for ``0 @daily``) and
treats a day-of-month or day-of-week that starts with ``*`` as unrestricted, ``*/7``
included, so ``0 0 4 */7 * 1`` ANDs the two (it runs only in months that start on a
Monday). The text written here uses numbers, ranges and lists only, which v1 and v3 read
alike.
"""

from __future__ import annotations

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing
from homeops_gen.schedules.controller import controller_timing

__all__ = ["RUNTIME", "timing"]

RUNTIME = "CNPG ScheduledBackup"


def timing(schedule: Schedule) -> Timing:
    """``schedule`` (meant in its zone) as CNPG's operator in ``schedule.controller_zone``
    runs it. Raises :class:`~homeops_gen.schedules.controller.ConversionError`."""
    return controller_timing(
        schedule,
        RUNTIME,
        seconds=True,
        skipped="that backup never starts",
        repeated="it runs twice",
    )
