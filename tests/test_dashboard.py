"""The backup dashboard: Grafana's own models take it whole, Prometheus parses and evaluates
its queries, its colours are the alerts' numbers, and every metric it reads is produced."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from crds import validate
from test_golden import INLINE_CATALOGS

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.generators.alerts import rule_groups
from homeops_gen.metrics import dangling

#: The golden catalogs that have a backup (a catalog without services has no dashboard).
CATALOGS: dict[str, str | None] = {"bundled": None} | {
    name: text for name, text in INLINE_CATALOGS.items() if name != "no-services"
}
DASHBOARD = "grafana/homeops-backups.json"
CONFIG_MAP = "kubernetes/monitoring/grafana-dashboard.yaml"


def _catalog(name: str) -> Catalog:
    text = CATALOGS[name]
    return load_catalog(REPO / "services.yaml") if text is None else load_catalog_text(text, "s")


@pytest.fixture(scope="module", params=sorted(CATALOGS))
def built(request: pytest.FixtureRequest) -> tuple[str, Catalog, dict[str, Any], dict[str, Any]]:
    catalog = _catalog(request.param)
    rendered = render_plan(build_plan(catalog))
    dashboard = json.loads(rendered[DASHBOARD])
    config_map = yaml.safe_load(rendered[CONFIG_MAP])
    return request.param, catalog, dashboard, config_map


def stats(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in stats(dashboard) for t in p["targets"]]


# --- Grafana's models ------------------------------------------------------------------------


def _lost(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where ``theirs`` (our JSON decoded by Grafana's models and encoded again) lost or
    changed something of ``ours``: a field the models do not know is dropped."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: not an object"]
        return [
            problem
            for key, value in ours.items()
            for problem in (
                [f"{path}.{key}: unknown to the model"]
                if key not in theirs
                else _lost(value, theirs[key], f"{path}.{key}")
            )
        ]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [f"{path}: list changed"]
        return [
            p
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for p in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


def through_the_models(dashboard: dict[str, Any]) -> dict[str, Any]:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    decoded: dict[str, Any] = json.loads(JSONEncoder().encode(Dashboard.from_json(dashboard)))
    return decoded


def test_grafanas_models_take_every_field(built: Any) -> None:
    """The SDK's typed models (the schema it ships, panel plugins included) decode the
    dashboard and encode it again without losing or changing a field."""
    _, _, dashboard, _ = built
    assert _lost(dashboard, through_the_models(dashboard)) == []
    # negative control: a misspelt field is dropped by the models, and found
    mutated = json.loads(json.dumps(dashboard))
    panel = stats(mutated)[0]
    panel["fieldConfig"]["defaults"]["tresholds"] = panel["fieldConfig"]["defaults"].pop(
        "thresholds"
    )
    assert _lost(mutated, through_the_models(mutated))


def test_the_configmap_is_for_the_sidecar_and_holds_the_same_json(built: Any) -> None:
    _, catalog, dashboard, config_map = built
    assert validate(config_map) == []
    assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    # Flux's post-build substitution would turn Grafana's ${datasource} into nothing.
    annotations = config_map["metadata"]["annotations"]
    assert annotations == {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}
    assert config_map["metadata"]["namespace"] == catalog.settings.alerts_namespace
    (text,) = config_map["data"].values()
    assert json.loads(text) == dashboard


def test_panels_fit_the_grid_without_overlap(built: Any) -> None:
    _, _, dashboard, _ = built
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


# --- Prometheus --------------------------------------------------------------------------------


def test_every_query_parses_with_promtool(built: Any, tmp_path: Path) -> None:
    label, _, dashboard, _ = built
    rules = [
        {"record": f"homeops:panel_{i}", "expr": e} for i, (_, e) in enumerate(targets(dashboard))
    ]
    path = tmp_path / "panels.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # negative control: the same check refuses a broken query
    rules.append({"record": "homeops:broken", "expr": "time() - backup_last_success_timestamp{"})
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    broken = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert broken.returncode != 0, label


def test_every_metric_a_panel_reads_is_produced(built: Any) -> None:
    _, catalog, dashboard, _ = built
    assert dangling(catalog, targets(dashboard)) == []
    # negative control
    assert dangling(catalog, [("x", 'backup_last_sizes_bytes{job="homeops_backup"}')])


# --- the alerts' numbers -----------------------------------------------------------------------

_STALE = re.compile(r"^(time\(\) - .+) > (\d+)$")


def _seconds(span: dt.timedelta) -> int:
    return int(span.total_seconds())


def test_each_stale_alert_has_its_panel_at_its_numbers(built: Any) -> None:
    """Amber where the alert goes pending, red where it fires: the same numbers."""
    _, catalog, dashboard, _ = built
    by_expr = {t["expr"]: p for p in stats(dashboard) for t in p["targets"]}
    seen = 0
    for group in rule_groups(catalog):
        for alert in group.alerts:
            match = _STALE.match(alert.expr)
            if match is None:
                continue
            seen += 1
            panel = by_expr[match[1]]
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            pending = int(match[2])
            assert [s["value"] for s in steps] == [None, pending, pending + _seconds(alert.for_)]
            assert [s["color"] for s in steps] == ["green", "#EAB839", "red"]
            assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    assert seen or not any(s.methods for s in catalog.services)


def test_every_protected_service_has_a_panel(built: Any) -> None:
    _, catalog, dashboard, _ = built
    text = json.dumps(targets(dashboard))
    for service in catalog.services:
        if service.methods:
            assert f'\\"{service.name}' in text or f"{service.name}-" in text, service.name


# --- the summary, evaluated by Prometheus ------------------------------------------------------


def _probe_series(catalog: Catalog, stale: set[str]) -> list[dict[str, str]]:
    """Input series for every layer the summary counts: a last success at 0 (or, for the
    services in ``stale``, far in the past), VolSync in sync (or, stale, out of sync)."""
    series = {}
    for group in rule_groups(catalog):
        for alert in group.alerts:
            probe = alert.probe
            if alert.name.endswith("Stale") and probe.kind == "stale":
                value = "-100000000" if group.subject in stale else "0"
            elif alert.name == "VolSyncOutOfSync":
                value = "1" if group.subject in stale else "0"
            else:
                continue
            for metric, labels in probe.series:
                selector = ",".join(f'{k}="{v}"' for k, v in labels)
                series[f"{metric}{{{selector}}}"] = f"{value}+0x20"
    return [{"series": k, "values": v} for k, v in sorted(series.items())]


def test_the_summary_counts_the_services_within_rpo(built: Any, tmp_path: Path) -> None:
    _, catalog, dashboard, _ = built
    summary = stats(dashboard)[0]
    assert summary["title"] == "Services within RPO"
    total = int(summary["fieldConfig"]["defaults"]["max"])
    protected = sorted(s.name for s in catalog.services if s.methods)
    if not protected:
        pytest.skip("no service with a backup")
    rules = tmp_path / "summary.rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "summary",
                        "rules": [{"record": "within_rpo", "expr": summary["targets"][0]["expr"]}],
                    }
                ]
            }
        )
    )
    first = protected[0]
    cases = [(set(), total), ({first}, total - 1), (set(protected), 0)]
    tests = []
    for stale, expected in cases:
        tests.append(
            {
                "interval": "1m",
                "input_series": _probe_series(catalog, stale),
                "promql_expr_test": [
                    {
                        "expr": "within_rpo",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "within_rpo", "value": expected}],
                    }
                ],
            }
        )
    (tmp_path / "summary.test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["summary.rules.yaml"], "tests": tests})
    )
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", "summary.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
