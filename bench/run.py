"""Benchmark homeops_gen: CLI start-up, scaling with the catalog's size, and the cdk8s path.

Run from the repository root, with the project's virtualenv active::

    python bench/run.py                         # full: 10 start-up runs, 3 in-process runs
    python bench/run.py --quick                 # 3 start-up runs, 1 in-process run per size
    python bench/run.py --sizes 100,1000 --json bench.json

Only the standard library is used. Nothing in the repository is written: every generate
goes to a fresh temporary ``out/``, and homeops_gen's up-to-date cache to a temporary
``HOMEOPS_GEN_CACHE_DIR``. Sections and their targets:

1. Start-up: wall time of ``python -m homeops_gen --check -q`` (the reference catalog,
   cwd = repository root; with a warm up-to-date cache, and with ``HOMEOPS_GEN_NO_CACHE=1``)
   against the import floor of its dependencies
   (``python -c "import pydantic, jinja2, ruamel.yaml"``). Target: within 1.5x the floor.
   ``--help`` is timed as well.
2. Scaling: synthetic catalogs (:mod:`synthetic`) and the reference one, timed in-process
   phase by phase (load = parse + validate + resolve, lint, plan, render, first write into
   an empty ``out/``), then a second, no-op generate (must write zero files) and a check.
   Targets: 1,000 services generate in under 1.5 s; the time per service is flat (at the
   largest size at most 1.25x that at the smallest). Peak memory is tracemalloc's peak for
   an in-process generate and the max RSS of a ``python -m homeops_gen`` subprocess.
   Sizes above 2,000 services are timed once (three times otherwise, median reported);
   each timed run starts after ``gc.collect()`` and ``os.sync()``, so that it does not pay
   for the previous run's garbage or for the write-back of the out/ that run deleted, and
   runs with the cyclic collector off, as the CLI runs its pipeline.
3. cdk8s: ``homeops_gen.cdk8s.BackupChart`` synthesised into a temporary folder against
   ``render_plan`` of the same (reference) catalog; skipped with a note when cdk8s or the
   module is missing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "services.yaml"
sys.path.insert(1, str(REPO))  # this checkout's homeops_gen, even without an editable install

from synthetic import synthetic_catalog  # noqa: E402  (bench/ is sys.path[0])

from homeops_gen import (  # noqa: E402
    Action,
    Report,
    WriteMode,
    build_plan,
    check_output,
    load_catalog,
    render_plan,
    write_output,
)
from homeops_gen.lint import lint_catalog  # noqa: E402

STARTUP_RATIO_TARGET = 1.5
THOUSAND_TARGET_S = 1.5
FLATNESS_TARGET = 1.25
WRITE_ACTIONS = (Action.CREATE, Action.UPDATE, Action.DELETE)
PHASES = ("load", "lint", "plan", "render", "write")


# --- measurement primitives ---------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated runs, in seconds."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)


@dataclass(frozen=True)
class ProcessRun:
    seconds: float
    max_rss_mb: float
    exit_code: int


def run_process(argv: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``argv`` in the repository root; its wall time and its own peak RSS (``wait4``)."""
    environment = {**os.environ, **(env or {})}
    quiet = subprocess.DEVNULL
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, env=environment, stdout=quiet, stderr=quiet)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return ProcessRun(seconds, usage.ru_maxrss / 1024, process.returncode)  # Linux: KiB


def time_command(
    argv: Sequence[str], runs: int, env: dict[str, str] | None = None
) -> tuple[Timing, int]:
    """Wall times of ``runs`` runs after one warm-up run; the last exit code."""
    run_process(argv, env)  # warms the page cache, __pycache__ and homeops_gen's own cache
    results = [run_process(argv, env) for _ in range(runs)]
    return Timing(tuple(r.seconds for r in results)), results[-1].exit_code


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - start


def write_count(report: Report) -> int:
    """Files a run created, updated or deleted (the manifest included)."""
    counts = report.counts
    return sum(counts[action] for action in WRITE_ACTIONS)


# --- 1. start-up --------------------------------------------------------------------------


@dataclass(frozen=True)
class Startup:
    check: Timing
    check_exit: int
    check_no_cache: Timing
    floor: Timing
    floor_used_names: Timing
    help: Timing
    bare_python: Timing

    @property
    def ratio(self) -> float:
        return self.check.median / self.floor.median


