"""Compiled templates are kept between processes, and never stand in for an edited one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SMALL_CATALOG

PROBE = """
import sys
from homeops_gen.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOMEOPS_GEN_CACHE_DIR": str(cache),
        "HOMEOPS_GEN_NO_CACHE": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "services.yaml").write_text(SMALL_CATALOG, encoding="utf-8")
    return tmp_path


def test_a_second_process_loads_the_templates_the_first_compiled(proj: Path) -> None:
    cache = proj / "cache"
    first = run(proj, cache)
    assert first.returncode == 0, first.stderr
    entries = sorted((cache / "jinja").iterdir())
    assert entries, "no compiled template was kept"
    stamps = {p: p.stat().st_mtime_ns for p in entries}
    second = run(proj, cache, "--check")
    assert second.returncode == 0, second.stderr
    assert {p: p.stat().st_mtime_ns for p in sorted((cache / "jinja").iterdir())} == stamps


def test_an_edited_override_is_compiled_again(proj: Path) -> None:
    cache = proj / "cache"
    assert run(proj, cache).returncode == 0
    source = REPO / "templates" / "markdown" / "runbook.md.j2"
    assert source.is_file(), "pick another template the small catalog renders"
    override = proj / "templates" / "markdown" / "runbook.md.j2"
    override.parent.mkdir(parents=True)
    override.write_text(source.read_text(encoding="utf-8") + "\nOVERRIDE ONE\n", "utf-8")
    assert run(proj, cache).returncode == 0
    runbook = next((proj / "out").rglob("restore-*.md"))
    assert "OVERRIDE ONE" in runbook.read_text(encoding="utf-8")
    # Same name, same size, new text: Jinja's checksum of the source tells them apart.
    override.write_text(source.read_text(encoding="utf-8") + "\nOVERRIDE TWO\n", "utf-8")
    assert run(proj, cache).returncode == 0
    text = runbook.read_text(encoding="utf-8")
    assert "OVERRIDE TWO" in text and "OVERRIDE ONE" not in text


def test_a_damaged_or_unwritable_cache_only_means_compiling(proj: Path) -> None:
    cache = proj / "cache"
    assert run(proj, cache).returncode == 0
    reference = {
        p.relative_to(proj / "out"): p.read_bytes()
        for p in (proj / "out").rglob("*")
        if p.is_file()
    }
    for entry in (cache / "jinja").iterdir():
        entry.write_bytes(entry.read_bytes()[:24])  # a torn entry
    damaged = run(proj, cache, "--check")
    assert damaged.returncode == 0, damaged.stderr
    blocked = proj / "a-file"
    blocked.write_text("not a folder\n", encoding="utf-8")
    unwritable = run(proj, blocked, "--check")  # <cache>/jinja cannot be made
    assert unwritable.returncode == 0, unwritable.stderr
    assert reference == {
        p.relative_to(proj / "out"): p.read_bytes()
        for p in (proj / "out").rglob("*")
        if p.is_file()
    }
