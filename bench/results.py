"""The figures of one benchmark run: the runs, the targets, the report, JSON and --compare.

Standard library only, like :mod:`run`, whose parent process must stay small. A run is
saved as JSON (``run.py --json``) with every process's raw figures; :func:`from_json`
reads it back into the same objects, so that ``run.py --show OLD.json`` prints the same
report and ``--compare OLD.json`` the ratio new/old of every figure.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "Catalog",
    "Figure",
    "ProcessRun",
    "Ratio",
    "Results",
    "Target",
    "Tree",
    "compare_text",
    "evaluate_targets",
    "format_table",
    "from_json",
    "load_results",
    "phases_text",
    "report_text",
    "to_json",
    "why_text",
]

FORMAT = "homeops_gen-bench-2"


@dataclass(frozen=True)
class ProcessRun:
    """One fresh process: wall time, its own CPU time and peak RSS (``wait4``), exit code."""

    seconds: float
    cpu_seconds: float
    max_rss_mib: float
    exit_code: int
    killed: bool = False
    #: The last line the process wrote on stderr (homeops_gen's summary line).
    tail: str = ""
    #: Exit 0, not killed, and the summary line the figure expects.
    ok: bool = True


@dataclass
class Figure:
    """Every run of one command in one benchmark run."""

    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    warmup: bool
    runs: list[ProcessRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The out/ folder the latest good run left, while later commands need it.
    kept: Path | None = None

    @property
    def measured(self) -> list[ProcessRun]:
        """The runs the statistics are over: all but the first when there is a warm-up."""
        return self.runs[1:] if self.warmup and len(self.runs) > 1 else self.runs

    @property
    def first(self) -> ProcessRun | None:
        return self.runs[0] if self.warmup and len(self.runs) > 1 else None

    def stat(self, name: str = "seconds") -> tuple[float, float, float]:
        """Median, min and max of a :class:`ProcessRun` field over the measured runs."""
        values = [getattr(run, name) for run in self.measured]
        return statistics.median(values), min(values), max(values)

    @property
    def killed(self) -> bool:
        return any(run.killed for run in self.measured)

    @property
    def failed(self) -> bool:
        """A measured run went wrong other than by the timeout (its time means nothing)."""
        return any(not run.ok and not run.killed for run in self.measured)


@dataclass
class Ratio:
    """A subject's time over its floor's, pair by pair (``warmup``: the first pair apart)."""

    key: str
    warmup: bool
    all_runs: list[float] = field(default_factory=list)

    @property
    def runs(self) -> list[float]:
        return self.all_runs[1:] if self.warmup and len(self.all_runs) > 1 else self.all_runs

    @property
    def stat(self) -> tuple[float, float, float]:
        return statistics.median(self.runs), min(self.runs), max(self.runs)


@dataclass
class Tree:
    """What a generate of one catalog wrote; its Jinja floor writes the same."""

    files: int = 0
    bytes: int = 0
    spec: Path | None = None


@dataclass
class Catalog:
    label: str
    path: str  # as given to --catalog: relative to the repository root, or absolute
    services: int
    tree: Tree = field(default_factory=Tree)


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    catalogs: list[Catalog] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: ``"<catalog> <mode>"`` -> what one ``bench/pipeline.py`` run printed (its phases).
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- targets (issue 20) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    unit: str  # "x" (a ratio), "s" or "MiB"
    at_least: bool = False  # ">=" instead of "<="
    measured: float | None = None
    #: A run was killed by the timeout: the measured value is a bound, the real one worse.
    bound: bool = False
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.at_least:
            return self.measured >= self.limit
        return not self.bound and self.measured <= self.limit

    def verdict(self) -> str:
        if self.measured is None:
            return f"not measured ({self.note})"
        worse = "at least " if self.bound else ""
        if self.at_least:  # measured / limit below 1: how much faster the subject must get
            if self.met:
                return f"met ({self.measured / self.limit:.2f}x the limit)"
            return f"MISSED by {worse}{self.limit / self.measured:.2f}x"
        factor = self.measured / self.limit
        if self.met:
            return f"met ({factor:.2f}x the limit, {1 - factor:.0%} to spare)"
        return f"MISSED by {worse}{factor:.2f}x"


#: (name, limit, unit, at least, figure key, what: "ratio", "seconds" or "peak RSS")
TARGETS = (
    (
        "--check, cache warm, bundled catalog / import floor",
        1.0,
        "x",
        False,
        "bundled.check_cached",
        "ratio",
    ),
    (
        "--check, no cache, bundled catalog / import floor",
        1.5,
        "x",
        False,
        "bundled.check_no_cache",
        "ratio",
    ),
    (
        "generate 1,000 services into a fresh out/",
        1.0,
        "s",
        False,
        "synthetic-1000.generate",
        "seconds",
    ),
    (
        "  the same / plain Jinja floor (same files)",
        2.0,
        "x",
        False,
        "synthetic-1000.generate",
        "ratio",
    ),
    (
        "no-op generate (no cache), 10,000 services",
        5.0,
        "s",
        False,
        "synthetic-10000.noop",
        "seconds",
    ),
    (
        "--check (no cache), 10,000 services",
        5.0,
        "s",
        False,
        "synthetic-10000.check_no_cache",
        "seconds",
    ),
    (
        "peak RSS of --check (no cache), 10,000 services",
        250.0,
        "MiB",
        False,
        "synthetic-10000.check_no_cache",
        "peak RSS",
    ),
    ("cdk8s synth / native generate (whole process)", 5.0, "x", True, "cdk8s.synth", "ratio"),
)


def _target(results: Results, row: tuple[Any, ...]) -> Target:
    name, limit, unit, at_least, key, what = row
    figure = results.figures.get(key)
    ratio = results.ratios.get(key)
    if figure is None or not figure.measured:
        return Target(name, limit, unit, at_least, note="not in this run: see --sizes")
    if figure.failed:
        return Target(name, limit, unit, at_least, note="a run failed, see the notes")
    if what == "ratio":
        if ratio is None or not ratio.runs:
            return Target(name, limit, unit, at_least, note="no floor was measured")
        value = ratio.stat[0]
    elif what == "seconds":
        value = figure.stat()[0]
    else:
        value = figure.stat("max_rss_mib")[2]
    return Target(name, limit, unit, at_least, value, figure.killed)


def evaluate_targets(results: Results) -> list[Target]:
    """Each target: the median (of times, or of per-pair ratios), or the peak RSS."""
    return [_target(results, row) for row in TARGETS]


# --- the report --------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        aligned = (
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(aligned).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def seconds_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def span_text(low: float, high: float) -> str:
    """``204-706 ms``, ``3.53-5.05 s`` or ``706 ms-1.05 s``."""
    if high < 1:
        return f"{low * 1000:.0f}-{high * 1000:.0f} ms"
    if low >= 1:
        return f"{low:.2f}-{high:.2f} s"
    return f"{seconds_text(low)}-{seconds_text(high)}"


def ratio_text(ratio: Ratio | None) -> str:
    if ratio is None or not ratio.runs:
        return ""
    median, low, high = ratio.stat
    return f"{median:.2f}x [{low:.2f}-{high:.2f}]"


FIGURE_HEADERS = ["figure", "runs", "first", "median", "min-max", "cpu", "peak RSS", "vs floor"]


def figure_row(results: Results, figure: Figure, indent: str = "") -> list[object]:
    if not figure.measured:
        return [indent + figure.label, 0, "", "", "", "", "", "(see the notes)"]
    median, low, high = figure.stat()
    first = figure.first
    bad = sum(1 for run in figure.measured if not run.ok)
    flag = f"  {bad} bad run(s)" if bad else ""
    return [
        indent + figure.label,
        len(figure.measured),
        seconds_text(first.seconds) if first else "",
        seconds_text(median),
        span_text(low, high),
        seconds_text(figure.stat("cpu_seconds")[0]),
        f"{figure.stat('max_rss_mib')[2]:.0f} MiB",
        ratio_text(results.ratios.get(figure.key)) + flag,
    ]


def figures_table(results: Results, prefix: str) -> str:
    """The figures whose keys start with ``prefix``, each followed by its floor."""
    rows = []
    for key, figure in results.figures.items():
        if key.startswith(prefix) and not key.endswith(".floor"):
            rows.append(figure_row(results, figure))
            if (floor := results.figures.get(key + ".floor")) is not None:
                rows.append(figure_row(results, floor, "  "))
    return format_table(FIGURE_HEADERS, rows)


def catalog_text(results: Results, catalog: Catalog) -> str:
    tree = catalog.tree
    wrote = f"{tree.files} files, {tree.bytes / 2**20:.1f} MiB" if tree.files else "no tree"
    shown = catalog.path if catalog.label == "bundled" else f"bench/synthetic.py {catalog.services}"
    title = f"{catalog.label}: {shown} ({catalog.services} services; out/ {wrote})"
    return f"{title}\n{figures_table(results, catalog.label + '.')}"


def target_value(target: Target) -> str:
    if target.measured is None:
        return "-"
    bound = ">= " if target.bound else ""
    unit = target.unit if target.unit == "x" else f" {target.unit}"
    return f"{bound}{target.measured:.2f}{unit}"


def targets_text(targets: Sequence[Target]) -> str:
    rows = []
    for t in targets:
        unit = t.unit if t.unit == "x" else f" {t.unit}"
        rows.append(
            [
                t.name,
                target_value(t),
                f"{'>=' if t.at_least else '<='} {t.limit:g}{unit}",
                t.verdict(),
            ]
        )
    title = "targets (issue 20): medians of the measured runs (x: of the per-pair ratios), peak RSS"
    return f"{title}\n" + format_table(["target", "measured", "limit", "verdict"], rows)


# --- where the time goes (bench/pipeline.py) ---------------------------------------------------

_FLOOR_IMPORTS = "import pydantic, jinja2, ruamel.yaml"
PHASE_HEADERS = ["run", "start", "floor's imports", "catalog import", "other imports"]
PHASE_HEADERS += ["load", "lint", "plan", "render", "write/compare", "total", "peak RSS"]


def _largest(run: dict[str, Any], count: int) -> list[tuple[str, float]]:
    """The ``count`` generators of a pipeline run that took longest, longest first."""
    return sorted(run["generators"].items(), key=lambda kv: -kv[1])[:count]


def _parts(run: dict[str, Any]) -> list[tuple[str, float]]:
    """(name, seconds) of everything a pipeline run timed beyond the floor's own imports,
    the plan split into its three largest generators and the rest."""
    imports = run["imports"]
    parts = [(label, t) for label, t in imports.items() if label != _FLOOR_IMPORTS]
    for phase, seconds in run["phases"].items():
        if phase != "plan":
            parts.append(("write/compare" if phase == "write" else phase, seconds))
            continue
        largest = _largest(run, 3)
        parts += [(f"plan: {name}", t) for name, t in largest]
        parts.append(("plan: the other generators", seconds - sum(t for _, t in largest)))
    return sorted(parts, key=lambda part: -part[1])


def _start_text(run: dict[str, Any]) -> str:
    started = run.get("started_after")
    return "-" if started is None else seconds_text(started)


def _whole(run: dict[str, Any]) -> float:
    """A pipeline run's seconds from its process's start to its last phase's end."""
    started = run.get("started_after") or 0.0
    return float(started + sum(run["imports"].values()) + sum(run["phases"].values()))


