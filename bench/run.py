"""Benchmark homeops_gen, every figure from a fresh process, against floors of the same run.

Run from the repository root::

    python bench/run.py                          # full
    python bench/run.py --quick                  # fewer rounds
    python bench/run.py --sizes 100,1000 --json new.json --compare old.json

This script is the *parent* of every measured process. It imports neither homeops_gen nor
its dependencies (a child writes the synthetic catalogs, :mod:`synthetic`), and it starts
each measured process through ``bench/spawn.py``, a launcher smaller than any Python
process it measures: on Linux a child's ``ru_maxrss`` counts the memory of the process it
was forked from, so a child of a big process reports at least that one's peak. The
report prints the RSS of ``python -c pass`` measured this way, at the start and the end.

What is measured, per catalog (the bundled ``services.yaml``, then synthetic catalogs of
``--sizes`` services from :mod:`synthetic`), each a ``python -m homeops_gen ... -q``
process with ``cwd`` = the repository root:

- *generate into a fresh out/*: a new, empty ``out/`` folder per run, created before the
  clock starts; the up-to-date cache is on (it misses: the folder is new) and records.
  Paired with the *plain Jinja floor* (``bench/floor_jinja.py``): the same paths, file
  count and total bytes as that catalog's generated tree, rendered from one trivial Jinja2
  template and written temp-and-rename (no fsync) into a fresh folder.
- *no-op generate* and *--check, no cache*: ``HOMEOPS_GEN_NO_CACHE=1``, on the ``out/`` the
  latest generate left (nothing to write: the whole pipeline and a comparison).
- *--check, cache warm*: the same ``out/``, answered from the entry its generate recorded.
- the bundled catalog only: *--check, cache cold* (an empty ``HOMEOPS_GEN_CACHE_DIR``: the
  first check after a clone or an edit; the whole pipeline, then the record), and both
  checks with *homeops_gen's bytecode cold*: a fresh ``PYTHONPYCACHEPREFIX`` into which
  one untimed run compiled everything, then homeops_gen's own ``.pyc`` files removed (the
  first run after the package changed; its dependencies' bytecode stays compiled).
- the bundled catalog only: the first *--check, no cache* after an install, with an empty
  cache folder (so no template compiled yet) and no template override, from the wheel of
  this tree installed in a virtual environment (its templates compiled ahead of time, by
  its build hook) and from the source tree (each template compiled on demand).

Every figure but the generate is paired with the *import floor*,
``python -c "import pydantic, jinja2, ruamel.yaml"``. cdk8s: ``bench/synth.py cdk8s``
(load the bundled catalog, ``BackupChart``, ``app.synth()`` into a fresh folder) paired
with the native whole process ``python -m homeops_gen`` into a fresh ``out/`` (every file,
not only the objects), and again with ``bench/synth.py objects`` (only the object files,
written by homeops_gen's writer).

Where the time goes: after a catalog's rounds, untimed, ``bench/pipeline.py`` checks the
out/ its generate left and (up to 2,000 services) generates into a fresh folder, each in a
child of its own that prints the seconds of its start, of each import (the floor's own, the
catalog's pydantic models, the rest) and of each phase, each generator's share of the plan,
and its peak RSS phase by phase. The report prints them, and for each missed target the
largest parts of the run that stands for it; no figure or target reads them.

A pair runs back to back (subject, floor), every pair of a catalog once per round, so a
change in the machine's load touches both sides of a ratio alike; ratios are taken per
pair. A figure is the median of its runs with their min-max range. Where a catalog has a
warm-up round (the bundled catalog, and sizes up to 1,000 unless ``--quick``) its first
round is reported apart as "first" and left out of medians and ratios. Before every timed
run the trees of earlier runs are deleted and ``os.sync()`` is called, outside the clock.
The OS page cache stays warm (nothing drops it). A run is killed after ``--timeout``
seconds (its figure is then a bound); a catalog gets no more rounds once ``--budget``
seconds are spent on it. ``--json`` saves every run; ``--show`` prints a saved run's
report, ``--compare OLD.json`` the ratio new/old of every figure and target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from results import (  # bench/ is sys.path[0]
    Catalog,
    Figure,
    ProcessRun,
    Ratio,
    Results,
    compare_text,
    load_results,
    report_text,
    to_json,
)

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
REFERENCE = "services.yaml"  # relative to the repository root, as pre-commit and CI run it
PYTHON = sys.executable
IMPORT_FLOOR = [PYTHON, "-c", "import pydantic, jinja2, ruamel.yaml"]
#: homeops_gen's bytecode inside a PYTHONPYCACHEPREFIX (the mirror of its source folder).
PACKAGE_PYCACHE = (REPO / "homeops_gen").relative_to(REPO.anchor)
NO_CACHE = {"HOMEOPS_GEN_NO_CACHE": "1"}


# --- one process ---------------------------------------------------------------------------


def run_process(argv: Sequence[str], env: dict[str, str], timeout: float) -> ProcessRun:
    """Run ``argv`` in the repository root through ``bench/spawn.py``, which forks it from
    a process smaller than any it measures and times it from the fork to ``wait4``."""
    launcher = [PYTHON, "-I", "-S", str(BENCH / "spawn.py"), repr(timeout), *argv]
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run(
            launcher, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, check=False
        )
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    try:
        seconds, cpu, rss_kib, code, killed = done.stdout.split()
    except ValueError:
        raise SystemExit(f"bench/spawn.py failed on {argv}: {lines[-3:]}") from None
    return ProcessRun(
        seconds=float(seconds),
        cpu_seconds=float(cpu),
        max_rss_mib=int(rss_kib) / 1024,  # KiB on Linux
        exit_code=int(code),
        killed=killed == b"1",
        tail=lines[-1] if lines else "",
    )


def remove_tree(path: Path) -> None:
    """Delete an earlier run's folder (outside the clock; the next run syncs first)."""
    shutil.rmtree(path, ignore_errors=True)


