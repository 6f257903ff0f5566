"""Restore runbooks (``out/docs/runbooks/``), one per service with a backup.

``restore-<service>.md`` gives the exact restore steps for each of the service's methods,
with the names, paths and secrets this catalog generated. For an application-level backup
it comes with ``restore-<service>/restore.sh`` (the engine's restore recipe from
``templates/scripts/restore/``) and ``restore-<service>/job.yaml``, a Job built from the
very CronJob the backup runs (:func:`homeops_gen.generators.backup_jobs.cron_jobs`): same
image, same environment and Secrets, same volumes. The runbook cannot name a path or a
Secret the backup does not use. A service with a restore drill gets a "Restore drill"
section: what the drill restores and checks, its schedule and alerts, the RTO it is held to,
and how to run it by hand from its CronJob.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.catalog.spec import EtcdSpec
from homeops_gen.diagrams import service_flowchart
from homeops_gen.generators.alerts import drill_group_name, rule_group, rule_groups
from homeops_gen.generators.backup_jobs import (
    BACKUP_METRICS_JOB,
    BACKUP_MOUNT,
    DRILL_METRICS_JOB,
    ETCD_SNAPSHOT_DIR,
    CronJob,
    EnvVar,
    backup_volume_name,
    cron_jobs,
    recipe,
)
from homeops_gen.generators.cnpg import object_store_name
from homeops_gen.generators.drills import drill_folder
from homeops_gen.plan import OutputFile, TemplateRender, YamlDocuments
from homeops_gen.protection import DUMP_TITLES, protection_layers, restore_drill
from homeops_gen.registry import register_generator
from homeops_gen.schedule import RUN_ALLOWANCE, format_duration

__all__ = [
    "ETCD_RESTORE_ROOT",
    "RESTORE_SCRIPT_MOUNT",
    "alerts_by_service",
    "generate_runbooks",
    "restore_env",
    "restore_job",
    "runbook_path",
]

#: Where the restore Job mounts the ConfigMap holding restore.sh.
RESTORE_SCRIPT_MOUNT = "/restore"
#: The control-plane host folder etcd snapshots are restored below.
ETCD_RESTORE_ROOT = "/var/lib/etcd-restore"
#: Backup-job variables a restore has no use for.
_BACKUP_ONLY = frozenset({"PUSHGATEWAY_URL", "RETENTION_COPIES", "RETENTION_MINUTES"})
#: Knobs of the restore recipes, empty by default (see templates/scripts/restore/).
_RESTORE_KNOBS: dict[str, tuple[tuple[str, str], ...]] = {
    "postgresql": (("RESTORE_DATABASE", ""),),
    "vault": (("VAULT_RESTORE_FORCE", "0"),),
    "etcd": (("ETCD_RESTORE_ROOT", ETCD_RESTORE_ROOT),),
}
_LABELS = "app.kubernetes.io"


def restore_deadline(service: Service) -> int:
    """Seconds a restore Job may run: the backup job's own deadline when the catalog sets
    one, else four hours (a restore is not bound by the backup's cadence)."""
    return service.job.active_deadline_seconds or int(RUN_ALLOWANCE.total_seconds())


def runbook_path(service: Service) -> str:
    return f"docs/runbooks/restore-{service.name}.md"


def has_runbook(service: Service) -> bool:
    return bool(service.methods)


def restore_env(service: Service, backup: CronJob) -> list[EnvVar]:
    """The backup job's environment, less what only a backup needs, plus the restore knobs."""
    env = [var for var in backup.env if var.name not in _BACKUP_ONLY]
    knobs = (("RESTORE_FROM", ""), *_RESTORE_KNOBS.get(service.engine, ()))
    return env + [EnvVar(name, value) for name, value in knobs]


def _env_entry(var: EnvVar) -> dict[str, Any]:
    if var.secret is not None:
        ref = {"name": var.secret.name, "key": var.secret.key}
        return {"name": var.name, "valueFrom": {"secretKeyRef": ref}}
    return {"name": var.name, "value": var.value or ""}


def _volumes(service: Service, backup: CronJob) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    mounted = {mount.volume for mount in backup.mounts}  # not the init containers' own
    for volume in (v for v in backup.volumes if v.name in mounted):
        if volume.claim_expression is not None:  # the NFS backup volume
            source = {"claimName": backup_volume_name(service), "readOnly": True}
            volumes.append({"name": volume.name, "persistentVolumeClaim": source})
        elif volume.claim is not None:  # the data the restore writes to
            source = {"claimName": volume.claim}
            volumes.append({"name": volume.name, "persistentVolumeClaim": source})
        elif volume.host_path is not None:
            volumes.append(
                {"name": volume.name, "hostPath": {"path": volume.host_path, "type": "Directory"}}
            )
        elif volume.empty_dir:
            volumes.append({"name": volume.name, "emptyDir": {}})
    if service.engine == "etcd":
        host = {"path": ETCD_RESTORE_ROOT, "type": "DirectoryOrCreate"}
        volumes.append({"name": "etcd-restore", "hostPath": host})
    script = {"name": f"{service.name}-restore"}
    return [*volumes, {"name": "restore-script", "configMap": script}]


def _mounts(service: Service, backup: CronJob) -> list[dict[str, Any]]:
    mounts = []
    for mount in backup.mounts:
        # The restore writes where the backup read: the data, and etcd's snapshot folder.
        writes = mount.volume in ("data", "snapshot")
        read_only = mount.path == BACKUP_MOUNT or (mount.read_only and not writes)
        entry: dict[str, Any] = {"name": mount.volume, "mountPath": mount.path}
        if read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    if service.engine == "etcd":
        mounts.append({"name": "etcd-restore", "mountPath": ETCD_RESTORE_ROOT})
    mounts.append({"name": "restore-script", "mountPath": RESTORE_SCRIPT_MOUNT, "readOnly": True})
    return mounts


def _camel(name: str) -> str:
    """``run_as_user`` -> ``runAsUser``: the catalog's field names as Kubernetes spells them."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


#: The data directory etcd's restore creates below ETCD_RESTORE_ROOT (etcdctl refuses one
#: that exists, so a second restore never writes over the first).
ETCD_RESTORED_DIR = "data-restored"


def etcd_restore_container(spec: EtcdSpec) -> dict[str, Any]:
    """``etcdctl snapshot restore`` of the snapshot the script left in the shared folder."""
    return {
        "name": "restore",
        "image": spec.tools_image,
        "command": [
            "etcdctl",
            "snapshot",
            "restore",
            f"{ETCD_SNAPSHOT_DIR}/snapshot.db",
            f"--data-dir={ETCD_RESTORE_ROOT}/{ETCD_RESTORED_DIR}",
        ],
        "env": [{"name": "ETCDCTL_API", "value": "3"}],
        "volumeMounts": [
            {"name": "snapshot", "mountPath": ETCD_SNAPSHOT_DIR, "readOnly": True},
            {"name": "etcd-restore", "mountPath": ETCD_RESTORE_ROOT},
        ],
    }


def restore_job(service: Service, backup: CronJob) -> dict[str, Any]:
    """The Job that runs ``restore.sh`` with the backup CronJob's image, env and volumes."""
    labels = {
        f"{_LABELS}/name": service.name,
        f"{_LABELS}/component": "restore",
        f"{_LABELS}/managed-by": "homeops_gen",
    }
    container = {
        "name": "restore",
        "image": service.job.image,
        "command": [service.job.shell, f"{RESTORE_SCRIPT_MOUNT}/restore.sh"],
        "env": [_env_entry(var) for var in restore_env(service, backup)],
        "volumeMounts": _mounts(service, backup),
    }
    pod: dict[str, Any] = {"restartPolicy": "Never"}
    if backup.host_network:
        pod |= {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
    # The same placement as the backup, but no affinity to the app's pods: a restore runs
    # with the app stopped (its ReadWriteOnce claim then attaches wherever the Job runs).
    job = service.job
    if job.node_selector:
        pod["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        pod["tolerations"] = [{_camel(k): v for k, v in t.items()} for t in job.tolerations]
    if job.security_context:
        pod["securityContext"] = {_camel(k): v for k, v in job.security_context.items()}
    if isinstance(service.connection, EtcdSpec):
        # The script picks and checks the snapshot; the tools image (no shell) restores it.
        pod["initContainers"] = [{**container, "name": "select"}]
        container = etcd_restore_container(service.connection)
    pod |= {"containers": [container], "volumes": _volumes(service, backup)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{service.name}-restore",
            "namespace": service.namespace,
            "labels": labels,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": restore_deadline(service),
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def alerts_by_service(catalog: Catalog) -> dict[str, list[str]]:
    """The names of the alerts watching each service, from its own rule groups."""
    alerts: dict[str, set[str]] = {}
    for group in rule_groups(catalog):
        if group.subject:
            alerts.setdefault(group.subject, set()).update(a.name for a in group.alerts)
    return {name: sorted(names) for name, names in alerts.items()}


def _context(catalog: Catalog, service: Service, alerts: list[str]) -> dict[str, Any]:
    settings = catalog.settings
    context: dict[str, Any] = {
        "service": service,
        "settings": settings,
        "layers": [
            {
                "title": layer.title,
                "when": layer.when,
                "retention": layer.retention,
                "rpo": format_duration(layer.rpo),
                "offsite": layer.offsite,
                "note": layer.note,
            }
            for layer in protection_layers(catalog, service)
        ],
        "alerts": alerts,
        # Its data through every layer, as a Mermaid flowchart ("Where its data goes").
        "diagram": service_flowchart(catalog, service),
        "metrics_job": BACKUP_METRICS_JOB,
        "etcd_restore_root": ETCD_RESTORE_ROOT,
        "etcd_restored_dir": ETCD_RESTORED_DIR,
    }
    if service.uses("dump"):
        backup = cron_jobs(catalog, service)[0]
        context["dump"] = {
            "cronjob": backup.name,
            "claim": backup_volume_name(service),
            "mount": BACKUP_MOUNT,
            "folder": f"restore-{service.name}",
            "env": restore_env(service, backup),
            "script": f"scripts/restore/{recipe(service)}.sh.j2",
            "title": f"{DUMP_TITLES[service.engine]} backups",
            "data_claims": [v.claim for v in backup.volumes if v.claim is not None],
            "deadline": restore_deadline(service),
        }
    drill = _drill_context(catalog, service)
    if drill is not None:
        context["drill"] = drill
    if service.uses("cnpg") and service.cnpg is not None:
        cluster = service.cnpg
        context["cnpg"] = {
            "cluster": cluster,
            "folder": cluster.folder,
            "object_store": object_store_name(cluster),
        }
    if service.uses("volsync") and service.volsync is not None:
        context["volsync"] = {
            "app": service.volsync,
            # Only an app copied offsite has an R2 source (and a copy to restore from).
            "r2": settings.volsync.r2 is not None and service.volsync.r2_schedule is not None,
            "direct": service.volsync.snapshot_class is None,
        }
    if service.uses("kopiur") and service.kopiur is not None:
        k = settings.kopiur
        context["kopiur"] = {
            "app": service.kopiur,
            "settings": k,
            # Only an app copied offsite has an R2 policy (and a copy to restore from).
            "r2": k.r2 is not None and service.kopiur.r2_schedule is not None,
        }
    return context


#: What a drill of scratch objects proves restores, for the runbook.
_DRILLED_LAYERS = {
    "cnpg": "CNPG archive (the newest base backup and the WAL after it)",
    "volsync": "newest Kopia snapshot VolSync took",
}


def _drill_context(catalog: Catalog, service: Service) -> dict[str, Any] | None:
    """The runbook's "Restore drill" section: the drill as generated and its own alerts."""
    drill = restore_drill(catalog, service)
    if drill is None:
        return None
    group = rule_group(catalog, drill_group_name(service))
    alerts = [a.name for a in group.alerts] if group is not None else []
    schedule = drill.schedule
    return {
        "cronjob": drill.cronjob,
        "manual": f"{drill.cronjob}-manual",
        "when": drill.when,
        "gap": format_duration(schedule.max_gap()),
        # "first Sunday", for a schedule whose script works on that day only.
        "weekday": schedule.guard.strip(" ()").removesuffix(" only"),
        "title": drill.title,
        "checks": drill.checks,
        "rto": format_duration(drill.rto) if drill.rto is not None else "",
        "alerts": alerts,
        "metrics_job": DRILL_METRICS_JOB,
        "deadline": service.job.active_deadline(schedule),
        # A drill of scratch objects in the cluster has its own folder (kubernetes/drills/).
        "layer": _DRILLED_LAYERS.get(drill.layer, ""),
        "folder": drill_folder(service) if drill.layer in ("cnpg", "volsync") else "",
        # kopiur drills itself: the deep verification of the app's SnapshotPolicy.
        "kopiur": drill.layer == "kopiur",
    }


@register_generator("runbooks", description="out/docs/runbooks: a restore runbook per service")
def generate_runbooks(catalog: Catalog) -> Iterator[OutputFile]:
    alerts = alerts_by_service(catalog)
    for service in catalog.services:
        if not has_runbook(service):
            continue
        context = _context(catalog, service, alerts.get(service.name, []))
        yield OutputFile(
            runbook_path(service),
            TemplateRender("markdown/runbook.md.j2", context),
            subject=service.name,
        )
        if "dump" not in context:
            continue
        folder = f"docs/runbooks/{context['dump']['folder']}"
        backup = cron_jobs(catalog, service)[0]
        script = TemplateRender(
            context["dump"]["script"], {**context, "title": context["dump"]["title"]}
        )
        yield OutputFile(f"{folder}/restore.sh", script, subject=service.name)
        yield OutputFile(
            f"{folder}/job.yaml",
            YamlDocuments((restore_job(service, backup),)),
            subject=service.name,
        )
