"""CloudNativePG archiving to Garage: schema-valid objects, CNPG's own rules, the catalog's.

By default the Cluster is the user's: the generated folder is a Kustomize Component, and
the tests apply it with ``kubectl kustomize`` to a sample user Cluster, then check what
comes out (the user's spec kept, archiving added) against the strict CRD schema.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool, run_module
from crds import validate_all

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import CnpgCluster
from homeops_gen.catalog.policy import (
    CNPG_DEFAULT_IMAGE,
    CNPG_PLUGIN,
    barman_retention,
    bucket_problem,
)
from homeops_gen.errors import CatalogError
from homeops_gen.schedule import parse_cron

CATALOG = load_catalog(REPO / "services.yaml")
CLUSTERS = {s.cnpg.name: s.cnpg for s in CATALOG.services if s.cnpg is not None}
OUT = REPO / "out" / "kubernetes" / "cnpg"
GARAGE_HEAD = MINIMAL_HEAD.replace(
    "services:\n",
    "  object_stores:\n"
    "    garage: {provider: garage, endpoint: http://garage.lan:3900, region: garage, "
    "bucket: pg-archive}\n"
    "services:\n",
)


def services(text: str) -> str:
    return textwrap.indent(textwrap.dedent(text), "  ")


LEGACY = GARAGE_HEAD + services(
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
)
#: A Cluster homeops_gen owns, dumped as CNPG's superuser without saying which Secret.
OWNED = GARAGE_HEAD + services(
    """\
    - name: owned-db
      namespace: apps
      storage: iscsi
      churn: medium
      engine: postgresql
      postgresql: {host: owned-db-rw.apps.svc.cluster.local}
      cnpg:
        cluster: owned-db
        object_store: garage
        owned: true
        instances: 2
        storage_size: 5Gi
        storage_class: iscsi
    """
)
#: A common layout: a ``postgres`` cluster in each of two namespaces.
TWINS = GARAGE_HEAD + services(
    """\
    - name: immich-db
      namespace: immich
      storage: local-hostpath
      churn: high
      engine: postgresql
      cnpg: {cluster: postgres, object_store: garage}
    - name: authentik-db
      namespace: authentik
      storage: local-hostpath
      churn: high
      engine: postgresql
      cnpg: {cluster: postgres, object_store: garage}
    """
)
INLINE = {"legacy-db": LEGACY, "owned-db": OWNED}

#: Component files that are kustomize's inputs, not objects.
INPUTS = {
    "kustomization.yaml",
    "cluster-patch.yaml",
    "cluster-schema.yaml",
    "recovery/kustomization.yaml",
    "recovery/cluster-patch.yaml",
}


def read_folder(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        p.relative_to(folder).as_posix(): [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted(folder.rglob("*.yaml"))
    }


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CnpgCluster, Path]]:
    """Every case's cluster and folder: the reference ones in out/, inline ones rendered."""
    found = {
        name: (cluster, OUT / cluster.namespace / cluster.name)
        for name, cluster in CLUSTERS.items()
    }
    for name, text in INLINE.items():
        catalog = load_catalog_text(text)
        cluster = catalog.service(name).cnpg
        assert cluster is not None
        root = tmp_path_factory.mktemp(name)
        for path, data in render_plan(build_plan(catalog)).items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        found[name] = (cluster, root / cluster.folder)
    return found


IDS = [*sorted(CLUSTERS), *INLINE]
COMPONENTS = [name for name in IDS if name != "owned-db"]


def case(rendered: dict[str, tuple[CnpgCluster, Path]], name: str) -> tuple[CnpgCluster, Path]:
    return rendered[name]


# --- kustomize and the user's own Cluster --------------------------------------------------

#: The user's Cluster, as a Helm chart or a hand-written manifest would have it.
USER_CLUSTER: dict[str, Any] = {
    "apiVersion": "postgresql.cnpg.io/v1",
    "kind": "Cluster",
    "metadata": {"name": "NAME", "labels": {"app.kubernetes.io/name": "database"}},
    "spec": {
        "instances": 2,
        "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4",
        "storage": {"size": "20Gi", "storageClass": "local-hostpath"},
        "bootstrap": {"initdb": {"database": "app", "owner": "app"}},
        "postgresql": {"parameters": {"max_connections": "200", "shared_buffers": "256MB"}},
        "monitoring": {"enablePodMonitor": True},
        "env": [{"name": "TZ", "value": "Europe/London"}],
        "plugins": [{"name": "cnpg-i-hello-world.cloudnative-pg.io", "enabled": False}],
        "externalClusters": [
            {"name": "old-server", "connectionParameters": {"host": "10.0.0.9", "user": "app"}}
        ],
    },
}