def measure_startup(runs: int) -> Startup:
    python = sys.executable
    check_argv = [python, "-m", "homeops_gen", "--check", "-q"]
    check, check_exit = time_command(check_argv, runs)  # the up-to-date cache answers
    check_no_cache, _ = time_command(check_argv, runs, {"HOMEOPS_GEN_NO_CACHE": "1"})
    floor, _ = time_command([python, "-c", "import pydantic, jinja2, ruamel.yaml"], runs)
    # pydantic imports lazily: `import pydantic` alone loads little of what a catalog needs.
    used = "from pydantic import BaseModel; import jinja2; from ruamel.yaml import YAML"
    floor_used, _ = time_command([python, "-c", used], runs)
    help_timing, _ = time_command([python, "-m", "homeops_gen", "--help"], runs)
    bare, _ = time_command([python, "-c", "pass"], runs)
    return Startup(check, check_exit, check_no_cache, floor, floor_used, help_timing, bare)


# --- 2. scaling ---------------------------------------------------------------------------


@dataclass
class SizeResult:
    label: str
    services: int
    files: int = 0
    repeats: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    first_writes: int = 0
    noop_generate_s: float = 0.0
    noop_writes: int = 0
    check_s: float = 0.0
    check_exit: int = 0
    tracemalloc_peak_mb: float = 0.0
    cli_generate_s: float = 0.0
    cli_max_rss_mb: float = 0.0

    @property
    def generate_s(self) -> float:
        return sum(self.phases[name] for name in PHASES)

    @property
    def per_service_ms(self) -> float:
        return 1000 * self.generate_s / self.services


def run_pipeline(
    catalog_path: Path, out_dir: Path, mode: WriteMode
) -> tuple[dict[str, float], Report]:
    """One in-process generate (or check), as the CLI runs it; the time of each phase."""
    phases: dict[str, float] = {}
    with timed(phases, "load"):
        catalog = load_catalog(catalog_path)
    with timed(phases, "lint"):
        lint_catalog(catalog)
    with timed(phases, "plan"):
        plan = build_plan(catalog)
    with timed(phases, "render"):
        rendered = render_plan(plan)
    with timed(phases, "write"):
        write = write_output if mode is WriteMode.WRITE else check_output
        report = write(rendered, out_dir)
    return phases, report


def _fresh_pipeline(
    catalog_path: Path, out_dir: Path, mode: WriteMode
) -> tuple[dict[str, float], Report]:
    gc.collect()  # do not bill one run for the garbage of the previous one
    os.sync()  # nor for the write-back of the out/ it just deleted
    gc.disable()  # as the CLI runs its pipeline (homeops_gen/cli.py)
    try:
        return run_pipeline(catalog_path, out_dir, mode)
    finally:
        gc.enable()


@dataclass(frozen=True)
class Run:
    """One first generate, no-op generate and check, into one fresh out/."""

    phases: dict[str, float]
    files: int
    first_writes: int
    noop_s: float
    noop_writes: int
    check_s: float
    check_exit: int


def measure_once(catalog_path: Path, out: Path) -> Run:
    phases, first = _fresh_pipeline(catalog_path, out, WriteMode.WRITE)
    noop_phases, noop = _fresh_pipeline(catalog_path, out, WriteMode.WRITE)
    check_phases, check = _fresh_pipeline(catalog_path, out, WriteMode.CHECK)
    return Run(
        phases=phases,
        files=len(first.changes),
        first_writes=write_count(first),
        noop_s=sum(noop_phases.values()),
        noop_writes=write_count(noop),
        check_s=sum(check_phases.values()),
        check_exit=check.exit_code,
    )


def measure_repeats(result: SizeResult, catalog_path: Path, repeats: int) -> None:
    """Fill ``result``'s timings with the median of ``repeats`` runs, each into a new out/."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="homeops-bench-") as work:
            runs.append(measure_once(catalog_path, Path(work) / "out"))
    last = runs[-1]
    result.repeats, result.files = repeats, last.files
    result.phases = {name: statistics.median(r.phases[name] for r in runs) for name in PHASES}
    result.first_writes, result.noop_writes, result.check_exit = (
        last.first_writes,
        last.noop_writes,
        last.check_exit,
    )
    result.noop_generate_s = statistics.median(r.noop_s for r in runs)
    result.check_s = statistics.median(r.check_s for r in runs)


def measure_memory(result: SizeResult, catalog_path: Path) -> None:
    """tracemalloc's peak for one in-process generate; max RSS of one CLI generate."""
    with tempfile.TemporaryDirectory(prefix="homeops-bench-") as work:
        gc.collect()
        tracemalloc.start()
        run_pipeline(catalog_path, Path(work) / "out", WriteMode.WRITE)
        result.tracemalloc_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    with tempfile.TemporaryDirectory(prefix="homeops-bench-") as work:
        argv = [sys.executable, "-m", "homeops_gen", "--catalog", str(catalog_path)]
        run = run_process([*argv, "--out", str(Path(work) / "out"), "-q"])  # cache: a miss
        result.cli_generate_s, result.cli_max_rss_mb = run.seconds, run.max_rss_mb


