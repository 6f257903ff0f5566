"""kopiur's cron timing: an independent oracle against homeops_gen's croner model.

kopiur (home-operations/kopiur) has no cron parser of its own: it hands the five-field
``spec.schedule.cron`` to the Rust crate croner (3.x, seconds and year disallowed) and asks
for the next occurrence after "now", read in the IANA zone ``timezone``. croner v3.0.1
(``find_occurrence`` in src/lib.rs) walks naive wall-clock times and turns each match into
an instant:

- a wall time that exists once: that instant;
- a wall time a fall-back repeats: its earlier instant; kopiur searches again from that
  first pass, so the slot runs once;
- a wall time a spring-forward skips: for a *fixed-time* pattern (the minute and hour
  fields are one number each, no wildcard or step) croner steps one second at a time to
  the first wall time that exists and returns it if its *date* still matches the pattern;
  any other pattern passes over the missing time (that run is lost);
- day-of-month and day-of-week: OR when both are restricted, and only the other counts
  when one of them is ``*`` (croner's ``day_match``; kopiur does not set ``dom_and_dow``).

kopiur's own test ``next_fire_is_dst_correct_across_the_spring_forward``: ``0 2 * * *`` in
America/Chicago fires on 2026-03-08 at 08:00Z (03:00 CDT, the end of the gap).

The oracle below reads the cron with its own parser, maps wall times to instants with
zoneinfo's ``fold`` (checked against a minute-by-minute walk of real instants), lists every
run day by day, and compares that with the model in homeops_gen/schedules/croner.py: the
first run after many start instants near every transition of 2026-2030, and the largest
gap between runs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import zoneinfo
from dataclasses import dataclass
from functools import cache

import pytest
import yaml

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import kopiur, spec_of
from homeops_gen.schedules.croner import fixed_time, next_run
from homeops_gen.schedules.zones import zone as model_zone

MINUTE = 60
HOUR = 3600
DAY = 86400
#: The years the oracle covers: transitions and gaps of 2026-2030.
START = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp())
#: The days the oracle lists runs on: a margin around those years for the walks at the ends.
FIRST_DAY = dt.date(2025, 11, 1)
LAST_DAY = dt.date(2031, 3, 31)

#: Zones whose DST rules repeat every year over the model's thirty years: the oracle's
#: largest gap over five of them is the model's (for crons that run more than once a year).
STABLE = (
    "America/New_York",
    "America/Chicago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # transitions at 02:45 / 03:45 local
    "America/Santiago",  # transitions at local midnight
    "America/Nuuk",  # switches at 01:00Z = 23:00 local: the Saturday gap ends on Sunday
    "Asia/Tehran",  # DST abolished in 2022: no transitions in range
    "Etc/UTC",
)
#: Morocco leaves DST for Ramadan, which moves every year: no five years repeat the thirty.
CHANGING = ("Africa/Casablanca",)
ZONES = STABLE + CHANGING

CRONS = (
    # hourly at various minutes, and half-hourly
    "0 * * * *",
    "15 * * * *",
    "30 * * * *",
    "45 * * * *",
    "*/30 * * * *",
    "5,35 * * * *",
    # every n hours
    "0 */2 * * *",
    "0 */3 * * *",
    "0 */6 * * *",
    "30 1-23/2 * * *",
    # daily, inside and outside the skipped and repeated hours
    "0 0 * * *",
    "30 0 * * *",
    "30 1 * * *",
    "0 2 * * *",
    "30 2 * * *",
    "45 2 * * *",
    "0 3 * * *",
    "15 3 * * *",
    "0 23 * * *",
    "30 23 * * *",
    # lists and ranges of hours
    "15 1,2,3 * * *",
    "0 1-3 * * *",
    "0 2,14 * * *",
    "30 0,12 * * *",
    # weekly and day-of-week lists
    "0 3 * * 0",
    "30 2 * * 0",
    "30 0 * * 0",
    "0 1 * * 6",
    "30 23 * * 6",
    "30 23 * * 0,6",
    "0 2 * * 1-5",
    "0 4 * * 1,3,5",
    # monthly, both day fields restricted (OR), a leap day
    "0 3 1 * *",
    "30 2 1,15 * *",
    "0 3 1,15 * 1",
    "30 23 28 3 *",
    "0 3 29 2 *",
)

#: (zone, cron) cases where croner's date check matters: it runs a fixed-time job moved past
#: a spring-forward gap only if the date after the gap still matches. In America/Nuuk the
#: Saturday 23:00-24:00 gap ends on Sunday, so croner drops the run (the model once kept it
#: and underestimated the largest gap; these cases found it). They are in the battery.
DATE_CHECK_CASES = (
    ("America/Nuuk", "30 23 * * 6"),
    ("America/Nuuk", "30 23 28 3 *"),  # 2026-03-28 is a Saturday
)


# ----------------------------------------------------------------------------------------
# The oracle: its own cron reading


_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _values(text: str, low: int, high: int) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        body, _, step = item.partition("/")
        if body in ("*", "?"):
            first, last = low, high
        elif "-" in body:
            first, last = (int(part) for part in body.split("-"))
        else:
            first = int(body)
            last = high if step else first
        assert low <= first <= last <= high, text
        found.update(range(first, last + 1, int(step) if step else 1))
    return frozenset(found)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    dow: frozenset[int]  # 0 = Sunday (7 folded onto 0)
    dom_any: bool  # the field is `*` or `?` alone: only day-of-week counts
    dow_any: bool
    fixed: bool  # croner's FixedTime: one minute and one hour, no wildcard or step


def read(text: str) -> Cron:
    fields = text.split()
    assert len(fields) == 5, text
    minutes, hours, dom, months, dow = (
        _values(f, low, high) for f, (low, high) in zip(fields, _BOUNDS, strict=True)
    )

    def single(field: str, values: frozenset[int]) -> bool:
        return len(values) == 1 and "*" not in field and "/" not in field

    return Cron(
        minutes,
        hours,
        dom,
        months,
        frozenset(d % 7 for d in dow),
        fields[2] in ("*", "?"),
        fields[4] in ("*", "?"),
        single(fields[0], minutes) and single(fields[1], hours),
    )


# ----------------------------------------------------------------------------------------
# The oracle: rules, wall times and runs


@dataclass(frozen=True)
class Rules:
    """How runs are made; the defaults are croner's, the others are negative controls."""

    #: A fixed-time run in a spring-forward gap moves to the gap's end (False: it is lost).
    move_fixed: bool = True
    #: A wall time a fall-back repeats runs once, at its first instant (False: at both).
    once: bool = True
    #: Both day fields restricted: either may match (False: both must).
    either_day: bool = True
    #: A moved run is kept only if the date after the gap still matches (False: always).
    date_check: bool = True


