"""The largest gap between two runs of a schedule, as its runtime really runs it.

Away from a zone transition two consecutive runs are as far apart as their wall-clock
times, so the calendar alone gives the gap (:func:`calendar_gap`, every weekday and
leap-year alignment). Only a gap that spans a transition can differ: for those the runs
are produced by the runtime's own walk (:func:`homeops_gen.schedules.robfig.next_run`)
from well before each transition of the modelled years to well after it, and the largest
of all is kept with the instant it starts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from homeops_gen.schedules.gotime import clock
from homeops_gen.schedules.robfig import Spec
from homeops_gen.schedules.zones import RANGE, Transition, Zone, civil

__all__ = ["Gap", "calendar_gap", "largest_gap", "runs"]

#: A calendar long enough to hold every weekday/leap-year alignment (28-year solar cycle).
_CYCLE_START = dt.date(2025, 1, 1)
_CYCLE_DAYS = (dt.date(2053, 1, 1) - _CYCLE_START).days
_LEAP_CYCLE_DAYS = (dt.date(2029, 1, 1) - _CYCLE_START).days
#: How far around a transition the runs are walked beyond the calendar gap and the
#: transition's own shift: every run whose walk the transition can change lies closer.
_PAD = 3 * 3600

NextRun = Callable[[int], "int | None"]


@dataclass(frozen=True)
class Gap:
    """The largest wait between two consecutive runs, and when it starts."""

    span: dt.timedelta
    #: The instant (Unix seconds) of the run the gap starts at; ``None``: the calendar's own
    #: gap, which recurs on ordinary days.
    start: int | None


def _day_matches(spec: Spec, day: dt.date, guard: int | None) -> bool:
    if day.month not in spec.months:
        return False
    weekday = (day.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
    if guard is not None and (weekday != guard or day.day > 7):
        return False
    in_dom, in_dow = day.day in spec.dom, weekday in spec.dow
    if spec.dom_star or spec.dow_star:
        return in_dom and in_dow
    return in_dom or in_dow


@lru_cache(maxsize=4096)
def calendar_gap(spec: Spec, guard: int | None = None) -> tuple[dt.timedelta, dt.timedelta]:
    """The largest and the smallest wall-clock gap between runs, over every alignment.

    ``guard`` is a weekday (0 = Sunday) that the job itself requires, on days 1-7.
    Raises ``ValueError`` for a schedule that never runs (or less than once in 28 years).
    """
    times = sorted(
        h * 3600 + m * 60 + s for h in spec.hours for m in spec.minutes for s in spec.seconds
    )
    # The days a schedule runs on do not depend on its times: schedules that differ only in
    # their (staggered) minutes and hours share one scan of the calendar.
    no_times = frozenset[int]()
    largest_days, smallest_days = _day_gaps(
        dataclasses.replace(spec, seconds=no_times, minutes=no_times, hours=no_times), guard
    )
    within = [b - a for a, b in itertools.pairwise(times)]
    largest = max([*within, largest_days * 86400 - times[-1] + times[0]])
    smallest = min([*within, smallest_days * 86400 - times[-1] + times[0]])
    return dt.timedelta(seconds=largest), dt.timedelta(seconds=smallest)


@lru_cache(maxsize=1024)
def _day_gaps(days_of: Spec, guard: int | None) -> tuple[int, int]:
    """The largest and smallest number of days between two days the schedule runs on
    (``days_of`` holds only its day fields)."""
    weekday_free = guard is None and days_of.dow_star
    if guard is None and days_of.dom_star and len(days_of.months) == 12:
        weekdays = sorted(days_of.dow)  # every month, chosen weekdays: a weekly cycle
        day_gaps = [b - a for a, b in itertools.pairwise([*weekdays, weekdays[0] + 7])]
    else:
        # Without a weekday condition the calendar repeats every 4 years (leap days); scan
        # two cycles so that the gap across the cycle boundary is seen too.
        days = 2 * _LEAP_CYCLE_DAYS if weekday_free else _CYCLE_DAYS
        matching = [
            offset
            for offset in range(days)
            if _day_matches(days_of, _CYCLE_START + dt.timedelta(days=offset), guard)
        ]
        if len(matching) < 2:
            raise ValueError("the schedule never runs (or runs less than once in 28 years)")
        day_gaps = [b - a for a, b in itertools.pairwise(matching)]
    return max(day_gaps), min(day_gaps)


def runs(next_run: NextRun, start: int, end: int) -> Iterator[int]:
    """Every run in ``(start, end]``, and the first one after ``end``."""
    t = start
    while (following := next_run(t)) is not None:
        t = following
        yield t
        if t > end:
            return


@dataclass(frozen=True)
class _Window:
    low: int
    high: int
    transitions: tuple[Transition, ...]


def _windows(zone: Zone, reach: int) -> list[_Window]:
    """The stretches around the transitions of the modelled years, overlapping ones merged."""
    merged: list[_Window] = []
    for transition in zone.in_range():
        low, high = transition.instant - reach, transition.instant + reach
        if merged and low <= merged[-1].high:
            last = merged[-1]
            merged[-1] = _Window(last.low, high, (*last.transitions, transition))
        else:
            merged.append(_Window(low, high, (transition,)))
    return merged


def _likeness(spec: Spec, guard: int | None) -> Callable[[Transition], Hashable] | None:
    """What makes two lone transitions walk alike for this schedule, or None (no shortcut).

    A schedule that runs on every day of every month sees only the transition's wall time
    and offsets (the walk never moves by days); one that runs on chosen weekdays of every
    month also sees its weekday (a day-of-month roll-over is a no-op when every month
    matches). Transitions that agree on these give the same runs, a whole number of days
    apart, so the largest gap around one is the largest gap around each.
    """
    if guard is not None or not spec.dom_star or len(spec.months) != 12:
        return None

    def wall_alike(transition: Transition) -> tuple[int, ...]:
        wall = transition.instant + transition.before
        return (wall % 86400, transition.before, transition.after)

    if spec.dow_star:
        return wall_alike
    return lambda t: (*wall_alike(t), civil(t.instant + t.before)[6])


def largest_gap(spec: Spec, zone: Zone, next_run: NextRun, *, guard: int | None = None) -> Gap:
    """The largest gap of ``spec`` run by ``next_run`` in ``zone`` over :data:`RANGE`.

    ``guard`` drops the runs whose local weekday in ``zone`` is not the one the job requires.
    """
    calendar = calendar_gap(spec, guard)[0]
    best = Gap(calendar, None)
    shift = max((abs(t.shift) for t in zone.in_range()), default=0)
    reach = int(calendar.total_seconds()) + shift + _PAD
    likeness = _likeness(spec, guard)
    walked: set[Hashable] = set()
    for window in _windows(zone, reach):
        lone = likeness is not None and len(window.transitions) == 1
        if lone and RANGE[0] <= window.low and window.high <= RANGE[1]:
            key = likeness(window.transitions[0])  # type: ignore[misc]
            if key in walked:
                continue  # an earlier transition walked alike: same gaps, found earlier
            walked.add(key)
        times = runs(next_run, max(window.low, RANGE[0]), min(window.high, RANGE[1]))
        if guard is not None:
            times = (t for t in times if clock(t, zone)[6] == guard)
        for a, b in itertools.pairwise(times):
            if b - a > best.span.total_seconds():
                best = Gap(dt.timedelta(seconds=b - a), a)
    return best
