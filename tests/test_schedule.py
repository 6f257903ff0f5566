"""Unit tests of :mod:`homeops_gen.schedule`: cron parsing, shorthands, stagger, largest gap."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from conftest import REPO

from homeops_gen.schedule import (
    WEEKDAYS,
    Schedule,
    format_duration,
    parse_cadence,
    parse_cron,
    stagger_seed,
)
from homeops_gen.schedules.robfig import Spec

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

#: The window and weekly day used unless a test says otherwise.
POLICY = {"window_start": 0, "window_hours": 5, "weekly_day": 0}


def cadence(text: str, name: str = "grafana", **policy: int) -> Schedule:
    return parse_cadence(text, name=name, **{**POLICY, **policy})


# --- largest gap ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        pytest.param("0 */6 * * *", 6 * HOUR, id="every-6h"),
        pytest.param("17 * * * *", HOUR, id="hourly"),
        pytest.param("30 3 * * *", DAY, id="daily"),
        pytest.param("30 3 * * 0", 7 * DAY, id="weekly"),
        pytest.param("30 23 * * 1-5", 3 * DAY, id="weekdays-friday-to-monday"),
        pytest.param("@daily", DAY, id="at-daily"),
        pytest.param("@weekly", 7 * DAY, id="at-weekly"),
        pytest.param("@monthly", 31 * DAY, id="at-monthly"),
        pytest.param("@yearly", 366 * DAY, id="at-yearly-leap"),
        # The naive "first Sunday": dom and dow both restricted, so cron ORs them and it
        # fires on days 1-7 and on every Sunday -- far more often than monthly.
        pytest.param("0 4 1-7 * 0", 7 * DAY, id="naive-first-sunday-or-rule"),
        # robfig/cron v3: "*/2" is not a bare "*", so day-of-month counts as restricted and
        # the OR rule applies (odd days or Mondays): at most two days apart.
        pytest.param("0 0 */2 * 1", 2 * DAY, id="dom-step-restricts-or-rule"),
        # "*/1" is a bare "*" to robfig: AND rule, Mondays only.
        pytest.param("0 0 */1 * 1", 7 * DAY, id="dom-step-1-is-wildcard"),
        pytest.param("0 0 * * 1", 7 * DAY, id="dom-star-and-rule"),
        pytest.param("0 0 ? * 1", 7 * DAY, id="dom-question-mark-and-rule"),
        pytest.param("0 0 13 * 5", 7 * DAY, id="13th-or-friday"),
        # 15th -> 1st of the next month after a 31-day month: 16 + 1 days.
        pytest.param("0 0 1,15 * *", 17 * DAY, id="1st-and-15th"),
        pytest.param("0 12 31 * *", 61 * DAY, id="31st-skips-short-months"),
        pytest.param("0 0 1 */3 *", 92 * DAY, id="quarterly"),
        pytest.param("0 0 29 2 *", 1461 * DAY, id="leap-day"),
        pytest.param("0 2,3 * * *", 23 * HOUR, id="two-times-a-day"),
        pytest.param("0,30 4 * * *", dt.timedelta(hours=23, minutes=30), id="two-minutes"),
    ],
)
def test_max_gap(cron: str, gap: dt.timedelta) -> None:
    assert Schedule(cron).max_gap() == gap


@pytest.mark.parametrize("weekday", WEEKDAYS)
def test_first_weekday_cadence_gap_is_35_days(weekday: str) -> None:
    schedule = cadence(f"monthly-first-{weekday}")
    assert schedule.first_weekday == WEEKDAYS.index(weekday)
    assert schedule.max_gap() == 35 * DAY


def test_first_sunday_guard_is_much_sparser_than_the_naive_cron() -> None:
    guarded = Schedule("0 4 1-7 * *", first_weekday=0)
    assert guarded.max_gap() == 35 * DAY
    assert Schedule("0 4 1-7 * *").max_gap() == 25 * DAY  # days 1-7 only: 7th -> next 1st
    assert guarded.description == "0 4 1-7 * * (first Sunday only)"


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *"])
def test_schedule_that_never_runs_is_rejected(cron: str) -> None:
    with pytest.raises(ValueError, match=r"^the schedule never runs"):
        Schedule(cron).max_gap()


def test_step_01_is_a_wildcard_like_robfig() -> None:
    assert parse_cron("0 0 */01 * 1")[2].wildcard
    assert Schedule("0 0 */01 * 1").max_gap() == 7 * DAY


@pytest.mark.parametrize(
    ("span", "text"),
    [(35 * DAY, "35d"), (36 * HOUR, "1d12h"), (dt.timedelta(minutes=90), "1h30m"), (DAY, "1d")],
)
def test_format_duration(span: dt.timedelta, text: str) -> None:
    assert format_duration(span) == text


# --- cadence shorthands --------------------------------------------------------------------


def _fields(schedule: Schedule) -> list[str]:
    return schedule.cron.split()


def test_hourly_runs_every_hour_at_one_minute() -> None:
    schedule = cadence("hourly")
    minute, *rest = _fields(schedule)
    assert 0 <= int(minute) <= 59
    assert rest == ["*", "*", "*", "*"]
    assert schedule.max_gap() == HOUR


@pytest.mark.parametrize("every", [1, 2, 3, 4, 6, 8, 12, 24])
def test_every_n_hours(every: int) -> None:
    schedule = cadence(f"{every}h")
    minute, hours, dom, month, dow = _fields(schedule)
    runs = [int(h) for h in hours.split(",")]
    assert len(runs) == 24 // every
    assert runs[0] < every
    assert all(b - a == every for a, b in itertools.pairwise(runs))
    assert (dom, month, dow) == ("*", "*", "*")
    assert 0 <= int(minute) <= 59
    assert schedule.max_gap() == every * HOUR


@pytest.mark.parametrize(
    ("text", "dom", "dow", "gap"),
    [
        pytest.param("daily", "*", "*", DAY, id="daily"),
        pytest.param("weekly", "*", "3", 7 * DAY, id="weekly-uses-weekly-day"),
        pytest.param("monthly", "1", "*", 31 * DAY, id="monthly"),
        pytest.param("monthly-first-friday", "1-7", "*", 35 * DAY, id="first-friday"),
        pytest.param("  Daily ", "*", "*", DAY, id="case-and-space-insensitive"),
    ],
)
def test_calendar_shorthands(text: str, dom: str, dow: str, gap: dt.timedelta) -> None:
    schedule = cadence(text, weekly_day=3)
    minute, hour, got_dom, month, got_dow = _fields(schedule)
    assert (got_dom, month, got_dow) == (dom, "*", dow)
    assert 0 <= int(minute) <= 59
    assert 0 <= int(hour) <= 4  # the default window, 00:00-05:00
    assert schedule.max_gap() == gap


def test_cron_cadence_is_used_verbatim() -> None:
    assert cadence(" 5 4 * * 0 ") == Schedule("5 4 * * 0")


@pytest.mark.parametrize(("start", "hours"), [(0, 5), (22, 5), (10, 1), (0, 24), (23, 3), (6, 12)])
@pytest.mark.parametrize("text", ["daily", "weekly", "monthly", "monthly-first-sunday"])
def test_stagger_hour_stays_in_window(text: str, start: int, hours: int) -> None:
    window = {(start + k) % 24 for k in range(hours)}
    seen = set()
    for index in range(40):
        schedule = cadence(text, name=f"svc-{index}", window_start=start, window_hours=hours)
        hour = int(_fields(schedule)[1])
        assert hour in window, (schedule.cron, sorted(window))
        seen.add(hour)
    assert len(seen) > 1 if hours > 1 else seen == window  # the names are spread out


def test_stagger_differs_between_names() -> None:
    names = [f"service-{i}" for i in range(30)]
    crons = {cadence("daily", name=name).cron for name in names}
    assert len(crons) >= 27  # 300 slots (60 minutes x 5 hours) for 30 names


def test_stagger_is_the_same_for_the_same_name() -> None:
    assert cadence("daily", name="vaultwarden") == cadence("daily", name="vaultwarden")
    assert stagger_seed("vaultwarden") == stagger_seed("vaultwarden")


_STAGGER_SCRIPT = textwrap.dedent(
    """\
    import json
    from homeops_gen.schedule import parse_cadence
    print(json.dumps([
        parse_cadence(c, name=n, window_start=0, window_hours=5, weekly_day=0).cron
        for n in ("grafana", "postgresql", "vaultwarden", "a", "b")
        for c in ("hourly", "6h", "daily", "weekly", "monthly", "monthly-first-sunday")
    ]))
    """
)


def _stagger_in_subprocess(hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _STAGGER_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def test_stagger_is_independent_of_pythonhashseed() -> None:
    first, second = _stagger_in_subprocess("0"), _stagger_in_subprocess("4242")
    assert first == second
    assert len(set(first)) > 20  # the names really were staggered
    assert first[2] == cadence("daily", name="grafana").cron


@pytest.mark.parametrize("every", ["5h", "7h", "9h", "0h", "48h"])
def test_every_n_hours_must_divide_24(every: str) -> None:
    with pytest.raises(ValueError, match=rf"^'{every}': every N hours needs N to divide 24"):
        cadence(every)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "fortnightly",
            "'fortnightly' is neither a shorthand (hourly, <N>h, daily, weekly, monthly, "
            "monthly-first-<weekday>) nor a valid cron expression: expected 5 fields "
            "(minute hour day-of-month month day-of-week), got 1",
            id="unknown-word",
        ),
        pytest.param(
            "monthly-first-sun",
            "'monthly-first-sun': 'sun' is not a weekday name",
            id="abbreviated-weekday",
        ),
        pytest.param(
            "@reboot",
            "'@reboot' is neither a shorthand (hourly, <N>h, daily, weekly, monthly, "
            "monthly-first-<weekday>) nor a valid cron expression: unknown cron macro '@reboot'",
            id="reboot",
        ),
    ],
)
def test_unknown_cadence_is_rejected_naming_it(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        cadence(text)
    assert str(exc.value) == message


# --- cron parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        pytest.param(
            "0 0 * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
            id="4-fields",
        ),
        pytest.param(
            "0 0 0 * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
            id="6-fields-with-seconds",
        ),
        pytest.param("60 0 * * *", "minute field: 60 is outside 0-59", id="minute-60"),
        pytest.param("0 24 * * *", "hour field: 24 is outside 0-23", id="hour-24"),
        pytest.param("0 0 0 * *", "day-of-month field: 0 is outside 1-31", id="dom-0"),
        pytest.param("0 0 * 13 *", "month field: 13 is outside 1-12", id="month-13"),
        pytest.param("0 0 * * 7", "day-of-week field: 7 is outside 0-6", id="dow-7"),
        pytest.param("0 0 * * 1-7", "day-of-week field: 7 is outside 0-6", id="dow-range-to-7"),
        pytest.param(
            "0 0 5-1 * *", "day-of-month field: range '5-1' runs backwards", id="backwards"
        ),
        pytest.param(
            "0 0 * * fri-mon", "day-of-week field: range 'fri-mon' runs backwards", id="names-back"
        ),
        pytest.param(
            "0 0 1,,15 * *", "day-of-month field: empty list item in '1,,15'", id="empty-item"
        ),
        pytest.param(
            "0 0 1, * *", "day-of-month field: empty list item in '1,'", id="trailing-comma"
        ),
        pytest.param(
            "0 0 * foo *", "month field: 'foo' is not a number or name", id="unknown-name"
        ),
        pytest.param(
            "0 0 * * monday", "day-of-week field: 'monday' is not a number or name", id="long-name"
        ),
        pytest.param(
            "*/0 * * * *", "minute field: step '0' must be a positive number", id="step-0"
        ),
        pytest.param(
            "*/x * * * *", "minute field: step 'x' must be a positive number", id="step-x"
        ),
        pytest.param(
            "-1 * * * *", "minute field: '-1' is not a number, name or range", id="negative"
        ),
        pytest.param("@reboot", "unknown cron macro '@reboot'", id="at-reboot"),
        pytest.param("@every 1h", "unknown cron macro '@every 1h'", id="at-every"),
        pytest.param(
            "TZ=UTC 0 0 * * *",
            "time zones in the expression are not allowed; set settings.timezone",
            id="tz-prefix",
        ),
        pytest.param(
            "CRON_TZ=Europe/Berlin 0 0 * * *",
            "time zones in the expression are not allowed; set settings.timezone",
            id="cron-tz-prefix",
        ),
    ],
)
def test_parse_cron_errors(cron: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_cron(cron)
    assert str(exc.value) == message


def test_schedule_rejects_malformed_cron_at_construction() -> None:
    with pytest.raises(ValueError, match="minute field"):
        Schedule("61 * * * *")


@pytest.mark.parametrize(
    "cron",
    ["\u0660 0 * * *", "0 \uff12 * * *", "\u00b2 0 * * *"],
    ids=["arabic-indic-zero", "fullwidth-two", "superscript-two"],
)
def test_non_ascii_digits_are_rejected_as_not_a_number(cron: str) -> None:
    """int() would take them; the written text is refused before any field is read."""
    with pytest.raises(ValueError, match=r"printable ASCII .* found U\+"):
        parse_cron(cron)


@pytest.mark.parametrize(
    ("cron", "field", "values"),
    [
        pytest.param("0 0 * * mon-fri", 4, {1, 2, 3, 4, 5}, id="mon-fri"),
        pytest.param("0 0 * * SAT,sun", 4, {6, 0}, id="weekend-mixed-case"),
        pytest.param("0 0 1 jan *", 3, {1}, id="jan"),
        pytest.param("0 0 1 JAN-MAR *", 3, {1, 2, 3}, id="jan-mar"),
        pytest.param("0 0 1 dec *", 3, {12}, id="dec"),
        pytest.param("5/20 * * * *", 0, {5, 25, 45}, id="start-slash-step"),
        pytest.param("10-30/10 * * * *", 0, {10, 20, 30}, id="range-step"),
        pytest.param("0 0 * * 0", 4, {0}, id="sunday-is-0"),
    ],
)
def test_parse_cron_values(cron: str, field: int, values: set[int]) -> None:
    assert parse_cron(cron)[field].values == frozenset(values)


@pytest.mark.parametrize(
    ("dom", "wildcard"),
    [("*", True), ("?", True), ("*/1", True), ("*,5", True), ("*/2", False), ("1-31", False)],
)
def test_wildcard_flag_follows_robfig(dom: str, wildcard: bool) -> None:
    assert parse_cron(f"0 0 {dom} * *")[2].wildcard is wildcard


def test_macros_expand() -> None:
    assert parse_cron("@monthly") == parse_cron("0 0 1 * *")
    assert parse_cron("@annually") == parse_cron("@yearly") == parse_cron("0 0 1 1 *")
    assert parse_cron("@midnight") == parse_cron("@daily") == parse_cron("0 0 * * *")
    assert parse_cron("@hourly") == parse_cron("0 * * * *")


# --- brute force: a reference cron matcher over two calendar years -------------------------


def _ref_field(text: str, low: int, high: int) -> tuple[set[int], bool]:
    """Numeric cron field -> (values, unrestricted per robfig: a bare '*' item)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
            star = star or step in ("", "1")
        elif "-" in base:
            first, last = (int(x) for x in base.split("-"))
        else:
            first = int(base)
            last = high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    return values, star


