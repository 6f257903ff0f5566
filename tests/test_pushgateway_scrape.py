"""The pushed metrics reach the rules only through the generated scrape: a real Pushgateway,
a real backup script pushing to it, and a real Prometheus scraping it as the generated
ServiceMonitor says (``honorLabels`` -> ``honor_labels``), with the generated rules loaded.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from engines import ReadyServer
from jobs import load_job, run_job

OUT = REPO / "out"
MONITOR = OUT / "kubernetes/monitoring/pushgateway-servicemonitor.yaml"
RULES = OUT / "prometheus/rules/backup-etcd.rules.yaml"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def _wait(check: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = require_tool("prometheus-pushgateway")

    def argv(port: int) -> list[str]:
        return [binary, f"--web.listen-address=127.0.0.1:{port}"]

    with ReadyServer("pushgateway", argv, tmp_path / "pushgateway.log", "/-/ready") as server:
        yield server.url


def _prometheus(tmp_path: Path, target: str, honor_labels: bool) -> ReadyServer:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": honor_labels,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [urllib.parse.urlsplit(target).netloc]}],
            }
        ],
    }
    folder = tmp_path / f"prometheus-{honor_labels}"
    folder.mkdir()
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))

    def argv(port: int) -> list[str]:
        return [
            require_tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    return ReadyServer("prometheus", argv, folder / "prometheus.log", "/-/ready")


def _series(prometheus: str, query: str) -> list[dict[str, Any]]:
    answer = _get(f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}")
    return list(answer["data"]["result"])


@pytest.mark.tool("prometheus-pushgateway")
@pytest.mark.parametrize("honor", [True, False], ids=["as-generated", "without-honor-labels"])
def test_the_rules_see_the_pushed_success_only_with_the_generated_scrape(
    honor: bool, pushgateway: str, tmp_path: Path
) -> None:
    (endpoint,) = yaml.safe_load(MONITOR.read_text())["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    # A real run of the etcd job's script pushes its success to the real Pushgateway.
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"etcd-snapshot\x00bytes")
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    env = {
        "BACKUP_DIR": str(backup_dir),
        "PUSHGATEWAY_URL": pushgateway,
        "ETCD_SNAPSHOT": str(snapshot),
    }
    result = run_job(load_job(OUT / "terraform/stacks/etcd"), env)
    assert result.returncode == 0, result.stderr

    with _prometheus(tmp_path, pushgateway, honor_labels=honor) as server:
        prometheus = server.url
        _wait(lambda: _series(prometheus, "up") and _series(prometheus, "push_time_seconds"),
              "the first scrape")  # fmt: skip
        selected = 'backup_last_success_timestamp{job="homeops_backup",service="etcd"}'
        if honor:
            (found,) = _wait(lambda: _series(prometheus, selected), "the pushed series")
            assert found["metric"]["job"] == "homeops_backup"
            assert float(found["value"][1]) > 0
        else:
            # The target's own job label wins; the pushed one becomes exported_job, and the
            # rules' selectors (and so BackupStale) see nothing.
            exported = 'backup_last_success_timestamp{exported_job="homeops_backup"}'
            _wait(lambda: _series(prometheus, exported), "the exported series")
            assert _series(prometheus, selected) == []
        rules = _wait(
            lambda: _get(f"{prometheus}/api/v1/rules")["data"]["groups"], "the rule groups"
        )
        names = {rule["name"] for group in rules for rule in group["rules"]}
        assert {"BackupStale", "BackupNeverSucceeded", "BackupRunFailed"} <= names
