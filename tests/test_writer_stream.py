"""A stream of rendered files gives the same changes and the same out/ as a mapping of them.

Each scenario is set up twice, once per form; the reports (paths, actions, reasons) and the
trees left behind must agree, and a streamed identical file must carry no bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from homeops_gen.changes import Action
from homeops_gen.errors import OutputError
from homeops_gen.plan import MANIFEST_NAME
from homeops_gen.writer import JOURNAL_NAME, check_output, render_manifest, write_output

WANTED = {
    "a.txt": b"a\n",
    "deep/b.txt": b"b\n",
    "deep/er/c.yaml": b"c: 1\n",
    "same.txt": b"same\n",
    "crlf.txt": b"one\ntwo\n",
}


def own(out: Path, *paths: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).write_bytes(render_manifest(list(paths)))


def put(out: Path, path: str, data: bytes) -> None:
    (out / path).parent.mkdir(parents=True, exist_ok=True)
    (out / path).write_bytes(data)


def fresh(out: Path) -> None:
    del out


def mixed(out: Path) -> None:
    own(out, "a.txt", "same.txt", "crlf.txt", "stale.txt", "deep/gone.txt")
    put(out, "a.txt", b"old a\n")
    put(out, "same.txt", b"same\n")
    put(out, "crlf.txt", b"one\r\ntwo\r\n")
    put(out, "stale.txt", b"stale\n")
    put(out, "deep/gone.txt", b"gone\n")


def temporaries(out: Path) -> None:
    mixed(out)
    put(out, "deep/.b.txt.homeops_gen-abcdefgh.tmp", b"half\n")
    put(out, ".same.txt.0123abcd.tmp", b"legacy\n")  # beside a planned file


def journal(out: Path) -> None:
    """A killed write's journal: the renames it lists are finished first."""
    mixed(out)
    put(out, ".a.txt.homeops_gen-abcdefgh.tmp", b"a\n")
    body = (
        '{"format": "homeops_gen-journal-1", "manifest": ["a.txt", "same.txt"], '
        '"renames": [[".a.txt.homeops_gen-abcdefgh.tmp", "a.txt"]], "deletes": ["stale.txt"]}'
    )
    put(out, JOURNAL_NAME, body.encode())


def conflict(out: Path) -> None:
    put(out, "a.txt", b"mine\n")  # not in any manifest


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "fresh": fresh,
    "mixed": mixed,
    "temporaries": temporaries,
    "journal": journal,
    "conflict": conflict,
}


def stream() -> Iterator[tuple[str, bytes]]:
    yield from WANTED.items()


def tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".homeops_gen-lock"
    }


def outcome(run: Callable[[], object]) -> object:
    try:
        report = run()
    except OutputError as exc:
        return ("error", tuple(exc.lines))
    changes = report.changes  # type: ignore[attr-defined]
    return [(c.path, c.action, c.reason) for c in changes]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("mode", ["write", "check"])
def test_a_stream_and_a_mapping_agree(tmp_path: Path, scenario: str, mode: str) -> None:
    results = {}
    for form in ("mapping", "stream"):
        out = tmp_path / form / "out"
        SCENARIOS[scenario](out)
        before = tree(out) if out.is_dir() else {}
        given = dict(WANTED) if form == "mapping" else stream()
        act = write_output if mode == "write" else check_output
        report = outcome(lambda: act(given, out))  # noqa: B023
        after = tree(out) if out.is_dir() else {}
        if mode == "check":
            assert after == before
        shown = str(report).replace(str(tmp_path / form), "<tmp>")
        results[form] = (shown, after)
    assert results["stream"] == results["mapping"]


def test_a_streamed_identical_file_keeps_no_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(dict(WANTED), out)
    for act in (write_output, check_output):
        report = act(stream(), out)
        identical = [
            c for c in report.changes if c.action is Action.IDENTICAL and c.path != MANIFEST_NAME
        ]
        assert len(identical) == len(WANTED)
        assert all(c.old is None and c.new is None for c in identical), act
        assert report.exit_code == 0


def test_a_streamed_crlf_file_keeps_what_is_on_disk(tmp_path: Path) -> None:
    """What the cache records for a file left alone is what the file holds."""
    out = tmp_path / "out"
    write_output(dict(WANTED), out)
    (out / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (change,) = [c for c in check_output(stream(), out).changes if c.path == "crlf.txt"]
    assert change.action is Action.IDENTICAL and change.old == b"one\r\ntwo\r\n"


def test_a_stream_is_read_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    taken = []

    def counted() -> Iterator[tuple[str, bytes]]:
        for item in WANTED.items():
            taken.append(item[0])
            yield item

    write_output(counted(), out)
    assert sorted(taken) == sorted(WANTED)
    assert os.path.isfile(out / MANIFEST_NAME)


# --- a streamed file is let go before the next one is made ---------------------------------


def test_no_stage_holds_a_file_while_the_next_is_made(tmp_path: Path) -> None:
    """Along the CLI's chain (plan, render, the cache's digests, the comparison) a file's
    text and bytes are let go once compared: while the next file is made, the memory
    traced since the chain started holds neither the 20 MB file nor its bytes."""
    import tracemalloc
    from types import SimpleNamespace

    from conftest import SMALL_CATALOG

    from homeops_gen import load_catalog_text
    from homeops_gen.cli import _digested
    from homeops_gen.plan import OutputFile, Text, iter_plan
    from homeops_gen.render import render_stream

    size = 20 << 20
    held: list[int] = []

    def files(catalog: object) -> Iterator[OutputFile]:
        yield OutputFile("big.txt", Text("x" * size))
        held.append(tracemalloc.get_traced_memory()[0])
        yield OutputFile("small.txt", Text("y\n"))

    catalog = load_catalog_text(SMALL_CATALOG, "services.yaml")
    generators = [SimpleNamespace(name="big", function=files)]
    out = tmp_path / "out"
    write_output(render_stream(iter_plan(catalog, generators)), out)  # identical next time
    tracemalloc.start()
    try:
        report = check_output(_digested(render_stream(iter_plan(catalog, generators)), {}), out)
    finally:
        tracemalloc.stop()
    assert report.exit_code == 0
    assert len(held) == 2
    assert held[1] < size // 4, f"{held[1] >> 20} MiB held while the next file was made"
