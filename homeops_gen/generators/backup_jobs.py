"""Terraform stacks of application-level backup CronJobs (``out/terraform/``).

One stack per service with the ``dump`` method, ``stacks/<service>/``: ``backup.tf`` with the
NFS backup volume (a generated module, or the catalog's own) and a ``kubernetes_cron_job_v1``
running ``backup.sh``, the engine's recipe from ``templates/scripts/``, written beside it as a
plain script; SQLite services with an ``integrity`` cadence get a second CronJob running
``integrity-check.sh``, which pushes ``sqlite_integrity_ok``. The stack's ConfigMap carries its
scripts (read with ``file()``) and ``lib.sh``, the helpers every stack shares, written once in
the ``modules/backup-shell`` module; the containers run them from where it is mounted.

Every catalog value reaches the job as an environment variable (HCL-escaped), never as
shell text, so no value is ever parsed by the shell; the scripts quote every expansion.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.catalog.policy import JOB_MOUNTS
from homeops_gen.catalog.spec import (
    EtcdSpec,
    FilesSpec,
    MysqlSpec,
    PostgresqlSpec,
    PrometheusSpec,
    RedisSpec,
    SecretRef,
    SqliteSpec,
    VaultSpec,
)
from homeops_gen.plan import OutputFile, TemplateRender
from homeops_gen.registry import register_generator
from homeops_gen.schedule import WEEKDAYS, Schedule

__all__ = [
    "BACKUP_METRICS_JOB",
    "BACKUP_MOUNT",
    "DRILL_METRICS_JOB",
    "INTEGRITY_METRICS_JOB",
    "SCRIPTS_MOUNT",
    "CronJob",
    "EnvVar",
    "backup_volume_name",
    "cron_jobs",
    "drill_cronjob_name",
    "generate_backup_stacks",
    "recipe",
    "scripts_config_map",
    "shell_library",
]

#: Where every backup job mounts its NFS backup volume and its stack's scripts ConfigMap.
BACKUP_MOUNT = JOB_MOUNTS["backup"]
SCRIPTS_MOUNT = JOB_MOUNTS["scripts"]
#: The module that holds the shell helpers every stack's scripts share.
SHELL_MODULE = "terraform/modules/backup-shell"
#: The Pushgateway groups the scripts push to (see templates/scripts/).
BACKUP_METRICS_JOB = "homeops_backup"
INTEGRITY_METRICS_JOB = "homeops_integrity"
DRILL_METRICS_JOB = "homeops_drill"
#: Where a drill's pod keeps its scratch copy (an emptyDir of its own).
SCRATCH_MOUNT = "/scratch"
#: The engines whose scratch server refuses to run as root: the drill runs as the image's
#: own server user (999 in the official postgres and mariadb images).
#: The drills whose checks need a tool the backup's image lacks: their own image and shell.
#: Prometheus's image carries promtool and a busybox /bin/sh.
DRILL_IMAGES: dict[str, tuple[str, str]] = {
    "prometheus": ("docker.io/prom/prometheus:v3.1.0", "/bin/sh"),
}
DRILL_USERS: dict[str, dict[str, int | bool]] = {
    "postgresql": {"run_as_user": 999, "run_as_group": 999, "run_as_non_root": True},
    "mysql": {"run_as_user": 999, "run_as_group": 999, "run_as_non_root": True},
}


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    secret: SecretRef | None = None


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class Volume:
    name: str
    #: Exactly one of: a claim name, an HCL expression giving a claim name, a host path, or
    #: an empty folder the pod's containers share.
    claim: str | None = None
    claim_expression: str | None = None
    host_path: str | None = None
    read_only: bool = False
    empty_dir: bool = False


@dataclass(frozen=True)
class InitContainer:
    """A program run before the script, from an image of its own (no shell needed)."""

    name: str
    image: str
    command: tuple[str, ...]
    env: tuple[EnvVar, ...]
    mounts: tuple[Mount, ...]


@dataclass(frozen=True)
class CronJob:
    """One ``kubernetes_cron_job_v1`` and the script its container runs."""

    resource: str
    name: str
    component: str
    title: str
    #: The template of the script, and the file it is written to beside ``backup.tf``.
    script: str
    file: str
    schedule: Schedule
    env: tuple[EnvVar, ...]
    mounts: tuple[Mount, ...]
    volumes: tuple[Volume, ...]
    #: Run in order before the script; each must succeed.
    init_containers: tuple[InitContainer, ...] = ()
    #: The pod uses the node's network (etcd listening on the node's loopback).
    host_network: bool = False
    #: The pod must run beside the app's pods (it mounts their ReadWriteOnce claim).
    beside_app: bool = False
    #: The Pushgateway job (group) the script pushes its metrics to.
    metrics_job: str = BACKUP_METRICS_JOB
    #: The pod's security context, when it is not the service's job's.
    security_context: Mapping[str, int | bool] | None = None
    #: The container's image and shell, when they are not the service's job's (a drill
    #: that needs a tool the backup image lacks).
    image: str | None = None
    shell: str | None = None
    #: Arguments after the script (the etcd drill's phase).
    args: tuple[str, ...] = ()


def _connection_env(service: Service) -> tuple[list[EnvVar], list[Mount], list[Volume]]:
    """Environment, mounts and volumes that connect the recipe to its engine."""
    c = service.connection
    if isinstance(c, PostgresqlSpec):
        env = [
            EnvVar("PGHOST", c.host),
            EnvVar("PGPORT", str(c.port)),
            EnvVar("PGUSER", c.user),
            EnvVar("PG_DATABASES", " ".join(c.databases)),
        ]
        return env + _secret("PGPASSWORD", c.password), [], []
    if isinstance(c, MysqlSpec):
        env = [
            EnvVar("MYSQL_HOST", c.host),
            EnvVar("MYSQL_PORT", str(c.port)),
            EnvVar("MYSQL_USER", c.user),
        ]
        return env + _secret("MYSQL_PWD", c.password), [], []
    if isinstance(c, SqliteSpec):
        env = [
            EnvVar("SQLITE_ROOT", c.mount_path),
            EnvVar("SQLITE_DATABASE", c.database),
            EnvVar("SQLITE_EXTRA_PATHS", " ".join(c.extra_paths)),
        ]
        return env, [Mount("data", c.mount_path)], [Volume("data", claim=c.claim)]
    if isinstance(c, EtcdSpec):
        return (
            [EnvVar("ETCD_SNAPSHOT", f"{ETCD_SNAPSHOT_DIR}/snapshot.db")],
            [Mount("snapshot", ETCD_SNAPSHOT_DIR, read_only=True)],
            [Volume("etcd-certs", host_path=c.cert_dir), Volume("snapshot", empty_dir=True)],
        )
    if isinstance(c, VaultSpec):
        return [EnvVar("VAULT_ADDR", c.address), *_secret("VAULT_TOKEN", c.token)], [], []
    if isinstance(c, RedisSpec):
        env = [
            EnvVar("REDIS_HOST", c.host),
            EnvVar("REDIS_PORT", str(c.port)),
            EnvVar("REDIS_DATA_DIR", c.data_dir),
            EnvVar("REDIS_RDB_FILE", c.rdb_file),
            *_secret("REDISCLI_AUTH", c.password),
        ]
        return (
            env,
            [Mount("data", c.data_dir, read_only=True)],
            [Volume("data", claim=c.claim, read_only=True)],
        )
    if isinstance(c, PrometheusSpec):
        env = [EnvVar("PROMETHEUS_URL", c.url), EnvVar("PROMETHEUS_DATA_DIR", c.data_dir)]
        return env, [Mount("data", c.data_dir)], [Volume("data", claim=c.claim)]
    if isinstance(c, FilesSpec):
        # "./x" so that no path can be read as a tar option; the mount itself is ".".
        root = c.mount_path.rstrip("/")
        relative = ["./" + p.removeprefix(root + "/") if p != root else "." for p in c.paths]
        env = [EnvVar("FILES_ROOT", c.mount_path), EnvVar("FILES_PATHS", " ".join(relative))]
        return (
            env,
            [Mount("data", c.mount_path, read_only=True)],
            [Volume("data", claim=c.claim, read_only=True)],
        )
    raise ValueError(f"{service.name}: no backup recipe for engine {service.engine!r}")


#: Where etcd's init containers leave the snapshot for the script.
ETCD_SNAPSHOT_DIR = "/snapshot"


def etcdctl_env(spec: EtcdSpec) -> tuple[EnvVar, ...]:
    """etcdctl's own variables for its flags: the endpoints and kubeadm's client certificate."""
    return (
        EnvVar("ETCDCTL_API", "3"),
        # Bounds etcdctl's connection attempt; a snapshot that still hangs (etcdctl 3.4
        # retries an unreachable endpoint for ever) is ended by the Job's deadline.
        EnvVar("ETCDCTL_DIAL_TIMEOUT", "30s"),
        EnvVar("ETCDCTL_ENDPOINTS", spec.endpoints),
        EnvVar("ETCDCTL_CACERT", f"{spec.cert_dir}/ca.crt"),
        EnvVar("ETCDCTL_CERT", f"{spec.cert_dir}/healthcheck-client.crt"),
        EnvVar("ETCDCTL_KEY", f"{spec.cert_dir}/healthcheck-client.key"),
    )


def _init_containers(service: Service) -> tuple[InitContainer, ...]:
    """etcd: the tools image takes the snapshot, then reads it through (its pages and revision)."""
    c = service.connection
    if not isinstance(c, EtcdSpec):
        return ()
    snapshot = f"{ETCD_SNAPSHOT_DIR}/snapshot.db"
    certs = Mount("etcd-certs", c.cert_dir, read_only=True)
    work = Mount("snapshot", ETCD_SNAPSHOT_DIR)
    status = ("etcdctl", "snapshot", "status", snapshot, "--write-out=table")
    return (
        InitContainer(
            "snapshot",
            c.tools_image,
            ("etcdctl", "snapshot", "save", snapshot),
            etcdctl_env(c),
            (certs, work),
        ),
        InitContainer("check", c.tools_image, status, (EnvVar("ETCDCTL_API", "3"),), (work,)),
    )


def _secret(name: str, ref: SecretRef | None) -> list[EnvVar]:
    return [EnvVar(name, secret=ref)] if ref is not None else []


def _retention_env(service: Service) -> EnvVar:
    retention = service.retention
    if retention.copies is not None:
        return EnvVar("RETENTION_COPIES", str(retention.copies))
    assert retention.period is not None
    return EnvVar("RETENTION_MINUTES", str(int(retention.period.total_seconds()) // 60))


def recipe(service: Service) -> str:
    """The engine's recipe name in ``templates/scripts/`` (Dragonfly speaks Redis)."""
    return "redis" if service.engine == "dragonfly" else service.engine


