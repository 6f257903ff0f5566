"""The largest gap between two runs of a schedule, as its runtime really runs it.

Away from a zone transition two consecutive runs are as far apart as their wall-clock
times, so the calendar alone gives the gap (:func:`calendar_gap`, every weekday and
leap-year alignment). Only a gap that spans a transition can differ: for those the runs
are produced by the runtime's own walk (:func:`homeops_gen.schedules.robfig.next_run`)
from well before each transition of the modelled years to well after it, and the largest
of all is kept with the instant it starts.

Most steps of those walks are far from every transition, where each runtime runs a
schedule exactly as the wall clock says: there the next run is read off the calendar of
the days the schedule runs on (:func:`_wall_step`, shared by every schedule with the same
day fields), and only the steps a transition can touch are left to the runtime's walk.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from homeops_gen.schedules.gotime import clock, go_date
from homeops_gen.schedules.robfig import Spec
from homeops_gen.schedules.zones import RANGE, TABLE, Transition, Zone, civil

__all__ = [
    "Gap",
    "ScheduleStall",
    "calendar_gap",
    "describe_transition",
    "largest_gap",
    "local_time",
    "runs",
]

#: A calendar long enough to hold every weekday/leap-year alignment (28-year solar cycle).
_CYCLE_START = dt.date(2025, 1, 1)
_CYCLE_DAYS = (dt.date(2053, 1, 1) - _CYCLE_START).days
_LEAP_CYCLE_DAYS = (dt.date(2029, 1, 1) - _CYCLE_START).days
#: How far around a transition the runs are walked beyond the calendar gap and the
#: transition's own shift: every run whose walk the transition can change lies closer.
_PAD = 3 * 3600

NextRun = Callable[[int], "int | None"]

_EPOCH = dt.date(1970, 1, 1)
#: How far from every transition a step must stay for the runtime to take it exactly as
#: the wall clock says: its walk (the day it starts on, the day it ends on) and the zone
#: look-ups that walk makes (Go's ``time.Date`` reads the offset up to 14 hours away).
_QUIET = 2 * 86400
#: robfig/cron and croner give up after five years; steps longer than this are left to them.
_LONGEST_STEP = 4 * 365 * 86400


class ScheduleStall(ValueError):
    """The runtime's next run after a run is that same run (or an earlier one): its walk
    goes no further, and whatever drives it repeats or stops there."""

    def __init__(
        self,
        instant: int,
        following: int,
        message: str = "",
        *,
        zone: str = "",
        transition: Transition | None = None,
    ) -> None:
        super().__init__(message or f"the next run after {instant} is {following}")
        #: The run (Unix seconds) whose next run does not come after it.
        self.instant = instant
        #: What the runtime gives as the next run: ``instant`` itself, or earlier.
        self.following = following
        self.zone = zone
        #: The transition the walk crossed last, when known.
        self.transition = transition

    def explained(self, message: str) -> ScheduleStall:
        """The same stall, told by ``message``."""
        return ScheduleStall(
            self.instant,
            self.following,
            message,
            zone=self.zone,
            transition=self.transition,
        )


@dataclass(frozen=True)
class Gap:
    """The largest wait between two consecutive runs, and when it starts."""

    span: dt.timedelta
    #: The instant (Unix seconds) of the run the gap starts at; ``None``: the calendar's own
    #: gap, which recurs on ordinary days.
    start: int | None


@lru_cache(maxsize=4)
def _months(first: dt.date, end: int) -> tuple[tuple[int, int, int, int], ...]:
    """``(month, day of its 1st, its length, the weekday of its 1st)`` of each month from
    ``first``'s to the one holding day ``end - 1`` (days numbered from 1970-01-01, weekdays
    from Sunday = 0)."""
    found = []
    start = dt.date(first.year, first.month, 1)
    while (base := (start - _EPOCH).days) < end:
        following = (start + dt.timedelta(days=31)).replace(day=1)
        weekday = (start.weekday() + 1) % 7  # Python: Monday = 0
        found.append((start.month, base, (following - start).days, weekday))
        start = following
    return tuple(found)


def _calendar_days(
    days_of: Spec, first: dt.date, count: int, guard: int | None = None
) -> Iterator[int]:
    """The days (numbered from 1970-01-01) a schedule with these day fields runs on, from
    the 1st of ``first``'s month to the ``count``-th day after ``first``; with a
    first-weekday ``guard``, only those of days 1-7 on that weekday (0 = Sunday). A month's
    days follow by arithmetic from the weekday of its 1st, by the day-of-month/day-of-week
    rule of :attr:`Spec.dom_star` (both restricted: either one; else both)."""
    end = (first - _EPOCH).days + count
    dom, dow = sorted(days_of.dom), days_of.dow
    for month, base, length, weekday in _months(first, end):
        if month not in days_of.months:
            continue
        if days_of.dow_star:  # both fields, the day of the month first (most are one day)
            days: Iterable[int] = (
                day for day in dom if day <= length and (weekday + day - 1) % 7 in dow
            )
        else:
            on_weekdays = sorted(
                day for wanted in dow for day in range((wanted - weekday) % 7 + 1, length + 1, 7)
            )
            if days_of.dom_star:
                days = (day for day in on_weekdays if day in days_of.dom)
            else:
                days = sorted({day for day in dom if day <= length}.union(on_weekdays))
        if guard is not None:
            days = (day for day in days if day <= 7 and (weekday + day - 1) % 7 == guard)
        for day in days:  # in order: the first past the end ends the month, and the walk
            if base + day - 1 >= end:
                return
            yield base + day - 1


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
        cycle = (_CYCLE_START - _EPOCH).days
        matching = [day - cycle for day in _calendar_days(days_of, _CYCLE_START, days, guard)]
        if len(matching) < 2:
            raise ValueError("the schedule never runs (or runs less than once in 28 years)")
        day_gaps = [b - a for a, b in itertools.pairwise(matching)]
    return max(day_gaps), min(day_gaps)


def runs(next_run: NextRun, start: int, end: int) -> Iterator[int]:
    """Every run in ``(start, end]``, and the first one after ``end``.

    Raises :class:`ScheduleStall` when the next run after a run is not later than it.
    """
    t = start
    while (following := next_run(t)) is not None:
        if following <= t:
            raise ScheduleStall(t, following)
        t = following
        yield t
        if t > end:
            return


@lru_cache(maxsize=256)
def _run_days(days_of: Spec) -> tuple[int, ...]:
    """The days (numbered from 1970-01-01) a schedule with these day fields runs on, over
    the zones' tables, by the day-of-month/day-of-week rule of :attr:`Spec.dom_star`."""
    first, last = TABLE[0] // 86400, TABLE[1] // 86400
    found = _calendar_days(days_of, _EPOCH + dt.timedelta(days=first), last - first)
    return tuple(day for day in found if day >= first)


