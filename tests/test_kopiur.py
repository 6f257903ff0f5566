"""The kopiur components: kustomize builds them, Flux's substitution fills them from each app's
ConfigMap, the CRDs accept them (their schemas strictly, and their CEL rules), and the objects
mean what the catalog says.

Three catalogs: the bundled one (its out/ in the repository) and the inline KOPIUR_ONLY and
MIXED_ENGINES (rendered below a temporary folder). What an app should get is read from the
catalog's own YAML (its block, its offsite exclusion, settings.kopiur), not from the generator.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import celpy
import crds
import pytest
import yaml
from celpy import celtypes
from conftest import REPO, require_tool
from flux import UnsetVariable, references, substitute
from pvc_catalogs import KOPIUR_ONLY, MIXED_ENGINES, VOLSYNC_ONLY

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog

GROUP = "kopiur.home-operations.com"
API = f"{GROUP}/v1alpha1"
#: The catalog's retention periods and kopiur's keys for them (kopiur says keepAnnual).
KEEP = {
    "hourly": "keepHourly",
    "daily": "keepDaily",
    "weekly": "keepWeekly",
    "monthly": "keepMonthly",
    "yearly": "keepAnnual",
}


def keep_variable(prefix: str, period: str) -> str:
    return f"{prefix}_KEEP_{'ANNUAL' if period == 'yearly' else period.upper()}"


# --- what the catalog's own YAML says ---------------------------------------------------------


@dataclass(frozen=True)
class App:
    """A kopiur app as its catalog item says (defaults as documented in catalog/spec.py)."""

    name: str
    namespace: str
    claim: str
    capacity: str
    offsite: bool
    min_files: int
    retain: dict[str, int]
    r2_retain: dict[str, int]


def engine_of(item: Mapping[str, Any], default: str) -> str | None:
    """The engine copying a service's PVC: the block's name, or ``pvc.engine``, or
    settings.pvc_engine (default volsync)."""
    if "kopiur" in item:
        return "kopiur"
    if "volsync" in item:
        return "volsync"
    if "pvc" in item:
        return str(item["pvc"].get("engine") or default)
    return None


def kopiur_apps(raw: Mapping[str, Any]) -> dict[str, App]:
    """The kopiur apps; ``offsite``: copied to R2 (not excluded, and there is an R2 store)."""
    default = raw["settings"].get("pvc_engine", "volsync")
    stores = (raw["settings"].get("object_stores") or {}).values()
    r2 = any(store.get("provider") == "r2" for store in stores)
    apps = {}
    for item in raw["services"]:
        if engine_of(item, default) != "kopiur":
            continue
        block = item.get("kopiur") or item["pvc"]
        drill = item.get("drill")
        apps[item["name"]] = App(
            name=item["name"],
            namespace=item["namespace"],
            claim=block.get("claim", item["name"]),
            capacity=block["capacity"],
            offsite=r2 and "excluded" not in (item.get("offsite") or {}),
            min_files=drill.get("min_files", 1) if isinstance(drill, dict) else 1,
            retain=dict(block.get("retain") or {}),
            r2_retain=dict(block.get("r2_retain") or {}),
        )
    return apps


@dataclass(frozen=True)
class Tree:
    """One catalog and its out/ tree."""

    label: str
    raw: dict[str, Any]
    catalog: Catalog
    out: Path

    @property
    def kubernetes(self) -> Path:
        return self.out / "kubernetes"

    @property
    def apps(self) -> dict[str, App]:
        return kopiur_apps(self.raw)

    @property
    def zone(self) -> str:
        return str(self.raw["settings"]["timezone"])

    def kopiur(self, key: str, default: str) -> str:
        return str((self.raw["settings"].get("kopiur") or {}).get(key, default))

    @property
    def repository(self) -> str:
        return self.kopiur("repository", "nfs")

    @property
    def r2_repository(self) -> str:
        return self.kopiur("r2_repository", "r2")

    @property
    def on_missing_snapshot(self) -> str:
        return self.kopiur("on_missing_snapshot", "Continue")

    @property
    def operator_namespace(self) -> str:
        return self.kopiur("namespace", "kopiur-system")

    def r2_store(self) -> dict[str, Any] | None:
        stores = self.raw["settings"].get("object_stores") or {}
        return next((s for s in stores.values() if s.get("provider") == "r2"), None)

    def deep(self, name: str) -> bool:
        """Deep verification is the drill of the apps whose drill layer is kopiur (the
        resolved drill: an app without a drill block has its criticality's default)."""
        drill = self.catalog.service(name).drill
        return drill is not None and drill.layer == "kopiur"

    def component(self, name: str) -> Path:
        return self.kubernetes / "components" / name

    def values(self, name: str) -> dict[str, str]:
        """The app's ConfigMap (what its Flux Kustomization substitutes from)."""
        app = self.apps[name]
        path = self.kubernetes / "apps" / app.namespace / name / "kopiur.yaml"
        config_map = yaml.safe_load(path.read_text())
        assert config_map["kind"] == "ConfigMap"
        assert config_map["metadata"] == {"name": f"{name}-kopiur", "namespace": "flux-system"}
        data: dict[str, str] = config_map["data"]
        assert all(isinstance(v, str) for v in data.values())  # a ConfigMap holds strings
        return data


TEXTS = {
    "bundled": (REPO / "services.yaml").read_text(),
    "kopiur-only": KOPIUR_ONLY,
    "mixed-engines": MIXED_ENGINES,
}
RAW = {label: yaml.safe_load(text) for label, text in TEXTS.items()}
#: (catalog, app) for every kopiur app of the three catalogs.
CASES = [(label, name) for label, raw in RAW.items() for name in sorted(kopiur_apps(raw))]
CASE_IDS = [f"{label}-{name}" for label, name in CASES]


def render(out: Path, catalog: Catalog) -> Path:
    for path, data in render_plan(build_plan(catalog)).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    return out


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tree]:
    found = {
        "bundled": Tree(
            "bundled", RAW["bundled"], load_catalog(REPO / "services.yaml"), REPO / "out"
        )
    }
    for label in ("kopiur-only", "mixed-engines"):
        catalog = load_catalog_text(TEXTS[label], "services.yaml")
        out = render(tmp_path_factory.mktemp(label) / "out", catalog)
        found[label] = Tree(label, RAW[label], catalog, out)
    return found