def scripts_config_map(service: Service) -> str:
    """The ConfigMap that carries the scripts of ``service``'s stack and the shared lib.sh."""
    return f"{service.name}-backup-scripts"


def drill_cronjob_name(service: Service) -> str:
    """The restore drill's CronJob (and, for a drill of cluster objects, its account, Role
    and ConfigMap), whichever backup it restores."""
    return f"{service.name}-restore-drill"


def backup_volume_name(service: Service) -> str:
    """The ``name`` of the stack's NFS backup volume module: its PersistentVolumeClaim."""
    return f"{service.name}-backup"


#: The CronJobs of the services of the catalog last asked about: the stacks, the runbooks
#: and every restore drill's description ask, in one run, for one catalog.
_LAST_JOBS: tuple[Catalog, dict[str, tuple[Service, tuple[CronJob, ...]]]] | None = None


def cron_jobs(catalog: Catalog, service: Service) -> list[CronJob]:
    """The CronJobs of ``service``'s stack: its backup, and its integrity check if any."""
    global _LAST_JOBS
    if _LAST_JOBS is None or _LAST_JOBS[0] is not catalog:
        _LAST_JOBS = (catalog, {})
    known = _LAST_JOBS[1].get(service.name)
    if known is None or known[0] is not service:
        known = _LAST_JOBS[1][service.name] = (service, tuple(_cron_jobs(catalog, service)))
    return list(known[1])


