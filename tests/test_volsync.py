"""The VolSync component: kustomize builds it, Flux's substitution fills it, the CRDs accept it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, RUNBOOKS_LINE, require_tool
from crds import validate, validate_all
from flux import UnsetVariable, references, substitute

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog, Retention
from homeops_gen.errors import CatalogError
from homeops_gen.generators.alerts import rule_groups
from homeops_gen.generators.docs import matrix_row
from homeops_gen.generators.volsync import (
    cache_limits_mb,
    component_variables,
    r2_variables,
    retain,
    yaml_safe,
)
from homeops_gen.schedule import Schedule

OUT = REPO / "out" / "kubernetes"
COMPONENT = OUT / "components" / "volsync"
R2_COMPONENT = OUT / "components" / "volsync-r2"
CATALOG = load_catalog(REPO / "services.yaml")
APPS = sorted(s.name for s in CATALOG.services if s.uses("volsync"))
RETAIN = ("hourly", "daily", "weekly", "monthly", "yearly")


def app_values(name: str) -> dict[str, str]:
    service = CATALOG.service(name)
    path = OUT / "apps" / service.namespace / name / "volsync.yaml"
    config_map = yaml.safe_load(path.read_text())
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"] == {"name": f"{name}-volsync", "namespace": "flux-system"}
    data: dict[str, str] = config_map["data"]
    return data


def build_app(tmp_path: Path, namespace: str, *components: Path) -> str:
    """``kubectl kustomize`` of an app that includes ``components`` (default: the shared
    ``components/volsync``), before Flux's substitution."""
    kubectl = require_tool("kubectl")
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                # kustomize wants them relative
                "components": [os.path.relpath(c, app) for c in components or (COMPONENT,)],
            }
        )
    )
    result = subprocess.run(
        [kubectl, "kustomize", str(app)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


# --- the component itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "files"),
    [(COMPONENT, ["./kopia.yaml", "./pvc.yaml"]), (R2_COMPONENT, ["./r2.yaml"])],
    ids=["volsync", "volsync-r2"],
)
def test_components_are_kustomize_components_listing_their_files(
    component: Path, files: list[str]
) -> None:
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert kustomization["kind"] == "Component"
    assert kustomization["resources"] == files
    listed = {r.removeprefix("./") for r in kustomization["resources"]}
    assert listed | {"kustomization.yaml"} == {p.name for p in component.iterdir()}


def test_headers_document_every_variable_the_components_read() -> None:
    v = CATALOG.settings.volsync
    for component, variables in ((COMPONENT, component_variables(v)), (R2_COMPONENT, {})):
        header = (component / "kustomization.yaml").read_text()
        used = set().union(*(references(p.read_text()) for p in component.glob("*.yaml")))
        documented = set(variables or r2_variables(v))
        if component == R2_COMPONENT:  # it reads the base component's variables as well
            assert used - set(component_variables(v)) == documented
        else:
            assert used == documented
        for name in documented:
            assert f"#   {name}: " in header


def test_kinds_and_names() -> None:
    def kinds(component: Path) -> set[tuple[str, str]]:
        return {
            (d["kind"], d["metadata"]["name"])
            for path in component.glob("*.yaml")
            if path.name != "kustomization.yaml"
            for d in objects(path.read_text())
        }

    assert kinds(COMPONENT) == {
        ("ExternalSecret", "${APP}-volsync"),
        ("ReplicationSource", "${APP}"),
        ("ReplicationDestination", "${APP}-dst"),
        ("PersistentVolumeClaim", "${VOLSYNC_CLAIM}"),
    }
    assert kinds(R2_COMPONENT) == {
        ("ExternalSecret", "${APP}-volsync-r2"),
        ("ReplicationSource", "${APP}-r2"),
    }


def test_each_app_lists_the_components_it_needs() -> None:
    for name in APPS:
        own = yaml.safe_load(
            (OUT / "components" / "volsync-apps" / name / "kustomization.yaml").read_text()
        )
        assert own["kind"] == "Component"
        # Every app of the reference catalog is copied offsite and has CSI snapshots.
        assert own["components"] == ["../../volsync", "../../volsync-r2"]


# --- built, substituted and validated, for every app of the catalog ---------------------------


@pytest.mark.parametrize("name", APPS)
def test_each_app_builds_substitutes_and_validates_strictly(name: str, tmp_path: Path) -> None:
    service = CATALOG.service(name)
    built = build_app(tmp_path, service.namespace, OUT / "components" / "volsync-apps" / name)
    values = app_values(name)
    filled = substitute(built, values)  # strict: an unset required variable raises
    assert "${" not in filled
    docs = objects(filled)
    assert validate_all(docs) == {}
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert all(d["metadata"]["namespace"] == service.namespace for d in docs)

    source = by_kind[("ReplicationSource", name)]["spec"]
    assert source["sourcePVC"] == service.volsync.claim  # type: ignore[union-attr]
    assert source["trigger"]["schedule"] == service.schedule.cron
    kopia = source["kopia"]
    assert kopia["repository"] == f"{name}-volsync"
    assert kopia["copyMethod"] == "Snapshot"
    assert kopia["retain"] == {k: int(values[f"VOLSYNC_KOPIA_{k.upper()}"]) for k in RETAIN}
    assert isinstance(kopia["parallelism"], int) and isinstance(kopia["retain"]["daily"], int)
    assert kopia["moverVolumes"][0]["volumeSource"]["nfs"] == {
        "server": "10.0.10.15",
        "path": "/mnt/main/volsync-kopia",
    }
    # The caches Kopia may fill stay below the cache volume.
    cache_mib = int(kopia["cacheCapacity"].removesuffix("Gi")) * 1024
    assert kopia["metadataCacheSizeLimitMB"] + kopia["contentCacheSizeLimitMB"] < cache_mib

    destination = by_kind[("ReplicationDestination", f"{name}-dst")]["spec"]
    assert destination["trigger"] == {"manual": "restore-once"}
    assert destination["kopia"]["sourceIdentity"] == {"sourceName": name}
    pvc = by_kind[("PersistentVolumeClaim", service.volsync.claim)]["spec"]  # type: ignore[union-attr]
    assert pvc["dataSourceRef"] == {
        "apiGroup": "volsync.backube",
        "kind": "ReplicationDestination",
        "name": f"{name}-dst",
    }
    assert pvc["resources"]["requests"]["storage"] == service.volsync.capacity  # type: ignore[union-attr]

    r2 = by_kind[("ReplicationSource", f"{name}-r2")]["spec"]
    assert r2["restic"]["repository"] == f"{name}-volsync-r2"
    assert r2["trigger"]["schedule"] != source["trigger"]["schedule"]
    secret = by_kind[("ExternalSecret", f"{name}-volsync-r2")]["spec"]["target"]["template"]
    assert secret["data"]["RESTIC_REPOSITORY"].endswith(f"/volsync/{name}")


def test_defaults_alone_fill_everything_but_the_required_variables(tmp_path: Path) -> None:
    built = build_app(tmp_path, "demo")
    docs = objects(substitute(built, {"APP": "demo", "VOLSYNC_CLAIM": "demo-data"}))
    assert validate_all(docs) == {}
    with pytest.raises(KeyError, match="VOLSYNC_CLAIM"):
        substitute(built, {"APP": "demo"})


def test_the_r2_component_has_no_default_schedule(tmp_path: Path) -> None:
    """Listing volsync-r2 for an app whose ConfigMap has no R2 values fails, never ships."""
    built = build_app(tmp_path, "demo", COMPONENT, R2_COMPONENT)
    required = {"APP": "demo", "VOLSYNC_CLAIM": "demo-data"}
    with pytest.raises(UnsetVariable, match="VOLSYNC_R2_SCHEDULE"):
        substitute(built, required)
    # Flux without strict substitution writes an empty string: the CRD refuses the object.
    loose = objects(substitute(built, required, strict=False))
    source = next(d for d in loose if d["metadata"]["name"] == "demo-r2")
    assert any("schedule" in problem for problem in validate(source))
    docs = objects(substitute(built, required | {"VOLSYNC_R2_SCHEDULE": "30 0 * * *"}))
    assert validate_all(docs) == {}


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The validator can fail: a misspelt kopia field is caught."""
    docs = objects(
        substitute(build_app(tmp_path, "demo"), {"APP": "demo", "VOLSYNC_CLAIM": "demo-data"})
    )
    source = next(d for d in docs if d["kind"] == "ReplicationSource" and "kopia" in d["spec"])
    source["spec"]["kopia"]["compresion"] = "zstd"
    assert any("compresion" in problem for problem in validate(source))
    source["spec"]["kopia"].pop("compresion")
    source["spec"]["kopia"]["parallelism"] = "2"  # a string where the CRD wants an integer
    assert any("parallelism" in problem for problem in validate(source))


def test_kopia_maintenance_validates() -> None:
    docs = objects((OUT / "volsync" / "kopia-maintenance.yaml").read_text())
    assert {d["kind"] for d in docs} == {"ExternalSecret", "KopiaMaintenance"}
    assert validate_all(docs) == {}
    maintenance = next(d for d in docs if d["kind"] == "KopiaMaintenance")
    assert maintenance["spec"]["repository"] == {
        "repository": "volsync-kopia-maintenance",
        "repositoryType": "filesystem",
    }
    assert all(d["metadata"]["namespace"] == "volsync-system" for d in docs)


# --- values derived from the catalog ---------------------------------------------------------


def test_app_values_come_from_the_catalog() -> None:
    values = app_values("home-assistant")
    service = CATALOG.service("home-assistant")
    assert values["APP"] == "home-assistant"
    assert values["VOLSYNC_CAPACITY"] == "5Gi"
    assert values["VOLSYNC_SCHEDULE"] == service.schedule.cron
    assert values["VOLSYNC_KOPIA_DAILY"] == "14"  # medium churn: 14 days
    schedules = [app_values(name)["VOLSYNC_SCHEDULE"] for name in APPS]
    assert len(set(schedules)) == len(schedules)  # staggered by name


@pytest.mark.parametrize(
    ("capacity", "limits"),
    [("2Gi", (1228, 409)), ("5Gi", (3072, 1024)), ("512Mi", (307, 102)), ("1Ti", (629145, 209715))],
)
def test_cache_limits_fit_the_cache_volume(capacity: str, limits: tuple[int, int]) -> None:
    assert cache_limits_mb(capacity) == limits


def test_retain_covers_the_retention() -> None:
    import datetime as dt

    daily = Schedule("0 3 * * *")
    assert retain(Retention(period=dt.timedelta(days=30)), daily) == {
        "hourly": 0,
        "daily": 30,
        "weekly": 4,
        "monthly": 1,
        "yearly": 0,
    }
    assert retain(Retention(period=dt.timedelta(days=400)), daily)["yearly"] == 1
    assert retain(Retention(period=dt.timedelta(days=14)), Schedule("0 * * * *"))["hourly"] == 24
    assert retain(Retention(copies=3), daily)["daily"] == 3


VOLSYNC_APP = MINIMAL_HEAD + (
    "  - name: app\n    namespace: app\n    storage: local-hostpath\n    churn: low\n"
    "    engine: files\n    volsync: {capacity: 1Gi}\n"
)


@pytest.mark.parametrize(
    ("cadence", "message"),
    [
        ("monthly-first-sunday", "first-weekday guard needs a job script"),
    ],
)
def test_volsync_cadences_must_suit_its_crd(cadence: str, message: str) -> None:
    text = VOLSYNC_APP.replace("churn: low\n", f"churn: low\n    cadence: {cadence}\n")
    with pytest.raises(CatalogError, match=message):
        load_catalog_text(text, "services.yaml")


def test_without_an_r2_store_there_is_no_r2_file() -> None:
    catalog = load_catalog_text(VOLSYNC_APP)
    paths = build_plan(catalog).paths
    assert "kubernetes/components/volsync/kopia.yaml" in paths
    assert not any(p.startswith("kubernetes/components/volsync-r2/") for p in paths)
    assert catalog.services[0].volsync.r2_schedule is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("cadence", "zone", "written"),
    [
        ('"0 3 * * sun"', "Etc/UTC", "0 3 * * 0"),
        ('"*/30 * * * *"', "Etc/UTC", "0,30 * * * *"),
        ('"@daily"', "Etc/UTC", "0 0 * * *"),
        ('"* * * * *"', "Etc/UTC", "0-59 * * * *"),
        ('"0 3 * * sun"', "America/New_York", "0 8 * * 0"),
        ('"30 1 * * 1"', "Australia/Sydney", "30 15 * * 0"),
        ('"0 2 * * *"', "Asia/Kolkata", "30 20 * * *"),
    ],
)
def test_volsync_crons_are_moved_to_the_controllers_zone_and_survive_flux(
    cadence: str, zone: str, written: str
) -> None:
    """VolSync reads its cron in UTC; Flux pastes it into YAML text unquoted."""
    import yaml

    text = VOLSYNC_APP.replace("churn: low\n", f"churn: low\n    cadence: {cadence}\n")
    text = text.replace("timezone: Etc/UTC", f"timezone: {zone}")
    catalog = load_catalog_text(text, "services.yaml")
    app = catalog.services[0].volsync
    assert app is not None and app.schedule is not None
    cron = app.schedule.timing.cron
    assert cron == written
    assert yaml.safe_load(f"schedule: {cron}\n") == {"schedule": cron}


# --- offsite exclusion, copy methods and retention, on an inline catalog ----------------------

#: An R2 store, and local-hostpath served by a class without CSI snapshots. With the head
#: (lines 1-5), these are lines 6-10, ``services:`` is line 11 and the first service line 12.
SETTINGS = (
    "  object_stores:\n"
    "    r2: {provider: r2, endpoint: https://acct.r2.cloudflarestorage.com, region: auto, "
    "bucket: volsync}\n"
    "  volsync:\n"
    "    classes:\n"
    "      local-hostpath: {storage_class: openebs-hostpath}\n"
)
HEAD = MINIMAL_HEAD.replace(RUNBOOKS_LINE, "").replace("services:\n", SETTINGS + "services:\n")


def service(name: str, storage: str, *lines: str) -> str:
    """A files service copied by VolSync; ``lines`` are more keys (the first is line 6 of the
    item, after name, namespace, storage, churn and engine)."""
    head = [
        f"- name: {name}",
        f"  namespace: {name}",
        f"  storage: {storage}",
        "  churn: low",
        "  engine: files",
    ]
    return "".join(f"  {line}\n" for line in [*head, *(f"  {x}" for x in lines)])


MIXED = HEAD + "".join(
    [
        # Kept out of the offsite copies; openebs-hostpath: Direct, restored directly.
        service(
            "cache",
            "local-hostpath",
            "offsite: {excluded: Regenerable cache}",
            "volsync: {capacity: 1Gi}",
        ),
        # A CSI class with snapshots (iscsi-snapshot), cloned; its own counts.
        service(
            "notes",
            "iscsi",
            "volsync:",
            "  capacity: 1Gi",
            "  copy_method: Clone",
            "  retain: {hourly: 6, daily: 10, yearly: 2}",
            "  r2_retain: {monthly: 6}",
        ),
        # Offsite, on openebs-hostpath.
        service("wiki", "local-hostpath", "volsync: {capacity: 1Gi}"),
    ]
)


def render(tmp_path: Path, catalog: Catalog) -> Path:
    """The catalog's out/ tree, written below ``tmp_path``."""
    out = tmp_path / "out"
    for path, data in render_plan(build_plan(catalog)).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    return out


def built_app(tmp_path: Path, out: Path, catalog: Catalog, name: str) -> list[dict[str, Any]]:
    """The app's own component built with kustomize, Flux-substituted from its ConfigMap, and
    validated strictly; returns the objects."""
    svc = catalog.service(name)
    own = out / "kubernetes" / "components" / "volsync-apps" / name
    built = build_app(tmp_path, svc.namespace, own)
    values_file = out / "kubernetes" / "apps" / svc.namespace / name / "volsync.yaml"
    values = yaml.safe_load(values_file.read_text())["data"]
    docs = objects(substitute(built, values))
    assert validate_all(docs) == {}
    return docs


@pytest.fixture(scope="module")
def mixed() -> Catalog:
    return load_catalog_text(MIXED, "services.yaml")


def test_an_offsite_excluded_app_builds_with_no_r2_object(tmp_path: Path, mixed: Catalog) -> None:
    out = render(tmp_path, mixed)
    own = out / "kubernetes" / "components" / "volsync-apps" / "cache" / "kustomization.yaml"
    assert "volsync-r2" not in yaml.safe_load(own.read_text())["components"]
    values = (out / "kubernetes" / "apps" / "cache" / "cache" / "volsync.yaml").read_text()
    assert "VOLSYNC_R2_" not in values
    docs = built_app(tmp_path, out, mixed, "cache")
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("ExternalSecret", "cache-volsync"),
        ("ReplicationSource", "cache"),
        ("ReplicationDestination", "cache-dst"),
        ("PersistentVolumeClaim", "cache"),
    }
    text = yaml.safe_dump_all(docs)
    assert "restic" not in text and "r2" not in text.lower()
    # Nor an alert, a matrix claim or a runbook section about R2.
    groups = [g for g in rule_groups(mixed) if g.subject == "cache"]
    assert groups and all("cache-r2" not in a.expr for g in groups for a in g.alerts)
    row = matrix_row(mixed, mixed.service("cache"), [])
    assert "R2" not in row["volsync"] and row["offsite"] == "excluded: Regenerable cache"
    runbook = (out / "docs" / "runbooks" / "restore-cache.md").read_text()
    assert "R2" not in runbook


