"""Unit tests of the writer (manifest-owned out/) and of the plan's path rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from conftest import SMALL_CATALOG, snapshot_of

from homeops_gen import registry
from homeops_gen.catalog import load_catalog_text
from homeops_gen.catalog.model import Catalog
from homeops_gen.errors import OutputError, PlanError
from homeops_gen.plan import MANIFEST_NAME, OutputFile, Text, build_plan, check_output_path
from homeops_gen.registry import Generator, register_generator
from homeops_gen.render import HEADER, _suffix
from homeops_gen.report import Report
from homeops_gen.writer import (
    _TEMP,
    JOURNAL_NAME,
    LOCK_NAME,
    Action,
    Change,
    WriteMode,
    _reserved,
    apply_changes,
    check_output,
    format_diff,
    plan_changes,
    read_manifest,
    render_manifest,
    write_output,
)


def own(out: Path, *paths: str) -> None:
    """Write a manifest that claims ``paths`` for homeops_gen."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).write_bytes(render_manifest(list(paths)))


def put(out: Path, path: str, data: bytes) -> Path:
    target = out / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def actions(changes: list[Change]) -> list[tuple[str, Action]]:
    return [(c.path, c.action) for c in changes]


# --- manifest --------------------------------------------------------------------------------


def test_render_manifest_is_header_comment_then_sorted_paths() -> None:
    assert (
        render_manifest(["z.txt", "a/b.yaml"])
        == (
            f"# {HEADER}\n"
            "# The files below are owned by homeops_gen; it deletes one when it no longer "
            "generates it.\n"
            "a/b.yaml\n"
            "z.txt\n"
        ).encode()
    )


def test_read_manifest_skips_comments_blank_lines_and_crlf(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(b"# comment\r\n\r\n  a.txt  \r\nsub/b.txt\r\n")
    assert read_manifest(tmp_path) == {"a.txt", "sub/b.txt"}


def test_read_manifest_of_missing_folder_is_empty(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "nope") == frozenset()


@pytest.mark.parametrize(
    "entry",
    [
        "../outside.txt",
        "/etc/passwd",
        "sub/../../outside.txt",
        "./a.txt",
        "a//b.txt",
        "a\\b.txt",
        MANIFEST_NAME,
    ],
)
def test_read_manifest_ignores_unsafe_entries(tmp_path: Path, entry: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(f"{entry}\nok.txt\n", encoding="utf-8")
    assert read_manifest(tmp_path) == {"ok.txt"}


def test_tampered_manifest_never_deletes_outside_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious\n")
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"also precious\n")
    out.mkdir()
    (out / MANIFEST_NAME).write_text(
        f"../outside.txt\n{victim}\nsub/../../outside.txt\n/etc/passwd\n", encoding="utf-8"
    )

    changes = plan_changes({}, out)
    assert actions(changes) == [(MANIFEST_NAME, Action.UPDATE)]

    apply_changes(changes, out)
    assert outside.read_bytes() == b"precious\n"
    assert victim.read_bytes() == b"also precious\n"
    assert Path("/etc/passwd").is_file()
    assert (out / MANIFEST_NAME).read_bytes() == render_manifest([])


def test_manifest_entry_through_symlinked_folder_never_deletes_outside_out(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "resolved.yaml"
    precious.write_bytes(b"precious\n")
    out = tmp_path / "out"
    own(out, "catalog/resolved.yaml")
    (out / "catalog").symlink_to(elsewhere, target_is_directory=True)

    write_output({}, out)

    assert precious.read_bytes() == b"precious\n"


# --- plan_changes ----------------------------------------------------------------------------


def test_plan_changes_classifies_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "identical.txt", "updated.txt", "stale/old.txt", "owned-but-gone.txt")
    put(out, "identical.txt", b"same\n")
    put(out, "updated.txt", b"old\n")
    put(out, "stale/old.txt", b"stale\n")
    put(out, "conflict.txt", b"hand written\n")
    put(out, "adopted.txt", b"equal bytes\n")  # not owned, but identical: no conflict
    put(out, "unowned-extra.txt", b"not planned, not owned\n")
    rendered = {
        "identical.txt": b"same\n",
        "updated.txt": b"new\n",
        "created/new.txt": b"fresh\n",
        "conflict.txt": b"generated\n",
        "adopted.txt": b"equal bytes\n",
    }

    changes = plan_changes(rendered, out)

    assert actions(changes) == [
        (MANIFEST_NAME, Action.UPDATE),
        ("adopted.txt", Action.IDENTICAL),
        ("conflict.txt", Action.CONFLICT),
        ("created/new.txt", Action.CREATE),
        ("identical.txt", Action.IDENTICAL),
        ("stale/old.txt", Action.DELETE),
        ("updated.txt", Action.UPDATE),
    ]
    by_path = {c.path: c for c in changes}
    assert by_path["created/new.txt"].old is None
    assert by_path["created/new.txt"].new == b"fresh\n"
    assert by_path["updated.txt"].old == b"old\n"
    assert by_path["updated.txt"].new == b"new\n"
    assert by_path["stale/old.txt"].old == b"stale\n"
    assert by_path["stale/old.txt"].new is None
    assert by_path[MANIFEST_NAME].new == render_manifest(list(rendered))


def test_plan_changes_without_out_folder_creates_everything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    changes = plan_changes({"b.txt": b"b\n", "a/x.txt": b"x\n"}, out)
    assert actions(changes) == [
        (MANIFEST_NAME, Action.CREATE),
        ("a/x.txt", Action.CREATE),
        ("b.txt", Action.CREATE),
    ]
    assert not out.exists()


def test_plan_changes_rejects_out_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"")
    with pytest.raises(OutputError) as info:
        plan_changes({"a.txt": b"a\n"}, out)
    assert info.value.lines == [f"{out}: exists and is not a directory"]