def check_lint_clean(catalog_path: Path) -> None:
    """A synthetic catalog must be one the CLI would generate (no lint errors)."""
    errors = [f for f in lint_catalog(load_catalog(catalog_path)) if f.severity == "error"]
    if errors:
        raise SystemExit(f"{catalog_path}: synthetic catalog has lint errors: {errors[:3]}")


def measure_size(label: str, catalog_path: Path, services: int, repeats: int) -> SizeResult:
    print(f"  {label}: {services} services, {repeats} run(s)...", file=sys.stderr, flush=True)
    result = SizeResult(label, services)
    measure_repeats(result, catalog_path, repeats)
    measure_memory(result, catalog_path)
    return result


def measure_scaling(sizes: Sequence[int], quick: bool) -> list[SizeResult]:
    reference_count = len(load_catalog(REFERENCE).services)
    results = [measure_size("reference", REFERENCE, reference_count, 1 if quick else 3)]
    with tempfile.TemporaryDirectory(prefix="homeops-catalogs-") as folder:
        for size in sizes:
            path = Path(folder) / f"services-{size}.yaml"
            path.write_text(synthetic_catalog(size), encoding="utf-8")
            check_lint_clean(path)
            repeats = 1 if quick or size > 2000 else 3
            results.append(measure_size(f"synthetic-{size}", path, size, repeats))
    return results


# --- 3. cdk8s -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PathTiming:
    """One way of producing the manifests: first run (cold caches) and best of the runs."""

    name: str
    first_s: float
    best_s: float
    output: str


@dataclass(frozen=True)
class Cdk8sResult:
    note: str
    paths: tuple[PathTiming, ...] = ()
    import_cdk8s: Timing | None = None


def time_path(name: str, runs: int, action: Callable[[], str]) -> PathTiming:
    """Run ``action`` ``runs`` times; it returns a description of what it produced."""
    times, output = [], ""
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        output = action()
        times.append(time.perf_counter() - start)
    return PathTiming(name, times[0], min(times), output)


def _native_all(catalog: Any) -> str:
    return f"{len(render_plan(build_plan(catalog)))} files"


def _native_objects(catalog: Any) -> str:
    """Render only the plan files whose objects the cdk8s chart holds."""
    from homeops_gen.objects import is_object_file
    from homeops_gen.render import render_file

    files = [f for f in build_plan(catalog).files if is_object_file(f.path)]
    return f"{len({f.path: render_file(f) for f in files})} files"


def _synth_cdk8s(catalog: Any) -> str:
    """Synthesize BackupChart into a temporary folder; what it wrote."""
    import cdk8s

    from homeops_gen.cdk8s import BackupChart

    with tempfile.TemporaryDirectory(prefix="homeops-cdk8s-") as outdir:
        app = cdk8s.App(outdir=outdir)
        chart = BackupChart(app, "backups", catalog)
        app.synth()
        files = sum(1 for p in Path(outdir).rglob("*") if p.is_file())
        return f"{files} file(s), {len(chart.api_objects)} objects"


def measure_cdk8s(runs: int) -> Cdk8sResult:
    # jsii's Node.js runtime warns on stderr about old Node versions; not our concern here.
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    majors = ",".join(str(major) for major in range(10, 40))  # EOL warning: by major version
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", majors)
    try:
        import cdk8s  # noqa: F401

        from homeops_gen.cdk8s import BackupChart  # noqa: F401
    except Exception as exc:  # absent, or being written right now
        return Cdk8sResult(f"skipped: {type(exc).__name__}: {exc}")
    import_cdk8s, _ = time_command([sys.executable, "-c", "import cdk8s"], runs)
    catalog = load_catalog(REFERENCE)
    native = [
        time_path("native render_plan(build_plan)", runs, lambda: _native_all(catalog)),
        time_path("native, object files only", runs, lambda: _native_objects(catalog)),
    ]
    try:
        synth = time_path("cdk8s BackupChart + synth", runs, lambda: _synth_cdk8s(catalog))
    except Exception as exc:
        note = f"cdk8s synth failed: {type(exc).__name__}: {exc}"
        return Cdk8sResult(note, tuple(native), import_cdk8s)
    return Cdk8sResult(f"{runs} runs each, in-process", (*native, synth), import_cdk8s)


