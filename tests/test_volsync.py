"""The VolSync component: kustomize builds it, Flux's substitution fills it, the CRDs accept it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from crds import validate, validate_all
from flux import references, substitute

from homeops_gen import load_catalog, load_catalog_text
from homeops_gen.catalog.model import Retention
from homeops_gen.errors import CatalogError
from homeops_gen.generators.volsync import cache_limits_mb, component_variables, retain
from homeops_gen.schedule import Schedule

OUT = REPO / "out" / "kubernetes"
COMPONENT = OUT / "components" / "volsync"
CATALOG = load_catalog(REPO / "services.yaml")
APPS = sorted(s.name for s in CATALOG.services if s.uses("volsync"))


def app_values(name: str) -> dict[str, str]:
    service = CATALOG.service(name)
    path = OUT / "apps" / service.namespace / name / "volsync.yaml"
    config_map = yaml.safe_load(path.read_text())
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"] == {"name": f"{name}-volsync", "namespace": "flux-system"}
    data: dict[str, str] = config_map["data"]
    return data


def build_app(tmp_path: Path, namespace: str) -> str:
    """``kubectl kustomize`` of an app that includes the component (before substitution)."""
    kubectl = require_tool("kubectl")
    app = tmp_path / "app"
    app.mkdir()
    (app / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "components": [os.path.relpath(COMPONENT, app)],  # kustomize wants it relative
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


def test_component_is_a_kustomize_component_listing_its_files() -> None:
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert kustomization["kind"] == "Component"
    assert kustomization["resources"] == ["./kopia.yaml", "./pvc.yaml", "./r2.yaml"]
    listed = {r.removeprefix("./") for r in kustomization["resources"]}
    assert listed | {"kustomization.yaml"} == {p.name for p in COMPONENT.iterdir()}


def test_header_documents_every_variable_the_component_reads() -> None:
    header = (COMPONENT / "kustomization.yaml").read_text()
    used = set().union(*(references(p.read_text()) for p in COMPONENT.glob("*.yaml")))
    documented = set(component_variables(CATALOG.settings.volsync))
    assert used == documented
    for name in documented:
        assert f"#   {name}: " in header


def test_kinds_and_names() -> None:
    kinds = {
        (d["kind"], d["metadata"]["name"])
        for path in COMPONENT.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for d in objects(path.read_text())
    }
    assert kinds == {
        ("ExternalSecret", "${APP}-volsync"),
        ("ReplicationSource", "${APP}"),
        ("ReplicationDestination", "${APP}-dst"),
        ("PersistentVolumeClaim", "${VOLSYNC_CLAIM}"),
        ("ExternalSecret", "${APP}-volsync-r2"),
        ("ReplicationSource", "${APP}-r2"),
    }


# --- built, substituted and validated, for every app of the catalog ---------------------------


@pytest.mark.parametrize("name", APPS)
def test_each_app_builds_substitutes_and_validates_strictly(name: str, tmp_path: Path) -> None:
    service = CATALOG.service(name)
    built = build_app(tmp_path, service.namespace)
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
    }
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
    from homeops_gen import build_plan

    paths = build_plan(load_catalog_text(VOLSYNC_APP)).paths
    assert "kubernetes/components/volsync/kopia.yaml" in paths
    assert "kubernetes/components/volsync/r2.yaml" not in paths


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
