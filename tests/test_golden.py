"""Golden trees: the rendered output of each catalog, file for file.

The reference catalog's golden tree is the repository's own ``out/`` (so CI's drift check
and this test guard the same bytes); small inline catalogs have theirs under ``snapshots/``.
Refresh after a reviewed change with ``python -m pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG
from pvc_catalogs import KOPIUR_ONLY, MIXED_ENGINES, VOLSYNC_ONLY
from test_cnpg import LEGACY, OWNED

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.plan import MANIFEST_NAME
from homeops_gen.writer import render_manifest


def as_tree(rendered: dict[str, bytes]) -> dict[str, Any]:
    """``{"a/b.yaml": bytes}`` → ``{"a": {"b.yaml": bytes}}``, manifest included."""
    files = {**rendered, MANIFEST_NAME: render_manifest(tuple(rendered))}
    tree: dict[str, Any] = {}
    for path, data in files.items():
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = data
    return tree


def test_reference_catalog_matches_committed_out(snapshot: Any) -> None:
    rendered = render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    snapshot.snapshot_dir = REPO
    snapshot.assert_match_dir(as_tree(rendered), "out")


INLINE_CATALOGS = {
    "no-services": MINIMAL_HEAD + "  []\n",
    "small": SMALL_CATALOG,
    "cnpg-in-tree": LEGACY,
    "cnpg-owned": OWNED,
    # PVC copies by one engine, the other, and both side by side.
    "kopiur-only": KOPIUR_ONLY,
    "volsync-only": VOLSYNC_ONLY,
    "mixed-engines": MIXED_ENGINES,
}


@pytest.mark.parametrize("name", sorted(INLINE_CATALOGS))
def test_inline_catalog(name: str, snapshot: Any) -> None:
    catalog = load_catalog_text(INLINE_CATALOGS[name], "services.yaml")
    snapshot.assert_match_dir(as_tree(render_plan(build_plan(catalog))), "out")


def test_reference_catalog_resolves_the_seed_policies() -> None:
    """The reference catalog encodes the backup seed's choices; guard the load-bearing ones."""
    catalog = load_catalog(REPO / "services.yaml")
    vaultwarden = catalog.service("vaultwarden")
    # 6-hourly in Europe/London: the October fall-back stretches one gap to 7h.
    assert vaultwarden.schedule.max_gap().total_seconds() == 7 * 3600
    assert vaultwarden.schedule.calendar_gap().total_seconds() == 6 * 3600
    assert vaultwarden.integrity is not None
    prometheus = catalog.service("prometheus")
    assert prometheus.schedule.first_weekday == 0
    assert prometheus.schedule.max_gap().days == 35
    assert str(prometheus.retention) == "2 copies"
    assert not prometheus.offsite.included
    assert catalog.service("postgresql").methods == ("dump", "cnpg")
    assert catalog.service("immich-postgres").methods == ("cnpg",)
    assert catalog.service("dragonfly").methods == ("volsync",)
    assert catalog.service("loki").snapshot_layer is None  # high churn stays out of LVM
    assert catalog.service("calibre").snapshot_layer == "lvm"
    assert catalog.service("postgresql").backup_path == "/mnt/main/dbaas-backups/postgresql"
    assert catalog.service("etcd").backup_path == "/mnt/main/etcd-backup"
    databases = catalog.service("postgresql").connection
    assert databases is not None and len(databases.databases) == 12  # type: ignore[attr-defined]


def test_output_does_not_depend_on_how_the_catalog_path_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    relative = render_plan(build_plan(load_catalog("services.yaml")))
    absolute = render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    assert relative == absolute
    assert not any(str(REPO).encode() in data for data in absolute.values())


def test_golden_tree_is_not_empty() -> None:
    """A golden test that compares nothing proves nothing."""
    rendered = render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    assert {"README.md", "catalog/resolved.yaml"} <= set(rendered)
    assert all(len(data) > 100 for data in rendered.values())
