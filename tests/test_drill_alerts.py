"""Restore drills and meaningful backups in the alerts and docs: every drill watched with a
threshold derived from its schedule, its RTO held, a shrinking backup caught; each proven by
promtool running the generated cases, and each case able to fail."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePushgateway, parse_samples

from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.generators.alerts import rule_groups, severity, shrink_window
from homeops_gen.metrics import dangling, metrics_read, sources
from homeops_gen.schedule import alert_threshold

SERVICES = textwrap.indent(
    textwrap.dedent(
        """\
        - name: notes
          namespace: notes
          storage: iscsi
          churn: low
          engine: sqlite
          criticality: critical
          cadence: 6h
          rto: 10m
          sqlite: {claim: notes-data, database: /data/notes.db}
          drill:
            checks: [{table: users, min_rows: 1}]
        - name: pg
          namespace: db
          storage: local-disk
          churn: low
          engine: postgresql
          cadence: daily
          postgresql: {host: pg.db.svc, databases: [app]}
        - name: books
          namespace: books
          storage: iscsi
          churn: low
          engine: sqlite
          cadence: daily
          rto: 1h30m
          sqlite: {claim: books-data, database: /data/books.db}
          drill: {cadence: monthly-first-sunday}
        - name: cache
          namespace: cache
          storage: local-disk
          churn: low
          engine: redis
          drill: false
          redis: {host: redis.cache.svc, claim: cache-data}
        """
    ),
    "  ",
)
CATALOG_TEXT = MINIMAL_HEAD + SERVICES


def _render(text: str = CATALOG_TEXT) -> tuple[Catalog, dict[str, bytes]]:
    catalog = load_catalog_text(text, "services.yaml")
    return catalog, render_plan(build_plan(catalog))


@pytest.fixture(scope="module")
def rendered() -> tuple[Catalog, dict[str, bytes]]:
    return _render()


def _write_prometheus(files: dict[str, bytes], root: Path) -> Path:
    for path, body in files.items():
        if path.startswith("prometheus/"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(body)
    return root / "prometheus"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def rules_of(files: dict[str, bytes], group: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load(files[f"prometheus/rules/{group}.rules.yaml"])
    return {rule["alert"]: rule for rule in spec["groups"][0]["rules"]}


def _seconds(duration: str) -> int:
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration))


# --- promtool runs the generated cases -----------------------------------------------------


def test_promtool_accepts_and_passes_every_generated_rule_file(
    rendered: tuple[Catalog, dict[str, bytes]], tmp_path: Path
) -> None:
    _, files = rendered
    folder = _write_prometheus(files, tmp_path)
    rules = sorted(p.name for p in (folder / "rules").glob("*.rules.yaml"))
    assert {"drill-notes.rules.yaml", "drill-pg.rules.yaml", "drill-books.rules.yaml"} <= set(rules)
    assert "drill-cache.rules.yaml" not in rules  # drill: false
    checked = promtool("check", "rules", *rules, cwd=folder / "rules")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = sorted(p.name for p in (folder / "tests").glob("*.test.yaml"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = pool.map(lambda f: promtool("test", "rules", f, cwd=folder / "tests"), tests)
        results = dict(zip(tests, runs, strict=True))
    assert {name: r.stdout[-1500:] for name, r in results.items() if r.returncode} == {}


def _mutated_run(
    files: dict[str, bytes], tmp_path: Path, group: str, alert: str, expr: str
) -> subprocess.CompletedProcess[str]:
    """Replace one alert's expression in the generated rule file and run its own tests."""
    folder = _write_prometheus(files, tmp_path)
    path = folder / "rules" / f"{group}.rules.yaml"
    spec = yaml.safe_load(path.read_text())
    (rule,) = [r for r in spec["groups"][0]["rules"] if r["alert"] == alert]
    assert rule["expr"] != expr
    rule["expr"] = expr
    path.write_text(yaml.safe_dump(spec))
    return promtool("test", "rules", f"{group}.test.yaml", cwd=folder / "tests")


