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
from homeops_gen.schedules import Timing, dst_effect, spec_of
from homeops_gen.schedules.controller import convert, cron_text, local_times
from homeops_gen.schedules.gaps import largest_gap
from homeops_gen.schedules.robfig import next_run
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["RUNTIME", "timing"]

RUNTIME = "CNPG ScheduledBackup"


def timing(schedule: Schedule, local_zone: str, controller_zone: str) -> Timing:
    """``schedule`` (meant in ``local_zone``) as CNPG's operator in ``controller_zone`` runs
    it. Raises :class:`~homeops_gen.schedules.controller.ConversionError`."""
    text = "0 " + cron_text(convert(schedule, local_zone, controller_zone))
    spec = spec_of(text, seconds=True, v1=True)  # the operator's own reading of the text
    loc = load_zone(controller_zone)
    gap = largest_gap(spec, loc, lambda t: next_run(spec, t, loc, v3=False))
    effect = dst_effect(
        spec, controller_zone, skipped="that backup never starts", repeated="it runs twice"
    )
    if local_zone != controller_zone:
        effect = f"{effect}; it runs at {local_times(spec, local_zone, controller_zone)}"
    return Timing(RUNTIME, text, controller_zone, gap, effect)
