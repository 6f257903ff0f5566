"""The only module that touches the output folder.

The writer owns ``out/`` through a manifest (:data:`~homeops_gen.plan.MANIFEST_NAME`) that
lists the files it generated. It writes changed files only (temp file + rename), deletes
files it generated before and no longer plans, and never touches a file it does not own.
``CHECK`` mode computes the same changes and writes nothing.

A file whose only difference from the rendered bytes is CRLF line endings (a Windows
checkout with ``core.autocrlf``) counts as identical and is left alone.
"""

from __future__ import annotations

import difflib
import enum
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from homeops_gen.errors import OutputError
from homeops_gen.plan import MANIFEST_NAME, check_output_path
from homeops_gen.render import HEADER

if TYPE_CHECKING:
    from homeops_gen.report import Report

__all__ = [
    "Action",
    "Change",
    "WriteMode",
    "apply_changes",
    "check_output",
    "format_diff",
    "plan_changes",
    "read_manifest",
    "render_manifest",
    "write_output",
]


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
    #: Why a planned path is a conflict (``Action.CONFLICT`` only).
    reason: str = ""


def render_manifest(paths: list[str] | tuple[str, ...]) -> bytes:
    lines = [
        f"# {HEADER}",
        "# The files below are owned by homeops_gen; it deletes one when it "
        "no longer generates it.",
        *sorted(paths),
    ]
    return ("\n".join(lines) + "\n").encode()