def test_an_included_app_gets_both_copies(tmp_path: Path, mixed: Catalog) -> None:
    out = render(tmp_path, mixed)
    docs = built_app(tmp_path, out, mixed, "notes")
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    kopia = by_name[("ReplicationSource", "notes")]["spec"]["kopia"]
    restic = by_name[("ReplicationSource", "notes-r2")]["spec"]["restic"]
    assert ("ExternalSecret", "notes-volsync-r2") in by_name
    # The catalog's copy method and counts; the rest derived from the retention (30 days).
    assert kopia["copyMethod"] == restic["copyMethod"] == "Clone"
    assert kopia["retain"] == {"hourly": 6, "daily": 10, "weekly": 4, "monthly": 1, "yearly": 2}
    assert restic["retain"] == {"hourly": 0, "daily": 30, "weekly": 4, "monthly": 6, "yearly": 0}
    assert kopia["volumeSnapshotClassName"] == "iscsi-snapshot"
    # The bootstrap still goes through the volume populator: the class has snapshots.
    destination = by_name[("ReplicationDestination", "notes-dst")]["spec"]
    assert destination["kopia"]["copyMethod"] == "Snapshot" and "paused" not in destination
    assert "dataSourceRef" in by_name[("PersistentVolumeClaim", "notes")]["spec"]
    row = matrix_row(mixed, mixed.service("notes"), [])
    assert "keeps 6 hourly, 10 daily, 4 weekly, 1 monthly, 2 yearly" in row["volsync"]
    assert "VolSync restic (R2)" in row["offsite"]


