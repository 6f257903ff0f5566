"""Policy resolution: what the catalog layer derives when a service does not say."""

from __future__ import annotations

import textwrap

import pytest
from conftest import MINIMAL_HEAD

from homeops_gen import load_catalog_text
from homeops_gen.catalog.model import Service

BLOCKS = {
    "postgresql": "postgresql: {host: pg.db.svc}",
    "mysql": "mysql: {host: mysql.db.svc}",
    "sqlite": "sqlite: {claim: data, database: /data/app.db}",
    "etcd": "",
    "vault": "vault: {address: http://vault:8200, token: {name: vault-token, key: token}}",
    "redis": "redis: {host: redis.db.svc, claim: redis-data}",
    "dragonfly": "dragonfly: {host: dragonfly.db.svc, claim: dragonfly-data}",
    "prometheus": "prometheus: {url: http://prometheus:9090, claim: prometheus-data}",
    "files": "",
}


def one_service(fields: str, head: str = MINIMAL_HEAD) -> Service:
    item = "- name: app\n  namespace: app\n" + textwrap.indent(textwrap.dedent(fields), "  ")
    body = textwrap.indent(item, "  ")
    return load_catalog_text(head + body, "services.yaml").service("app")


@pytest.mark.parametrize(
    ("storage", "engine", "extra", "methods"),
    [
        ("iscsi", "postgresql", "", ("dump",)),
        ("iscsi", "mysql", "", ("dump",)),
        ("iscsi", "sqlite", "", ("dump",)),
        ("local-disk", "etcd", "", ("dump",)),
        ("iscsi", "vault", "", ("dump",)),
        ("iscsi", "redis", "", ("dump",)),
        ("nfs", "prometheus", "", ("dump",)),
        ("nfs", "files", "", ()),
        ("proxmox-lvm", "files", "", ()),
        ("local-hostpath", "files", "volsync: {capacity: 1Gi}", ("volsync",)),
        ("local-hostpath", "dragonfly", "volsync: {capacity: 1Gi}", ("volsync",)),
        ("local-hostpath", "postgresql", "cnpg: {cluster: pg, object_store: garage}", ("cnpg",)),
        ("iscsi", "postgresql", "cnpg: {cluster: pg, object_store: garage}", ("dump", "cnpg")),
        ("nfs", "files", "volsync: {capacity: 1Gi}", ("volsync",)),
    ],
)
def test_methods_follow_storage_and_engine(
    storage: str, engine: str, extra: str, methods: tuple[str, ...]
) -> None:
    head = MINIMAL_HEAD.replace(
        "services:\n",
        "  object_stores:\n    garage: {provider: garage, endpoint: http://garage:3900, "
        "region: garage, bucket: cnpg}\nservices:\n",
    )
    fields = f"storage: {storage}\nchurn: low\nengine: {engine}\n{BLOCKS[engine]}\n{extra}\n"
    service = one_service(fields, head)
    assert service.methods == methods
    assert service.origins["methods"].kind == "policy"


def test_explicit_methods_win_and_are_marked_as_catalog() -> None:
    service = one_service(
        "storage: iscsi\nchurn: low\nengine: sqlite\nmethods: []\n"
        "sqlite: {claim: data, database: /data/app.db}\n"
    )
    assert service.methods == ()
    assert service.origins["methods"].loc == ("services", 0, "methods")


@pytest.mark.parametrize(
    ("churn", "gap_hours", "retention"),
    [("low", 7 * 24, "30d"), ("medium", 24, "14d"), ("high", 24, "14d")],
)
def test_cadence_and_retention_default_by_churn(churn: str, gap_hours: int, retention: str) -> None:
    service = one_service(f"storage: local-disk\nchurn: {churn}\nengine: etcd\n")
    assert service.schedule.max_gap().total_seconds() == gap_hours * 3600
    assert str(service.retention) == retention
    assert service.origins["retention"].kind == "default"


def test_settings_defaults_override_the_built_in_ones() -> None:
    head = MINIMAL_HEAD.replace(
        "services:\n",
        "  defaults:\n    window_start_hour: 22\n    window_hours: 2\n    weekly_day: friday\n"
        "    churn:\n      low: {cadence: weekly, retention: 60d}\nservices:\n",
    )
    service = one_service("storage: local-disk\nchurn: low\nengine: etcd\n", head)
    _minute, hour, dom, month, dow = service.schedule.cron.split()
    assert hour in {"22", "23"} and dow == "5" and (dom, month) == ("*", "*")
    assert str(service.retention) == "60d"
    assert service.origins["retention"].loc == ("settings", "defaults", "churn", "low", "retention")


@pytest.mark.parametrize(
    ("storage", "churn", "snapshots", "layer"),
    [
        ("nfs", "high", None, "zfs"),
        ("iscsi", "low", None, "zfs"),
        ("proxmox-lvm", "low", None, "lvm"),
        ("proxmox-lvm", "high", None, None),  # copy-on-write amplification
        ("proxmox-lvm", "high", "true", "lvm"),
        ("nfs", "low", "false", None),
        ("local-hostpath", "low", None, None),
        ("local-disk", "low", None, None),
    ],
)
def test_snapshot_layer(storage: str, churn: str, snapshots: str | None, layer: str | None) -> None:
    extra = "volsync: {capacity: 1Gi}\n" if storage == "local-hostpath" else ""
    flag = f"snapshots: {snapshots}\n" if snapshots else ""
    service = one_service(f"storage: {storage}\nchurn: {churn}\nengine: files\n{extra}{flag}")
    assert service.snapshot_layer == layer


def test_offsite_and_backup_path() -> None:
    service = one_service(
        "storage: nfs\nchurn: low\nengine: files\noffsite: {excluded: Regenerable}\n"
    )
    assert (service.offsite.included, service.offsite.reason) == (False, "Regenerable")
    dumped = one_service("storage: local-disk\nchurn: low\nengine: etcd\n")
    assert dumped.offsite.included and dumped.offsite.reason is None
    assert dumped.backup_path == "/mnt/tank/app-backup"
    custom = one_service("storage: local-disk\nchurn: low\nengine: etcd\nbackup_path: /b/etcd\n")
    assert custom.backup_path == "/b/etcd"


def test_copies_retention_is_allowed_with_any_cadence() -> None:
    service = one_service(
        "storage: nfs\nchurn: high\nengine: prometheus\ncadence: monthly-first-sunday\n"
        "retention: 2 copies\nprometheus: {url: http://prometheus:9090, claim: data}\n"
    )
    assert service.retention.copies == 2
    assert service.schedule.max_gap().days == 35


def test_engine_block_defaults_are_filled_in() -> None:
    service = one_service("storage: local-disk\nchurn: low\nengine: etcd\n")
    assert service.connection is not None
    assert service.connection.model_dump() == {
        "endpoints": "https://127.0.0.1:2379",
        "cert_dir": "/etc/kubernetes/pki/etcd",
        "tools_image": "registry.k8s.io/etcd:3.5.17-0",
    }


def test_services_are_sorted_by_name() -> None:
    text = MINIMAL_HEAD + "".join(
        f"  - {{name: {name}, namespace: x, storage: nfs, churn: low, engine: files}}\n"
        for name in ("zeta", "alpha", "mid")
    )
    catalog = load_catalog_text(text)
    assert [s.name for s in catalog.services] == ["alpha", "mid", "zeta"]
    assert [s.index for s in catalog.services] == [1, 2, 0]