CRONER = Rules()


def day_matches(cron: Cron, day: dt.date, rules: Rules) -> bool:
    if day.month not in cron.months:
        return False
    in_dom = day.day in cron.dom
    in_dow = day.isoweekday() % 7 in cron.dow
    if cron.dom_any:
        return in_dow
    if cron.dow_any:
        return in_dom
    return (in_dom or in_dow) if rules.either_day else (in_dom and in_dow)


@cache
def tz(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def instants(wall: dt.datetime, name: str) -> list[int]:
    """The instants whose wall clock in ``name`` reads ``wall`` (naive), in order: none in a
    gap, two in a repeated hour. zoneinfo reads both folds alike except there; each
    candidate is kept only if it reads back as ``wall``."""
    zone = tz(name)
    first = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    second = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    if first == second:
        return [first]
    return sorted(
        t
        for t in {first, second}
        if dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None) == wall
    )


def after_gap(wall: dt.datetime, name: str) -> tuple[dt.datetime, int] | None:
    """croner's snap: the first wall time after the missing ``wall`` that exists (stepping
    one second at a time, at most two hours), with its instant."""
    probe = wall
    for _ in range(120):  # a minute at a time first...
        probe += dt.timedelta(minutes=1)
        if instants(probe, name):
            break
    else:
        return None
    for back in range(59, -1, -1):  # ...then the second within that minute
        candidate = probe - dt.timedelta(seconds=back)
        if found := instants(candidate, name):
            return candidate, found[0]
    raise AssertionError("unreachable")


def every_day(cron: Cron) -> bool:
    return cron.dom_any and cron.dow_any and len(cron.months) == 12


@cache
def transitions(name: str) -> tuple[int, ...]:
    """The instants in 2026-2030 at which the zone's UTC offset changes: sampled every three
    hours, then walked a minute at a time (and checked to the second)."""
    zone = tz(name)

    def offset(t: int) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(t, zone).utcoffset()

    found = []
    step = 3 * HOUR
    previous = offset(START)
    for sample in range(START + step, END, step):
        current = offset(sample)
        if current == previous:
            continue
        t = sample - step
        while offset(t + MINUTE) == previous:
            t += MINUTE
        instant = t + MINUTE
        assert offset(instant - 1) == previous and offset(instant) == current, name
        found.append(instant)
        previous = current
    return tuple(found)


