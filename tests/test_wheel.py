"""An installed wheel carries its templates and works outside the source tree."""

from __future__ import annotations

import os
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
    assert not any(name.startswith(("tests/", "out/")) for name in names)


def test_installed_wheel_reproduces_out_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "services.yaml").write_bytes((REPO / "services.yaml").read_bytes())
    # Only the installed copy is importable: no source tree on the path, no templates/ beside.
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-m", "homeops_gen", "-q"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import homeops_gen; print(homeops_gen.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(site))
    expected = {p.relative_to(REPO / "out") for p in (REPO / "out").rglob("*") if p.is_file()}
    produced = {p.relative_to(work / "out") for p in (work / "out").rglob("*") if p.is_file()}
    assert produced == expected
    for relative in expected:
        assert (work / "out" / relative).read_bytes() == (REPO / "out" / relative).read_bytes()
