"""Time zones as the schedules need them: offsets, transitions, wall clocks.

A :class:`Zone` holds the zone's transitions over the years the schedule models cover
(:data:`RANGE`), found once by sampling the tz database a day apart and bisecting to the
second, so that reading a wall clock is a table look-up instead of a tz database call.
Outside that range it asks zoneinfo directly.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["RANGE", "TABLE", "Transition", "Zone", "stalled_by", "stalled_minutes", "zone"]

_UTC = dt.UTC
#: The years every largest gap is computed over: thirty years of transitions from 2026, and
#: the year before it.
RANGE = (
    int(dt.datetime(2025, 1, 1, tzinfo=_UTC).timestamp()),
    int(dt.datetime(2057, 1, 1, tzinfo=_UTC).timestamp()),
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
#: Tables reach a little past the range, so that a walk that starts near its end stays inside.
TABLE = (RANGE[0] - 400 * 86400, RANGE[1] + 400 * 86400)


@dataclass(frozen=True)
class Transition:
    """The zone's offset changes at ``instant`` from ``before`` to ``after`` (seconds east)."""

    instant: int
    before: int
    after: int

    @property
    def shift(self) -> int:
        """Positive: the clock jumps forward (local times skipped); negative: it falls back."""
        return self.after - self.before


@dataclass(frozen=True)
class Zone:
    name: str
    tzinfo: dt.tzinfo
    transitions: tuple[Transition, ...]
    _instants: list[int] = field(repr=False, compare=False)
    _first_offset: int = field(repr=False, compare=False)

    def offset(self, instant: int) -> int:
        """Seconds east of UTC in force at ``instant``."""
        if not TABLE[0] <= instant < TABLE[1]:
            delta = dt.datetime.fromtimestamp(instant, self.tzinfo).utcoffset()
            return int(delta.total_seconds()) if delta is not None else 0
        index = bisect.bisect_right(self._instants, instant)
        return self.transitions[index - 1].after if index else self._first_offset

    def wall(self, instant: int) -> int:
        """The wall-clock reading at ``instant``, as seconds since 1970-01-01 00:00."""
        return instant + self.offset(instant)

    def next_transition(self, instant: int) -> int | None:
        """The first transition after ``instant``, or None; outside the table, where
        transitions are not known, ``instant`` itself (callers then go step by step)."""
        if not TABLE[0] <= instant < TABLE[1]:
            return instant
        index = bisect.bisect_right(self._instants, instant)
        return self._instants[index] if index < len(self._instants) else None

    def upcoming(self, instant: int) -> Transition | None:
        """The first transition after ``instant`` (inside :data:`TABLE`), or None."""
        index = bisect.bisect_right(self._instants, instant)
        return self.transitions[index] if index < len(self.transitions) else None

    def latest(self, instant: int) -> Transition | None:
        """The last transition at or before ``instant`` (inside :data:`TABLE`), or None."""
        index = bisect.bisect_right(self._instants, instant)
        return self.transitions[index - 1] if index else None

    def in_range(self) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if RANGE[0] <= t.instant < RANGE[1])

    @property
    def standard_offset(self) -> int:
        """The smaller of the offsets the zone uses over the range (its winter time)."""
        offsets = {self._first_offset} | {t.after for t in self.in_range()}
        return min(offsets)


def _offset(instant: int, tz: dt.tzinfo) -> int:
    delta = dt.datetime.fromtimestamp(instant, tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


@lru_cache(maxsize=64)
def zone(name: str) -> Zone:
    """The zone called ``name`` (an IANA name; ``UTC`` and ``Etc/UTC`` have no transitions)."""
    tz: dt.tzinfo = _UTC if name in ("UTC", "Etc/UTC") else zoneinfo.ZoneInfo(name)
    transitions: list[Transition] = []
    first = _offset(TABLE[0], tz)
    if tz is not _UTC:
        previous = first
        for sample in range(TABLE[0] + 86400, TABLE[1], 86400):
            current = _offset(sample, tz)
            if current == previous:
                continue
            low, high = sample - 86400, sample  # offset(low) == previous != offset(high)
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(middle, tz) == previous:
                    low = middle
                else:
                    high = middle
            transitions.append(Transition(high, previous, current))
            previous = current
    return Zone(name, tz, tuple(transitions), [t.instant for t in transitions], first)


def civil(wall: int) -> tuple[int, int, int, int, int, int, int]:
    """Year, month, day, hour, minute, second and weekday (0 = Sunday) of a wall reading."""
    days, seconds = divmod(wall, 86400)
    date = dt.date.fromordinal(days + _EPOCH_ORDINAL)
    hour, rest = divmod(seconds, 3600)
    return date.year, date.month, date.day, hour, rest // 60, rest % 60, (days + 4) % 7


def wall_of(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """The wall reading of normalised fields (month 13 = January of the next year, day 0 =
    the last day of the month before, hour 25 = 01:00 the next day)."""
    month -= 1
    year += month // 12
    month = month % 12 + 1
    days = dt.date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    return days * 86400 + hour * 3600 + minute * 60 + second


@lru_cache(maxsize=64)
def shifted_minutes(name: str) -> tuple[frozenset[int], frozenset[int]]:
    """The local minutes of the day (0-1439) that a transition of the modelled years skips,
    and those it repeats, on the day it happens."""
    skipped: set[int] = set()
    repeated: set[int] = set()
    for transition in zone(name).in_range():
        low = (transition.instant + min(transition.before, transition.after)) // 60
        high = (transition.instant + max(transition.before, transition.after)) // 60
        target = skipped if transition.shift > 0 else repeated
        target.update(minute % 1440 for minute in range(low, high))
    return frozenset(skipped), frozenset(repeated)


@lru_cache(maxsize=64)
def stalled_minutes(name: str) -> frozenset[int]:
    """The local minutes of the day (0-1439) at which robfig/cron's ``Next`` stalls on the
    day of a transition of the modelled years (:func:`stalled_by`)."""
    return frozenset().union(*(stalled_by(t) for t in zone(name).in_range()))


def stalled_by(transition: Transition) -> frozenset[int]:
    """The local minutes of the day (0-1439) at which robfig/cron's ``Next`` stalls on the
    day of ``transition``, for a schedule that does not also run in the hour before.

    The library walks the minutes of an allowed hour one ``Add(time.Minute)`` at a time and
    stops at the first allowed minute without reading the hour again. A fall-back whose wall
    clock reads ``H:MM`` (``MM`` not 0) just before it sets that walk, started at ``H:00``,
    back into hour ``H-1``: a minute from ``MM`` on is found in hour ``H-1`` of the later
    offset. ``Next`` of that instant starts again at ``H-1:00``, before the transition,
    climbs to ``H:00`` and finds the same instant: the walk goes no further. Pacific/Chatham
    falls back from 03:45 (+13:45) to 02:45 (+12:45): 03:45-03:59 stall. A spring-forward
    only moves the walk on, and a fall-back on the hour (or one that stays in the hour,
    shorter than ``MM`` minutes) leaves the hour as it is.
    """
    if transition.shift >= 0:
        return frozenset()
    before = (transition.instant + transition.before) // 60
    after = (transition.instant + transition.after) // 60
    hour = before - before % 60  # the start of the hour the walk crosses it in
    if before == hour or not hour - 60 <= after < hour:
        return frozenset()
    return frozenset(minute % 1440 for minute in range(max(before, after + 60), hour + 60))