# --- strict validation ------------------------------------------------------------------------
# crds.validate is strict the way `kubectl --validate=strict` is. Two properties of kopiur's
# CRDs (generated by kube-rs) are what this section guards: almost every optional object is
# `nullable: true` (it must still refuse an undeclared field), and the root schema leaves out
# apiVersion, kind and metadata (which the API server declares for every custom resource).

validate = crds.validate
validate_all = crds.validate_all


def crd_schema(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The openAPIV3Schema of the object's kind and version, from the CRD file crds.validate
    reads (``None`` for a built-in kind): the CEL rules below are read from it."""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    entry = crds._crd_files(crds.crd_dir()).get((group, str(obj["kind"])))
    if entry is None:
        return None
    versions = {v["name"]: v for v in entry[1]["spec"]["versions"]}
    schema: dict[str, Any] = versions[version]["schema"]["openAPIV3Schema"]
    return schema


def _demo_restore() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Restore",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {
            "source": {"fromPolicy": {"name": "demo"}},
            "target": {"populator": {}},
            "policy": {"onMissingSnapshot": "Continue"},
        },
    }


def test_validation_is_strict_below_nullable_objects_and_at_the_root() -> None:
    restore = _demo_restore()
    assert validate(restore) == []
    restore["spec"]["policy"]["onMissingSnapshots"] = restore["spec"]["policy"].pop(
        "onMissingSnapshot"
    )
    assert any("onMissingSnapshots" in p for p in validate(restore))
    restore["spec"]["policy"] = None  # nullable: null is allowed
    assert validate(restore) == []
    assert any("'extra'" in p for p in validate(_demo_restore() | {"extra": 1}))
    named = _demo_restore() | {"metadata": {"name": "Demo_"}}
    assert any("metadata.name" in p for p in validate(named))
    assert validate(_demo_restore() | {"spec": {"target": {"populator": {}}}})  # no source


def test_crds_validate_refuses_a_misspelt_field_below_a_nullable_object() -> None:
    restore = _demo_restore()
    restore["spec"]["policy"] = {"onMissingSnapshots": "Continue"}
    assert any("onMissingSnapshots" in p for p in crds.validate(restore))


def test_crds_validate_accepts_a_valid_kopiur_object() -> None:
    assert crds.validate(_demo_restore()) == []


# --- kustomize, Flux -------------------------------------------------------------------------


def build_app(tmp_path: Path, namespace: str, *components: Path) -> str:
    """``kubectl kustomize`` of a test app Kustomization in ``namespace`` that lists
    ``components``, before Flux's substitution."""
    kubectl = require_tool("kubectl")
    app = tmp_path / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "components": [os.path.relpath(c, app) for c in components],  # relative
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


#: ``${NAME}``, ``${NAME:=default}``, ``${NAME:-default}`` (as flux.py reads them), with the
#: default kept: which variables are required, and which default each file gives.
_REFERENCE = re.compile(r"\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?::?[=-]([^}]*))?\}")


def defaults_of(text: str) -> dict[str, set[str | None]]:
    """Each variable ``text`` refers to, with the defaults it is given (``None``: none)."""
    found: dict[str, set[str | None]] = {}
    for match in _REFERENCE.finditer(text):
        found.setdefault(match.group(1), set()).add(match.group(2))
    assert set(found) == references(text)
    return found


def build_and_fill(tree: Tree, name: str, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The app's own component built in its namespace and filled strictly from its values."""
    app = tree.apps[name]
    built = build_app(tmp_path, app.namespace, tree.component(f"kopiur-apps/{name}"))
    filled = substitute(built, tree.values(name))  # strict: an unset required variable raises
    assert "${" not in filled
    return built, objects(filled)


# --- the CRDs' CEL rules (x-kubernetes-validations), evaluated with celpy ----------------------

#: Rules celpy cannot evaluate, by rule text, each with the reason it is let through. None of
#: kopiur's rules needs an entry; a rule that fails to compile or evaluate fails the test.
UNEVALUABLE: dict[str, str] = {}
_CEL = celpy.Environment()


@functools.cache
def _program(expression: str) -> celpy.Runner:
    return _CEL.program(_CEL.compile(expression))


def _short(error: Exception) -> str:
    text = str(error.args[0]) if error.args else repr(error)
    return text.split(" (in activation")[0][:200]


@dataclass
class CelReport:
    #: (kind, path of the node, rule) of every rule evaluated / skipped as a transition rule.
    evaluated: list[tuple[str, str, str]] = field(default_factory=list)
    transition: list[tuple[str, str, str]] = field(default_factory=list)
    #: A rule that evaluated to false: the object is refused.
    violations: list[str] = field(default_factory=list)
    #: A rule celpy could not evaluate (compile or evaluation error, non-bool result).
    errors: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)


def with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """The value with the schema's defaults filled in, as the API server does before it runs
    the rules: an absent property with a ``default`` gets it, at every object present."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        filled = {
            key: copy.deepcopy(sub["default"])
            for key, sub in properties.items()
            if "default" in sub and key not in value
        } | value
        return {
            key: with_defaults(properties[key], item)
            if key in properties
            else with_defaults(extra, item)
            if isinstance(extra, dict)
            else item
            for key, item in filled.items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


def cel_check(
    obj: Mapping[str, Any], excused: Mapping[str, str] | None = None, schema: Any = None
) -> CelReport:
    """Evaluate every ``x-kubernetes-validations`` rule of the object's schema on the node it
    sits on, ``self`` bound to that node (the way the API server runs them on create). Rules
    mentioning ``oldSelf`` are transition rules, run only on update: skipped and counted."""
    excused = UNEVALUABLE if excused is None else excused
    report = CelReport()
    schema = crd_schema(obj) if schema is None else schema
    if schema is None:
        return report
    kind = str(obj.get("kind"))

    def walk(node: Mapping[str, Any], value: Any, path: str) -> None:
        if value is None:  # a null carries nothing for a rule to check
            return
        for entry in node.get("x-kubernetes-validations") or ():
            rule = entry["rule"]
            where = (kind, path or "(root)", rule)
            if re.search(r"\boldSelf\b", rule):
                report.transition.append(where)
                continue
            report.evaluated.append(where)
            try:
                result = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
                if not isinstance(result, celtypes.BoolType):
                    raise TypeError(f"the rule gave {type(result).__name__}, not a bool")
            except Exception as error:  # any failure to evaluate: celpy cannot check it
                line = f"{path or '(root)'}: {rule!r} could not be evaluated: {_short(error)}"
                (report.excused if rule in excused else report.errors).append(line)
                continue
            if not result:
                message = entry.get("message", rule)
                report.violations.append(f"{path or '(root)'}: {message}")
        if isinstance(value, dict):
            properties = node.get("properties") or {}
            extra = node.get("additionalProperties")
            for key, item in value.items():
                if key in properties:
                    walk(properties[key], item, f"{path}.{key}".lstrip("."))
                elif isinstance(extra, dict):
                    walk(extra, item, f"{path}.{key}".lstrip("."))
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for index, item in enumerate(value):
                walk(node["items"], item, f"{path}[{index}]")

    walk(schema, with_defaults(schema, dict(obj)), "")
    return report


def cel_clean(docs: list[dict[str, Any]]) -> list[CelReport]:
    """Every object's report; the objects must pass every rule, and celpy must evaluate every
    rule (bar the excused)."""
    reports = [cel_check(d) for d in docs]
    for doc, report in zip(docs, reports, strict=True):
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        assert report.violations == [], label
        assert report.errors == [], label
    return reports


def schema_rules(schema: Any, structural: bool) -> list[str]:
    """The rules of a schema: all of them (any key), or those a walk through ``properties``,
    ``items`` and ``additionalProperties`` reaches (where the API server runs them)."""
    found: list[str] = []
    if isinstance(schema, list):
        return [] if structural else [r for item in schema for r in schema_rules(item, False)]
    if not isinstance(schema, dict):
        return found
    found += [e["rule"] for e in schema.get("x-kubernetes-validations") or ()]
    if not structural:
        for key, value in schema.items():
            if key != "x-kubernetes-validations":
                found += schema_rules(value, False)
        return found
    for sub in (schema.get("properties") or {}).values():
        found += schema_rules(sub, True)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += schema_rules(schema[key], True)
    return found


# --- successExpr, evaluated the way kopiur does ------------------------------------------------
# kopiur (crates/api/src/success_expr.rs): the CEL environment is `stats` {files, bytes, errors}
# (ints), `snapshot` (a string map, the id under `id`), `restored` {files, checksumMatches} for
# the deep tier and an empty map for the quick one, `tier` "quick" or "deep"; the result must be
# a bool. Admission trial-evaluates it once in a fixed deep environment; an expression longer
# than identity.rs's MAX_EXPR_LEN (1024 bytes) is refused at compile.
MAX_EXPR_LEN = 1024
TRIAL = {
    "stats": {"files": 1, "bytes": 1, "errors": 0},
    "snapshot": {"id": "trial"},
    "restored": {"files": 1, "checksumMatches": True},
    "tier": "deep",
}


def verdict(expression: str, environment: Mapping[str, Any]) -> bool:
    assert len(expression.encode()) <= MAX_EXPR_LEN
    activation = {key: celpy.json_to_cel(value) for key, value in environment.items()}
    result = _program(expression).evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    if not isinstance(result, celtypes.BoolType):
        raise TypeError(f"successExpr gave {type(result).__name__}, kopiur requires a bool")
    return bool(result)


def quick(files: int, errors: int = 0) -> dict[str, Any]:
    return {
        "stats": {"files": files, "bytes": files * 4096, "errors": errors},
        "snapshot": {"id": "k1a2b3"},
        "restored": {},
        "tier": "quick",
    }


def deep(files: int, restored: int, matches: bool = True, errors: int = 0) -> dict[str, Any]:
    return quick(files, errors) | {
        "restored": {"files": restored, "checksumMatches": matches},
        "tier": "deep",
    }


# --- what each app's objects must mean ------------------------------------------------------


def meaning_problems(
    tree: Tree, name: str, values: Mapping[str, str], docs: list[dict[str, Any]]
) -> list[str]:
    """Where the app's substituted objects differ from what its catalog says."""
    app = tree.apps[name]
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    wanted = {
        ("SnapshotPolicy", name),
        ("SnapshotSchedule", name),
        ("Restore", name),
        ("PersistentVolumeClaim", app.claim),
    }
    r2 = {("SnapshotPolicy", f"{name}-r2"), ("SnapshotSchedule", f"{name}-r2")}
    wanted |= r2 if app.offsite else set()
    expect(set(by) == wanted, f"objects {sorted(by)}, not {sorted(wanted)}")
    if not wanted <= set(by):
        return problems
    for d in docs:
        expect(d["metadata"].get("namespace") == app.namespace, f"{d['kind']} namespace")
    expect(values["APP"] == name and values["KOPIUR_CLAIM"] == app.claim, "APP/KOPIUR_CLAIM")

    policy = by["SnapshotPolicy", name]["spec"]
    expect(policy.get("sources") == [{"pvc": {"name": app.claim}}], "source is not the claim")
    expect(
        policy.get("repository") == {"kind": "ClusterRepository", "name": tree.repository},
        f"repository {policy.get('repository')}",
    )
    retention = {key: int(values[keep_variable("KOPIUR", p)]) for p, key in KEEP.items()}
    expect(policy.get("retention") == retention, f"retention {policy.get('retention')}")
    expect(all(type(n) is int for n in policy.get("retention", {}).values()), "counts not ints")
    for period, count in app.retain.items():  # the catalog's own counts win
        expect(retention[KEEP[period]] == count, f"{period} is not the catalog's {count}")
    verification = policy.get("verification") or {}
    expect(
        verification.get("quick", {}).get("schedule")
        == {"cron": values["KOPIUR_VERIFY_SCHEDULE"], "timezone": tree.zone},
        "quick verification schedule",
    )
    expect("successExpr" in verification, "no successExpr")
    expect(values["KOPIUR_MIN_FILES"] == str(app.min_files), "KOPIUR_MIN_FILES")
    if tree.deep(name):
        expect(
            verification.get("deep", {}).get("schedule")
            == {"cron": values.get("KOPIUR_DEEP_VERIFY_SCHEDULE"), "timezone": tree.zone},
            "deep verification schedule",
        )
        expect(verification.get("deep", {}).get("capacity") == app.capacity, "deep capacity")
    else:
        expect("deep" not in verification, "deep verification without a kopiur drill")
        expect("KOPIUR_DEEP_VERIFY_SCHEDULE" not in values, "deep schedule without a drill")

    schedule = by["SnapshotSchedule", name]["spec"]
    expect(schedule.get("policyRef") == {"name": name}, "schedule's policyRef")
    expect(schedule["schedule"].get("cron") == values["KOPIUR_SCHEDULE"], "schedule's cron")
    expect(schedule["schedule"].get("timezone") == tree.zone, "schedule's timezone")

    restore = by["Restore", name]["spec"]
    expect(restore.get("target") == {"populator": {}}, f"restore target {restore.get('target')}")
    expect(restore.get("source", {}).get("fromPolicy", {}).get("name") == name, "restore source")
    # Explicit: kopiur's own default is Fail, the catalog's may differ.
    expect(
        (restore.get("policy") or {}).get("onMissingSnapshot") == tree.on_missing_snapshot,
        f"onMissingSnapshot {(restore.get('policy') or {}).get('onMissingSnapshot')!r}",
    )
    pvc = by["PersistentVolumeClaim", app.claim]["spec"]
    expect(
        pvc.get("dataSourceRef") == {"apiGroup": GROUP, "kind": "Restore", "name": name},
        f"dataSourceRef {pvc.get('dataSourceRef')}",
    )
    expect(pvc["resources"]["requests"]["storage"] == app.capacity, "capacity")

    r2_values = {k for k in values if k.startswith("KOPIUR_R2_")}
    if app.offsite:
        r2_policy = by["SnapshotPolicy", f"{name}-r2"]["spec"]
        expect(
            r2_policy.get("repository")
            == {"kind": "ClusterRepository", "name": tree.r2_repository},
            "R2 repository",
        )
        expect(r2_policy.get("sources") == [{"pvc": {"name": app.claim}}], "R2 source")
        r2_retention = {k: int(values[keep_variable("KOPIUR_R2", p)]) for p, k in KEEP.items()}
        expect(r2_policy.get("retention") == r2_retention, "R2 retention")
        for period, count in app.r2_retain.items():
            expect(r2_retention[KEEP[period]] == count, f"R2 {period} is not the catalog's")
        r2_schedule = by["SnapshotSchedule", f"{name}-r2"]["spec"]
        expect(r2_schedule.get("policyRef") == {"name": f"{name}-r2"}, "R2 policyRef")
        expect(
            r2_schedule["schedule"].get("cron") == values.get("KOPIUR_R2_SCHEDULE")
            and r2_schedule["schedule"].get("timezone") == tree.zone,
            "R2 schedule",
        )
    else:
        expect(not r2_values, f"R2 values for an offsite-excluded app: {sorted(r2_values)}")
    return problems


# --- the catalogs' kopiur apps ---------------------------------------------------------------


def test_each_catalog_has_the_kopiur_apps_its_blocks_name(trees: dict[str, Tree]) -> None:
    expected = {
        "bundled": {"radarr", "sonarr"},
        "kopiur-only": {"cache", "notes", "wiki"},  # settings.pvc_engine: kopiur
        "mixed-engines": {"jellyfin", "paperless"},  # a kopiur block, a pvc.engine; not grafana
    }
    for label, tree in trees.items():
        assert set(tree.apps) == expected[label], label
        own = {p.name for p in tree.component("kopiur-apps").iterdir()}
        assert own == expected[label], label
        values = {p.parent.name for p in (tree.kubernetes / "apps").glob("*/*/kopiur.yaml")}
        assert values == expected[label], label
    assert not trees["kopiur-only"].apps["cache"].offsite
    assert not trees["mixed-engines"].apps["jellyfin"].offsite
    # The control: a catalog whose pvc blocks default to VolSync has no kopiur file at all.
    paths = build_plan(load_catalog_text(VOLSYNC_ONLY, "services.yaml")).paths
    assert not [p for p in paths if "kopiur" in p]
    assert kopiur_apps(yaml.safe_load(VOLSYNC_ONLY)) == {}


# --- every app: built, substituted, validated, and meaning what the catalog says --------------


@pytest.mark.parametrize(("label", "name"), CASES, ids=CASE_IDS)
def test_each_app_builds_substitutes_and_validates_strictly(
    label: str, name: str, trees: dict[str, Tree], tmp_path: Path
) -> None:
    tree = trees[label]
    app = tree.apps[name]
    own = yaml.safe_load((tree.component(f"kopiur-apps/{name}") / "kustomization.yaml").read_text())
    assert own["kind"] == "Component"
    assert own["components"] == [
        "../../kopiur",
        *(["../../kopiur-deep"] if tree.deep(name) else []),
        *(["../../kopiur-r2"] if app.offsite else []),
    ]
    built, docs = build_and_fill(tree, name, tmp_path)
    values = tree.values(name)
    assert validate_all(docs) == {}
    reports = cel_clean(docs)
    assert sum(len(r.evaluated) for r in reports) >= 4  # policy, its source, schedule, restore
    assert meaning_problems(tree, name, values, docs) == []

    # Strict: every variable without a default must be in the ConfigMap.
    required = {n for n, d in defaults_of(built).items() if None in d}
    assert required == {
        "APP",
        "KOPIUR_CLAIM",
        *(["KOPIUR_DEEP_VERIFY_SCHEDULE"] if tree.deep(name) else []),
        *(["KOPIUR_R2_SCHEDULE"] if app.offsite else []),
    }
    for variable in required:
        with pytest.raises(UnsetVariable, match=variable):
            substitute(built, {k: v for k, v in values.items() if k != variable})

    # The controls: a misspelt or unknown field is refused.
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    mutations: list[tuple[tuple[str, str], Callable[[dict[str, Any]], None], str]] = [
        (("SnapshotPolicy", name), rename("verification", "successExpr", "successExpression"),
         "successExpression"),
        (("Restore", name), rename("policy", "onMissingSnapshot", "onMissing"), "onMissing"),
        (("SnapshotPolicy", name), rename("", "copyMethod", "copymethod"), "copymethod"),
        (("SnapshotSchedule", name), add("schedule", "timeZone", tree.zone), "timeZone"),
        (("PersistentVolumeClaim", app.claim), add("dataSourceRef", "namespaces", "x"),
         "namespaces"),
    ]  # fmt: skip
    for key, mutate, word in mutations:
        changed = copy.deepcopy(by[key])
        mutate(changed["spec"])
        assert any(word in problem for problem in validate(changed)), (key, word)


def rename(under: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        node = spec[under] if under else spec
        node[new] = node.pop(old)

    return mutate


def add(under: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        spec[under][key] = value

    return mutate


MEANING_CONTROLS = [
    pytest.param(
        lambda d: d["kind"] == "SnapshotPolicy" and d["spec"]["repository"].update(name="other"),
        "repository",
        id="other-repository",
    ),
    pytest.param(
        lambda d: d["kind"] == "SnapshotSchedule" and d["spec"]["schedule"].pop("timezone"),
        "timezone",
        id="schedule-in-utc",
    ),
    pytest.param(
        lambda d: d["kind"] == "Restore" and d["spec"].pop("policy"),
        "onMissingSnapshot",
        id="implicit-on-missing-snapshot",
    ),
    pytest.param(
        lambda d: (
            d["kind"] == "SnapshotPolicy"
            and d["spec"]["retention"].update(keepDaily=d["spec"]["retention"]["keepDaily"] + 1)
        ),
        "retention",
        id="retention-off-by-one",
    ),
    pytest.param(
        lambda d: (
            d["kind"] == "PersistentVolumeClaim"
            and d["spec"]["dataSourceRef"].update(apiGroup="volsync.backube")
        ),
        "dataSourceRef",
        id="populated-by-another-operator",
    ),
    pytest.param(
        lambda d: d["kind"] == "SnapshotPolicy" and d["spec"]["sources"][0]["pvc"].update(name="x"),
        "source",
        id="another-claim",
    ),
]


@pytest.mark.parametrize(("mutate", "word"), MEANING_CONTROLS)
def test_the_meaning_check_can_fail(
    mutate: Callable[[dict[str, Any]], Any], word: str, trees: dict[str, Tree], tmp_path: Path
) -> None:
    tree = trees["kopiur-only"]
    _, docs = build_and_fill(tree, "notes", tmp_path)
    values = tree.values("notes")
    for doc in docs:
        if doc["metadata"]["name"] in ("notes", "notes-data"):
            mutate(doc)
    assert any(word in problem for problem in meaning_problems(tree, "notes", values, docs))


def test_offsite_exclusion_and_deep_verification_follow_the_catalog(
    trees: dict[str, Tree],
) -> None:
    """The cases the issue names, spelt out: the excluded apps lack every R2 piece, the
    included have it; notes (a drill) is deep-verified, wiki (drill: false) is not."""
    for label, name, offsite in [
        ("kopiur-only", "cache", False),
        ("mixed-engines", "jellyfin", False),
        ("kopiur-only", "notes", True),
        ("kopiur-only", "wiki", True),
        ("mixed-engines", "paperless", True),
        ("bundled", "sonarr", True),
    ]:
        tree = trees[label]
        values = tree.values(name)
        assert tree.apps[name].offsite is offsite
        assert ("KOPIUR_R2_SCHEDULE" in values) is offsite, name
        assert any(k.startswith("KOPIUR_R2_") for k in values) is offsite, name
    kopiur_only = trees["kopiur-only"]
    assert kopiur_only.deep("notes") and not kopiur_only.deep("wiki")
    assert kopiur_only.raw["services"][2]["drill"] is False
    assert "KOPIUR_DEEP_VERIFY_SCHEDULE" in kopiur_only.values("notes")
    assert "KOPIUR_DEEP_VERIFY_SCHEDULE" not in kopiur_only.values("wiki")


# --- the CEL rules ---------------------------------------------------------------------------

KOPIUR_KINDS = ("ClusterRepository", "SnapshotPolicy", "SnapshotSchedule", "Restore")


def kind_schema(kind: str) -> dict[str, Any]:
    schema = crd_schema({"apiVersion": API, "kind": kind})
    assert schema is not None, kind
    return schema


def test_every_rule_sits_where_the_walk_reaches_it() -> None:
    """A rule the structural walk cannot reach would never be evaluated: there is none."""
    census = {}
    for kind in KOPIUR_KINDS:
        everywhere = schema_rules(kind_schema(kind), structural=False)
        assert sorted(schema_rules(kind_schema(kind), structural=True)) == sorted(everywhere)
        census[kind] = (
            sum("oldSelf" not in r for r in everywhere),
            sum("oldSelf" in r for r in everywhere),
        )
    # (rules run on create, transition rules): the immutable create.* settings are the latter.
    assert census == {
        "ClusterRepository": (0, 4),
        "SnapshotPolicy": (2, 0),
        "SnapshotSchedule": (1, 0),
        "Restore": (1, 0),
    }


def test_an_app_with_every_component_meets_every_rule(
    trees: dict[str, Tree], tmp_path: Path
) -> None:
    """notes lists all three components: its objects and the repositories reach every rule
    of the kinds they use (transition rules skipped and counted)."""
    tree = trees["kopiur-only"]
    _, docs = build_and_fill(tree, "notes", tmp_path)
    docs += objects((tree.kubernetes / "kopiur" / "repositories.yaml").read_text())
    reports = cel_clean(docs)
    evaluated = {(kind, rule) for r in reports for kind, _, rule in r.evaluated}
    transition = [entry for r in reports for entry in r.transition]
    assert evaluated == {
        (kind, rule)
        for kind in KOPIUR_KINDS
        for rule in schema_rules(kind_schema(kind), True)
        if "oldSelf" not in rule
    }
    assert len(transition) == 2 * 4  # two ClusterRepositories, four transition rules each
    assert {path for _, path, _ in transition} == {"spec"}
    # The policies' rule at spec and at each source, the schedules', the Restore's.
    assert sorted(path for r in reports for _, path, _ in r.evaluated) == [
        "spec",
        "spec",
        "spec",
        "spec",
        "spec",
        "spec.sources[0]",
        "spec.sources[0]",
    ]


def _policy() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "SnapshotPolicy",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {
            "repository": {"kind": "ClusterRepository", "name": "nfs"},
            "sources": [{"pvc": {"name": "demo"}}],
        },
    }


def _restore() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Restore",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {"source": {"fromPolicy": {"name": "demo"}}, "target": {"populator": {}}},
    }


def _schedule() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "SnapshotSchedule",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {"policyRef": {"name": "demo"}, "schedule": {"cron": "H * * * *"}},
    }