def _cron_jobs(catalog: Catalog, service: Service) -> list[CronJob]:
    common = [
        EnvVar("SERVICE", service.name),
        EnvVar("TZ", catalog.settings.container_timezone),
        EnvVar("PUSHGATEWAY_URL", catalog.settings.pushgateway),
    ]
    env, mounts, volumes = _connection_env(service)
    minimum = EnvVar("MIN_SIZE_BYTES", str(service.min_size_bytes))
    backup_volume = Volume(
        "backup",
        claim_expression=f"module.backup_volume.{catalog.settings.nfs_volume_module.claim_output}",
    )
    jobs = [
        CronJob(
            resource="backup",
            name=f"{service.name}-backup",
            component="backup",
            title=f"{service.engine} backup",
            script=f"scripts/{recipe(service)}.sh.j2",
            file="backup.sh",
            schedule=service.schedule,
            env=(
                *common,
                EnvVar("BACKUP_DIR", BACKUP_MOUNT),
                _retention_env(service),
                minimum,
                *env,
            ),
            mounts=(Mount("backup", BACKUP_MOUNT), *mounts),
            volumes=(backup_volume, *volumes),
            init_containers=_init_containers(service),
            host_network=_on_loopback(service),
            beside_app=service.job.beside_app,
        )
    ]
    if service.integrity is not None and isinstance(service.connection, SqliteSpec):
        jobs.append(
            CronJob(
                resource="integrity_check",
                name=f"{service.name}-integrity-check",
                component="integrity-check",
                title="SQLite integrity check",
                script="scripts/sqlite-integrity.sh.j2",
                file="integrity-check.sh",
                schedule=service.integrity,
                env=(*common, *(e for e in env if e.name == "SQLITE_DATABASE")),
                mounts=tuple(mounts),
                volumes=tuple(volumes),
                metrics_job=INTEGRITY_METRICS_JOB,
                beside_app=service.job.beside_app,
            )
        )
    if service.drill is not None and service.drill.layer == "dump":
        drill_image, drill_shell = DRILL_IMAGES.get(service.engine, (None, None))
        drill_env = (
            *common,
            EnvVar("BACKUP_DIR", BACKUP_MOUNT),
            EnvVar("SCRATCH_DIR", SCRATCH_MOUNT),
            minimum,
            *_drill_env(service),
        )
        drill_mounts = (
            Mount("backup", BACKUP_MOUNT, read_only=True),
            Mount("scratch", SCRATCH_MOUNT),
        )
        jobs.append(
            CronJob(
                resource="restore_drill",
                name=drill_cronjob_name(service),
                component="restore-drill",
                title=f"{service.engine} restore drill",
                script=f"scripts/drill/{recipe(service)}.sh.j2",
                file="drill.sh",
                schedule=service.drill.schedule,
                env=drill_env,
                # The backups, read-only, and a scratch folder: never the live service.
                mounts=drill_mounts,
                volumes=(backup_volume, Volume("scratch", empty_dir=True)),
                init_containers=_drill_init_containers(service, drill_env, drill_mounts),
                args=("finish",) if service.engine == "etcd" else (),
                metrics_job=DRILL_METRICS_JOB,
                security_context=(
                    {**service.job.security_context, **DRILL_USERS[service.engine]}
                    if service.engine in DRILL_USERS
                    else None
                ),
                image=drill_image,
                shell=drill_shell,
            )
        )
    return jobs


