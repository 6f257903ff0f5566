"""Schedules for controllers that read a bare cron in their own zone (VolSync, CNPG).

Their CRDs carry no zone: the operator reads the cron in its process's zone (UTC unless
its deployment sets ``TZ``). The catalog's times are local intent, so they are moved by
the difference of the two zones' standard (winter) offsets and written out again as plain
numbers, ranges and lists: text that robfig/cron v1 and v3 read alike, with no ``*`` or
``@`` at its start (Flux substitutes it into YAML text, where those begin an alias or are
reserved).
"""

from __future__ import annotations

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing, dst_effect, hhmm, spec_of
from homeops_gen.schedules.gaps import ScheduleStall, largest_gap
from homeops_gen.schedules.robfig import Spec, next_run
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["ConversionError", "controller_timing", "convert", "cron_text", "local_times"]


class ConversionError(ValueError):
    """The local schedule has no equivalent cron in the controller's zone."""


def _field(values: frozenset[int], star: bool) -> str:
    if star:
        return "*"
    ordered = sorted(values)
    if len(ordered) == 1:
        return str(ordered[0])
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def cron_text(spec: Spec) -> str:
    """Five fields, numbers only; ``*`` only where a field is unrestricted and not first."""
    return " ".join(
        (
            _field(spec.minutes, False),
            _field(spec.hours, len(spec.hours) == 24),
            _field(spec.dom, spec.dom_star),
            _field(spec.months, len(spec.months) == 12),
            _field(spec.dow, spec.dow_star),
        )
    )


def controller_timing(
    schedule: Schedule, runtime: str, *, seconds: bool, skipped: str, repeated: str
) -> Timing:
    """``schedule`` (meant in ``schedule.zone``) as a controller in
    ``schedule.controller_zone`` runs it: five fields for robfig/cron v3, or six (``seconds``)
    read by v1. Raises :class:`ConversionError`, naming ``runtime``, and
    :class:`~homeops_gen.schedules.gaps.ScheduleStall` for a cron robfig/cron stalls on."""
    try:
        moved = convert(schedule)
    except ConversionError as exc:
        raise ConversionError(f"{runtime} cannot run this cadence: {exc}") from None
    text = ("0 " if seconds else "") + cron_text(moved)
    spec = spec_of(text, seconds=seconds, v1=seconds)  # the controller's own reading
    loc = load_zone(schedule.controller_zone)
    try:
        gap = largest_gap(spec, loc, lambda t: next_run(spec, t, loc, v3=not seconds))
    except ScheduleStall as stall:
        raise stall.explained(
            f"{runtime} cannot run this cadence: cron {text!r} stalls in robfig/cron: "
            f"{stall}; choose another minute or hour"
        ) from None
    effect = dst_effect(spec, schedule.controller_zone, skipped=skipped, repeated=repeated)
    if schedule.zone != schedule.controller_zone:
        shown = local_times(spec, schedule.zone, schedule.controller_zone)
        effect = f"{effect}; it runs at {shown}"
    return Timing(runtime, text, schedule.controller_zone, gap, effect)


def convert(schedule: Schedule) -> Spec:
    """The schedule, meant in ``schedule.zone``, as a cron read in
    ``schedule.controller_zone``. Raises :class:`ConversionError` when no single cron says
    the same."""
    if schedule.first_weekday is not None:
        raise ConversionError(
            "it cannot skip days: a first-weekday guard needs a job script to check it"
        )
    spec = spec_of(schedule.cron)
    there = f"in the controller's zone ({schedule.controller_zone}, settings.controller_timezone)"
    delta = load_zone(schedule.zone).standard_offset
    delta = (delta - load_zone(schedule.controller_zone).standard_offset) // 60
    if delta == 0:
        return spec
    moved: dict[int, set[tuple[int, int]]] = {}
    for hour in spec.hours:
        for minute in spec.minutes:
            days, at = divmod(hour * 60 + minute - delta, 1440)
            moved.setdefault(days, set()).add(divmod(at, 60))
    every_day = spec.dom_star and spec.dow_star and len(spec.months) == 12
    if len(moved) > 1 and not every_day:
        raise ConversionError(
            f"its times fall on different days {there}, and it does not run every day"
        )
    pairs = set().union(*moved.values())
    hours = frozenset(h for h, _ in pairs)
    minutes = frozenset(m for _, m in pairs)
    if len(pairs) != len(hours) * len(minutes):
        raise ConversionError(f"its times are not one set of minutes at one set of hours {there}")
    (days,) = moved if len(moved) == 1 else (0,)
    dow = spec.dow
    if days and not every_day:
        if not spec.dom_star or len(spec.months) != 12:
            raise ConversionError(
                f"its days of the month would move by {days:+d} day {there}, which cron cannot say"
            )
        dow = frozenset((d + days) % 7 for d in spec.dow)
    return Spec(
        spec.seconds, minutes, hours, spec.dom, spec.months, dow, spec.dom_star, spec.dow_star
    )


def local_times(spec: Spec, local_zone: str, controller_zone: str) -> str:
    """When the first run of a day happens on the local clock, in winter and in summer."""
    local, controller = load_zone(local_zone), load_zone(controller_zone)
    first = min(h * 60 + m for h in spec.hours for m in spec.minutes)
    offsets = sorted({local.standard_offset} | {t.after for t in local.in_range()})
    shown = [hhmm(first + (o - controller.standard_offset) // 60) for o in offsets]
    if len(shown) == 1:
        return f"{shown[0]} on the {local_zone} clock"
    return f"{shown[0]} in winter, {shown[1]} in summer on the {local_zone} clock"