def _both_sources(d: dict[str, Any]) -> None:
    d["spec"]["sources"][0]["nfs"] = {"server": "nas.lan", "path": "/mnt/tank/demo"}


def _no_source(d: dict[str, Any]) -> None:
    d["spec"]["sources"] = [{"readOnly": True}]


def _second_source_both(d: dict[str, Any]) -> None:
    d["spec"]["sources"].append({"pvc": {"name": "b"}, "pvcSelector": {}})


def _both_repositories(d: dict[str, Any]) -> None:
    d["spec"]["repositories"] = [{"kind": "ClusterRepository", "name": "r2"}]


def _no_repository(d: dict[str, Any]) -> None:
    del d["spec"]["repository"]


def _two_targets(d: dict[str, Any]) -> None:
    d["spec"]["target"]["pvc"] = {"name": "demo"}


def _both_policy_references(d: dict[str, Any]) -> None:
    d["spec"]["policySelector"] = {"matchLabels": {"app": "demo"}}


PLANTED = [
    # (object, mutation, the rule's message, whether the schema alone already refuses it)
    pytest.param(_policy, _both_sources, "exactly one of pvc, pvcSelector, nfs", False,
                 id="source-with-pvc-and-nfs"),
    pytest.param(_policy, _no_source, "exactly one of pvc, pvcSelector, nfs", False,
                 id="source-with-nothing"),
    pytest.param(_policy, _second_source_both, "exactly one of pvc, pvcSelector, nfs", False,
                 id="second-source-with-two"),
    pytest.param(_policy, _both_repositories, "exactly one of repository, repositories", False,
                 id="repository-and-repositories"),
    pytest.param(_policy, _no_repository, "exactly one of repository, repositories", False,
                 id="no-repository"),
    pytest.param(_restore, _two_targets, "exactly one of target.pvc, target.pvcRef, "
                 "target.populator", True, id="restore-with-two-targets"),
    pytest.param(_schedule, _both_policy_references, "exactly one of policyRef or "
                 "policySelector", False, id="schedule-with-ref-and-selector"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "plant", "message", "schema_refuses"), PLANTED)
