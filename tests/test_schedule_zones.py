"""Catalogs in four zones: every generated stale threshold against the real runtime.

Each catalog holds daily, 6-hourly, weekly, first-Sunday, leap-day and near-transition
cadences. The test reads only ``out/``: each alert's threshold (expression plus ``for:``) and
the schedule its job is really given (the CronJob's cron, zone and weekday guard; the CNPG
ScheduledBackup's six fields in the controllers' zone; the NAS and host crons in the matrix).
The real largest gap comes from the real robfig/cron (``runtimes/oracle.py``) walked over thirty
years, and for the host layers from the minute simulation of ``runtimes/hostsim.py``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import itertools
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import require_tool
from runtimes.hostsim import host_runs, transitions
from runtimes.oracle import Oracle, robfig  # noqa: F401

from homeops_gen.cli import main

START = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2056, 1, 1, tzinfo=dt.UTC).timestamp())

#: zone -> (a daily time inside its transitions' hour, the controllers' zone)
ZONES = {
    "Europe/London": ("30 1", "Etc/UTC"),
    "America/New_York": ("30 2", "Etc/UTC"),
    "Australia/Sydney": ("30 2", "America/New_York"),
    "Etc/UTC": ("30 0", "Etc/UTC"),
}


def _catalog(zone: str) -> str:
    near, controllers = ZONES[zone]
    sqlite = "engine: sqlite, storage: iscsi, churn: low, namespace: apps"
    return textwrap.dedent(
        f"""\
        version: homeops/v1
        settings:
          timezone: {zone}
          controller_timezone: {controllers}
          nfs: {{server: nas.lan, backup_root: /mnt/tank}}
          pushgateway: http://pushgateway.monitoring.svc:9091
          object_stores:
            garage: {{provider: garage, endpoint: "http://garage.garage.svc:3900",
                      region: garage, bucket: cnpg, credentials_key: garage-cnpg}}
          garage: {{s3_region: garage}}
          offsite: {{target: "sftp://backup.lan/tank", incremental: 6h, full_sync: "0 9 * * 0"}}
          snapshots:
            lvm: {{cadence: "0 0,12 * * *", retention: 7d}}
        services:
          - {{name: daily, {sqlite}, cadence: daily, sqlite: {{claim: a, database: /data/a.db}}}}
          - {{name: six, {sqlite}, cadence: 6h, sqlite: {{claim: b, database: /data/a.db}}}}
          - {{name: hourly, {sqlite}, cadence: hourly, sqlite: {{claim: c, database: /data/a.db}}}}
          - {{name: week, {sqlite}, cadence: weekly, sqlite: {{claim: d, database: /data/a.db}}}}
          - {{name: firstsun, {sqlite}, cadence: monthly-first-sunday, retention: 2 copies,
              sqlite: {{claim: e, database: /data/a.db}}}}
          - {{name: leap, {sqlite}, cadence: "0 3 29 2 *", retention: 2 copies,
              sqlite: {{claim: f, database: /data/a.db}}}}
          - {{name: near, {sqlite}, cadence: "{near} * * *",
              sqlite: {{claim: g, database: /data/a.db}}}}
          - {{name: nearweek, {sqlite}, cadence: "{near} * * 0",
              sqlite: {{claim: h, database: /data/a.db}}}}
          - {{name: pg, namespace: db, storage: local-hostpath, churn: high, engine: postgresql,
              cadence: daily, cnpg: {{cluster: pg, object_store: garage}},
              offsite: {{excluded: in-cluster archive only}}}}
          - {{name: pg-near, namespace: db2, storage: local-hostpath, churn: high,
              engine: postgresql, cadence: "{near} * * *",
              cnpg: {{cluster: pg-near, object_store: garage}},
              offsite: {{excluded: in-cluster archive only}}}}
          - {{name: vm, namespace: vm, storage: proxmox-lvm, churn: low, engine: files}}
        """
    )


def _generate(zone: str, folder: Path) -> Path:
    catalog = folder / "services.yaml"
    catalog.write_text(_catalog(zone))
    out = folder / "out"
    assert main(["--catalog", str(catalog), "--out", str(out), "-q"]) == 0
    return out


def _seconds(text: str) -> int:
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([wdhms])", text))


def _thresholds(out: Path) -> dict[str, int]:
    """What each stale alert waits for before it fires: its expression's bound plus ``for:``."""
    found: dict[str, int] = {}
    for path in sorted((out / "prometheus/rules").glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                match = re.fullmatch(r"time\(\) - (.+) > (\d+)", rule["expr"])
                if not match:
                    continue
                metric, bound = match.groups()
                if metric.startswith("restore_drill_"):
                    continue  # the drills' own schedules: tests/test_drill_alerts.py
                key = re.search(r'service="([^"]+)"|sync="([^"]+)"|namespace="([^"]+)"', metric)
                name = next(g for g in key.groups() if g) if key else metric.split("{")[0]
                found[name] = int(bound) + _seconds(rule.get("for", "0s"))
    return found


def _cronjob(out: Path, service: str) -> dict[str, object]:
    text = (out / "terraform/stacks" / service / "backup.tf").read_text()
    schedule = re.search(r'\n    schedule += "([^"]+)"', text)
    zone = re.search(r'\n    timezone += "([^"]+)"', text)
    guard = re.search(r'if \[ "\$\(date \+%w\)" != (\d) \]', text)
    assert schedule and zone, service
    return {
        "spec": schedule.group(1),
        "zone": zone.group(1),
        "guard": int(guard.group(1)) if guard else -1,
    }


def _scheduled_backup(out: Path, namespace: str, controllers: str) -> dict[str, object]:
    (path,) = (out / "kubernetes/cnpg" / namespace).glob("*/scheduledbackup.yaml")
    spec = yaml.safe_load(path.read_text())["spec"]["schedule"]
    return {"spec": spec, "zone": controllers, "seconds": True, "v1star": True}


def _host_cron(out: Path, layer: str) -> str:
    """The cron a host layer is documented with (the matrix and the LVM environment file)."""
    if layer == "lvm":
        env = (out / "snapshots/lvm-pvc-snapshot.env").read_text()
        return re.search(r"# Schedule: (.+?) \(", env).group(1)  # type: ignore[union-attr]
    matrix = (out / "docs/protection-matrix.md").read_text()
    found = re.search(r"NAS sync of the dumps to [^:]+:[^:]+: (.+?) [\w/]+, keeps", matrix)
    assert found, "no offsite cron in the matrix"
    return found.group(1)


def _windows(zone: str, span: int) -> list[tuple[int, int]]:
    """One ordinary stretch and a stretch of ``span`` around every transition of thirty years."""
    around = [t - span // 2 for year in range(2026, 2056) for t in transitions(zone, year)]
    return [(start, start + span) for start in [START, *around]]


def _robfig_gaps(oracle: Oracle, requests: dict[str, dict[str, object]]) -> dict[str, int]:
    """The whole thirty years, run by run; a job that runs more than four times a day around
    each transition only (two days either side), which holds every gap it can have."""
    asked: list[tuple[str, dict[str, object]]] = []
    for name, request in requests.items():
        hours = str(request["spec"]).split()[2 if request.get("seconds") else 1]
        dense = hours.startswith("*") or len(hours.split(",")) > 4
        windows = _windows(str(request["zone"]), 4 * 86400) if dense else [(START, END)]
        asked += [(name, {"mode": "gap", "start": a, "end": b, **request}) for a, b in windows]
    gaps = dict.fromkeys(requests, 0)
    for (name, request), answer in zip(asked, oracle.ask([r for _, r in asked]), strict=True):
        assert "error" not in answer, (request, answer)
        gaps[name] = max(gaps[name], answer["max_gap"])
    return gaps


def _host_gap(cron: str, zone: str, daemon: str, calendar: int) -> int:
    """The largest gap over thirty years: a minute walk around every transition, each
    window long enough to hold two gaps on either side."""
    real = 0
    for start, end in _windows(zone, 2 * calendar + 2 * 86400):
        runs = host_runs(cron, zone, daemon, start, (end - start) // 60)
        real = max([real, *(b - a for a, b in itertools.pairwise(runs))])
    return real


@pytest.mark.tool("go")
@pytest.mark.parametrize("zone", sorted(ZONES))
def test_every_threshold_covers_the_real_gap_and_at_most_doubles_it(
    zone: str,
    tmp_path: Path,
    robfig: Oracle,  # noqa: F811
) -> None:
    out = _generate(zone, tmp_path)
    thresholds = _thresholds(out)
    controllers = ZONES[zone][1]

    jobs = ["daily", "six", "hourly", "week", "firstsun", "leap", "near", "nearweek"]
    requests = {name: _cronjob(out, name) for name in jobs}
    requests |= {ns: _scheduled_backup(out, ns, controllers) for ns in ("db", "db2")}
    real = _robfig_gaps(robfig, requests)

    offsite = _host_cron(out, "offsite")
    real["incremental"] = _host_gap(offsite, zone, "cron", 6 * 3600)
    real["full"] = _host_gap("0 9 * * 0", zone, "cron", 7 * 86400)
    real["lvm_snapshot_last_success_timestamp"] = _host_gap(
        _host_cron(out, "lvm"), zone, "systemd", 12 * 3600
    )

    assert set(thresholds) == set(real), (sorted(thresholds), sorted(real))
    wrong = {
        name: (real[name], thresholds[name])
        for name in real
        if not real[name] <= thresholds[name] <= 2 * real[name]
    }
    assert not wrong, f"(real gap, threshold) in {zone}: {wrong}"


#: Samples a promtool case may load per series: its interval is picked from the gap, so
#: even the leap-day job (four years) stays near 300 evaluations.
MAX_SAMPLES = 1000


@pytest.mark.tool("promtool")
@pytest.mark.parametrize("zone", sorted(ZONES))
def test_every_promtool_case_passes_and_stays_small(zone: str, tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    tests = _generate(zone, tmp_path) / "prometheus/tests"
    files = sorted(p.name for p in tests.glob("*.test.yaml"))
    for name in files:
        for case in yaml.safe_load((tests / name).read_text())["tests"]:
            for series in case["input_series"]:
                counts = re.findall(r"x(\d+)", series["values"])
                samples = sum(int(n) + 1 for n in counts) or len(series["values"].split())
                assert samples <= MAX_SAMPLES, (name, series)

    def run(name: str) -> subprocess.CompletedProcess[str]:
        command = [promtool, "test", "rules", name]
        return subprocess.run(command, cwd=tests, capture_output=True, text=True, check=False)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = dict(zip(files, pool.map(run, files), strict=True))
    failed = {name: r.stdout + r.stderr for name, r in results.items() if r.returncode}
    assert not failed
