"""Profile one in-process generate of a synthetic catalog with cProfile.

Run from the repository root::

    python bench/profile_generate.py                    # 1,000 services, top 25 by cumtime
    python bench/profile_generate.py --size 300 --top 40 --sort tottime --out gen.prof

The generate is the CLI's (load, lint, plan, render, write into an empty temporary out/);
``--out`` keeps the raw profile for ``python -m pstats`` or snakeviz.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from run import run_pipeline  # bench/ is sys.path[0]
from synthetic import synthetic_catalog

from homeops_gen import WriteMode


def profile_generate(size: int) -> cProfile.Profile:
    """A profile of one generate of a ``size``-service catalog into an empty out/."""
    with tempfile.TemporaryDirectory(prefix="homeops-profile-") as work:
        catalog = Path(work) / "services.yaml"
        catalog.write_text(synthetic_catalog(size), encoding="utf-8")
        profiler = cProfile.Profile()
        profiler.enable()
        run_pipeline(catalog, Path(work) / "out", WriteMode.WRITE)
        profiler.disable()
    return profiler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cProfile one generate (see the docstring).")
    parser.add_argument("--size", type=int, default=1000, help="services (default: 1000)")
    parser.add_argument("--top", type=int, default=25, help="rows to print (default: 25)")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative)")
    parser.add_argument("--out", type=Path, help="also save the raw profile here")
    args = parser.parse_args(argv)
    profiler = profile_generate(args.size)
    if args.out is not None:
        profiler.dump_stats(str(args.out))
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