def test_cel_catches_a_planted_violation(
    make: Callable[[], dict[str, Any]],
    plant: Callable[[dict[str, Any]], None],
    message: str,
    schema_refuses: bool,
) -> None:
    good = make()
    assert validate(good) == []
    report = cel_check(good)
    assert report.evaluated and report.violations == [] and report.errors == []
    bad = make()
    plant(bad)
    report = cel_check(bad)
    assert report.errors == []
    assert [v.split(": ", 1)[1] for v in report.violations] == [message]
    # Most of these only the CEL rules refuse: the schema has no say in them.
    assert bool(validate(bad)) is schema_refuses


def test_a_rule_celpy_cannot_evaluate_fails_unless_excused() -> None:
    """Kubernetes' CEL libraries (quantity, lowerAscii, ...) are not celpy's; an unknown
    function must not pass silently. A transition rule is skipped whatever it says."""
    unknown = "quantity(self.size).isGreaterThan(quantity('1Gi'))"
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"size": {"type": "string"}, "name": {"type": "string"}},
                "x-kubernetes-validations": [
                    {"rule": unknown},
                    {"rule": "self.name == oldSelf.name", "message": "immutable"},
                    {"rule": "self.name.size() > 0", "message": "a name"},
                    {"rule": "self.name", "message": "not a bool"},
                ],
            }
        },
    }
    obj = {"kind": "Demo", "spec": {"size": "2Gi", "name": "x"}}
    report = cel_check(obj, schema=schema)
    assert len(report.errors) == 2 and "isGreaterThan" in report.errors[0]
    assert "not a bool" in report.errors[1]
    assert [r for _, _, r in report.transition] == ["self.name == oldSelf.name"]
    assert report.violations == []
    excused = {unknown: "quantity() is a Kubernetes CEL library function", "self.name": "demo"}
    report = cel_check(obj, excused=excused, schema=schema)
    assert report.errors == [] and len(report.excused) == 2
    assert cel_check({"kind": "Demo", "spec": {"name": ""}}, excused, schema).violations == [
        "spec: a name"
    ]