def _next_wall(days: tuple[int, ...], times: tuple[int, ...], wall: int) -> int | None:
    """The first wall-clock reading after ``wall`` on one of ``days`` at one of ``times``."""
    day, second = divmod(wall, 86400)
    index = bisect.bisect_left(days, day)
    if index < len(days) and days[index] == day:
        at = bisect.bisect_right(times, second)
        if at < len(times):
            return day * 86400 + times[at]
        index += 1
    return days[index] * 86400 + times[0] if index < len(days) else None


#: (zone name, transition instant) -> whether ``time.Date`` maps the midnights next to it
#: exactly (:func:`_exact_midnights`).
_EXACT_MIDNIGHTS: dict[tuple[str, int], bool] = {}


def _exact_midnights(transition: Transition, zone: Zone) -> bool:
    """Whether ``time.Date`` maps every midnight next to the transition to an instant that
    reads that midnight, so that a walk over it by ``AddDate`` from midnight to midnight
    lands on each one exactly (the midnights farther away are quiet)."""
    key = (zone.name, transition.instant)
    if (known := _EXACT_MIDNIGHTS.get(key)) is not None:
        return known
    days = {
        (transition.instant + offset) // 86400 + step
        for offset in (transition.before, transition.after)
        for step in (-1, 0, 1)
    }
    exact = all(zone.wall(go_date(*civil(day * 86400)[:6], zone)) == day * 86400 for day in days)
    _EXACT_MIDNIGHTS[key] = exact
    return exact


