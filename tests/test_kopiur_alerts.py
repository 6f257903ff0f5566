"""The kopiur apps' alerts: read kopiur's own metrics, thresholds from kopiur's real gaps,
and generated promtool tests that pass, and fail when a threshold is shortened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from pvc_catalogs import KOPIUR_ONLY, MIXED_ENGINES

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.schedule import alert_threshold

CATALOGS = {"bundled": None, "kopiur-only": KOPIUR_ONLY, "mixed-engines": MIXED_ENGINES}
#: kopiur's metric names and their labels, from its telemetry (docs/dev/observability.md and
#: crates/controller/src/metrics.rs of home-operations/kopiur): per policy, by namespace and
#: policy name; the verification timestamp by namespace and the SnapshotPolicy's name.
KOPIUR_SERIES = {
    "kopiur_policy_last_backup_success_timestamp_seconds": {"namespace", "policy"},
    "kopiur_snapshotpolicy_last_backup_success": {"namespace", "policy"},
    "kopiur_snapshot_verified_timestamp_seconds": {"namespace", "name"},
}
_SELECTOR = re.compile(r"(?P<metric>kopiur_[a-z_]+)\{(?P<labels>[^}]*)\}")


def _catalog(name: str) -> Catalog:
    text = CATALOGS[name]
    if text is None:
        return load_catalog(REPO / "services.yaml")
    return load_catalog_text(text, "services.yaml")


@pytest.fixture(scope="module", params=sorted(CATALOGS))
def prometheus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The catalog and its ``prometheus/`` folder (rules and tests), written out."""
    catalog = _catalog(request.param)
    out = tmp_path_factory.mktemp(request.param)
    for path, data in render_plan(build_plan(catalog)).items():
        if path.startswith("prometheus/"):
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            (out / path).write_bytes(data)
    return catalog, out / "prometheus"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def kopiur_apps(catalog: Catalog) -> list[str]:
    return [s.name for s in catalog.services if s.uses("kopiur")]


def rules(folder: Path, app: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((folder / "rules" / f"kopiur-{app}.rules.yaml").read_text())
    return {rule["alert"]: rule for rule in spec["groups"][0]["rules"]}


def test_every_kopiur_app_has_its_group_and_promtool_accepts_it(prometheus: Any) -> None:
    catalog, folder = prometheus
    apps = kopiur_apps(catalog)
    assert apps
    for app in apps:
        checked = promtool("check", "rules", f"kopiur-{app}.rules.yaml", cwd=folder / "rules")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        tested = promtool("test", "rules", f"kopiur-{app}.test.yaml", cwd=folder / "tests")
        assert tested.returncode == 0, tested.stdout[-3000:]
        # kopiur drills itself: no drill group of pushed metrics for a kopiur-layer drill.
        service = catalog.service(app)
        if service.drill is not None and service.drill.layer == "kopiur":
            assert not (folder / "rules" / f"drill-{app}.rules.yaml").exists()


def test_the_alerts_read_kopiurs_series_by_its_own_labels(prometheus: Any) -> None:
    catalog, folder = prometheus
    for app in kopiur_apps(catalog):
        service = catalog.service(app)
        for rule in rules(folder, app).values():
            for match in _SELECTOR.finditer(rule["expr"]):
                labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', match["labels"]))
                assert set(labels) == KOPIUR_SERIES[match["metric"]], rule["alert"]
                assert labels["namespace"] == service.namespace
                # The policy (or, for the verification, the SnapshotPolicy's name) is the app's.
                own = labels.get("policy", labels.get("name"))
                assert own in (app, f"{app}-r2"), rule["alert"]


def test_thresholds_come_from_kopiurs_real_gaps(prometheus: Any) -> None:
    catalog, folder = prometheus
    for app in kopiur_apps(catalog):
        service = catalog.service(app)
        kopiur = service.kopiur
        assert kopiur is not None
        found = rules(folder, app)

        def threshold(alert: str, found: dict[str, dict[str, Any]] = found) -> int:
            rule = found[alert]
            seconds = int(re.search(r"> (\d+)$", rule["expr"])[1])  # type: ignore[index]
            hold = rule.get("for", "0s")
            return seconds + _seconds(hold)

        own = threshold("KopiurBackupStale")
        assert own == int(service.stale_after.total_seconds())
        assert own > kopiur.schedule.max_gap().total_seconds()
        if kopiur.r2_schedule is not None:
            offsite = threshold("KopiurOffsiteBackupStale")
            assert offsite == int(alert_threshold(kopiur.r2_schedule).total_seconds())
        else:
            assert not any("Offsite" in name for name in found)
        assert kopiur.quick_verify is not None
        verified = threshold("KopiurVerificationStale")
        assert verified == int(alert_threshold(kopiur.quick_verify).total_seconds())
        assert verified > kopiur.quick_verify.max_gap().total_seconds()
        # Never verified: allowed a first good snapshot and then a verification.
        never = _seconds(found["KopiurVerificationNeverSucceeded"]["for"])
        assert never == own + verified


def _seconds(text: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))


@pytest.mark.parametrize(
    "alert", ["KopiurBackupStale", "KopiurOffsiteBackupStale", "KopiurVerificationStale"]
)
def test_the_generated_tests_catch_a_threshold_that_is_too_short(
    alert: str, prometheus: Any, tmp_path: Path
) -> None:
    """Shorten one stale threshold by one evaluation step of its group's tests (5 minutes,
    coarser for a sparse schedule: about 300 evaluations cover the longest window): its own
    promtool test must now fail."""
    catalog, folder = prometheus
    apps = [a for a in kopiur_apps(catalog) if alert in rules(folder, a)]
    assert apps, f"no app of this catalog has {alert}"
    app = apps[0]
    for sub in ("rules", "tests"):
        shutil.copytree(folder / sub, tmp_path / sub)
    tests = yaml.safe_load((folder / "tests" / f"kopiur-{app}.test.yaml").read_text())
    step = _seconds(tests["evaluation_interval"])
    assert 300 <= step <= 3600
    path = tmp_path / "rules" / f"kopiur-{app}.rules.yaml"
    spec = yaml.safe_load(path.read_text())
    for rule in spec["groups"][0]["rules"]:
        if rule["alert"] == alert:
            seconds = int(re.search(r"> (\d+)$", rule["expr"])[1])  # type: ignore[index]
            rule["expr"] = rule["expr"].replace(f"> {seconds}", f"> {seconds - step}")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", f"kopiur-{app}.test.yaml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_the_failure_case_fails_when_the_alert_never_clears(
    prometheus: Any, tmp_path: Path
) -> None:
    """An expression that stays true after the next good snapshot must fail its test."""
    catalog, folder = prometheus
    app = kopiur_apps(catalog)[0]
    for sub in ("rules", "tests"):
        shutil.copytree(folder / sub, tmp_path / sub)
    path = tmp_path / "rules" / f"kopiur-{app}.rules.yaml"
    text = path.read_text()
    assert "kopiur_snapshotpolicy_last_backup_success{" in text
    path.write_text(text.replace("} == 0", "} < 2"))
    result = promtool("test", "rules", f"kopiur-{app}.test.yaml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "KopiurBackupFailed" in result.stdout + result.stderr