def phases_text(results: Results) -> str:
    """One row per pipeline run, then each run's largest generators."""
    rows, lines = [], []
    for key, run in results.phases.items():
        imports, phases = list(run["imports"].values()), run["phases"]
        total = _whole(run)
        rows.append(
            [
                key,
                _start_text(run),
                *(seconds_text(t) for t in imports),
                *(seconds_text(t) for t in phases.values()),  # in the order they ran
                seconds_text(total),
                f"{max(run['peaks_mib'].values()):.0f} MiB",
            ]
        )
        named = ", ".join(f"{name} {seconds_text(t)}" for name, t in _largest(run, 5))
        lines.append(f"- {key}: {named}")
    title = (
        "where the time goes: one run per catalog in one process, untimed by the figures "
        "above (bench/pipeline.py; start: the interpreter's and the standard modules', "
        "in 10 ms ticks; each phase whole before the next, so its peak RSS is above the "
        "CLI's, which streams)"
    )
    plan = "the plan's largest generators:\n" + "\n".join(lines)
    return f"{title}\n{format_table(PHASE_HEADERS, rows)}\n\n{plan}"


def why_text(results: Results, targets: Sequence[Target]) -> str:
    """For each missed target (``targets`` in the order of :data:`TARGETS`), what the
    pipeline run of its figure's catalog spent most on: the generate's run for a
    generate, the check's for the others."""
    lines = []
    for (_, _, _, _, key, what), target in zip(TARGETS, targets, strict=True):
        if target.met is not False:
            continue
        catalog, figure = key.split(".", 1)
        if catalog == "cdk8s":
            lines.append(f"- {target.name.strip()}: {_cdk8s_why(results)}")
            continue
        run_key = f"{catalog} {'write' if figure == 'generate' else 'check'}"
        run = results.phases.get(run_key)
        if run is None:
            continue
        if what == "peak RSS":
            imported, loaded = run["peak_imported_mib"], run["peaks_mib"]["load"]
            lines.append(
                f"- {target.name.strip()}: in {run_key}, the imports reach {imported:.0f} MiB and "
                f"the loaded catalog {loaded:.0f} MiB (+{loaded - imported:.0f}); the rest "
                f"of the measured {target.measured:.0f} MiB is what the CLI's stream holds "
                "at its peak (bench/pipeline.py holds the whole plan, so its later peaks "
                "say nothing of it)"
            )
            continue
        parts, whole = _parts(run), _whole(run)
        named = ", ".join(f"{name} {seconds_text(t)} ({t / whole:.0%})" for name, t in parts[:4])
        floor = run["imports"][_FLOOR_IMPORTS]
        lines.append(
            f"- {target.name.strip()}: {run_key} took {seconds_text(whole)} in one process, of "
            f"which its start {_start_text(run)} and the floor's imports "
            f"{seconds_text(floor)}; the largest parts: {named}"
        )
    if not lines:
        return ""
    return "why, by the largest parts of each missed target's run:\n" + "\n".join(lines)


