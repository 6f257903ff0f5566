"""The only module that touches the output folder.

The writer owns ``out/`` through a manifest (:data:`~homeops_gen.plan.MANIFEST_NAME`) that
lists the files it generated. It writes changed files only, deletes files it generated
before and no longer plans, and never touches a file it does not own. ``CHECK`` mode
computes the same changes and writes nothing.

A write is all or nothing:

1. It holds an exclusive lock (``flock`` on :data:`LOCK_NAME` in ``out/``, removed when the
   run ends) while it reads and changes ``out/``, so overlapping runs take turns. A run that
   cannot get the lock within ``lock_timeout`` seconds (``$HOMEOPS_GEN_LOCK_TIMEOUT``, else
   10) stops with an :class:`OutputError`. ``CHECK`` takes the lock too, so it never reads
   a half-applied ``out/`` (it removes the lock file again if it made it, and makes none
   when ``out/`` does not exist). A killed run's lock file is no one's lock: the next write
   takes it and removes it.
2. Every new or changed file is written to a temporary beside it
   (``.<name>.homeops_gen-XXXXXXXX.tmp``), then one ``syncfs(2)`` of the file system makes
   them all durable (``sync(2)`` where there is no ``syncfs``): an ``fsync`` per file cost
   several times the whole write. An error up to this point removes them again: ``out/`` is
   left as it was.
3. The journal (:data:`JOURNAL_NAME`, written atomically) records the final manifest and
   every rename and delete. Then the renames and deletes are done and flushed the same way,
   the manifest is written (fsynced) and the journal removed.
4. The next write that finds a journal finishes that run first (roll forward); a journal it
   cannot read is dropped (it was complete before the first rename, so nothing had been
   renamed). It removes the temporaries killed runs left. ``CHECK`` reports both as drift.

A file whose only difference from the rendered bytes is CRLF line endings (a Windows
checkout with ``core.autocrlf``) counts as identical and is left alone.

``$HOMEOPS_GEN_FAULT=<stage>`` is a test hook: the process kills itself (``<stage>:stop``:
stops itself) at that stage of a write; see :func:`_fault`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from homeops_gen.changes import Action, Change, WriteMode
from homeops_gen.errors import OutputError
from homeops_gen.plan import MANIFEST_NAME, check_output_path
from homeops_gen.render import HEADER

if TYPE_CHECKING:
    from homeops_gen.report import Report

__all__ = [
    "JOURNAL_NAME",
    "LOCK_NAME",
    "Action",
    "Change",
    "OutputWriteError",
    "WriteMode",
    "apply_changes",
    "check_output",
    "format_diff",
    "interruption_note",
    "plan_changes",
    "read_manifest",
    "render_manifest",
    "unfinished_run",
    "write_output",
]

#: The lock a run holds on ``out/`` while it reads or changes it.
LOCK_NAME = ".homeops_gen-lock"
#: The record of a write in progress: what to rename and delete, and the final manifest.
JOURNAL_NAME = ".homeops_gen-journal"
_JOURNAL_FORMAT = "homeops_gen-journal-1"
#: How long a run waits for another one's lock, in seconds.
DEFAULT_LOCK_TIMEOUT = 10.0
#: The temporary of ``name`` is ``.<name>.homeops_gen-<8 random characters>.tmp``.
_TEMP_MARK = ".homeops_gen-"
_TEMP = re.compile(r"\.(?P<name>.+)\.homeops_gen-[a-z0-9_]{8}\.tmp")
#: What versions before the journal left: ``.<name>.<8 random characters>.tmp``.
_LEGACY_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")

_TEMP_REASON = "a temporary file of an interrupted homeops_gen run"
_JOURNAL_REASON = "the journal of an interrupted homeops_gen run"
_BAD_JOURNAL_REASON = "the unreadable journal of an interrupted homeops_gen run"


class OutputWriteError(OutputError):
    """An I/O error while writing ``out/``; ``outcome`` says what state it left."""

    def __init__(self, problem: str, outcome: str, details: Sequence[str] = ()) -> None:
        super().__init__([problem])
        #: The end of the CLI's last line, in place of "nothing was written".
        self.outcome = outcome
        self.details = tuple(details)

    @property
    def lines(self) -> Sequence[str]:
        return [*super().lines, *self.details]


def render_manifest(paths: list[str] | tuple[str, ...]) -> bytes:
    lines = [
        f"# {HEADER}",
        "# The files below are owned by homeops_gen; it deletes one when it "
        "no longer generates it.",
        *sorted(paths),
    ]
    return ("\n".join(lines) + "\n").encode()


def _reserved(path: str) -> bool:
    """The writer's own files: the manifest, the lock, the journal and temporaries."""
    if path in (MANIFEST_NAME, LOCK_NAME, JOURNAL_NAME):
        return True
    # A temporary's name ends in ".tmp": a path without it is not one (no need to parse it).
    return ".tmp" in path and bool(_TEMP.fullmatch(PurePosixPath(path).name))