def _wall_step(spec: Spec, zone: Zone) -> NextRun:
    """The next run after an instant where no transition can touch the step, else None.

    Each runtime modelled here (robfig/cron, croner, cron, systemd) gives the first instant
    whose wall-clock reading matches the schedule when the offset is the same all along the
    step and for :data:`_QUIET` around it: its walk is then a walk in a fixed-offset zone.
    It does too when the step moves over one transition by whole days only, both ends
    quiet: robfig/cron crosses those days with ``AddDate`` from midnight to midnight (exact
    when :func:`_exact_midnights`), croner and the host daemons by wall-clock dates. Every
    other step (None) is left to the runtime's own walk.
    """
    no_times = frozenset[int]()
    days = _run_days(dataclasses.replace(spec, seconds=no_times, minutes=no_times, hours=no_times))
    times = tuple(
        sorted(
            h * 3600 + m * 60 + s for h in spec.hours for m in spec.minutes for s in spec.seconds
        )
    )

    def step(after: int) -> int | None:
        if after - _QUIET < TABLE[0]:
            return None
        offset = zone.offset(after)
        wall = _next_wall(days, times, after + offset)
        if wall is None or wall - offset - after > _LONGEST_STEP:
            return None
        upcoming = zone.upcoming(after - _QUIET)
        if upcoming is None or upcoming.instant > wall - offset + _QUIET:
            following: int | None = wall - offset  # one offset all along
        else:
            following = _over(upcoming, after, wall, zone)
        if following is None or following + _QUIET >= TABLE[1]:
            return None
        return following

    return step


def _over(transition: Transition, after: int, wall: int, zone: Zone) -> int | None:
    """The run at ``wall`` after ``after`` when the step passes over ``transition`` by whole
    days, both ends quiet, else None."""
    if transition.instant <= after + _QUIET:
        return None  # the step starts near it
    if wall < transition.instant + max(transition.before, transition.after) + _QUIET:
        return None  # the run is near it
    following = wall - transition.after
    later = zone.upcoming(transition.instant)
    if later is not None and later.instant <= following + _QUIET:
        return None  # another one is near
    return following if _exact_midnights(transition, zone) else None


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


def _likeness(spec: Spec, guard: int | None, reach: int) -> Callable[[Transition], Hashable] | None:
    """What makes two lone transitions walk alike for this schedule, or None (no shortcut).

    A schedule that runs in every month sees only the transition's wall time and offsets,
    and which days around it the schedule runs on (a month's roll-over is a no-op when
    every month matches): every day, for one that runs daily; the transition's weekday, for
    one that runs on chosen weekdays; else the days it runs on, as offsets from the
    transition's own day, over the ``reach`` either side and a calendar gap beyond. A
    first-weekday guard keeps the runs on one local weekday: then the transition's weekday
    too, so that every day around two alike transitions falls on the same weekday.
    Transitions that agree on these give the same runs, a whole number of days apart, so
    the largest gap around one is the largest gap around each.
    """
    if len(spec.months) != 12:
        return None
    weekday = guard is not None or not spec.dow_star

    def wall_alike(transition: Transition) -> tuple[int, ...]:
        wall = transition.instant + transition.before
        key = (wall % 86400, transition.before, transition.after)
        return (*key, civil(wall)[6]) if weekday else key

    if spec.dom_star:
        return wall_alike
    no_times = frozenset[int]()
    days = _run_days(dataclasses.replace(spec, seconds=no_times, minutes=no_times, hours=no_times))
    margin = 2 * reach // 86400 + 3  # days: the reach, then up to a calendar gap (< reach)

    def days_alike(transition: Transition) -> tuple[int, ...]:
        day = (transition.instant + transition.before) // 86400
        low = bisect.bisect_left(days, day - margin)
        high = bisect.bisect_right(days, day + margin)
        return (*wall_alike(transition), *(d - day for d in days[low:high]))

    return days_alike