def test_defaults_are_applied_before_the_rules_run() -> None:
    """The API server fills defaults first; a rule that tested a defaulted field would see
    it. Here: Restore's source.fromPolicy.offset (default 0)."""
    filled = with_defaults(kind_schema("Restore"), _restore())
    assert filled["spec"]["source"]["fromPolicy"]["offset"] == 0
    assert "offset" not in _restore()["spec"]["source"]["fromPolicy"]


# --- successExpr -----------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "name"), CASES, ids=CASE_IDS)
def test_success_expr_passes_good_results_only(
    label: str, name: str, trees: dict[str, Tree], tmp_path: Path
) -> None:
    tree = trees[label]
    _, docs = build_and_fill(tree, name, tmp_path)
    policy = next(
        d for d in docs if d["kind"] == "SnapshotPolicy" and d["metadata"]["name"] == name
    )
    expression = policy["spec"]["verification"]["successExpr"]
    m = tree.apps[name].min_files
    # kopiur's admission trial: a bool, no error.
    assert isinstance(verdict(expression, TRIAL), bool)
    assert verdict(expression, quick(m + 10))
    assert verdict(expression, deep(m + 10, m + 10))
    assert verdict(expression, deep(m, m)) and verdict(expression, quick(m))
    assert not verdict(expression, quick(0)), "an empty snapshot passes the quick tier"
    assert not verdict(expression, deep(0, 0)), "an empty snapshot passes the deep tier"
    assert not verdict(expression, quick(m + 10, errors=1))
    assert not verdict(expression, deep(m + 10, m + 10, errors=2))
    assert not verdict(expression, deep(m + 10, m + 10, matches=False))
    assert not verdict(expression, deep(m + 10, m - 1)), "fewer files than the drill wants"
    assert not verdict(expression, quick(m - 1))


