"""Command line: ``python -m homeops_gen [--check]``. The only module that prints or exits.

Exit codes: 0 up to date / written, 1 drift (``--check``), 2 bad input.
Messages go to stderr, diffs to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from homeops_gen.errors import HomeopsError
from homeops_gen.report import EXIT_BAD_INPUT, EXIT_DRIFT, Report

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m homeops_gen",
        description="Generate backup plumbing (Terraform, Kustomize, CNPG, alerts, docs) "
        "from one service catalog.",
        epilog="Exit codes: 0 up to date, 1 out/ differs (--check), 2 bad input.",
    )
    parser.add_argument(
        "--catalog",
        default="services.yaml",
        metavar="PATH",
        help="the service catalog (default: %(default)s)",
    )
    parser.add_argument(
        "--out", default="out", metavar="DIR", help="the generated folder (default: %(default)s)"
    )
    parser.add_argument(
        "--templates",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder whose templates override the packaged ones (repeatable; "
        "default: templates/ beside the catalog, if present)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; print a diff and exit 1 if out/ is not up to date",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and the summary line"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader of the diff went away (`--check | head`); only drift prints a diff.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_DRIFT
    except HomeopsError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        count = len(exc.problems)
        print(
            f"homeops_gen: {count} problem{'s' if count != 1 else ''}; nothing was written",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _template_dirs(args: argparse.Namespace) -> list[Path]:
    if args.templates is not None:
        return [Path(d) for d in args.templates]
    beside = Path(args.catalog).parent / "templates"
    return [beside] if beside.is_dir() else []


def _run(args: argparse.Namespace) -> int:
    from homeops_gen.catalog import load_catalog
    from homeops_gen.plan import build_plan
    from homeops_gen.render import render_plan
    from homeops_gen.writer import check_output, write_output

    catalog = load_catalog(args.catalog)
    rendered = render_plan(build_plan(catalog), _template_dirs(args))
    out_display = Path(args.out).as_posix()
    if args.check:
        report = check_output(rendered, args.out)
        _print_diffs(report, out_display)
    else:
        report = write_output(rendered, args.out)
    if not args.quiet:
        for line in report.file_lines():
            print(line, file=sys.stderr)
    print(f"homeops_gen: {report.summary(out_display)}", file=sys.stderr)
    return report.exit_code


def _print_diffs(report: Report, out_display: str) -> None:
    from homeops_gen.writer import format_diff

    for change in report.drift:
        sys.stdout.write(format_diff(change, out_display))
    sys.stdout.flush()
