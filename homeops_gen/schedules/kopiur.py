"""kopiur's schedules: ``croner`` reading a five-field cron in the zone it is given.

Every generated kopiur cron carries ``timezone`` (the catalog's zone), so kopiur reads the
catalog's own times in the catalog's own zone: nothing is converted. The text is the
catalog's cron spelled out as numbers, ranges and lists (the project's deterministic
stagger, not kopiur's ``H``, whose value hangs on the object's UID), with no ``*`` or ``@``
at its start: Flux substitutes it into YAML text, where those begin an alias or are
reserved. The gap is computed by croner's own walk (:mod:`homeops_gen.schedules.croner`).
"""

from __future__ import annotations

from homeops_gen.schedule import Schedule, cron_fields
from homeops_gen.schedules import Timing, dst_effect, spec_of
from homeops_gen.schedules.controller import cron_text
from homeops_gen.schedules.croner import fixed_time, next_run
from homeops_gen.schedules.gaps import largest_gap
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["RUNTIME", "timing"]

RUNTIME = "kopiur"


def timing(schedule: Schedule) -> Timing:
    """``schedule`` as kopiur runs it with ``timezone: <schedule.zone>``.

    Raises ``ValueError`` for what kopiur cannot run as meant: a first-weekday guard (only a
    job script can skip the days 1-7 that are not the weekday), and a day-of-month or
    day-of-week step beside a restricted other day field (croner and robfig/cron disagree
    on whether such a step counts as ``*``).
    """
    if schedule.first_weekday is not None:
        raise ValueError(
            "kopiur cannot run a first-<weekday> cadence: it cannot skip the days 1-7 that "
            "are not the weekday (only a job script can); give a cron or a plain cadence"
        )
    fields = cron_fields(schedule.cron)
    dom, dow = fields[2], fields[4]
    restricted = dom not in ("*", "?") and dow not in ("*", "?")
    if restricted and (dom.startswith(("*", "?")) or dow.startswith(("*", "?"))):
        raise ValueError(
            f"kopiur cannot run cron {schedule.cron!r} as meant: a day field starting with "
            "'*/' beside a restricted other day field reads differently in croner; list the "
            "days instead"
        )
    text = cron_text(spec_of(schedule.cron))
    spec = spec_of(text)
    loc = load_zone(schedule.zone)
    fixed = fixed_time(text)
    gap = largest_gap(spec, loc, lambda t: next_run(spec, t, loc, fixed=fixed))
    effect = dst_effect(
        spec,
        schedule.zone,
        skipped=(
            "kopiur runs it at the end of the gap instead" if fixed else "kopiur skips that run"
        ),
        repeated="kopiur runs it once, at its first occurrence",
    )
    return Timing(RUNTIME, text, schedule.zone, gap, effect)