def _local_day(t: int, name: str) -> dt.date:
    return dt.datetime.fromtimestamp(t, tz(name)).date()


def _days(cron: Cron, name: str) -> list[tuple[dt.date, dt.date]]:
    """The stretches of days the oracle lists runs on: every day of the range, except for a
    cron that runs every day (dense ones are costly): a week around each transition and an
    ordinary month."""
    if not every_day(cron):
        return [(FIRST_DAY, LAST_DAY)]
    stretches = [(dt.date(2027, 1, 1), dt.date(2027, 1, 31))]
    for t in transitions(name):
        day = _local_day(t, name)
        stretches.append((day - dt.timedelta(days=3), day + dt.timedelta(days=3)))
    stretches.sort()
    merged = [stretches[0]]
    for low, high in stretches[1:]:
        if low <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


@dataclass(frozen=True)
class Segment:
    """The runs on a stretch of listed days: every run after ``known`` up to the last."""

    known: int
    runs: tuple[int, ...]


@cache
def runs(text: str, name: str, rules: Rules = CRONER) -> tuple[Segment, ...]:
    """Every run of ``text`` in ``name``, one segment per stretch of listed days
    (consecutive runs within a segment are consecutive runs)."""
    cron = read(text)
    times = sorted(dt.time(h, m) for h in cron.hours for m in cron.minutes)
    segments = []
    for low, high in _days(cron, name):
        found: set[int] = set()
        day = low
        while day <= high:
            if day_matches(cron, day, rules):
                for time in times:
                    wall = dt.datetime.combine(day, time)
                    if at := instants(wall, name):
                        found.update(at[:1] if rules.once else at)
                    elif cron.fixed and rules.move_fixed:
                        moved = after_gap(wall, name)
                        # croner keeps the moved run only if its date still matches
                        if moved and (
                            not rules.date_check or day_matches(cron, moved[0].date(), rules)
                        ):
                            found.add(moved[1])
            day += dt.timedelta(days=1)
        # from a day after the first listed day on, no run is missing
        known = int(dt.datetime.combine(low, dt.time(), tz(name)).timestamp()) + DAY
        segments.append(Segment(known, tuple(sorted(found))))
    return tuple(segments)


def oracle_next(text: str, name: str, after: int, rules: Rules = CRONER) -> int | None:
    """The first run strictly after ``after``, or None where the oracle does not know it
    (outside its listed days)."""
    for segment in runs(text, name, rules):
        index = bisect.bisect_right(segment.runs, after)
        if segment.known <= after and index < len(segment.runs):
            return segment.runs[index]
    return None


def oracle_gap(text: str, name: str, rules: Rules = CRONER) -> int | None:
    """The largest gap (seconds) between consecutive runs that both lie in 2026-2030."""
    gaps = [
        b - a
        for segment in runs(text, name, rules)
        for a, b in itertools.pairwise(t for t in segment.runs if START <= t < END)
    ]
    return max(gaps, default=None)


def second_pass(t: int, name: str) -> bool:
    """Whether ``t`` lies in the second pass of a repeated hour (zoneinfo sets fold=1)."""
    return dt.datetime.fromtimestamp(t, tz(name)).fold == 1


def starts(text: str, name: str) -> list[int]:
    """Start instants: every 13 minutes within 4 h of each transition, each side of it, of
    each run within 12 h of it, a week and a month before it, and some ordinary ones."""
    found = {START + k * (37 * DAY + 7 * MINUTE + 11) for k in range(48)}
    for t in transitions(name):
        found.update({t - 1, t, t + 1, t - 8 * DAY, t - 33 * DAY})
        found.update(t + k * 13 * MINUTE for k in range(-19, 20))
        for segment in runs(text, name):
            low = bisect.bisect_left(segment.runs, t - 12 * HOUR)
            high = bisect.bisect_right(segment.runs, t + 12 * HOUR)
            for r in segment.runs[low:high]:
                found.update({r - 1, r})
    return sorted(found)


# ----------------------------------------------------------------------------------------
# The model, through its public pieces


def given(cron: str, name: str) -> str:
    """The cron text kopiur is given."""
    return kopiur.timing(Schedule(cron, zone=name, runtime="kopiur")).cron


def model_next(text: str, name: str, after: int) -> int | None:
    return next_run(spec_of(text), after, model_zone(name), fixed=fixed_time(text))


