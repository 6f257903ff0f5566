"""robfig/cron's ``Next`` that stalls: a fall-back off the hour (Pacific/Chatham).

Chatham falls back from 03:45 (+13:45) to 02:45 (+12:45). The library walks the minutes of
hour 3 across the transition, lands in hour 2 and returns it; ``Next`` of that instant
walks up from 02:00 to the same instant again. The Kubernetes CronJob controller takes two
runs less than a second apart for an invalid schedule (``mostRecentScheduleTime``) and
starts nothing from then on.

The rule the generator derives (:func:`~homeops_gen.schedules.zones.stalled_by`) is
checked against the real library for every minute of the day around the transitions of
every zone whose transitions are off the hour or not whole hours (found from the TZif files
themselves, RFC 8536), both ways; the other runtimes' models must never stall there.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import struct
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, SMALL_CATALOG, CliResult, snapshot_of
from runtimes.oracle import Oracle, robfig  # noqa: F401

from homeops_gen import schedule as schedule_module
from homeops_gen.catalog import load_catalog_text
from homeops_gen.errors import CatalogError
from homeops_gen.schedule import Schedule
from homeops_gen.schedules import croner, host, spec_of
from homeops_gen.schedules import robfig as robfig_model
from homeops_gen.schedules.gaps import ScheduleStall, runs
from homeops_gen.schedules.zones import Transition, stalled_by, stalled_minutes, zone

START = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2057, 1, 1, tzinfo=dt.UTC).timestamp())
CHATHAM = "Pacific/Chatham"
#: Go's own answer: ``Next`` from 2029-03-31T00:00Z, four times (2029-04-01 02:52 +12:45).
GO_STALL = 1869660420
#: Zones with whole-hour transitions on the hour, as controls: Santiago's and Nuuk's touch
#: midnight, Troll's is two hours.
CONTROLS = ["Europe/London", "America/Santiago", "America/Nuuk", "Antarctica/Troll"]


# -- the transitions, read independently of the generator ------------------------------


def _tzif(name: str) -> tuple[list[tuple[int, int, int]], str]:
    """The transitions ``(instant, offset before, offset after)`` and the footer (POSIX
    ``TZ`` rule) of a zone's TZif file (version 2 or later: the 64-bit block)."""
    data = next(
        (Path(base) / name).read_bytes()
        for base in zoneinfo.TZPATH
        if (Path(base) / name).is_file()
    )
    counts = struct.unpack(">6l", data[20:44])
    isut, isstd, leap, times, types, chars = counts
    start = 44 + times * 5 + types * 6 + chars + leap * 8 + isstd + isut + 44
    isut, isstd, leap, times, types, chars = struct.unpack(">6l", data[start - 24 : start])
    instants = struct.unpack(f">{times}q", data[start : start + times * 8])
    at = start + times * 8
    indexes = data[at : at + times]
    at += times
    offsets = [struct.unpack(">lBB", data[at + 6 * i : at + 6 * i + 6])[0] for i in range(types)]
    at += types * 6 + chars + leap * 12 + isstd + isut
    footer = data[at:].strip(b"\n").decode()
    found = []
    previous = offsets[0]
    for instant, index in zip(instants, indexes, strict=True):
        if offsets[index] != previous:
            found.append((instant, previous, offsets[index]))
        previous = offsets[index]
    return found, footer