def _cdk8s_why(results: Results) -> str:
    imported = results.figures.get("cdk8s.import")
    native = results.figures.get("cdk8s.synth.floor")
    if imported is None or native is None or not imported.measured or not native.measured:
        return "no import of cdk8s or native run measured"
    return (
        f"importing cdk8s alone takes {seconds_text(imported.stat()[0])}, the native whole "
        f"process {seconds_text(native.stat()[0])}: both sides are mostly start-up"
    )


def _loads(values: Sequence[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def header_text(meta: dict[str, Any]) -> str:
    m, code = meta["machine"], meta["code"]
    load, bare = meta["load_average"], meta["bare_rss_mib"]
    end = meta.get("code_at_end", code)
    changed = ""
    if end != code:
        changed = f"; CHANGED during the run: {end['commit']}, diff {end['diff_hash']} at the end"
    return "\n".join(
        [
            f"homeops_gen benchmark{' --quick' if meta['quick'] else ''}, {meta['started']}: "
            f"commit {code['commit']} ({code['changed_files']} tracked file(s) changed, diff "
            f"{code['diff_hash']}){changed}",
            f"machine: nproc {m['nproc']} (cpu_count {m['cpu_count']}), {m['cpu_model']}, "
            f"{m['memory']}, {m['kernel']}, Python {m['python']}",
            f"load average (1, 5, 15 min): {_loads(load['start'])} at the start, "
            f"{_loads(load['end'])} at the end",
            f"parent: peak RSS {meta['parent_rss_mib']:.1f} MiB; `python -c pass` measured from "
            f"it: {bare['start']:.1f} MiB at the start, {bare['end']:.1f} MiB at the end "
            "(each child's own RSS, see bench/spawn.py)",
            "wall times; cpu = the child's user+sys; runs = measured runs, the first (warm-up) "
            "apart; vs floor = median [min-max] of per-pair ratios",
        ]
    )


def report_text(results: Results) -> str:
    sections = [header_text(results.meta)]
    sections += [catalog_text(results, catalog) for catalog in results.catalogs]
    if any(key.startswith("cdk8s.") for key in results.figures):
        title = "cdk8s vs native, bundled catalog, whole process (vs floor: cdk8s / native)"
        sections.append(f"{title}\n{figures_table(results, 'cdk8s.')}")
    targets = evaluate_targets(results)
    sections.append(targets_text(targets))
    if results.phases:
        sections.append(phases_text(results))
        if why := why_text(results, targets):
            sections.append(why)
    notes = results.notes + [
        f"{key}: {note}" for key, figure in results.figures.items() for note in figure.notes
    ]
    notes.append(f"elapsed {results.meta['elapsed_s']:.0f} s")
    sections.append("notes:\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(sections)


# --- JSON and --compare --------------------------------------------------------------------


def _figure_json(figure: Figure) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "label": figure.label,
        "argv": figure.argv,
        "env": figure.env,
        "warmup": figure.warmup,
        "runs": [asdict(run) for run in figure.runs],
        "notes": figure.notes,
    }
    if figure.measured:  # derived, for readers of the file; from_json recomputes them
        entry["median_s"], entry["min_s"], entry["max_s"] = figure.stat()
        entry["median_cpu_s"] = figure.stat("cpu_seconds")[0]
        entry["peak_rss_mib"] = figure.stat("max_rss_mib")[2]
    return entry


def to_json(results: Results) -> dict[str, Any]:
    ratios = {}
    for key, ratio in results.ratios.items():
        ratios[key] = {"all_runs": ratio.all_runs, "warmup": ratio.warmup}
        if ratio.runs:
            ratios[key] |= dict(zip(("median", "min", "max"), ratio.stat, strict=True))
    targets = evaluate_targets(results)
    return {
        "format": FORMAT,
        "meta": results.meta,
        "catalogs": [
            {
                "label": c.label,
                "path": c.path,
                "services": c.services,
                "files": c.tree.files,
                "bytes": c.tree.bytes,
            }
            for c in results.catalogs
        ],
        "figures": {key: _figure_json(figure) for key, figure in results.figures.items()},
        "ratios": ratios,
        "targets": [asdict(t) | {"met": t.met, "verdict": t.verdict()} for t in targets],
        "notes": results.notes,
        "phases": results.phases,
    }


def from_json(data: dict[str, Any]) -> Results:
    """The :class:`Results` that :func:`to_json` wrote."""
    figures = {
        key: Figure(
            key,
            f["label"],
            f["argv"],
            f["env"],
            f["warmup"],
            [ProcessRun(**run) for run in f["runs"]],
            list(f["notes"]),
        )
        for key, f in data["figures"].items()
    }
    ratios = {key: Ratio(key, r["warmup"], r["all_runs"]) for key, r in data["ratios"].items()}
    catalogs = [
        Catalog(c["label"], c["path"], c["services"], Tree(c["files"], c["bytes"]))
        for c in data["catalogs"]
    ]
    phases = dict(data.get("phases", {}))  # none in a file from before they were measured
    return Results(data["meta"], catalogs, figures, ratios, list(data["notes"]), phases)


def load_results(path: Path) -> Results:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise SystemExit(f"{path}: not a {FORMAT} file (its format: {data.get('format')!r})")
    return from_json(data)


def _change(new: float | None, old: float | None, fmt: Callable[[float], str]) -> list[str]:
    shown = [fmt(v) if v is not None else "-" for v in (old, new)]
    if new is None or old is None or not old:
        return [*shown, ""]
    return [*shown, f"{new / old:.2f}"]


def _median(figure: Figure | None, name: str, peak: bool = False) -> float | None:
    if figure is None or not figure.measured:
        return None
    median, _, largest = figure.stat(name)
    return largest if peak else median


def _ratio_median(ratio: Ratio | None) -> float | None:
    return ratio.stat[0] if ratio is not None and ratio.runs else None


def compare_text(new: Results, old: Results) -> str:
    """Per figure, ratio and target: old, new and new/old (below 1: faster, or smaller)."""
    rows = []
    for key in sorted(new.figures.keys() | old.figures.keys()):
        a, b = old.figures.get(key), new.figures.get(key)
        rows.append(
            [
                key,
                *_change(_median(b, "seconds"), _median(a, "seconds"), seconds_text),
                *_change(
                    _median(b, "max_rss_mib", True),
                    _median(a, "max_rss_mib", True),
                    lambda v: f"{v:.0f} MiB",
                ),
            ]
        )
    for key in sorted(new.ratios.keys() | old.ratios.keys()):
        now, then = _ratio_median(new.ratios.get(key)), _ratio_median(old.ratios.get(key))
        rows.append([f"{key} / floor", *_change(now, then, lambda v: f"{v:.2f}x"), "", "", ""])
    before = {t.name: t for t in evaluate_targets(old)}
    target_rows = []
    for t in evaluate_targets(new):
        was = before.get(t.name)
        target_rows.append(
            [
                t.name,
                target_value(was) if was else "-",
                target_value(t),
                was.verdict() if was else "-",
                t.verdict(),
            ]
        )
    meta = old.meta
    head = (
        f"compared with {meta['code']['commit']}, run {meta['started']} (load "
        f"{_loads(meta['load_average']['start'])}): new/old below 1 is faster or smaller"
    )
    headers = ["figure", "old", "new", "new/old", "old RSS", "new RSS", "new/old"]
    return "\n\n".join(
        [
            f"{head}\n{format_table(headers, rows)}",
            format_table(["target", "old", "new", "old verdict", "new verdict"], target_rows),
        ]
    )
