"""An installed wheel carries its templates and works outside the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

pytest.importorskip("hatchling", reason="building the wheel needs hatchling (test extra)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(dist),
            str(REPO),
        ],
        check=True,
    )
    (built,) = dist.glob("homeops_gen-*.whl")
    return built


def test_wheel_contains_package_templates_and_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "homeops_gen/templates/markdown/index.md.j2" in names
    assert "homeops_gen/py.typed" in names
    assert "homeops_gen/_compiled_templates/manifest.json" in names
    compiled = [n for n in names if n.startswith("homeops_gen/_compiled_templates/tmpl_")]
    templates = [p for p in (REPO / "templates").rglob("*") if p.is_file()]
    assert len(compiled) == len(templates)
    assert not any(name.startswith(("tests/", "out/")) for name in names)


def build_wheel(project: Path, dist: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(dist),
            str(project),
        ],
        check=True,
    )
    (built,) = dist.glob(project.name.replace("-", "_") + "-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the repository with only the wheel (and its
    dependencies, from the package index) installed."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    return python


def in_venv(
    python: Path, args: list[str], cwd: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra or {})
    return subprocess.run(
        [str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def files_below(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


LIBRARY_USE = """
import sys
from pathlib import Path
from ruamel.yaml import YAML
from homeops_gen import (build_plan, check_output, load_catalog, load_catalog_data,
                         load_catalog_text, registered_generators, render_plan, write_output)
import homeops_gen
assert "site-packages" in homeops_gen.__file__, homeops_gen.__file__
text = Path("services.yaml").read_text(encoding="utf-8")
from_path = render_plan(build_plan(load_catalog("services.yaml")))
from_text = render_plan(build_plan(load_catalog_text(text, "services.yaml")))
from_data = render_plan(build_plan(load_catalog_data(YAML(typ="safe").load(text))))
assert from_path == from_text == from_data
assert write_output(from_path, "library-out").exit_code == 0
assert check_output(from_path, "library-out").exit_code == 0
print(" ".join(g.name for g in registered_generators()))
"""


def test_wheel_in_a_fresh_venv_reproduces_out(venv: Path, tmp_path: Path) -> None:
    """The CLI and the library API of the installed wheel both give out/ byte for byte."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "services.yaml").write_bytes((REPO / "services.yaml").read_bytes())
    cache = tmp_path / "cache"
    cli = in_venv(venv, ["-m", "homeops_gen", "-q"], work, {"HOMEOPS_GEN_CACHE_DIR": str(cache)})
    assert cli.returncode == 0, cli.stderr
    expected = files_below(REPO / "out")
    assert files_below(work / "out") == expected
    # Every template came compiled in the wheel: none was compiled into the bytecode cache.
    assert cache.is_dir() and not any((cache / "jinja").iterdir())
    library = in_venv(venv, ["-c", LIBRARY_USE], work)
    assert library.returncode == 0, library.stderr
    assert "backup-jobs" in library.stdout.split() and "inventory" not in library.stdout
    written = files_below(work / "library-out")
    assert written == expected


def test_plugin_from_another_package_is_loaded_through_its_entry_point(
    venv: Path, tmp_path: Path
) -> None:
    plugin = build_wheel(REPO / "tests" / "plugins" / "homeops-gen-example", tmp_path / "dist")
    installed = in_venv(
        venv, ["-m", "pip", "install", "--quiet", "--no-deps", str(plugin)], tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "services.yaml").write_bytes((REPO / "services.yaml").read_bytes())
        shutil.copytree(REPO / "out", work / "out")
        check = in_venv(venv, ["-m", "homeops_gen", "--check"], work)
        assert check.returncode == 1, check.stderr
        assert "missing: inventory/backup-paths.txt" in check.stderr
        generate = in_venv(venv, ["-m", "homeops_gen", "-q"], work)
        assert generate.returncode == 0, generate.stderr
        inventory = (work / "out" / "inventory" / "backup-paths.txt").read_text()
        assert "vaultwarden\t10.0.10.15:/mnt/main/vaultwarden-backup\n" in inventory
        assert "inventory/backup-paths.txt" in (work / "out" / ".homeops_gen-manifest").read_text()
    finally:
        removed = in_venv(
            venv, ["-m", "pip", "uninstall", "--yes", "--quiet", "homeops-gen-example"], tmp_path
        )
        assert removed.returncode == 0, removed.stderr


def test_broken_plugin_is_a_clear_error(venv: Path, tmp_path: Path) -> None:
    """A plug-in that fails to import stops the run with exit 2, naming it; no traceback."""
    site = in_venv(
        venv, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    ).stdout.strip()
    dist = Path(site) / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    try:
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(
            "[homeops_gen.generators]\nbroken = no_such_module_anywhere\n"
        )
        (tmp_path / "services.yaml").write_bytes((REPO / "services.yaml").read_bytes())
        result = in_venv(venv, ["-m", "homeops_gen"], tmp_path)
        assert result.returncode == 2
        assert "plug-in 'broken' (no_such_module_anywhere)" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()
    finally:
        shutil.rmtree(dist)
