"""One in-process generate or check, phase by phase, as the CLI runs it.

For bench/profile_generate.py (and anyone timing a phase), and, as a script, for the
benchmark's "where the time goes" table: bench/run.py measures whole processes and never
imports this module; it runs it once per catalog, as a child of its own, untimed::

    python bench/pipeline.py --catalog services.yaml --out out --check

prints, as JSON, the seconds of each import and phase, each generator's share of the plan,
and the process's peak RSS at the end of each phase. The phases run each whole before the
next (the CLI streams them file by file, so its peak memory is lower than the one seen here).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any


def _process_age() -> float | None:
    """Seconds since this process started (Linux: /proc, in clock ticks), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime") as up:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
            uptime = float(up.read().split()[0])
    except OSError:
        return None
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


#: The interpreter's start, site and the standard modules above (in 10 ms ticks).
STARTED_AFTER = _process_age()

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's homeops_gen

if TYPE_CHECKING:
    from homeops_gen import Report, WriteMode

__all__ = ["IMPORTS", "PHASES", "run_pipeline"]

#: What :func:`phase_figures` times first, in this order (in a process that had imported none).
IMPORTS = {
    "import pydantic, jinja2, ruamel.yaml": ("pydantic", "jinja2", "ruamel.yaml"),
    "import the catalog (its pydantic models)": ("homeops_gen.catalog",),
    "import the rest (generators, render, writer)": (
        "homeops_gen.registry",
        "homeops_gen.generators",
        "homeops_gen.render",
        "homeops_gen.writer",
        "homeops_gen.lint",
    ),
}
PHASES = ("load", "lint", "plan", "render", "write")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_pipeline(
    catalog_path: Path,
    out_dir: Path,
    mode: WriteMode,
    generators: dict[str, float] | None = None,
    peaks: dict[str, float] | None = None,
) -> tuple[dict[str, float], Report]:
    """Load, lint, plan, render, then write (or check) ``out_dir``; each phase's seconds.

    With ``generators``, the plan is made one generator at a time and each one's seconds
    land there; with ``peaks``, the peak RSS (MiB) at the end of each phase."""
    # As the CLI's `_run` does: the collector off for the whole pipeline (at 4,000 services
    # its passes were a fifth of an in-process load, plan and render).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _phases(catalog_path, out_dir, mode, generators, peaks)
    finally:
        if collecting:
            gc.enable()


def _phases(
    catalog_path: Path,
    out_dir: Path,
    mode: WriteMode,
    generators: dict[str, float] | None,
    peaks: dict[str, float] | None,
) -> tuple[dict[str, float], Report]:
    from homeops_gen import WriteMode, check_output, load_catalog, render_plan, write_output
    from homeops_gen.lint import lint_catalog
    from homeops_gen.plan import OutputFile, Plan, build_plan, iter_plan
    from homeops_gen.registry import registered_generators

    phases: dict[str, float] = {}
    seen = peaks if peaks is not None else {}
    start = time.perf_counter()

    def lap(phase: str) -> None:  # the phase that just ended
        nonlocal start
        now = time.perf_counter()
        phases[phase], seen[phase], start = now - start, _peak_mib(), now

    catalog = load_catalog(catalog_path)
    lap("load")
    lint_catalog(catalog)
    lap("lint")
    if generators is None:
        plan = build_plan(catalog)
    else:
        files: list[OutputFile] = []
        for generator in registered_generators():
            began = time.perf_counter()
            files += iter_plan(catalog, [generator])
            generators[generator.name] = time.perf_counter() - began
        plan = Plan(tuple(sorted(files, key=lambda f: f.path)))
        del files
    lap("plan")
    rendered = render_plan(plan)
    lap("render")
    write = write_output if mode is WriteMode.WRITE else check_output
    report = write(rendered, out_dir)
    lap("write")
    return phases, report


def phase_figures(catalog_path: Path, out_dir: Path, check: bool) -> dict[str, Any]:
    """The imports of :data:`IMPORTS`, then :func:`run_pipeline`, timed (see the docstring)."""
    import importlib

    imports: dict[str, float] = {}
    for label, modules in IMPORTS.items():
        began = time.perf_counter()
        for module in modules:
            importlib.import_module(module)
        imports[label] = time.perf_counter() - began
    peak_imported = _peak_mib()
    from homeops_gen import WriteMode

    generators: dict[str, float] = {}
    peaks: dict[str, float] = {}
    mode = WriteMode.CHECK if check else WriteMode.WRITE
    phases, report = run_pipeline(catalog_path, out_dir, mode, generators, peaks)
    return {
        "mode": "check" if check else "write",
        "started_after": STARTED_AFTER,
        "imports": imports,
        "peak_imported_mib": peak_imported,
        "phases": phases,
        "peaks_mib": peaks,
        "generators": generators,
        "drift": len(report.drift),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One pipeline run, phase by phase, as JSON.")
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--check", action="store_true", help="check out/ instead of writing")
    args = parser.parse_args(argv)
    print(json.dumps(phase_figures(args.catalog, args.out, args.check)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
