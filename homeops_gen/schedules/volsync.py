"""VolSync's ``trigger.schedule``: robfig/cron v3 ``ParseStandard``, read in the zone of
the VolSync controller's process (``time.Local``, UTC unless its deployment sets ``TZ``)."""

from __future__ import annotations

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing, dst_effect
from homeops_gen.schedules.controller import convert, cron_text, local_times
from homeops_gen.schedules.gaps import largest_gap
from homeops_gen.schedules.robfig import next_run
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["RUNTIME", "timing"]

RUNTIME = "VolSync"


def timing(schedule: Schedule, local_zone: str, controller_zone: str) -> Timing:
    """``schedule`` (meant in ``local_zone``) as VolSync in ``controller_zone`` runs it.

    Raises :class:`~homeops_gen.schedules.controller.ConversionError`.
    """
    spec = convert(schedule, local_zone, controller_zone)
    loc = load_zone(controller_zone)
    gap = largest_gap(spec, loc, lambda t: next_run(spec, t, loc))
    effect = dst_effect(
        spec, controller_zone, skipped="that sync never starts", repeated="it syncs twice"
    )
    if local_zone != controller_zone:
        effect = f"{effect}; it runs at {local_times(spec, local_zone, controller_zone)}"
    return Timing(RUNTIME, cron_text(spec), controller_zone, gap, effect)
