"""The command line as a user meets it: names, versions, paths, options per command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import SMALL_CATALOG, run_module


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    folder = tmp_path / "homelab"
    folder.mkdir()
    (folder / "services.yaml").write_text(SMALL_CATALOG, encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    return folder


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    result = run_module("--version", cwd=tmp_path)
    assert result.code == 0
    assert result.out == f"python -m homeops_gen {metadata.version('homeops-gen')}\n"


def test_the_program_is_named_as_it_was_invoked(tmp_path: Path) -> None:
    assert run_module("--help", cwd=tmp_path).out.startswith("usage: python -m homeops_gen ")
    script = shutil.which("homeops-gen", path=str(Path(sys.executable).parent)) or shutil.which(
        "homeops-gen"
    )
    if script is None:
        pytest.skip("the homeops-gen console script is not installed (pip install -e .)")
    shown = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("usage: homeops-gen ")
    assert "python -m" not in shown.stdout


def test_the_usage_line_lists_every_option(tmp_path: Path) -> None:
    usage = run_module("--help", cwd=tmp_path).out.split("\n\n")[0]
    for option in (
        "--catalog",
        "--out",
        "--templates",
        "--quiet",
        "--no-cache",
        "--format",
        "--version",
        "--check",
        "--exit-non-zero-on-write",
    ):
        short = {"--quiet": "-q"}.get(option, option)
        assert short in usage, option


def test_the_default_out_is_beside_the_catalog_from_any_folder(proj: Path) -> None:
    elsewhere = proj.parent / "elsewhere"
    catalog = str(proj / "services.yaml")
    assert run_module("--catalog", catalog, cwd=elsewhere).code == 0
    assert (proj / "out" / "README.md").is_file()
    assert not (elsewhere / "out").exists()
    checked = run_module("--catalog", catalog, "check", cwd=elsewhere)
    assert checked.code == 0, checked.err
    assert f"{proj.as_posix()}/out/ is up to date" in checked.err


def test_paths_given_on_the_command_line_are_relative_to_the_working_folder(proj: Path) -> None:
    elsewhere = proj.parent / "elsewhere"
    (elsewhere / "tpl" / "markdown").mkdir(parents=True)
    (elsewhere / "tpl" / "markdown" / "index.md.j2").write_text("# ours\n", encoding="utf-8")
    result = run_module(
        "--catalog",
        str(proj / "services.yaml"),
        "--out",
        "gen",
        "--templates",
        "tpl",
        cwd=elsewhere,
    )
    assert result.code == 0, result.err
    assert (elsewhere / "gen" / "README.md").read_text().endswith("# ours\n")
    assert not (proj / "out").exists()


def test_a_missing_templates_folder_is_a_usage_error(proj: Path) -> None:
    result = run_module("--templates", "nope", cwd=proj)
    assert result.code == 2
    assert "--templates nope: no such folder" in result.err
    assert not (proj / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--check", "lint"], "--check does not apply to lint"),
        (["--check", "explain", "notes"], "--check does not apply to explain"),
        (["--out", "x", "lint"], "--out does not apply to lint"),
        (["--catalog", "services.yaml", "schema"], "--catalog does not apply to schema"),
        (["--no-cache", "--quiet", "explain", "notes"], "--no-cache, --quiet do not apply"),
        (["check", "--exit-non-zero-on-write"], "unrecognized arguments"),
        (["--exit-non-zero-on-write", "check"], "--exit-non-zero-on-write does not apply"),
    ],
)
def test_options_that_do_not_apply_to_a_command_are_usage_errors(
    proj: Path, args: list[str], message: str
) -> None:
    result = run_module(*args, cwd=proj)
    assert result.code == 2, result.err
    assert message in result.err
    assert "usage:" in result.err


def test_schema_and_lint_still_run_with_what_they_take(proj: Path) -> None:
    assert run_module("schema", cwd=proj).out.startswith("{")
    assert run_module("--catalog", "services.yaml", "lint", cwd=proj).code == 0


def test_explain_shows_the_backup_path_only_where_a_dump_job_writes_it(proj: Path) -> None:
    dumped = run_module("explain", "notes", cwd=proj)
    assert dumped.code == 0 and "\n  backup_path " in dumped.out
    snapshots_only = run_module("explain", "media", cwd=proj)
    assert snapshots_only.code == 0 and "backup_path" not in snapshots_only.out


def test_explained_durations_can_be_written_back_into_the_catalog(proj: Path) -> None:
    """explain prints durations as the catalog writes them (largest units first), so a
    printed value pasted into the catalog means the same."""
    catalog = proj / "services.yaml"
    text = catalog.read_text(encoding="utf-8")
    catalog.write_text(
        text.replace("    integrity: hourly\n", "    integrity: hourly\n    stale_after: 1584m\n"),
        encoding="utf-8",
    )
    shown = run_module("explain", "notes", cwd=proj)
    assert shown.code == 0, shown.err
    (row,) = [line for line in shown.out.splitlines() if line.startswith("  stale_after ")]
    printed = row.split()[1]
    assert printed == "1d2h24m"
    catalog.write_text(
        text.replace(
            "    integrity: hourly\n", f"    integrity: hourly\n    stale_after: {printed}\n"
        ),
        encoding="utf-8",
    )
    again = run_module("explain", "notes", cwd=proj)
    assert again.code == 0, again.err
    assert row in again.out.splitlines()