def _reference_max_gap(cron: str, first_weekday: int | None) -> dt.timedelta:
    """Largest gap between runs from 2027-01-01 to 2029-01-01, stepping hour by hour."""
    text = {"@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0"}.get(cron, cron)
    fields = text.split()
    bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
    (minutes, _), (hours, _), (doms, dom_star), (months, _), (dows, dow_star) = (
        _ref_field(f, lo, hi) for f, (lo, hi) in zip(fields, bounds, strict=True)
    )
    runs: list[dt.datetime] = []
    now, end = dt.datetime(2027, 1, 1), dt.datetime(2029, 1, 1)
    while now < end:
        weekday = now.isoweekday() % 7  # cron: Sunday = 0
        in_dom, in_dow = now.day in doms, weekday in dows
        day_ok = (in_dom and in_dow) if (dom_star or dow_star) else (in_dom or in_dow)
        if first_weekday is not None:
            day_ok = day_ok and weekday == first_weekday and now.day <= 7
        if day_ok and now.month in months and now.hour in hours:
            runs.extend(now.replace(minute=m) for m in sorted(minutes))
        now += HOUR
    return max(b - a for a, b in itertools.pairwise(runs))


@pytest.mark.parametrize(
    ("cron", "first_weekday"),
    [
        ("0 */6 * * *", None),
        ("15 2,14 * * 1-5", None),
        ("0,30 3 * * *", None),
        ("0 0 1,15 * *", None),
        ("0 4 1-7 * 0", None),
        ("0 4 1-7 * *", 0),
        ("20 1 1-7 * *", 3),
        ("0 0 */2 * 1", None),
        ("0 0 */1 * 1", None),
        ("30 3 * * 0", None),
        ("0 0 1 */3 *", None),
        ("0 12 31 * *", None),
        ("0 0 13 * 5", None),
        ("45 23 28-31 * *", None),
        ("@monthly", None),
        ("@weekly", None),
    ],
)
def test_max_gap_matches_brute_force(cron: str, first_weekday: int | None) -> None:
    expected = _reference_max_gap(cron, first_weekday)
    assert Schedule(cron, first_weekday=first_weekday).max_gap() == expected


