"""Command line: ``python -m homeops_gen [generate|check|lint|explain NAME|schema|audit]``.

The only module that prints or exits. Exit codes: 0 up to date / written, 1 drift
(``--check``) or an unprotected PVC (``audit``), 2 bad input or a lint error.
Messages go to stderr, diffs to stdout.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeops_gen.errors import HomeopsError
from homeops_gen.report import EXIT_BAD_INPUT, EXIT_DRIFT, Report, check_word

if TYPE_CHECKING:
    from homeops_gen.catalog.model import Catalog
    from homeops_gen.errors import Problem
    from homeops_gen.plan import Plan

__all__ = ["build_parser", "main"]


_DEFAULTS = {
    "catalog": "services.yaml",
    #: None: ``out/`` beside the catalog (see :func:`_resolve_paths`).
    "out": None,
    "templates": None,
    "quiet": False,
    "check": False,
    "format": "text",
    "exit_non_zero_on_write": False,
    "no_cache": False,
}


#: The options each command takes (``None``: no command, a generate).
_APPLIES = {
    None: set(_DEFAULTS),
    "generate": set(_DEFAULTS),
    "check": set(_DEFAULTS) - {"exit_non_zero_on_write"},
    "lint": {"catalog", "quiet", "format"},
    "explain": {"catalog"},
    "schema": set(),
    "audit": {"catalog", "quiet", "format"},
}


def _prog() -> str:
    """The program's name as it was invoked (``python -m homeops_gen`` or the script's)."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m homeops_gen" if invoked in ("", "__main__.py", "-m") else invoked


class _Version(argparse.Action):
    """``--version``: the installed distribution's version (read only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib import metadata

        try:
            found = metadata.version("homeops-gen")
        except metadata.PackageNotFoundError:
            found = "unknown (not installed: pip install -e .)"
        print(f"{parser.prog} {found}")
        parser.exit()


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the subcommand is not overwritten by its default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--catalog", metavar="PATH", help="the service catalog (default: services.yaml)"
    )
    common.add_argument(
        "--out",
        metavar="DIR",
        help="the generated folder (default: out/ beside the catalog; a path given here is "
        "relative to the working folder)",
    )
    common.add_argument(
        "--templates",
        action="append",
        metavar="DIR",
        help="a folder whose templates override the packaged ones (repeatable; relative to "
        "the working folder; default: templates/ beside the catalog, if present)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", help="print only problems and the summary line"
    )
    common.add_argument(
        "--no-cache",
        action="store_true",
        help="always run the whole pipeline (also: HOMEOPS_GEN_NO_CACHE=1)",
    )
    common.add_argument(
        "--format",
        choices=("text", "github"),
        help="github: also print each problem and drifted file as a GitHub Actions "
        "annotation (::error file=...,line=...::) on stdout",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=_prog(),
        parents=[common],
        description="Generate backup plumbing (Terraform, Kustomize, CNPG, alerts, docs) "
        "from one service catalog. Without a command: generate out/.",
        epilog="Exit codes: 0 up to date, 1 out/ differs (--check), 2 bad input or lint error.",
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--check",
        action="store_true",
        default=argparse.SUPPRESS,
        help="write nothing; print a diff and exit 1 if out/ is not up to date",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    generate = commands.add_parser("generate", parents=[common], help="write out/ (default)")
    generate.add_argument(
        "--check", action="store_true", default=argparse.SUPPRESS, help="same as the check command"
    )
    for target in (parser, generate):
        target.add_argument(
            "--exit-non-zero-on-write",
            action="store_true",
            default=argparse.SUPPRESS,
            help="exit 1 when the generate created, updated or deleted a file (pre-commit: "
            "fail a commit whose out/ was not up to date, even when out/ was new)",
        )
    commands.add_parser("check", parents=[common], help="exit 1 with a diff if out/ differs")
    commands.add_parser(
        "lint",
        parents=[common],
        help="check the catalog against the backup policy (exit 2 on errors)",
    )
    explain = commands.add_parser(
        "explain", parents=[common], help="every resolved value of a service and where it came from"
    )
    explain.add_argument("service", help="the service's name")
    commands.add_parser(
        "schema", help="print the JSON Schema of services.yaml (for editor completion)"
    )
    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="check a cluster's PVCs against the catalog (exit 1 if any is unprotected)",
        description="Audit the PVCs, StatefulSets and Deployments of a cluster against the "
        "catalog: every PVC no service covers (with a catalog entry that would), every "
        "service whose claim or workload is not in the cluster, every claim on another "
        "StorageClass than its storage means.",
        epilog="Exit codes: 0 every PVC covered, 1 a PVC unprotected or a service missing, "
        "2 bad input.",
    )
    source = audit.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cluster",
        metavar="FILE",
        help="the output of `kubectl get pvc,statefulset,deployment -A -o json` (- for stdin)",
    )
    source.add_argument(
        "--kubectl",
        action="store_true",
        help="run that kubectl command (the kubectl on PATH, its current context)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {name for name in _DEFAULTS if hasattr(args, name)}
    if extra := sorted(given - _APPLIES[args.command]):
        options = ", ".join("--" + name.replace("_", "-") for name in extra)
        parser.error(f"{options} {'does' if len(extra) == 1 else 'do'} not apply to {args.command}")
    for name, default in _DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    _resolve_paths(parser, args)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader of the diff went away (`--check | head`); only drift prints a diff.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_DRIFT
    except HomeopsError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        if args.format == "github":
            for problem in exc.problems:
                _annotate(problem)
        count = len(exc.problems)
        # A write stopped by an I/O error says what it left (writer.OutputWriteError).
        outcome = getattr(exc, "outcome", "nothing was written")
        print(
            f"homeops_gen: {count} problem{'s' if count != 1 else ''}; {outcome}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _resolve_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Paths given on the command line are relative to the working folder; the defaults of
    ``--out`` and ``--templates`` are beside the catalog, wherever the run starts."""
    if args.out is None:
        args.out = (Path(args.catalog).parent / "out").as_posix()
    for folder in args.templates or ():
        if not Path(folder).is_dir():
            parser.error(f"--templates {folder}: no such folder")


