"""CloudNativePG archiving to Garage: schema-valid objects, CNPG's own rules, the catalog's."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from crds import validate_all

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import CnpgCluster
from homeops_gen.catalog.policy import CNPG_PLUGIN, barman_retention, bucket_problem
from homeops_gen.errors import CatalogError
from homeops_gen.generators.cnpg import cluster_documents
from homeops_gen.schedule import parse_cron

CATALOG = load_catalog(REPO / "services.yaml")
CLUSTERS = {s.cnpg.name: s.cnpg for s in CATALOG.services if s.cnpg is not None}
OUT = REPO / "out" / "kubernetes" / "cnpg"

LEGACY = MINIMAL_HEAD.replace(
    "services:\n",
    "  object_stores:\n"
    "    garage: {provider: garage, endpoint: http://garage.lan:3900, region: garage, "
    "bucket: pg-archive}\n"
    "services:\n",
) + textwrap.indent(
    textwrap.dedent(
        """\
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


def files_of(cluster: CnpgCluster) -> dict[str, list[dict[str, Any]]]:
    folder = OUT / cluster.namespace / cluster.name
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted(folder.iterdir())
    }


def all_clusters() -> list[tuple[str, CnpgCluster, dict[str, list[dict[str, Any]]]]]:
    """The reference catalog's clusters (from out/) and the in-tree one (rendered inline)."""
    found = [(name, cluster, files_of(cluster)) for name, cluster in sorted(CLUSTERS.items())]
    legacy = load_catalog_text(LEGACY)
    cluster = legacy.service("legacy-db").cnpg
    assert cluster is not None
    found.append(("legacy-db", cluster, cluster_documents(legacy.settings, cluster)))
    return found


CASES = all_clusters()
IDS = [name for name, _, _ in CASES]


def test_every_cnpg_service_has_its_folder_and_the_dump_too() -> None:
    assert sorted(CLUSTERS) == ["immich-postgres", "pg-cluster"]
    for cluster in CLUSTERS.values():
        expected = {
            "cluster.yaml",
            "externalsecret.yaml",
            "objectstore.yaml",
            "recovery.yaml",
            "scheduledbackup.yaml",
        }
        assert set(files_of(cluster)) == expected
    # The backup seed dumps PostgreSQL too: both outputs come from the one service entry.
    assert (REPO / "out/terraform/stacks/postgresql/backup.tf").exists()
    assert CATALOG.service("postgresql").methods == ("dump", "cnpg")


@pytest.mark.parametrize(("name", "cluster", "files"), CASES, ids=IDS)
def test_every_object_validates_strictly(
    name: str, cluster: CnpgCluster, files: dict[str, list[dict[str, Any]]]
) -> None:
    documents = [d for docs in files.values() for d in docs]
    assert validate_all(documents) == {}
    assert all(d["metadata"]["namespace"] == cluster.namespace for d in documents)


def wal_archivers(spec: dict[str, Any]) -> int:
    return sum(1 for p in spec.get("plugins", []) if p.get("isWALArchiver"))


@pytest.mark.parametrize(("name", "cluster", "files"), CASES, ids=IDS)
def test_cnpg_rules_the_schema_cannot_see(
    name: str, cluster: CnpgCluster, files: dict[str, list[dict[str, Any]]]
) -> None:
    for store in files.get("objectstore.yaml", []):
        # barman-cloud's CEL rule: the serverName belongs to the Cluster's plugin parameters.
        assert "serverName" not in store["spec"]["configuration"]
    for file in ("cluster.yaml", "recovery.yaml"):
        (spec,) = (d["spec"] for d in files[file])
        in_tree = "barmanObjectStore" in spec.get("backup", {})
        # Exactly one WAL archiver, and never a plugin archiver next to the in-tree one.
        assert wal_archivers(spec) + in_tree == 1, file
        if cluster.mode == "plugin":
            (plugin,) = spec["plugins"]
            assert plugin["name"] == CNPG_PLUGIN
            assert plugin["parameters"]["barmanObjectName"] == f"{name}-garage"
    (backup,) = files["scheduledbackup.yaml"]
    fields = backup["spec"]["schedule"].split()
    assert len(fields) == 6 and fields[0] == "0"  # seconds first
    parse_cron(" ".join(fields[1:]))
    assert backup["spec"]["method"] == (
        "plugin" if cluster.mode == "plugin" else "barmanObjectStore"
    )