@pytest.mark.parametrize(
    ("zone", "rule"),
    [
        ("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0"),
        ("Etc/UTC", "UTC0"),
        ("Asia/Kolkata", "IST-5:30"),
        ("Etc/GMT+5", "<-05>5"),
        ("Nowhere/Atlantis", None),
    ],
)
def test_posix_tz_gives_containers_a_rule_that_needs_no_zoneinfo(
    zone: str, rule: str | None
) -> None:
    from homeops_gen.schedule import posix_tz

    assert posix_tz(zone) == rule


# --- the calendar shortcut of the largest gap ------------------------------------------------

SHORTCUT_ZONES = [
    "Europe/London",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Nuuk",
    "Africa/Casablanca",
    "Australia/Sydney",
]
SHORTCUT_CRONS = [
    ("24 1 1 * *", None),
    ("0 0 1 * *", None),
    ("30 2 1-7 * *", 0),
    ("15 3 1 1,7 *", None),
    ("0 12 15 * 1", None),
    ("59 23 28-31 * *", None),
]


def _runtime_cases(crons: list[tuple[str, int | None]], zone: str) -> list[tuple[Any, Schedule]]:
    """Each cron with each runtime's module (a first-weekday guard only where the runtime
    has one), the controllers' zone that of the schedule."""
    from homeops_gen.schedules import cronjob, host, kopiur, volsync

    return [
        (module, Schedule(cron, guard, zone=zone, runtime=runtime, controller_zone=zone))
        for cron, guard in crons
        for module, runtime in [
            (cronjob, "cronjob"),
            (host, "cron"),
            (host, "systemd"),
            (kopiur, "kopiur"),
            (volsync, "volsync"),
        ]
        if guard is None or runtime in ("cronjob", "cron")
    ]