def test_notes_wants_the_three_files_of_its_drill(trees: dict[str, Tree], tmp_path: Path) -> None:
    tree = trees["kopiur-only"]
    assert tree.raw["services"][1]["drill"] == {"cadence": "weekly", "min_files": 3}
    _, docs = build_and_fill(tree, "notes", tmp_path)
    policy = next(d for d in docs if d["metadata"]["name"] == "notes" and "sources" in d["spec"])
    expression = policy["spec"]["verification"]["successExpr"]
    assert not verdict(expression, deep(10, 2))
    assert verdict(expression, deep(10, 3))
    assert verdict(expression, TRIAL) is False  # one trial file: still a bool, not an error


def test_the_success_expr_harness_can_fail() -> None:
    # kopiur's plainest example, without the file guard, passes an empty snapshot...
    assert verdict("stats.errors == 0", quick(0))
    # ...a typo is an undeclared reference, and a non-bool result is refused.
    with pytest.raises(celpy.CELEvalError):
        verdict("statss.files > 0", TRIAL)
    with pytest.raises(TypeError, match="bool"):
        verdict("stats.files + 1", TRIAL)
    # the deep branch on the quick tier's empty `restored` is an error, not a silent pass
    with pytest.raises(celpy.CELEvalError):
        verdict("restored.files > 0", quick(1))
    with pytest.raises(AssertionError):
        verdict("stats.files > 0 && " + " && ".join(["true"] * 300), TRIAL)


