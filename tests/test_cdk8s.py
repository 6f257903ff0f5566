"""The cdk8s extra: ``synth`` writes the native Kubernetes objects, object for object.

The oracle is always the native output read back with ``yaml.safe_load_all`` (the committed
``out/`` for the reference catalog, a fresh ``write_output`` for inline ones), never
:func:`kubernetes_objects` itself.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG
from test_cnpg import OWNED

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan, write_output
from homeops_gen.objects import kubernetes_objects

#: Modules (and their submodules) the command line must never load.
FORBIDDEN = ("cdk8s", "constructs", "jsii", "homeops_gen.cdk8s")


def forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


#: Volsync app values, an in-tree CNPG cluster (with a restore drill) and SMALL_CATALOG's
#: services: every family of object from a catalog small enough to read.
MIXED_CATALOG = (
    MINIMAL_HEAD.replace(
        "services:\n",
        "  object_stores:\n"
        "    garage: {provider: garage, endpoint: http://garage.lan:3900, region: garage, "
        "bucket: pg-archive}\n"
        "services:\n",
    )
    + textwrap.indent(
        textwrap.dedent(
            """\
            - name: app
              namespace: app
              storage: local-hostpath
              churn: low
              engine: files
              volsync: {capacity: 1Gi}
            - name: legacy-db
              namespace: db
              storage: local-hostpath
              churn: high
              engine: postgresql
              retention: 30d
              cnpg:
                cluster: legacy-db
                object_store: garage
                mode: in-tree
                server_generation: 3
                recovery_target_time: "2026-03-23T10:00:00Z"
            """
        ),
        "  ",
    )
    + SMALL_CATALOG.split("services:\n", 1)[1]
)


def require_module(name: str) -> ModuleType:
    """Import ``name``; skip locally when it cannot be, fail under ``CI=true`` (as
    ``require_tool``). Not only ImportError: cdk8s's import starts Node.js through jsii,
    and without ``node`` on PATH jsii fails with other errors."""
    try:
        return importlib.import_module(name)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{name} is required under CI=true (the test extra installs it; "
                f"cdk8s also needs node on PATH): {reason}"
            )
        pytest.skip(f"{name} cannot be imported ({reason})")


# ---------------------------------------------------------------------------- the oracle


#: A CNPG folder's kustomize inputs (its Component or Kustomization, the patch of the user's
#: Cluster, the patch's schema) and the owned cluster's restore drill.
CNPG_INPUTS = {"kustomization.yaml", "cluster-patch.yaml", "cluster-schema.yaml", "recovery.yaml"}


def is_native_object_file(relative: str) -> bool:
    """The oracle's own choice of files: ``kubernetes/`` minus the Components, the CNPG
    kustomize inputs and recovery, and a drill folder's kustomization and scratch objects."""
    parts = relative.split("/")
    return (
        parts[0] == "kubernetes"
        and relative.endswith((".yaml", ".yml"))
        and parts[1] != "components"
        # kubernetes/cnpg/<namespace>/<cluster>/<file>; recovery/ below it is the drill
        and not (parts[1] == "cnpg" and (parts[-1] in CNPG_INPUTS or len(parts) > 5))
        # kubernetes/drills/<namespace>/<service>/: the CronJob and its RBAC are applied; the
        # kustomization and the scratch objects its script creates are not
        and not (parts[1] == "drills" and parts[-1] not in ("rbac.yaml", "cronjob.yaml"))
    )


def native_objects(out: Path) -> list[dict[str, Any]]:
    """Every object of the native output below ``out``, by path, then document order."""
    files = sorted(
        (p.relative_to(out).as_posix(), p) for p in (out / "kubernetes").rglob("*") if p.is_file()
    )
    return [
        document
        for relative, path in files
        if is_native_object_file(relative)
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "apiVersion" in document and "kind" in document
    ]


def identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    metadata = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], metadata.get("namespace", ""), metadata["name"])


def synth(tmp_path: Path, catalog: Any, **chart_kwargs: Any) -> list[dict[str, Any]]:
    """Synthesize ``catalog`` with a fresh app into ``tmp_path``; every document, in order."""
    cdk8s = require_module("cdk8s")
    from homeops_gen.cdk8s import BackupChart

    outdir = tmp_path / "dist"
    app = cdk8s.App(outdir=str(outdir))
    BackupChart(app, "backups", catalog, **chart_kwargs)
    app.synth()
    assert [p.name for p in outdir.iterdir()] == ["backups.k8s.yaml"]
    return [d for d in yaml.safe_load_all((outdir / "backups.k8s.yaml").read_text()) if d]


def assert_same_objects(synthesized: list[dict[str, Any]], native: list[dict[str, Any]]) -> None:
    assert native, "the oracle found no objects"
    duplicates = [key for key, n in Counter(map(identity, native)).items() if n > 1]
    assert not duplicates, f"the native output names an object twice: {duplicates}"
    by_identity = {identity(o): o for o in native}
    synthesized_ids = [identity(o) for o in synthesized]
    assert sorted(synthesized_ids) == sorted(by_identity), "missing or extra objects"
    for obj in synthesized:
        assert obj == by_identity[identity(obj)], identity(obj)
    assert synthesized == native  # and in the same order


def write_native(tmp_path: Path, text: str) -> tuple[Any, Path]:
    catalog = load_catalog_text(text, "services.yaml")
    out = tmp_path / "out"
    write_output(render_plan(build_plan(catalog)), out)
    return catalog, out


REFERENCE = load_catalog(REPO / "services.yaml")


# ---------------------------------------------------------------------------- synth