@pytest.mark.parametrize("zone", SHORTCUT_ZONES)
def test_the_calendar_shortcut_gives_the_walks_own_gaps(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps far from every transition are read off the calendar: every gap and the instant
    it starts must be the one the runtime's walk gives over the whole windows."""
    from homeops_gen.schedules import gaps

    cases = _runtime_cases(SHORTCUT_CRONS, zone)
    quick = [module.timing(schedule) for module, schedule in cases]
    monkeypatch.setattr(gaps, "_wall_step", lambda spec, zone: lambda after: None)
    walked = [module.timing(schedule) for module, schedule in cases]
    assert quick == walked
    assert any(t.gap.start is not None for t in walked)  # gaps that transitions make


#: Schedules on chosen days of the month (alone, or with weekdays), where transitions
#: that agree on the days the schedule runs around them are walked once.
LIKENESS_CRONS = [
    ("24 1 1 * *", None),
    ("0 0 1 * *", None),
    ("30 2 1-7 * *", None),
    ("30 2 1-7 * *", 0),
    ("0 1 1-7 * *", 6),
    ("0 12 15 * 1", None),
    ("59 23 28-31 * *", None),
    ("0 2 29 * *", None),
    ("30 1 31 * *", None),
    ("0 3 1,15 * *", None),
    ("15 0 */2 * *", None),
    ("5 2 13 * 5", None),
    ("0 1 1-7 * 0", None),
    ("17 3 * * 0", None),
    ("40 0 * * *", None),
    ("30 1 * * *", 0),
    ("45 0 * * 1-5", 3),
    ("0 0 * * 0", 0),
]
LIKENESS_ZONES = [
    *SHORTCUT_ZONES,
    "America/Havana",
    "Asia/Gaza",
    "Europe/Dublin",
    "America/St_Johns",
]


@pytest.mark.parametrize("zone", LIKENESS_ZONES)
def test_transitions_that_walk_alike_give_the_gaps_of_walking_each(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of the lone transitions that agree on their wall time, offsets and the days the
    schedule runs around them (and their weekday, for a first-weekday guard), one is
    walked: every gap and the instant it starts must be those of walking around each
    transition, and the shortcut must walk fewer."""
    from homeops_gen.schedules import cronjob, gaps

    cases = _runtime_cases(LIKENESS_CRONS, zone)
    walks = [0]
    runs = gaps.runs

    def counted(*args: object) -> object:
        walks[0] += 1
        return runs(*args)

    def timed(module: Any, schedule: Schedule) -> tuple[Any, int]:
        walks[0] = 0
        return module.timing(schedule), walks[0]

    monkeypatch.setattr(gaps, "runs", counted)
    alike = [timed(module, schedule) for module, schedule in cases]
    monkeypatch.setattr(gaps, "_likeness", lambda spec, guard, reach: None)
    each = [timed(module, schedule) for module, schedule in cases]
    assert [timing for timing, _ in alike] == [timing for timing, _ in each]
    assert any(timing.gap.start is not None for timing, _ in each)  # gaps transitions make
    assert sum(n for _, n in alike) < sum(n for _, n in each)
    # Every cron, guarded ones too, walks fewer windows in the CronJob controller, but in
    # Casablanca: around its Ramadan transitions the windows of a monthly reach merge.
    if zone != "Africa/Casablanca":
        not_fewer = [
            schedule.description
            for (module, schedule), (_, a), (_, b) in zip(cases, alike, each, strict=True)
            if module is cronjob and not a < b
        ]
        assert not not_fewer, not_fewer


# --- the days a schedule runs on, by arithmetic: as a day-by-day scan finds them ------------

DAY_FIELDS = [
    f"0 0 {dom} {month} {dow}"
    for dom in ("*", "1", "1-7", "*/2", "15,31", "29", "30", "8-14")
    for month in ("*", "2", "1,7", "*/3", "12")
    for dow in ("*", "0", "1-5", "6", "*/2", "3")
]


def _scanned(spec: Spec, first: dt.date, count: int, guard: int | None) -> list[int]:
    """Day by day: the month, the first-weekday guard, then both day fields (both
    restricted: either one; else both)."""
    found = []
    for offset in range(count):
        day = first + dt.timedelta(days=offset)
        weekday = (day.weekday() + 1) % 7
        if day.month not in spec.months:
            continue
        if guard is not None and (weekday != guard or day.day > 7):
            continue
        in_dom, in_dow = day.day in spec.dom, weekday in spec.dow
        if (in_dom and in_dow) if spec.dom_star or spec.dow_star else (in_dom or in_dow):
            found.append(offset)
    return found


@pytest.mark.parametrize("cron", DAY_FIELDS)
def test_run_days_are_those_a_day_by_day_scan_finds(cron: str) -> None:
    from homeops_gen.schedules import gaps, spec_of
    from homeops_gen.schedules.zones import TABLE

    spec = spec_of(cron)
    first = dt.date(1970, 1, 1) + dt.timedelta(days=TABLE[0] // 86400)
    count = TABLE[1] // 86400 - TABLE[0] // 86400
    expected = [TABLE[0] // 86400 + offset for offset in _scanned(spec, first, count, None)]
    assert list(gaps._run_days(spec)) == expected
    for guard in (None, 0, 3):
        days = _scanned(spec, dt.date(2025, 1, 1), 28 * 365 + 7, guard)
        if len(days) < 2:
            with pytest.raises(ValueError, match="never runs"):
                gaps._day_gaps(spec, guard)
            continue
        spans = [b - a for a, b in itertools.pairwise(days)]
        assert gaps._day_gaps(spec, guard) == (max(spans), min(spans)), guard
