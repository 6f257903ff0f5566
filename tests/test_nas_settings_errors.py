"""The NAS and host settings: each mistake is reported at its ``file:line:col`` and field.

Every case breaks one thing in an otherwise valid catalog with an offsite sync, a NAS API,
ZFS tasks and LVM snapshots; the expected position is found in the text itself (the line and
column of the value the problem is about), and the CLI exits 2 on it without a traceback and
without touching ``out/``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import run_module, snapshot_of

from homeops_gen import load_catalog_text
from homeops_gen.errors import CatalogError

SOURCE = "services.yaml"
BASE = textwrap.dedent(
    """\
    version: homeops/v1
    settings:
      timezone: America/Sao_Paulo
      nfs: {server: nas.lan, backup_root: /mnt/tank}
      pushgateway: http://pushgateway.monitoring.svc:9091
      host_pushgateway: http://pushgateway.lan:30091
      offsite:
        target: sftp://backup.lan:2222/volume1/nas
        full_sync_by: cloudsync
        cloudsync_credential: backup-nas
      truenas:
        api: wss://nas.lan/api/current
        api_key: {name: truenas-api-key, key: key}
      snapshots:
        zfs:
          - {pool: tank, naming: "auto-%Y-%m-%d_%H-%M", cadence: daily, retention: 2w}
        lvm: {cadence: "0 */6 * * *", retention: 3d, volume_group: pve, thin_pool: data}
    services:
      - name: wiki
        namespace: wiki
        storage: proxmox-lvm
        churn: low
        engine: files
    """
)


def test_the_base_catalog_is_valid_and_resolves_as_written() -> None:
    catalog = load_catalog_text(BASE, SOURCE)
    offsite = catalog.settings.offsite
    assert offsite is not None
    assert (offsite.dataset, offsite.mountpoint) == ("tank", "/mnt/tank")
    # No named remote: rclone's on-the-fly sftp backend, port included.
    assert offsite.destination == (
        ":sftp,host=backup.lan,port=2222,user=root,key_file=/root/.ssh/id_ed25519:/volume1/nas"
    )
    assert catalog.settings.truenas is not None
    assert catalog.settings.truenas.protocol == "jsonrpc"
    assert catalog.settings.host_pushgateway == "http://pushgateway.lan:30091"


def _position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``needle``."""
    before = text[: text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


CASES = [
    pytest.param(
        BASE.replace("    cloudsync_credential: backup-nas\n", ""),
        "offsite:",  # a missing field is reported at its mapping
        "settings.offsite.cloudsync_credential",
        "full_sync_by: cloudsync needs the TrueNAS cloud credential",
        id="cloudsync-without-credential",
    ),
    pytest.param(
        BASE.replace(
            "  truenas:\n    api: wss://nas.lan/api/current\n"
            "    api_key: {name: truenas-api-key, key: key}\n",
            "",
        ),
        "cloudsync\n",
        "settings.offsite.full_sync_by",
        "needs settings.truenas",
        id="cloudsync-without-truenas",
    ),
    pytest.param(
        BASE.replace("wss://nas.lan/api/current", "wss://nas.lan/websocket"),
        "wss://nas.lan/websocket",
        "settings.truenas.api",
        "is not the JSON-RPC endpoint",
        id="jsonrpc-path",
    ),
    pytest.param(
        BASE.replace("wss://nas.lan/api/current", "https://nas.lan/api/v1.0"),
        "https://nas.lan/api/v1.0",
        "settings.truenas.api",
        "is not the REST API",
        id="rest-path",
    ),
    pytest.param(
        BASE.replace("wss://nas.lan/api/current", "ws://nas.lan/api/current"),
        "ws://nas.lan/api/current",
        "settings.truenas.api",
        "revokes a key it receives that way",
        id="jsonrpc-without-tls",
    ),
    pytest.param(
        BASE.replace("wss://nas.lan/api/current", "wss://nas.lan/api/current?x=1"),
        "wss://nas.lan/api/current?x=1",
        "settings.truenas.api",
        "is not a ws, wss, http or https URL",
        id="api-query",
    ),
    pytest.param(
        BASE.replace("target: sftp://backup.lan:2222/volume1/nas", "target: s3://bucket.lan/x"),
        "s3://bucket.lan/x",
        "settings.offsite.target",
        "needs rclone_remote, a remote of the NAS's rclone.conf",
        id="s3-target-without-remote",
    ),
    pytest.param(
        BASE.replace("backup_root: /mnt/tank", "backup_root: /srv/backups"),
        "offsite:",
        "settings.offsite.dataset",
        "is not below /mnt, so the dataset to snapshot cannot be derived",
        id="dataset-not-derivable",
    ),
    pytest.param(
        BASE.replace("retention: 2w}", "retention: 2w, dataset: ssd/apps}"),
        "ssd/apps",
        "settings.snapshots.zfs[0].dataset",
        "is not in pool 'tank'",
        id="zfs-dataset-other-pool",
    ),
    pytest.param(
        BASE.replace("retention: 2w}", "retention: 2w, exclude: [ssd/x]}"),
        "ssd/x",
        "settings.snapshots.zfs[0].exclude[0]",
        "is not a child dataset of 'tank'",
        id="zfs-exclude-not-child",
    ),
    pytest.param(
        BASE.replace("retention: 2w}", "retention: 2w, recursive: false, exclude: [tank/x]}"),
        "exclude: [tank/x]",
        "settings.snapshots.zfs[0].exclude",
        "only a recursive task has child datasets to exclude",
        id="zfs-exclude-not-recursive",
    ),
    pytest.param(
        BASE.replace("thin_pool: data", "thin_pool: 'data;rm'"),
        "'data;rm'",
        "settings.snapshots.lvm.thin_pool",
        "is not an LVM name",
        id="lvm-name-injection",
    ),
    pytest.param(
        BASE.replace("    full_sync_by: cloudsync\n", "    full_sync_by: truenas\n"),
        "truenas\n",
        "settings.offsite.full_sync_by",
        "'script' or 'cloudsync'",
        id="full-sync-by-unknown",
    ),
    pytest.param(
        BASE.replace(
            "    cloudsync_credential: backup-nas\n",
            "    cloudsync_credential: backup-nas\n    snapshot_prefix: 'a b'\n",
        ),
        "'a b'",
        "settings.offsite.snapshot_prefix",
        "is not a snapshot name prefix",
        id="snapshot-prefix-space",
    ),
    pytest.param(
        BASE.replace(
            "    cloudsync_credential: backup-nas\n",
            "    cloudsync_credential: backup-nas\n    max_changes: 0\n",
        ),
        "0\n",
        "settings.offsite.max_changes",
        "greater than or equal to 1",
        id="max-changes-zero",
    ),
]


@pytest.mark.parametrize(("text", "needle", "field", "message"), CASES)
def test_each_mistake_is_reported_at_its_value(
    text: str, needle: str, field: str, message: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog_text(text, SOURCE)
    lines = list(caught.value.lines)
    line, column = _position(text, needle)
    matching = [entry for entry in lines if f": {field}: " in entry and message in entry]
    assert matching, lines
    assert matching[0].startswith(f"{SOURCE}:{line}:{column}: "), (matching[0], line, column)


def test_the_cli_exits_2_and_leaves_out_untouched(tmp_path: Path) -> None:
    (tmp_path / SOURCE).write_text(BASE)
    assert run_module(cwd=tmp_path).code == 0
    before = snapshot_of(tmp_path / "out")
    (tmp_path / SOURCE).write_text(BASE.replace("thin_pool: data", "thin_pool: 'data;rm'"))
    result = run_module(cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "settings.snapshots.lvm.thin_pool" in result.err
    assert snapshot_of(tmp_path / "out") == before