def largest_gap(spec: Spec, zone: Zone, next_run: NextRun, *, guard: int | None = None) -> Gap:
    """The largest gap of ``spec`` run by ``next_run`` in ``zone`` over :data:`RANGE`.

    ``guard`` drops the runs whose local weekday in ``zone`` is not the one the job requires.
    Raises :class:`ScheduleStall` (naming the zone, the local time and the transition) when
    the runtime's next run after a run is not later than it.
    """
    calendar = calendar_gap(spec, guard)[0]
    best = Gap(calendar, None)
    shift = max((abs(t.shift) for t in zone.in_range()), default=0)
    reach = int(calendar.total_seconds()) + shift + _PAD
    likeness = _likeness(spec, guard, reach)
    walked: set[Hashable] = set()
    quick = _wall_step(spec, zone)

    def step(after: int) -> int | None:
        following = quick(after)
        return next_run(after) if following is None else following

    for window in _windows(zone, reach):
        lone = likeness is not None and len(window.transitions) == 1
        if lone and RANGE[0] <= window.low and window.high <= RANGE[1]:
            key = likeness(window.transitions[0])  # type: ignore[misc]
            if key in walked:
                continue  # an earlier transition walked alike: same gaps, found earlier
            walked.add(key)
        times = runs(step, max(window.low, RANGE[0]), min(window.high, RANGE[1]))
        if guard is not None:
            times = (t for t in times if clock(t, zone)[6] == guard)
        try:
            for a, b in itertools.pairwise(times):
                if b - a > best.span.total_seconds():
                    best = Gap(dt.timedelta(seconds=b - a), a)
        except ScheduleStall as stall:
            raise _told(stall, zone) from None
    return best


def local_time(instant: int, zone: Zone) -> str:
    """``2029-04-01 02:52 (+12:45)``: the wall clock at ``instant`` and its offset."""
    year, month, day, hour, minute, *_ = clock(instant, zone)
    offset = _offset(zone.offset(instant))
    return f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d} ({offset})"


def _offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def describe_transition(transition: Transition) -> str:
    """``the fall-back of 2029-04-01 from 03:45 (+13:45) to 02:45 (+12:45)``."""
    year, month, day, hour, minute, *_ = civil(transition.instant + transition.before)
    after = civil(transition.instant + transition.after)
    kind = "fall-back" if transition.shift < 0 else "spring-forward"
    return (
        f"the {kind} of {year:04d}-{month:02d}-{day:02d} from {hour:02d}:{minute:02d} "
        f"({_offset(transition.before)}) to {after[3]:02d}:{after[4]:02d} "
        f"({_offset(transition.after)})"
    )


def _told(stall: ScheduleStall, zone: Zone) -> ScheduleStall:
    """The stall with the zone, the local time and the transition it follows."""
    transition = zone.latest(stall.instant)
    again = (
        "that same instant again"
        if stall.following == stall.instant
        else f"an earlier one, {local_time(stall.following, zone)}"
    )
    cause = f", after {describe_transition(transition)}" if transition is not None else ""
    return ScheduleStall(
        stall.instant,
        stall.following,
        f"its next run after the run at {local_time(stall.instant, zone)} in {zone.name} is "
        f"{again}{cause}",
        zone=zone.name,
        transition=transition,
    )