def _drill_init_containers(
    service: Service, env: tuple[EnvVar, ...], mounts: tuple[Mount, ...]
) -> tuple[InitContainer, ...]:
    """etcd: the script's prepare step, then the tools image's etcdutl (it has no shell)
    checks the snapshot and restores it into a scratch data folder; the container runs the
    script's finish step."""
    c = service.connection
    if not isinstance(c, EtcdSpec):
        return ()
    work = f"{SCRATCH_MOUNT}/{service.name}-drill"
    scratch = (Mount("scratch", SCRATCH_MOUNT),)
    scripts = Mount("scripts", SCRIPTS_MOUNT, read_only=True)
    shell = service.job.shell
    return (
        InitContainer(
            "prepare",
            service.job.image,
            (shell, f"{SCRIPTS_MOUNT}/drill.sh", "prepare"),
            env,
            (*mounts, scripts),
        ),
        InitContainer(
            "status",
            c.tools_image,
            ("etcdutl", "snapshot", "status", f"{work}/snapshot.db", "--write-out=table"),
            (),
            scratch,
        ),
        InitContainer(
            "restore",
            c.tools_image,
            (
                "etcdutl",
                "snapshot",
                "restore",
                f"{work}/snapshot.db",
                f"--data-dir={work}/restored",
            ),
            (),
            scratch,
        ),
    )


