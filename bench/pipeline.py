"""One in-process generate or check, phase by phase, as the CLI runs it.

For bench/profile_generate.py (and anyone timing a phase); the benchmark itself,
bench/run.py, measures whole processes only and never imports this module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's homeops_gen

from homeops_gen import (
    Report,
    WriteMode,
    build_plan,
    check_output,
    load_catalog,
    render_plan,
    write_output,
)
from homeops_gen.lint import lint_catalog

__all__ = ["PHASES", "run_pipeline"]

PHASES = ("load", "lint", "plan", "render", "write")


def run_pipeline(
    catalog_path: Path, out_dir: Path, mode: WriteMode
) -> tuple[dict[str, float], Report]:
    """Load, lint, plan, render, then write (or check) ``out_dir``; each phase's seconds."""
    phases: dict[str, float] = {}
    start = time.perf_counter()
    catalog = load_catalog(catalog_path)
    phases["load"], start = time.perf_counter() - start, time.perf_counter()
    lint_catalog(catalog)
    phases["lint"], start = time.perf_counter() - start, time.perf_counter()
    plan = build_plan(catalog)
    phases["plan"], start = time.perf_counter() - start, time.perf_counter()
    rendered = render_plan(plan)
    phases["render"], start = time.perf_counter() - start, time.perf_counter()
    write = write_output if mode is WriteMode.WRITE else check_output
    report = write(rendered, out_dir)
    phases["write"] = time.perf_counter() - start
    return phases, report