# --- report -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        aligned = (
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(aligned)

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _timing_row(name: str, timing: Timing, ratio: str, target: str = "", ok: str = "") -> list[str]:
    return [name, _ms(timing.median), _ms(timing.min), ratio, target, ok]


def startup_table(s: Startup, runs: int) -> str:
    floor = s.floor.median
    target = floor * STARTUP_RATIO_TARGET
    rows = [
        _timing_row(
            "python -m homeops_gen --check -q (warm cache)",
            s.check,
            f"{s.ratio:.1f}x floor",
            f"<= {_ms(target)} ({STARTUP_RATIO_TARGET}x floor)",
            verdict(s.check.median <= target),
        ),
        _timing_row(
            "  same, HOMEOPS_GEN_NO_CACHE=1 (full pipeline)",
            s.check_no_cache,
            f"{s.check_no_cache.median / floor:.1f}x floor",
            f"<= {_ms(target)}",
            verdict(s.check_no_cache.median <= target),
        ),
        _timing_row("import pydantic, jinja2, ruamel.yaml", s.floor, "1.0x (floor)"),
        _timing_row(
            "  floor with the names used (BaseModel, YAML)",
            s.floor_used_names,
            f"check = {s.check.median / s.floor_used_names.median:.1f}x this",
        ),
        _timing_row("python -m homeops_gen --help", s.help, f"{s.help.median / floor:.1f}x floor"),
        _timing_row("python -c pass", s.bare_python, f"{s.bare_python.median / floor:.1f}x floor"),
    ]
    title = f"1. CLI start-up ({runs} runs each after a warm-up; --check exit {s.check_exit})"
    headers = ["command", "median", "min", "ratio", "target", "verdict"]
    return f"{title}\n" + format_table(headers, rows)


def phase_table(results: Sequence[SizeResult]) -> str:
    headers = ["catalog", "services", "files", *PHASES, "generate", "per service"]
    headers += ["no-op gen", "no-op writes", "check", "check exit"]
    rows = [
        [
            r.label,
            r.services,
            r.files,
            *(f"{r.phases[p]:.3f}" for p in PHASES),
            f"{r.generate_s:.3f}",
            f"{r.per_service_ms:.2f} ms",
            f"{r.noop_generate_s:.3f}",
            r.noop_writes,
            f"{r.check_s:.3f}",
            r.check_exit,
        ]
        for r in results
    ]
    note = "seconds, median of the runs; generate = load+lint+plan+render+write into empty out/"
    return f"2. Scaling, in-process ({note})\n" + format_table(headers, rows)


def memory_table(results: Sequence[SizeResult]) -> str:
    headers = ["catalog", "services", "runs", "first writes", "tracemalloc peak"]
    headers += ["CLI generate wall", "CLI max RSS"]
    rows = [
        [
            r.label,
            r.services,
            r.repeats,
            r.first_writes,
            f"{r.tracemalloc_peak_mb:.1f} MiB",
            f"{r.cli_generate_s:.2f} s",
            f"{r.cli_max_rss_mb:.1f} MiB",
        ]
        for r in results
    ]
    return "   Memory and CLI (one generate each)\n" + format_table(headers, rows)