def untimed(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A helper process whose time is not measured."""
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)


# --- commands, figures and rounds ----------------------------------------------------------

#: Prepares one run, untimed: (the run's scratch folder, its argv, its env) -> extra env.
Prepare = Callable[[Path, list[str], dict[str, str]], dict[str, str]]
#: Looks at one good run's ``{fresh}`` folder, untimed, before it is deleted.
Inspect = Callable[[Path], None]


@dataclass
class Command:
    """A process to measure. In ``argv``, ``{fresh}`` is a new empty folder per run and
    ``{kept}`` the ``out/`` that the latest good run of the figure ``needs`` left."""

    key: str
    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Prepare | None = None
    inspect: Inspect | None = None
    #: Keep the latest good run's ``{fresh}`` folder, for the commands that need it.
    keep: bool = False
    needs: str = ""
    #: What a good run's summary line contains (besides exit 0), and what it must not.
    expect: str = ""
    refuse: tuple[str, ...] = ()
    #: A good run is answered from homeops_gen's cache: it leaves the cache folder as it
    #: was (a miss that finds out/ up to date records the entry again).
    cache_hit: bool = False


@dataclass
class Pair:
    """A subject and the floor it is compared with, run back to back, ``rounds`` times."""

    subject: Command
    floor: Command | None
    rounds: int
    warmup: bool


class Bench:
    """The measured processes of one benchmark run, their scratch folders and settings."""

    def __init__(self, scratch: Path, env: dict[str, str], timeout: float) -> None:
        self.scratch, self.env, self.timeout = scratch, env, timeout
        self.results = Results()
        self.figures = self.results.figures
        self.ratios = self.results.ratios
        self.notes = self.results.notes
        self._serial = 0

    def run_rounds(self, pairs: Sequence[Pair], budget: float) -> None:
        """Round after round of every pair until each has its rounds or ``budget`` is spent
        (never fewer than one measured round)."""
        for pair in pairs:
            for command in (pair.subject, pair.floor):
                if command is not None:
                    self.figures[command.key] = Figure(
                        command.key, command.label, command.argv, command.env, pair.warmup
                    )
        start, done = time.perf_counter(), 0
        least = 2 if any(pair.warmup for pair in pairs) else 1
        while any(done < pair.rounds for pair in pairs):
            for pair in pairs:
                if done < pair.rounds:
                    self._run_pair(pair)
            done += 1
            left = [pair.subject.key for pair in pairs if done < pair.rounds]
            if left and done >= least and time.perf_counter() - start > budget:
                self.notes.append(
                    f"--budget {budget:.0f} s spent after {done} round(s): fewer runs "
                    f"than planned for {', '.join(left)}"
                )
                return

    def _run_pair(self, pair: Pair) -> None:
        subject = self.figures[pair.subject.key]
        if pair.subject.needs and self.figures[pair.subject.needs].kept is None:
            note = f"not measured: {pair.subject.needs} left no out/ to run on"
            if note not in subject.notes:
                subject.notes.append(note)
            return
        self._measure(pair.subject)
        if pair.floor is None:
            return
        if pair.floor.needs and self.figures[pair.floor.needs].kept is None:
            return  # e.g. the Jinja floor, before any generate gave it its files
        self._measure(pair.floor)
        floor = self.figures[pair.floor.key]
        ratio = self.ratios.setdefault(subject.key, Ratio(subject.key, pair.warmup))
        ratio.all_runs.append(subject.runs[-1].seconds / floor.runs[-1].seconds)

    def _measure(self, command: Command) -> None:
        """One run into its figure: its folders made, the earlier ones synced, the clock."""
        figure = self.figures[command.key]
        self._serial += 1
        folder = self.scratch / f"run-{self._serial:04d}"
        fresh = folder / "out"
        fresh.mkdir(parents=True)
        kept = self.figures[command.needs].kept if command.needs else None
        argv = [
            part.replace("{fresh}", str(fresh)).replace("{kept}", str(kept))
            for part in command.argv
        ]
        env = {**self.env, **command.env}
        if command.prepare is not None:
            env |= command.prepare(folder, argv, env)
        cache = Path(env["HOMEOPS_GEN_CACHE_DIR"])
        before = cache_state(cache) if command.cache_hit else {}
        os.sync()  # the write-back of deleted trees and of untimed helpers is not on the clock
        run = run_process(argv, env, self.timeout)
        problem = _problem(command, run)
        if not problem and command.cache_hit and cache_state(cache) != before:
            problem = "a cache miss (the entry was recorded again): inputs or code changed?"
        run = replace(run, ok=not problem)
        figure.runs.append(run)
        if problem:
            figure.notes.append(f"run {len(figure.runs)}: {problem}")
        elif command.inspect is not None:
            command.inspect(fresh)
        if command.keep and not problem:
            if figure.kept is not None:
                remove_tree(figure.kept.parent)
            figure.kept = fresh
        else:
            remove_tree(folder)


def cache_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file of homeops_gen's cache folder: its modification time and size."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return {}
    return {e.name: (e.stat().st_mtime_ns, e.stat().st_size) for e in entries}


def _problem(command: Command, run: ProcessRun) -> str:
    if run.killed:
        return f"killed after {run.seconds:.0f} s (--timeout)"
    if run.exit_code != 0:
        return f"exit {run.exit_code}: {run.tail}"
    if command.expect not in run.tail:
        return f"expected {command.expect!r} in its last line {run.tail!r}"
    if any(word in run.tail for word in command.refuse):
        return f"unexpected {run.tail!r}"
    return ""


# --- what each catalog measures ------------------------------------------------------------


def _cli(catalog: str, *args: str) -> list[str]:
    return [PYTHON, "-m", "homeops_gen", *args, "-q", "--catalog", catalog]


def _import_floor(key: str, prepare: Prepare | None = None) -> Command:
    return Command(f"{key}.floor", "import floor", IMPORT_FLOOR, prepare=prepare)


def _floor_helper(*args: str) -> list[str]:
    return [PYTHON, str(BENCH / "floor_jinja.py"), *args]


def _json_answer(argv: list[str], env: dict[str, str]) -> Any:
    done = untimed(argv, env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def catalog_pairs(bench: Bench, catalog: Catalog, rounds: int, warmup: bool) -> list[Pair]:
    """Generate into a fresh out/ (vs the Jinja floor), then a no-op generate and checks."""
    key, tree = catalog.label, catalog.tree
    spec = bench.scratch / f"{key}.spec.json"

    def take_spec(out: Path) -> None:  # after the first good generate: its files and sizes
        if tree.spec is None:
            found = _json_answer(_floor_helper("spec", str(out), str(spec)), bench.env)
            tree.files, tree.bytes, tree.spec = found["files"], found["bytes"], spec

    def check_floor(out: Path) -> None:  # the floor wrote as many files and bytes
        found = _json_answer(_floor_helper("measure", str(out)), bench.env)
        if (found["files"], found["bytes"]) != (tree.files, tree.bytes):
            bench.notes.append(f"{key}: the Jinja floor wrote {found}, not {tree}")

    generate = Command(
        f"{key}.generate",
        "generate into a fresh out/",
        [*_cli(catalog.path), "--out", "{fresh}"],
        inspect=take_spec,
        keep=True,
        expect=" created",
    )
    jinja = Command(
        f"{key}.generate.floor",
        "plain Jinja floor (same files)",
        _floor_helper("render", str(spec), "{fresh}"),
        inspect=check_floor,
        needs=f"{key}.generate",
    )
    pairs = [Pair(generate, jinja, rounds, warmup)]
    on_kept = [*_cli(catalog.path), "--out", "{kept}"]
    check = [*_cli(catalog.path, "--check"), "--out", "{kept}"]
    for name, label, argv, env, expect in (
        ("noop", "no-op generate, no cache", on_kept, NO_CACHE, "unchanged"),
        ("check_no_cache", "--check, no cache", check, NO_CACHE, "up to date"),
        ("check_cached", "--check, cache warm", check, {}, "up to date"),
    ):
        refuse = ("created", "updated", "deleted") if name == "noop" else ()
        subject = Command(
            f"{key}.{name}", label, argv, env, needs=generate.key, expect=expect, refuse=refuse
        )
        subject.cache_hit = name == "check_cached"
        pairs.append(Pair(subject, _import_floor(subject.key), rounds, warmup))
    return pairs


def empty_cache(folder: Path, argv: list[str], env: dict[str, str]) -> dict[str, str]:
    """A new, empty HOMEOPS_GEN_CACHE_DIR for this run."""
    (folder / "cache").mkdir()
    return {"HOMEOPS_GEN_CACHE_DIR": str(folder / "cache")}


def cold_bytecode(folder: Path, argv: list[str], env: dict[str, str]) -> dict[str, str]:
    """A fresh PYTHONPYCACHEPREFIX: one untimed run (no cache, so every module it may
    import is compiled), then homeops_gen's own bytecode removed."""
    extra = {"PYTHONPYCACHEPREFIX": str(folder / "pycache")}
    untimed(argv, {**env, **NO_CACHE, **extra})
    remove_tree(folder / "pycache" / PACKAGE_PYCACHE)
    return extra


def startup_pairs(catalog: Catalog, rounds: int) -> list[Pair]:
    """The bundled catalog only: the cache cold; homeops_gen's bytecode cold."""
    key = catalog.label
    check = [*_cli(catalog.path, "--check"), "--out", "{kept}"]
    needs, expect = f"{key}.generate", "up to date"
    subjects = [
        Command(
            f"{key}.check_cache_cold",
            "--check, cache cold (empty cache)",
            check,
            prepare=empty_cache,
            needs=needs,
            expect=expect,
        ),
        Command(
            f"{key}.check_cached_bytecode_cold",
            "--check, cache warm, bytecode cold",
            check,
            prepare=cold_bytecode,
            needs=needs,
            expect=expect,
            cache_hit=True,
        ),
        Command(
            f"{key}.check_no_cache_bytecode_cold",
            "--check, no cache, bytecode cold",
            check,
            NO_CACHE,
            prepare=cold_bytecode,
            needs=needs,
            expect=expect,
        ),
    ]
    floors = [None, cold_bytecode, cold_bytecode]  # the floor in a prefix of its own
    return [
        Pair(subject, _import_floor(subject.key, prepare), rounds, False)
        for subject, prepare in zip(subjects, floors, strict=True)
    ]


def installed_wheel(scratch: Path, env: dict[str, str]) -> tuple[Path | None, str]:
    """A virtual environment with the wheel of this tree installed (untimed): its Python,
    or None and why not. The environment sees this Python's packages (the dependencies, no
    download); the wheel's own files are byte-compiled by pip, as any install does."""
    dist, root = scratch / "wheel", scratch / "venv"
    build = ["wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(dist)]
    steps = [
        [PYTHON, "-m", "pip", *build, str(REPO)],
        [PYTHON, "-m", "venv", "--system-site-packages", str(root)],
    ]
    for argv in steps:
        done = untimed(argv, env)
        if done.returncode != 0:
            return None, f"{' '.join(argv[:4])} failed: {done.stderr.strip()[-200:]}"
    python = root / "bin" / "python"
    (wheel,) = dist.glob("homeops_gen-*.whl")
    argv = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)]
    done = untimed(argv, env)
    if done.returncode != 0:
        return None, f"pip install of the wheel failed: {done.stderr.strip()[-200:]}"
    return python, ""


