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
import functools
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from homeops_gen.schedules import Timing

__all__ = [
    "RUN_ALLOWANCE",
    "WEEKDAYS",
    "CronField",
    "Runtime",
    "Schedule",
    "alert_threshold",
    "cron_fields",
    "format_duration",
    "parse_cadence",
    "parse_cron",
    "parse_duration",
    "parse_seconds",
    "posix_tz",
    "run_time",
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


#: What a written cron expression may not hold: anything but printable ASCII and single
#: spaces between fields (leading, trailing or doubled spaces included).
_CRON_TEXT_BAD = re.compile(r"[^ -~]|^ | $|  ")


def _describe_char(text: str) -> str:
    if text.strip(" ") == "":
        return "a leading, trailing or doubled space"
    return f"U+{ord(text):04X} ({text!r})"


def cron_fields(expr: str) -> list[str]:
    """The five fields of a cron expression as written, an ``@daily``-style macro expanded
    (not checked: :func:`parse_cron` checks them)."""
    return _MACROS.get(expr.strip(), expr.strip()).split()


def parse_cron(expr: str) -> tuple[CronField, ...]:
    """Parse a five-field cron expression (or an ``@daily``-style macro) into its fields.

    The expression is exactly what is written to every output (a CronJob, a VolSync or CNPG
    object, a host's crontab or env file, the docs' tables), so it must be five fields of
    printable ASCII separated by single spaces: a tab, a line break or any other character
    would end up in a shell or a markdown table as something else.

    Raises ``ValueError`` naming the offending field.
    """
    if bad := _CRON_TEXT_BAD.search(expr):
        raise ValueError(
            "a cron expression is five fields of printable ASCII separated by single spaces; "
            f"found {_describe_char(bad.group(0))} at character {bad.start() + 1}"
        )
    parts = cron_fields(expr)
    if parts and parts[0].startswith("@"):
        raise ValueError(f"unknown cron macro {' '.join(parts)!r}")
    if parts and parts[0].upper().startswith(("TZ=", "CRON_TZ=")):
        raise ValueError("time zones in the expression are not allowed; set settings.timezone")
    if len(parts) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    return tuple(_parse_field(part, bounds) for part, bounds in zip(parts, _FIELDS, strict=True))


#: The programs that fire a schedule (see :mod:`homeops_gen.schedules`).
Runtime = Literal["cronjob", "volsync", "kopiur", "cnpg", "cron", "systemd"]


@dataclass(frozen=True)
class Schedule:
    """When a job runs: a cron expression meant in ``zone``, optionally restricted to the
    first <weekday>, and the program that runs it (which decides what DST does to it)."""

    cron: str
    #: Cron weekday number (0 = Sunday); the job only does work on that weekday. Always
    #: paired with day-of-month ``1-7``.
    first_weekday: int | None = None
    #: The zone the catalog means the times in.
    zone: str = "Etc/UTC"
    runtime: Runtime = "cronjob"
    #: The zone VolSync's and CNPG's controllers read their crons in.
    controller_zone: str = "Etc/UTC"

    def __post_init__(self) -> None:
        parse_cron(self.cron)  # reject malformed schedules at construction

    @property
    def guard(self) -> str:
        """`` (first Sunday only)`` for a first-weekday guard, else empty."""
        if self.first_weekday is None:
            return ""
        return f" (first {WEEKDAYS[self.first_weekday].capitalize()} only)"

    @property
    def description(self) -> str:
        return self.cron + self.guard

    @property
    def timing(self) -> Timing:
        """The schedule as its runtime runs it (raises ``ValueError`` when it cannot)."""
        return _timing(self)

    def max_gap(self) -> dt.timedelta:
        """The longest real wait between two runs, as the runtime runs them, over every
        calendar alignment and thirty years of the zone's transitions."""
        return self.timing.largest

    def calendar_gap(self) -> dt.timedelta:
        """The longest wait on the wall clock, ignoring DST."""
        return _calendar(self.cron, self.first_weekday)[0]

    def calendar_smallest_gap(self) -> dt.timedelta:
        """The shortest wall-clock wait between two runs (a run should end within it)."""
        return _calendar(self.cron, self.first_weekday)[1]


@lru_cache(maxsize=8192)
def _timing(schedule: Schedule) -> Timing:
    from homeops_gen.schedules import cnpg, cronjob, host, kopiur, volsync

    if schedule.runtime == "cronjob":
        return cronjob.timing(schedule)
    if schedule.runtime == "volsync":
        return volsync.timing(schedule)
    if schedule.runtime == "kopiur":
        return kopiur.timing(schedule)
    if schedule.runtime == "cnpg":
        return cnpg.timing(schedule)
    return host.timing(schedule)  # "cron" or "systemd"


@lru_cache(maxsize=4096)
def _calendar(cron: str, first_weekday: int | None) -> tuple[dt.timedelta, dt.timedelta]:
    """The largest and smallest wall-clock gaps."""
    from homeops_gen.schedules import spec_of
    from homeops_gen.schedules.gaps import calendar_gap

    return calendar_gap(spec_of(cron), first_weekday)


def stagger_seed(name: str) -> int:
    """A stable number derived from a service name (independent of ``PYTHONHASHSEED``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _safe_slot(
    seed: int, window_start: int, window_hours: int, avoid: frozenset[int]
) -> tuple[int, int]:
    """The staggered minute and hour: the name's own slot in the window, else the next one
    (minute first, then hour) whose local time no DST transition skips or repeats."""
    minute = seed % 60
    first = (seed // 60) % window_hours
    for hour_step in range(24):
        hour = (
            window_start + (first + hour_step) % window_hours
            if hour_step < window_hours
            else window_start + hour_step
        ) % 24
        for minute_step in range(60):
            candidate = (minute + minute_step * 7) % 60
            if hour * 60 + candidate not in avoid:
                return candidate, hour
    return minute, (window_start + first) % 24


def _safe_hours(seed: int, minute: int, every: int, avoid: frozenset[int]) -> str:
    """Every ``every`` hours at ``minute``, from the name's own first hour, else the next
    first hour that keeps every run out of the DST-shifted local times."""
    start = (seed // 60) % every
    for step in range(every):
        first = (start + step) % every
        hours = range(first, 24, every)
        if all(h * 60 + minute not in avoid for h in hours):
            return ",".join(map(str, hours))
    return ",".join(str(h) for h in range(start, 24, every))


#: The runtimes that read a cron with robfig/cron (Kubernetes, VolSync, CNPG).
_ROBFIG: frozenset[Runtime] = frozenset({"cronjob", "volsync", "cnpg"})


def _stalling(zone: str, runtime: Runtime, controller_zone: str) -> frozenset[int]:
    """The local minutes of the day at which robfig/cron's walk stalls for ``runtime``.

    Both zones count for every robfig runtime: a CronJob's schedule may also be given to
    VolSync (the same local times, read in the controllers' zone, moved by the difference
    of the zones' standard offsets as :func:`~homeops_gen.schedules.controller.convert`
    moves them).
    """
    from homeops_gen.schedules.zones import stalled_minutes
    from homeops_gen.schedules.zones import zone as load_zone

    if runtime not in _ROBFIG:
        return frozenset()
    there = stalled_minutes(controller_zone)
    if there:
        delta = load_zone(zone).standard_offset - load_zone(controller_zone).standard_offset
        there = frozenset((minute + delta // 60) % 1440 for minute in there)
    return stalled_minutes(zone) | there


def parse_cadence(
    cadence: str,
    *,
    name: str,
    window_start: int,
    window_hours: int,
    weekly_day: int,
    zone: str = "Etc/UTC",
    runtime: Runtime = "cronjob",
    controller_zone: str = "Etc/UTC",
) -> Schedule:
    """Turn a cadence (shorthand or cron) into a :class:`Schedule`.

    Shorthands are staggered deterministically by ``name`` so that jobs do not all start at
    the same minute: the minute comes from the name's hash, the hour from the backup window
    ``[window_start, window_start + window_hours)``; a slot whose local time a DST
    transition of ``zone`` skips or repeats, or at which robfig/cron stalls, is passed over
    for the next one.
    """
    from homeops_gen.schedules.zones import shifted_minutes

    skipped, repeated = shifted_minutes(zone)
    avoid = skipped | repeated | _stalling(zone, runtime, controller_zone)
    seed = stagger_seed(name)
    minute, hour = _safe_slot(seed, window_start, window_hours, avoid)
    made = functools.partial(Schedule, zone=zone, runtime=runtime, controller_zone=controller_zone)
    text = cadence.strip().lower()
    if text == "hourly":
        return made(f"{seed % 60} * * * *")
    if match := _EVERY_HOURS.match(text):
        every = int(match.group(1))
        if every == 0 or 24 % every:
            raise ValueError(
                f"{cadence!r}: every N hours needs N to divide 24 (1, 2, 3, 4, 6, 8, 12, 24)"
            )
        every_minute = seed % 60
        return made(f"{every_minute} {_safe_hours(seed, every_minute, every, avoid)} * * *")
    if text == "daily":
        return made(f"{minute} {hour} * * *")
    if text == "weekly":
        return made(f"{minute} {hour} * * {weekly_day}")
    if text == "monthly":
        return made(f"{minute} {hour} 1 * *")
    if match := _FIRST_WEEKDAY.match(text):
        day_name = match.group(1)
        if day_name not in WEEKDAYS:
            raise ValueError(f"{cadence!r}: {day_name!r} is not a weekday name")
        return made(f"{minute} {hour} 1-7 * *", first_weekday=WEEKDAYS.index(day_name))
    try:
        # Runs of spaces are one separator; any other white space is refused by parse_cron.
        return made(re.sub(" +", " ", cadence.strip(" ")))
    except ValueError as exc:
        raise ValueError(
            f"{cadence!r} is neither a shorthand (hourly, <N>h, daily, weekly, monthly, "
            f"monthly-first-<weekday>) nor a valid cron expression: {exc}"
        ) from None


def format_duration(span: dt.timedelta) -> str:
    """``35d``, ``1d23h``, ``26h``... : days, hours and minutes, the zero ones left out."""
    minutes = int(span.total_seconds()) // 60
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return text or "0m"


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


#: ``90m``, ``36h``, ``8d``, ``2w``, or several of them, largest first (``1d2h30m``: what
#: :func:`format_duration` prints, so an explained value can be written back as it is).
_DURATION = re.compile(r"(?=[0-9])(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?")
_DURATION_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``36h``, ``8d``, ``2w``, ``1d2h30m``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 36h, 8d or 1d12h")
    weeks, days, hours, minutes = (int(group or 0) for group in match.groups())
    return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


#: How long a run may take when nothing else says: four hours, or less when runs come closer.
RUN_ALLOWANCE = dt.timedelta(hours=4)


def alert_threshold(schedule: Schedule, run_allowance: dt.timedelta | None = None) -> dt.timedelta:
    """How old the last success may get before an alert: the largest real gap between runs
    (DST included, as the runtime runs them) plus the time a run may take to succeed
    (``run_allowance``; by default four hours, at most the smallest gap between runs),
    rounded up to whole minutes."""
    gap = schedule.max_gap()
    grace = run_allowance if run_allowance is not None else run_time(schedule)
    minutes = -(-int((gap + grace).total_seconds()) // 60)
    return dt.timedelta(minutes=minutes)


def run_time(schedule: Schedule) -> dt.timedelta:
    """The time a run may take: four hours, at most the smallest gap between two runs."""
    return min(RUN_ALLOWANCE, schedule.calendar_smallest_gap())
