"""Skip the work when nothing changed: a fingerprint of every input, checked before loading.

A generate or check that found ``out/`` up to date records, outside the repository (in
``$HOMEOPS_GEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/homeops_gen``, else
``~/.cache/homeops_gen``), a fingerprint of what the output depends on and the SHA-256
of every file it owns in ``out/``. The next run computes the fingerprint again; when it is
the same and every file still has its recorded content (regular files, no symlinked
folders on the way) and no interrupted write left its journal or temporaries in ``out/``,
the answer is the same and is given without importing pydantic, jinja2 or ruamel.
Anything else runs the full pipeline.

The fingerprint covers the catalog's bytes, every file of the template folders, this
package's own code and templates, the Python version, and the names of the installed
distributions (so an upgrade of a dependency or a new plug-in changes it). A run that
loaded a plug-in is never recorded: the plug-in's code is not part of the fingerprint.
Set ``HOMEOPS_GEN_NO_CACHE=1`` (or pass ``--no-cache``) to always run everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CacheHit", "cache_enabled", "input_fingerprint", "lookup", "record"]

_FORMAT = "homeops_gen-cache-1"
_METADATA = (".dist-info", ".egg-info", ".pth")


@dataclass(frozen=True)
class CacheHit:
    """What the recorded run found: how many files are up to date, and its lint output."""

    files: tuple[str, ...]
    #: The lint findings of that run: ``[file, line, column, loc, message, severity]``.
    lint: tuple[list[Any], ...]


def cache_enabled() -> bool:
    return os.environ.get("HOMEOPS_GEN_NO_CACHE", "") in ("", "0")


def cache_base() -> Path:
    """The folder of homeops_gen's caches (the up-to-date records, compiled templates)."""
    base = os.environ.get("HOMEOPS_GEN_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "homeops_gen")
    return Path(base)


def _cache_file(out_dir: Path) -> Path:
    name = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:32]
    return cache_base() / f"{name}.json"