def _scaling_rows(synthetic: Sequence[SizeResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    wanted = f"< {THOUSAND_TARGET_S} s"
    for r in (r for r in synthetic if r.services == 1000):
        ok = verdict(r.generate_s < THOUSAND_TARGET_S)
        rows.append(["1,000 services generate", f"{r.generate_s:.2f} s", wanted, ok])
        ok = verdict(r.noop_generate_s < THOUSAND_TARGET_S)
        rows.append(
            ["  same, no-op generate (nothing written)", f"{r.noop_generate_s:.2f} s", wanted, ok]
        )
    if len(synthetic) >= 2:
        small, large = synthetic[0], synthetic[-1]
        ratio = large.per_service_ms / small.per_service_ms
        name = f"per service, {large.services} vs {small.services}"
        ok = verdict(ratio <= FLATNESS_TARGET)
        rows.append([name, f"{ratio:.2f}x", f"<= {FLATNESS_TARGET}x (flat)", ok])
    return rows


def scaling_targets(results: Sequence[SizeResult]) -> str:
    rows = _scaling_rows([r for r in results if r.label.startswith("synthetic")])
    for r in results:
        rows.append([f"no-op writes, {r.label}", r.noop_writes, "0", verdict(r.noop_writes == 0)])
        ok = verdict(r.check_exit == 0)
        rows.append([f"check after generate, {r.label}", f"exit {r.check_exit}", "exit 0", ok])
    return "   Targets\n" + format_table(["target", "measured", "wanted", "verdict"], rows)


def cdk8s_table(c: Cdk8sResult) -> str:
    title = "3. cdk8s vs native (reference catalog)"
    if not c.paths:
        return f"{title}: {c.note}"
    rows = [[p.name, _ms(p.first_s), _ms(p.best_s), p.output] for p in c.paths]
    if c.import_cdk8s is not None:
        timing = c.import_cdk8s
        median = f"median {_ms(timing.median)}"
        rows.append(["python -c 'import cdk8s'", "", _ms(timing.min), median])
    table = format_table(["path", "first", "best", "output"], rows)
    by_name = {p.name: p for p in c.paths}
    synth = by_name.get("cdk8s BackupChart + synth")
    if synth is None:
        return f"{title}; {c.note}\n{table}"
    ratios = [f"{synth.best_s / p.best_s:.1f}x {p.name}" for p in c.paths if p is not synth]
    return f"{title}; {c.note}\n{table}\n   cdk8s best = " + ", ".join(ratios)


# --- main ---------------------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and whether homeops_gen/ or templates/ had uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "homeops_gen", "templates"],
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown (no git)"
    dirty = len(status.stdout.splitlines())
    suffix = f" + {dirty} uncommitted file(s)" if dirty else ""
    return (commit.stdout.strip() or "unknown") + suffix


def _changed_since(before: str) -> str:
    after = code_version()
    return "" if after == before else f" at the start, {after} at the end (changed during the run)"


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark homeops_gen (see the docstring).")
    parser.add_argument("--quick", action="store_true", help="3 start-up runs, 1 run per size")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures as JSON")
    parser.add_argument(
        "--sizes", type=_sizes, default=[100, 1000, 10000], help="default: 100,1000,10000"
    )
    return parser.parse_args(argv)


def to_json(startup: Startup, scaling: Sequence[SizeResult], cdk8s: Cdk8sResult) -> dict[str, Any]:
    timings: dict[str, Any] = {
        k: {"median": v.median, "min": v.min, "runs": v.runs}
        for k, v in vars(startup).items()
        if isinstance(v, Timing)
    }
    timings |= {"check_exit": startup.check_exit, "ratio": startup.ratio}
    sizes = [
        asdict(r) | {"generate_s": r.generate_s, "per_service_ms": r.per_service_ms}
        for r in scaling
    ]
    return {"python": sys.version, "startup": timings, "scaling": sizes, "cdk8s": asdict(cdk8s)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="homeops-bench-cache-") as cache:
        os.environ["HOMEOPS_GEN_CACHE_DIR"] = cache  # never touch the user's own cache
        return run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> int:
    runs = 3 if args.quick else 10
    load_before, code_before = os.getloadavg(), code_version()
    print("measuring start-up...", file=sys.stderr, flush=True)
    startup = measure_startup(runs)
    print("measuring scaling...", file=sys.stderr, flush=True)
    scaling = measure_scaling(args.sizes, args.quick)
    cdk8s = measure_cdk8s(runs)
    tables = [startup_table(startup, runs), phase_table(scaling), memory_table(scaling)]
    print("\n\n".join([*tables, scaling_targets(scaling), cdk8s_table(cdk8s)]))
    print(
        f"\nload average (1 min) at start {load_before[0]:.2f}, at end {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs: figures from a busy machine are noisy; min is the steadier"
        f"\ncode measured: {code_before}{_changed_since(code_before)}"
    )
    if args.json is not None:
        data = to_json(startup, scaling, cdk8s)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
