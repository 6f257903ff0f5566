"""croner's ``find_next_occurrence``, as kopiur runs a SnapshotSchedule or a verification.

kopiur rewrites a bare ``H`` field itself, then has croner (five fields, no seconds, no
year) find the next occurrence after the current instant, read in the schedule's zone.
croner walks wall-clock (naive) times and maps each matching one to an instant:

- a wall time a spring-forward transition skips: for a *fixed-time* pattern (one minute and
  one hour, no wildcard or step) the run moves to the first valid instant after the gap,
  the transition itself, if that instant's local date still matches (a gap that ends past
  midnight loses it); for any other pattern that time is passed over (the run is lost);
- a wall time a fall-back transition repeats: the first of its two instants, so every
  pattern runs once in the repeated hour (the next search starts from that first pass and
  walks on from its wall time).

Day-of-month and day-of-week combine with OR when both are restricted, and only the other
counts when one is ``*`` (Vixie's rule, which robfig/cron v3 shares).
"""

from __future__ import annotations

import datetime as dt

from homeops_gen.schedules.robfig import Spec
from homeops_gen.schedules.zones import Zone, civil

__all__ = ["fixed_time", "instants", "next_run"]

_EPOCH = dt.date(1970, 1, 1)
#: croner gives up after this many years without a match; the walks never get near it.
_YEARS = 5


def fixed_time(cron: str) -> bool:
    """Whether croner classes the five-field ``cron`` as fixed-time: its minute and hour
    fields are single numbers (no wildcard, step, range or list)."""
    minute, hour = cron.split()[:2]
    return minute.isdigit() and hour.isdigit()


def instants(wall: int, loc: Zone) -> list[int]:
    """The instants whose wall-clock reading in ``loc`` is ``wall``: none in a gap, two in a
    repeated hour, else one; in order."""
    offsets = {loc.offset(wall - 86400), loc.offset(wall), loc.offset(wall + 86400)}
    return sorted({wall - o for o in offsets if loc.wall(wall - o) == wall})


def _day_matches(spec: Spec, day: dt.date) -> bool:
    if day.month not in spec.months:
        return False
    weekday = (day.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
    in_dom, in_dow = day.day in spec.dom, weekday in spec.dow
    if spec.dom_star or spec.dow_star:
        return in_dom and in_dow
    return in_dom or in_dow


def _walls(spec: Spec, after_wall: int) -> list[int] | None:
    """The matching wall times of the first matching day with one after ``after_wall``."""
    times = sorted(h * 3600 + m * 60 for h in spec.hours for m in spec.minutes)
    day_number, second = divmod(after_wall, 86400)
    start = _EPOCH + dt.timedelta(days=day_number)
    for offset in range(366 * _YEARS):
        day = start + dt.timedelta(days=offset)
        if not _day_matches(spec, day):
            continue
        base = (day_number + offset) * 86400
        found = [base + t for t in times if offset or t > second]
        if found:
            return found
    return None


def next_run(spec: Spec, after: int, loc: Zone, *, fixed: bool) -> int | None:
    """The first run strictly after the instant ``after`` (Unix seconds), read in ``loc``;
    ``fixed``: the pattern is fixed-time (see :func:`fixed_time`)."""
    wall = loc.wall(after)
    limit = civil(wall)[0] + _YEARS
    while True:
        candidates = _walls(spec, wall)
        if candidates is None or civil(candidates[0])[0] > limit:
            return None
        for candidate in candidates:
            found = instants(candidate, loc)
            if not found:
                if fixed:
                    # Step forward to the first wall time that exists: the end of the gap.
                    before = loc.offset(candidate - 86400)  # the offset before the gap
                    upcoming = loc.next_transition(candidate - before - 86400)
                    # Only if the end of the gap is still a matching day: a gap that ends
                    # after midnight (America/Nuuk's, 23:00-24:00) loses the run.
                    if (
                        upcoming is not None
                        and upcoming > after
                        and _day_matches(
                            spec, _EPOCH + dt.timedelta(days=loc.wall(upcoming) // 86400)
                        )
                    ):
                        return upcoming
                continue
            later = [t for t in found if t > after]
            if later:
                return later[0]
        wall = candidates[-1]
