"""Backup schedules: cron parsing, cadence shorthands, deterministic stagger, largest gap.

A :class:`Schedule` is a five-field cron expression plus an optional *first-weekday guard*.
The guard exists because cron ORs day-of-month and day-of-week when both are restricted:
``0 4 1-7 * 0`` fires on every Sunday *and* on days 1-7, not on the first Sunday. A
"monthly, first Sunday" schedule is therefore ``M H 1-7 * *`` with a guard that the job's
script checks (it exits successfully without doing anything on the other six days).

Everything here works on wall-clock time in the schedule's own time zone; a DST change can
stretch one gap by an hour, which callers add as grace where it matters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "WEEKDAYS",
    "CronField",
    "Schedule",
    "alert_threshold",
    "format_duration",
    "parse_cadence",
    "parse_cron",
    "parse_duration",
    "parse_seconds",
    "posix_tz",
    "stagger_seed",
]

#: Weekday names in cron numbering (0 = Sunday).
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY_HOURS = re.compile(r"^([0-9]+)h$")
_DIGITS = re.compile(r"[0-9]+")
_FIRST_WEEKDAY = re.compile(r"^monthly-first-([a-z]+)$")
#: A calendar long enough to hold every weekday/leap-year alignment (28-year solar cycle).
_CYCLE_START = dt.date(2025, 1, 1)
_CYCLE_DAYS = (dt.date(2053, 1, 1) - _CYCLE_START).days
_LEAP_CYCLE_DAYS = (dt.date(2029, 1, 1) - _CYCLE_START).days


@dataclass(frozen=True)
class CronField:
    """The set of values one cron field allows, and whether it was written as ``*...``."""

    values: frozenset[int]
    wildcard: bool


@dataclass(frozen=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day-of-month", 1, 31),
    _Bounds("month", 1, 12, _MONTHS, 1),
    _Bounds("day-of-week", 0, 6, tuple(d[:3] for d in WEEKDAYS), 0),
)


def _parse_value(text: str, bounds: _Bounds) -> int:
    lowered = text.lower()
    if lowered in bounds.names:
        return bounds.names.index(lowered) + bounds.name_base
    if not _DIGITS.fullmatch(text):  # ASCII digits only, as Kubernetes' parser
        raise ValueError(f"{bounds.name} field: {text!r} is not a number or name")
    value = int(text)
    if not bounds.low <= value <= bounds.high:
        raise ValueError(f"{bounds.name} field: {value} is outside {bounds.low}-{bounds.high}")
    return value


def _parse_item(item: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """The values one list item allows, and whether it counts as ``*`` for the OR rule."""
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
            raise ValueError(f"{bounds.name} field: step {step_text!r} must be a positive number")
        step = int(step_text)
    if base in ("*", "?"):
        low, high = bounds.low, bounds.high
    elif "-" in base:
        first, _, last = base.partition("-")
        if not first or not last:
            raise ValueError(f"{bounds.name} field: {item!r} is not a number, name or range")
        low, high = _parse_value(first, bounds), _parse_value(last, bounds)
        if low > high:
            raise ValueError(f"{bounds.name} field: range {base!r} runs backwards")
    else:
        low = _parse_value(base, bounds)
        high = bounds.high if step_text else low
    # Kubernetes' parser (robfig/cron v3) treats a field as unrestricted for the
    # day-of-month/day-of-week OR rule only for "*" or "?" with step 1: "*/2" restricts.
    return set(range(low, high + 1, step)), base in ("*", "?") and step == 1


def _parse_field(text: str, bounds: _Bounds) -> CronField:
    values: set[int] = set()
    wildcard = False
    for item in text.split(","):
        if not item:
            raise ValueError(f"{bounds.name} field: empty list item in {text!r}")
        item_values, item_wildcard = _parse_item(item, bounds)
        values |= item_values
        wildcard = wildcard or item_wildcard
    return CronField(frozenset(values), wildcard)


_SECONDS = _Bounds("second", 0, 59)


def parse_seconds(text: str) -> frozenset[int]:
    """The values of a seconds field (the first of CNPG's six)."""
    return _parse_field(text, _SECONDS).values


def parse_cron(expr: str) -> tuple[CronField, ...]:
    """Parse a five-field cron expression (or an ``@daily``-style macro) into its fields.

    Raises ``ValueError`` naming the offending field.
    """
    text = _MACROS.get(expr.strip(), expr.strip())
    if text.startswith("@"):
        raise ValueError(f"unknown cron macro {text!r}")
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ValueError("time zones in the expression are not allowed; set settings.timezone")
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    return tuple(_parse_field(part, bounds) for part, bounds in zip(parts, _FIELDS, strict=True))


@dataclass(frozen=True)
class Schedule:
    """When a job runs: a cron expression, optionally restricted to the first <weekday>."""

    cron: str
    #: Cron weekday number (0 = Sunday); the job only does work on that weekday. Always
    #: paired with day-of-month ``1-7``.
    first_weekday: int | None = None

    def __post_init__(self) -> None:
        parse_cron(self.cron)  # reject malformed schedules at construction

    @property
    def description(self) -> str:
        if self.first_weekday is None:
            return self.cron
        return f"{self.cron} (first {WEEKDAYS[self.first_weekday].capitalize()} only)"

    def max_gap(self) -> dt.timedelta:
        """The longest wait between two consecutive runs, over every calendar alignment."""
        return _max_gap(self.cron, self.first_weekday)


@lru_cache(maxsize=4096)
def _max_gap(cron: str, first_weekday: int | None) -> dt.timedelta:
    minute, hour, dom, month, dow = parse_cron(cron)
    times = sorted(h * 60 + m for h in hour.values for m in minute.values)
    day_gap = _max_day_gap(dom, month, dow, first_weekday)
    within_day = max((b - a for a, b in itertools.pairwise(times)), default=0)
    across_days = day_gap * 1440 - times[-1] + times[0]
    return dt.timedelta(minutes=max(within_day, across_days))


def _day_matches(
    day: dt.date, dom: CronField, month: CronField, dow: CronField, first_weekday: int | None
) -> bool:
    if day.month not in month.values:
        return False
    weekday = (day.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
    if first_weekday is not None and (weekday != first_weekday or day.day > 7):
        return False
    in_dom, in_dow = day.day in dom.values, weekday in dow.values
    if dom.wildcard or dow.wildcard:  # cron's rule: AND unless both are restricted, then OR
        return in_dom and in_dow
    return in_dom or in_dow


@lru_cache(maxsize=256)
def _max_day_gap(
    dom: CronField, month: CronField, dow: CronField, first_weekday: int | None
) -> int:
    """Largest number of days between two consecutive days on which the schedule runs."""
    weekday_free = first_weekday is None and dow.wildcard
    if first_weekday is None and dom.wildcard and len(month.values) == 12:
        weekdays = sorted(dow.values)  # every month, chosen weekdays: a weekly cycle
        return max(b - a for a, b in itertools.pairwise([*weekdays, weekdays[0] + 7]))
    # Without a weekday condition the calendar repeats every 4 years (leap days); scan two
    # cycles so that the gap across the cycle boundary is seen too.
    days = 2 * _LEAP_CYCLE_DAYS if weekday_free else _CYCLE_DAYS
    matching = [
        offset
        for offset in range(days)
        if _day_matches(_CYCLE_START + dt.timedelta(days=offset), dom, month, dow, first_weekday)
    ]
    if len(matching) < 2:
        raise ValueError("the schedule never runs (or runs less than once in 28 years)")
    return max(b - a for a, b in itertools.pairwise(matching))


def stagger_seed(name: str) -> int:
    """A stable number derived from a service name (independent of ``PYTHONHASHSEED``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def parse_cadence(
    cadence: str, *, name: str, window_start: int, window_hours: int, weekly_day: int
) -> Schedule:
    """Turn a cadence (shorthand or cron) into a :class:`Schedule`.

    Shorthands are staggered deterministically by ``name`` so that jobs do not all start at
    the same minute: the minute comes from the name's hash, the hour from the backup window
    ``[window_start, window_start + window_hours)``.
    """
    seed = stagger_seed(name)
    minute = seed % 60
    hour = (window_start + (seed // 60) % window_hours) % 24
    text = cadence.strip().lower()
    if text == "hourly":
        return Schedule(f"{minute} * * * *")
    if match := _EVERY_HOURS.match(text):
        every = int(match.group(1))
        if every == 0 or 24 % every:
            raise ValueError(
                f"'{cadence}': every N hours needs N to divide 24 (1, 2, 3, 4, 6, 8, 12, 24)"
            )
        first = (seed // 60) % every
        hours = ",".join(str(h) for h in range(first, 24, every))
        return Schedule(f"{minute} {hours} * * *")
    if text == "daily":
        return Schedule(f"{minute} {hour} * * *")
    if text == "weekly":
        return Schedule(f"{minute} {hour} * * {weekly_day}")
    if text == "monthly":
        return Schedule(f"{minute} {hour} 1 * *")
    if match := _FIRST_WEEKDAY.match(text):
        day_name = match.group(1)
        if day_name not in WEEKDAYS:
            raise ValueError(f"'{cadence}': {day_name!r} is not a weekday name")
        return Schedule(f"{minute} {hour} 1-7 * *", first_weekday=WEEKDAYS.index(day_name))
    try:
        return Schedule(cadence.strip())
    except ValueError as exc:
        raise ValueError(
            f"'{cadence}' is neither a shorthand (hourly, <N>h, daily, weekly, monthly, "
            f"monthly-first-<weekday>) nor a valid cron expression: {exc}"
        ) from None


def format_duration(span: dt.timedelta) -> str:
    """``35d``, ``36h`` or ``90m``: the largest whole unit that divides the span."""
    minutes = int(span.total_seconds()) // 60
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def posix_tz(zone: str) -> str | None:
    """The POSIX ``TZ`` rule for an IANA zone (``Europe/London`` → ``GMT0BST,M3.5.0/1,M10.5.0``).

    Read from the footer of the zone's TZif file. Unlike the zone name, a POSIX rule works in
    any container, with or without zoneinfo files (Alpine images have none). ``None`` when the
    zone file is not found or has no footer.
    """
    import zoneinfo
    from pathlib import Path

    for base in zoneinfo.TZPATH:
        path = Path(base) / zone
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not data.startswith(b"TZif") or data[4:5] in (b"\0", b""):
            return None  # version 1 files carry no rule
        footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii", "replace")
        return footer or None
    return None


_DURATION = re.compile(r"^([0-9]+)(m|h|d|w)$")
_DURATION_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``36h``, ``8d``, ``2w``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 36h or 8d")
    return dt.timedelta(minutes=int(match.group(1)) * _DURATION_MINUTES[match.group(2)])


def alert_threshold(schedule: Schedule) -> dt.timedelta:
    """How old the last success may get before an alert: the largest gap between runs plus a
    grace of a tenth of it, at least an hour (a run's own duration, a DST change, a late
    controller), rounded up to whole minutes."""
    gap = schedule.max_gap()
    grace = max(dt.timedelta(hours=1), gap / 10)
    minutes = -(-int((gap + grace).total_seconds()) // 60)
    return dt.timedelta(minutes=minutes)
