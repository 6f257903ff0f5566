"""Shared fixtures: small inline catalogs and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeops_gen.cli import main

REPO = Path(__file__).resolve().parent.parent
# The up-to-date cache (homeops_gen/cache.py) of every CLI run in the tests, in-process or
# not, goes to a folder of this run, never to the user's home.
os.environ["HOMEOPS_GEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="homeops-gen-cache-")

#: The line of MINIMAL_HEAD that says where the runbooks are published.
RUNBOOKS_LINE = "  alerts: {runbook_base_url: https://git.example.com/homelab/runbooks}\n"
#: Settings every inline catalog starts from; services are appended by the tests.
MINIMAL_HEAD = (
    textwrap.dedent(
        """\
        version: homeops/v1
        settings:
          timezone: Etc/UTC
          nfs: {server: nas.lan, backup_root: /mnt/tank}
          pushgateway: http://pushgateway.monitoring.svc:9091
        """
    )
    + RUNBOOKS_LINE
    + "services:\n"
)

#: A small, valid catalog with one service per protection style.
SMALL_CATALOG = MINIMAL_HEAD + textwrap.indent(
    textwrap.dedent(
        """\
        - name: notes
          namespace: notes
          storage: iscsi
          churn: low
          engine: sqlite
          criticality: critical
          cadence: 6h
          integrity: hourly
          sqlite: {claim: notes-data, database: /data/notes.db}
        - name: media
          namespace: media
          storage: nfs
          churn: low
          engine: files
          offsite: {excluded: Replaceable downloads}
        """
    ),
    "  ",
)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``python -m homeops_gen ARGS`` in-process; returns exit code, stdout, stderr."""

    def run(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_module(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """Run ``python -m homeops_gen`` in a subprocess (for start-up, tracebacks, hash seeds)."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), environment.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "homeops_gen", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str], Path]:
    """A temporary project folder holding ``services.yaml`` with the given text."""

    def make(catalog_text: str = SMALL_CATALOG) -> Path:
        (tmp_path / "services.yaml").write_text(catalog_text, encoding="utf-8")
        return tmp_path

    return make


def snapshot_of(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder`` with its bytes and mtime (to prove nothing was touched)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def require_tool(name: str) -> str:
    """Path of an external program; skip locally when missing, fail under ``CI=true``."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required under CI=true (.ci/run installs it)")
    pytest.skip(f"{name} is not installed")


# The real-engine harness: importing its fixtures here makes them available to every module.
pytest.register_assert_rewrite("engines", "jobs")
from engines import (  # noqa: E402, F401
    mariadb,
    mariadb_restore,
    postgres,
    postgres_restore,
    prometheus_admin,
    pushgateway,
    redis,
    stubs,
)


def backup_stacks(stacks: Path) -> list[Path]:
    """The services' stacks in ``<out>/terraform/stacks`` (each with its backup.tf); the NAS
    monitor's stack is the one other kind."""
    return sorted(p for p in stacks.iterdir() if (p / "backup.tf").is_file())