@pytest.mark.parametrize(("name", "cluster", "files"), CASES, ids=IDS)
def test_archives_go_to_garage_with_the_catalogs_region_and_checksum_settings(
    name: str, cluster: CnpgCluster, files: dict[str, list[dict[str, Any]]]
) -> None:
    if cluster.mode == "plugin":
        (store,) = files["objectstore.yaml"]
        configuration = store["spec"]["configuration"]
        env = store["spec"]["instanceSidecarConfiguration"]["env"]
        retention = store["spec"]["retentionPolicy"]
    else:
        (live,) = files["cluster.yaml"]
        configuration = live["spec"]["backup"]["barmanObjectStore"]
        env = live["spec"]["env"]
        retention = live["spec"]["backup"]["retentionPolicy"]
    assert configuration["endpointURL"] == cluster.store.endpoint
    assert configuration["destinationPath"] == f"s3://{cluster.store.bucket}/"
    assert {e["name"]: e["value"] for e in env} == {
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    }
    assert retention == cluster.retention_policy
    (secret,) = files["externalsecret.yaml"]
    data = secret["spec"]["target"]["template"]["data"]
    assert data["REGION"] == cluster.store.region  # the one region, signed with
    region_ref = configuration["s3Credentials"]["region"]
    assert region_ref == {"name": secret["metadata"]["name"], "key": "REGION"}


@pytest.mark.parametrize(("name", "cluster", "files"), CASES, ids=IDS)
def test_recovery_never_archives_over_its_own_history(
    name: str, cluster: CnpgCluster, files: dict[str, list[dict[str, Any]]]
) -> None:
    (live,) = files["cluster.yaml"]
    (restored,) = files["recovery.yaml"]
    spec = restored["spec"]
    assert spec["bootstrap"]["recovery"]["source"] == "origin"
    (origin,) = spec["externalClusters"]

    def server_name(source: dict[str, Any]) -> str:
        if "plugin" in source:
            return str(source["plugin"]["parameters"]["serverName"])
        return str(source["barmanObjectStore"]["serverName"])

    def archiving_name(cluster_spec: dict[str, Any]) -> str:
        if cluster_spec.get("plugins"):
            return str(cluster_spec["plugins"][0]["parameters"]["serverName"])
        return str(cluster_spec["backup"]["barmanObjectStore"]["serverName"])

    assert server_name(origin) == archiving_name(live["spec"]) == cluster.server_name
    assert archiving_name(spec) == cluster.next_server_name != cluster.server_name
    if cluster.recovery_target_time:
        assert spec["bootstrap"]["recovery"]["recoveryTarget"] == {
            "targetTime": cluster.recovery_target_time
        }


def test_legacy_cluster_resolves_its_generation_and_retention() -> None:
    cluster = load_catalog_text(LEGACY).service("legacy-db").cnpg
    assert cluster is not None
    assert (cluster.server_name, cluster.next_server_name) == ("legacy-db-v3", "legacy-db-v4")
    assert cluster.retention_policy == "30d"