def _template_dirs(args: argparse.Namespace) -> list[Path]:
    if args.templates is not None:
        return [Path(d) for d in args.templates]
    beside = Path(args.catalog).parent / "templates"
    return [beside] if beside.is_dir() else []


def _run(args: argparse.Namespace) -> int:
    if args.command == "schema":
        return _schema()
    fingerprint = None
    if args.command in (None, "generate", "check"):
        fingerprint = _fingerprint(args)
        if fingerprint is not None and (hit := _cached(args, fingerprint)) is not None:
            return hit
    # A short-lived process of acyclic data: the collector's passes only cost time (about
    # half of loading and planning a large catalog).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if args.command == "audit":
            return _audit(args)
        return _run_pipeline(args, fingerprint)
    finally:
        if collecting:
            gc.enable()


def _run_pipeline(args: argparse.Namespace, fingerprint: str | None) -> int:
    from homeops_gen.catalog import load_catalog
    from homeops_gen.plan import build_plan

    catalog = load_catalog(args.catalog)
    if args.command == "explain":
        return _explain(args, catalog, build_plan(catalog))
    findings = _lint_problems(args, catalog)
    lint_errors = _print_lint(args, findings)
    if args.command == "lint" or lint_errors:
        return EXIT_BAD_INPUT if lint_errors else 0
    return _generate(args, catalog, findings, fingerprint)


LintProblems = list[tuple["Problem", str]]


def _lint_problems(args: argparse.Namespace, catalog: Catalog) -> LintProblems:
    """Every lint finding, placed at its catalog line, with its severity."""
    from homeops_gen.catalog.places import CatalogPlaces
    from homeops_gen.errors import Problem
    from homeops_gen.lint import lint_catalog

    findings = lint_catalog(catalog)
    if not findings:
        return []
    # One parse for all findings, in lint's order (errors first).
    positions = CatalogPlaces(Path(args.catalog).read_text(encoding="utf-8"), args.catalog)
    return [
        (
            Problem(
                args.catalog,
                *positions.at(finding.loc),
                finding.loc,
                f"{finding.severity}: {finding.message} [{finding.rule}]",
            ),
            finding.severity,
        )
        for finding in findings
    ]


def _print_lint(args: argparse.Namespace, findings: LintProblems) -> int:
    """Print the lint findings and their count; return how many are errors."""
    for problem, severity in findings:
        print(problem, file=sys.stderr)
        if args.format == "github":
            _annotate(problem, severity)
    errors = sum(1 for _, severity in findings if severity == "error")
    if findings or args.command == "lint":
        warnings = len(findings) - errors
        outcome = "nothing was written" if errors and args.command != "lint" else "done"
        print(
            f"homeops_gen: lint: {errors} error{'s' * (errors != 1)}, {warnings} "
            f"warning{'s' * (warnings != 1)}; {outcome}",
            file=sys.stderr,
        )
    return errors


