"""One schedule model per runtime that fires a backup.

- :mod:`.cronjob`: the Kubernetes CronJob controller (robfig/cron v3 in the job's
  ``timeZone``);
- :mod:`.volsync`: VolSync's ``trigger.schedule`` (robfig/cron v3 in the controller's zone);
- :mod:`.kopiur`: kopiur's schedules (croner, :mod:`.croner`, in each cron's own zone);
- :mod:`.cnpg`: CNPG's ``ScheduledBackup`` (six fields, robfig/cron v1, the controller's zone);
- :mod:`.host`: cron on the NAS and systemd timers on the PVE host, in the hosts' zone.

Each gives a :class:`Timing`: the text that runtime is given, the zone it reads it in, the
largest real gap between two runs over thirty years of zone transitions, and a sentence on
what DST does to it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from homeops_gen.schedules.gaps import Gap
from homeops_gen.schedules.robfig import Spec
from homeops_gen.schedules.zones import shifted_minutes

__all__ = ["Gap", "Timing", "dst_effect", "hhmm", "run_minutes", "spec_of"]


@dataclass(frozen=True)
class Timing:
    """A schedule as one runtime runs it."""

    #: Who fires it, in words ("Kubernetes CronJob", "VolSync", ...).
    runtime: str
    #: The schedule exactly as that runtime is given it.
    cron: str
    #: The zone the runtime reads it in.
    zone: str
    gap: Gap
    #: What DST does to it, one sentence.
    dst: str

    @property
    def largest(self) -> dt.timedelta:
        return self.gap.span

    @property
    def shifted(self) -> list[int]:
        """The local minutes of the day it runs at that a transition of its zone skips or
        repeats."""
        skip, repeat = shifted_minutes(self.zone)
        return [t for t in run_minutes(self.spec) if t in skip or t in repeat]

    @property
    def every_hour(self) -> bool:
        """Whether it runs in every hour of the day (no placement avoids a transition)."""
        return len(self.spec.hours) == 24

    @property
    def spec(self) -> Spec:
        return spec_of(self.cron, seconds=len(self.cron.split()) == 6)


def spec_of(cron: str, *, seconds: bool = False, v1: bool = False) -> Spec:
    """The :class:`Spec` of a cron expression (five fields, or six with ``seconds``).

    ``v1``: day-of-month and day-of-week count as unrestricted whenever their text starts
    with ``*`` or ``?`` (robfig/cron v1); otherwise only for ``*`` or ``?`` alone (v3).
    """
    from homeops_gen.schedule import parse_cron, parse_seconds

    text = cron.strip()
    second_values = frozenset({0})
    if seconds:
        head, _, text = text.partition(" ")
        second_values = parse_seconds(head)
    minute, hour, dom, month, dow = parse_cron(text)
    fields = text.split()
    dom_star, dow_star = dom.wildcard, dow.wildcard
    if v1 and len(fields) == 5:
        dom_star = fields[2][:1] in ("*", "?")
        dow_star = fields[4][:1] in ("*", "?")
    return Spec(
        second_values,
        minute.values,
        hour.values,
        dom.values,
        month.values,
        dow.values,
        dom_star,
        dow_star,
    )


def run_minutes(spec: Spec) -> list[int]:
    """The minutes of the day (0-1439) it runs at, in order."""
    return sorted({h * 60 + m for h in spec.hours for m in spec.minutes})


def hhmm(minute: int) -> str:
    """``01:24`` for minute 84 of a day (any minute count, wrapped to the day)."""
    minute %= 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def dst_effect(spec: Spec, zone: str, *, skipped: str, repeated: str) -> str:
    """Which of the schedule's local times the zone's transitions skip or repeat, and what
    the runtime then does (``skipped`` and ``repeated`` say it)."""
    skip, repeat = shifted_minutes(zone)
    if not skip and not repeat:
        return f"{zone} has no DST transitions"
    times = run_minutes(spec)
    parts = []
    if hit := [t for t in times if t in skip]:
        parts.append(
            f"{_times(hit)} {'is' if len(hit) == 1 else 'are'} skipped by the "
            f"spring-forward transition: {skipped}"
        )
    if hit := [t for t in times if t in repeat]:
        parts.append(
            f"{_times(hit)} {'is' if len(hit) == 1 else 'are'} repeated by the "
            f"fall-back transition: {repeated}"
        )
    if not parts:
        return f"no run falls in a DST transition of {zone}"
    return "; ".join(parts)


def _times(minutes: list[int]) -> str:
    shown = ", ".join(hhmm(m) for m in minutes[:3])
    return shown + (f" and {len(minutes) - 3} more" if len(minutes) > 3 else "")