def test_crlf_only_difference_is_identical(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "a.txt")
    put(out, "a.txt", b"one\r\ntwo\r\n")
    assert actions(plan_changes({"a.txt": b"one\ntwo\n"}, out)) == [
        (MANIFEST_NAME, Action.IDENTICAL),
        ("a.txt", Action.IDENTICAL),
    ]


def test_crlf_with_real_change_is_update(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "a.txt")
    put(out, "a.txt", b"one\r\nTWO\r\n")
    changes = plan_changes({"a.txt": b"one\ntwo\n"}, out)
    assert ("a.txt", Action.UPDATE) in actions(changes)


def test_crlf_unowned_file_is_identical_not_conflict(tmp_path: Path) -> None:
    out = tmp_path / "out"
    put(out, "a.txt", b"one\r\n")
    assert ("a.txt", Action.IDENTICAL) in actions(plan_changes({"a.txt": b"one\n"}, out))


def test_owned_file_already_gone_is_not_deleted_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "gone.txt")
    assert actions(plan_changes({}, out)) == [(MANIFEST_NAME, Action.UPDATE)]


# --- apply_changes ---------------------------------------------------------------------------


def test_apply_changes_writes_through_a_sibling_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    apply_changes(plan_changes({"a.txt": b"a\n", "sub/b.txt": b"b\n"}, out), out)

    assert [dst for _, dst in replaced] == [out / "a.txt", out / "sub/b.txt", out / MANIFEST_NAME]
    for src, dst in replaced:
        assert src.parent == dst.parent
        assert src.name.startswith(f".{dst.name}.")
        assert src.name.endswith(".tmp")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        MANIFEST_NAME,
        "a.txt",
        "sub/b.txt",
    ]
    assert (out / "a.txt").read_bytes() == b"a\n"
    assert (out / "sub/b.txt").read_bytes() == b"b\n"
    assert (out / MANIFEST_NAME).read_bytes() == render_manifest(["a.txt", "sub/b.txt"])