def _fingerprint(args: argparse.Namespace) -> str | None:
    """The cache key of this run's inputs, or ``None`` when the cache is off or unreadable."""
    from homeops_gen.cache import cache_enabled, input_fingerprint

    if args.no_cache or not cache_enabled():
        return None
    registry = sys.modules.get("homeops_gen.registry")
    if registry is not None and registry.foreign_generators():
        return None  # generators the fingerprint cannot see take part
    try:
        return input_fingerprint(Path(args.catalog), _template_dirs(args))
    except OSError:
        return None  # the full run says what is wrong


def _cached(args: argparse.Namespace, fingerprint: str) -> int | None:
    """Answer from the cache when out/ is what a run with the same inputs left: exit 0."""
    from homeops_gen.cache import lookup
    from homeops_gen.changes import Action, Change, WriteMode
    from homeops_gen.errors import Problem

    hit = lookup(fingerprint, Path(args.out))
    if hit is None:
        return None
    findings = [
        (Problem(file, line, column, tuple(loc), message), severity)
        for file, line, column, loc, message, severity in hit.lint
    ]
    _print_lint(args, findings)
    mode = WriteMode.CHECK if args.check or args.command == "check" else WriteMode.WRITE
    report = Report(mode, tuple(Change(p, Action.IDENTICAL, None, None) for p in hit.files))
    print(f"homeops_gen: {report.summary(Path(args.out).as_posix())}", file=sys.stderr)
    return report.exit_code


