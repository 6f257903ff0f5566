"""The restore drills of CNPG archives and VolSync repositories, as the cluster reads them.

Each drill folder (``kubernetes/drills/<namespace>/<service>/``) is built with the real
``kubectl kustomize``; every object of the build is validated strictly (built-in kinds with
kubernetes-validate, the CRD kinds against the upstream CRDs), and so is every manifest the
drill's script creates at run time (the scratch Cluster, claim, ReplicationDestination and
verify Job), which kustomize does not see. The ConfigMap must carry the scripts byte for
byte and stay out of Flux's post-build substitution; the CronJob must run as the
ServiceAccount its Role is bound to, and that Role must let it create, watch and delete
exactly the kinds its script creates. The catalog's drill block is refused, at its
``file:line:col``, where a drill of that layer cannot do what it asks.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from crds import validate, validate_all
from flux import references, substitute

from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.errors import CatalogError

pytestmark = pytest.mark.tool("kubectl")

#: Every drill layer and store mode: a CNPG cluster of the plugin and one in-tree, one owned
#: (its image and size in the catalog), VolSync apps copied to R2 and kept out of it.
CATALOG = MINIMAL_HEAD.replace(
    "services:",
    textwrap.dedent(
        """\
          object_stores:
            garage: {provider: garage, endpoint: "http://garage.lan:3900", bucket: pg-archive,
                     credentials_key: garage-cnpg, region: garage}
            r2: {provider: r2, endpoint: "https://acct.r2.cloudflarestorage.com", region: auto,
                 bucket: volsync}
        services:""",
    ),
) + textwrap.indent(
    textwrap.dedent(
        """\
        - name: photos-db
          namespace: photos
          storage: local-hostpath
          churn: high
          engine: postgresql
          criticality: critical
          drill:
            checks:
              - {database: photos, table: assets, min_rows: 10}
              - {database: photos, query: "SELECT count(*) > 0 FROM albums"}
          cnpg: {cluster: photos-db, object_store: garage}
        - name: legacy-db
          namespace: db
          storage: local-hostpath
          churn: high
          engine: postgresql
          cnpg: {cluster: legacy-db, object_store: garage, mode: in-tree}
        - name: owned-db
          namespace: db
          storage: local-hostpath
          churn: high
          engine: postgresql
          cnpg: {cluster: owned-db, object_store: garage, owned: true, instances: 2,
                 storage_size: 20Gi, image: "ghcr.io/cloudnative-pg/postgresql:17.2"}
        - name: wiki
          namespace: wiki
          storage: local-hostpath
          churn: low
          engine: files
          min_size: 1Mi
          drill: {min_files: 3, cadence: weekly}
          volsync: {capacity: 5Gi}
        - name: scratchpad
          namespace: wiki
          storage: local-hostpath
          churn: low
          engine: files
          offsite: {excluded: Rebuilt from its sources}
          volsync: {capacity: 1Gi}
        """
    ),
    "  ",
)

#: What each drill's script creates at run time (beside the folder's own objects).
SCRATCH = {
    "cnpg": {"cluster.json": "Cluster"},
    "volsync": {
        "claim.yaml": "PersistentVolumeClaim",
        "replicationdestination.yaml": "ReplicationDestination",
        "verify-job.yaml": "Job",
    },
}
#: The API group and resource of each kind a drill creates, as a Role names them.
RESOURCES = {
    "Cluster": ("postgresql.cnpg.io", "clusters"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "ReplicationDestination": ("volsync.backube", "replicationdestinations"),
    "Job": ("batch", "jobs"),
}


def _write(files: dict[str, bytes], root: Path) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(scope="module")
def inline_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    catalog = load_catalog_text(CATALOG, "services.yaml")
    return _write(render_plan(build_plan(catalog)), tmp_path_factory.mktemp("drills") / "out")


def _folders(out: Path) -> list[Path]:
    return sorted(p for p in (out / "kubernetes" / "drills").glob("*/*") if p.is_dir())


def _build(folder: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(built) if d]


def _layer(folder: Path) -> str:
    return "cnpg" if (folder / "cluster.json").exists() else "volsync"


def _scratch_objects(folder: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name in SCRATCH[_layer(folder)]:
        text = (folder / name).read_text()
        found[name] = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    return found


def test_the_inline_catalog_has_a_drill_of_each_kind(inline_out: Path) -> None:
    folders = {f.name: _layer(f) for f in _folders(inline_out)}
    # owned-db has no dump either: its drill restores its archive too.
    assert folders == {
        "photos-db": "cnpg",
        "legacy-db": "cnpg",
        "owned-db": "cnpg",
        "wiki": "volsync",
        "scratchpad": "volsync",
    }


@pytest.mark.parametrize("where", ["reference", "inline"])
def test_every_drill_builds_and_validates_strictly(where: str, inline_out: Path) -> None:
    out = REPO / "out" if where == "reference" else inline_out
    folders = _folders(out)
    assert folders, "no drill folders"
    for folder in folders:
        built = _build(folder)
        kinds = sorted(o["kind"] for o in built)
        assert kinds == ["ConfigMap", "CronJob", "Role", "RoleBinding", "ServiceAccount"], folder
        assert validate_all(built) == {}, folder
        assert validate_all(_scratch_objects(folder).values()) == {}, folder
        namespace = folder.parent.name
        assert {o["metadata"]["namespace"] for o in built} == {namespace}


def test_a_mutated_field_fails_validation(inline_out: Path) -> None:
    """The validation bites: a misspelt field of each scratch object is refused."""
    for folder in _folders(inline_out):
        for name, obj in _scratch_objects(folder).items():
            spec = dict(obj["spec"])
            first = next(iter(spec))
            spec[first + "x"] = spec.pop(first)
            assert validate({**obj, "spec": spec}), (folder.name, name)


def test_the_configmap_carries_the_scripts_untouched_by_flux(inline_out: Path) -> None:
    for folder in _folders(inline_out):
        (config_map,) = [o for o in _build(folder) if o["kind"] == "ConfigMap"]
        files = {"drill.sh", "lib.sh", *SCRATCH[_layer(folder)]}
        if _layer(folder) == "volsync":
            files.add("verify.sh")
        assert set(config_map["data"]) == files
        for name, text in config_map["data"].items():
            assert text == (folder / name).read_text(), (folder.name, name)
        # Flux substitutes every ${VAR} of an object unless the object opts out; the scripts
        # are full of shell expansions that substitution would empty.
        annotations = config_map["metadata"]["annotations"]
        assert annotations["kustomize.toolkit.fluxcd.io/substitute"] == "disabled"
        scripts = "".join(config_map["data"][n] for n in sorted(files) if n.endswith(".sh"))
        assert references(scripts), "the scripts hold nothing Flux would substitute"
        assert substitute(scripts, {}, strict=False) != scripts
        # Its name is the one the verify Job (created by the script) mounts: no hash suffix.
        assert config_map["metadata"]["name"] == f"{folder.name}-restore-drill"


def test_the_cronjob_runs_as_the_bound_account_with_what_it_creates(inline_out: Path) -> None:
    for folder in _folders(inline_out):
        built = {o["kind"]: o for o in _build(folder)}
        cronjob, role, binding = built["CronJob"], built["Role"], built["RoleBinding"]
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        account = pod["serviceAccountName"]
        assert built["ServiceAccount"]["metadata"]["name"] == account
        namespace = folder.parent.name
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        (volume,) = [v for v in pod["volumes"] if "configMap" in v]
        assert volume["configMap"]["name"] == built["ConfigMap"]["metadata"]["name"]
        granted: dict[tuple[str, str], set[str]] = {}
        deletable: dict[tuple[str, str], set[str]] = {}
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
                    if "delete" in rule["verbs"]:
                        # Deleting only what the drill creates: never the live objects.
                        assert rule.get("resourceNames"), (folder.name, rule)
                        deletable.setdefault((group, resource), set()).update(rule["resourceNames"])
        for file, kind in SCRATCH[_layer(folder)].items():
            verbs = granted.get(RESOURCES[kind], set())
            assert {"create", "delete", "get", "watch"} <= verbs, (folder.name, kind)
            name = _scratch_objects(folder)[file]["metadata"]["name"]
            assert deletable[RESOURCES[kind]] == {name}, (folder.name, kind)
        # Nothing beyond the drill's own needs: no secrets, no wildcards, no cluster scope.
        assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in role["rules"])
        assert not any("secrets" in r["resources"] for r in role["rules"])
        box = pod["containers"][0]
        assert box["command"] == ["/bin/sh", "/drill/drill.sh"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_cnpg_scratch_cluster_reads_the_archive_and_writes_nothing(inline_out: Path) -> None:
    for folder in _folders(inline_out):
        if _layer(folder) != "cnpg":
            continue
        cluster = _scratch_objects(folder)["cluster.json"]
        spec = cluster["spec"]
        assert cluster["metadata"]["name"] == f"{folder.name}-drill"
        assert spec["instances"] == 1
        assert spec["bootstrap"] == {"recovery": {"source": "origin"}}
        (origin,) = spec["externalClusters"]
        assert origin["name"] == "origin"
        # Read only: no archiving plugin, no backup section, so nothing is written back.
        assert "plugins" not in spec and "backup" not in spec
        live = yaml.safe_load_all(
            (inline_out / "kubernetes/cnpg" / folder.parent.name / folder.name)
            .joinpath("cluster-patch.yaml" if folder.name != "owned-db" else "cluster.yaml")
            .read_text()
        )
        (live_cluster,) = [d for d in live if d]
        server = (
            live_cluster["spec"]["plugins"][0]["parameters"]["serverName"]
            if "plugins" in live_cluster["spec"]
            else live_cluster["spec"]["backup"]["barmanObjectStore"]["serverName"]
        )
        recovered = (
            origin["plugin"]["parameters"]["serverName"]
            if "plugin" in origin
            else origin["barmanObjectStore"]["serverName"]
        )
        assert recovered == server, folder.name  # the archive the live cluster writes
    owned = _scratch_objects(inline_out / "kubernetes/drills/db/owned-db")["cluster.json"]
    assert owned["spec"]["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.2"
    assert owned["spec"]["storage"]["size"] == "20Gi"


def test_the_volsync_drill_restores_the_apps_own_source(inline_out: Path) -> None:
    for folder in _folders(inline_out):
        if _layer(folder) != "volsync":
            continue
        objects = _scratch_objects(folder)
        claim, destination = objects["claim.yaml"], objects["replicationdestination.yaml"]
        kopia = destination["spec"]["kopia"]
        assert kopia["sourceIdentity"] == {"sourceName": folder.name}
        assert kopia["destinationPVC"] == claim["metadata"]["name"]
        assert kopia["copyMethod"] == "Direct"
        assert destination["spec"]["trigger"] == {"manual": "drill"}
        job = objects["verify-job.yaml"]
        (box,) = job["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"]: m for m in box["volumeMounts"]}
        assert mounts["/data"]["readOnly"] and mounts["/mnt/repository"]["readOnly"]
        secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in box["env"] if "valueFrom" in e}
        # The app kept out of R2 has no offsite repository to check, and no Secret for one.
        offsite = folder.name != "scratchpad"
        assert secrets == {f"{folder.name}-volsync"} | (
            {f"{folder.name}-volsync-r2"} if offsite else set()
        )
        env = {e["name"]: e.get("value") for e in box["env"]}
        assert bool(env["READ_DATA_PERCENT"]) == offsite
    wiki = _scratch_objects(inline_out / "kubernetes/drills/wiki/wiki")["verify-job.yaml"]
    (box,) = wiki["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in box["env"]}
    assert env["MIN_FILES"] == "3" and env["MIN_SIZE_BYTES"] == str(2**20)


# --- the catalog's drill block, refused where it cannot apply --------------------------------

FILES_APP = """\
- name: notes
  namespace: notes
  storage: local-hostpath
  churn: low
  engine: files
  volsync: {capacity: 1Gi}