def test_a_class_without_csi_snapshots_copies_and_restores_directly(
    tmp_path: Path, mixed: Catalog
) -> None:
    out = render(tmp_path, mixed)
    docs = built_app(tmp_path, out, mixed, "wiki")
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by_name[("ReplicationSource", "wiki")]["spec"]["kopia"]["copyMethod"] == "Direct"
    assert by_name[("ReplicationSource", "wiki-r2")]["spec"]["restic"]["copyMethod"] == "Direct"
    assert "volumeSnapshotClassName" not in yaml.safe_dump_all(docs)
    destination = by_name[("ReplicationDestination", "wiki-dst")]["spec"]
    assert destination["paused"] is True
    assert destination["kopia"]["copyMethod"] == "Direct"
    assert destination["kopia"]["destinationPVC"] == "wiki"
    assert "dataSourceRef" not in by_name[("PersistentVolumeClaim", "wiki")]["spec"]
    runbook = (out / "docs" / "runbooks" / "restore-wiki.md").read_text()
    assert '"paused":false' in runbook


@pytest.mark.parametrize(
    "value",
    [
        "*x",
        "&a",
        "!tag",
        "{a: 1}",
        "[a]",
        "%x",
        "@x",
        "`x",
        "yes",
        "No",
        "on",
        "OFF",
        "y",
        "n",
        "~",
        "null",
        "",
        " a",
        "a: b",
        "a #b",
        "12:30",
    ],
)
def test_yaml_unsafe_values_are_caught(value: str) -> None:
    assert not yaml_safe(value)