def _explain(args: argparse.Namespace, catalog: Catalog, plan: Plan) -> int:
    from homeops_gen.catalog.loader import CatalogPositions
    from homeops_gen.explain import explain_service

    names = [s.name for s in catalog.services]
    if args.service not in names:
        print(
            f"homeops_gen: no service named {args.service!r} in {args.catalog} "
            f"(there are: {', '.join(names)})",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    positions = CatalogPositions(Path(args.catalog).read_text(encoding="utf-8"), args.catalog)
    sys.stdout.write(explain_service(catalog, args.service, plan, positions))
    return 0


def _audit(args: argparse.Namespace) -> int:
    """The coverage audit: each PVC's verdict (unless -q), the catalog's findings at their
    lines, the unprotected PVCs with the entry to add, and a summary."""
    from homeops_gen.audit import (
        audit_cluster,
        catalog_document,
        kubectl_dump,
        read_dump,
    )
    from homeops_gen.catalog import load_catalog
    from homeops_gen.catalog.places import CatalogPlaces
    from homeops_gen.errors import Problem

    dump = kubectl_dump() if args.kubectl else read_dump(args.cluster)
    catalog = load_catalog(args.catalog)
    text = Path(args.catalog).read_text(encoding="utf-8")
    report = audit_cluster(catalog, catalog_document(text), dump)
    unprotected = [r for r in report.claims if r.verdict == "unprotected"]
    annotate = args.format == "github"
    positions = None
    if report.findings or (unprotected and annotate):
        positions = CatalogPlaces(text, args.catalog)  # one parse, only when needed
    if not args.quiet:
        for result in report.claims:
            if result.verdict == "covered" and result.service is not None:
                who = f"{result.service.name} (services[{result.service.index}])"
                print(f"cluster: {result.claim}: covered by {who}: {result.why}", file=sys.stderr)
            elif result.verdict == "not data":
                print(f"cluster: {result.claim}: not data: {result.why}", file=sys.stderr)
    problems = []
    for finding in report.findings:
        assert positions is not None
        line, column = positions.at(finding.loc, at_key=True)
        message = f"{finding.severity}: {finding.message}"
        problem = Problem(args.catalog, line, column, finding.loc, message)
        problems.append((problem, finding.severity))
    for problem, severity in sorted(problems):
        print(problem, file=sys.stderr)
        if annotate:
            _annotate(problem, severity)
    for result in unprotected:
        c = result.claim
        on = f"StorageClass {c.storage_class}" if c.storage_class else "no StorageClass"
        head = f"{c}: not covered by any service ({on}, {c.size or 'size unknown'})"
        if result.covered_by_snippet_of is not None:
            lines = [
                f"{head}; the entry added for {result.covered_by_snippet_of} covers it too "
                f"({result.why})"
            ]
        else:
            lines = [head + "; add:", *result.snippet]
        print("cluster: " + "\n".join(lines), file=sys.stderr)
        if annotate and positions is not None:
            line, column = positions.at(("services",), at_key=True)
            _annotate(Problem(args.catalog, line, column, (), "\n".join(lines)), "error")
    print(f"homeops_gen: {report.summary()}", file=sys.stderr)
    return report.exit_code


def _generate(
    args: argparse.Namespace, catalog: Catalog, findings: LintProblems, fingerprint: str | None
) -> int:
    from homeops_gen.plan import iter_plan
    from homeops_gen.render import render_stream
    from homeops_gen.writer import check_output, interruption_note, write_output

    # Each file is planned, rendered and compared in turn and then let go: the run holds
    # the bytes of the files that differ, not of every file.
    rendered = render_stream(iter_plan(catalog), _template_dirs(args))
    digests: dict[str, str] = {}
    if fingerprint is not None:
        rendered = _digested(rendered, digests)
    out_display = Path(args.out).as_posix()
    if args.check or args.command == "check":
        report = check_output(rendered, args.out)
        _print_diffs(report, out_display, args.format == "github")
    else:
        report = write_output(rendered, args.out)
    if not args.quiet:
        for line in report.file_lines():
            print(line, file=sys.stderr)
    if (note := interruption_note(report, out_display)) is not None:
        print(f"homeops_gen: {note}", file=sys.stderr)
    print(f"homeops_gen: {report.summary(out_display)}", file=sys.stderr)
    if report.exit_code == 0 and fingerprint is not None:
        _remember(args, catalog, report, findings, fingerprint, digests)
    if args.exit_non_zero_on_write and report.drift:
        return EXIT_DRIFT
    return report.exit_code


def _remember(
    args: argparse.Namespace,
    catalog: Catalog,
    report: Report,
    findings: LintProblems,
    fingerprint: str,
    digests: Mapping[str, str],
) -> None:
    """Record an up-to-date out/ for the next run: the digests of the bytes compared or
    written, by path (``digests``: of the rendered files).

    The fingerprint is the one taken before the run, so a catalog saved during it does not
    get recorded against the output of the old one.
    """
    import time
    import zoneinfo

    from homeops_gen.cache import digest, record, signatures
    from homeops_gen.changes import Action
    from homeops_gen.registry import foreign_generators

    if foreign_generators():
        return  # generators the fingerprint cannot see took part
    files = {}
    for c in report.changes:
        if c.action is Action.DELETE:
            continue
        held = c.old if c.action is Action.IDENTICAL else c.new  # identical: what is on disk
        files[c.path] = digest(held) if held is not None else digests[c.path]
    zone = catalog.settings.timezone
    read = [Path(root) / zone for root in zoneinfo.TZPATH if (Path(root) / zone).is_file()][:1]
    lint: list[list[Any]] = [
        [p.file, p.line, p.column, list(p.loc), p.message, severity] for p, severity in findings
    ]
    taken = time.time_ns()
    status = signatures(Path(args.out), files)
    record(fingerprint, Path(args.out), files, lint, read, status, taken)


def _digested(
    rendered: Iterable[tuple[str, bytes]], digests: dict[str, str]
) -> Iterator[tuple[str, bytes]]:
    """``rendered``, noting the cache's digest of each file's bytes on the way."""
    from homeops_gen.cache import digest

    for path, data in rendered:
        digests[path] = digest(data)
        yield path, data
        del data  # not held while the next file is made


def _print_diffs(report: Report, out_display: str, annotate: bool) -> None:
    from homeops_gen.writer import format_diff

    for change in report.drift:
        sys.stdout.write(format_diff(change, out_display))
        if annotate:
            word = check_word(change.action)
            _annotate(
                f"{out_display}/{change.path} is {word}: run `python -m homeops_gen` and "
                "commit the result",
                file=f"{out_display}/{change.path}",
            )
    sys.stdout.flush()


def _schema() -> int:
    import json

    from homeops_gen.schema import catalog_json_schema

    sys.stdout.write(json.dumps(catalog_json_schema(), indent=2, sort_keys=True) + "\n")
    return 0


def _escape(text: str, *, property_value: bool = False) -> str:
    """GitHub's workflow-command escaping (properties also escape ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def _annotate(problem: object, severity: str = "error", file: str | None = None) -> None:
    """Print ``problem`` as a GitHub Actions annotation on stdout."""
    from homeops_gen.errors import Problem, format_loc

    properties = {}
    message = str(problem)
    if isinstance(problem, Problem):
        properties["file"] = problem.file
        if problem.line:
            properties["line"], properties["col"] = str(problem.line), str(problem.column)
        message = (
            f"{format_loc(problem.loc)}: {problem.message}" if problem.loc else problem.message
        )
    elif file is not None:
        properties["file"] = file
    fields = ",".join(f"{k}={_escape(v, property_value=True)}" for k, v in properties.items())
    kind = "warning" if severity == "warning" else "error"
    print(f"::{kind} {fields}::{_escape(message)}" if fields else f"::{kind}::{_escape(message)}")
