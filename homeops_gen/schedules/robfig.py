"""robfig/cron's ``SpecSchedule.Next``, as Kubernetes, VolSync (v3) and CNPG (v1) run it.

The walk is the library's own: months, then days, then hours, minutes and seconds, each
advanced until it matches, wrapping back to the month when a field rolls over. Months and
days move by wall-clock date (``AddDate``), hours, minutes and seconds by absolute time
(``Add``), so a local time that a spring-forward transition skips is never produced (the
run is lost) and one that a fall-back transition repeats is produced twice (it runs
twice). v3 also corrects a day that starts at 01:00 or 23:00 because midnight fell into a
transition; v1 does not.

The two versions also read ``*/N`` differently for the day-of-month/day-of-week rule: v3
treats only ``*`` and ``?`` (step 1) as unrestricted, v1 any field that starts with ``*``
or ``?``. Callers say which with :attr:`Spec.dom_star` and :attr:`Spec.dow_star`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from homeops_gen.schedules.gotime import add_date, clock, go_date
from homeops_gen.schedules.zones import Zone

__all__ = ["Spec", "next_run"]


@dataclass(frozen=True)
class Spec:
    """A parsed cron expression: the allowed values of each field and the star flags."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    #: 0 = Sunday.
    dow: frozenset[int]
    dom_star: bool
    dow_star: bool


def _day_matches(spec: Spec, day: int, weekday: int) -> bool:
    in_dom, in_dow = day in spec.dom, weekday in spec.dow
    if spec.dom_star or spec.dow_star:
        return in_dom and in_dow
    return in_dom or in_dow


def _steps(current: int, allowed: frozenset[int], size: int) -> int:
    """Unit steps from ``current`` to the next allowed value, or to the roll-over to 0."""
    return next(
        k for k in range(1, size + 1) if (current + k) % size in allowed or current + k == size
    )


def _advance(t: int, unit: int, current: int, allowed: frozenset[int], size: int, loc: Zone) -> int:
    """``t.Add(unit)`` repeated until the field is allowed or rolls over to 0.

    Without a transition in between, each step moves the field by one, so the steps are
    counted and taken at once; across a transition they are taken one by one.
    """
    target = t + unit * _steps(current, allowed, size)
    upcoming = loc.next_transition(t)
    if upcoming is None or upcoming > target:  # (upcoming == t: not known)
        return target
    field = 3 if unit == 3600 else 4
    while True:
        t += unit
        value = clock(t, loc)[field]
        if value in allowed or value == 0:
            return t


def _skip_days(spec: Spec, t: int, loc: Zone) -> int:
    """Take at once the ``AddDate(0, 0, 1)`` steps of the day loop that land on a day that
    neither matches nor is the 1st, while no transition lies ahead: each step then moves the
    wall clock by exactly a day. Returns the instant before the last such step."""
    year, month, day, *_, weekday = clock(t, loc)
    date = dt.date(year, month, day)
    steps = 0
    while True:
        following = date + dt.timedelta(days=steps + 1)
        if following.day == 1 or _day_matches(spec, following.day, (weekday + steps + 1) % 7):
            break
        steps += 1
    if steps == 0:
        return t
    target = t + steps * 86400
    upcoming = loc.next_transition(t)
    if upcoming is not None and upcoming > target + 86400:
        return target
    return t


#: The day loops walked so far: (day fields, start, zone name, v3) -> where the loop ends.
_DAY_LOOPS: dict[tuple[object, ...], int] = {}
_DAY_LOOPS_LIMIT = 1 << 15


def _next_day(spec: Spec, t: int, loc: Zone, v3: bool) -> int:
    """The library's day loop from ``t``: ``AddDate(0, 0, 1)`` (and v3's correction of a
    midnight that fell into a transition) until the day matches or is the 1st.

    The loop reads only the day fields, so schedules that differ in their (staggered) times
    share it: the day loops after their runs start at the same midnights. Remembered by
    the zone's name (a zone's data is the same for every :class:`Zone` of that name).
    """
    key = (spec.dom, spec.dow, spec.dom_star, spec.dow_star, t, loc.name, v3)
    found = _DAY_LOOPS.get(key)
    if found is None:
        if len(_DAY_LOOPS) >= _DAY_LOOPS_LIMIT:
            _DAY_LOOPS.clear()
        found = _DAY_LOOPS[key] = _walk_days(spec, t, loc, v3)
    return found


def _walk_days(spec: Spec, t: int, loc: Zone, v3: bool) -> int:
    t = _skip_days(spec, t, loc)
    while True:
        t = add_date(t, loc, 0, 0, 1)
        hour = clock(t, loc)[3]
        if v3 and hour != 0:  # midnight fell into a transition
            t += (24 - hour) * 3600 if hour > 12 else -hour * 3600
        _, _, day, *_, weekday = clock(t, loc)
        if day == 1 or _day_matches(spec, day, weekday):
            return t


def next_run(spec: Spec, after: int, loc: Zone, *, v3: bool = True) -> int | None:
    """The first run strictly after the instant ``after`` (Unix seconds), read in ``loc``;
    ``None`` when there is none within five years (the library returns the zero time)."""
    t = after + 1
    added = False
    year_limit = clock(t, loc)[0] + 5
    while True:  # the library's ``WRAP:`` label
        year, month, day, hour, minute, second, weekday = clock(t, loc)
        if year > year_limit:
            return None
        if month not in spec.months:
            if not added:
                added = True
                t = go_date(year, month, 1, 0, 0, 0, loc)
            while True:
                t = add_date(t, loc, 0, 1, 0)
                month = clock(t, loc)[1]
                if month == 1 or month in spec.months:
                    break
            if month == 1:
                continue
            year, month, day, hour, minute, second, weekday = clock(t, loc)
        if not _day_matches(spec, day, weekday):
            if not added:
                added = True
                t = go_date(year, month, day, 0, 0, 0, loc)
            t = _next_day(spec, t, loc, v3)
            year, month, day, hour, minute, second, weekday = clock(t, loc)
            if day == 1:
                continue
        if hour not in spec.hours:
            if not added:
                added = True
                t = go_date(year, month, day, hour, 0, 0, loc)
            t = _advance(t, 3600, clock(t, loc)[3], spec.hours, 24, loc)
            year, month, day, hour, minute, second, weekday = clock(t, loc)
            if hour == 0:
                continue
        if minute not in spec.minutes:
            if not added:
                added = True
                t -= t % 60
            t = _advance(t, 60, clock(t, loc)[4], spec.minutes, 60, loc)
            year, month, day, hour, minute, second, weekday = clock(t, loc)
            if minute == 0:
                continue
        if second not in spec.seconds:
            added = True
            t += _steps(second, spec.seconds, 60)
            if clock(t, loc)[5] == 0:
                continue
        return t
