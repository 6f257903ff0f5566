"""What a run does to each output file: the writer's vocabulary, apart from the writer.

A module of its own so that the answer from the cache (:mod:`homeops_gen.cli`) and the
report need not import the writer, the renderer and the plan.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Action", "Change", "WriteMode"]


class WriteMode(enum.Enum):
    WRITE = "write"
    CHECK = "check"


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    IDENTICAL = "identical"
    #: A planned path holds a different file that homeops_gen did not generate.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Change:
    path: str
    action: Action
    old: bytes | None
    new: bytes | None
    #: Why a planned path is a conflict (``Action.CONFLICT``), or what left a stray file.
    reason: str = ""
