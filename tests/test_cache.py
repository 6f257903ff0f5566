"""The up-to-date cache answers only when nothing that matters changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG, CliResult

from homeops_gen.cache import _files_below
from homeops_gen.render import COMPILED_FOLDER

#: Runs the CLI in a fresh interpreter and says whether the full pipeline ran (pydantic).
PROBE = """
import sys
from homeops_gen.cli import main
code = main(sys.argv[1:])
print("full" if "pydantic" in sys.modules else "cached", code)
"""


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "services.yaml").write_text(SMALL_CATALOG, encoding="utf-8")
    cache = tmp_path.parent / f"{tmp_path.name}-cache"
    old = os.environ.get("HOMEOPS_GEN_CACHE_DIR")
    os.environ["HOMEOPS_GEN_CACHE_DIR"] = str(cache)
    yield tmp_path
    if old is not None:
        os.environ["HOMEOPS_GEN_CACHE_DIR"] = old
    shutil.rmtree(cache, ignore_errors=True)


def run(cwd: Path, *args: str, **env: str) -> tuple[str, int, CliResult]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    how, code = lines[-1].split()
    return how, int(code), CliResult(proc.returncode, "\n".join(lines[:-1]), proc.stderr)


def test_an_unchanged_repo_is_answered_without_the_pipeline(proj: Path) -> None:
    assert run(proj, "-q")[:2] == ("full", 0)
    how, code, result = run(proj, "--check", "-q")
    assert (how, code) == ("cached", 0)
    assert "out/ is up to date" in result.err
    how, code, result = run(proj, "-q")
    assert (how, code) == ("cached", 0) and "unchanged" in result.err


def test_a_changed_catalog_runs_everything_and_finds_the_drift(proj: Path) -> None:
    run(proj, "-q")
    catalog = proj / "services.yaml"
    catalog.write_text(catalog.read_text().replace("cadence: 6h", "cadence: 4h"))
    how, code, result = run(proj, "--check", "-q")
    assert (how, code) == ("full", 1)
    assert "out/ is out of date" in result.err


@pytest.mark.parametrize("damage", ["edit", "delete", "symlinked-folder", "crlf"])
def test_a_touched_out_folder_is_checked_for_real(proj: Path, damage: str) -> None:
    run(proj, "-q")
    readme = proj / "out" / "README.md"
    if damage == "edit":
        readme.write_text(readme.read_text() + "local note\n")
    elif damage == "delete":
        (proj / "out" / "catalog" / "resolved.yaml").unlink()
    elif damage == "symlinked-folder":
        folder = proj / "out" / "catalog"
        shutil.copytree(folder, proj / "elsewhere")
        shutil.rmtree(folder)
        folder.symlink_to(proj / "elsewhere", target_is_directory=True)
    else:
        readme.write_bytes(readme.read_bytes().replace(b"\n", b"\r\n"))
    how, code, _ = run(proj, "--check", "-q")
    assert how == "full"
    assert code == (0 if damage == "crlf" else 1)  # CRLF counts as unchanged, as always


def test_a_file_whose_time_is_set_back_is_read_again(proj: Path) -> None:
    """The cache trusts a file whose status is the recorded one without reading it; an
    edit of the same size with its mtime put back still changes its ctime."""
    run(proj, "-q")
    time.sleep(0.3)  # past the racy margin: the rest of the files are trusted on status
    for entry in Path(os.environ["HOMEOPS_GEN_CACHE_DIR"]).glob("*.json"):
        entry.unlink()
    assert run(proj, "--check", "-q")[:2] == ("full", 0)  # recorded again, with old times
    assert run(proj, "--check", "-q")[:2] == ("cached", 0)
    readme = proj / "out" / "README.md"
    before = readme.stat()
    data = readme.read_bytes()
    readme.write_bytes(data.replace(b"a", b"b", 1) if b"a" in data else data[::-1])
    os.utime(readme, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert readme.stat().st_size == before.st_size
    assert readme.stat().st_mtime_ns == before.st_mtime_ns
    how, code, _ = run(proj, "--check", "-q")
    assert (how, code) == ("full", 1)


def test_a_template_override_invalidates(proj: Path) -> None:
    run(proj, "-q")
    override = proj / "templates" / "markdown"
    override.mkdir(parents=True)
    shutil.copy(REPO / "templates" / "markdown" / "index.md.j2", override / "index.md.j2")
    assert run(proj, "--check", "-q")[:2] == ("full", 0)  # same bytes: still up to date
    (override / "index.md.j2").write_text("# mine\n")
    assert run(proj, "--check", "-q")[:2] == ("full", 1)


def test_no_cache_runs_everything(proj: Path) -> None:
    run(proj, "-q")
    assert run(proj, "--check", "-q", HOMEOPS_GEN_NO_CACHE="1")[0] == "full"
    assert run(proj, "--check", "--no-cache", "-q")[0] == "full"
    assert run(proj, "--check", "-q")[0] == "cached"


def test_a_corrupt_cache_is_ignored(proj: Path) -> None:
    run(proj, "-q")
    cache = Path(os.environ["HOMEOPS_GEN_CACHE_DIR"])
    for entry in cache.glob("*.json"):
        entry.write_text("{not json")
    assert run(proj, "--check", "-q")[:2] == ("full", 0)
    assert run(proj, "--check", "-q")[:2] == ("cached", 0)


def test_lint_warnings_are_repeated_from_the_cache(proj: Path) -> None:
    head = MINIMAL_HEAD.replace("services:\n", "  snapshots: {lvm: {}}\nservices:\n")
    body = "  - {name: logs, namespace: logs, storage: proxmox-lvm, churn: high, engine: files,\n"
    body += "     snapshots: true, offsite: {excluded: Regenerable}}\n"
    (proj / "services.yaml").write_text(head + body)
    first = run(proj, "-q", "--format", "github")
    cached = run(proj, "--check", "-q", "--format", "github")
    assert (first[0], cached[0]) == ("full", "cached")
    warning = [line for line in first[2].err.splitlines() if "high-churn-snapshot" in line]
    assert warning and warning[0] in cached[2].err
    assert cached[2].out.startswith("::warning file=services.yaml,line=")


def test_a_failed_run_is_never_recorded(proj: Path) -> None:
    catalog = proj / "services.yaml"
    catalog.write_text(catalog.read_text().replace("storage: nfs", "storage: ceph"))
    assert run(proj, "-q")[:2] == ("full", 2)
    assert run(proj, "-q")[:2] == ("full", 2)
    assert not list(Path(os.environ["HOMEOPS_GEN_CACHE_DIR"]).glob("*.json"))


def test_generators_registered_by_a_caller_turn_the_cache_off(proj: Path) -> None:
    run(proj, "-q")
    script = """
