"""Docs and storage-layer files: the protection matrix, the offsite filters, the snapshot
exclusions. The filters are run through rclone and grep to prove they exclude the same files.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, require_tool

from homeops_gen import build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.generators.storage_layers import glob_regex, offsite_exclusions
from homeops_gen.protection import local_rpo, offsite_rpo, protection_layers
from homeops_gen.schedule import format_duration

OUT = REPO / "out"


@pytest.fixture(scope="module")
def reference() -> Catalog:
    return load_catalog(REPO / "services.yaml")


def tables(text: str) -> list[list[str]]:
    """The lines of each markdown table of ``text``, in order."""
    found: list[list[str]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("| "):
            if not previous.startswith("|"):
                found.append([])
            found[-1].append(line)
        previous = line
    return found


def matrix_rows(text: str) -> dict[str, list[str]]:
    """The protection matrix's table rows, by service name (cells stripped)."""
    lines = tables(text)[0]
    header = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        assert len(cells) == len(header), line
        rows[cells[0]] = cells
    return rows


def test_matrix_has_a_row_per_service_with_its_rpos(reference: Catalog) -> None:
    text = (OUT / "docs/protection-matrix.md").read_text()
    rows = matrix_rows(text)
    assert sorted(rows) == sorted(s.name for s in reference.services)
    for service in reference.services:
        layers = protection_layers(reference, service)
        cells = rows[service.name]
        best, away = local_rpo(layers), offsite_rpo(layers)
        assert cells[9] == (format_duration(best) if best else "none"), service.name
        assert cells[10] == (format_duration(away) if away else "—"), service.name
        if service.methods:
            assert f"(runbooks/restore-{service.name}.md)" in cells[13]
            assert (OUT / f"docs/runbooks/restore-{service.name}.md").is_file()


@pytest.mark.parametrize(
    ("service", "column", "expected"),
    [
        ("vaultwarden", 5, "sqlite3 .backup: 21 3,9,15,21 * * * Europe/London, keeps 30d (RPO 7h)"),
        ("vaultwarden", 9, "7h"),  # the October fall-back
        ("vaultwarden", 11, "7h"),  # declared
        ("postgresql", 7, "CNPG WAL archive"),
        ("postgresql", 9, "5m"),  # the WAL archive beats the daily dump
        ("prometheus", 8, "excluded: Covered by the monthly application backup; large TSDB"),
        ("prometheus", 5, "RPO 35d"),  # first Sundays can be 35 days apart
        ("calibre", 4, "LVM thin snapshots"),
        ("loki", 4, "—"),  # high churn stays out of the LVM snapshots
        ("home-assistant", 8, "VolSync restic (R2)"),
        ("forgejo", 8, "NAS sync of the dataset"),
        ("etcd", 12, "`BackupStale`"),
    ],
)
def test_matrix_cells(service: str, column: int, expected: str) -> None:
    rows = matrix_rows((OUT / "docs/protection-matrix.md").read_text())
    assert expected in rows[service][column]


def test_every_dump_service_offsite_rpo_adds_the_sync_gap(reference: Catalog) -> None:
    sync = reference.settings.offsite_incremental
    assert sync is not None
    vaultwarden = reference.service("vaultwarden")
    assert offsite_rpo(protection_layers(reference, vaultwarden)) == (
        vaultwarden.schedule.max_gap() + sync.max_gap()
    )


# --- offsite filters ---------------------------------------------------------------------

TREE = [
    "clickhouse/part-1.bin",
    "clickhouse/deep/part-2.bin",
    "prometheus/wal/00000001",
    "prometheus-backup/prometheus-20260301T040000Z/tsdb.tar.gz",
    "forgejo/repos/a.git/HEAD",
    "forgejo/log/gitea.log",
    "forgejo/logs.txt",
    "nextcloud/data/post",
    "nextcloud/data/postcard.jpg",
    "iscsi/zvol-1",
    "apps/iscsi/notes.txt",
    "servarr/downloads/x.mkv",
    "servarr/config.xml",
    "vaultwarden-backup/vaultwarden-20260323T001500Z/db.sqlite3",
    "audiblez.txt",
]


def excluded_by_regex(paths: list[str], regexes: list[str]) -> set[str]:
    return {p for p in paths if any(re.search(r, p) for r in regexes)}


