"""VolSync's ``trigger.schedule``: robfig/cron v3 ``ParseStandard``, read in the zone of
the VolSync controller's process (``time.Local``, UTC unless its deployment sets ``TZ``)."""

from __future__ import annotations

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing
from homeops_gen.schedules.controller import controller_timing

__all__ = ["RUNTIME", "timing"]

RUNTIME = "VolSync"


def timing(schedule: Schedule) -> Timing:
    """``schedule`` (meant in its zone) as VolSync in ``schedule.controller_zone`` runs it.

    Raises :class:`~homeops_gen.schedules.controller.ConversionError`.
    """
    return controller_timing(
        schedule,
        RUNTIME,
        seconds=False,
        skipped="that sync never starts",
        repeated="it syncs twice",
    )