def test_failed_write_keeps_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    own(out, "a.txt")
    put(out, "a.txt", b"old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match=r"a\.txt: cannot write: No space left on device"):
        apply_changes(plan_changes({"a.txt": b"new\n"}, out), out)

    assert (out / "a.txt").read_bytes() == b"old\n"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "a.txt"]


def test_apply_changes_writes_mode_0644(tmp_path: Path) -> None:
    out = tmp_path / "out"
    apply_changes(plan_changes({"a.txt": b"a\n"}, out), out)
    assert (out / "a.txt").stat().st_mode & 0o777 == 0o644


def test_apply_changes_deletes_stale_files_and_empty_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "keep.txt", "deep/er/stale.txt", "shared/stale.txt")
    put(out, "keep.txt", b"keep\n")
    put(out, "deep/er/stale.txt", b"stale\n")
    put(out, "shared/stale.txt", b"stale\n")
    put(out, "shared/mine.txt", b"written by hand\n")

    apply_changes(plan_changes({"keep.txt": b"keep\n"}, out), out)

    assert not (out / "deep").exists()
    assert not (out / "shared/stale.txt").exists()
    assert (out / "shared/mine.txt").read_bytes() == b"written by hand\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        MANIFEST_NAME,
        "keep.txt",
        "shared",
        "shared/mine.txt",
    ]
    assert read_manifest(out) == {"keep.txt"}


def test_apply_changes_keeps_out_itself_when_everything_is_stale(tmp_path: Path) -> None:
    out = tmp_path / "out"
    own(out, "only/file.txt")
    put(out, "only/file.txt", b"x\n")
    apply_changes(plan_changes({}, out), out)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME]


def test_apply_changes_leaves_identical_files_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered = {"a.txt": b"a\n", "crlf.txt": b"x\ny\n"}
    apply_changes(plan_changes(rendered, out), out)
    (out / "crlf.txt").write_bytes(b"x\r\ny\r\n")
    os.utime(out / "a.txt", ns=(1_000_000_000, 1_000_000_000))
    before = snapshot_of(out)

    changes = plan_changes(rendered, out)
    assert {c.action for c in changes} == {Action.IDENTICAL}
    apply_changes(changes, out)

    assert snapshot_of(out) == before


def test_conflict_raises_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    put(out, "z-user.txt", b"mine\n")
    own(out, "stale.txt")
    put(out, "stale.txt", b"stale\n")
    before = snapshot_of(out)
    changes = plan_changes({"a.txt": b"a\n", "z-user.txt": b"generated\n"}, out)
    assert ("z-user.txt", Action.CONFLICT) in actions(changes)

    with pytest.raises(OutputError) as info:
        apply_changes(changes, out)

    assert info.value.lines == [
        f"{out / 'z-user.txt'}: exists but was not generated by homeops_gen (it is not in "
        f"{MANIFEST_NAME}); move it away or delete it, then run again"
    ]
    assert snapshot_of(out) == before


@pytest.mark.parametrize("blocker", ["dir-at-path", "file-at-parent"])
def test_non_file_in_the_way_is_a_conflict_and_nothing_is_written(
    tmp_path: Path, blocker: str
) -> None:
    out = tmp_path / "out"
    if blocker == "dir-at-path":
        (out / "sub/b.txt").mkdir(parents=True)
    else:
        put(out, "sub", b"a file where a folder is needed\n")
    before = snapshot_of(out)

    with pytest.raises(OutputError):
        write_output({"a.txt": b"a\n", "sub/b.txt": b"b\n"}, out)

    assert snapshot_of(out) == before


def test_write_output_then_check_output_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered = {"a.txt": b"a\n"}

    first = write_output(rendered, out)
    assert first.mode is WriteMode.WRITE
    assert first.counts[Action.CREATE] == 2
    assert first.exit_code == 0

    clean = check_output(rendered, out)
    assert clean.mode is WriteMode.CHECK
    assert clean.exit_code == 0
    assert clean.summary("out") == "out/ is up to date (2 files)"

    (out / "a.txt").write_bytes(b"edited\n")
    before = snapshot_of(out)
    drift = check_output(rendered, out)
    assert snapshot_of(out) == before
    assert drift.exit_code == 1
    assert drift.file_lines() == ["changed: a.txt"]
    assert drift.summary("out") == (
        "out/ is out of date: 1 changed; run `python -m homeops_gen` to regenerate it"
    )


