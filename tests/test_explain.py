"""``python -m homeops_gen explain SERVICE``: resolved values, their origins, generated files."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, CliResult, run_module

from homeops_gen.catalog import load_catalog_text

Run = Callable[..., CliResult]


@dataclass(frozen=True)
class Explained:
    result: CliResult
    #: Field name → (value, origin), from the table.
    rows: dict[str, tuple[str, str]]
    #: The paths listed under ``files:``.
    files: list[str]


def parse(out: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """The table rows and the file list of an ``explain`` report."""
    lines = out.splitlines()
    split = lines.index("files:")
    table_end = next(i for i, line in enumerate(lines) if line.startswith("protection"))
    rows = {}
    for line in lines[1:table_end]:
        field, value, origin = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows[field] = (value, origin)
    return rows, [line.strip() for line in lines[split + 1 :]]


def key_position(text: str, service: str, key_text: str) -> tuple[int, int]:
    """1-based line and column of the key on the first line, in ``service``'s block, that
    contains ``key_text`` (searched from its ``- name:`` line)."""
    lines = text.splitlines()
    start = lines.index(f"  - name: {service}")
    index = next(i for i in range(start, len(lines)) if key_text in lines[i])
    key = key_text.split(":", 1)[0]
    return index + 1, lines[index].index(key) + 1


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project holding a copy of the reference catalog (read once: others edit it)."""
    root = tmp_path_factory.mktemp("reference")
    text = (REPO / "services.yaml").read_text(encoding="utf-8")
    (root / "services.yaml").write_text(text, encoding="utf-8")
    return root, text


@pytest.fixture(scope="module")
def explain(reference: tuple[Path, str]) -> Callable[[str], Explained]:
    root, _ = reference
    cache: dict[str, Explained] = {}

    def run(name: str) -> Explained:
        if name not in cache:
            result = run_module("explain", name, cwd=root)
            assert result.code == 0, result.err
            assert "Traceback" not in result.err
            cache[name] = Explained(result, *parse(result.out))
        return cache[name]

    return run


def test_header_names_the_service_and_its_line(
    explain: Callable[[str], Explained], reference: tuple[Path, str]
) -> None:
    _, text = reference
    line = text.splitlines().index("  - name: vaultwarden") + 1
    first = explain("vaultwarden").result.out.splitlines()[0]
    assert first.startswith(f"vaultwarden (services.yaml:{line}:")


@pytest.mark.parametrize(
    ("field", "key_text"),
    [
        ("schedule", "cadence: 6h"),
        ("retention", "retention: 30d"),
        ("integrity", "integrity: hourly"),
        ("storage", "storage: iscsi"),
        ("criticality", "criticality: critical"),
    ],
)
def test_values_written_in_the_catalog_point_at_their_line(
    explain: Callable[[str], Explained], reference: tuple[Path, str], field: str, key_text: str
) -> None:
    _, text = reference
    line, column = key_position(text, "vaultwarden", key_text)
    _value, origin = explain("vaultwarden").rows[field]
    assert origin == f"catalog services.yaml:{line}:{column}"


def test_vaultwarden_values_and_derived_origins(explain: Callable[[str], Explained]) -> None:
    rows = explain("vaultwarden").rows
    schedule, _ = rows["schedule"]
    assert schedule.endswith("largest gap 7h")  # the fall-back hour
    stale_value, stale_origin = rows["stale_after"]
    assert stale_value == "12h"  # 7h (the fall-back) plus a 1h starting and a 4h active deadline
    assert stale_origin.startswith("policy")
    assert rows["offsite"][0] == "included"
    assert rows["offsite"][1].startswith("default")
    assert rows["methods"] == ("dump", "policy: sqlite on iscsi needs an application-level dump")
    assert rows["snapshots"][0] == "zfs"
    assert rows["snapshots"][1].startswith("policy")


@pytest.mark.parametrize(
    "path",
    [
        "terraform/stacks/vaultwarden/backup.tf",
        "kubernetes/monitoring/prometheusrules/backup-vaultwarden.yaml",
    ],
)
def test_vaultwarden_lists_its_generated_files(
    explain: Callable[[str], Explained], path: str
) -> None:
    assert path in explain("vaultwarden").files


def test_files_of_other_services_are_not_listed(explain: Callable[[str], Explained]) -> None:
    files = explain("vaultwarden").files
    assert files
    assert not [path for path in files if "redis" in path or "postgresql" in path]


def test_churn_defaults_show_a_default_origin(explain: Callable[[str], Explained]) -> None:
    rows = explain("redis").rows
    for field in ("schedule", "retention"):
        _value, origin = rows[field]
        assert origin.startswith("default: "), (field, origin)
        assert "low churn" in origin
    assert rows["retention"][0] == "30d"
    assert rows["criticality"] == ("normal", "default")
    assert "terraform/stacks/redis/backup.tf" in explain("redis").files


def test_settings_defaults_show_their_settings_line(
    project: Callable[[str], Path], run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cadence from settings.defaults.churn points at that line, not at the service."""
    text = (
        "version: homeops/v1\n"
        "settings:\n"
        "  nfs: {server: nas.lan, backup_root: /mnt/tank}\n"
        "  pushgateway: http://pushgateway.monitoring.svc:9091\n"
        "  defaults:\n"
        "    churn:\n"
        "      low: {cadence: daily, retention: 10d}\n"
        "services:\n"
        "  - {name: app, namespace: app, storage: local-disk, churn: low, engine: etcd}\n"
    )
    load_catalog_text(text, "services.yaml")
    monkeypatch.chdir(project(text))
    result = run_cli("explain", "app")
    assert result.code == 0, result.err
    rows, _files = parse(result.out)
    lines = text.splitlines()
    line = next(i for i, content in enumerate(lines) if "low: {cadence" in content)
    for field, key in (("schedule", "cadence"), ("retention", "retention")):
        column = lines[line].index(key) + 1
        assert rows[field][1] == f"settings services.yaml:{line + 1}:{column}"


def test_unknown_service_exits_2_and_lists_the_names(reference: tuple[Path, str]) -> None:
    root, text = reference
    result = run_module("explain", "no-such-service", cwd=root)
    assert result.code == 2
    assert result.out == ""
    assert "Traceback" not in result.err
    assert "no service named 'no-such-service'" in result.err
    names = [s.name for s in load_catalog_text(text, "services.yaml").services]
    assert "vaultwarden" in names
    for name in names:
        assert re.search(rf"\b{re.escape(name)}\b", result.err), name
    assert not (root / "out").exists()


def protection(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("protection"))
    return [line.strip() for line in lines[start + 1 : lines.index("files:")]]


def test_explain_lists_each_layer_with_its_rpo(explain: Callable[[str], Explained]) -> None:
    result = explain("postgresql").result
    layers = protection(result.out)
    assert any(line.startswith("CNPG WAL archive") and line.endswith("(RPO 5m)") for line in layers)
    # Daily in Europe/London: the October fall-back makes one gap 1d1h.
    assert any(line.startswith("pg_dumpall + pg_dump") and "(RPO 1d1h)" in line for line in layers)
    assert any(line.endswith(", leaves the site") for line in layers)
    rows, _ = parse(result.out)
    assert rows["rpo"][0] == "1h" and rows["rpo"][1].startswith("catalog services.yaml:")
    assert protection(explain("loki").result.out) == ["nothing"]
