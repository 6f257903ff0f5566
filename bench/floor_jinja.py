"""The plain Jinja2 floor of a generate: the same files, rendered trivially, written safely.

::

    python bench/floor_jinja.py spec TREE SPEC.json     # untimed: every file of TREE, its size
    python bench/floor_jinja.py measure TREE            # untimed: {"files": N, "bytes": B}
    python bench/floor_jinja.py render SPEC.json OUT    # the floor (timed by bench/run.py)
    python bench/floor_jinja.py render SPEC.json OUT --fsync

``render`` compiles one small Jinja2 template (static lines with one substitution each,
about as long as the median file of the spec), renders it once per file of the spec with
that file's path, pads or cuts the result to the file's exact size, and writes it to a
temporary beside its path, renamed into place (``--fsync``: the temporary fsynced first and
every folder fsynced at the end, as homeops_gen's writer does). Same paths, same file count,
same total bytes as the tree the spec was taken from; none of homeops_gen's work (loading,
validating, planning, serialising YAML, comparing with what ``out/`` holds, the manifest).
Standard library and jinja2 only.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

LINE = "{{ path }}: line {{ number }} of a plain template, nothing computed here.\n"


def tree_files(root: Path) -> list[tuple[str, int]]:
    """Every regular file below ``root`` (sorted relative POSIX path, size in bytes)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return found


def write_spec(root: Path, spec: Path) -> None:
    files = tree_files(root)
    spec.write_text(json.dumps({"files": files}), encoding="utf-8")
    print(json.dumps({"files": len(files), "bytes": sum(size for _, size in files)}))


def measure(root: Path) -> None:
    files = tree_files(root)
    print(json.dumps({"files": len(files), "bytes": sum(size for _, size in files)}))


def fit(text: str, size: int) -> bytes:
    """``text`` as ASCII bytes padded with ``#`` or cut to exactly ``size``, ending in LF."""
    data = text.encode("ascii")
    if size <= 1:
        return b"\n"[:size]
    if len(data) >= size:
        return data[: size - 1] + b"\n"
    return data + b"#" * (size - len(data) - 1) + b"\n"


def render(spec: Path, out: Path, durable: bool) -> None:
    import jinja2

    files = json.loads(spec.read_text(encoding="utf-8"))["files"]
    median = statistics.median(size for _, size in files) if files else 0
    lines = max(1, int(median) // 70)
    source = "".join(LINE.replace("{{ number }}", str(n)) for n in range(lines))
    environment = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
    template = environment.from_string(source)
    folders: set[Path] = set()
    for relative, size in files:
        target = out / relative
        if target.parent not in folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            folders.add(target.parent)
        temporary = target.with_name(f".{target.name}.floor.tmp")
        with open(temporary, "wb") as file:
            file.write(fit(template.render(path=relative), size))
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, target)
    if durable:
        for folder in sorted(folders):
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


def main(argv: Sequence[str]) -> int:
    if len(argv) == 3 and argv[0] == "spec":
        write_spec(Path(argv[1]), Path(argv[2]))
    elif len(argv) == 2 and argv[0] == "measure":
        measure(Path(argv[1]))
    elif len(argv) in (3, 4) and argv[0] == "render" and argv[3:] in ([], ["--fsync"]):
        render(Path(argv[1]), Path(argv[2]), durable=argv[3:] == ["--fsync"])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