def disagreements(cron: str, name: str, rules: Rules = CRONER) -> list[str]:
    """Start instants where the model's next run is not the oracle's."""
    text = given(cron, name)
    spec, loc, fixed = spec_of(text), model_zone(name), fixed_time(text)
    problems = []
    for t in starts(text, name):
        expected = oracle_next(text, name, t, rules)
        if expected is None:
            continue
        got = next_run(spec, t, loc, fixed=fixed)
        if second_pass(t, name):
            # Started inside a repeated hour's second pass (only a late fire or jitter gets
            # kopiur there): croner v3.0.1 would answer the first pass, in the past, and
            # kopiur's idempotent Snapshot name makes that a no-op. The model answers a later
            # instant instead: it must be no later than the oracle's next run, or a second
            # pass of a matching wall time.
            ok = got is not None and t < got <= expected
            if ok and got != expected:
                local = dt.datetime.fromtimestamp(got, tz(name))
                c = read(text)
                ok = (
                    local.fold == 1
                    and local.minute in c.minutes
                    and local.hour in c.hours
                    and day_matches(c, local.date(), CRONER)
                )
            if ok:
                continue
        elif got == expected:
            continue
        problems.append(
            f"{cron!r} ({text!r}) in {name} after {_show(t, name)}: "
            f"oracle {_show(expected, name)}, model {_show(got, name)}"
        )
    return problems


def _show(t: int | None, name: str) -> str:
    if t is None:
        return "none"
    local = dt.datetime.fromtimestamp(t, tz(name))
    return f"{dt.datetime.fromtimestamp(t, dt.UTC):%Y-%m-%dT%H:%M:%SZ} ({local.isoformat()})"


def _cases() -> list[tuple[str, str]]:
    return [(n, c) for n in ZONES for c in CRONS]


# ----------------------------------------------------------------------------------------
# The oracle's own footing


@pytest.mark.parametrize("name", ZONES)
def test_oracle_wall_times_match_a_minute_walk(name: str) -> None:
    """``instants`` and ``after_gap`` against a walk of real instants minute by minute around
    each transition: the instants of every wall minute, and the end of every gap."""
    zone = tz(name)
    gaps = folds = 0
    for transition in transitions(name):
        seen: dict[dt.datetime, list[int]] = {}
        for t in range(transition - 4 * HOUR, transition + 4 * HOUR, MINUTE):
            seen.setdefault(dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None), []).append(t)
        wall = dt.datetime.fromtimestamp(transition - 2 * HOUR, zone).replace(tzinfo=None)
        last = dt.datetime.fromtimestamp(transition + 2 * HOUR, zone).replace(tzinfo=None)
        end_of_gap = dt.datetime.fromtimestamp(transition, zone).replace(tzinfo=None)
        while wall <= last:
            walked = seen.get(wall, [])
            assert instants(wall, name) == walked, (name, wall)
            if not walked:
                gaps += 1
                assert after_gap(wall, name) == (end_of_gap, transition), (name, wall)
            folds += len(walked) == 2
            wall += dt.timedelta(minutes=1)
    # Not vacuous: a zone with transitions has both missing and repeated wall minutes.
    if transitions(name):
        assert gaps and folds, name
    else:
        assert name in ("Asia/Tehran", "Etc/UTC")


def test_oracle_reads_the_given_text_as_the_catalog_cron() -> None:
    """The text kopiur is given is the catalog's cron re-spelled, by the oracle's reading."""
    for cron in CRONS:
        text = given(cron, "Etc/UTC")
        assert read(text) == read(cron), (cron, text)
    # negative control: the reading tells different crons apart
    assert read("0 3 1,15 * 1") != read("0 3 1,15 * *")
    assert read("0 2 * * *").fixed and not read("0 2,14 * * *").fixed
    assert not read("0 */24 * * *").fixed


# ----------------------------------------------------------------------------------------
# Model against oracle


@pytest.mark.parametrize("name", ZONES)
def test_next_run_matches_oracle(name: str) -> None:
    problems = [p for n, cron in _cases() if n == name for p in disagreements(cron, name)]
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} in all)"


@pytest.mark.parametrize("name", ZONES)
def test_max_gap_matches_oracle(name: str) -> None:
    problems = []
    for n, cron in _cases():
        if n != name:
            continue
        text = given(cron, name)
        ours = oracle_gap(text, name)
        if ours is None:  # the leap day runs once in 2026-2030
            continue
        model = Schedule(cron, zone=name, runtime="kopiur").max_gap().total_seconds()
        # The model covers 2025-2056: never less than five of those years, and the same
        # where every year's transitions are alike, unless the cron runs once a year (which
        # weekday and leap-year alignments the five years hold then matters).
        yearly = len(read(text).months) == 1
        if ours > model or (name in STABLE and not yearly and ours != model):
            problems.append(f"{cron!r} in {name}: oracle {ours / HOUR}h, model {model / HOUR}h")
    assert not problems, "\n".join(problems)


