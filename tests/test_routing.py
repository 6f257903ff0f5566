"""The Alertmanager route tree, read by Alertmanager's own amtool.

Each generated alert (its name and labels, from the rule files) is routed by ``amtool config
routes test`` through the generated ``alertmanager.yml``; the expected receivers come from the
catalog's ``settings.alerts.routing`` as written in ``services.yaml``, by Alertmanager's
documented rule (children in order, the first match wins unless it says ``continue``), not
from the generator.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool

from homeops_gen import build_plan, load_catalog_text, render_plan

OUT = REPO / "out"
CONFIG = OUT / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args], capture_output=True, text=True, check=False
    )


def expected_receivers(routing: dict[str, Any], labels: dict[str, str]) -> list[str]:
    found = []
    for route in routing.get("routes", []):
        if all(labels.get(k) == v for k, v in route["matchers"].items()):
            found.append(route["receiver"])
            if not route.get("also_later_routes", False):
                break
    return found or [routing["receiver"]]


def generated_alerts(rules: Path) -> list[dict[str, str]]:
    alerts = []
    for path in sorted(rules.glob("*.rules.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                alerts.append({"alertname": rule["alert"], **rule.get("labels", {})})
    return alerts


def routed(config: Path, labels: dict[str, str], receivers: list[str]) -> bool:
    verified = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    return verified.returncode == 0


@pytest.mark.tool("amtool")
def test_alertmanager_checks_the_generated_config() -> None:
    checked = amtool("check-config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.mark.tool("amtool")
def test_every_generated_alert_reaches_the_receiver_the_catalog_names() -> None:
    routing = yaml.safe_load((REPO / "services.yaml").read_text())["settings"]["alerts"]["routing"]
    alerts = generated_alerts(OUT / "prometheus" / "rules")
    assert len(alerts) > 50
    seen = set()
    for labels in alerts:
        receivers = expected_receivers(routing, labels)
        assert routed(CONFIG, labels, receivers), (labels, receivers)
        seen.update(receivers)
    # Every receiver of the reference catalog gets some alert (the catalog's routes are real).
    assert seen == {"homelab", "pager", "quiet"}


@pytest.mark.tool("amtool")
def test_a_wrong_expectation_is_refused_by_amtool() -> None:
    """The check is not vacuous: amtool disagrees when the receiver is not the one routed."""
    assert not routed(CONFIG, {"alertname": "SQLiteIntegrityFailed"}, ["homelab"])
    assert routed(CONFIG, {"alertname": "SQLiteIntegrityFailed"}, ["pager"])


@pytest.mark.tool("amtool")
def test_continue_routes_to_every_matching_receiver(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "services.yaml").read_text())
    data["settings"]["alerts"]["routing"] = routing = {
        "receiver": "default",
        "group_by": ["alertname"],
        "routes": [
            {"receiver": "log", "matchers": {"severity": "critical"}, "also_later_routes": True},
            {"receiver": "pager", "matchers": {"severity": "critical", "layer": "offsite"}},
            {"receiver": "chat", "matchers": {"severity": "critical"}},
        ],
    }
    rendered = render_plan(build_plan(load_catalog_text(json.dumps(data), "services.yaml")))
    config = tmp_path / "alertmanager.yml"
    config.write_bytes(rendered["alertmanager/alertmanager.yml"])
    assert amtool("check-config", str(config)).returncode == 0
    for labels in (
        {"alertname": "OffsiteSyncStale", "severity": "critical", "layer": "offsite"},
        {"alertname": "BackupStale", "severity": "critical"},
        {"alertname": "BackupStale", "severity": "warning"},
    ):
        expected = expected_receivers(routing, labels)
        assert routed(config, labels, expected), (labels, expected)


def test_the_alertmanagerconfig_holds_the_same_tree() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (obj,) = yaml.safe_load_all((OUT / "kubernetes/monitoring/alertmanagerconfig.yaml").read_text())
    assert obj["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert obj["kind"] == "AlertmanagerConfig"
    assert obj["metadata"]["namespace"] == "monitoring"
    route = obj["spec"]["route"]
    assert route["receiver"] == config["route"]["receiver"]
    assert route["groupBy"] == config["route"]["group_by"]
    as_strings = [
        [f'{m["name"]}="{m["value"]}"' for m in child["matchers"] if "matchType" not in m]
        for child in route["routes"]
    ]
    assert as_strings == [child["matchers"] for child in config["route"]["routes"]]
    assert obj["spec"]["receivers"] == config["receivers"]
    # The operator's namespace matcher would drop the services' alerts: the file says so.
    text = (OUT / "kubernetes/monitoring/alertmanagerconfig.yaml").read_text()
    assert "alertmanagerConfigMatcherStrategy: {type: None}" in text


def test_no_routing_in_the_catalog_generates_no_routing() -> None:
    data = yaml.safe_load((REPO / "services.yaml").read_text())
    del data["settings"]["alerts"]["routing"]
    rendered = render_plan(build_plan(load_catalog_text(json.dumps(data), "services.yaml")))
    assert "alertmanager/alertmanager.yml" not in rendered
    assert "kubernetes/monitoring/alertmanagerconfig.yaml" not in rendered
