"""An independent model of the host schedulers: cron(8) and systemd timers, minute by minute.

Written from the two programs' documented DST rules, not from the generator's own model.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo


@functools.cache
def transitions(zone: str, year: int) -> tuple[int, ...]:
    """The instants the zone's offset changes in ``year``, found hour by hour."""
    tz = zoneinfo.ZoneInfo(zone)
    start = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())
    found = []
    previous = dt.datetime.fromtimestamp(start, tz).utcoffset()
    for instant in range(start, start + 366 * 86400, 1800):
        offset = dt.datetime.fromtimestamp(instant, tz).utcoffset()
        if offset != previous:
            found.append(instant)
        previous = offset
    return tuple(found)


def _allowed(text: str, value: int, high: int) -> bool:
    for item in text.split(","):
        base, _, step = item.partition("/")
        low, _, top = base.partition("-")
        lo = 0 if base == "*" else int(low)
        hi = high if base == "*" else int(top or (high if step else low))
        if lo <= value <= hi and (value - lo) % int(step or 1) == 0:
            return True
    return False


def host_runs(cron: str, zone: str, daemon: str, start: int, minutes: int) -> list[int]:
    """cron(8) and systemd, minute by minute on the wall clock: a fixed-time cron job whose
    minute was skipped runs at the first minute after the jump; a repeated minute runs once
    (fixed-time job) or again (``*`` job); a timer never elapses in a skipped minute and
    once in a repeated one."""
    tz = zoneinfo.ZoneInfo(zone)
    minute_f, hour_f, dom_f, _, dow_f = cron.split()
    star = minute_f.startswith("*") or hour_f.startswith("*")
    minutes_ok = {m for m in range(60) if _allowed(minute_f, m, 59)}
    hours_ok = {h for h in range(24) if _allowed(hour_f, h, 23)}
    days_ok = {d for d in range(1, 32) if _allowed(dom_f, d, 31)}
    weekdays_ok = {d for d in range(7) if _allowed(dow_f, d, 6)}
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    offsets: dict[int, int] = {}

    def wall_of(instant: int) -> int:
        """The wall clock as seconds since 1970-01-01 00:00 local (offsets change on
        quarter hours)."""
        block = instant // 900
        if block not in offsets:
            moment = epoch + dt.timedelta(seconds=block * 900)
            offsets[block] = int(moment.astimezone(tz).utcoffset().total_seconds())  # type: ignore[union-attr]
        return instant + offsets[block]

    def matches(wall: int) -> bool:
        if (wall // 60) % 60 not in minutes_ok or (wall // 3600) % 24 not in hours_ok:
            return False
        day = dt.date(1970, 1, 1) + dt.timedelta(days=wall // 86400)
        return day.day in days_ok and (day.weekday() + 1) % 7 in weekdays_ok

    out: list[int] = []
    seen: set[int] = set()
    last_wall: int | None = None
    for instant in range(start, start + minutes * 60, 60):
        wall = wall_of(instant)
        pending = [wall]
        jumped = last_wall is not None and wall - last_wall > 60
        if jumped and daemon == "cron" and not star:
            pending = list(range(last_wall + 60, wall + 1, 60))
        for w in pending:
            if not matches(w):
                continue
            if w in seen and not (daemon == "cron" and star):
                continue
            seen.add(w)
            out.append(instant)
        last_wall = wall
    return out
