"""What a run did or would do; owns the exit code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from homeops_gen.changes import Action, Change, WriteMode

__all__ = ["EXIT_BAD_INPUT", "EXIT_DRIFT", "EXIT_OK", "Report", "check_word"]

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2

_CHECK_WORDS = {
    Action.CREATE: "missing",
    Action.UPDATE: "changed",
    Action.DELETE: "stale",
    Action.CONFLICT: "not owned",
}
_WRITE_WORDS = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.DELETE: "deleted",
    Action.IDENTICAL: "unchanged",
}


def check_word(action: Action) -> str:
    """How ``--check`` names a differing file: missing, changed, stale or not owned."""
    return _CHECK_WORDS[action]


@dataclass(frozen=True)
class Report:
    mode: WriteMode
    changes: tuple[Change, ...]

    @property
    def counts(self) -> Counter[Action]:
        return Counter(change.action for change in self.changes)

    @property
    def drift(self) -> tuple[Change, ...]:
        """Changes that are not identical: what ``--check`` complains about."""
        return tuple(c for c in self.changes if c.action is not Action.IDENTICAL)

    @property
    def exit_code(self) -> int:
        if self.mode is WriteMode.CHECK and self.drift:
            return EXIT_DRIFT
        return EXIT_OK

    def file_lines(self) -> list[str]:
        """One line per differing file: ``changed: x.yaml`` (check), ``update x.yaml`` (write)."""
        if self.mode is WriteMode.CHECK:
            return [f"{check_word(c.action)}: {c.path}" for c in self.drift]
        return [f"{c.action.value} {c.path}" for c in self.drift]

    def summary(self, out_display: str) -> str:
        counts = self.counts
        if self.mode is WriteMode.CHECK:
            if not self.drift:
                return f"{out_display}/ is up to date ({len(self.changes)} files)"
            parts = ", ".join(f"{counts[a]} {w}" for a, w in _CHECK_WORDS.items() if counts[a])
            return (
                f"{out_display}/ is out of date: {parts}; run `python -m homeops_gen` "
                "to regenerate it"
            )
        parts = ", ".join(f"{counts[a]} {w}" for a, w in _WRITE_WORDS.items() if counts[a])
        return f"{out_display}/: {parts}"