def read_manifest(out_dir: Path) -> frozenset[str]:
    """Paths listed in the manifest; unsafe entries are ignored so nothing outside is deleted."""
    try:
        text = (out_dir / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, or not a readable file: nothing is owned
        return frozenset()
    entries = (line.strip() for line in text.splitlines())
    return frozenset(
        e for e in entries if e and not e.startswith("#") and check_output_path(e) is None
    )


def _obstacle(
    out_dir: Path, path: str, folders: dict[Path, str | None] | None = None
) -> str | None:
    """Why ``path`` cannot be written as a plain file inside ``out_dir``, or ``None``.

    A symbolic link among the parent folders could lead a write or a delete outside
    ``out_dir``, so it is an obstacle too. ``folders`` remembers the verdict on each folder
    across the paths of one comparison.
    """
    known = {} if folders is None else folders
    parts = PurePosixPath(path).parts
    for depth in range(1, len(parts)):
        folder = out_dir.joinpath(*parts[:depth])
        if folder not in known:
            known[folder] = _folder_obstacle(folder)
        if known[folder] is not None:
            return known[folder]
    target = out_dir / path
    if target.exists() and not target.is_file():
        return f"{target}: exists and is not a regular file"
    return None


def _folder_obstacle(folder: Path) -> str | None:
    if folder.is_symlink():
        return f"{folder}: is a symbolic link"
    if folder.exists() and not folder.is_dir():
        return f"{folder}: exists and is not a directory"
    return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _same(old: bytes, new: bytes) -> bool:
    return old == new or old.replace(b"\r\n", b"\n") == new


def _check_out_dir(out_dir: Path) -> None:
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise OutputError([f"{folder}: exists and is not a directory"])
            return


def plan_changes(rendered: Mapping[str, bytes], out_dir: Path) -> list[Change]:
    """Compare ``rendered`` (plus the manifest) with ``out_dir``; sorted by path."""
    _check_out_dir(out_dir)
    owned = read_manifest(out_dir)
    wanted = {**rendered, MANIFEST_NAME: render_manifest(tuple(rendered))}
    folders: dict[Path, str | None] = {}
    changes = [_compare(out_dir, path, new, owned, folders) for path, new in wanted.items()]
    for path in sorted(owned - wanted.keys()):
        old = _read(out_dir / path)
        if old is not None and _obstacle(out_dir, path, folders) is None:
            changes.append(Change(path, Action.DELETE, old, None))
    return sorted(changes, key=lambda c: c.path)


def _compare(
    out_dir: Path, path: str, new: bytes, owned: frozenset[str], folders: dict[Path, str | None]
) -> Change:
    obstacle = _obstacle(out_dir, path, folders)
    if obstacle is not None:
        return Change(path, Action.CONFLICT, None, new, obstacle)
    old = _read(out_dir / path)
    if old is None:
        return Change(path, Action.CREATE, None, new)
    if _same(old, new):
        return Change(path, Action.IDENTICAL, old, new)
    if path in owned or path == MANIFEST_NAME:
        return Change(path, Action.UPDATE, old, new)
    reason = (
        f"{out_dir / path}: exists but was not generated by homeops_gen "
        f"(it is not in {MANIFEST_NAME})"
    )
    return Change(path, Action.CONFLICT, old, new, reason)


def apply_changes(changes: list[Change], out_dir: Path) -> None:
    """Write creates and updates atomically, then delete stale files, then the manifest.

    Raises :class:`OutputError` before touching anything when a change is a conflict. The
    manifest goes last so that an interrupted run never lists a file it did not write.
    """
    conflicts = [c for c in changes if c.action is Action.CONFLICT]
    if conflicts:
        raise OutputError(
            [f"{c.reason}; move it away or delete it, then run again" for c in conflicts]
        )
    writes = [c for c in changes if c.action in (Action.CREATE, Action.UPDATE)]
    made: set[Path] = set()
    for change in [c for c in writes if c.path != MANIFEST_NAME]:
        target = out_dir / change.path
        if target.parent not in made:
            _make_folder(target)
            made.add(target.parent)
        _write_atomic(target, change.new or b"")
    for change in (c for c in changes if c.action is Action.DELETE):
        target = out_dir / change.path
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError([f"{target}: cannot delete: {exc.strerror or exc}"]) from None
        _remove_empty_parents(target.parent, out_dir)
    for change in (c for c in writes if c.path == MANIFEST_NAME):
        _make_folder(out_dir / change.path)
        _write_atomic(out_dir / change.path, change.new or b"")


def _make_folder(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError([f"{target}: cannot write: {exc.strerror or exc}"]) from None


def _write_atomic(target: Path, data: bytes) -> None:
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError([f"{target}: cannot write: {exc.strerror or exc}"]) from None


def _remove_empty_parents(folder: Path, out_dir: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and root in folder.resolve().parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: something else lives here
        folder = folder.parent


def format_diff(change: Change, out_display: str) -> str:
    """A unified diff with ``a/`` and ``b/`` paths; line endings normalised."""
    name = (PurePosixPath(out_display) / change.path).as_posix().lstrip("/")
    old, new = change.old, change.new
    fromfile = "/dev/null" if old is None else f"a/{name}"
    tofile = "/dev/null" if new is None else f"b/{name}"
    old_text, new_text = _decode(old), _decode(new)
    if old_text is None or new_text is None:
        return f"Binary files {fromfile} and {tofile} differ\n"
    lines = difflib.unified_diff(_lines(old_text), _lines(new_text), fromfile, tofile)
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _lines(text: str) -> list[str]:
    """Split on LF only (``str.splitlines`` also splits on form feeds, U+2028, lone CR)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _decode(data: bytes | None) -> str | None:
    if data is None:
        return ""
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return None


def write_output(rendered: Mapping[str, bytes], out_dir: str | Path) -> Report:
    """Bring ``out_dir`` in line with ``rendered``; returns what changed."""
    from homeops_gen.report import Report

    changes = plan_changes(rendered, Path(out_dir))
    apply_changes(changes, Path(out_dir))
    return Report(WriteMode.WRITE, tuple(changes))


def check_output(rendered: Mapping[str, bytes], out_dir: str | Path) -> Report:
    """Compare ``out_dir`` with ``rendered`` without writing; ``report.exit_code`` is 1 on drift."""
    from homeops_gen.report import Report

    return Report(WriteMode.CHECK, tuple(plan_changes(rendered, Path(out_dir))))