def _files_below(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every file below ``root``, through symlinked folders too (Jinja reads through them),
    but for those in ``__pycache__`` and in the top-level folders ``skip``."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        top = folder == str(root)
        subfolders[:] = sorted(
            d for d in subfolders if d != "__pycache__" and not (top and d in skip)
        )
        found += [Path(folder) / name for name in files]
    return sorted(found)


def _hash_tree(
    digest: Any, root: Path, suffixes: tuple[str, ...] = (), skip: tuple[str, ...] = ()
) -> None:
    """The name and bytes of each file below ``root`` (of ``suffixes``, if given), but for
    the top-level folders ``skip``."""
    for path in _files_below(root, skip):
        if suffixes and path.suffix not in suffixes:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


def _distributions(digest: Any) -> None:
    """The distributions on ``sys.path``: name and version, and their entry points (plug-ins)."""
    for entry in sys.path:
        try:
            listing = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in (n for n in listing if n.endswith(_METADATA)):
            digest.update(f"{entry}/{name}\0".encode())
            with contextlib.suppress(OSError):  # no entry points (or not a folder)
                digest.update((Path(entry or ".") / name / "entry_points.txt").read_bytes())


#: The loader's limit on a catalog's size (catalog.loader.MAX_SIZE, kept here so that a
#: cache hit does not import the loader): a larger catalog is never fingerprinted.
CATALOG_LIMIT = 16 * 1024 * 1024


def input_fingerprint(catalog: Path, template_dirs: Sequence[Path]) -> str:
    """The SHA-256 of everything the output of a run depends on."""
    from homeops_gen.render import COMPILED_FOLDER, packaged_templates_dir

    digest = hashlib.sha256(_FORMAT.encode() + b"\0" + sys.version.encode() + b"\0")
    with catalog.open("rb") as file:  # no more than the loader would read (/dev/zero ...)
        data = file.read(CATALOG_LIMIT + 1)
    if len(data) > CATALOG_LIMIT:
        raise OSError(f"{catalog} is larger than the catalog limit")
    digest.update(data + b"\0")
    for folder in template_dirs:
        digest.update(b"templates\0" + str(folder).encode() + b"\0")
        if folder.is_dir():
            _hash_tree(digest, folder)
    package = Path(__file__).resolve().parent
    # A wheel's compiled templates follow from the templates, the code and the Jinja
    # version, all hashed here: reading them too would only slow every cached check.
    _hash_tree(digest, package, (".py", ".typed"), (COMPILED_FOLDER,))
    _hash_tree(digest, packaged_templates_dir())
    _distributions(digest)
    return digest.hexdigest()


#: A file whose status changed less than this before the record was taken is read again
#: (file times come from a coarse clock: a write just after the record could keep them).
_RACY_NS = 100_000_000


def _signature(info: os.stat_result) -> list[int]:
    """What changes whenever a file's bytes do: ``ctime`` is set by the kernel on every
    write, rename or ``utime`` and cannot be set back (unlike ``mtime``)."""
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def signatures(out_dir: Path, paths: Iterable[str]) -> dict[str, list[int]]:
    """The status of each file as the run left it, for :func:`record`."""
    found = {}
    for relative in paths:
        with contextlib.suppress(OSError):
            found[relative] = _signature(os.lstat(out_dir / relative))
    return found


def _unchanged(
    out_dir: Path, files: dict[str, str], status: dict[str, list[int]], taken: int
) -> bool:
    """Every recorded file is a regular file with its recorded content, reached without
    links. A file whose status is the recorded one, recorded well after its last change,
    is not read again (as Git trusts its index); any other is read and hashed."""
    base = os.fspath(out_dir)
    if not stat.S_ISDIR(os.lstat(base).st_mode):
        return False
    seen: set[str] = set()
    for relative, sha in files.items():
        cut = relative.rfind("/")
        while cut > 0 and (folder := relative[:cut]) not in seen:
            if not stat.S_ISDIR(os.lstat(f"{base}/{folder}").st_mode):
                return False
            seen.add(folder)
            cut = folder.rfind("/")
        target = f"{base}/{relative}"
        info = os.lstat(target)
        if not stat.S_ISREG(info.st_mode):
            return False
        known = status.get(relative)
        if known == _signature(info) and info.st_ctime_ns < taken - _RACY_NS:
            continue
        with open(target, "rb") as file:
            if hashlib.sha256(file.read()).hexdigest() != sha:
                return False
    return True


def _interrupted(out_dir: Path, files: Iterable[str]) -> bool:
    """An interrupted write left its journal or temporaries: ``--check`` reports them.

    Looked at after the hashes: a write that ran meanwhile either changed a file, or still
    has its journal or temporaries in ``out_dir``, or had not yet begun.
    """
    from homeops_gen.writer import unfinished_run

    return bool(unfinished_run(out_dir, files))


def digest(data: bytes) -> str:
    """What the cache records of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


_sha = digest


def lookup(fingerprint: str, out_dir: Path) -> CacheHit | None:
    """The recorded answer for ``fingerprint``, if ``out_dir`` still holds what it held."""
    try:
        entry = json.loads(_cache_file(out_dir).read_text(encoding="utf-8"))
        if entry.get("fingerprint") != fingerprint or not _unchanged(
            out_dir, entry["files"], entry.get("status", {}), entry.get("taken", 0)
        ):
            return None
        if _interrupted(out_dir, entry["files"]):
            return None
        # Files outside the project the run read, such as the time zone's rules.
        if any(_sha(Path(p).read_bytes()) != sha for p, sha in entry["read"].items()):
            return None
        return CacheHit(tuple(entry["files"]), tuple(entry["lint"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def record(
    fingerprint: str,
    out_dir: Path,
    files: Mapping[str, str],
    lint: Sequence[list[Any]],
    read: Iterable[Path] = (),
    status: Mapping[str, list[int]] | None = None,
    taken: int = 0,
) -> None:
    """Remember that ``out_dir`` held ``files`` (path: SHA-256 of its bytes, see
    :func:`digest`) for ``fingerprint``.

    ``read`` names files outside the project whose content the output depends on.
    ``status`` (from :func:`signatures`, read at ``taken``, :func:`time.time_ns`) lets the
    next lookup skip reading the files whose status has not changed since.
    Best effort: a cache that cannot be written only means a full run next time.
    """
    try:
        entry = {
            "fingerprint": fingerprint,
            "files": dict(sorted(files.items())),
            "status": dict(status or {}),
            "taken": taken,
            "lint": list(lint),
            "read": {str(path): _sha(path.read_bytes()) for path in read},
        }
        target = _cache_file(out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(partial, target)
    except OSError:
        return  # a read-only home or a vanished file: the next run is simply a full one