@pytest.mark.parametrize("service", ["notes", "pg", "books"])
def test_a_drill_threshold_one_step_short_fails_its_case(
    rendered: tuple[Catalog, dict[str, bytes]], tmp_path: Path, service: str
) -> None:
    """Weekly (critical), monthly (normal), first Sunday: one evaluation step less must fail."""
    _, files = rendered
    group = f"drill-{service}"
    tests = yaml.safe_load(files[f"prometheus/tests/{group}.test.yaml"])
    step = _seconds(tests["evaluation_interval"])
    expr = rules_of(files, group)["RestoreDrillStale"]["expr"]
    threshold = int(expr.rsplit("> ", 1)[1])
    shorter = expr.replace(f"> {threshold}", f"> {threshold - step}")
    result = _mutated_run(files, tmp_path, group, "RestoreDrillStale", shorter)
    assert result.returncode != 0
    assert "RestoreDrillStale" in result.stdout + result.stderr


@pytest.mark.parametrize(("service", "change"), [("notes", -1), ("books", -1), ("notes", 1)])
def test_an_rto_moved_by_a_second_fails_its_case(
    rendered: tuple[Catalog, dict[str, bytes]], tmp_path: Path, service: str, change: int
) -> None:
    """Lowered, the drill that takes exactly its RTO fires; raised, one second over is silent."""
    catalog, files = rendered
    group = f"drill-{service}"
    rto = catalog.service(service).rto
    assert rto is not None
    seconds = int(rto.total_seconds())
    expr = rules_of(files, group)["RestoreDrillSlowerThanRTO"]["expr"]
    assert expr.endswith(f"> {seconds}")
    moved = expr.replace(f"> {seconds}", f"> {seconds + change}")
    result = _mutated_run(files, tmp_path, group, "RestoreDrillSlowerThanRTO", moved)
    assert result.returncode != 0
    assert "RestoreDrillSlowerThanRTO" in result.stdout + result.stderr