# --- the shared components on their own --------------------------------------------------------


@pytest.mark.parametrize("label", list(TEXTS))
def test_defaults_alone_fill_the_component(
    label: str, trees: dict[str, Tree], tmp_path: Path
) -> None:
    tree = trees[label]
    built = build_app(tmp_path, "demo", tree.component("kopiur"))
    docs = objects(substitute(built, {"APP": "demo", "KOPIUR_CLAIM": "demo-data"}))
    assert validate_all(docs) == {}
    cel_clean(docs)
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        ("SnapshotPolicy", "demo"),
        ("SnapshotSchedule", "demo"),
        ("Restore", "demo"),
        ("PersistentVolumeClaim", "demo-data"),
    }
    restore = next(d for d in docs if d["kind"] == "Restore")
    assert restore["spec"]["policy"] == {"onMissingSnapshot": tree.on_missing_snapshot}
    policy = next(d for d in docs if d["kind"] == "SnapshotPolicy")
    expression = policy["spec"]["verification"]["successExpr"]
    assert verdict(expression, quick(1)) and not verdict(expression, quick(0))
    with pytest.raises(UnsetVariable, match="KOPIUR_CLAIM"):
        substitute(built, {"APP": "demo"})
    with pytest.raises(UnsetVariable, match="APP"):
        substitute(built, {"KOPIUR_CLAIM": "demo-data"})


@pytest.mark.parametrize("label", list(TEXTS))
def test_the_r2_and_deep_components_have_no_default_schedule(
    label: str, trees: dict[str, Tree], tmp_path: Path
) -> None:
    """Listing kopiur-r2 (or kopiur-deep) for an app whose ConfigMap lacks its schedule
    fails the substitution; it never ships a policy with an empty cron."""
    tree = trees[label]
    required = {"APP": "demo", "KOPIUR_CLAIM": "demo-data"}
    for extra, variable, name in [
        ("kopiur-r2", "KOPIUR_R2_SCHEDULE", "demo-r2"),
        ("kopiur-deep", "KOPIUR_DEEP_VERIFY_SCHEDULE", "demo"),
    ]:
        built = build_app(tmp_path, "demo", tree.component("kopiur"), tree.component(extra))
        with pytest.raises(UnsetVariable, match=variable):
            substitute(built, required)
        # Flux without strict substitution writes an empty string: the CRD refuses it.
        loose = objects(substitute(built, required, strict=False))
        empty = [d for d in loose if d["metadata"]["name"] == name and "cron" in str(d)]
        assert any("cron" in p for d in empty for p in validate(d)), extra
        docs = objects(substitute(built, required | {variable: "30 2 * * *"}))
        assert validate_all(docs) == {}
        cel_clean(docs)


_HEADER = re.compile(r"^#   ([A-Z][A-Z0-9_]*): .* \((required|default (.*))\)$", re.M)


def documented(header: str) -> dict[str, str | None]:
    """The variables a component's header lists, with their defaults (``None``: required)."""
    found = {}
    for match in _HEADER.finditer(header):
        default = match.group(3)
        found[match.group(1)] = None if match.group(2) == "required" else default
    return {k: "" if v == "empty" else v for k, v in found.items()}


def header_problems(component: Path, base: dict[str, str | None], texts: list[str]) -> list[str]:
    """Differences between the header and the variables the component's files refer to
    (besides those of ``base``, the component it builds on), and the defaults they give."""
    docs = documented((component / "kustomization.yaml").read_text())
    used: dict[str, set[str | None]] = {}
    for text in texts:
        for name, given in defaults_of(text).items():
            used.setdefault(name, set()).update(given)
    problems = []
    own = set(used) - set(base)
    if own != set(docs):
        problems.append(f"documents {sorted(docs)}, refers to {sorted(own)}")
    for name, given in used.items():
        if name in docs or name in base:
            want = docs.get(name, base.get(name))
            if given != {want}:
                problems.append(f"{name}: the files give {given}, the header says {want!r}")
    return problems


@pytest.mark.parametrize("label", list(TEXTS))
def test_headers_document_exactly_the_variables_the_components_read(
    label: str, trees: dict[str, Tree]
) -> None:
    tree = trees[label]
    base = tree.component("kopiur")

    def texts(component: Path) -> list[str]:
        return [p.read_text() for p in sorted(component.glob("*.yaml"))]

    assert header_problems(base, {}, texts(base)) == []
    base_docs = documented((base / "kustomization.yaml").read_text())
    assert {"APP", "KOPIUR_CLAIM"} == {k for k, v in base_docs.items() if v is None}
    for name in ("kopiur-deep", "kopiur-r2"):
        assert header_problems(tree.component(name), base_docs, texts(tree.component(name))) == []
    # The controls: a stray reference, and a default that differs from the header's.
    stray = [*texts(base), "x: ${KOPIUR_STRAY}\n"]
    assert any("KOPIUR_STRAY" in p for p in header_problems(base, {}, stray))
    r2 = tree.component("kopiur-r2")
    other = [t.replace("${KOPIUR_PUID:=1000}", "${KOPIUR_PUID:=0}") for t in texts(r2)]
    assert any("KOPIUR_PUID" in p for p in header_problems(r2, base_docs, other))


