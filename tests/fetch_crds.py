"""Download the upstream CRDs the tests validate against, and verify them.

    python tests/fetch_crds.py                 # download into the cache folder
    python tests/fetch_crds.py --from DIR      # offline: fill the cache from a local copy
    python tests/fetch_crds.py --check         # only say whether the cache is complete

Every file is listed in ``tests/data/crds.lock.json`` with its URL at an exact upstream commit,
its size and its SHA-256. A file is written (atomically) only when its bytes match; a file
the cache already holds with the right bytes is not downloaded again. The cache folder is
``$HOMEOPS_CRD_CACHE``, else ``$XDG_CACHE_HOME/homeops_gen/crds``, else
``~/.cache/homeops_gen/crds`` (or ``--dest DIR``), laid out like ``../shared/crds``.

The files are test data read at test time, never part of the repository: several are AGPL.

Exit status: 0 every file verified, 1 a file is missing or does not match the lock (each one
named on stderr), 2 the lock or the arguments are unusable.

``HOMEOPS_CRD_BASE_URL`` replaces ``https://raw.githubusercontent.com`` in every URL; it
exists for the tests, which serve the files from a loopback HTTP server.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FETCH_COMMAND",
    "LOCK",
    "Entry",
    "LockError",
    "Report",
    "default_cache",
    "fetch",
    "load_lock",
    "main",
    "problems",
    "split_document",
]

LOCK = Path(__file__).resolve().parent / "data" / "crds.lock.json"
#: The command the tests print when no CRD set is found (run from the repository root).
FETCH_COMMAND = "python tests/fetch_crds.py"
RAW_BASE = "https://raw.githubusercontent.com"
_FORMAT = "homeops_gen-crds-lock-1"
_TIMEOUT = 30.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Entry:
    """One file of the CRD folder, as the lock describes it."""

    file: str
    repository: str
    commit: str
    path: str
    licence: str
    size: int
    sha256: str
    url: str | None = None
    #: The bundle this file is derived from (then ``url`` is None), and which document.
    split_from: str | None = None
    document: int | None = None

    def matches(self, data: bytes) -> bool:
        return len(data) == self.size and hashlib.sha256(data).hexdigest() == self.sha256


class LockError(Exception):
    """The lock file is missing or malformed."""


def load_lock(lock: Path | None = None) -> list[Entry]:
    """The entries of the lock (default ``LOCK``), checked for shape (problems: LockError)."""
    lock = LOCK if lock is None else lock
    try:
        raw = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LockError(f"{lock}: {error}") from None
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        raise LockError(f"{lock}: not a {_FORMAT} file")
    entries = []
    for number, item in enumerate(raw.get("files", [])):
        try:
            entry = Entry(
                file=str(item["file"]),
                repository=str(item["repository"]),
                commit=str(item["commit"]),
                path=str(item["path"]),
                licence=str(item["licence"]),
                size=int(item["bytes"]),
                sha256=str(item["sha256"]),
                url=item.get("url"),
                split_from=item.get("split_from"),
                document=item.get("document"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise LockError(f"{lock}: files[{number}]: {error!r}") from None
        _check_entry(lock, entry)
        entries.append(entry)
    by_file = {e.file: e for e in entries}
    if len(by_file) != len(entries):
        raise LockError(f"{lock}: a file is listed twice")
    for entry in entries:
        parent = by_file.get(entry.split_from or "")
        if entry.split_from is not None and (parent is None or parent.url is None):
            raise LockError(
                f"{lock}: {entry.file}: split_from {entry.split_from!r} is not downloaded"
            )
    return entries


def _check_entry(lock: Path, entry: Entry) -> None:
    parts = Path(entry.file).parts
    if Path(entry.file).is_absolute() or ".." in parts or not parts:
        raise LockError(f"{lock}: {entry.file!r} is not a relative path inside the CRD folder")
    if (entry.url is None) == (entry.split_from is None):
        raise LockError(f"{lock}: {entry.file}: needs exactly one of url and split_from")
    if entry.split_from is not None and not isinstance(entry.document, int):
        raise LockError(f"{lock}: {entry.file}: split_from needs a document number")


def default_cache() -> Path:
    """``$HOMEOPS_CRD_CACHE``, else ``$XDG_CACHE_HOME/homeops_gen/crds``, else ``~/.cache/...``."""
    explicit = os.environ.get("HOMEOPS_CRD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "homeops_gen" / "crds"


def problems(folder: Path, entries: Sequence[Entry] | None = None) -> list[str]:
    """What keeps ``folder`` from being the locked set: one line per bad file, sizes first."""
    found = []
    for entry in load_lock() if entries is None else entries:
        path = folder / entry.file
        try:
            size = path.stat().st_size
            if size != entry.size:
                found.append(f"{entry.file}: {size} bytes, want {entry.size}")
            elif not entry.matches(path.read_bytes()):
                found.append(f"{entry.file}: SHA-256 differs from the lock")
        except OSError as error:
            found.append(f"{entry.file}: {error.strerror or error}")
    return found


def split_document(bundle: bytes, number: int) -> bytes:
    """Document ``number`` of a kopiur bundle, with the bundle's header line before it.

    The inverse of kopiur's ``crates/xtask/src/crds.rs``: the bundle is the header, then the
    per-kind files without their header joined by ``\\n---\\n``, then one newline.
    """
    header, _, body = bundle.partition(b"\n")
    documents: list[list[bytes]] = [[]]
    for line in body.splitlines(keepends=True):
        if line == b"---\n":
            documents.append([])
        else:
            documents[-1].append(line)
    if not 0 <= number < len(documents):
        raise IndexError(f"the bundle has {len(documents)} documents, not {number + 1}")
    return header + b"\n" + b"".join(documents[number])


def _download(url: str, limit: int, timeout: float) -> bytes:
    """At most ``limit + 1`` bytes of ``url`` (enough to tell a too-long file)."""
    request = urllib.request.Request(url, headers={"User-Agent": "homeops_gen-fetch-crds/1"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        chunks, size = [], 0
        while size <= limit:
            chunk = response.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or is unchanged: a temporary beside it, fsynced, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), 0o644)  # mkstemp's 0600 is for secrets; this is data
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@dataclass
class Report:
    """What happened to each file; owns the exit code."""

    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def fail(self, entry: Entry, why: str) -> None:
        self.failed.append(f"{entry.file}: {why}")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _url(entry: Entry, base: str) -> str:
    assert entry.url is not None
    if entry.url.startswith(RAW_BASE + "/"):
        return base.rstrip("/") + entry.url[len(RAW_BASE) :]
    return entry.url


class _Source:
    """Where downloaded entries come from: a local copy, or their URLs (one dead host is
    tried once, not once per file: offline, a run fails fast instead of timing out per file)."""

    def __init__(self, folder: Path | None, base: str, timeout: float) -> None:
        self.folder, self.base, self.timeout = folder, base, timeout
        self.unreachable: dict[str, str] = {}

    def where(self, entry: Entry) -> str:
        if entry.split_from is not None:
            return f"document {entry.document} of {entry.split_from}"
        return str(self.folder / entry.file) if self.folder is not None else _url(entry, self.base)

    def read(self, entry: Entry) -> bytes:
        if self.folder is not None:
            return (self.folder / entry.file).read_bytes()
        url = _url(entry, self.base)
        host = urllib.parse.urlsplit(url).netloc
        if host in self.unreachable:
            raise OSError(f"not tried, {host} was unreachable ({self.unreachable[host]})")
        try:
            return _download(url, entry.size, self.timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            self.unreachable[host] = _describe(error)
            raise


def _mismatch(entry: Entry, data: bytes) -> str:
    if len(data) != entry.size:
        return f"got {len(data)}{'+' if len(data) > entry.size else ''} bytes, want {entry.size}"
    return f"SHA-256 {hashlib.sha256(data).hexdigest()}, want {entry.sha256}"


def _verified_bytes(path: Path, entry: Entry) -> bytes | None:
    """The bytes of ``path`` when it already holds the locked file (size checked first)."""
    try:
        if path.stat().st_size != entry.size:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if entry.matches(data) else None


def fetch(
    dest: Path,
    *,
    source: Path | None = None,
    entries: Sequence[Entry] | None = None,
    timeout: float = _TIMEOUT,
) -> Report:
    """Fill ``dest`` with every locked file whose bytes match; report the others."""
    entries = load_lock() if entries is None else entries
    origin = _Source(source, os.environ.get("HOMEOPS_CRD_BASE_URL") or RAW_BASE, timeout)
    report, verified = Report(), {}
    for entry in sorted(entries, key=lambda e: e.split_from is not None):
        target = dest / entry.file
        current = _verified_bytes(target, entry)
        if current is not None:
            report.kept.append(entry.file)
            verified[entry.file] = current
            continue
        try:
            if entry.split_from is None:
                data = origin.read(entry)
            elif entry.split_from in verified:
                data = split_document(verified[entry.split_from], entry.document or 0)
            else:
                report.fail(entry, f"not derived: {entry.split_from} did not verify")
                continue
        except (OSError, http.client.HTTPException, IndexError, ValueError) as error:
            report.fail(entry, f"cannot read {origin.where(entry)}: {_describe(error)}")
            continue
        if not entry.matches(data):
            report.fail(entry, f"refused, does not match the lock: {_mismatch(entry, data)}")
            continue
        try:
            _write_atomically(target, data)
        except OSError as error:
            report.fail(entry, f"cannot write {target}: {_describe(error)}")
            continue
        report.written.append(entry.file)
        verified[entry.file] = data
    return report


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fetch_crds.py",
        description="Download the upstream CRDs the tests validate against, verified against "
        "tests/data/crds.lock.json, into a cache folder the tests read.",
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"the folder to fill (default: {default_cache()})"
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy from a local folder laid out like ../shared/crds instead of downloading",
    )
    parser.add_argument(
        "--check", action="store_true", help="download nothing; exit 1 unless DEST is complete"
    )
    parser.add_argument("--lock", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=_TIMEOUT,
        help="seconds per download (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    dest = args.dest or default_cache()
    try:
        entries = load_lock(args.lock)
    except LockError as error:
        print(f"fetch_crds: {error}", file=sys.stderr)
        return 2
    if args.check:
        found = problems(dest, entries)
        for line in found:
            print(f"fetch_crds: {dest}: {line}", file=sys.stderr)
        if not found:
            print(f"{dest}: all {len(entries)} files match the lock")
        return 1 if found else 0
    if args.source is not None and not args.source.is_dir():
        print(f"fetch_crds: --from {args.source}: not a folder", file=sys.stderr)
        return 2
    report = fetch(dest, source=args.source, entries=entries, timeout=args.timeout)
    for line in report.failed:
        print(f"fetch_crds: {line}", file=sys.stderr)
    if report.failed:
        hint = "" if args.source else "; offline, fill it from a local copy with --from DIR"
        print(
            f"fetch_crds: {len(report.failed)} of {len(entries)} files missing from {dest}{hint}",
            file=sys.stderr,
        )
    else:
        print(
            f"{dest}: {len(entries)} files verified "
            f"({len(report.written)} written, {len(report.kept)} already there)"
        )
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