def _posix_seconds(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")]
    return sign * sum(p * 60**k for p, k in zip(parts, (2, 1, 0), strict=False))


def _footer_is_off_the_hour(footer: str) -> bool:
    """Whether the zone's rule for the years after its last listed transition changes the
    clock at a time off the hour, or by a shift that is not whole hours."""
    if "," not in footer:
        return False  # no daylight saving time in the rule
    zones, *rules = footer.split(",")
    names = r"(?:<[^>]*>|[A-Za-z]+)"
    match = re.fullmatch(rf"{names}([+-]?[\d:]+){names}([+-]?[\d:]+)?", zones)
    assert match, footer
    standard = -_posix_seconds(match.group(1))
    summer = -_posix_seconds(match.group(2)) if match.group(2) else standard + 3600
    times = [_posix_seconds(rule.partition("/")[2] or "2") for rule in rules]
    return bool((summer - standard) % 3600 or any(t % 3600 for t in times))


def _off_the_hour(transition: tuple[int, int, int]) -> bool:
    instant, before, after = transition
    return bool((after - before) % 3600 or (instant + before) % 3600 or (instant + after) % 3600)


def _offset(tz: dt.tzinfo, instant: int) -> int:
    delta = dt.datetime.fromtimestamp(instant, tz).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def _transitions(name: str) -> list[Transition]:
    """The zone's offset changes in the modelled years, sampled a week apart by zoneinfo and
    bisected to the second."""
    tz = zoneinfo.ZoneInfo(name)
    found: list[Transition] = []
    low, previous = START - 7 * 86400, _offset(tz, START - 7 * 86400)
    while low < END:
        high = low + 7 * 86400
        if _offset(tz, high) == previous:
            low = high
            continue
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _offset(tz, middle) == previous else (low, middle)
        after = _offset(tz, high)
        if START <= high < END:
            found.append(Transition(high, previous, after))
        low, previous = high, after
    return found


def _zones_off_the_hour() -> dict[tuple[tuple[int, int, int], ...], list[str]]:
    """Every zone of the tz database with a transition off the hour or not whole hours in
    the modelled years, grouped by identical transitions (links name the same zone)."""
    groups: dict[tuple[tuple[int, int, int], ...], list[str]] = {}
    for name in sorted(zoneinfo.available_timezones()):
        listed, footer = _tzif(name)
        listed_odd = any(_off_the_hour(t) for t in listed if START <= t[0] < END)
        last = listed[-1][0] if listed else START
        if not listed_odd and not (last < END and _footer_is_off_the_hour(footer)):
            continue
        transitions = _transitions(name)
        if any(_off_the_hour((t.instant, t.before, t.after)) for t in transitions):
            key = tuple((t.instant, t.before, t.after) for t in transitions)
            groups.setdefault(key, []).append(name)
    return groups


def _representatives(transitions: list[Transition]) -> list[Transition]:
    """The first and the last transition of each kind (wall time, offsets) in the years."""
    kinds: dict[tuple[int, int, int], list[Transition]] = {}
    for t in transitions:
        kinds.setdefault(((t.instant + t.before) % 86400, t.before, t.after), []).append(t)
    return sorted(
        {t for same in kinds.values() for t in (same[0], same[-1])}, key=lambda t: t.instant
    )


# -- the oracle --------------------------------------------------------------------------

#: Runs asked of each walk: the day before, the transition's day (twice on a fall-back).
COUNT = 4


def _daily(minute: int) -> str:
    return f"{minute % 60} {minute // 60} * * *"


def _start(transition: Transition) -> int:
    return transition.instant - 86400 - 3 * 3600


def _stalls(start: int, following: list[int]) -> bool:
    return any(b <= a for a, b in itertools.pairwise([start, *following]))


def _cases(
    name: str, transitions: list[Transition], minutes: Callable[[Transition], range]
) -> list[tuple[str, Transition, int]]:
    return [(name, t, m) for t in transitions for m in minutes(t)]


def _around(transition: Transition) -> range:
    """The minutes of the day from two hours before the transition's wall time to two after."""
    wall = (transition.instant + transition.before) % 86400 // 60
    return range(wall - 120, wall + 121)


def _ask(oracle: Oracle, cases: list[tuple[str, Transition, int]]) -> list[list[int]]:
    answers = oracle.ask(
        [
            {
                "mode": "next",
                "spec": _daily(m % 1440),
                "zone": z,
                "start": _start(t),
                "count": COUNT,
            }
            for z, t, m in cases
        ]
    )
    return [a.get("next", []) for a in answers]


@pytest.mark.tool("go")
def test_the_stall_rule_is_robfigs_own(robfig: Oracle) -> None:  # noqa: F811
    """Every minute of the day around each kind of transition of every zone whose
    transitions are off the hour: the minutes at which Go's ``Next`` stalls are exactly
    :func:`stalled_by`'s, transition by transition and zone by zone; the model walks like
    the library; croner's and the host daemons' models never stall there."""
    groups = _zones_off_the_hour()
    names = sorted(max(group) for group in groups.values())  # one name of linked zones
    assert {CHATHAM, "Australia/Lord_Howe"} <= set(names), groups
    cases: list[tuple[str, Transition, int]] = []
    for name in names:
        cases += _cases(name, _representatives(_transitions(name)), lambda t: range(1440))
    for name in CONTROLS:
        cases += _cases(name, _representatives(_transitions(name))[:2], _around)
    answers = _ask(robfig, cases)

    observed: dict[tuple[str, Transition], set[int]] = {}
    for (name, transition, minute), following in zip(cases, answers, strict=True):
        assert len(following) == COUNT, (name, transition, minute)
        found = observed.setdefault((name, transition), set())
        if _stalls(_start(transition), following):
            found.add(minute % 1440)
    for (name, transition), found in observed.items():
        assert found == stalled_by(transition), (name, transition)
    for name in names + CONTROLS:
        seen = set().union(*(f for (n, _), f in observed.items() if n == name))
        assert seen == stalled_minutes(name), name
    assert stalled_minutes(CHATHAM) == frozenset(range(3 * 60 + 45, 4 * 60))

    for (name, transition, minute), following in zip(cases, answers, strict=True):
        if name in names:
            _check_models(name, transition, minute % 1440, following)


def _check_models(name: str, transition: Transition, minute: int, go: list[int]) -> None:
    """The robfig/cron model walks as Go does; croner (kopiur) and cron and systemd on the
    hosts always move on."""
    spec, loc, start = spec_of(_daily(minute)), zone(name), _start(transition)
    assert list(_walk(lambda t: robfig_model.next_run(spec, t, loc), start)) == go
    walks = {
        "kopiur": lambda t: croner.next_run(spec, t, loc, fixed=True),
        "cron": lambda t: host._next(spec, t, loc, "cron", False),
        "systemd": lambda t: host._next(spec, t, loc, "systemd", False),
    }
    for runtime, walk in walks.items():
        following = list(_walk(walk, start))
        assert not _stalls(start, following), (runtime, name, transition, minute)


def _walk(next_run: Callable[[int], int | None], start: int) -> Iterator[int]:
    t = start
    for _ in range(COUNT):
        found = next_run(t)
        assert found is not None
        yield found
        t = found


@pytest.mark.tool("go")
def test_the_model_and_go_stall_at_the_same_instant(robfig: Oracle) -> None:  # noqa: F811
    start = int(dt.datetime(2029, 3, 31, tzinfo=dt.UTC).timestamp())
    (answer,) = robfig.ask(
        [{"mode": "next", "spec": "52 3 1 * *", "zone": CHATHAM, "start": start, "count": 4}]
    )
    assert answer["next"] == [GO_STALL] * 4
    spec, loc = spec_of("52 3 1 * *"), zone(CHATHAM)
    assert robfig_model.next_run(spec, start, loc) == GO_STALL
    assert robfig_model.next_run(spec, GO_STALL, loc) == GO_STALL


# -- the generator -----------------------------------------------------------------------


def test_runs_refuses_a_walk_that_does_not_move_on() -> None:
    with pytest.raises(ScheduleStall) as caught:
        list(runs(lambda t: min(t + 60, 600), 0, 10_000))
    assert (caught.value.instant, caught.value.following) == (600, 600)
    with pytest.raises(ScheduleStall):
        list(runs(lambda t: t - 1 if t == 120 else t + 60, 0, 10_000))
    assert list(runs(lambda t: t + 60, 0, 120)) == [60, 120, 180]


def test_a_stalling_cron_is_refused_naming_the_transition() -> None:
    with pytest.raises(ScheduleStall) as caught:
        Schedule("52 3 1 * *", zone=CHATHAM).max_gap()
    stall = caught.value
    assert (stall.instant, stall.following, stall.zone) == (GO_STALL, GO_STALL, CHATHAM)
    assert stall.transition is not None and stall.transition.shift == -3600
    assert str(stall) == (
        "cron '52 3 1 * *' stalls in the Kubernetes CronJob controller (robfig/cron v3): its "
        "next run after the run at 2029-04-01 02:52 (+12:45) in Pacific/Chatham is that same "
        "instant again, after the fall-back of 2029-04-01 from 03:45 (+13:45) to 02:45 "
        "(+12:45); from then on the controller refuses the schedule (an InvalidSchedule "
        "event: 'time difference between two schedules is less than 1 second') and starts "
        "no more Jobs; choose another minute or hour"
    )


@pytest.mark.parametrize("runtime", ["volsync", "cnpg"])
def test_a_controller_in_chatham_refuses_it_too(runtime: str) -> None:
    moved = Schedule("50 3 * * *", zone=CHATHAM, runtime=runtime, controller_zone=CHATHAM)  # type: ignore[arg-type]
    with pytest.raises(
        ScheduleStall, match=r"cannot run this cadence: cron '(0 )?50 3 \* \* \*' stalls"
    ):
        moved.max_gap()


@pytest.mark.parametrize("runtime", ["kopiur", "cron", "systemd"])
def test_the_other_runtimes_run_it(runtime: str) -> None:
    gap = Schedule("52 3 1 * *", zone=CHATHAM, runtime=runtime).max_gap()  # type: ignore[arg-type]
    assert gap >= dt.timedelta(days=31)


#: Services whose staggered slot, passing over only the skipped and repeated times, would be
#: 03:45-03:59 in Chatham (app1 daily 03:56, app6 03:49; app0's drill 03:51).
SHORTHANDS = """\
  - name: app1
    namespace: app1
    storage: iscsi
    churn: low
    engine: sqlite
    cadence: daily
    sqlite: {claim: a, database: /data/a.db}
  - name: app6
    namespace: app6
    storage: iscsi
    churn: low
    engine: sqlite
    cadence: weekly
    sqlite: {claim: b, database: /data/b.db}
  - name: app0
    namespace: app0
    storage: iscsi
    churn: low
    engine: sqlite
    cadence: monthly
    retention: 90d
    sqlite: {claim: c, database: /data/c.db}
"""
CHATHAM_HEAD = MINIMAL_HEAD.replace("timezone: Etc/UTC", f"timezone: {CHATHAM}")


def _chatham_schedules(text: str) -> list[Schedule]:
    catalog = load_catalog_text(text, "services.yaml")
    found = []
    for service in catalog.services:
        found.append(service.schedule)
        if service.drill is not None:
            found.append(service.drill.schedule)
    return found


def test_chatham_shorthands_keep_out_of_the_stalled_minutes() -> None:
    schedules = _chatham_schedules(CHATHAM_HEAD + SHORTHANDS)
    assert len(schedules) == 6
    for schedule in schedules:
        minute, hour = map(int, schedule.cron.split()[:2])
        assert hour * 60 + minute not in stalled_minutes(CHATHAM), schedule
        assert schedule.max_gap() >= schedule.calendar_gap() - dt.timedelta(hours=1)


def test_without_the_stalled_minutes_the_shorthands_would_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The negative control of the test above: its services do land on a stalling slot
    when the stagger passes over only the skipped and repeated times."""
    monkeypatch.setattr(schedule_module, "_stalling", lambda *_: frozenset())
    with pytest.raises(CatalogError, match="stalls in the Kubernetes CronJob controller"):
        load_catalog_text(CHATHAM_HEAD + SHORTHANDS, "services.yaml")


def test_cli_refuses_a_stalling_cron_and_leaves_out_untouched(
    project: Callable[[str], Path],
    run_cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = SMALL_CATALOG.replace("timezone: Etc/UTC", f"timezone: {CHATHAM}")
    folder = project(good)
    monkeypatch.chdir(folder)
    assert run_cli().code == 0
    before = snapshot_of(folder / "out")
    assert before

    bad = good.replace("cadence: 6h", 'cadence: "52 3 1 * *"')
    assert bad != good
    (folder / "services.yaml").write_text(bad, encoding="utf-8")
    result = run_cli()

    assert result.code == 2
    first, last = result.err.splitlines()
    line = bad.splitlines().index('    cadence: "52 3 1 * *"') + 1
    assert first.startswith(
        f"services.yaml:{line}:14: services[0].cadence: cron '52 3 1 * *' stalls in the "
        "Kubernetes CronJob controller"
    )
    assert "2029-04-01 02:52 (+12:45) in Pacific/Chatham" in first
    assert "fall-back of 2029-04-01 from 03:45 (+13:45) to 02:45 (+12:45)" in first
    assert "refuses the schedule" in first
    assert last == "homeops_gen: 1 problem; nothing was written"
    assert result.out == ""
    assert snapshot_of(folder / "out") == before