def _safe(path: str) -> bool:
    return check_output_path(path) is None and not _reserved(path)


def read_manifest(out_dir: Path) -> frozenset[str]:
    """Paths listed in the manifest; unsafe entries are ignored so nothing outside is deleted."""
    try:
        text = (out_dir / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, or not a readable file: nothing is owned
        return frozenset()
    entries = (line.strip() for line in text.splitlines())
    return frozenset(e for e in entries if e and not e.startswith("#") and _safe(e))


def _under(out_dir: Path, path: str) -> str:
    """``str(out_dir / path)`` for a checked relative ``path``, without pathlib's parsing
    (about 45 microseconds of user time a file when writing 13,000 files)."""
    root = os.fspath(out_dir)
    if root == ".":
        return path
    return root + path if root.endswith("/") else f"{root}/{path}"


def _obstacle(out_dir: Path, path: str, folders: dict[str, str | None] | None = None) -> str | None:
    """Why ``path`` cannot be written as a plain file inside ``out_dir``, or ``None``.

    A symbolic link among the parent folders could lead a write or a delete outside
    ``out_dir``, so it is an obstacle too. ``folders`` remembers the verdict on each folder
    across the paths of one comparison.
    """
    return _parents_obstacle(out_dir, path, {} if folders is None else folders) or (
        _target_obstacle(_under(out_dir, path))
    )


def _parents_obstacle(out_dir: Path, path: str, folders: dict[str, str | None]) -> str | None:
    """The obstacle among the folders of ``path`` (outermost first), each looked at once."""
    cut = path.rfind("/")
    if cut < 0:
        return None
    parent = path[:cut]
    if parent not in folders:
        folders[parent] = _parents_obstacle(out_dir, parent, folders) or _folder_obstacle(
            _under(out_dir, parent)
        )
    return folders[parent]


def _folder_obstacle(folder: str) -> str | None:
    try:
        mode = os.lstat(folder).st_mode
    except OSError:
        return None  # missing (or unreachable: the write says why)
    if stat.S_ISLNK(mode):
        return f"{folder}: is a symbolic link"
    if not stat.S_ISDIR(mode):
        return f"{folder}: exists and is not a directory"
    return None


def _target_obstacle(target: str | Path) -> str | None:
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else f"{target}: exists and is not a regular file"


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO at a path must not block the open
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _open_target(target: str | Path) -> tuple[bytes | None, str | None]:
    """``(bytes, None)`` of the regular file at ``target`` (links followed), ``(None, None)``
    when there is none, ``(None, why)`` when something else is there: one open, one fstat
    and (for a file that did not grow meanwhile) one read."""
    try:
        fd = os.open(target, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError:  # a socket, or no permission: the slow path says which
        return None, _target_obstacle(target)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{target}: exists and is not a regular file"
        return _read_fd(fd, info.st_size), None
    except OSError:
        return None, None
    finally:
        os.close(fd)


def _read_fd(fd: int, size: int) -> bytes:
    data = os.read(fd, size + 1)
    if len(data) <= size:  # a short read of a regular file is its end
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _read(path: Path) -> bytes | None:
    return _open_target(path)[0]


def _same(old: bytes, new: bytes) -> bool:
    return old == new or old.replace(b"\r\n", b"\n") == new


def _check_out_dir(out_dir: Path) -> None:
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise OutputError([f"{folder}: exists and is not a directory"])
            return


#: Rendered files: a mapping of path to bytes, or pairs of them produced one at a time.
Rendered = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


def plan_changes(rendered: Rendered, out_dir: Path, *, keep: bool = True) -> list[Change]:
    """Compare ``rendered`` (plus the manifest) with ``out_dir``; sorted by path.

    ``rendered`` may be a stream of ``(path, bytes)`` pairs: each file is compared as it
    comes, and with ``keep=False`` an identical file keeps none of its bytes (its change
    has ``old`` and ``new`` ``None``), so that no more than the files that differ are held
    at once. The files an interrupted run's journal lists count as owned, as they will be
    once the next write has finished that run.
    """
    _check_out_dir(out_dir)
    owned = _owned(out_dir)
    folders: dict[str, str | None] = {}
    pairs = rendered.items() if isinstance(rendered, Mapping) else rendered
    paths, reserved, changes = [], [], []
    for path, new in pairs:
        paths.append(path)
        if _reserved(path):
            reserved.append(path)
        elif not reserved:
            changes.append(_compare(out_dir, path, new, owned, folders, keep))
        del new  # not held while the next file is made, unless its change keeps it
    if reserved:
        raise OutputError(
            [
                f"{out_dir / path}: the name is reserved for the writer's own files"
                for path in sorted(reserved)
            ]
        )
    manifest = render_manifest(paths)
    changes.append(_compare(out_dir, MANIFEST_NAME, manifest, owned, folders))
    for path in sorted(owned.difference(paths, (MANIFEST_NAME,))):
        old = _read(out_dir / path)
        if old is not None and _obstacle(out_dir, path, folders) is None:
            changes.append(Change(path, Action.DELETE, old, None))
    return sorted(changes, key=lambda c: c.path)


def _owned(out_dir: Path) -> frozenset[str]:
    owned = read_manifest(out_dir)
    journal = _read_journal(out_dir)[1]
    return owned | set(journal.manifest) if journal is not None else owned


def _compare(
    out_dir: Path,
    path: str,
    new: bytes,
    owned: frozenset[str],
    folders: dict[str, str | None],
    keep: bool = True,
) -> Change:
    obstacle = _parents_obstacle(out_dir, path, folders)
    old = None
    if obstacle is None:
        old, obstacle = _open_target(_under(out_dir, path))
    if obstacle is not None:
        return Change(path, Action.CONFLICT, None, new, obstacle)
    if old is None:
        return Change(path, Action.CREATE, None, new)
    if old == new:  # one copy of the bytes is kept, not two (or none)
        return (
            Change(path, Action.IDENTICAL, new, new)
            if keep
            else Change(path, Action.IDENTICAL, None, None)
        )
    if _same(old, new):
        return Change(path, Action.IDENTICAL, old, new)
    if path in owned or path == MANIFEST_NAME:
        return Change(path, Action.UPDATE, old, new)
    reason = (
        f"{out_dir / path}: exists but was not generated by homeops_gen "
        f"(it is not in {MANIFEST_NAME})"
    )
    return Change(path, Action.CONFLICT, old, new, reason)


# --- the test hook ---------------------------------------------------------------------------


def _fault(stage: str) -> None:
    """Kill (or, for ``<stage>:stop``, stop) this process if ``$HOMEOPS_GEN_FAULT`` names ``stage``.

    The stages of a write, in order: ``locked``, ``planned``, ``temporaries-written``,
    ``journal-temporary`` (its temporary written, not yet renamed), ``journal-written``,
    ``renamed-<n>`` (after the n-th rename), ``deleted-<n>``, ``before-manifest``,
    ``manifest-written`` (the journal not yet removed).
    """
    wanted = os.environ.get("HOMEOPS_GEN_FAULT")
    if not wanted:
        return
    name, _, how = wanted.partition(":")
    if name == stage:
        import signal

        os.kill(os.getpid(), signal.SIGSTOP if how == "stop" else signal.SIGKILL)


# --- the lock --------------------------------------------------------------------------------


def _lock_timeout(value: float | None) -> float:
    if value is not None:
        return value
    try:
        return float(os.environ.get("HOMEOPS_GEN_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@contextlib.contextmanager
def _locked(out_dir: Path, *, writing: bool, timeout: float | None) -> Iterator[None]:
    """Hold the lock on ``out_dir``; a write creates ``out_dir`` (removed again if left empty).

    The holder removes the lock file as it lets go, so a waiter checks that the file it
    locked is still the one at the path. ``CHECK`` removes it only if it created it.
    Where no lock can be had (no ``fcntl``, a read-only folder without a lock file, a file
    system without ``flock``) the run goes on without one.
    """
    created = _make_out_dir(out_dir) if writing else []
    try:
        lock = _acquire(out_dir, _lock_timeout(timeout), may_create=out_dir.is_dir())
        try:
            yield
        finally:
            if lock is not None:
                fd, made = lock
                if writing or made:
                    with contextlib.suppress(OSError):
                        if _same_file(fd, out_dir / LOCK_NAME):
                            os.unlink(out_dir / LOCK_NAME)
                os.close(fd)
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: this run wrote into it


def _make_out_dir(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its missing parents; returns the folders created, outermost first."""
    missing = [f for f in (out_dir, *out_dir.parents) if not f.exists()][::-1]
    try:
        for folder in missing:
            folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError([f"{out_dir}: cannot create: {exc.strerror or exc}"]) from None
    return missing


def _acquire(out_dir: Path, timeout: float, *, may_create: bool) -> tuple[int, bool] | None:
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return None
    path = out_dir / LOCK_NAME
    deadline = time.monotonic() + timeout
    while True:
        opened = _open_lock(path, may_create)
        if opened is None:
            return None
        fd = opened[0]
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OutputError(
                            [
                                f"{out_dir}: another homeops_gen run holds this folder "
                                f"(its lock {path}); gave up after waiting {timeout:g} s; "
                                "run again once it has finished"
                            ]
                        ) from None
                    time.sleep(0.05)
            if _same_file(fd, path):
                return opened
        except OutputError:
            os.close(fd)
            raise
        except OSError:  # no flock on this file system
            os.close(fd)
            return None
        os.close(fd)  # the holder removed it as it let go: lock the one at the path now


def _open_lock(path: Path, may_create: bool) -> tuple[int, bool] | None:
    """Open (or create) the lock file: ``(fd, created)``, or ``None`` if there is none to have."""
    for _ in range(100):
        if may_create:
            try:
                return os.open(path, _NOFOLLOW | os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                pass
            except OSError:  # a read-only folder: use its lock file, if it has one
                may_create = False
        for mode in (os.O_RDWR, os.O_RDONLY):
            try:
                return os.open(path, _NOFOLLOW | mode), False
            except FileNotFoundError:
                break
            except OSError:
                continue
        if not may_create:
            return None
    return None


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a symlink at the lock's path is not followed


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


# --- the journal -----------------------------------------------------------------------------


class _Journal:
    """A write's plan: the final manifest, ``(temporary, target)`` renames and deletes.

    (A plain class: a dataclass costs start-up time.)
    """

    __slots__ = ("deletes", "manifest", "renames")

    def __init__(
        self,
        manifest: tuple[str, ...],
        renames: tuple[tuple[str, str], ...],
        deletes: tuple[str, ...],
    ) -> None:
        #: The files the manifest lists once the run is done.
        self.manifest = manifest
        #: ``(temporary, target)``, relative to ``out/``.
        self.renames = renames
        self.deletes = deletes

    def encode(self) -> bytes:
        body = {
            "format": _JOURNAL_FORMAT,
            "manifest": list(self.manifest),
            "renames": [list(pair) for pair in self.renames],
            "deletes": list(self.deletes),
        }
        return (json.dumps(body, indent=1) + "\n").encode()


def _read_journal(out_dir: Path) -> tuple[bool, _Journal | None]:
    """``(exists, journal)``; the journal is ``None`` when it is missing or unusable."""
    path = out_dir / JOURNAL_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False, None
    except OSError:
        return path.exists() or path.is_symlink(), None
    try:
        return True, _decode_journal(json.loads(data))
    except (ValueError, TypeError, KeyError):
        return True, None


def _decode_journal(body: Any) -> _Journal:
    """The journal in ``body``; ``ValueError`` unless every path is a safe one inside out/."""
    if not isinstance(body, dict) or body.get("format") != _JOURNAL_FORMAT:
        raise ValueError("not a journal")
    if not all(isinstance(body[key], list) for key in ("manifest", "renames", "deletes")):
        raise ValueError("not a journal")
    manifest = tuple(_path(p) for p in body["manifest"])
    deletes = tuple(_path(p) for p in body["deletes"])
    renames = []
    for temporary, target in body["renames"]:
        source, dest = PurePosixPath(_path(temporary, temp=True)), PurePosixPath(_path(target))
        if source.parent != dest.parent or not source.name.startswith(f".{dest.name}."):
            raise ValueError("a temporary is not beside its target")
        renames.append((source.as_posix(), dest.as_posix()))
    return _Journal(manifest, tuple(renames), deletes)


def _path(value: Any, *, temp: bool = False) -> str:
    if not isinstance(value, str) or check_output_path(value) is not None:
        raise ValueError("unsafe path")
    fits = _TEMP.fullmatch(PurePosixPath(value).name) if temp else not _reserved(value)
    if not fits:
        raise ValueError("not a path the writer writes")
    return value


def _write_journal(out_dir: Path, journal: _Journal) -> None:
    """Write the journal atomically: a temporary, fsynced, renamed, then the folder fsynced.

    ``os.rename``, not ``os.replace``: the journal is created, never replaced (a write
    finishes or refuses an earlier run's journal first).
    """
    target = _under(out_dir, JOURNAL_NAME)
    temporary = _stage(target, journal.encode())
    try:
        _fault("journal-temporary")
        os.rename(temporary, target)
    except OSError:
        _unlink(temporary)
        raise
    _sync_folder(out_dir)


# --- applying --------------------------------------------------------------------------------


class _Progress:
    """What a write has done so far, to say so if it fails halfway."""

    def __init__(self) -> None:
        self.renamed: list[str] = []
        self.deleted: list[str] = []
        self.manifest = False

    @property
    def started(self) -> bool:
        return bool(self.renamed or self.deleted)


class _StepFailed(Exception):
    """An I/O error at one step of applying the journal: which path, doing what."""

    def __init__(self, path: str | Path, verb: str, error: OSError) -> None:
        super().__init__(f"{path}: cannot {verb}: {error.strerror or error}")
        self.message = str(self)


def apply_changes(changes: list[Change], out_dir: Path) -> None:
    """Apply ``changes`` (from :func:`plan_changes`) all or nothing, holding the lock.

    Raises :class:`OutputError` before touching anything when a change is a conflict, and
    :class:`OutputWriteError` when an I/O error stops the write (saying what it left).
    """
    _refuse_conflicts(changes)
    with _locked(out_dir, writing=True, timeout=None):
        if _read_journal(out_dir)[0]:
            raise OutputError(
                [
                    f"{out_dir / JOURNAL_NAME}: an interrupted homeops_gen run left this "
                    "journal; generate again to finish that run first"
                ]
            )
        _apply(changes, out_dir)


def _refuse_conflicts(changes: Iterable[Change]) -> None:
    conflicts = [c for c in changes if c.action is Action.CONFLICT]
    if conflicts:
        raise OutputError(
            [f"{c.reason}; move it away or delete it, then run again" for c in conflicts]
        )


def _apply(changes: list[Change], out_dir: Path) -> None:
    """Temporaries, journal, renames and deletes, manifest; the lock is held and no journal."""
    _refuse_conflicts(changes)
    writes = [c for c in changes if c.action in (Action.CREATE, Action.UPDATE)]
    deletes = [c.path for c in changes if c.action is Action.DELETE]
    if not writes and not deletes:
        return  # everything, the manifest too, is up to date
    files = [c for c in writes if c.path != MANIFEST_NAME]
    manifest = tuple(
        sorted(
            c.path
            for c in changes
            if c.path != MANIFEST_NAME
            and c.action in (Action.CREATE, Action.UPDATE, Action.IDENTICAL)
        )
    )
    made: list[Path] = []
    staged: list[str] = []  # the temporaries
    ready: set[str] = set()
    try:
        for change in files:
            folder = change.path.rpartition("/")[0]
            if folder and folder not in ready:
                _make_folders(out_dir / folder, out_dir, made)
                ready.add(folder)
            staged.append(_stage(_under(out_dir, change.path), change.new or b"", sync=False))
        # One flush of the file system makes every temporary durable before the journal
        # names them (an fsync per file costs several times the whole write).
        try:
            _flush(out_dir)
        except OSError as exc:
            raise _StepFailed(out_dir, "flush", exc) from None
        _fault("temporaries-written")
        journal = _Journal(
            manifest,
            tuple(
                (_beside(change.path, temporary), change.path)
                for temporary, change in zip(staged, files, strict=True)
            ),
            tuple(deletes),
        )
        _write_journal(out_dir, journal)
    except _StepFailed as exc:
        _discard(out_dir, staged, made, journal=False)
        raise OutputWriteError(exc.message, _unchanged(out_dir)) from None
    except OSError as exc:
        _discard(out_dir, staged, made, journal=False)
        where = out_dir / JOURNAL_NAME
        raise OutputWriteError(
            f"{where}: cannot write: {exc.strerror or exc}", _unchanged(out_dir)
        ) from None
    _fault("journal-written")
    progress = _Progress()
    try:
        _finish(out_dir, journal, progress, created=made)
    except _StepFailed as exc:
        if not progress.started:  # the journal is there, but nothing it lists was done
            _discard(out_dir, staged, made, journal=True)
            raise OutputWriteError(exc.message, _unchanged(out_dir)) from None
        raise _halfway(out_dir, exc, journal, progress) from None


def _unchanged(out_dir: Path) -> str:
    return f"{out_dir.as_posix()}/ was not changed"


def _halfway(
    out_dir: Path, exc: _StepFailed, journal: _Journal, progress: _Progress
) -> OutputWriteError:
    """The error of a write that stopped after its first rename or delete: what it did."""
    shown = out_dir.as_posix()
    renamed, deleted = set(progress.renamed), set(progress.deleted)
    done = [f"wrote {p}" for p in progress.renamed] + [f"deleted {p}" for p in progress.deleted]
    left = [f"write {t}" for _, t in journal.renames if t not in renamed]
    left += [f"delete {p}" for p in journal.deletes if p not in deleted]
    if not progress.manifest:
        left.append(f"update {MANIFEST_NAME}")
    return OutputWriteError(
        exc.message,
        f"{shown}/ was partly changed; the next run completes it from {shown}/{JOURNAL_NAME}",
        [
            f"{shown}/: done: {', '.join(done)}",
            f"{shown}/: not done yet: {', '.join(left)}",
            f"the next `python -m homeops_gen` (of this or any catalog) completes this write "
            f"from {shown}/{JOURNAL_NAME} first; fix the cause above, then run it",
        ],
    )


def _finish(
    out_dir: Path, journal: _Journal, progress: _Progress, created: Iterable[Path] = ()
) -> None:
    """Do what ``journal`` lists (again, where it was done): renames, deletes, the manifest.

    A temporary that is gone was renamed already. Raises :class:`_StepFailed`.
    """
    folders: dict[str, str | None] = {}
    for temporary, target in journal.renames:
        source, dest = _under(out_dir, temporary), _under(out_dir, target)
        if _obstacle(out_dir, target, folders) is not None:
            continue  # never safe to rename
        try:
            os.replace(source, dest)
        except FileNotFoundError:
            continue  # renamed before this run was interrupted
        except OSError as exc:
            raise _StepFailed(dest, "write", exc) from None
        progress.renamed.append(target)
        _fault(f"renamed-{len(progress.renamed)}")
    for path in journal.deletes:
        gone = out_dir / path
        if _obstacle(out_dir, path) is not None:
            continue
        try:
            gone.unlink(missing_ok=True)
        except OSError as exc:
            raise _StepFailed(gone, "delete", exc) from None
        progress.deleted.append(path)
        _remove_empty_parents(gone.parent, out_dir)
        _fault(f"deleted-{len(progress.deleted)}")
    try:
        _flush(out_dir)  # the renames and deletes, before the manifest and the journal's end
    except OSError as exc:
        raise _StepFailed(out_dir, "flush", exc) from None
    _fault("before-manifest")
    # Never list a file that is not there (a temporary removed by hand, say); the ones
    # this run renamed into place are.
    renamed = set(progress.renamed)
    listed = [p for p in journal.manifest if p in renamed or (out_dir / p).is_file()]
    data = render_manifest(listed)
    manifest = out_dir / MANIFEST_NAME
    current = _read(manifest)
    if current is None or not _same(current, data):
        try:
            _write_atomic(manifest, data)
        except OSError as exc:
            raise _StepFailed(manifest, "write", exc) from None
    progress.manifest = True
    _fault("manifest-written")
    try:
        (out_dir / JOURNAL_NAME).unlink(missing_ok=True)
    except OSError as exc:
        raise _StepFailed(out_dir / JOURNAL_NAME, "delete", exc) from None
    _sync_folder(out_dir)


def _discard(out_dir: Path, temporaries: Iterable[str], made: list[Path], *, journal: bool) -> None:
    """Undo a write that renamed nothing: the journal, then the temporaries and new folders."""
    with contextlib.suppress(OSError):
        if journal:
            (out_dir / JOURNAL_NAME).unlink(missing_ok=True)
            _sync_folder(out_dir)
    for temporary in temporaries:
        _unlink(temporary)
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _make_folders(folder: Path, out_dir: Path, made: list[Path]) -> None:
    """Create ``folder`` inside ``out_dir``; ``made`` collects the ones created, outermost first."""
    missing = []
    while folder != out_dir and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise _StepFailed(new, "create the folder", exc) from None
        made.append(new)


_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _stage(target: str, data: bytes, *, sync: bool = True) -> str:
    """Write ``data`` to a new temporary beside ``target`` (fsynced when ``sync``; else the
    caller flushes); the temporary's path; raises :class:`_StepFailed`."""
    folder, slash, name = target.rpartition("/")
    for _ in range(100):
        mark = "".join(_NAME_CHARACTERS[b % 37] for b in os.urandom(8))
        temporary = f"{folder}{slash}.{name}{_TEMP_MARK}{mark}.tmp"
        try:
            fd = os.open(temporary, _CREATE, 0o644)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _StepFailed(target, "write", exc) from None
    else:  # pragma: no cover - 100 collisions of 8 random characters
        raise _StepFailed(target, "write", FileExistsError(17, "no free temporary name"))
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)  # whatever the umask: the mode a generated file has
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _unlink(temporary)
        raise _StepFailed(target, "write", exc) from None
    return temporary


def _beside(path: str, temporary: str) -> str:
    """The relative path of ``temporary``, staged beside the relative ``path``."""
    folder = path.rpartition("/")[0]
    name = temporary.rpartition("/")[2]
    return f"{folder}/{name}" if folder else name


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _write_atomic(target: Path, data: bytes) -> None:
    temporary = _stage(os.fspath(target), data)
    try:
        os.replace(temporary, target)
    except OSError:
        _unlink(temporary)
        raise
    _sync_folder(target.parent)


def _flush(folder: Path) -> None:
    """Make every write so far on ``folder``'s file system durable: one ``syncfs(2)`` where
    the C library has it (Linux), else ``sync(2)``."""
    fd = os.open(folder, os.O_RDONLY | _CLOEXEC)
    try:
        syncfs = _syncfs()
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _sync_folder(folder: Path) -> None:
    """Make the renames and deletes in ``folder`` durable (where folders can be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_empty_parents(folder: Path, out_dir: Path) -> None:
    root = out_dir.resolve()
    while folder.resolve() != root and root in folder.resolve().parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: something else lives here
        folder = folder.parent


# --- what interrupted runs left --------------------------------------------------------------


def unfinished_run(out_dir: Path, known: Iterable[str] = ()) -> list[str]:
    """What interrupted writes left in ``out_dir``: its journal and temporaries, sorted.

    A temporary of an older homeops_gen (``.<name>.<random>.tmp``) counts only beside a
    file of ``known`` (planned or owned), so a file of the user's is never taken for one.
    """
    if not out_dir.is_dir():
        return []
    names = {*known, MANIFEST_NAME}
    found = [JOURNAL_NAME] if _read_journal(out_dir)[0] else []
    folders = [(os.fspath(out_dir), "")]
    while folders:
        folder, relative = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                folders.append((entry.path, f"{relative}{name}/"))
            elif (
                name.startswith(".")
                and name.endswith(".tmp")
                and entry.is_file(follow_symlinks=False)
                and _is_temporary(relative, name, names)
            ):
                found.append(relative + name)
    return sorted(found)


def _is_temporary(folder: str, name: str, known: set[str]) -> bool:
    """Whether ``name`` in ``folder`` (``""`` or ending in ``/``) is a writer's temporary."""
    if _TEMP.fullmatch(name):
        return True
    legacy = _LEGACY_TEMP.fullmatch(name)
    return legacy is not None and folder + legacy["name"] in known


def _recover(out_dir: Path, found: Sequence[str]) -> set[str]:
    """Finish (or drop) an interrupted run's journal, then remove temporaries; what it removed."""
    removed = set()
    exists, journal = _read_journal(out_dir)
    if exists and journal is not None:
        try:
            _finish(out_dir, journal, _Progress())
        except _StepFailed as exc:
            shown = out_dir.as_posix()
            raise OutputWriteError(
                f"{exc.message} (finishing the interrupted write in {shown}/{JOURNAL_NAME})",
                f"the interrupted write in {shown}/ is not finished yet; the next run goes on "
                "with it",
            ) from None
        removed.add(JOURNAL_NAME)
    elif exists:  # unreadable: it was written before the first rename, so undo the run
        try:
            (out_dir / JOURNAL_NAME).unlink()
        except OSError as exc:
            raise OutputError(
                [f"{out_dir / JOURNAL_NAME}: cannot delete: {exc.strerror or exc}"]
            ) from None
        removed.add(JOURNAL_NAME)
    for path in found:
        target = out_dir / path
        if path == JOURNAL_NAME or not target.is_file():
            continue  # a temporary the journal renamed into place
        try:
            target.unlink()
        except OSError as exc:
            raise OutputError([f"{target}: cannot delete: {exc.strerror or exc}"]) from None
        removed.add(path)
        _remove_empty_parents(target.parent, out_dir)
    return removed


def _leftovers(out_dir: Path, found: Iterable[str], *, read: bool = True) -> list[Change]:
    """``found`` (from :func:`unfinished_run`) as stale files, with what left them."""
    journal = _BAD_JOURNAL_REASON if _read_journal(out_dir)[1] is None else _JOURNAL_REASON
    return [
        Change(
            path,
            Action.DELETE,
            _read(out_dir / path) if read else None,
            None,
            journal if path == JOURNAL_NAME else _TEMP_REASON,
        )
        for path in found
    ]


def _since(before: list[Change], after: list[Change], removed: list[Change]) -> list[Change]:
    """The changes of a write that first finished an interrupted one: from what it found."""
    result = {c.path: c for c in after}
    for change in before:
        if change.action not in (Action.CREATE, Action.UPDATE, Action.DELETE):
            continue
        now = result.get(change.path)
        if now is None or now.action is Action.IDENTICAL:
            result[change.path] = dataclasses.replace(change, new=now.new if now else None)
    for change in removed:
        result.setdefault(change.path, change)
    return sorted(result.values(), key=lambda c: c.path)


def interruption_note(report: Report, out_display: str) -> str | None:
    """What interrupted runs had left in ``out/``, and what repairs it (or repaired it)."""
    reasons = [c.reason for c in report.changes]
    temporaries = reasons.count(_TEMP_REASON)
    bad = _BAD_JOURNAL_REASON in reasons
    journal = bad or _JOURNAL_REASON in reasons
    if not journal and not temporaries:
        return None
    found = []
    if journal:
        found.append("an unreadable journal" if bad else "the journal of an unfinished write")
    if temporaries:
        found.append(f"{temporaries} temporary file{'s' * (temporaries != 1)}")
    left = f"what an interrupted homeops_gen run left ({' and '.join(found)})"
    finish = journal and not bad
    if report.mode is WriteMode.WRITE:
        done = "finished that write first" if finish else "removed it (nothing had been renamed)"
        return f"{out_display}/ held {left}; this run {done}"
    repair = "finishes that write" if finish else "removes it (nothing was renamed yet)"
    if not journal:
        repair = "removes them"
    return f"{out_display}/ holds {left}; the next `python -m homeops_gen` {repair}"


# --- diffs -----------------------------------------------------------------------------------


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


# --- entry points ----------------------------------------------------------------------------


def _known(paths: Iterable[str], out_dir: Path) -> set[str]:
    return {*paths, *_owned(out_dir)}


def write_output(
    rendered: Rendered, out_dir: str | Path, *, lock_timeout: float | None = None
) -> Report:
    """Bring ``out_dir`` in line with ``rendered``, all or nothing; returns what changed.

    ``rendered`` given as a stream of ``(path, bytes)`` pairs is compared as it comes, and
    the report's identical files carry no bytes (see :func:`plan_changes`). An interrupted
    earlier write is finished first; the report counts what that did too.
    """
    from homeops_gen.report import Report

    out = Path(out_dir)
    _check_out_dir(out)
    with _locked(out, writing=True, timeout=lock_timeout):
        _fault("locked")
        if not isinstance(rendered, Mapping) and _read_journal(out)[0]:
            rendered = dict(rendered)  # finishing that write first compares twice
        if isinstance(rendered, Mapping):
            changes = _write_mapping(rendered, out)
        else:
            changes = plan_changes(rendered, out, keep=False)
            found = unfinished_run(out, _known((c.path for c in changes), out))
            if found:  # temporaries only (no journal): removing them changes no planned file
                left = _leftovers(out, found, read=False)
                removed = _recover(out, found)
                changes = _since(changes, changes, [c for c in left if c.path in removed])
            _fault("planned")
            _apply(changes, out)
    return Report(WriteMode.WRITE, tuple(changes))


def _write_mapping(rendered: Mapping[str, bytes], out: Path) -> list[Change]:
    found = unfinished_run(out, _known(rendered, out))
    before, left = None, []
    if found:  # what out/ held when this run began, to report what finishing it changes
        before, left = plan_changes(rendered, out), _leftovers(out, found, read=False)
        removed = _recover(out, found)
        left = [c for c in left if c.path in removed]
    changes = plan_changes(rendered, out)
    _fault("planned")
    _apply(changes, out)
    return changes if before is None else _since(before, changes, left)


def check_output(
    rendered: Rendered, out_dir: str | Path, *, lock_timeout: float | None = None
) -> Report:
    """Compare ``out_dir`` with ``rendered`` without writing; ``report.exit_code`` is 1 on drift.

    ``rendered`` given as a stream of ``(path, bytes)`` pairs is compared as it comes, and
    the report's identical files carry no bytes. An interrupted write's journal and
    temporaries are drift too (stale files).
    """
    from homeops_gen.report import Report

    out = Path(out_dir)
    _check_out_dir(out)
    keep = isinstance(rendered, Mapping)
    with _locked(out, writing=False, timeout=lock_timeout):
        changes = plan_changes(rendered, out, keep=keep)
        known = _known((c.path for c in changes), out)
        changes += _leftovers(out, unfinished_run(out, known))
    return Report(WriteMode.CHECK, tuple(sorted(changes, key=lambda c: c.path)))