def user_cluster(cluster: CnpgCluster, *, namespaced: bool) -> dict[str, Any]:
    obj = copy.deepcopy(USER_CLUSTER)
    obj["metadata"]["name"] = cluster.name
    if namespaced:
        obj["metadata"]["namespace"] = cluster.namespace
    return obj


def kustomize(
    tmp_path: Path,
    cluster: CnpgCluster,
    components: list[Path],
    *,
    namespaced: bool = True,
    resource: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kubectl kustomize`` of a user's app folder: their Cluster plus ``components``."""
    kubectl = require_tool("kubectl")
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "cluster.yaml").write_text(
        yaml.safe_dump(resource or user_cluster(cluster, namespaced=namespaced))
    )
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["./cluster.yaml"],
        "components": [
            os.path.relpath(c, app) for c in components
        ],  # kustomize wants them relative
    }
    if not namespaced:
        kustomization["namespace"] = cluster.namespace  # the Cluster gets it after the components
    (app / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return subprocess.run(
        [kubectl, "kustomize", str(app)], capture_output=True, text=True, check=False
    )


def built(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def the_cluster(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cluster,) = [o for o in objects if o["kind"] == "Cluster"]
    return cluster


def assert_keeps_the_users_spec(spec: dict[str, Any], *, bootstrap: bool = True) -> None:
    user = USER_CLUSTER["spec"]
    for key in ("instances", "imageName", "storage", "postgresql", "monitoring"):
        assert spec[key] == user[key], key
    if bootstrap:
        assert spec["bootstrap"] == user["bootstrap"]
    # Lists are merged by name, never replaced: the user's own entries survive.
    assert {"name": "TZ", "value": "Europe/London"} in spec["env"]
    assert user["plugins"][0] in spec["plugins"]
    assert user["externalClusters"][0] in spec["externalClusters"]


def archiver(spec: dict[str, Any]) -> str:
    """The serverName the Cluster archives its WAL under (exactly one archiver)."""
    plugins = [p for p in spec.get("plugins", []) if p.get("isWALArchiver")]
    in_tree = spec.get("backup", {}).get("barmanObjectStore")
    assert len(plugins) + (in_tree is not None) == 1, spec
    if plugins:
        assert plugins[0]["name"] == CNPG_PLUGIN
        return str(plugins[0]["parameters"]["serverName"])
    return str(in_tree["serverName"])


@pytest.mark.parametrize(
    "namespaced", [True, False], ids=["namespaced", "namespace-from-kustomization"]
)
@pytest.mark.parametrize("name", COMPONENTS)
def test_component_adds_archiving_and_keeps_the_users_cluster(
    tmp_path: Path, rendered: dict[str, tuple[CnpgCluster, Path]], name: str, namespaced: bool
) -> None:
    cluster, folder = case(rendered, name)
    objects = built(kustomize(tmp_path, cluster, [folder], namespaced=namespaced))
    live = the_cluster(objects)
    assert live["metadata"] == {
        "name": cluster.name,
        "namespace": cluster.namespace,
        "labels": USER_CLUSTER["metadata"]["labels"],
    }
    spec = live["spec"]
    assert_keeps_the_users_spec(spec)
    assert archiver(spec) == cluster.server_name
    if cluster.mode == "plugin":
        (plugin,) = [p for p in spec["plugins"] if p["name"] == CNPG_PLUGIN]
        assert plugin["parameters"]["barmanObjectName"] == f"{cluster.name}-garage"
        assert "backup" not in spec
    else:
        configuration = spec["backup"]["barmanObjectStore"]
        assert configuration["destinationPath"] == cluster.destination_path
        assert spec["backup"]["retentionPolicy"] == cluster.retention_policy
        assert {"AWS_REQUEST_CHECKSUM_CALCULATION", "TZ"} <= {e["name"] for e in spec["env"]}
    # The dump job reads <cluster>-superuser, which CNPG keeps only with superuser access.
    assert spec.get("enableSuperuserAccess", False) is cluster.superuser_access
    kinds = sorted(o["kind"] for o in objects)
    expected = ["Cluster", "ExternalSecret", "ScheduledBackup"]
    assert kinds == sorted(expected + (["ObjectStore"] if cluster.mode == "plugin" else []))
    assert all(o["metadata"]["namespace"] == cluster.namespace for o in objects)
    assert validate_all(objects) == {}


def test_the_reference_dump_reads_a_superuser_secret_the_patch_turns_on() -> None:
    postgresql = CATALOG.service("postgresql")
    assert postgresql.cnpg is not None and postgresql.cnpg.superuser_access
    password = postgresql.connection.password  # type: ignore[union-attr]
    assert password.name == "pg-cluster-superuser"
    patch = yaml.safe_load((OUT / "dbaas/pg-cluster/cluster-patch.yaml").read_text())
    assert patch["spec"]["enableSuperuserAccess"] is True
    # No dump, no superuser: immich's cluster keeps CNPG's default.
    immich = yaml.safe_load((OUT / "immich/immich-postgres/cluster-patch.yaml").read_text())
    assert "enableSuperuserAccess" not in immich["spec"]


@pytest.mark.parametrize("name", COMPONENTS)
def test_recovery_component_restores_the_users_cluster_under_the_next_server_name(
    tmp_path: Path, rendered: dict[str, tuple[CnpgCluster, Path]], name: str
) -> None:
    cluster, folder = case(rendered, name)
    objects = built(kustomize(tmp_path, cluster, [folder, folder / "recovery"]))
    spec = the_cluster(objects)["spec"]
    assert_keeps_the_users_spec(spec, bootstrap=False)
    recovery = {"source": "origin"}
    if cluster.recovery_target_time:
        recovery["recoveryTarget"] = {"targetTime": cluster.recovery_target_time}  # type: ignore[assignment]
    assert spec["bootstrap"] == {"recovery": recovery}  # initdb is replaced, not merged
    (origin,) = [e for e in spec["externalClusters"] if e["name"] == "origin"]
    source = origin["plugin"] if cluster.mode == "plugin" else origin["barmanObjectStore"]
    server = (
        source["parameters"]["serverName"] if cluster.mode == "plugin" else source["serverName"]
    )
    assert server == cluster.server_name
    assert archiver(spec) == cluster.next_server_name != cluster.server_name
    assert validate_all(objects) == {}


@pytest.mark.parametrize("name", COMPONENTS)
def test_builds_that_would_lose_archiving_fail(
    tmp_path: Path, rendered: dict[str, tuple[CnpgCluster, Path]], name: str
) -> None:
    cluster, folder = case(rendered, name)
    # A Cluster of another name: the targeted patch alone would match nothing, silently.
    other = user_cluster(cluster, namespaced=True)
    other["metadata"]["name"] = "another"
    result = kustomize(tmp_path, cluster, [folder], resource=other)
    assert (
        result.returncode != 0 and f"Cluster.v1.postgresql.cnpg.io/{cluster.name}" in result.stderr
    )
    # The drill before the archiving component would archive over its own history.
    result = kustomize(tmp_path, cluster, [folder / "recovery", folder])
    assert result.returncode != 0 and "ScheduledBackup" in result.stderr


# --- the files ---------------------------------------------------------------------------


def test_every_cnpg_service_has_its_folder_and_the_dump_too() -> None:
    assert sorted(CLUSTERS) == ["immich-postgres", "pg-cluster"]
    for cluster in CLUSTERS.values():
        expected = INPUTS | {"externalsecret.yaml", "objectstore.yaml", "scheduledbackup.yaml"}
        assert set(read_folder(OUT / cluster.namespace / cluster.name)) == expected
        assert not cluster.owned
    # The backup seed dumps PostgreSQL too: both outputs come from the one service entry.
    assert (REPO / "out/terraform/stacks/postgresql/backup.tf").exists()
    assert CATALOG.service("postgresql").methods == ("dump", "cnpg")


def test_component_lists_its_objects_and_patches_only_archiving(
    rendered: dict[str, tuple[CnpgCluster, Path]],
) -> None:
    for name in COMPONENTS:
        cluster, folder = case(rendered, name)
        files = read_folder(folder)
        (component,) = files["kustomization.yaml"]
        assert (component["apiVersion"], component["kind"]) == (
            "kustomize.config.k8s.io/v1alpha1",
            "Component",
        )
        listed = {r.removeprefix("./") for r in component["resources"]}
        assert listed == set(files) - INPUTS
        (patch,) = files["cluster-patch.yaml"]
        assert patch["metadata"] == {"name": cluster.name}
        assert set(patch["spec"]) <= {"plugins", "backup", "env", "enableSuperuserAccess"}


def test_owned_cluster_comes_from_the_catalog(
    rendered: dict[str, tuple[CnpgCluster, Path]],
) -> None:
    _, folder = case(rendered, "owned-db")
    files = read_folder(folder)
    assert set(files) == {
        "cluster.yaml",
        "externalsecret.yaml",
        "kustomization.yaml",
        "objectstore.yaml",
        "recovery.yaml",
        "scheduledbackup.yaml",
    }
    (kustomization,) = files["kustomization.yaml"]
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == [
        "./cluster.yaml",
        "./externalsecret.yaml",
        "./objectstore.yaml",
        "./scheduledbackup.yaml",
    ]  # never the drill
    for file in ("cluster.yaml", "recovery.yaml"):
        (obj,) = files[file]
        spec = obj["spec"]
        assert spec["instances"] == 2
        assert spec["storage"] == {"size": "5Gi", "storageClass": "iscsi"}
        assert spec["imageName"] == CNPG_DEFAULT_IMAGE
        # Its dump has no password of its own: it reads owned-db-superuser, so it is on.
        assert spec["enableSuperuserAccess"] is True
    defaults = (
        load_catalog_text(
            OWNED.replace(
                "      instances: 2\n      storage_size: 5Gi\n      storage_class: iscsi\n",
                "",
            )
        )
        .service("owned-db")
        .cnpg
    )
    assert defaults is not None
    assert (defaults.instances, defaults.storage_size, defaults.storage_class) == (3, "10Gi", None)


def test_owned_cluster_builds_as_a_kustomization(
    rendered: dict[str, tuple[CnpgCluster, Path]],
) -> None:
    kubectl = require_tool("kubectl")
    _, folder = case(rendered, "owned-db")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    objects = built(result)
    assert sorted(o["kind"] for o in objects) == [
        "Cluster",
        "ExternalSecret",
        "ObjectStore",
        "ScheduledBackup",
    ]
    assert validate_all(objects) == {}


@pytest.mark.parametrize("name", IDS)
def test_every_object_validates_strictly(
    rendered: dict[str, tuple[CnpgCluster, Path]], name: str
) -> None:
    cluster, folder = case(rendered, name)
    files = read_folder(folder)
    documents = [d for path, docs in files.items() if path not in INPUTS for d in docs]
    assert documents
    assert validate_all(documents) == {}
    assert all(d["metadata"]["namespace"] == cluster.namespace for d in documents)


@pytest.mark.parametrize("name", IDS)
def test_cnpg_rules_the_schema_cannot_see(
    rendered: dict[str, tuple[CnpgCluster, Path]], name: str
) -> None:
    cluster, folder = case(rendered, name)
    files = read_folder(folder)
    for store in files.get("objectstore.yaml", []):
        # barman-cloud's CEL rule: the serverName belongs to the Cluster's plugin parameters.
        assert "serverName" not in store["spec"]["configuration"]
    for file in ("cluster.yaml", "recovery.yaml", "cluster-patch.yaml"):
        for document in files.get(file, []):
            archiver(document["spec"])  # exactly one, never a plugin next to the in-tree one
    (backup,) = files["scheduledbackup.yaml"]
    fields = backup["spec"]["schedule"].split()
    assert len(fields) == 6 and fields[0] == "0"  # seconds first
    parse_cron(" ".join(fields[1:]))
    assert backup["spec"]["method"] == (
        "plugin" if cluster.mode == "plugin" else "barmanObjectStore"
    )


@pytest.mark.parametrize("name", IDS)
def test_archives_go_to_garage_with_the_catalogs_region_and_checksum_settings(
    rendered: dict[str, tuple[CnpgCluster, Path]], name: str
) -> None:
    cluster, folder = case(rendered, name)
    files = read_folder(folder)
    if cluster.mode == "plugin":
        (store,) = files["objectstore.yaml"]
        configuration = store["spec"]["configuration"]
        env = store["spec"]["instanceSidecarConfiguration"]["env"]
        retention = store["spec"]["retentionPolicy"]
    else:
        (live,) = files["cluster.yaml" if cluster.owned else "cluster-patch.yaml"]
        configuration = live["spec"]["backup"]["barmanObjectStore"]
        env = live["spec"]["env"]
        retention = live["spec"]["backup"]["retentionPolicy"]
    assert configuration["endpointURL"] == cluster.store.endpoint
    # One folder per namespace: same-name clusters of two namespaces never share an archive.
    assert configuration["destinationPath"] == f"s3://{cluster.store.bucket}/{cluster.namespace}/"
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


def test_owned_recovery_never_archives_over_its_own_history(
    rendered: dict[str, tuple[CnpgCluster, Path]],
) -> None:
    cluster, folder = case(rendered, "owned-db")
    files = read_folder(folder)
    (live,) = files["cluster.yaml"]
    (restored,) = files["recovery.yaml"]
    spec = restored["spec"]
    assert spec["bootstrap"]["recovery"]["source"] == "origin"
    (origin,) = spec["externalClusters"]
    assert origin["plugin"]["parameters"]["serverName"] == archiver(live["spec"])
    assert archiver(live["spec"]) == cluster.server_name
    assert archiver(spec) == cluster.next_server_name != cluster.server_name


def test_legacy_cluster_resolves_its_generation_and_retention() -> None:
    cluster = load_catalog_text(LEGACY).service("legacy-db").cnpg
    assert cluster is not None
    assert (cluster.server_name, cluster.next_server_name) == ("legacy-db-v3", "legacy-db-v4")
    assert cluster.retention_policy == "30d"


# --- two namespaces, one name ------------------------------------------------------------------


def test_same_name_clusters_in_two_namespaces_get_their_own_files_and_archives() -> None:
    catalog = load_catalog_text(TWINS)
    plan = build_plan(catalog)  # no path is claimed twice
    clusters = [catalog.service(n).cnpg for n in ("immich-db", "authentik-db")]
    assert all(c is not None for c in clusters)
    archives = {f"{c.destination_path}{c.server_name}/" for c in clusters if c is not None}
    assert archives == {
        "s3://pg-archive/immich/postgres-v1/",
        "s3://pg-archive/authentik/postgres-v1/",
    }
    paths = set(plan.paths)
    for namespace in ("immich", "authentik"):
        assert f"kubernetes/cnpg/{namespace}/postgres/kustomization.yaml" in paths
        assert f"kubernetes/monitoring/prometheusrules/cnpg-{namespace}-postgres.yaml" in paths
        assert f"prometheus/rules/cnpg-{namespace}-postgres.rules.yaml" in paths
    rendered_ = render_plan(plan)
    rules = [
        yaml.safe_load(rendered_[f"kubernetes/monitoring/prometheusrules/cnpg-{ns}-postgres.yaml"])
        for ns in ("immich", "authentik")
    ]
    assert {r["metadata"]["name"] for r in rules} == {
        "homeops-cnpg-immich-postgres",
        "homeops-cnpg-authentik-postgres",
    }
    stores = [
        yaml.safe_load(rendered_[f"kubernetes/cnpg/{ns}/postgres/objectstore.yaml"])
        for ns in ("immich", "authentik")
    ]
    assert {s["spec"]["configuration"]["destinationPath"] for s in stores} == {
        "s3://pg-archive/immich/",
        "s3://pg-archive/authentik/",
    }


#: TWINS with the second cluster moved into the first one's namespace: the second
#: ``cnpg: {cluster: postgres`` is on line 21, its value at column 21.
DUPLICATE = TWINS.replace("namespace: authentik", "namespace: immich")


def test_the_same_cluster_declared_twice_is_a_catalog_error_at_the_second() -> None:
    assert DUPLICATE.splitlines()[20] == "    cnpg: {cluster: postgres, object_store: garage}"
    with pytest.raises(CatalogError) as error:
        load_catalog_text(DUPLICATE, "services.yaml")
    assert error.value.lines == [
        "services.yaml:21:21: services[1].cnpg.cluster: CNPG cluster immich/postgres is already "
        "declared by service 'immich-db' (services[0]); one Cluster has one archive: declare "
        "its cnpg block once"
    ]


def test_the_same_cluster_declared_twice_exits_2_without_an_internal_message(
    tmp_path: Path,
) -> None:
    (tmp_path / "services.yaml").write_text(DUPLICATE)
    result = run_module("--catalog", "services.yaml", "--no-cache", cwd=tmp_path)
    assert result.code == 2
    assert "services.yaml:21:21: services[1].cnpg.cluster: CNPG cluster immich/postgres" in (
        result.err + result.out
    )
    assert "claimed by generators" not in result.err + result.out
    assert not (tmp_path / "out").exists()


def test_clusters_whose_file_names_would_meet_are_a_catalog_error() -> None:
    text = TWINS.replace("namespace: immich", "namespace: a-b").replace(
        "namespace: authentik", "namespace: a"
    )
    text = text.replace(
        "cnpg: {cluster: postgres, object_store: garage}\n  - name: authentik-db",
        "cnpg: {cluster: c, object_store: garage}\n  - name: authentik-db",
    ).replace("cnpg: {cluster: postgres,", "cnpg: {cluster: b-c,")
    with pytest.raises(CatalogError) as error:
        load_catalog_text(text, "services.yaml")
    assert any(
        "services[1].cnpg.cluster: CNPG clusters a-b/c and a/b-c would share" in line
        for line in error.value.lines
    ), error.value.lines


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


def test_spec_fields_of_a_cluster_that_is_the_users_are_refused() -> None:
    text = LEGACY.replace(
        "mode: in-tree\n",
        "mode: in-tree\n      instances: 3\n      image: ghcr.io/cloudnative-pg/postgresql:16.4\n",
    )
    with pytest.raises(CatalogError) as error:
        load_catalog_text(text, "services.yaml")
    lines = error.value.lines
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        "services.yaml:20:18: services[0].cnpg.instances: 'instances' applies only"
    )
    assert lines[1].startswith("services.yaml:21:14: services[0].cnpg.image: 'image' applies only")


#: A dumped PostgreSQL on a CNPG cluster ``pg`` (the dump's credentials are on line 17).
DUMPED = GARAGE_HEAD + services(
    """    - name: pg
      namespace: db
      storage: iscsi
      churn: high
      engine: postgresql
      postgresql:
        host: pg-rw.db.svc.cluster.local
        PASSWORD
      cnpg: {cluster: pg, object_store: garage}
    """
)


@pytest.mark.parametrize(
    ("credentials", "superuser"),
    [
        ("user: postgres", True),  # no password: the superuser's Secret, turned on
        ("password: {name: pg-superuser, key: password}", True),
        ("user: backup\n      password: {name: pg-backup-role, key: password}", False),
    ],
    ids=["default", "superuser", "own-role"],
)
def test_dump_credentials_that_exist(credentials: str, superuser: bool) -> None:
    catalog = load_catalog_text(DUMPED.replace("PASSWORD", credentials))
    service = catalog.service("pg")
    assert service.cnpg is not None and service.cnpg.superuser_access is superuser
    password = service.connection.password  # type: ignore[union-attr]
    assert password is not None
    if superuser:
        assert (password.name, password.key) == ("pg-superuser", "password")
    rendered_ = render_plan(build_plan(catalog))
    patch = yaml.safe_load(rendered_["kubernetes/cnpg/db/pg/cluster-patch.yaml"])
    assert patch["spec"].get("enableSuperuserAccess", False) is superuser
    backup = rendered_["terraform/stacks/pg/backup.tf"].decode()
    assert f'name = "{password.name}"' in backup


@pytest.mark.parametrize(
    ("credentials", "where", "message"),
    [
        ("user: app", "17:13: services[0].postgresql.user", "whose password CNPG does not know"),
        (
            "password: {name: pg-app, key: password}",
            "17:24: services[0].postgresql.password.name",
            "which needs one",
        ),
        (
            "password: {name: pg-superuser, key: pgpass}",
            "17:43: services[0].postgresql.password.key",
            "under key 'password'",
        ),
        (
            "user: app\n      password: {name: pg-superuser, key: password}",
            "17:13: services[0].postgresql.user",
            "not of 'app'",
        ),
        (
            "password: {name: pg-replication, key: tls.key}",
            "17:24: services[0].postgresql.password.name",
            "TLS Secret",
        ),
    ],
    ids=["user-without-secret", "app-secret", "wrong-key", "superuser-secret-other-user", "tls"],
)
def test_dump_credentials_that_cannot_work(credentials: str, where: str, message: str) -> None:
    with pytest.raises(CatalogError) as error:
        load_catalog_text(DUMPED.replace("PASSWORD", credentials), "services.yaml")
    (line,) = error.value.lines
    assert line.startswith(f"services.yaml:{where}: ") and message in line, line


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