def test_report_summary_of_a_write() -> None:
    report = Report(
        WriteMode.WRITE,
        (
            Change("a", Action.CREATE, None, b""),
            Change("b", Action.UPDATE, b"", b"x"),
            Change("c", Action.DELETE, b"", None),
            Change("d", Action.IDENTICAL, b"", b""),
            Change("e", Action.IDENTICAL, b"", b""),
        ),
    )
    assert report.exit_code == 0
    assert report.file_lines() == ["create a", "update b", "delete c"]
    assert report.summary("out") == "out/: 1 created, 1 updated, 1 deleted, 2 unchanged"


def test_report_check_words() -> None:
    report = Report(
        WriteMode.CHECK,
        (
            Change("a", Action.CREATE, None, b""),
            Change("b", Action.UPDATE, b"", b"x"),
            Change("c", Action.DELETE, b"", None),
            Change("d", Action.CONFLICT, b"", b"x"),
            Change("e", Action.IDENTICAL, b"", b""),
        ),
    )
    assert report.exit_code == 1
    assert report.file_lines() == ["missing: a", "changed: b", "stale: c", "not owned: d"]
    assert report.summary("o") == (
        "o/ is out of date: 1 missing, 1 changed, 1 stale, 1 not owned; "
        "run `python -m homeops_gen` to regenerate it"
    )


# --- format_diff -----------------------------------------------------------------------------


def test_format_diff_update() -> None:
    change = Change("sub/a.txt", Action.UPDATE, b"one\ntwo\n", b"one\nTWO\n")
    assert format_diff(change, "out") == (
        "--- a/out/sub/a.txt\n+++ b/out/sub/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n"
    )


def test_format_diff_create() -> None:
    change = Change("a.txt", Action.CREATE, None, b"one\n")
    assert format_diff(change, "out") == "--- /dev/null\n+++ b/out/a.txt\n@@ -0,0 +1 @@\n+one\n"


def test_format_diff_delete() -> None:
    change = Change("a.txt", Action.DELETE, b"one\n", None)
    assert format_diff(change, "out") == "--- a/out/a.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-one\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"\xff\xfe\x00", b"text\n", "Binary files a/out/x.bin and b/out/x.bin differ\n"),
        (b"text\n", b"\x89PNG\x00", "Binary files a/out/x.bin and b/out/x.bin differ\n"),
        (None, b"\x89PNG\x00", "Binary files /dev/null and b/out/x.bin differ\n"),
        (b"\x89PNG\x00", None, "Binary files a/out/x.bin and /dev/null differ\n"),
    ],
)
def test_format_diff_binary(old: bytes | None, new: bytes | None, expected: str) -> None:
    assert format_diff(Change("x.bin", Action.UPDATE, old, new), "out") == expected


def test_format_diff_ignores_crlf_and_shows_only_the_real_change() -> None:
    old = b"".join(b"line %d\r\n" % i for i in range(1, 11)).replace(b"line 5", b"LINE 5")
    new = b"".join(b"line %d\n" % i for i in range(1, 11))
    diff = format_diff(Change("a.txt", Action.UPDATE, old, new), "out")
    assert "\r" not in diff
    changed = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-LINE 5", "+line 5"]


def test_format_diff_marks_missing_final_newline() -> None:
    change = Change("a.txt", Action.UPDATE, b"one", b"one\n")
    assert format_diff(change, "out") == (
        "--- a/out/a.txt\n+++ b/out/a.txt\n@@ -1 +1 @@\n-one\n\\ No newline at end of file\n+one\n"
    )