def test_kopiur_documented_example() -> None:
    """kopiur's test: ``0 2 * * *`` in Chicago fires at 2026-03-08T08:00Z."""
    name, cron = "America/Chicago", "0 2 * * *"
    before = int(dt.datetime(2026, 3, 8, 0, 0, tzinfo=dt.UTC).timestamp())
    expected = int(dt.datetime(2026, 3, 8, 8, 0, tzinfo=dt.UTC).timestamp())
    text = given(cron, name)
    assert text == cron
    assert oracle_next(text, name, before) == expected
    assert model_next(text, name, before) == expected
    assert oracle_next(text, name, expected) == model_next(text, name, expected)
    # negative control: had the run in the gap been skipped, the next would be a day later
    skipped = oracle_next(text, name, before, Rules(move_fixed=False))
    assert skipped == expected + 23 * HOUR != model_next(text, name, before)


def test_negative_controls() -> None:
    """Oracle variants that break one rule each disagree with the model: the comparison
    above can fail."""
    # Fixed-time runs in a spring-forward gap skipped instead of moved.
    skip = Rules(move_fixed=False)
    for name, cron in (("America/Chicago", "0 2 * * *"), ("Europe/Berlin", "30 2 * * 0")):
        assert disagreements(cron, name, skip), (name, cron)
    chicago = given("0 2 * * *", "America/Chicago")
    # 2026-03-07 02:00 CST to 2026-03-09 02:00 CDT; croner's largest is the fall-back day
    assert oracle_gap(chicago, "America/Chicago", skip) == 47 * HOUR
    assert oracle_gap(chicago, "America/Chicago") == 25 * HOUR
    model = Schedule("0 2 * * *", zone="America/Chicago", runtime="kopiur").max_gap()
    assert model == dt.timedelta(hours=25)
    # A repeated wall time run at both of its instants.
    both = Rules(once=False)
    assert disagreements("30 1 * * *", "America/New_York", both)
    assert disagreements("*/30 * * * *", "Australia/Lord_Howe", both)
    # Both day fields required (AND) instead of either (OR).
    assert disagreements("0 3 1,15 * 1", "Europe/London", Rules(either_day=False))


# ----------------------------------------------------------------------------------------
# What kopiur is given


def test_timing_refuses_what_kopiur_cannot_run() -> None:
    with pytest.raises(ValueError, match="first"):
        kopiur.timing(Schedule("0 3 1-7 * *", first_weekday=0, runtime="kopiur"))
    for cron in ("0 3 */2 * 1", "0 3 1 * */2", "0 3 ?/2 * 1"):
        with pytest.raises(ValueError, match="cannot run cron"):
            kopiur.timing(Schedule(cron, runtime="kopiur"))
    # negative control: the same days without a guard, or spelled out, are accepted
    kopiur.timing(Schedule("0 3 1-7 * *", runtime="kopiur"))
    for cron in ("0 3 */2 * *", "0 3 * * */2", "0 3 1-31/2 * 1"):
        kopiur.timing(Schedule(cron, runtime="kopiur"))


@pytest.mark.parametrize("name", ("Etc/UTC", "Europe/Berlin"))
def test_given_text_is_plain_yaml(name: str) -> None:
    """Flux substitutes the cron into YAML text: ``*`` there starts an alias and ``@`` is
    reserved, so the text must start with neither and read back as itself."""
    for cron in CRONS:
        text = given(cron, name)
        assert not text.startswith(("*", "@")), (cron, text)
        assert yaml.safe_load(f"cron: {text}") == {"cron": text}, (cron, text)
    # negative control: those starts do not survive
    for bad in ("*/30 * * * *", "@daily"):
        with pytest.raises(yaml.YAMLError):
            yaml.safe_load(f"cron: {bad}")


@pytest.mark.parametrize(("name", "cron"), DATE_CHECK_CASES)
def test_the_date_check_after_a_gap_is_modelled(name: str, cron: str) -> None:
    """The model agrees with croner's date check after a gap, and an oracle without that
    check (negative control) disagrees with it: the check is the whole difference."""
    assert not disagreements(cron, name)
    assert disagreements(cron, name, Rules(date_check=False))
    ours = oracle_gap(given(cron, name), name) or 0
    assert ours <= Schedule(cron, zone=name, runtime="kopiur").max_gap().total_seconds()