# --- catalog rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("region: garage, bucket", "region: us-east-1, bucket"),
            "differs from Garage's s3_region",
        ),
        (("bucket: pg-archive", "bucket: pg..archive"), "two adjacent periods"),
        (("bucket: pg-archive", "bucket: 10.0.0.1"), "formatted as an IP address"),
        (("bucket: pg-archive", "bucket: Pg_Archive"), "not an S3 bucket name"),
        (("retention: 30d", "retention: 36h"), "barman's <n>d|w|m form"),
        (("retention: 30d", "retention: 2 copies"), "barman's <n>d|w|m form"),
        (("object_store: garage\n", "object_store: minio\n"), "'minio' is not defined"),
        (
            ("retention: 30d", "cadence: monthly-first-sunday\n    retention: 40d"),
            "cannot skip days",
        ),
    ],
    ids=[
        "region-mismatch",
        "double-dot-bucket",
        "ip-bucket",
        "bad-bucket-chars",
        "hours-retention",
        "copies-retention",
        "undefined-store",
        "first-sunday",
    ],
)
def test_catalog_errors(edit: tuple[str, str], message: str) -> None:
    text = LEGACY.replace("  object_stores:", "  garage: {s3_region: garage}\n  object_stores:")
    old, new = edit
    assert old in text
    with pytest.raises(CatalogError) as error:
        load_catalog_text(text.replace(old, new, 1), "services.yaml")
    assert any(message in line for line in error.value.lines), error.value.lines


@pytest.mark.parametrize(
    ("days", "policy"), [(14, "2w"), (30, "30d"), (7, "1w"), (3, "3d"), (1, "1d")]
)
def test_barman_retention(days: int, policy: str) -> None:
    import datetime as dt

    from homeops_gen.catalog.model import Retention

    assert barman_retention(Retention(period=dt.timedelta(days=days))) == policy


def test_bucket_rules() -> None:
    assert bucket_problem("cnpg-backups") is None
    assert bucket_problem("xn--bucket") is not None
    assert bucket_problem("a.-b") is not None


# --- Garage provisioning ---------------------------------------------------------------------

FAKE_GARAGE = """\
#!/usr/bin/env python3
# A stand-in for the garage CLI that keeps buckets, keys and grants in a JSON file.
import json, os, sys
path = os.environ["GARAGE_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {"buckets": [], "keys": [], "log": []}
args = sys.argv[1:]
state["log"].append(args)
kind, verb, name = args[0], args[1], args[2]
table = state["buckets" if kind == "bucket" else "keys"]
code = 0
if verb == "info":
    code = 0 if name in table else 1
elif verb == "create":
    if name in table:
        print("already exists", file=sys.stderr); code = 1
    else:
        table.append(name)
json.dump(state, open(path, "w"))
sys.exit(code)
"""


def test_provisioning_is_idempotent(tmp_path: Path) -> None:
    bash = require_tool("bash")
    garage = tmp_path / "garage"
    garage.write_text(FAKE_GARAGE)
    garage.chmod(0o755)
    script = REPO / "out" / "garage" / "provision.sh"
    env = {**os.environ, "GARAGE": str(garage), "GARAGE_STATE": str(tmp_path / "state.json")}
    for _ in range(2):
        result = subprocess.run(
            [bash, str(script)], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["buckets"] == ["cnpg-backups"]
    assert state["keys"] == ["homeops-cnpg-backups"]
    creates = [args for args in state["log"] if args[1] == "create"]
    assert creates == [
        ["bucket", "create", "cnpg-backups"],
        ["key", "create", "homeops-cnpg-backups"],
    ]  # the second run made none
    grants = [args for args in state["log"] if args[1] == "allow"]
    assert grants[0] == [
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        "cnpg-backups",
        "--key",
        "homeops-cnpg-backups",
    ]


def test_garage_region_config_matches_the_catalog() -> None:
    text = (REPO / "out" / "garage" / "s3_api.toml").read_text()
    assert 's3_region = "garage"' in text
    assert CATALOG.settings.garage_s3_region == "garage"
    assert all(c.store.region == "garage" for c in CLUSTERS.values())


def test_no_cnpg_no_garage_files() -> None:
    rendered = render_plan(build_plan(load_catalog_text(MINIMAL_HEAD + "  []\n")))
    assert not any(path.startswith(("garage/", "kubernetes/cnpg/")) for path in rendered)
