"""The schedule models against the programs that run them.

The CronJob, VolSync and CNPG models are compared with the real robfig/cron v3 walked over
all thirty-two modelled years (``runtimes/oracle.py``); the host models with an independent
minute-by-minute simulation of cron's and systemd's documented DST rules.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from runtimes.hostsim import host_runs, transitions
from runtimes.oracle import Oracle, robfig  # noqa: F401

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import cnpg, cronjob, host, spec_of, volsync
from homeops_gen.schedules.controller import ConversionError
from homeops_gen.schedules.zones import RANGE

ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Etc/UTC",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "Asia/Beirut",
    "Pacific/Chatham",
    "Antarctica/Troll",
    "America/Sao_Paulo",
    "Europe/Dublin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
]
CRONS = [
    "24 1 * * *",
    "2 1 * * 0",
    "30 2,8,14,20 * * *",
    "0 0 * * *",
    "30 0 * * *",
    "0 0 29 2 *",
    "15 3 * * 6",
    "0 23 * * *",
    "45 1 */7 * 1",
    "0 0,12 * * *",
    "59 23 31 * *",
    "7 * * * *",
    "30 1 * * *",
    "0 2 * * 0",
    "45 2 * * *",
    "0 0 1 * *",
    "20 */6 * * *",
    "0 2 1 1 *",
    "10 0 * * 1-5",
]
GUARDED = [("0 2 1-7 * *", 0), ("30 1 1-7 * *", 0), ("15 0 1-7 * *", 6), ("0 3 1-7 * *", 0)]


#: Dense schedules are walked over three years (the library takes ~40 us a run): their
#: transitions recur every year, so three years hold every alignment they have.
DENSE_END = int(dt.datetime(2029, 1, 1, tzinfo=dt.UTC).timestamp())


def _end(cron: str) -> int:
    minute, hour = cron.split()[:2]
    dense = minute.startswith("*") or hour.startswith("*") or len(hour.split(",")) > 2
    return DENSE_END if dense else RANGE[1]


def _oracle_gap(oracle: Oracle, requests: list[dict[str, object]]) -> list[int]:
    def end(request: dict[str, object]) -> int:
        fields = str(request["spec"]).split()
        return _end(" ".join(fields[1:] if request.get("seconds") else fields))

    answers = oracle.ask([{"mode": "gap", "start": RANGE[0], "end": end(r), **r} for r in requests])
    for answer in answers:
        assert "error" not in answer, answer
    return [a["max_gap"] for a in answers]


def _agrees(model: dt.timedelta, calendar: dt.timedelta, real: int) -> bool:
    """The model is the real gap, or the calendar's worst alignment when thirty years of
    runs do not contain it (never less than the real gap)."""
    seconds = model.total_seconds()
    return seconds == real or (seconds == calendar.total_seconds() and real <= seconds)


@pytest.mark.tool("go")
def test_cronjob_gaps_equal_robfig(robfig: Oracle) -> None:  # noqa: F811
    cases = [(c, None, z) for z in ZONES for c in CRONS]
    cases += [(c, g, z) for z in ZONES for c, g in GUARDED]
    real = _oracle_gap(
        robfig,
        [{"spec": c, "zone": z, "guard": -1 if g is None else g} for c, g, z in cases],
    )
    wrong = []
    for (cron, guard, zone), seconds in zip(cases, real, strict=True):
        schedule = Schedule(cron, guard, zone=zone)
        model = cronjob.timing(schedule).largest
        if not _agrees(model, schedule.calendar_gap(), seconds):
            wrong.append((cron, guard, zone, seconds, model))
    assert not wrong


@pytest.mark.tool("go")
def test_controller_gaps_equal_robfig(robfig: Oracle) -> None:  # noqa: F811
    cases = []
    for local in ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]:
        for controller in ["Etc/UTC", "Europe/Berlin"]:
            for cron in CRONS:
                schedule = Schedule(cron, zone=local, controller_zone=controller)
                try:
                    v = volsync.timing(schedule)
                    c = cnpg.timing(schedule)
                except ConversionError:
                    continue
                cases.append((v, c))
    assert len(cases) > 100
    real_v = _oracle_gap(robfig, [{"spec": v.cron, "zone": v.zone} for v, _ in cases])
    real_c = _oracle_gap(
        robfig,
        [{"spec": c.cron, "zone": c.zone, "seconds": True, "v1star": True} for _, c in cases],
    )
    for (v, c), gv, gc in zip(cases, real_v, real_c, strict=True):
        calendar = Schedule(v.cron).calendar_gap()
        assert _agrees(v.largest, calendar, gv), (v, gv)
        assert _agrees(c.largest, calendar, gc), (c, gc)
        # The CNPG text reads the same under v1's rules as under v3's.
        assert spec_of(c.cron, seconds=True, v1=True) == spec_of(c.cron, seconds=True)
        assert not v.cron.startswith(("*", "@")), v.cron


@pytest.mark.tool("go")
def test_robfig_published_dst_vectors(robfig: Oracle) -> None:  # noqa: F811
    """robfig/cron's own DST cases (spec_test.go, TestNext), through the model and the library."""
    from homeops_gen.schedules.robfig import next_run
    from homeops_gen.schedules.zones import zone

    vectors = [
        ("2012-03-11T00:00:00-05:00", "0 30 2 11 3 ?", "2013-03-11T02:30:00-04:00"),
        ("2012-03-11T01:00:00-05:00", "0 0 * * * ?", "2012-03-11T03:00:00-04:00"),
        ("2012-03-11T01:00:00-05:00", "0 0 1 * * ?", "2012-03-12T01:00:00-04:00"),
        ("2012-03-11T00:00:00-05:00", "0 0 2 * * ?", "2012-03-12T02:00:00-04:00"),
        ("2012-11-04T00:00:00-04:00", "0 30 2 4 11 ?", "2012-11-04T02:30:00-05:00"),
        ("2012-11-04T01:45:00-04:00", "0 30 1 4 11 ?", "2012-11-04T01:30:00-05:00"),
        ("2012-11-04T01:00:00-04:00", "0 0 * * * ?", "2012-11-04T01:00:00-05:00"),
        ("2012-11-04T01:00:00-04:00", "0 0 1 * * ?", "2012-11-04T01:00:00-05:00"),
        ("2012-11-04T01:00:00-05:00", "0 0 1 * * ?", "2012-11-05T01:00:00-05:00"),
        ("2012-11-04T00:00:00-04:00", "0 0 3 * * ?", "2012-11-04T03:00:00-05:00"),
        ("2012-11-04T00:00:00-04:00", "0 0 3 3 * ?", "2012-12-03T03:00:00-05:00"),
    ]
    sao = [
        ("2018-10-17T05:00:00-04:00", "0 0 9 10 * ?", "2018-11-10T06:00:00-05:00"),
        ("2018-02-14T05:00:00-05:00", "0 0 9 22 * ?", "2018-02-22T07:00:00-05:00"),
    ]
    cases = [(a, s, e, "America/New_York") for a, s, e in vectors]
    cases += [(a, s, e, "America/Sao_Paulo") for a, s, e in sao]
    for after, spec, expected, name in cases:
        start = int(dt.datetime.fromisoformat(after).timestamp())
        want = int(dt.datetime.fromisoformat(expected).timestamp())
        got = next_run(spec_of(spec.replace("?", "*"), seconds=True), start, zone(name))
        assert got == want, (after, spec, name)
        (answer,) = robfig.ask(
            [
                {
                    "mode": "next",
                    "spec": spec,
                    "zone": name,
                    "start": start,
                    "seconds": True,
                    "count": 1,
                }
            ]
        )
        assert answer["next"] == [want]


@pytest.mark.parametrize("daemon", ["cron", "systemd"])
@pytest.mark.parametrize(
    ("cron", "zone"),
    [
        ("24 1 * * *", "Europe/London"),
        ("30 2 * * *", "America/New_York"),
        ("0 2 * * *", "Australia/Sydney"),
        ("15 1 * * *", "America/New_York"),
        ("7 * * * *", "Europe/London"),
        ("0 0,12 * * *", "America/Havana"),
        ("45 2 * * 0", "Australia/Lord_Howe"),
    ],
)
def test_host_gaps_match_a_minute_simulation(cron: str, zone: str, daemon: str) -> None:
    """Sixteen days around each transition of 2027, minute by minute."""
    real = 0
    for transition in transitions(zone, 2027):
        runs = host_runs(cron, zone, daemon, transition - 8 * 86400 - 3600 * 5, 16 * 1440)
        real = max([real, *(b - a for a, b in itertools.pairwise(runs))])
    model = host.timing(Schedule(cron, zone=zone, runtime=daemon))  # type: ignore[arg-type]
    assert model.largest.total_seconds() == real