"""


def _errors(service: str) -> list[str]:
    text = MINIMAL_HEAD + textwrap.indent(service, "  ")
    with pytest.raises(CatalogError) as exc:
        load_catalog_text(text, "services.yaml")
    return list(exc.value.lines)


#: The lines of the head, up to and including ``services:``.
HEAD_LINES = MINIMAL_HEAD.count("\n")


@pytest.mark.parametrize(
    ("extra", "token", "message"),
    [
        (
            "drill: {layer: cnpg}",
            "cnpg",
            "services[0].drill.layer: the service has no cnpg backup to drill (it has: volsync)",
        ),
        (
            "drill: {checks: [{table: t, min_rows: 1}]}",
            "checks",
            "services[0].drill.checks: checks are SQL, for mysql, postgresql, sqlite dumps and "
            "CNPG, not the volsync drill of 'files'",
        ),
        (
            "drill: {min_keys: 3}",
            "3",
            "services[0].drill.min_keys: min_keys applies to redis dumps, not to the volsync "
            "drill of 'files'",
        ),
        (
            "drill: {cadence: monthly-first-sunday}",
            "monthly-first-sunday",
            "services[0].drill.cadence: the volsync drill cannot run on the first <weekday> of "
            "a month; give drill.cadence a cron or a plain cadence",
        ),
    ],
    ids=["layer-absent", "sql-checks", "min-keys", "first-weekday"],
)
def test_a_drill_it_cannot_run_is_refused_at_its_field(
    extra: str, token: str, message: str
) -> None:
    errors = _errors(FILES_APP + f"  {extra}\n")
    line = HEAD_LINES + FILES_APP.count("\n") + 1
    column = len("    ") + extra.index(token) + 1
    assert errors == [f"services.yaml:{line}:{column}: {message}"]


def test_the_etcd_drill_refuses_a_first_weekday_cadence() -> None:
    service = textwrap.dedent(
        """\
        - name: etcd
          namespace: kube-system
          storage: local-disk
          churn: low
          engine: etcd
          drill: {cadence: monthly-first-sunday}
        """
    )
    (error,) = _errors(service)
    assert error.startswith(f"services.yaml:{HEAD_LINES + 6}:")
    assert "etcdutl steps (init containers) cannot skip" in error


def test_the_layer_chooses_between_a_dump_and_the_archive() -> None:
    service = textwrap.dedent(
        """\
        - name: pg
          namespace: db
          storage: iscsi
          churn: high
          engine: postgresql
          postgresql: {host: pg-rw.db.svc, databases: [app]}
          cnpg: {cluster: pg, object_store: garage}
        """
    )
    head = CATALOG.split("services:", 1)[0] + "services:\n"
    for extra, layer in (("", "dump"), ("  drill: {layer: cnpg}\n", "cnpg")):
        catalog = load_catalog_text(head + textwrap.indent(service + extra, "  "))
        assert catalog.service("pg").drill is not None
        assert catalog.service("pg").drill.layer == layer  # type: ignore[union-attr]
        files = render_plan(build_plan(catalog))
        assert ("kubernetes/drills/db/pg/cronjob.yaml" in files) == (layer == "cnpg")
        assert ("restore_drill" in files["terraform/stacks/pg/backup.tf"].decode()) == (
            layer == "dump"
        )