# --- the repositories --------------------------------------------------------------------------


@pytest.mark.parametrize("label", list(TEXTS))
def test_repositories_validate_and_admit_only_their_apps(
    label: str, trees: dict[str, Tree]
) -> None:
    tree = trees[label]
    docs = objects((tree.kubernetes / "kopiur" / "repositories.yaml").read_text())
    assert validate_all(docs) == {}
    reports = cel_clean(docs)
    assert sum(len(r.transition) for r in reports) == 4 * 2
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespace = tree.operator_namespace
    assert set(by) == {
        ("ExternalSecret", "kopiur-repository"),
        ("ExternalSecret", "kopiur-r2"),
        ("ClusterRepository", tree.repository),
        ("ClusterRepository", tree.r2_repository),
    }
    apps = tree.apps.values()
    nfs = by["ClusterRepository", tree.repository]
    r2 = by["ClusterRepository", tree.r2_repository]
    assert nfs["spec"]["allowedNamespaces"] == {"list": sorted({a.namespace for a in apps})}
    assert r2["spec"]["allowedNamespaces"] == {
        "list": sorted({a.namespace for a in apps if a.offsite})
    }
    settings = tree.raw["settings"]
    path = tree.kopiur("nfs_path", settings["nfs"]["backup_root"].rstrip("/") + "/kopiur")
    assert nfs["spec"]["backend"]["filesystem"]["volume"] == {
        "nfs": {"server": settings["nfs"]["server"], "path": path}
    }
    store = tree.r2_store()
    assert store is not None
    s3 = r2["spec"]["backend"]["s3"]
    assert (s3["bucket"], s3["endpoint"]) == (store["bucket"], urlsplit(store["endpoint"]).hostname)
    for repository in (nfs, r2):
        assert "namespace" not in repository["metadata"]  # cluster-scoped
        assert repository["spec"]["scheduleDefaults"] == {"timezone": tree.zone}
        assert repository["spec"]["maintenance"]["schedule"]["timezone"] == tree.zone
        ref = repository["spec"]["encryption"]["passwordSecretRef"]
        secret = by["ExternalSecret", ref["name"]]
        assert secret["metadata"]["namespace"] == ref["namespace"] == namespace
        assert ref["key"] in secret["spec"]["target"]["template"]["data"]
    assert s3["auth"]["secretRef"] == {"name": "kopiur-r2", "namespace": namespace}
    # The controls: a misspelt field of either kind is refused.
    for key, spec_path, old, new in [
        (("ClusterRepository", tree.r2_repository), ("allowedNamespaces",), "list", "lists"),
        (("ClusterRepository", tree.repository), (), "allowedNamespaces", "allowedNamespace"),
        (("ExternalSecret", "kopiur-r2"), ("target",), "template", "templates"),
    ]:
        changed = copy.deepcopy(by[key])
        node = changed["spec"]
        for step in spec_path:
            node = node[step]
        node[new] = node.pop(old)
        assert any(new in p or old in p for p in validate(changed)), (key, new)


def test_the_r2_repository_admits_only_namespaces_copied_offsite(trees: dict[str, Tree]) -> None:
    """jellyfin (media) is kept out of the offsite copies: media may use the NFS repository
    but not the R2 one. tools holds both an excluded app and an included one."""
    lists = {}
    for label, tree in trees.items():
        docs = objects((tree.kubernetes / "kopiur" / "repositories.yaml").read_text())
        lists[label] = {
            d["metadata"]["name"]: d["spec"]["allowedNamespaces"]["list"]
            for d in docs
            if d["kind"] == "ClusterRepository"
        }
    assert lists == {
        "bundled": {"nfs": ["media"], "r2": ["media"]},
        "kopiur-only": {"nas": ["notes", "tools"], "offsite": ["notes", "tools"]},
        "mixed-engines": {"nfs": ["docs", "media"], "r2": ["docs"]},
    }


# --- where the movers read the repositories' credentials ---------------------------------------


def _secrets_in(docs: list[dict[str, Any]], namespace: str) -> set[str]:
    return {
        str(d["metadata"]["name"])
        for d in docs
        if d.get("kind") in ("Secret", "ExternalSecret")
        and d["metadata"].get("namespace") == namespace
    }


def test_every_mover_namespace_gets_the_repository_credentials(
    trees: dict[str, Tree], tmp_path: Path
) -> None:
    """kopiur (docs/repositories.md, and the CRD's text of `secretRef.namespace`): a
    ClusterRepository's credential Secret must also exist in each namespace a mover runs
    in (envFrom is namespace-local), placed there or copied by credential projection
    (`credentialProjection.allowed` on the repository and `.enabled` on the policy or
    Restore). kopiur/secrets.yaml places them (without it every backup and restore of
    every app would fail)."""
    missing = []
    for label, name in CASES:
        tree = trees[label]
        app = tree.apps[name]
        _, docs = build_and_fill(tree, name, tmp_path / label / name)
        repositories = objects((tree.kubernetes / "kopiur" / "repositories.yaml").read_text())
        others = [
            d
            for path in sorted(tree.kubernetes.rglob("*.yaml"))
            if "components" not in path.relative_to(tree.kubernetes).parts
            for d in objects(path.read_text())
        ]
        present = _secrets_in(docs + others, app.namespace)
        by = {(d["kind"], d["metadata"]["name"]): d for d in repositories + docs}
        for policy in (d for d in docs if d["kind"] in ("SnapshotPolicy", "Restore")):
            spec = policy["spec"]
            source = spec.get("source", {}).get("fromPolicy", {}).get("name")
            repository = (
                spec.get("repository") or by["SnapshotPolicy", source]["spec"]["repository"]
            )
            repo = by["ClusterRepository", repository["name"]]["spec"]
            projected = (repo.get("credentialProjection") or {}).get("allowed") and (
                spec.get("credentialProjection") or {}
            ).get("enabled")
            needed = {repo["encryption"]["passwordSecretRef"]["name"]}
            auth = repo["backend"].get("s3", {}).get("auth", {}).get("secretRef")
            needed |= {auth["name"]} if auth else set()
            if not projected and not needed <= present:
                missing.append(f"{label}/{name}: {policy['kind']} {policy['metadata']['name']}")
    assert missing == []