def test_the_rto_cases_are_one_second_over_and_exactly_at_it(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    _, files = rendered
    tests = yaml.safe_load(files["prometheus/tests/drill-notes.test.yaml"])["tests"]
    cases = [
        t for t in tests if t["alert_rule_test"][0]["alertname"] == "RestoreDrillSlowerThanRTO"
    ]
    values = {bool(c["alert_rule_test"][0]["exp_alerts"]): c["input_series"][0] for c in cases}
    assert values[True]["values"].startswith("601+0x")  # rto 10m, one second over: fires
    assert values[False]["values"].startswith("600+0x")  # exactly the RTO: silent
    assert values[True]["series"].startswith(
        'restore_drill_duration_seconds{job="homeops_drill",service="notes"}'
    )


@pytest.mark.parametrize(
    ("fraction", "breaks"),
    [
        ("0.05", "the 90% drop no longer fires"),
        ("0.95", "the 10% drop fires"),
        (None, "the window holds only the current size"),
    ],
)
def test_a_mutated_shrink_alert_fails_its_cases(
    rendered: tuple[Catalog, dict[str, bytes]], tmp_path: Path, fraction: str | None, breaks: str
) -> None:
    _, files = rendered
    expr = rules_of(files, "backup-pg")["BackupShrank"]["expr"]
    assert " < 0.5 * max_over_time(" in expr
    if fraction is not None:
        mutated = expr.replace("< 0.5 *", f"< {fraction} *")
    else:
        mutated = re.sub(r"\[[0-9dhms]+\]", "[1s]", expr)
    result = _mutated_run(files, tmp_path, "backup-pg", "BackupShrank", mutated)
    assert result.returncode != 0, breaks
    assert "BackupShrank" in result.stdout + result.stderr


def test_the_shrink_cases_are_a_steady_size_a_90_and_a_10_percent_drop(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    _, files = rendered
    tests = yaml.safe_load(files["prometheus/tests/backup-notes.test.yaml"])["tests"]
    cases = [t for t in tests if t["alert_rule_test"][0]["alertname"] == "BackupShrank"]
    assert len(cases) == 3
    outcome = {}
    for case in cases:
        (series,) = case["input_series"]
        assert series["series"] == 'backup_last_size_bytes{job="homeops_backup",service="notes"}'
        first, then = (part.split("x")[0] for part in series["values"].split())
        fired = [bool(check["exp_alerts"]) for check in case["alert_rule_test"]]
        assert case["alert_rule_test"][0]["eval_time"] == "0s"  # the first run
        assert fired[0] is False and fired[1] is False  # before the drop
        outcome[int(then) * 100 // int(first)] = any(fired)
    assert outcome == {100: False, 10: True, 90: False}


# --- the alerts as generated ----------------------------------------------------------------


def test_each_drill_has_its_alerts_with_thresholds_from_its_schedule(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    catalog, files = rendered
    for name, weekly in (("notes", True), ("pg", False), ("books", False)):
        service = catalog.service(name)
        drill = service.drill
        assert drill is not None
        rules = rules_of(files, f"drill-{name}")
        expected = {
            "RestoreDrillStale",
            "RestoreDrillNeverSucceeded",
            "RestoreDrillFailed",
            "RestoreDrillJobFailing",
        } | ({"RestoreDrillSlowerThanRTO"} if service.rto else set())
        assert set(rules) == expected, name
        for rule in rules.values():
            assert rule["labels"]["severity"] == severity(service.criticality)
            assert rule["annotations"]["runbook_url"].endswith(f"/restore-{name}.md#restore-drill")
        stale = rules["RestoreDrillStale"]
        threshold = alert_threshold(drill.schedule, service.job.run_allowance(drill.schedule))
        seconds = int(stale["expr"].rsplit("> ", 1)[1]) + _seconds(stale["for"])
        assert timedelta(seconds=seconds) == threshold, name
        assert threshold > drill.schedule.max_gap()
        # Weekly for the critical service, monthly otherwise (first Sundays: up to 35 days).
        if weekly:
            assert timedelta(days=7) < threshold < timedelta(days=8)
        else:
            assert timedelta(days=31) < threshold < timedelta(days=36)
        assert (
            'restore_drill_last_run_success{job="homeops_drill",service="'
            in (rules["RestoreDrillFailed"]["expr"])
        )
        assert f'cronjob="{name}-restore-drill"' in rules["RestoreDrillJobFailing"]["expr"]
    books = catalog.service("books").drill
    assert books is not None and books.schedule.first_weekday == 0


def test_every_dumped_service_has_a_shrink_alert_over_its_runs(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    catalog, files = rendered
    for service in catalog.services:
        rule = rules_of(files, f"backup-{service.name}")["BackupShrank"]
        window = shrink_window(service.schedule, 7)
        assert window >= 7 * service.schedule.max_gap()
        assert window - 7 * service.schedule.max_gap() < timedelta(minutes=1)
        size = f'backup_last_size_bytes{{job="homeops_backup",service="{service.name}"}}'
        assert rule["expr"].startswith(f"{size} < 0.5 * max_over_time({size}[")
        assert _seconds(rule["expr"].rsplit("[", 1)[1]) == window.total_seconds()
    assert "[1d18h]" in rules_of(files, "backup-notes")["BackupShrank"]["expr"]  # 7 x 6h


def test_the_catalog_sets_the_shrink_fraction_and_runs(tmp_path: Path) -> None:
    head = MINIMAL_HEAD.replace(
        "services:\n", "  backups: {shrink_fraction: 0.3, shrink_runs: 3}\nservices:\n"
    )
    _, files = _render(head + SERVICES)
    expr = rules_of(files, "backup-notes")["BackupShrank"]["expr"]
    assert " < 0.3 * max_over_time(" in expr and expr.endswith("[18h])")
    folder = _write_prometheus(files, tmp_path)
    result = promtool("test", "rules", "backup-notes.test.yaml", cwd=folder / "tests")
    assert result.returncode == 0, result.stdout


def test_every_metric_the_drill_alerts_read_is_named_by_its_producer(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    """drill.sh (with the lib.sh it sources) produces what the alerts read, for the labels
    they select; the backup's new item count has its producer too."""
    catalog, files = rendered
    claimed = sources(catalog)
    lib = files["terraform/modules/backup-shell/lib.sh"].decode()
    reads = 0
    for group in rule_groups(catalog):
        if not group.name.startswith("drill-"):
            continue
        assert dangling(catalog, [(a.name, a.expr) for a in group.alerts]) == []
        for alert in group.alerts:
            for read in metrics_read(alert.expr):
                if read.metric.startswith("kube_"):
                    continue
                reads += 1
                (source,) = [
                    s
                    for s in claimed
                    if s.metric == read.metric
                    and all(dict(read.labels).get(k, v) == v for k, v in s.labels)
                ]
                assert source.producer == f"terraform/stacks/{group.subject}/drill.sh"
                text = files[source.producer].decode() + lib
                assert re.search(rf"\b{read.metric}\b", text)
    assert reads == 3 * 3 + 2  # stale, never succeeded, failed; two RTOs
    assert any(
        s.metric == "backup_last_items" and s.producer == "terraform/stacks/pg/backup.sh"
        for s in claimed
    )
    assert not any(s.producer == "terraform/stacks/cache/drill.sh" for s in claimed)


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_what_a_drill_pushes_is_what_its_alerts_read(
    rendered: tuple[Catalog, dict[str, bytes]], tmp_path: Path, outcome: str
) -> None:
    """lib.sh's drill frame, run for real against a stand-in Pushgateway: the group it pushes
    to is the alerts' selector, and it pushes every metric they read (a failure: the run's
    outcome 0, which RestoreDrillFailed watches, and never a success timestamp)."""
    _, files = rendered
    (tmp_path / "lib.sh").write_bytes(files["terraform/modules/backup-shell/lib.sh"])
    backups = tmp_path / "backup"
    backups.mkdir()
    if outcome == "success":
        (backups / "notes-20260301T021500Z").mkdir()
        (backups / "notes-20260301T021500Z" / "notes.db").write_bytes(b"x" * 64)
    (tmp_path / "drill.sh").write_text(
        '. "${0%/*}/lib.sh"\nreport_drill_outcome\nbegin_drill\nDRILL_ITEMS=3\nend_drill\n'
    )
    with FakePushgateway() as pushgateway:
        env = {
            "PATH": os.environ["PATH"],
            "SERVICE": "notes",
            "BACKUP_DIR": str(backups),
            "SCRATCH_DIR": str(tmp_path / "scratch"),
            "PUSHGATEWAY_URL": pushgateway.url,
        }
        run = subprocess.run(
            ["bash", str(tmp_path / "drill.sh")], env=env, capture_output=True, text=True
        )
        (push,) = pushgateway.pushes
    assert (run.returncode == 0) == (outcome == "success"), run.stderr
    pushed = {sample.name: sample for sample in parse_samples(push.body)}
    group = {"job": "homeops_drill", "service": "notes"}
    assert push.path == "/metrics/job/homeops_drill/service/notes"
    rules = rules_of(files, "drill-notes")
    reads = [r for rule in rules.values() for r in metrics_read(rule["expr"])]
    for read in reads:
        if not read.metric.startswith("kube_"):
            assert dict(read.labels) == group, read
    names = {r.metric for r in reads if not r.metric.startswith("kube_")}
    if outcome == "success":
        assert names <= set(pushed)
        assert pushed["restore_drill_last_run_success"].value == 1
        assert pushed["restore_drill_backup_size_bytes"].value == 64
        assert pushed["restore_drill_restored_items"].value == 3
    else:
        assert set(pushed) == {
            "restore_drill_last_run_success",
            "restore_drill_last_failure_timestamp",
        }
        assert pushed["restore_drill_last_run_success"].value == 0
        assert "RestoreDrillFailed" in rules


# --- the matrix and the runbooks -----------------------------------------------------------


def _matrix(files: dict[str, bytes]) -> tuple[dict[str, dict[str, str]], list[dict[str, str]]]:
    lines = [
        line
        for line in files["docs/protection-matrix.md"].decode().splitlines()
        if line.startswith("| ")
    ]
    tables: list[list[str]] = []
    for line in lines:
        if line.startswith("| service |") or line.startswith("| layer |"):
            tables.append([])
        tables[-1].append(line)

    def parse(table: list[str]) -> list[dict[str, str]]:
        header = [c.strip() for c in table[0].strip("|").split(" | ")]
        return [
            dict(
                zip(
                    header,
                    (c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))),
                    strict=True,
                )
            )
            for line in table[1:]
        ]

    rows = {row["service"]: row for row in parse(tables[0])}
    return rows, parse(tables[1])


def test_the_matrix_shows_each_drill_and_rto(rendered: tuple[Catalog, dict[str, bytes]]) -> None:
    catalog, files = rendered
    rows, schedules = _matrix(files)
    notes = catalog.service("notes").drill
    assert notes is not None
    assert rows["notes"]["restore drill"] == (
        f"{notes.schedule.cron} Etc/UTC, CronJob `notes/notes-restore-drill`"
    )
    assert rows["notes"]["declared RTO"] == "10m"
    assert (
        rows["books"]["restore drill"].startswith("0 ")
        and "(first Sunday only)" in (rows["books"]["restore drill"])
    )
    assert rows["books"]["declared RTO"] == "1h30m"
    assert rows["pg"]["declared RTO"] == "—"
    assert rows["pg"]["restore drill"].endswith("CronJob `db/pg-restore-drill`")
    assert rows["cache"]["restore drill"] == "—"
    assert "`RestoreDrillSlowerThanRTO`" in rows["notes"]["alerts"]
    assert "`BackupShrank`" in rows["cache"]["alerts"]
    drills = {r["services"]: r for r in schedules if r["layer"] == "restore drill"}
    assert set(drills) == {"notes", "pg", "books"}
    for name, row in drills.items():
        drill = catalog.service(name).drill
        assert drill is not None
        assert row["schedule"] == f"`{drill.schedule.cron}`{drill.schedule.guard}"
        assert row["run by"] == "Kubernetes CronJob"
    # The drill's cron is the one its CronJob is given.
    tf = files["terraform/stacks/notes/backup.tf"].decode()
    assert f'"{notes.schedule.cron}"' in tf


def test_the_runbook_says_what_the_drill_checks_and_how_to_run_it(
    rendered: tuple[Catalog, dict[str, bytes]],
) -> None:
    catalog, files = rendered
    text = files["docs/runbooks/restore-notes.md"].decode()
    section = text[text.index("## Restore drill") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
    assert (
        "kubectl create job --namespace notes --from=cronjob/notes-restore-drill "
        "notes-restore-drill-manual" in section
    )
    assert "kubectl --namespace notes logs job/notes-restore-drill-manual" in section
    assert "table users holds at least 1 row" in section
    assert "PRAGMA integrity_check" in section
    assert "declared RTO of 10m" in section
    drill = catalog.service("notes").drill
    assert drill is not None
    assert f"`{drill.schedule.cron} Etc/UTC`" in section
    for alert in ("RestoreDrillStale", "RestoreDrillFailed", "RestoreDrillSlowerThanRTO"):
        assert f"`{alert}`" in section
    assert "check failed:" in section and "passed in N s" in section

    books = files["docs/runbooks/restore-books.md"].decode()
    assert "not the first Sunday of the month; nothing to do" in books
    assert "declared RTO of 1h30m" in books
    pg = files["docs/runbooks/restore-pg.md"].decode()
    assert "declares no RTO" in pg and "RestoreDrillSlowerThanRTO" not in pg
    assert "## Restore drill" not in files["docs/runbooks/restore-cache.md"].decode()


def test_every_drilled_engine_is_described_for_people() -> None:
    from homeops_gen.catalog.policy import DRILL_ENGINES
    from homeops_gen.protection import DRILL_TITLES

    assert set(DRILL_TITLES) == DRILL_ENGINES
