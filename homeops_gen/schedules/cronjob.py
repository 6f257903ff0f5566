"""The Kubernetes CronJob controller: robfig/cron v3 in the job's ``timeZone``.

The controller parses ``TZ=<timeZone> <schedule>`` with ``cron.ParseStandard`` and starts a
Job at every time ``Next`` gives: a run whose local time a spring-forward transition skips
never starts, and one in the hour a fall-back repeats starts twice. A first-weekday guard
is the job's own check of the local weekday when it starts.

A cron whose ``Next`` comes back to the same instant (a fall-back off the hour turns the
library's minute walk back an hour, :func:`~homeops_gen.schedules.zones.stalled_minutes`)
is refused: the controller takes two runs less than a second apart for an invalid
schedule, and from then on starts nothing.
"""

from __future__ import annotations

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing, dst_effect, spec_of
from homeops_gen.schedules.gaps import ScheduleStall, largest_gap
from homeops_gen.schedules.robfig import next_run
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["RUNTIME", "timing"]

RUNTIME = "Kubernetes CronJob"


def timing(schedule: Schedule) -> Timing:
    """How the CronJob controller runs ``schedule`` with ``timeZone: <schedule.zone>``."""
    spec = spec_of(schedule.cron)
    loc = load_zone(schedule.zone)
    try:
        gap = largest_gap(spec, loc, lambda t: next_run(spec, t, loc), guard=schedule.first_weekday)
    except ScheduleStall as stall:
        raise stall.explained(
            f"cron {schedule.cron!r} stalls in the {RUNTIME} controller (robfig/cron v3): "
            f"{stall}; from then on the controller refuses the schedule (an InvalidSchedule "
            "event: 'time difference between two schedules is less than 1 second') and starts "
            "no more Jobs; choose another minute or hour"
        ) from None
    effect = dst_effect(
        spec,
        schedule.zone,
        skipped="the controller never starts that run",
        repeated="it runs twice",
    )
    return Timing(RUNTIME, schedule.cron, schedule.zone, gap, effect)