def regex_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_incremental_list_matches_the_rclone_filter_under_grep(tmp_path: Path) -> None:
    """grep -v -E -f keeps exactly the files rclone copies with the same exclusions."""
    rclone, grep = require_tool("rclone"), require_tool("grep")
    source, target = tmp_path / "src", tmp_path / "dst"
    for relative in TREE:
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    copied = subprocess.run(
        [
            rclone,
            "copy",
            "--config",
            "/dev/null",
            "--filter-from",
            str(OUT / "offsite/rclone-filter.txt"),
            str(source),
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    by_rclone = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    kept = subprocess.run(
        [grep, "-v", "-E", "-f", str(OUT / "offsite/incremental-exclude.txt")],
        input="\n".join(TREE) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert kept.returncode == 0, kept.stderr
    assert sorted(kept.stdout.split()) == by_rclone
    # What the reference catalog's exclusions must leave out, and what they must keep.
    assert "clickhouse/deep/part-2.bin" not in by_rclone
    assert "prometheus/wal/00000001" not in by_rclone
    assert "forgejo/log/gitea.log" not in by_rclone
    assert "nextcloud/data/post" not in by_rclone
    assert "iscsi/zvol-1" not in by_rclone and "servarr/downloads/x.mkv" not in by_rclone
    for kept_path in (
        "prometheus-backup/prometheus-20260301T040000Z/tsdb.tar.gz",
        "forgejo/repos/a.git/HEAD",
        "nextcloud/data/postcard.jpg",
        "servarr/config.xml",
        "vaultwarden-backup/vaultwarden-20260323T001500Z/db.sqlite3",
        "audiblez.txt",
    ):
        assert kept_path in by_rclone


def test_every_exclusion_says_why(reference: Catalog) -> None:
    text = (OUT / "offsite/rclone-filter.txt").read_text()
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("- ")]
    assert len(rules) == len(offsite_exclusions(reference)) > 0
    for index in rules:
        assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 10
    assert lines[-1] == "+ **"
    assert "- /clickhouse/**" in lines and "# clickhouse: Regenerable logs" in text
    # An excluded service with no NFS folder is named, but gets no rule.
    assert "#   calibre (proxmox-lvm)" in text and "/calibre/" not in text


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("/clickhouse/**", ["clickhouse/a", "clickhouse/b/c"], ["x/clickhouse/a", "clickhousex/a"]),
        ("*.log", ["a.log", "x/y/b.log"], ["a.logs", "log"]),
        ("iocage/**", ["iocage/j", "x/iocage/j"], ["iocagex/j"]),
        ("post", ["post", "a/post"], ["postcard", "a/post/x"]),
        ("a?c", ["abc"], ["a/c", "abbc"]),
        ("cache/", ["cache/g", "a/cache/f", "cache/x/y"], ["cache", "cachex/g"]),
    ],
)
def test_glob_regex(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(pattern)
    assert all(re.search(regex, p) for p in matches), regex
    assert not any(re.search(regex, p) for p in misses), regex


def test_dataset_overrides_the_folder_of_an_excluded_service() -> None:
    catalog = load_catalog_text(
        MINIMAL_HEAD.replace(
            "services:\n",
            "  offsite: {target: sftp://nas/backup}\nservices:\n",
        )
        + textwrap.indent(
            "- {name: cams, namespace: cams, storage: nfs, churn: high, engine: files,\n"
            "   dataset: frigate/recordings, offsite: {excluded: Ephemeral recordings}}\n",
            "  ",
        ),
        "services.yaml",
    )
    rendered = render_plan(build_plan(catalog))
    assert b"- /frigate/recordings/**\n" in rendered["offsite/rclone-filter.txt"]
    assert b"^frigate/recordings/.*$\n" in rendered["offsite/incremental-exclude.txt"]


# --- snapshot exclusions -----------------------------------------------------------------


def test_lvm_env_file_is_valid_shell_and_excludes_high_churn_volumes(reference: Catalog) -> None:
    bash = require_tool("bash")
    env = OUT / "snapshots/lvm-pvc-snapshot.env"
    shown = subprocess.run(
        [
            bash,
            "-c",
            'set -eu; . "$1"; echo "$EXCLUDE_PVCS|$RETENTION_HOURS|$MIN_FREE_PERCENT"',
            "_",
            str(env),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    excluded = {
        f"{s.namespace}/{s.name}"
        for s in reference.services
        if s.storage == "proxmox-lvm" and s.snapshot_layer is None
    }
    assert excluded == {"monitoring/loki"}
    assert shown.stdout.strip() == "monitoring/loki|168|15"
    assert "# monitoring/loki: high-churn" in env.read_text()


def test_snapshot_false_excludes_a_low_churn_volume_with_the_catalog_as_reason() -> None:
    head = MINIMAL_HEAD.replace("services:\n", "  snapshots: {lvm: {}}\nservices:\n")
    body = textwrap.indent(
        "- {name: kuma, namespace: kuma, storage: proxmox-lvm, churn: low, engine: files,\n"
        "   snapshots: false}\n"
        "- {name: rss, namespace: rss, storage: proxmox-lvm, churn: low, engine: files}\n",
        "  ",
    )
    rendered = render_plan(build_plan(load_catalog_text(head + body, "services.yaml")))
    env = rendered["snapshots/lvm-pvc-snapshot.env"].decode()
    assert 'EXCLUDE_PVCS="kuma/kuma"\n' in env
    assert "# kuma/kuma: the catalog says snapshots: false" in env
    doc = rendered["docs/snapshots.md"].decode()
    assert "| `kuma/kuma` | kuma |" in doc
    assert "Services on this layer: rss." in doc


def test_snapshot_doc_lists_the_zfs_tasks(reference: Catalog) -> None:
    doc = (OUT / "docs/snapshots.md").read_text()
    for task in reference.settings.zfs_snapshots:
        row = f"| `{task.pool}` | `{task.schedule.cron}` |"
        assert row in doc
    # TrueNAS runs the task by cron in Europe/London: the fall-back hour makes one gap 13h.
    assert "| `main` | `0 0,12 * * *` | 13h | `auto-12h-%Y-%m-%d_%H-%M` | 1d |" in doc


def _schedule_table(text: str) -> list[dict[str, str]]:
    lines = tables(text.split("## Schedules and DST", 1)[1])[0]
    header = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    return [
        dict(zip(header, (c.strip() for c in line.strip().strip("|").split(" | ")), strict=True))
        for line in lines[1:]
    ]


def test_schedule_table_names_the_zone_each_runtime_reads() -> None:
    """Each cron as the output gives it, with its runtime's zone: the CronJobs' in the
    catalog's zone, VolSync's and CNPG's in the controllers' (UTC)."""
    rows = _schedule_table((OUT / "docs/protection-matrix.md").read_text())
    by_layer: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        by_layer.setdefault(row["layer"], set()).add((row["schedule"].split("`")[1], row["zone"]))
    volsync = {
        (re.search(r"VOLSYNC_SCHEDULE: (.+)", p.read_text()).group(1), "Etc/UTC")  # type: ignore[union-attr]
        for p in (OUT / "kubernetes/apps").glob("*/*/volsync.yaml")
    }
    assert by_layer["VolSync Kopia (NFS)"] == volsync
    cnpg = {
        (re.search(r"schedule: (.+)", p.read_text()).group(1), "Etc/UTC")  # type: ignore[union-attr]
        for p in (OUT / "kubernetes/cnpg").glob("*/*/scheduledbackup.yaml")
    }
    assert by_layer["CNPG base backup"] == cnpg
    jobs = {
        (re.search(r'schedule += "(.+)"', p.read_text()).group(1), "Europe/London")  # type: ignore[union-attr]
        for p in (OUT / "terraform/stacks").glob("*/backup.tf")
    }
    assert by_layer["application backup"] == jobs
    assert {row["zone"] for row in rows if row["run by"].startswith("cron on")} == {"Europe/London"}


def test_schedule_table_says_what_dst_does() -> None:
    text = MINIMAL_HEAD.replace("Etc/UTC", "America/New_York") + textwrap.indent(
        textwrap.dedent(
            """\
            - {name: a, namespace: a, storage: local-disk, churn: low, engine: etcd,
               cadence: "30 2 * * *", drill: false}
            - {name: b, namespace: b, storage: local-disk, churn: low, engine: etcd,
               cadence: "30 1 * * *", drill: false}
            - {name: c, namespace: c, storage: local-disk, churn: low, engine: etcd,
               cadence: "30 3 * * *", drill: false}
            """
        ),
        "  ",
    )
    files = render_plan(build_plan(load_catalog_text(text, "services.yaml")))
    rows = {
        r["services"]: r["what DST does"]
        for r in _schedule_table(files["docs/protection-matrix.md"].decode())
    }
    assert rows["a"].startswith("02:30 is skipped by the spring-forward transition")
    assert rows["b"].startswith("01:30 is repeated by the fall-back transition: it runs twice")
    assert rows["c"] == "no run falls in a DST transition of America/New_York"
