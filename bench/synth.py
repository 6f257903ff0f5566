"""The Kubernetes objects of a catalog, whole process, two ways (timed by bench/run.py).

::

    python bench/synth.py cdk8s CATALOG OUTDIR     # BackupChart + app.synth() into OUTDIR
    python bench/synth.py objects CATALOG OUTDIR   # native: only the object files, written

``cdk8s`` loads the catalog, builds :class:`homeops_gen.cdk8s.BackupChart` (the objects of
:func:`homeops_gen.objects.kubernetes_objects`) and synthesises it into ``OUTDIR``
(importing cdk8s starts jsii's Node.js runtime). ``objects`` renders the plan files whose
documents are those objects (:func:`homeops_gen.objects.is_object_file`) and writes them
with homeops_gen's writer. Each prints what it wrote on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(REPO))  # this checkout's homeops_gen, even without an editable install


def synth_cdk8s(catalog_path: Path, outdir: Path) -> str:
    import cdk8s

    from homeops_gen import load_catalog
    from homeops_gen.cdk8s import BackupChart

    app = cdk8s.App(outdir=str(outdir))
    chart = BackupChart(app, "backups", load_catalog(catalog_path))
    app.synth()
    files = sum(1 for path in outdir.rglob("*") if path.is_file())
    return f"cdk8s: {files} file(s), {len(chart.api_objects)} objects"


def write_objects(catalog_path: Path, outdir: Path) -> str:
    from homeops_gen import build_plan, load_catalog, write_output
    from homeops_gen.objects import is_object_file
    from homeops_gen.render import render_file

    plan = build_plan(load_catalog(catalog_path))
    rendered = {f.path: render_file(f) for f in plan.files if is_object_file(f.path)}
    report = write_output(rendered, outdir)
    return f"native objects: {len(report.changes)} files written"


def main(argv: Sequence[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("cdk8s", "objects"):
        print(__doc__, file=sys.stderr)
        return 2
    catalog, outdir = Path(argv[1]), Path(argv[2])
    # jsii's Node.js runtime warns on stderr about old Node versions; not measured here.
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    majors = ",".join(str(major) for major in range(10, 40))
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", majors)
    action = synth_cdk8s if argv[0] == "cdk8s" else write_objects
    print(action(catalog, outdir), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