def install_pairs(bench: Bench, catalog: Catalog, rounds: int) -> list[Pair]:
    """The bundled catalog, the first check after an install: no cache, an empty cache
    folder (no template compiled yet), from the installed wheel (its templates compiled
    ahead of time) and from the source tree (compiled on demand)."""
    key = catalog.label
    empty = bench.scratch / "no-templates"
    empty.mkdir(exist_ok=True)
    # No templates/ beside the catalog stands in for the packaged ones (no override).
    args = ["--check", "-q", "--catalog", catalog.path, "--templates", str(empty)]
    args += ["--out", "{kept}"]
    python, why = installed_wheel(bench.scratch, bench.env)
    commands = [
        Command(
            f"{key}.check_installed_source",
            "--check, no cache, empty cache: source tree",
            [PYTHON, "-m", "homeops_gen", *args],
            NO_CACHE,
            prepare=empty_cache,
            needs=f"{key}.generate",
            expect="up to date",
        )
    ]
    if python is None:
        bench.notes.append(f"installed wheel not measured: {why}")
    else:
        # -P: the repository root (the working folder) is not on sys.path; the wheel is.
        commands.append(
            Command(
                f"{key}.check_installed_wheel",
                "--check, no cache, empty cache: installed wheel",
                [str(python), "-P", "-m", "homeops_gen", *args],
                NO_CACHE,
                prepare=empty_cache,
                needs=f"{key}.generate",
                expect="up to date",
            )
        )
    return [Pair(command, _import_floor(command.key), rounds, False) for command in commands]