import sys
from homeops_gen import OutputFile, Text, register_generator
from homeops_gen.cli import main

@register_generator("caller-notes")
def notes(catalog):
    yield OutputFile("notes.txt", Text("hello\\n"))

code = main(["--check", "-q"])
print("full" if "pydantic" in sys.modules else "cached", code)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=proj,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.splitlines()[-1].split() == ["full", "1"], proc.stderr
    assert "1 missing" in proc.stderr and "+++ b/out/notes.txt" in proc.stdout


def test_templates_behind_a_symlinked_folder_are_part_of_the_fingerprint(proj: Path) -> None:
    real = proj / "real-markdown"
    real.mkdir()
    shutil.copy(REPO / "templates" / "markdown" / "index.md.j2", real / "index.md.j2")
    (proj / "templates").mkdir()
    (proj / "templates" / "markdown").symlink_to(real, target_is_directory=True)
    assert run(proj, "-q")[:2] == ("full", 0)
    assert run(proj, "--check", "-q")[:2] == ("cached", 0)
    (real / "index.md.j2").write_text("# mine\n")
    assert run(proj, "--check", "-q")[:2] == ("full", 1)


def test_a_new_entry_point_of_an_installed_distribution_invalidates(proj: Path) -> None:
    site = proj / "site"
    dist = site / "someplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: someplugin\nVersion: 0.1\n")
    (site / "someplugin.py").write_text(
        "from homeops_gen import OutputFile, Text, register_generator\n"
        "@register_generator('someplugin')\n"
        "def generate(catalog):\n"
        "    yield OutputFile('plugin.txt', Text('from a plug-in\\n'))\n"
    )
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{site}"}
    assert run(proj, "-q", **env)[:2] == ("full", 0)
    assert run(proj, "--check", "-q", **env)[:2] == ("cached", 0)
    (dist / "entry_points.txt").write_text("[homeops_gen.generators]\nsomeplugin = someplugin\n")
    how, code, result = run(proj, "--check", "-q", **env)
    assert (how, code) == ("full", 1) and "1 missing" in result.err
    assert run(proj, "-q", **env)[:2] == ("full", 0)
    assert run(proj, "--check", "-q", **env)[:2] == ("full", 0)  # a plug-in: never cached


def test_the_time_zone_rules_read_are_checked_too(proj: Path) -> None:
    run(proj, "-q")
    (entry,) = Path(os.environ["HOMEOPS_GEN_CACHE_DIR"]).glob("*.json")
    recorded = json.loads(entry.read_text())
    assert [Path(p).name for p in recorded["read"]] == ["UTC"]  # settings.timezone Etc/UTC
    recorded["read"] = {path: "0" * 64 for path in recorded["read"]}  # as if tzdata changed
    entry.write_text(json.dumps(recorded))
    assert run(proj, "--check", "-q")[:2] == ("full", 0)


def test_the_package_hash_reads_no_compiled_templates(tmp_path: Path) -> None:
    """A wheel's compiled templates follow from what is hashed (templates, code, Jinja's
    version), so the walk leaves that top-level folder out, and only that one."""
    for name in ("cli.py", f"{COMPILED_FOLDER}/tmpl_a.py", f"sub/{COMPILED_FOLDER}/kept.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    found = [p.relative_to(tmp_path).as_posix() for p in _files_below(tmp_path, (COMPILED_FOLDER,))]
    assert found == ["cli.py", f"sub/{COMPILED_FOLDER}/kept.py"]
    everything = [p.relative_to(tmp_path).as_posix() for p in _files_below(tmp_path)]
    assert f"{COMPILED_FOLDER}/tmpl_a.py" in everything
