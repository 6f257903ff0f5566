"""out/ all or nothing: the lock, the journal, and what the next run does after a failure.

The faults are real: a ``python -m homeops_gen`` child kills (or stops) itself at a named
stage of the writer (``HOMEOPS_GEN_FAULT``, see ``homeops_gen.writer._fault``), a folder of
out/ is made read-only, a small tmpfs fills up. After each, the next generate of the old
catalog and of the new one must succeed, leave out/ exactly as a clean run would, and
``--check`` must then be clean.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG, CliResult, run_module, snapshot_of

from homeops_gen.catalog import load_catalog_text
from homeops_gen.errors import OutputError
from homeops_gen.plan import MANIFEST_NAME, build_plan
from homeops_gen.render import render_plan
from homeops_gen.writer import (
    JOURNAL_NAME,
    LOCK_NAME,
    Action,
    OutputWriteError,
    check_output,
    plan_changes,
    read_manifest,
    render_manifest,
    unfinished_run,
    write_output,
)

Run = Callable[..., CliResult]

OLD = SMALL_CATALOG
#: Against OLD: 3 files updated, 10 created (a new stack folder among them), 10 deleted.
NEW = MINIMAL_HEAD + textwrap.indent(
    textwrap.dedent(
        """\
        - name: wiki
          namespace: wiki
          storage: iscsi
          churn: low
          engine: sqlite
          criticality: critical
          cadence: 4h
          integrity: hourly
          sqlite: {claim: wiki-data, database: /data/wiki.db}
        - name: media
          namespace: media
          storage: nfs
          churn: low
          engine: files
          offsite: {excluded: Replaceable downloads and ISOs}
        """
    ),
    "  ",
)
NOTE = "left (the journal of an unfinished write"
TEMPORARIES_NOTE = "temporary file"


def render(text: str) -> dict[str, bytes]:
    return render_plan(build_plan(load_catalog_text(text, "services.yaml")))


RENDERED = {"old": render(OLD), "new": render(NEW)}
#: What generating NEW over OLD's out/ writes (created or changed files, the manifest aside)
#: and deletes, read off the two renders themselves.
WRITTEN = sorted(
    path
    for path, data in RENDERED["new"].items()
    if path != MANIFEST_NAME and RENDERED["old"].get(path) != data
)
WRITES = len(WRITTEN)
DELETES = len(set(RENDERED["old"]) - set(RENDERED["new"]))


def expected(which: str) -> dict[str, bytes]:
    """out/ after a clean generate of catalog ``which``: its files and the manifest, no more."""
    rendered = RENDERED[which]
    return {**rendered, MANIFEST_NAME: render_manifest(tuple(rendered))}


def tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def folders(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_dir()}


def folders_of(files: Mapping[str, bytes]) -> set[str]:
    found = set()
    for path in files:
        parts = path.split("/")[:-1]
        found.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def assert_is(out: Path, which: str) -> None:
    """out/ holds exactly what a clean run of ``which`` writes: no temporaries, no journal."""
    assert tree(out) == expected(which)
    assert folders(out) == folders_of(expected(which))


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "old.yaml").write_text(OLD, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(NEW, encoding="utf-8")
    return tmp_path


def args(proj: Path, which: str, out: Path | None = None, *more: str) -> list[str]:
    return ["--catalog", str(proj / f"{which}.yaml"), "--out", str(out or proj / "out"), *more]


def child(proj: Path, which: str, *more: str, out: Path | None = None, **env: str) -> CliResult:
    """``python -m homeops_gen`` for catalog ``which`` in a child process."""
    return run_module(*args(proj, which, out, *more), cwd=proj, env=env)


_SPAWNED: list[subprocess.Popen[str]] = []


def spawn(
    proj: Path,
    which: str,
    *more: str,
    out: Path | None = None,
    prefix: tuple[str, ...] = (),
    **env: str,
) -> subprocess.Popen[str]:
    """Start ``python -m homeops_gen`` for catalog ``which``; killed at teardown if still there.

    ``prefix`` goes before the interpreter (``strace ...``).
    """
    environment = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "homeops_gen", *args(proj, which, out, *more)],
        cwd=proj,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _SPAWNED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_stray_children() -> Iterator[None]:
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:  # a failed test left it stopped or waiting
            proc.kill()
            proc.communicate()


def generate(run_cli: Run, proj: Path, which: str, out: Path | None = None) -> CliResult:
    result = run_cli(*args(proj, which, out))
    assert result.code == 0, result.err
    return result


def check(run_cli: Run, proj: Path, which: str, out: Path | None = None) -> CliResult:
    return run_cli(*args(proj, which, out, "--check"))


def err_lines(result: CliResult) -> list[str]:
    return result.err.splitlines()


def killed_at(proj: Path, stage: str) -> CliResult:
    """Generate NEW over OLD in a child that SIGKILLs itself at ``stage``."""
    result = child(proj, "new", HOMEOPS_GEN_FAULT=stage)
    assert result.code == -signal.SIGKILL, result.err
    return result


def counts(proj: Path) -> tuple[int, int]:
    """How many renames and deletes a generate of NEW over out/ does."""
    changes = plan_changes(RENDERED["new"], proj / "out")
    writes = sum(
        c.action in (Action.CREATE, Action.UPDATE) and c.path != MANIFEST_NAME for c in changes
    )
    return writes, sum(c.action is Action.DELETE for c in changes)


def no_conflicts(out: Path) -> None:
    """Every file a killed run wrote counts as homeops_gen's (through the journal)."""
    for which in RENDERED:
        assert [
            c.path for c in plan_changes(RENDERED[which], out) if c.action is Action.CONFLICT
        ] == []