@pytest.mark.parametrize("separator", ["\u2028", "\x0c", "\r"])
def test_format_diff_splits_on_newline_only(separator: str) -> None:
    old = f"a{separator}b\nold\n".encode()
    new = f"a{separator}b\nnew\n".encode()
    diff = format_diff(Change("a.md", Action.UPDATE, old, new), "out")
    assert diff == (
        f"--- a/out/a.md\n+++ b/out/a.md\n@@ -1,2 +1,2 @@\n a{separator}b\n-old\n+new\n"
    )


# --- build_plan and the registry -------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog_text(SMALL_CATALOG, "services.yaml")


def emitting(*paths: str) -> Callable[[Catalog], Iterator[OutputFile]]:
    def generate(catalog: Catalog) -> Iterator[OutputFile]:
        for path in paths:
            yield OutputFile(path, Text("x\n"))

    return generate


def test_build_plan_sorts_files_and_records_the_generator(catalog: Catalog) -> None:
    plan = build_plan(
        catalog, [Generator("one", emitting("b.txt", "a.txt")), Generator("two", emitting("c"))]
    )
    assert plan.paths == ("a.txt", "b.txt", "c")
    assert [f.generator for f in plan.files] == ["one", "one", "two"]


def test_build_plan_rejects_a_path_claimed_twice(catalog: Catalog) -> None:
    generators = [
        Generator("first", emitting("same.txt")),
        Generator("second", emitting("same.txt")),
    ]
    with pytest.raises(PlanError) as info:
        build_plan(catalog, generators)
    assert info.value.lines == ["path 'same.txt' is claimed by generators 'first' and 'second'"]


def test_build_plan_rejects_a_generator_claiming_a_path_twice(catalog: Catalog) -> None:
    with pytest.raises(PlanError) as info:
        build_plan(catalog, [Generator("greedy", emitting("x.txt", "x.txt"))])
    assert info.value.lines == ["path 'x.txt' is claimed by generators 'greedy' and 'greedy'"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "must be a relative POSIX path"),
        ("", "must be a relative POSIX path"),
        ("a\\b.txt", "must be a relative POSIX path"),
        ("../up.txt", "must not contain empty, '.' or '..' segments"),
        ("a/../../b.txt", "must not contain empty, '.' or '..' segments"),
        ("a//b.txt", "must not contain empty, '.' or '..' segments"),
        ("./a.txt", "must not contain empty, '.' or '..' segments"),
        ("a/", "must not contain empty, '.' or '..' segments"),
        (MANIFEST_NAME, "is reserved for the writer's manifest"),
    ],
)
def test_build_plan_rejects_unsafe_paths(catalog: Catalog, path: str, reason: str) -> None:
    assert check_output_path(path) == reason
    with pytest.raises(PlanError) as info:
        build_plan(catalog, [Generator("bad", emitting("fine.txt", path))])
    assert info.value.lines == [f"generator 'bad': path {path!r} {reason}"]


def test_build_plan_reports_every_problem_at_once(catalog: Catalog) -> None:
    generators = [
        Generator("one", emitting("a.txt", "../x")),
        Generator("two", emitting("a.txt", "/abs")),
    ]
    with pytest.raises(PlanError) as info:
        build_plan(catalog, generators)
    assert info.value.lines == [
        "generator 'one': path '../x' must not contain empty, '.' or '..' segments",
        "path 'a.txt' is claimed by generators 'one' and 'two'",
        "generator 'two': path '/abs' must be a relative POSIX path",
    ]


@pytest.fixture
def scratch_name() -> Iterator[str]:
    name = "test-writer-scratch"
    yield name
    registry._REGISTRY.pop(name, None)


def test_registry_rejects_a_different_function_under_an_existing_name(scratch_name: str) -> None:
    first = emitting("a.txt")
    register_generator(scratch_name)(first)
    register_generator(scratch_name)(first)  # the same function again is fine (re-import)

    with pytest.raises(ValueError) as info:
        register_generator(scratch_name)(emitting("b.txt"))

    assert str(info.value) == f"a generator named {scratch_name!r} is already registered"
    assert registry._REGISTRY[scratch_name].function is first