def test_synth_of_the_reference_catalog_is_the_committed_output(tmp_path: Path) -> None:
    native = native_objects(REPO / "out")
    assert_same_objects(synth(tmp_path, REFERENCE), native)
    kinds = {o["kind"] for o in native}
    assert {
        "ConfigMap",
        "KopiaMaintenance",
        "ScheduledBackup",
        "ObjectStore",
        "ExternalSecret",
        "PrometheusRule",
    } <= kinds
    assert "Cluster" not in kinds  # the reference clusters are the user's: only patched


@pytest.mark.parametrize("text", [SMALL_CATALOG, MIXED_CATALOG], ids=["small", "mixed"])
def test_synth_of_an_inline_catalog_is_its_native_output(tmp_path: Path, text: str) -> None:
    catalog, out = write_native(tmp_path, text)
    assert_same_objects(synth(tmp_path, catalog), native_objects(out))


def test_chart_labels_merge_in_without_renaming(tmp_path: Path) -> None:
    catalog, out = write_native(tmp_path, MIXED_CATALOG)
    native = native_objects(out)
    synthesized = synth(tmp_path, catalog, labels={"app.kubernetes.io/part-of": "backups"})
    assert [identity(o) for o in synthesized] == [identity(o) for o in native]
    for got, want in zip(synthesized, native, strict=True):
        labels = {"app.kubernetes.io/part-of": "backups", **want["metadata"].get("labels", {})}
        assert got["metadata"]["labels"] == labels
        assert {**got, "metadata": {}} == {**want, "metadata": {}}


def test_the_chart_holds_no_placeholder_and_no_restore_drill(tmp_path: Path) -> None:
    synthesized = synth(tmp_path, REFERENCE)
    # Flux's placeholders only in an object Flux is told not to substitute (the dashboard's
    # ${datasource} is Grafana's own variable).
    substituted = [
        o
        for o in synthesized
        if o["metadata"].get("annotations", {}).get("kustomize.toolkit.fluxcd.io/substitute")
        != "disabled"
    ]
    assert "${" not in json.dumps(substituted)
    assert len(substituted) < len(synthesized)
    # The reference clusters are the user's: the chart adds their archiving objects only.
    assert not [o for o in synthesized if o["kind"] == "Cluster"]
    assert [o for o in synthesized if o["kind"] == "ScheduledBackup"]
    owned = synth(tmp_path / "owned", load_catalog_text(OWNED))
    clusters = [o for o in owned if o["kind"] == "Cluster"]
    assert clusters and all("bootstrap" not in o["spec"] for o in clusters)


# ---------------------------------------------------------------------------- kubernetes_objects


@pytest.mark.parametrize("text", [SMALL_CATALOG, MIXED_CATALOG], ids=["small", "mixed"])
def test_kubernetes_objects_are_what_the_native_output_reads_back(
    tmp_path: Path, text: str
) -> None:
    catalog, out = write_native(tmp_path, text)
    assert kubernetes_objects(catalog) == native_objects(out)


def test_kubernetes_objects_of_the_reference_catalog_are_the_committed_ones() -> None:
    assert kubernetes_objects(REFERENCE) == native_objects(REPO / "out")


def test_the_left_out_restore_drills_would_clash_with_their_clusters(tmp_path: Path) -> None:
    """Why ``recovery.yaml`` stays out: each drill is a second ``Cluster`` of the same name."""
    catalog, out = write_native(tmp_path, OWNED)
    folder = out / "kubernetes" / "cnpg"
    drills = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*/*/recovery.yaml"))]
    assert drills
    included = {identity(o) for o in kubernetes_objects(catalog)}
    assert all(identity(d) in included for d in drills)


def _json_types_only(node: Any) -> bool:
    if isinstance(node, dict):
        return type(node) is dict and all(
            type(k) is str and _json_types_only(v) for k, v in node.items()
        )
    if isinstance(node, list):
        return type(node) is list and all(_json_types_only(v) for v in node)
    return node is None or type(node) in (str, int, float, bool)


def test_kubernetes_objects_returns_plain_copies() -> None:
    first = kubernetes_objects(REFERENCE)
    pristine = json.loads(json.dumps(first))
    assert _json_types_only(first)
    for obj in first:
        obj["metadata"]["name"] = "mutated"
        obj.setdefault("spec", {})["extra"] = [1]
        for value in obj.values():
            if isinstance(value, dict):
                value.clear()
    assert kubernetes_objects(REFERENCE) == pristine


def test_kubernetes_objects_does_not_import_cdk8s() -> None:
    script = (
        "from homeops_gen import load_catalog\n"
        "from homeops_gen.objects import kubernetes_objects\n"
        "assert kubernetes_objects(load_catalog('services.yaml'))\n"
    )
    assert forbidden(loaded_modules(["-c", script])) == []


# ---------------------------------------------------------------------------- the CLI


def loaded_modules(argv: list[str], cwd: Path = REPO) -> list[str]:
    """Modules imported by ``python -X importtime ARGV`` (from its import-time report)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
    }
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    names = [line.rsplit("|", 1)[1].strip() for line in lines[1:]]  # [0] is the header
    assert "homeops_gen" in names
    return names


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--check", "-q"], ["lint", "-q"]],
    ids=["help", "check", "lint"],
)
def test_the_cli_never_imports_cdk8s(args: list[str]) -> None:
    names = loaded_modules(["-m", "homeops_gen", *args])
    assert forbidden(names) == []


def test_a_full_generate_never_imports_cdk8s(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from homeops_gen.cli import main\n"
        f"code = main(['--catalog', {str(REPO / 'services.yaml')!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '-q'])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0
    assert "homeops_gen.generators" in modules  # it really generated
    assert (tmp_path / "out" / "kubernetes").is_dir()
    assert forbidden(modules) == []
