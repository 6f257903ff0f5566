"""Synthetic service catalogs of any size, shaped like the reference ``services.yaml``.

:func:`synthetic_catalog` returns catalog text whose services cycle through the kinds the
reference catalog uses (database dumps on iSCSI, a files dump on NFS, VolSync apps on
local-hostpath, CloudNativePG clusters, plain NFS and Proxmox LVM volumes), each with a
unique name and namespace, under settings that enable every layer (Garage and R2 object
stores, the offsite sync, ZFS and LVM snapshots). It loads and lints without errors.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["KINDS", "SETTINGS", "synthetic_catalog"]

SETTINGS = """\
version: homeops/v1

settings:
  timezone: Europe/London
  nfs: {server: 10.0.10.15, backup_root: /mnt/main}
  pushgateway: http://prometheus-pushgateway.monitoring.svc.cluster.local:9091
  object_stores:
    garage:
      provider: garage
      endpoint: http://garage.garage.svc.cluster.local:3900
      region: garage
      bucket: cnpg-backups
      credentials_key: garage-cnpg
    r2:
      provider: r2
      endpoint: https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com
      region: auto
      bucket: volsync
  offsite:
    target: sftp://192.168.1.13/Backup/truenas
    incremental: 6h
    full_sync: "0 9 * * 0"
    exclude:
      - {pattern: "iocage/**", reason: Legacy FreeBSD jails}
      - {pattern: "*.log", reason: Log files are regenerable}
  garage: {s3_region: garage}
  snapshots:
    zfs:
      - {pool: main, naming: auto-12h-%Y-%m-%d_%H-%M, cadence: "0 0,12 * * *", retention: 24h}
      - {pool: main, naming: auto-%Y-%m-%d_%H-%M, cadence: "0 0 * * *", retention: 3w}
      - {pool: ssd, naming: auto-%Y-%m-%d_%H-%M, cadence: "0 0 * * *", retention: 3w}
    lvm: {cadence: "0 0,12 * * *", retention: 7d, min_free_percent: 15}
  backup_disk:
    selector: 'instance="truenas:9100",mountpoint="/mnt/main"'
    min_free_percent: 10
  alerts:
    namespace: monitoring
    rule_labels: {release: kube-prometheus-stack}

services:
"""


def _postgresql(name: str) -> str:
    return f"""\
    storage: iscsi
    churn: high
    engine: postgresql
    criticality: high
    postgresql:
      host: {name}-rw.{name}.svc.cluster.local
      password: {{name: {name}-superuser, key: password}}
      databases: [app, auth, metrics]
    cnpg: {{cluster: {name}, object_store: garage}}
"""


def _mysql(name: str) -> str:
    return f"""\
    storage: iscsi
    churn: high
    engine: mysql
    mysql:
      host: {name}-primary.{name}.svc.cluster.local
      password: {{name: {name}-root, key: password}}
      databases: [app, wiki]
"""


def _sqlite(name: str) -> str:
    return f"""\
    storage: iscsi
    churn: low
    engine: sqlite
    criticality: critical
    cadence: 6h
    retention: 30d
    integrity: hourly
    sqlite:
      claim: {name}-data
      database: /data/db.sqlite3
      extra_paths: [/data/attachments, /data/config.json]
"""


def _redis(name: str) -> str:
    return f"""\
    storage: iscsi
    churn: low
    engine: redis
    redis: {{host: {name}-master.{name}.svc.cluster.local, claim: {name}-data}}
"""


def _vault(name: str) -> str:
    return f"""\
    storage: iscsi
    churn: low
    engine: vault
    criticality: critical
    vault:
      address: http://{name}-active.{name}.svc.cluster.local:8200
      token: {{name: {name}-token, key: token}}
"""


def _files_dump(name: str) -> str:
    return f"""\
    storage: nfs
    churn: medium
    engine: files
    methods: [dump]
    files: {{claim: {name}-data, paths: [/data/config, /data/db]}}
"""


def _volsync(name: str) -> str:
    return """\
    storage: local-hostpath
    churn: medium
    engine: files
    volsync: {capacity: 5Gi}
"""


def _cnpg(name: str) -> str:
    return f"""\
    storage: local-hostpath
    churn: high
    engine: postgresql
    criticality: high
    offsite: {{excluded: The WAL archive is in the in-cluster Garage}}
    cnpg: {{cluster: {name}, object_store: garage}}
"""


def _nfs(name: str) -> str:
    return """\
    storage: nfs
    churn: low
    engine: files
"""


def _lvm(name: str) -> str:
    return """\
    storage: proxmox-lvm
    churn: low
    engine: files
    offsite: {excluded: LVM volume on the PVE host; local thin snapshots only}
"""


#: Name prefix and body of each kind of service, in the order they repeat.
KINDS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("pg", _postgresql),
    ("mysql", _mysql),
    ("sqlite", _sqlite),
    ("redis", _redis),
    ("vault", _vault),
    ("files", _files_dump),
    ("volsync", _volsync),
    ("cnpg", _cnpg),
    ("nfs", _nfs),
    ("lvm", _lvm),
)


def _service(index: int) -> str:
    prefix, body = KINDS[index % len(KINDS)]
    name = f"{prefix}-{index:05d}"
    return f"  - name: {name}\n    namespace: ns-{index:05d}\n{body(name)}"


def synthetic_catalog(count: int) -> str:
    """Catalog text with ``count`` services cycling through :data:`KINDS`."""
    return SETTINGS + "".join(_service(index) for index in range(count))