def cdk8s_pairs(rounds: int, warmup: bool) -> list[Pair]:
    """cdk8s synth against the native whole process, bundled catalog, fresh folders."""
    synth = [PYTHON, str(BENCH / "synth.py")]
    cdk8s_argv = [*synth, "cdk8s", REFERENCE, "{fresh}"]
    native = [*_cli(REFERENCE), "--out", "{fresh}"]
    objects = [*synth, "objects", REFERENCE, "{fresh}"]
    label = "cdk8s: BackupChart + synth"
    return [
        Pair(
            Command("cdk8s.synth", label, cdk8s_argv, expect="objects"),
            Command("cdk8s.synth.floor", "native generate, fresh out/", native, expect="created"),
            rounds,
            warmup,
        ),
        Pair(
            Command("cdk8s.synth_again", label, cdk8s_argv, expect="objects"),
            Command(
                "cdk8s.synth_again.floor", "native, object files only", objects, expect="written"
            ),
            rounds,
            warmup,
        ),
        Pair(
            Command("cdk8s.import", "python -c 'import cdk8s'", [PYTHON, "-c", "import cdk8s"]),
            None,
            rounds,
            warmup,
        ),
    ]


def write_synthetic(size: int, path: Path, env: dict[str, str]) -> None:
    """A synthetic catalog, written by a child process (the parent stays small)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from synthetic import synthetic_catalog; "
        "open(sys.argv[3], 'w', encoding='utf-8').write(synthetic_catalog(int(sys.argv[2])))"
    )
    done = untimed([PYTHON, "-c", code, str(BENCH), str(size), str(path)], env)
    if done.returncode != 0:
        raise SystemExit(f"writing a {size}-service catalog failed: {done.stderr}")


def count_services(path: str, env: dict[str, str]) -> int:
    """Services in a catalog, counted by homeops_gen in a child process (untimed)."""
    code = "import sys; from homeops_gen import load_catalog; "
    code += "print(len(load_catalog(sys.argv[1]).services))"
    done = untimed([PYTHON, "-c", code, path], env)
    if done.returncode != 0:
        raise SystemExit(f"{path}: cannot be loaded: {done.stderr.strip()}")
    return int(done.stdout)


# --- the machine and the code -----------------------------------------------------------------


def _git(*args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)
    except OSError:
        return b""
    return done.stdout if done.returncode == 0 else b""


def _diff_digest() -> str:
    """Git's hash of ``git diff HEAD``, piped between two git processes (the parent holds
    neither the diff nor hashlib, which alone would add 3 MiB to its RSS)."""
    git = ["git", "-C", str(REPO)]
    try:
        diff = subprocess.Popen([*git, "diff", "HEAD"], stdout=subprocess.PIPE)
        digest = subprocess.run(
            [*git, "hash-object", "--stdin"], stdin=diff.stdout, capture_output=True
        )
        diff.wait()
    except OSError:
        return "unknown"
    return digest.stdout.decode().strip()[:12] or "unknown"


def code_state() -> dict[str, Any]:
    """The commit, ``+dirty`` when tracked files differ from it, and a digest of the diff
    (to tell whether the code changed while the benchmark ran)."""
    commit = _git("rev-parse", "--short", "HEAD").decode().strip() or "unknown"
    changed = _git("status", "--porcelain", "--untracked-files=no").decode().splitlines()
    digest = _diff_digest()
    return {
        "commit": commit + ("+dirty" if changed else ""),
        "changed_files": len(changed),
        "diff_hash": digest,
    }


def _proc_field(path: str, name: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.split(":")[0].strip() == name:
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    uname = os.uname()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory": _proc_field("/proc/meminfo", "MemTotal"),
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "python": sys.version.split()[0],
        "executable": PYTHON,
    }


def bare_rss(bench: Bench, runs: int = 3) -> float:
    """The median peak RSS of ``python -c pass`` seen from this parent (MiB)."""
    found = [run_process([PYTHON, "-c", "pass"], bench.env, 60).max_rss_mib for _ in range(runs)]
    return statistics.median(found)


def parent_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- main ------------------------------------------------------------------------------------


#: (rounds, the first a warm-up) per catalog; 10,000 services are slow, so few and no warm-up.
ROUNDS = {
    "full": {"bundled": (11, True), "cdk8s": (6, True)},
    "quick": {"bundled": (4, True), "cdk8s": (2, True)},
}


def rounds_for(size: int, quick: bool) -> tuple[int, bool]:
    """Rounds of a synthetic catalog (a warm-up included) and whether there is a warm-up."""
    if size > 2000:
        return (1, False) if quick else (3, False)
    if size >= 1000:
        return (1, False) if quick else (4, True)
    return (2, True) if quick else (6, True)


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark homeops_gen (see the docstring).")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (see ROUNDS)")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=[100, 1000, 10000],
        help="synthetic catalogs, in services (default: 100,1000,10000; '' for none)",
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="write every run as JSON")
    parser.add_argument(
        "--compare", metavar="OLD", type=Path, help="also print new/old against a --json file"
    )
    parser.add_argument(
        "--show",
        metavar="PATH",
        type=Path,
        help="print the report of a --json file, measure nothing",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="kill a run after this many seconds (600)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds after which a catalog gets no more rounds (default 150, --quick 60); "
        "each gets its first measured round",
    )
    parser.add_argument("--no-cdk8s", action="store_true", help="skip the cdk8s comparison")
    return parser.parse_args(argv)


@contextmanager
def scratch_env() -> Iterator[tuple[Path, dict[str, str]]]:
    """A scratch folder and the children's environment: homeops_gen's cache in it (never the
    user's); no inherited HOMEOPS_GEN_NO_CACHE or bytecode settings."""
    with tempfile.TemporaryDirectory(prefix="homeops-bench-") as folder:
        dropped = ("HOMEOPS_GEN_NO_CACHE", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["HOMEOPS_GEN_CACHE_DIR"] = str(Path(folder) / "cache")
        # jsii's Node.js runtime warns about old Node versions on stderr, in every process.
        env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        majors = ",".join(str(major) for major in range(10, 40))
        env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", majors)
        yield Path(folder), env


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def where_time_goes(bench: Bench, catalog: Catalog) -> None:
    """Untimed ``bench/pipeline.py`` runs of ``catalog``: a check of the out/ its generate
    left and, up to 2,000 services, a generate into a fresh folder; the seconds of each
    import and phase in one process (the report's "where the time goes" and its "why";
    no figure or target reads them)."""
    kept = bench.figures[f"{catalog.label}.generate"].kept
    if kept is None:
        bench.notes.append(f"{catalog.label}: no out/ to run bench/pipeline.py on")
        return
    runs = [("check", kept, ["--check"])]
    fresh = bench.scratch / f"phases-{catalog.label}" / "out"
    if catalog.services <= 2000:
        runs.append(("write", fresh, []))
    for mode, out, flags in runs:
        argv = [PYTHON, str(BENCH / "pipeline.py"), "--catalog", catalog.path, "--out", str(out)]
        os.sync()  # as before a timed run: no earlier write-back lands in its syncfs
        found = _json_answer([*argv, *flags], bench.env)
        if mode == "check" and found["drift"]:
            bench.notes.append(
                f"{catalog.label}: bench/pipeline.py --check saw {found['drift']} drifted file(s)"
            )
        bench.results.phases[f"{catalog.label} {mode}"] = found
    remove_tree(fresh.parent)


def drop_kept(bench: Bench) -> None:
    """Delete the out/ trees kept for a catalog's no-op generates and checks (untimed)."""
    for figure in bench.figures.values():
        if figure.kept is not None:
            remove_tree(figure.kept.parent)
            figure.kept = None


def measure_all(bench: Bench, args: argparse.Namespace) -> None:
    mode = ROUNDS["quick" if args.quick else "full"]
    budget = args.budget if args.budget is not None else (60.0 if args.quick else 150.0)
    catalogs = bench.results.catalogs
    bundled = Catalog("bundled", REFERENCE, count_services(REFERENCE, bench.env))
    rounds, warmup = mode["bundled"]
    progress(f"bundled {REFERENCE}: {rounds} round(s)")
    pairs = catalog_pairs(bench, bundled, rounds, warmup)
    pairs += startup_pairs(bundled, 1 if args.quick else 3)
    pairs += install_pairs(bench, bundled, 2 if args.quick else 3)
    bench.run_rounds(pairs, budget)
    where_time_goes(bench, bundled)
    drop_kept(bench)
    catalogs.append(bundled)
    for size in args.sizes:
        path = bench.scratch / f"services-{size}.yaml"
        write_synthetic(size, path, bench.env)
        catalog = Catalog(f"synthetic-{size}", str(path), size)
        rounds, warmup = rounds_for(size, args.quick)
        progress(f"synthetic catalog of {size} services: {rounds} round(s)")
        bench.run_rounds(catalog_pairs(bench, catalog, rounds, warmup), budget)
        where_time_goes(bench, catalog)
        drop_kept(bench)
        catalogs.append(catalog)
    if not args.no_cdk8s:
        rounds, warmup = mode["cdk8s"]
        progress(f"cdk8s: {rounds} round(s)")
        bench.run_rounds(cdk8s_pairs(rounds, warmup), budget)


def measure(args: argparse.Namespace) -> Results:
    with scratch_env() as (scratch, env):
        bench = Bench(scratch, env, args.timeout)
        meta = bench.results.meta
        meta |= {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": args.quick,
            "sizes": args.sizes,
            "timeout_s": args.timeout,
            "code": code_state(),
            "machine": machine(),
            "load_average": {"start": list(os.getloadavg())},
            "bare_rss_mib": {"start": bare_rss(bench)},
        }
        start = time.perf_counter()
        measure_all(bench, args)
        meta["elapsed_s"] = time.perf_counter() - start
        meta["bare_rss_mib"]["end"] = bare_rss(bench)
        meta["load_average"]["end"] = list(os.getloadavg())
        meta["code_at_end"] = code_state()
        meta["parent_rss_mib"] = parent_rss()
    return bench.results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    old = load_results(args.compare) if args.compare is not None else None
    results = load_results(args.show) if args.show is not None else measure(args)
    if args.json is not None:
        text = json.dumps(to_json(results), indent=1) + "\n"
        args.json.write_text(text, encoding="utf-8")
    sections = [report_text(results)]
    if old is not None:
        sections.append(compare_text(results, old))
    print("\n\n".join(sections))
    return 0


def __getattr__(name: str) -> Any:
    """``run_pipeline`` (bench/profile_generate.py's ``from run import run_pipeline``),
    imported on first use so that this parent never imports homeops_gen."""
    if name == "run_pipeline":
        from pipeline import run_pipeline

        return run_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