def test_registry_rejects_shadowing_a_built_in() -> None:
    names = [g.name for g in registry.registered_generators()]
    assert "index" in names
    original = registry._REGISTRY["index"]
    with pytest.raises(ValueError, match="a generator named 'index' is already registered"):
        register_generator("index")(emitting("README.md"))
    assert registry._REGISTRY["index"] is original


def test_apply_changes_writes_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = os.umask(0o077)
    try:
        apply_changes(plan_changes({"a/b.txt": b"a\n"}, out), out)
    finally:
        os.umask(old)
    assert (out / "a/b.txt").stat().st_mode & 0o777 == 0o644


def test_the_temporaries_are_flushed_before_the_journal_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One flush of the file system stands for an fsync per file: it must come after the
    last temporary and before the journal, and again after the renames, before the
    manifest is replaced and the journal removed."""
    from homeops_gen import writer

    out = tmp_path / "out"
    own(out, "gone.txt")
    put(out, "gone.txt", b"old\n")
    events: list[str] = []
    stage, flush, journal = writer._stage, writer._flush, writer._write_journal
    real_replace = os.replace

    def staged(target: str, data: bytes, *, sync: bool = True) -> str:
        events.append(f"stage {os.path.basename(target)} sync={sync}")
        return stage(target, data, sync=sync)

    def flushed(folder: Path) -> None:
        events.append("flush")
        flush(folder)

    def journalled(folder: Path, entry: object) -> None:
        events.append("journal")
        journal(folder, entry)  # type: ignore[arg-type]

    def replaced(source: object, dest: object) -> None:
        events.append(f"replace {Path(str(dest)).name}")
        real_replace(source, dest)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_stage", staged)
    monkeypatch.setattr(writer, "_flush", flushed)
    monkeypatch.setattr(writer, "_write_journal", journalled)
    monkeypatch.setattr(os, "replace", replaced)
    apply_changes(plan_changes({"a.txt": b"a\n", "b/c.txt": b"c\n"}, out), out)
    assert events == [
        "stage a.txt sync=False",
        "stage c.txt sync=False",
        "flush",
        "journal",
        "stage .homeops_gen-journal sync=True",
        "replace a.txt",
        "replace c.txt",
        "flush",
        f"stage {MANIFEST_NAME} sync=True",
        f"replace {MANIFEST_NAME}",
    ]
    assert not (out / "gone.txt").exists()


# --- the shortcuts of the per-file name checks ---------------------------------------------

_ODD_PATHS = [
    "README.md", "docs/index.md", "a/b.tar.gz", ".hidden", "a/.hidden", "a/b.md/", "a/.",
    "a/..", "noext", "a.b/c", "trailing.", "a//b.yaml", "a/./b.sh", ".", "", "/", "x/.md",
    ".homeops_gen-manifest", ".x.homeops_gen-abcd1234.tmp", "d/.x.homeops_gen-abcd1234.tmp",
    "d/.x.homeops_gen-abcd1234.tmp/", "d/.x.homeops_gen-abcd1234.tmp/.", "a.tmp", "tmp/.tmp",
    ".y.homeops_gen-ABCD1234.tmp", ".z.homeops_gen-abc.tmp", "e/.yaml.homeops_gen-_0a1b2c3.tmp",
]  # fmt: skip


def test_the_header_suffix_is_purepath_suffix() -> None:
    paths = [*_ODD_PATHS, *build_plan(load_catalog_text(SMALL_CATALOG)).paths]
    for path in paths:
        assert _suffix(path) == PurePosixPath(path).suffix, path


def test_reserved_names_are_found_without_parsing_every_path() -> None:
    def by_the_name(path: str) -> bool:
        own = path in (MANIFEST_NAME, LOCK_NAME, JOURNAL_NAME)
        return own or bool(_TEMP.fullmatch(PurePosixPath(path).name))

    assert sum(_reserved(path) for path in _ODD_PATHS) >= 5
    for path in _ODD_PATHS:
        assert _reserved(path) == by_the_name(path), path
