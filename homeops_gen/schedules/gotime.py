"""Go's ``time`` package semantics that cron libraries depend on.

robfig/cron walks a calendar with ``time.Date``, ``AddDate`` (wall-clock fields, normalised,
then mapped to an instant) and ``Add`` (absolute seconds). Around a DST transition these
disagree: ``Add(time.Hour)`` from 00:00 on a spring-forward day lands on 02:00, and
``time.Date`` of a local time that does not exist picks one of the two offsets by a rule of
its own. Everything here reproduces those rules; instants are whole Unix seconds.
"""

from __future__ import annotations

from homeops_gen.schedules.zones import Zone, civil, wall_of

__all__ = ["add_date", "clock", "go_date"]


def clock(instant: int, loc: Zone) -> tuple[int, int, int, int, int, int, int]:
    """``t.Date()``, ``t.Clock()`` and ``t.Weekday()`` (0 = Sunday) of an instant in ``loc``."""
    return civil(loc.wall(instant))


def go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, loc: Zone) -> int:
    """``time.Date``: out-of-range fields are normalised, then the wall time is mapped to an
    instant.

    For a wall time that a transition skips or repeats, Go looks the offset up at the wall
    time read as UTC, and again at the instant that gives if that lies in another zone
    period; the result is "correct in one of the two zones": this one.
    """
    wall = wall_of(year, month, day, hour, minute, second)
    return wall - loc.offset(wall - loc.offset(wall))


def add_date(instant: int, loc: Zone, years: int, months: int, days: int) -> int:
    """``t.AddDate``: add to the wall-clock date, keep the wall-clock time, map back."""
    y, mo, d, h, mi, s, _ = clock(instant, loc)
    return go_date(y + years, mo + months, d + days, h, mi, s, loc)