@pytest.mark.parametrize(
    "value", ["Snapshot", "Direct", "27 2 * * *", "0,30 * * * *", "5Gi", "14", "/mnt/a", "x-y"]
)
def test_yaml_safe_values_pass(value: str) -> None:
    assert yaml_safe(value)


def test_every_value_and_default_stays_yaml_safe_after_substitution(mixed: Catalog) -> None:
    """Flux pastes each value into the YAML text and parses it again."""
    from homeops_gen.generators.volsync import app_values as values_of

    for catalog in (CATALOG, mixed):
        v = catalog.settings.volsync
        for variable in (component_variables(v) | r2_variables(v)).values():
            assert variable.default is None or yaml_safe(variable.default), variable
        for svc in catalog.services:
            if svc.uses("volsync"):
                for name, value in values_of(catalog, svc).items():
                    assert yaml_safe(value), (svc.name, name, value)


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        load_catalog_text(text, "services.yaml")
    return list(exc.value.lines)


def at(line: int, column: int, path: str, message: str) -> str:
    return f"services.yaml:{line}:{column}: {path}: {message}"


#: The first service's lines: name 12 ... engine 16, its extra lines from 17.
BAD_VOLSYNC = [
    pytest.param(
        service("a", "local-hostpath", "volsync: {capacity: 1Gi, copy_method: Snapshot}"),
        at(
            17,
            43,
            "services[0].volsync.copy_method",
            "copy_method Snapshot needs CSI snapshots, which StorageClass 'openebs-hostpath' "
            "has not (OpenEBS's hostpath LocalPV provisioner is not a CSI driver); use Direct",
        ),
        id="snapshot-without-csi-snapshots",
    ),
    pytest.param(
        service("a", "local-hostpath", "volsync: {capacity: 1Gi, copy_method: Clone}"),
        at(
            17,
            43,
            "services[0].volsync.copy_method",
            "copy_method Clone needs CSI clones, which StorageClass 'openebs-hostpath' has not "
            "(OpenEBS's hostpath LocalPV provisioner is not a CSI driver); use Direct",
        ),
        id="clone-without-csi",
    ),
    pytest.param(
        service("a", "iscsi", "volsync: {capacity: 1Gi, copy_method: None}"),
        at(
            17,
            43,
            "services[0].volsync.copy_method",
            "'None' is not one of 'Snapshot', 'Clone' or 'Direct'",
        ),
        id="copy-method-outside-the-enum",
    ),
    pytest.param(
        service("a", "iscsi", "volsync: {capacity: 1Gi, retain: {daily: -1}}"),
        at(
            17,
            46,
            "services[0].volsync.retain.daily",
            "Input should be greater than or equal to 0",
        ),
        id="negative-count",
    ),
    pytest.param(
        service("a", "iscsi", "volsync: {capacity: 1Gi, retain: {daily: '7'}}"),
        at(17, 46, "services[0].volsync.retain.daily", "expected a whole number, got a string"),
        id="count-as-string",
    ),
    pytest.param(
        service("a", "iscsi", "volsync: {capacity: 1Gi, retain: {latest: 3}}"),
        at(17, 39, "services[0].volsync.retain.latest", "unknown field 'latest'"),
        id="count-restic-lacks",
    ),
    pytest.param(
        service(
            "a",
            "iscsi",
            "volsync: {capacity: 1Gi, retain: {hourly: 0, daily: 0, weekly: 0, monthly: 0, "
            "yearly: 0}}",
        ),
        at(
            17,
            30,
            "services[0].volsync.retain",
            "keeps no snapshot at all: give at least one count above 0",
        ),
        id="keeps-nothing",
    ),
    pytest.param(
        service(
            "a",
            "iscsi",
            "offsite: {excluded: Scratch}",
            "volsync: {capacity: 1Gi, r2_retain: {daily: 3}}",
        ),
        at(
            18,
            30,
            "services[0].volsync.r2_retain",
            "there is no copy to R2: the service is kept out of the offsite copies",
        ),
        id="r2-counts-for-an-excluded-app",
    ),
]


