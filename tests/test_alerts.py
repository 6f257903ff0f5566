"""PrometheusRule alerts: every backup watched, thresholds derived, proven by promtool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from crds import validate_all

from homeops_gen import load_catalog, load_catalog_text
from homeops_gen.errors import CatalogError
from homeops_gen.generators.alerts import rule_groups, severity
from homeops_gen.schedule import Schedule, alert_threshold

OUT = REPO / "out"
RULES = OUT / "prometheus" / "rules"
TESTS = OUT / "prometheus" / "tests"
CATALOG = load_catalog(REPO / "services.yaml")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def alerts_by_group() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name.removesuffix(".rules.yaml"): load(path)["groups"][0]["rules"]
        for path in sorted(RULES.glob("*.rules.yaml"))
    }


# --- the real tools ----------------------------------------------------------------------------


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    files = sorted(p.name for p in RULES.glob("*.rules.yaml"))
    assert len(files) == len(rule_groups(CATALOG))
    result = promtool("check", "rules", *files, cwd=RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def run_promtool_tests(folder: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    files = sorted(p.name for p in folder.glob("*.test.yaml"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = pool.map(lambda f: promtool("test", "rules", f, cwd=folder), files)
        return dict(zip(files, results, strict=True))


def test_promtool_test_rules_passes_every_generated_test() -> None:
    results = run_promtool_tests(TESTS)
    assert len(results) == len(rule_groups(CATALOG))
    failed = {name: r.stdout[-2000:] for name, r in results.items() if r.returncode != 0}
    assert failed == {}


def test_the_generated_tests_catch_a_threshold_that_is_too_short(tmp_path: Path) -> None:
    """Shorten one stale threshold by five minutes: its own promtool test must now fail."""
    for folder in ("rules", "tests"):
        shutil.copytree(OUT / "prometheus" / folder, tmp_path / folder)
    rules_file = tmp_path / "rules" / "backup-vaultwarden.rules.yaml"
    text = rules_file.read_text()
    threshold = int(re.search(r"backup_last_success_timestamp\{[^}]*\} > (\d+)", text)[1])
    rules_file.write_text(text.replace(f"> {threshold}", f"> {threshold - 300}", 1))
    result = promtool("test", "rules", "backup-vaultwarden.test.yaml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "BackupStale" in result.stdout + result.stderr


#: Failure alerts as they were: they keep firing while a failed Job is kept in the history.
NEVER_CLEARING = {
    "BackupJobFailing": (
        'kube_job_status_failed{namespace="kube-system",job_name=~"etcd-backup-[0-9]+"} > 0'
    ),
    "BackupRunFailed": 'backup_last_failure_timestamp{job="homeops_backup",service="etcd"} > 0',
}


@pytest.mark.parametrize("alert", sorted(NEVER_CLEARING))
def test_the_failure_cases_fail_when_the_alert_does_not_clear(alert: str, tmp_path: Path) -> None:
    """Put back an expression that never clears (or never fires): the case that says "fires
    after a failure, clears after the next success" must fail."""
    for folder in ("rules", "tests"):
        shutil.copytree(OUT / "prometheus" / folder, tmp_path / folder)
    rules_file = tmp_path / "rules" / "backup-etcd.rules.yaml"
    rules = yaml.safe_load(rules_file.read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == alert]
    rule["expr"] = NEVER_CLEARING[alert]
    rules_file.write_text(yaml.safe_dump(rules))
    result = promtool("test", "rules", "backup-etcd.test.yaml", cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


def test_a_failure_fires_and_the_next_success_clears_it() -> None:
    """The generated case of each failure alert: silent, firing after the failure, silent
    again once a success follows."""
    cases = load(TESTS / "backup-etcd.test.yaml")["tests"]
    for alert in ("BackupRunFailed", "BackupJobFailing"):
        (case,) = [c for c in cases if c["alert_rule_test"][0]["alertname"] == alert]
        fired = [bool(check["exp_alerts"]) for check in case["alert_rule_test"]]
        assert fired[0] is False and fired[-1] is False and fired[-2] is False
        assert True in fired


# --- the objects --------------------------------------------------------------------------------


def test_every_prometheusrule_validates_and_matches_its_rule_file() -> None:
    folder = OUT / "kubernetes" / "monitoring" / "prometheusrules"
    objects = [load(path) for path in sorted(folder.glob("*.yaml"))]
    assert validate_all(objects) == {}
    for obj in objects:
        name = obj["metadata"]["name"].removeprefix("homeops-")
        assert obj["metadata"]["namespace"] == "monitoring"
        assert obj["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
        assert obj["spec"] == load(RULES / f"{name}.rules.yaml")


def test_every_backup_of_the_catalog_has_its_alerts() -> None:
    groups = alerts_by_group()
    names = {group: {rule["alert"] for rule in rules} for group, rules in groups.items()}
    for service in CATALOG.services:
        if service.uses("dump"):
            expected = {
                "BackupStale",
                "BackupNeverSucceeded",
                "BackupRunFailed",
                "BackupJobFailing",
                "BackupShrank",
            }
            if service.integrity is not None:
                expected |= {
                    "SQLiteIntegrityFailed",
                    "SQLiteIntegrityCheckStale",
                    "SQLiteIntegrityCheckNeverSucceeded",
                }
            assert names[f"backup-{service.name}"] == expected
        if service.drill is not None and service.drill.layer != "kopiur":
            drill = {
                "RestoreDrillStale",
                "RestoreDrillNeverSucceeded",
                "RestoreDrillFailed",
                "RestoreDrillJobFailing",
            }
            if service.rto is not None:
                drill.add("RestoreDrillSlowerThanRTO")
            assert names[f"drill-{service.name}"] == drill
        if service.uses("volsync"):
            assert names[f"volsync-{service.name}"] == {"VolSyncOutOfSync", "VolSyncSourceAbsent"}
            sources = {r["labels"]["replication_source"] for r in groups[f"volsync-{service.name}"]}
            assert service.volsync is not None
            copied = service.volsync.r2_schedule is not None  # offsite-included, R2 store
            assert sources == {service.name} | ({f"{service.name}-r2"} if copied else set())
            for rule in groups[f"volsync-{service.name}"]:
                assert 'role="source"' in rule["expr"]  # bootstrap destinations never sync
        if service.uses("kopiur"):
            # kopiur drills itself (deep verification): its verification alert is the drill's.
            assert service.kopiur is not None
            assert f"drill-{service.name}" not in names
            kopiur = {"KopiurBackupStale", "KopiurBackupNeverSucceeded", "KopiurBackupFailed"}
            verification = {"KopiurVerificationStale", "KopiurVerificationNeverSucceeded"}
            policies = {service.name}
            if service.kopiur.r2_schedule is not None:
                kopiur |= {f"KopiurOffsite{n.removeprefix('Kopiur')}" for n in kopiur}
                policies.add(f"{service.name}-r2")
            assert names[f"kopiur-{service.name}"] == kopiur | verification
            assert {r["labels"]["policy"] for r in groups[f"kopiur-{service.name}"]} == policies
        if service.uses("cnpg"):
            assert service.cnpg is not None
            assert names[f"cnpg-{service.cnpg.key}"] == {
                "CNPGWALArchivingFailing",
                "CNPGBaseBackupStale",
            }
    assert names["offsite"] == {
        "OffsiteSyncStale",
        "OffsiteSyncNeverSucceeded",
        "OffsiteSyncFailing",
    }
    assert names["snapshots"] == {
        "LVMSnapshotStale",
        "LVMSnapshotNeverSucceeded",
        "LVMSnapshotFailing",
        "LVMThinPoolLow",
        "BackupDiskNearlyFull",
    }


def test_cnpg_alerts_read_the_metrics_of_their_mode() -> None:
    rules = {r["alert"]: r for r in alerts_by_group()["cnpg-dbaas-pg-cluster"]}
    stale = rules["CNPGBaseBackupStale"]["expr"]
    assert "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp" in stale
    assert 'pod=~"pg-cluster-[0-9]+"' in stale
    assert "cnpg_pg_stat_archiver_last_failed_time" in rules["CNPGWALArchivingFailing"]["expr"]


@pytest.mark.parametrize(
    "service", [s for s in CATALOG.services if s.uses("dump")], ids=lambda s: s.name
)
def test_labels_route_by_criticality(service: Any) -> None:
    rules = {r["alert"]: r for r in alerts_by_group()[f"backup-{service.name}"]}
    labels = rules["BackupStale"]["labels"]
    assert labels == {
        "severity": severity(service.criticality),
        "service": service.name,
        "namespace": service.namespace,
    }


# --- thresholds ---------------------------------------------------------------------------------

STALE = re.compile(r"^time\(\) - .*\{(?P<selector>[^}]*)\}\)? > (?P<seconds>\d+)$")


def test_no_stale_threshold_is_shorter_than_its_schedules_largest_gap() -> None:
    checked = 0
    for group, rules in alerts_by_group().items():
        for rule in rules:
            match = STALE.match(rule["expr"])
            if not match:
                continue
            threshold = timedelta(seconds=int(match["seconds"]))
            kind, _, name = group.partition("-")
            if kind == "backup":
                service = CATALOG.service(name)
                schedule = (
                    service.integrity if "sqlite_integrity" in rule["expr"] else service.schedule
                )
            elif kind == "drill":
                drill = CATALOG.service(name).drill
                assert drill is not None
                schedule = drill.schedule
            elif kind == "cnpg":
                cluster = next(
                    s.cnpg for s in CATALOG.services if s.cnpg is not None and s.cnpg.key == name
                )
                schedule = Schedule(cluster.backup_schedule.split(" ", 1)[1])
            elif "incremental" in match["selector"]:
                schedule = CATALOG.settings.offsite_incremental
            elif "full" in match["selector"]:
                schedule = CATALOG.settings.offsite_full_sync
            else:
                assert CATALOG.settings.lvm_snapshots is not None
                schedule = CATALOG.settings.lvm_snapshots.schedule
            assert schedule is not None
            assert threshold > schedule.max_gap(), (group, rule["alert"])
            checked += 1
    assert checked >= 12


def test_the_backup_seeds_hand_written_thresholds_are_fixed() -> None:
    """Vaultwarden every 6h alerted after 8 days; the first-Sunday job fired at 32 days."""
    rules = alerts_by_group()

    def threshold(group: str) -> timedelta:
        expr = next(r["expr"] for r in rules[group] if r["alert"] == "BackupStale")
        match = STALE.match(expr)
        assert match is not None
        return timedelta(seconds=int(match["seconds"]))

    # Every 6h in Europe/London: the October fall-back makes one gap 7h; the job may start
    # up to 1h late and run 4h; the alert's own `for` (15m) is inside the threshold.
    assert threshold("backup-vaultwarden") == timedelta(hours=11, minutes=45)
    assert timedelta(days=35) < threshold("backup-prometheus") < timedelta(days=39)


@pytest.mark.parametrize(
    ("cron", "zone", "expected"),
    [
        ("0 */6 * * *", "Etc/UTC", timedelta(hours=10)),
        ("0 3 * * *", "Etc/UTC", timedelta(hours=28)),
        ("0 3 * * 0", "Etc/UTC", timedelta(days=7, hours=4)),
        ("0 * * * *", "Etc/UTC", timedelta(hours=2)),
        # The fall-back hour lengthens one gap; the grace is still whole.
        ("0 3 * * 0", "Europe/London", timedelta(days=7, hours=5)),
        # 01:30 does not exist on the spring-forward Sunday: that run is lost.
        ("30 1 * * *", "Europe/London", timedelta(hours=47 + 4)),
        ("30 2,8,14,20 * * *", "America/New_York", timedelta(hours=11 + 4)),
    ],
)
def test_alert_threshold_is_the_gap_plus_a_grace(cron: str, zone: str, expected: timedelta) -> None:
    assert alert_threshold(Schedule(cron, zone=zone)) == expected


def test_a_catalog_threshold_shorter_than_the_gap_names_both_numbers() -> None:
    text = MINIMAL_HEAD + (
        "  - name: app\n    namespace: app\n    storage: local-disk\n    churn: low\n"
        "    engine: etcd\n    cadence: monthly-first-sunday\n    retention: 2 copies\n"
        "    stale_after: 32d\n"
    )
    with pytest.raises(CatalogError) as error:
        load_catalog_text(text, "services.yaml")
    (line,) = error.value.lines
    assert line.startswith("services.yaml:15:18: services[0].stale_after: stale_after 32d")
    assert "(35d;" in line
    longer = load_catalog_text(text.replace("32d", "36d")).service("app")
    assert longer.stale_after == timedelta(days=36)


# --- the Pushgateway scrape the rules depend on --------------------------------------------------


def test_the_pushgateway_is_scraped_with_honor_labels_in_its_own_namespace() -> None:
    """The rules match job="homeops_backup": only honor_labels keeps the pushed job label."""
    monitor = load(OUT / "kubernetes/monitoring/pushgateway-servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["metadata"]["namespace"] == "monitoring"  # from settings.pushgateway's host
    assert monitor["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "honorLabels": True}
    assert monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "prometheus-pushgateway"}
    }
    for rules in RULES.glob("backup-*.rules.yaml"):
        assert 'job="homeops_backup"' in rules.read_text()


def test_a_catalog_that_scrapes_the_pushgateway_itself_gets_no_servicemonitor() -> None:
    from homeops_gen import build_plan

    body = "  - {name: app, namespace: app, storage: local-disk, churn: low, engine: etcd}\n"
    own = MINIMAL_HEAD.replace(
        "  alerts: {", "  alerts: {pushgateway_scrape: {servicemonitor: false}, "
    )
    paths = {f.path for f in build_plan(load_catalog_text(own + body)).files}
    assert "kubernetes/monitoring/pushgateway-servicemonitor.yaml" not in paths
    paths = {f.path for f in build_plan(load_catalog_text(MINIMAL_HEAD + body)).files}
    assert "kubernetes/monitoring/pushgateway-servicemonitor.yaml" in paths