def _drill_env(service: Service) -> list[EnvVar]:
    """What a drill needs to know of the backup it restores (nothing of the live service)."""
    c = service.connection
    if isinstance(c, PostgresqlSpec):
        return [EnvVar("PG_DATABASES", " ".join(c.databases))]
    if isinstance(c, MysqlSpec):
        return [EnvVar("MYSQL_DATABASES", " ".join(c.databases))]
    if isinstance(c, SqliteSpec):
        return [EnvVar("SQLITE_NAME", c.database.rsplit("/", 1)[-1])]
    if isinstance(c, RedisSpec):
        return [EnvVar("REDIS_RDB_FILE", c.rdb_file)]
    return []


def _on_loopback(service: Service) -> bool:
    """Whether the engine is reached on the node's own loopback (etcd's 127.0.0.1:2379)."""
    c = service.connection
    if not isinstance(c, EtcdSpec):
        return False
    hosts = {urllib.parse.urlsplit(e).hostname for e in c.endpoints.split(",")}
    return bool(hosts & {"127.0.0.1", "localhost", "::1"})


def _job_context(catalog: Catalog, service: Service, job: CronJob) -> dict[str, Any]:
    schedule = job.schedule
    return {
        "job": job,
        "title": job.title,
        "metrics_job": job.metrics_job,
        "first_weekday": schedule.first_weekday,
        "weekday_name": (
            WEEKDAYS[schedule.first_weekday].capitalize()
            if schedule.first_weekday is not None
            else ""
        ),
        "starting_deadline_seconds": service.job.starting_deadline(schedule),
        "active_deadline_seconds": service.job.active_deadline(schedule),
        "timezone": catalog.settings.timezone,
        # The service's restore drill (its checks), for the drill's script.
        "drill": service.drill,
    }


def shell_library() -> TemplateRender:
    """lib.sh, the helpers every backup and drill script sources."""
    return TemplateRender(
        "scripts/lib.sh.j2",
        {"backup_metrics_job": BACKUP_METRICS_JOB, "drill_metrics_job": DRILL_METRICS_JOB},
    )


@register_generator("backup-jobs", description="out/terraform: backup CronJobs per service")
def generate_backup_stacks(catalog: Catalog) -> Iterator[OutputFile]:
    services = [s for s in catalog.services if s.uses("dump")]
    module = catalog.settings.nfs_volume_module
    if services and module.generated:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            yield OutputFile(
                f"terraform/modules/nfs-backup-volume/{name}",
                TemplateRender(f"terraform/modules/nfs-backup-volume/{name}.j2"),
            )
    if services:
        yield OutputFile(f"{SHELL_MODULE}/lib.sh", shell_library())
        for name in ("outputs.tf", "versions.tf"):
            yield OutputFile(f"{SHELL_MODULE}/{name}", TemplateRender(f"{SHELL_MODULE}/{name}.j2"))
    for service in services:
        jobs = [_job_context(catalog, service, job) for job in cron_jobs(catalog, service)]
        context = {
            "service": service,
            "settings": catalog.settings,
            "module": module,
            "volume_name": backup_volume_name(service),
            "config_map": scripts_config_map(service),
            "scripts_mount": SCRIPTS_MOUNT,
            "jobs": jobs,
        }
        stack = f"terraform/stacks/{service.name}"
        yield OutputFile(
            f"{stack}/backup.tf",
            TemplateRender("terraform/backup.tf.j2", context),
            subject=service.name,
        )
        for item in jobs:
            job = item["job"]
            yield OutputFile(
                f"{stack}/{job.file}",
                TemplateRender(
                    job.script,
                    {**context, **item, "shell": job.shell or service.job.shell, "file": job.file},
                ),
                subject=service.name,
            )
        yield OutputFile(
            f"{stack}/versions.tf", TemplateRender("terraform/versions.tf.j2"), subject=service.name
        )
