"""Schedules on the hosts: cron on the NAS (TrueNAS tasks) and systemd timers on the PVE host.

Both read their schedule in the host's local zone, but treat a DST transition differently:

- cron (Debian's, which TrueNAS SCALE runs) catches up: a job at a fixed time that a
  spring-forward transition skips runs right after the change, and one in a repeated hour
  runs once. A job whose minute or hour field starts with ``*`` follows the new clock: a
  skipped run is lost, a repeated one runs again (cron(8), "daylight saving time").
- a systemd timer (``OnCalendar=``) never elapses at a local time that does not exist, and
  elapses once at one that occurs twice.
"""

from __future__ import annotations

from typing import Literal

from homeops_gen.schedule import Schedule
from homeops_gen.schedules import Timing, dst_effect, spec_of
from homeops_gen.schedules.gaps import largest_gap
from homeops_gen.schedules.robfig import Spec, next_run
from homeops_gen.schedules.zones import Zone
from homeops_gen.schedules.zones import zone as load_zone

__all__ = ["timing"]

Daemon = Literal["cron", "systemd"]
_RUNTIME = {"cron": "cron on the NAS", "systemd": "systemd timer on the PVE host"}
_UTC = load_zone("Etc/UTC")


def _instants(wall: int, loc: Zone) -> list[int]:
    """The instants at which the wall-clock reading ``wall`` occurs (none, one or two)."""
    return sorted(
        {
            wall - offset
            for offset in {loc.offset(wall - 86400), loc.offset(wall + 86400)}
            if loc.wall(wall - offset) == wall
        }
    )


def _skipped_until(wall: int, loc: Zone) -> int:
    """The instant the transition that skips the wall-clock reading ``wall`` happens."""
    upcoming = loc.next_transition(wall - loc.offset(wall - 86400) - 86400)
    assert upcoming is not None
    return upcoming


def _next(spec: Spec, after: int, loc: Zone, daemon: Daemon, star: bool) -> int | None:
    wall = loc.wall(after) - 1  # the reading at ``after`` may come round again
    while True:
        candidate = next_run(spec, wall, _UTC)  # the next wall-clock match, no zone
        if candidate is None:
            return None
        occurrences = _instants(candidate, loc)
        if not occurrences:  # skipped by a spring-forward transition
            if daemon == "cron" and not star:
                at = _skipped_until(candidate, loc)
                if at > after:
                    return at
            wall = candidate
            continue
        if daemon == "cron" and star:
            later = [t for t in occurrences if t > after]
        else:
            later = [t for t in occurrences[:1] if t > after]
        if later:
            return later[0]
        wall = candidate


def timing(schedule: Schedule) -> Timing:
    """How the daemon named by ``schedule.runtime`` (``cron`` or ``systemd``) runs
    ``schedule`` on a host whose clock is in ``schedule.zone``."""
    daemon: Daemon = "systemd" if schedule.runtime == "systemd" else "cron"
    spec = spec_of(schedule.cron)
    fields = schedule.cron.split()
    star = len(fields) == 5 and (fields[0].startswith("*") or fields[1].startswith("*"))
    loc = load_zone(schedule.zone)
    gap = largest_gap(
        spec, loc, lambda t: _next(spec, t, loc, daemon, star), guard=schedule.first_weekday
    )
    if daemon == "cron" and not star:
        skipped, repeated = "cron runs it right after the change", "it runs once"
    elif daemon == "cron":
        skipped, repeated = "that run is lost", "it runs twice"
    else:
        skipped, repeated = "the timer does not elapse that day", "it elapses once"
    effect = dst_effect(spec, schedule.zone, skipped=skipped, repeated=repeated)
    return Timing(_RUNTIME[daemon], schedule.cron, schedule.zone, gap, effect)