@pytest.mark.parametrize(("item", "expected"), BAD_VOLSYNC)
def test_bad_volsync_blocks_are_reported_where_written(item: str, expected: str) -> None:
    assert errors_of(HEAD + item) == [expected]


def test_a_snapshot_class_for_a_class_without_csi_snapshots_is_refused() -> None:
    text = HEAD.replace(
        "{storage_class: openebs-hostpath}",
        "{storage_class: local-path, snapshot_class: local-path-snapshot}",
    )
    assert errors_of(text + service("a", "iscsi", "volsync: {capacity: 1Gi}")) == [
        at(
            10,
            67,
            "settings.volsync.classes.local-hostpath.snapshot_class",
            "StorageClass 'local-path' has no CSI snapshots (rancher's local-path-provisioner "
            "is not a CSI driver): leave snapshot_class out",
        )
    ]


def test_copy_method_defaults_from_settings_where_the_class_can_take_it() -> None:
    text = HEAD.replace("  volsync:\n", "  volsync:\n    copy_method: Clone\n")
    catalog = load_catalog_text(
        text
        + service("a", "iscsi", "volsync: {capacity: 1Gi}")
        + service("b", "local-hostpath", "volsync: {capacity: 1Gi}"),
        "services.yaml",
    )
    assert catalog.service("a").volsync.copy_method == "Clone"  # type: ignore[union-attr]
    assert catalog.service("b").volsync.copy_method == "Direct"  # type: ignore[union-attr]
    # The component's own default is the default class's: openebs-hostpath takes Direct.
    assert catalog.settings.volsync.copy_method == "Direct"
    assert catalog.settings.volsync.snapshot_class is None