# --- killed at each stage --------------------------------------------------------------------

STAGES = [
    "temporaries-written",
    "journal-temporary",
    "journal-written",
    "renamed-1",
    "renamed-half",
    "renamed-all",
    "deleted-1",
    "before-manifest",
    "manifest-written",
]


@pytest.mark.parametrize("stage", STAGES)
def test_killed_update_is_completed_by_the_next_run_of_either_catalog(
    proj: Path, run_cli: Run, stage: str
) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    renames, deletes = counts(proj)
    assert (renames, deletes) == (WRITES, DELETES)
    fault = stage.replace("half", str(renames // 2)).replace("all", str(renames))

    killed_at(proj, fault)

    # Right after the kill: --check of either catalog says what was left, and what repairs it.
    for which in RENDERED:
        result = check(run_cli, proj, which)
        assert result.code == 1
        note = next(line for line in result.err.splitlines() if "interrupted" in line)
        if stage in ("temporaries-written", "journal-temporary"):
            assert TEMPORARIES_NOTE in note and "the next `python -m homeops_gen` removes" in note
        else:
            assert NOTE in note and "the next `python -m homeops_gen` finishes that write" in note
    no_conflicts(out)
    assert LOCK_NAME not in read_manifest(out)

    other = proj / "copy"
    shutil.copytree(out, other, symlinks=True)

    # Back to the old catalog: the interrupted write is finished (or dropped), then undone.
    result = generate(run_cli, proj, "old")
    assert "homeops_gen: " + str(out.as_posix()) + "/ held what an interrupted" in result.err
    assert_is(out, "old")
    assert check(run_cli, proj, "old").code == 0

    # On with the new catalog, from the same interrupted state.
    generate(run_cli, proj, "new", other)
    assert_is(other, "new")
    assert check(run_cli, proj, "new", other).code == 0


def test_the_run_that_finishes_a_killed_one_reports_what_that_changed(
    proj: Path, run_cli: Run
) -> None:
    generate(run_cli, proj, "old")
    killed_at(proj, "renamed-1")  # README.md is new already, the other 12 are temporaries

    result = run_cli(*args(proj, "new"), "--exit-non-zero-on-write")

    assert result.code == 1  # out/ was not up to date when this run began
    lines = err_lines(result)
    assert "update README.md" not in lines
    assert "update catalog/resolved.yaml" in lines
    assert "create terraform/stacks/wiki/backup.tf" in lines
    assert "delete terraform/stacks/notes/backup.tf" in lines
    assert f"update {MANIFEST_NAME}" in lines
    assert f"delete {JOURNAL_NAME}" in lines
    assert not [line for line in lines if line.endswith(".tmp")]  # renamed, not deleted
    old, new = (render_plan(build_plan(load_catalog_text(c))) for c in (OLD, NEW))
    same = sum(1 for path, data in new.items() if old.get(path) == data)
    created, deleted = len(set(new) - set(old)), len(set(old) - set(new))
    # Updated: what both render differently but README.md, renamed before the kill, and the
    # manifest; deleted: the old catalog's own files and the journal. Unchanged: the files
    # both catalogs render alike, and README.md.
    changed = sum(1 for p in set(new) & set(old) if new[p] != old[p] and p != "README.md")
    assert lines[-1].endswith(
        f": {created} created, {changed + 1} updated, {deleted + 1} deleted, {same + 1} unchanged"
    )
    assert_is(proj / "out", "new")


def test_killed_recovery_is_completed_by_the_run_after(proj: Path, run_cli: Run) -> None:
    generate(run_cli, proj, "old")
    killed_at(proj, "journal-written")
    # The run that finishes the interrupted write is killed halfway through it too.
    result = child(proj, "old", HOMEOPS_GEN_FAULT="renamed-2")
    assert result.code == -signal.SIGKILL, result.err
    assert check(run_cli, proj, "old").code == 1

    generate(run_cli, proj, "old")

    assert_is(proj / "out", "old")
    assert check(run_cli, proj, "old").code == 0


def test_killed_run_with_the_lock_only_leaves_nothing_in_the_way(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    before = snapshot_of(out)
    killed_at(proj, "planned")
    assert (out / LOCK_NAME).is_file()  # a dead holder's lock file: no one holds it now
    after = snapshot_of(out)
    del after[LOCK_NAME]
    assert after == before
    assert check(run_cli, proj, "old").code == 0

    generate(run_cli, proj, "new")

    assert_is(out, "new")
    assert check(run_cli, proj, "new").code == 0


@pytest.mark.parametrize("stage", ["temporaries-written", "journal-written"])
def test_check_after_a_kill_is_not_answered_from_the_cache(proj: Path, stage: str) -> None:
    """Nothing renamed yet: every file still has the content the cache recorded."""
    assert child(proj, "old").code == 0
    assert child(proj, "old", "--check").code == 0
    killed_at(proj, stage)

    result = child(proj, "old", "--check")

    assert result.code == 1, result.err
    assert "interrupted homeops_gen run" in result.err
    assert child(proj, "old").code == 0
    assert child(proj, "old", "--check").code == 0
    assert_is(proj / "out", "old")


def test_unreadable_journal_is_dropped_with_its_temporaries(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    killed_at(proj, "journal-written")
    journal = out / JOURNAL_NAME
    journal.write_bytes(journal.read_bytes()[:40])  # torn
    result = check(run_cli, proj, "old")
    assert result.code == 1
    assert (
        f"(an unreadable journal and {WRITES} temporary files); the next `python -m homeops_gen` "
        "removes it (nothing was renamed yet)"
    ) in result.err

    result = generate(run_cli, proj, "old")
    assert "this run removed it (nothing had been renamed)" in result.err

    assert_is(out, "old")  # nothing had been renamed: the old catalog's out/ as it was


def test_journal_cannot_lead_outside_out(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    outside = proj / "precious.txt"
    outside.write_bytes(b"precious\n")
    (out / JOURNAL_NAME).write_text(
        '{"format": "homeops_gen-journal-1", "manifest": ["../precious.txt"],'
        ' "renames": [], "deletes": ["../precious.txt"]}',
        encoding="utf-8",
    )

    generate(run_cli, proj, "old")

    assert outside.read_bytes() == b"precious\n"
    assert_is(out, "old")


def test_temporaries_of_older_versions_are_drift_and_removed(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    # What a killed run of the version before the journal left: .<name>.<random>.tmp
    (out / ".README.md.k2_x9abc.tmp").write_bytes(b"half a README")
    (out / "docs/.protection-matrix.md.a1b2c3d4.tmp").write_bytes(b"")
    # Not a temporary of a file homeops_gen writes: the user's, left alone.
    (out / ".notes.a1b2c3d4.tmp").write_bytes(b"mine\n")
    (out / "docs/mine.txt").write_bytes(b"mine\n")

    result = check(run_cli, proj, "old")

    assert result.code == 1
    assert "stale: .README.md.k2_x9abc.tmp" in result.err
    assert "(2 temporary files); the next `python -m homeops_gen` removes them" in result.err
    generate(run_cli, proj, "old")
    assert check(run_cli, proj, "old").code == 0
    assert tree(out) == {
        **expected("old"),
        ".notes.a1b2c3d4.tmp": b"mine\n",
        "docs/mine.txt": b"mine\n",
    }


def test_writer_files_are_never_owned(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    listed = (out / MANIFEST_NAME).read_text(encoding="utf-8")
    for name in (LOCK_NAME, JOURNAL_NAME, ".README.md.homeops_gen-abcd1234.tmp"):
        (out / MANIFEST_NAME).write_text(listed + name + "\n", encoding="utf-8")
        assert name not in read_manifest(out)
        with pytest.raises(OutputError, match="reserved for the writer's own files"):
            write_output({**RENDERED["old"], name: b"x\n"}, out)


def strace(inject: str) -> tuple[str, ...]:
    """A command prefix: strace tampers with the child's rename(2) calls (``inject=`` spec)."""
    found = shutil.which("strace")
    if found is None:
        pytest.skip("strace is not installed")
    probe = subprocess.run([found, "-qq", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr!r}")
    return (
        found,
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=/^rename",
        "-e",
        f"inject=/^rename:{inject}",
    )


@pytest.mark.parametrize("when", [2, 5, 14])
def test_killed_at_a_rename_by_strace(proj: Path, run_cli: Run, when: int) -> None:
    """No hook: killed at its n-th rename(2) (journal, files, manifest, whatever they are)."""
    out = proj / "out"
    generate(run_cli, proj, "old")
    proc = spawn(proj, "new", prefix=strace(f"signal=KILL:when={when}"))
    proc.communicate(timeout=120)
    assert proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
    other = proj / "copy"
    shutil.copytree(out, other, symlinks=True)

    generate(run_cli, proj, "old")
    assert_is(out, "old")  # no file of the killed run is left behind, unowned
    assert check(run_cli, proj, "old").code == 0
    generate(run_cli, proj, "new", other)
    assert_is(other, "new")
    assert check(run_cli, proj, "new", other).code == 0


def test_overlapping_runs_held_up_by_strace(proj: Path, run_cli: Run) -> None:
    """No hook: the first run's first rename(2) takes 6 s; the second runs meanwhile."""
    out = proj / "out"
    first = spawn(proj, "old", prefix=strace("delay_enter=6000000:when=1"))
    deadline = time.monotonic() + 60
    while not any(out.rglob("*.tmp")):  # it has planned and is writing
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = spawn(proj, "new", HOMEOPS_GEN_LOCK_TIMEOUT="60")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err

    assert_is(out, "new")  # the second wrote after the first, from what the first left
    assert check(run_cli, proj, "new").code == 0


# --- I/O errors ------------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only: chmod, or (root ignores modes) a read-only bind mount."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    if shutil.which("mount") is None:
        pytest.skip("running as root, and there is no mount(8) for a read-only bind mount")
    bound = subprocess.run(["mount", "--bind", folder, folder], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"running as root, and a bind mount is not permitted: {bound.stderr!r}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", folder], capture_output=True, check=True)
        yield
    finally:
        subprocess.run(["umount", folder], capture_output=True, check=True)


def test_read_only_folder_before_the_first_rename_changes_nothing(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    before, before_folders = snapshot_of(out), folders(out)

    with read_only(out / "docs"):
        result = child(proj, "new")

    assert result.code == 2
    assert snapshot_of(out) == before  # README.md and resolved.yaml were staged, then dropped
    assert folders(out) == before_folders
    assert "Traceback" not in result.err
    first = err_lines(result)[0]
    (first_in_docs,) = [p for p in WRITTEN if p.startswith("docs/")][:1]
    assert first.startswith(f"{out}/{first_in_docs}: cannot write: ")
    assert first.endswith(("Permission denied", "Read-only file system"))
    assert err_lines(result)[-1] == f"homeops_gen: 1 problem; {out.as_posix()}/ was not changed"
    assert check(run_cli, proj, "old").code == 0

    generate(run_cli, proj, "new")
    assert_is(out, "new")


def test_read_only_folder_after_the_first_rename_says_what_changed(
    proj: Path, run_cli: Run
) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")

    with read_only(out / "terraform/stacks/notes"):  # NEW deletes its files, writes none
        result = child(proj, "new")
        assert check(run_cli, proj, "new").code == 1

    assert result.code == 2
    assert "Traceback" not in result.err
    lines = err_lines(result)
    assert lines[0].startswith(f"{out}/terraform/stacks/notes/backup.sh: cannot delete: ")
    assert lines[1].startswith(f"{out}/: done: wrote README.md, wrote catalog/resolved.yaml, ")
    assert "deleted docs/runbooks/restore-notes.md" in lines[1]
    # What is left: every file of the old stack (deletes in path order), then the manifest.
    stack = sorted(p for p in RENDERED["old"] if p.startswith("terraform/stacks/notes/"))
    assert lines[2] == (
        f"{out}/: not done yet: "
        + ", ".join(f"delete {p}" for p in stack)
        + f", update {MANIFEST_NAME}"
    )
    assert "delete terraform/stacks/notes/integrity-check.sh" in lines[2]
    assert lines[-1] == (
        f"homeops_gen: 1 problem; {out}/ was partly changed; the next run completes it "
        f"from {out}/{JOURNAL_NAME}"
    )
    assert (out / JOURNAL_NAME).is_file()
    no_conflicts(out)

    other = proj / "copy"
    shutil.copytree(out, other, symlinks=True)
    generate(run_cli, proj, "new")
    assert_is(out, "new")
    assert check(run_cli, proj, "new").code == 0
    generate(run_cli, proj, "old", other)
    assert_is(other, "old")
    assert check(run_cli, proj, "old", other).code == 0


def test_up_to_date_read_only_out_needs_no_lock_file(proj: Path, run_cli: Run) -> None:
    """A read-only checkout: nothing to write, so no lock file to create either."""
    out = proj / "out"
    generate(run_cli, proj, "old")
    before = snapshot_of(out)

    with read_only(out):
        assert child(proj, "old", "--no-cache").code == 0
        assert child(proj, "old", "--check", "--no-cache").code == 0
        result = child(proj, "new", "--no-cache")

    assert result.code == 2
    assert err_lines(result)[0].startswith(f"{out}/README.md: cannot write: ")
    assert snapshot_of(out) == before


@pytest.fixture
def small_disk(proj: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only) with the generated folder on it."""
    disk = proj / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", disk], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr!r}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", disk], capture_output=True, check=True)


def fill(disk: Path, spare: int = 0) -> Path:
    """Fill ``disk`` up but ``spare`` pages; returns the filler (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        os.truncate(fd, max(0, os.fstat(fd).st_size - spare * 4096))
    finally:
        os.close(fd)
    return filler


def test_full_disk_before_the_first_rename_changes_nothing(
    proj: Path, run_cli: Run, small_disk: Path
) -> None:
    out = small_disk / "out"
    generate(run_cli, proj, "old", out)
    before, before_folders = snapshot_of(out), folders(out)
    # Room for a few files: enough for a writer that replaces one file at a time to replace
    # the three it updates before it runs out on the ten it creates.
    filler = fill(small_disk, spare=4)

    result = child(proj, "new", out=out)

    assert result.code == 2
    assert snapshot_of(out) == before
    assert folders(out) == before_folders
    assert "Traceback" not in result.err
    assert err_lines(result)[0].endswith(": cannot write: No space left on device")
    assert err_lines(result)[-1] == f"homeops_gen: 1 problem; {out}/ was not changed"
    assert check(run_cli, proj, "old", out).code == 0

    filler.unlink()
    generate(run_cli, proj, "new", out)
    assert_is(out, "new")


def wait_stopped(proc: subprocess.Popen[str]) -> None:
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the child did not stop itself (status {status})"


def test_full_disk_after_the_first_rename_is_completed_by_the_next_run(
    proj: Path, run_cli: Run, small_disk: Path
) -> None:
    out = small_disk / "out"
    generate(run_cli, proj, "old", out)
    # Renames and deletes done, then the disk fills up before the manifest is written.
    proc = spawn(proj, "new", out=out, HOMEOPS_GEN_FAULT="before-manifest:stop")
    wait_stopped(proc)
    filler = fill(small_disk)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 2, err
    lines = err.splitlines()
    assert lines[0] == f"{out}/{MANIFEST_NAME}: cannot write: No space left on device"
    assert lines[-1] == (
        f"homeops_gen: 1 problem; {out}/ was partly changed; the next run completes it "
        f"from {out}/{JOURNAL_NAME}"
    )
    assert check(run_cli, proj, "new", out).code == 1

    filler.unlink()
    generate(run_cli, proj, "new", out)
    assert_is(out, "new")
    assert check(run_cli, proj, "new", out).code == 0


def test_no_space_after_the_first_rename_in_process(
    proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on the second rename (portable: os.replace patched)."""
    out = proj / "out"
    write_output(RENDERED["old"], out)
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(Path(dst).relative_to(out).as_posix())
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputWriteError) as info:
        write_output(RENDERED["new"], out)
    monkeypatch.undo()

    assert calls == WRITTEN[:2] == ["README.md", "catalog/resolved.yaml"]
    assert info.value.lines[:2] == [
        f"{out}/catalog/resolved.yaml: cannot write: No space left on device",
        f"{out}/: done: wrote README.md",
    ]
    assert info.value.lines[2].startswith(
        f"{out}/: not done yet: write {WRITTEN[1]}, write {WRITTEN[2]}, "
    )
    assert info.value.outcome == (
        f"{out}/ was partly changed; the next run completes it from {out}/{JOURNAL_NAME}"
    )
    assert JOURNAL_NAME in unfinished_run(out)
    assert check_output(RENDERED["new"], out).exit_code == 1
    no_conflicts(out)

    other = proj / "copy"
    shutil.copytree(out, other, symlinks=True)
    write_output(RENDERED["old"], out)
    assert_is(out, "old")
    assert check_output(RENDERED["old"], out).exit_code == 0
    write_output(RENDERED["new"], other)
    assert_is(other, "new")
    assert check_output(RENDERED["new"], other).exit_code == 0


def test_no_space_while_writing_temporaries_in_process(
    proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on the 10th temporary (portable: os.write patched): out/ is as it was."""
    out = proj / "out"
    write_output(RENDERED["old"], out)
    before, before_folders = snapshot_of(out), folders(out)
    real_write = os.write
    writes: list[int] = []

    def write(fd: int, data: bytes | memoryview) -> int:
        writes.append(fd)
        if len(writes) == 10:  # the 10th file written, in the order of their paths
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OutputWriteError) as info:
        write_output(RENDERED["new"], out)
    monkeypatch.undo()

    assert info.value.lines == [f"{out}/{WRITTEN[9]}: cannot write: No space left on device"]
    assert info.value.outcome == f"{out.as_posix()}/ was not changed"
    assert snapshot_of(out) == before
    assert folders(out) == before_folders
    assert unfinished_run(out) == []


# --- the lock --------------------------------------------------------------------------------


@contextlib.contextmanager
def holding_the_lock(out: Path) -> Iterator[None]:
    """Hold out/'s lock as a run would (and remove the lock file as it lets go)."""
    import fcntl

    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        os.unlink(out / LOCK_NAME)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", [(), ("--check",)], ids=["generate", "check"])
def test_a_held_lock_makes_a_run_give_up_with_exit_2(
    proj: Path, run_cli: Run, mode: tuple[str, ...]
) -> None:
    out = proj / "out"
    generate(run_cli, proj, "old")
    with holding_the_lock(out):
        before = snapshot_of(out)
        started = time.monotonic()
        result = child(proj, "new", *mode, HOMEOPS_GEN_LOCK_TIMEOUT="0.5")
        waited = time.monotonic() - started
        assert snapshot_of(out) == before

    assert result.code == 2
    assert "Traceback" not in result.err
    assert err_lines(result) == [
        f"{out}: another homeops_gen run holds this folder (its lock {out}/{LOCK_NAME}); "
        "gave up after waiting 0.5 s; run again once it has finished",
        "homeops_gen: 1 problem; nothing was written",
    ]
    assert waited >= 0.5
    assert_is(out, "old")


def test_check_of_a_missing_out_creates_nothing(proj: Path, run_cli: Run) -> None:
    result = check(run_cli, proj, "old")
    assert result.code == 1
    assert not (proj / "out").exists()


def lock_opened_by(proc: subprocess.Popen[str], lock: Path, timeout: float = 30) -> None:
    """Wait until ``proc`` has the lock file open (it is then waiting for the lock)."""
    deadline = time.monotonic() + timeout
    fds = Path(f"/proc/{proc.pid}/fd")
    if not fds.is_dir():
        time.sleep(3)  # no /proc: give it time to get there
        return
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == os.path.realpath(lock) for fd in fds.iterdir()):
                return
        time.sleep(0.05)
    pytest.fail(f"{proc.args} never opened {lock}")


@pytest.mark.parametrize("second", ["waits", "gives-up"])
def test_overlapping_runs_of_two_catalogs_take_turns(proj: Path, run_cli: Run, second: str) -> None:
    """The first run stops while it holds the lock, having planned; the second comes along."""
    out = proj / "out"
    first = spawn(proj, "old", HOMEOPS_GEN_FAULT="planned:stop")
    wait_stopped(first)
    timeout = "60" if second == "waits" else "0.5"
    other = spawn(proj, "new", HOMEOPS_GEN_LOCK_TIMEOUT=timeout)
    if second == "waits":
        lock_opened_by(other, out / LOCK_NAME)
        time.sleep(0.3)
        assert other.poll() is None
    else:
        _, err = other.communicate(timeout=60)
        assert other.returncode == 2, err
        assert "another homeops_gen run holds this folder" in err
    os.kill(first.pid, signal.SIGCONT)
    first.communicate(timeout=60)
    other.communicate(timeout=60)

    assert first.returncode == 0
    if second == "waits":
        assert other.returncode == 0
        assert_is(out, "new")  # the second applied its plan on top of the first's out/
        assert check(run_cli, proj, "new").code == 0
    else:
        assert_is(out, "old")
        assert check(run_cli, proj, "old").code == 0


def test_simultaneous_runs_of_two_catalogs_leave_one_of_them(proj: Path, run_cli: Run) -> None:
    out = proj / "out"
    for _ in range(3):
        procs = {which: spawn(proj, which, "-q") for which in ("old", "new")}
        for proc in procs.values():
            proc.communicate(timeout=120)
        codes = {which: proc.returncode for which, proc in procs.items()}
        assert set(codes.values()) <= {0, 2} and 0 in codes.values(), codes
        matches = [which for which in RENDERED if tree(out) == expected(which)]
        assert len(matches) == 1, sorted(set(tree(out)) ^ set(expected("old")))
        assert check(run_cli, proj, matches[0]).code == 0


def test_a_waiting_run_goes_on_once_the_lock_is_let_go(proj: Path) -> None:
    out = proj / "out"
    out.mkdir()
    with holding_the_lock(out):
        proc = spawn(proj, "new")
        lock_opened_by(proc, out / LOCK_NAME)
        time.sleep(0.3)
        assert proc.poll() is None
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_is(out, "new")
