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
from homeops_gen.schedules import spec_of
from homeops_gen.schedules.robfig import Spec
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["ConversionError", "convert", "cron_text", "local_times"]


class ConversionError(ValueError):
    """The local schedule has no equivalent cron in the controller's zone."""


def _field(values: frozenset[int], low: int, high: int, star: bool) -> str:
    ordered = sorted(values)
    if star:
        return "*"
    if len(ordered) == 1:
        return str(ordered[0])
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def cron_text(spec: Spec) -> str:
    """Five fields, numbers only; ``*`` only where a field is unrestricted and not first."""
    return " ".join(
        (
            _field(spec.minutes, 0, 59, False),
            _field(spec.hours, 0, 23, len(spec.hours) == 24),
            _field(spec.dom, 1, 31, spec.dom_star),
            _field(spec.months, 1, 12, len(spec.months) == 12),
            _field(spec.dow, 0, 6, spec.dow_star),
        )
    )


def convert(schedule: Schedule, local_zone: str, controller_zone: str) -> Spec:
    """The schedule, meant in ``local_zone``, as a cron read in ``controller_zone``.

    Raises :class:`ConversionError` when no single cron says the same.
    """
    if schedule.first_weekday is not None:
        raise ConversionError("a first-weekday guard needs a job script to check it")
    spec = spec_of(schedule.cron)
    delta = (load_zone(local_zone).standard_offset - load_zone(controller_zone).standard_offset)
    delta //= 60
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
            "its times fall on different days in the controller's zone, and it does not run "
            "every day"
        )
    pairs = set().union(*moved.values())
    hours = frozenset(h for h, _ in pairs)
    minutes = frozenset(m for _, m in pairs)
    if len(pairs) != len(hours) * len(minutes):
        raise ConversionError(
            "its times are not one set of minutes at one set of hours in the controller's zone"
        )
    (days,) = moved if len(moved) == 1 else (0,)
    dow = spec.dow
    if days and not every_day:
        if not spec.dom_star or len(spec.months) != 12:
            raise ConversionError(
                f"its days of the month would move by {days:+d} day in the controller's zone, "
                "which cron cannot say"
            )
        dow = frozenset((d + days) % 7 for d in spec.dow)
    return Spec(spec.seconds, minutes, hours, spec.dom, spec.months, dow, spec.dom_star,
                spec.dow_star)


def local_times(spec: Spec, local_zone: str, controller_zone: str) -> str:
    """When the first run of a day happens on the local clock, in winter and in summer."""
    local, controller = load_zone(local_zone), load_zone(controller_zone)
    first = min(h * 60 + m for h in spec.hours for m in spec.minutes)
    offsets = sorted({local.standard_offset} | {t.after for t in local.in_range()})
    shown = [
        f"{((first + (o - controller.standard_offset) // 60) % 1440) // 60:02d}:"
        f"{((first + (o - controller.standard_offset) // 60) % 60):02d}"
        for o in offsets
    ]
    if len(shown) == 1:
        return f"{shown[0]} on the {local_zone} clock"
    return f"{' in winter, '.join(shown[:2])} in summer on the {local_zone} clock"
