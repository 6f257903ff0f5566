"""Restore drills of CNPG archives and VolSync repositories (``out/kubernetes/drills/``).

A service whose drill restores its CloudNativePG archive or its VolSync repository gets the
folder ``kubernetes/drills/<namespace>/<service>/``, a plain Kustomization for Flux (or
``kubectl apply -k``): the CronJob ``<service>-restore-drill``, the ServiceAccount and Role
it runs with, and a ConfigMap of its script and of the manifests the script creates. Each run
creates its scratch objects, restores, checks, pushes the ``restore_drill_*`` metrics (as a
dump's drill does) and deletes what it created; the live service is only read:

- CNPG: a scratch ``Cluster <cluster>-drill`` of one instance, bootstrapped by ``recovery``
  from the service's object store (the newest base backup and every WAL after it), with no
  archiving of its own, so it never writes to the store. Its image and storage size are the
  live Cluster's, read when the drill runs (a major version the archive was not taken with
  cannot replay it). The catalog's checks run in it through ``kubectl exec ... psql``.
- VolSync: a scratch claim, a ReplicationDestination restoring the app's newest Kopia
  snapshot into it (a manual trigger, waited for through ``status.lastManualSync``), then a
  verify Job in the mover's image: the restored tree's files and bytes against the
  catalog's minimums, ``kopia snapshot verify --verify-files-percent`` of the newest
  snapshot, and for an app copied to R2 ``restic check --read-data-subset``.

The ConfigMap is generated with ``kustomize.toolkit.fluxcd.io/substitute: disabled``: a
Flux post-build substitution would otherwise rewrite the script's ``${...}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from homeops_gen.catalog.model import Catalog, CnpgCluster, Service
from homeops_gen.generators.backup_jobs import (
    DRILL_METRICS_JOB,
    drill_cronjob_name,
    shell_library,
)
from homeops_gen.generators.cnpg import recovery_source
from homeops_gen.generators.volsync import (
    REPOSITORY_MOUNT,
    app_components,
    app_values,
    cache_limits_mb,
)
from homeops_gen.plan import OutputFile, TemplateRender, Text, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = [
    "DRILLS",
    "NOT_SUBSTITUTED",
    "cnpg_drill_cluster",
    "drill_folder",
    "drill_objects",
    "generate_drills",
    "scratch_name",
    "volsync_drill_objects",
]

DRILLS = "kubernetes/drills"
#: Where the drill's pod mounts its ConfigMap (the script, lib.sh and the manifests).
DRILL_FILES = "/drill"
#: The verify pod's mounts: the restored claim and the Kopia repository.
VERIFY_DATA = "/data"
#: The line the verify script ends with, which the drill reads its figures from.
VERIFY_MARK = "homeops-drill-verify"
#: The ReplicationDestination's manual trigger (a new one syncs once, then reports it).
MANUAL_TRIGGER = "drill"
NOT_SUBSTITUTED = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}
#: The offsite restic repository's Secret keys, as restic reads them.
_R2_KEYS = (
    "RESTIC_REPOSITORY",
    "RESTIC_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)
#: The drill's pod runs as nobody; kubectl keeps its cache below HOME.
_NOBODY = 65534


def drill_folder(service: Service) -> str:
    return f"{DRILLS}/{service.namespace}/{service.name}"


def scratch_name(service: Service) -> str:
    """The name of the scratch Cluster, or of the scratch claim and ReplicationDestination."""
    if service.drill is not None and service.drill.layer == "cnpg":
        assert service.cnpg is not None
        return f"{service.cnpg.name}-drill"
    return f"{service.name}-drill"


def _labels(service: Service) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/component": "restore-drill",
        "app.kubernetes.io/managed-by": "homeops_gen",
    }


def cnpg_drill_cluster(service: Service, cluster: CnpgCluster) -> dict[str, Any]:
    """The scratch Cluster: one instance recovered from the archive, archiving nothing."""
    storage: dict[str, Any] = {"size": cluster.storage_size or "1Gi"}
    if cluster.storage_class is not None:
        storage["storageClass"] = cluster.storage_class
    spec: dict[str, Any] = {"instances": 1}
    if cluster.image is not None:
        spec["imageName"] = cluster.image
    spec |= {
        "storage": storage,
        "bootstrap": {"recovery": {"source": "origin"}},
        "externalClusters": [recovery_source(cluster)],
    }
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": scratch_name(service), "labels": _labels(service)},
        "spec": spec,
    }


def _role_rules(service: Service) -> list[dict[str, Any]]:
    """Read what it must, create its scratch objects, delete only those (by name: RBAC
    cannot restrict ``create`` by name, it can ``delete``)."""
    assert service.drill is not None
    read = ["get", "list", "watch"]
    name = scratch_name(service)
    if service.drill.layer == "cnpg":
        made = [("postgresql.cnpg.io", "clusters", name)]
        others = [
            {"apiGroups": [""], "resources": ["pods"], "verbs": read},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        ]
    else:
        made = [
            ("volsync.backube", "replicationdestinations", name),
            ("", "persistentvolumeclaims", name),
            ("batch", "jobs", f"{name}-verify"),
        ]
        others = [
            {"apiGroups": [""], "resources": ["pods"], "verbs": read},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]
    rules: list[dict[str, Any]] = []
    for group, resource, made_name in made:
        rules.append({"apiGroups": [group], "resources": [resource], "verbs": [*read, "create"]})
        rules.append(
            {
                "apiGroups": [group],
                "resources": [resource],
                "resourceNames": [made_name],
                "verbs": ["delete"],
            }
        )
    return rules + others


def rbac_documents(service: Service) -> list[dict[str, Any]]:
    """What the drill's pod may do: create, watch and delete its scratch objects."""
    assert service.drill is not None
    name = drill_cronjob_name(service)
    metadata = {"name": name, "namespace": service.namespace, "labels": _labels(service)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata,
            "rules": _role_rules(service),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}],
        },
    ]


def _env(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _drill_env(catalog: Catalog, service: Service) -> dict[str, str]:
    drill = service.drill
    assert drill is not None
    deadline = service.job.active_deadline(drill.schedule)
    env = {
        "SERVICE": service.name,
        "TZ": catalog.settings.container_timezone,
        "PUSHGATEWAY_URL": catalog.settings.pushgateway,
        "HOME": "/tmp",
        "DRILL_FILES": DRILL_FILES,
        "SCRATCH": scratch_name(service),
        # What the drill may wait for: its deadline, less time to clean up and report.
        "WAIT_SECONDS": str(max(60, deadline - 120)),
    }
    if drill.layer == "cnpg":
        assert service.cnpg is not None
        env["SOURCE_CLUSTER"] = service.cnpg.name
        env["MIN_SIZE_BYTES"] = str(service.min_size_bytes)
    return env


def cronjob_document(catalog: Catalog, service: Service) -> dict[str, Any]:
    drill = service.drill
    assert drill is not None
    job = service.job
    name = drill_cronjob_name(service)
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "restartPolicy": "Never",
        "securityContext": {
            "runAsUser": _NOBODY,
            "runAsGroup": _NOBODY,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "restore-drill",
                "image": catalog.settings.drills.kubectl_image,
                "command": ["/bin/sh", f"{DRILL_FILES}/drill.sh"],
                "env": _env(_drill_env(catalog, service)),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "drill", "mountPath": DRILL_FILES, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "drill", "configMap": {"name": name}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if job.node_selector:
        pod["nodeSelector"] = dict(job.node_selector)
    if job.tolerations:
        pod["tolerations"] = [dict(t) for t in job.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": service.namespace, "labels": _labels(service)},
        "spec": {
            "schedule": drill.schedule.cron,
            "timeZone": catalog.settings.timezone,
            # One drill at a time: a second would delete the first's scratch objects.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": job.starting_deadline(drill.schedule),
            "successfulJobsHistoryLimit": job.successful_jobs_history_limit,
            "failedJobsHistoryLimit": job.failed_jobs_history_limit,
            "jobTemplate": {
                "spec": {
                    # A retry would only repeat a restore whose failure is already pushed.
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": job.active_deadline(drill.schedule),
                    "template": {"metadata": {"labels": _labels(service)}, "spec": pod},
                }
            },
        },
    }


def volsync_drill_objects(catalog: Catalog, service: Service) -> dict[str, dict[str, Any]]:
    """The scratch claim, the ReplicationDestination into it and the verify Job, by file."""
    values = app_values(catalog, service)
    name = scratch_name(service)
    labels = _labels(service)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "accessModes": [values["VOLSYNC_ACCESSMODES"]],
            "resources": {"requests": {"storage": values["VOLSYNC_CAPACITY"]}},
            "storageClassName": values["VOLSYNC_STORAGECLASS"],
        },
    }
    metadata_mb, content_mb = cache_limits_mb(values["VOLSYNC_CACHE_CAPACITY"])
    ids = {"runAsUser": int(values["VOLSYNC_PUID"]), "runAsGroup": int(values["VOLSYNC_PGID"])}
    destination = {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            # Created by each drill with this trigger: it syncs once, then sets
            # status.lastManualSync to the same value.
            "trigger": {"manual": MANUAL_TRIGGER},
            "kopia": {
                "repository": f"{service.name}-volsync",
                "sourceIdentity": {"sourceName": service.name},
                "copyMethod": "Direct",
                "destinationPVC": name,
                "cacheCapacity": values["VOLSYNC_CACHE_CAPACITY"],
                "cacheStorageClassName": values["VOLSYNC_CACHE_STORAGECLASS"],
                "cacheAccessModes": [values["VOLSYNC_CACHE_ACCESSMODES"]],
                "cleanupCachePVC": True,
                "metadataCacheSizeLimitMB": metadata_mb,
                "contentCacheSizeLimitMB": content_mb,
                "moverSecurityContext": {**ids, "fsGroup": ids["runAsGroup"]},
                "moverVolumes": [_repository_volume(values)],
            },
        },
    }
    return {
        "claim.yaml": claim,
        "replicationdestination.yaml": destination,
        "verify-job.yaml": _verify_job(catalog, service, values, ids),
    }


def _repository_volume(values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "mountPath": REPOSITORY_MOUNT,
        "volumeSource": {
            "nfs": {"server": values["VOLSYNC_NFS_SERVER"], "path": values["VOLSYNC_NFS_PATH"]}
        },
    }


def _secret_env(secret: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for key in keys
    ]


def _verify_job(
    catalog: Catalog, service: Service, values: Mapping[str, str], ids: Mapping[str, int]
) -> dict[str, Any]:
    drill = service.drill
    assert drill is not None
    drills = catalog.settings.drills
    name = scratch_name(service)
    r2 = any(path.endswith("volsync-r2") for path in app_components(catalog, service))
    env: list[dict[str, Any]] = _env(
        {
            "DATA_DIR": VERIFY_DATA,
            "MIN_FILES": str(drill.min_files if drill.min_files is not None else 0),
            "MIN_SIZE_BYTES": str(service.min_size_bytes),
            "KOPIA_SOURCE_USER": service.name,
            "KOPIA_SOURCE_HOST": service.namespace,
            "VERIFY_FILES_PERCENT": str(drills.verify_files_percent),
            "READ_DATA_PERCENT": str(drills.read_data_percent) if r2 else "",
            "VERIFY_MARK": VERIFY_MARK,
        }
    )
    env += _secret_env(f"{service.name}-volsync", ("KOPIA_REPOSITORY", "KOPIA_PASSWORD"))
    if r2:
        env += _secret_env(f"{service.name}-volsync-r2", _R2_KEYS)
    repository = _repository_volume(values)["volumeSource"]["nfs"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-verify", "labels": _labels(service)},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": _labels(service)},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {**ids, "runAsNonRoot": True},
                    "containers": [
                        {
                            "name": "verify",
                            "image": drills.volsync_image,
                            "command": ["/bin/bash", f"{DRILL_FILES}/verify.sh"],
                            "env": env,
                            "volumeMounts": [
                                {"name": "data", "mountPath": VERIFY_DATA, "readOnly": True},
                                {
                                    "name": "repository",
                                    "mountPath": f"/mnt/{REPOSITORY_MOUNT}",
                                    "readOnly": True,
                                },
                                {"name": "drill", "mountPath": DRILL_FILES, "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "data",
                            "persistentVolumeClaim": {"claimName": name, "readOnly": True},
                        },
                        {"name": "repository", "nfs": {**repository, "readOnly": True}},
                        {
                            "name": "drill",
                            "configMap": {"name": drill_cronjob_name(service)},
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def drill_objects(catalog: Catalog, service: Service) -> dict[str, dict[str, Any]]:
    """The manifests the drill's script creates, by file name in its ConfigMap."""
    assert service.drill is not None
    if service.drill.layer == "cnpg":
        assert service.cnpg is not None
        return {"cluster.json": cnpg_drill_cluster(service, service.cnpg)}
    return volsync_drill_objects(catalog, service)


def _kustomization(service: Service, files: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": service.namespace,
        "resources": ["./rbac.yaml", "./cronjob.yaml"],
        "configMapGenerator": [
            {
                "name": drill_cronjob_name(service),
                "files": files,
                # The verify Job the script creates names it as is.
                "options": {
                    "disableNameSuffixHash": True,
                    "annotations": dict(NOT_SUBSTITUTED),
                    "labels": _labels(service),
                },
            }
        ],
    }


def _manifest(document: Mapping[str, Any], file: str) -> Text | YamlDocuments:
    if file.endswith(".json"):
        return Text(json.dumps(document, indent=2) + "\n")
    return YamlDocuments((document,))


@register_generator(
    "drills", description="out/kubernetes/drills: restore drills of CNPG and VolSync backups"
)
def generate_drills(catalog: Catalog) -> Iterator[OutputFile]:
    # A dump's drill is a Terraform CronJob beside the backup; kopiur drills itself (its
    # SnapshotPolicy's deep verification, components/kopiur-deep).
    drilled = [
        s for s in catalog.services if s.drill is not None and s.drill.layer in ("cnpg", "volsync")
    ]
    for service in drilled:
        assert service.drill is not None
        folder = drill_folder(service)
        objects = drill_objects(catalog, service)
        scripts = ["drill.sh", "lib.sh"]
        if service.drill.layer == "volsync":
            scripts.append("verify.sh")
        files = [*scripts, *objects]
        cronjob = drill_cronjob_name(service)
        comment = (
            f"The restore drill of {service.name} ({service.drill.layer}): apply this folder "
            "(kubectl apply -k, or a Flux Kustomization); run it now with\n"
            f"kubectl -n {service.namespace} create job --from=cronjob/{cronjob} {cronjob}-manual"
        )
        yield OutputFile(
            f"{folder}/kustomization.yaml",
            YamlDocuments((_kustomization(service, files),), comment=comment),
            subject=service.name,
        )
        rbac = YamlDocuments(tuple(rbac_documents(service)))
        yield OutputFile(f"{folder}/rbac.yaml", rbac, subject=service.name)
        yield OutputFile(
            f"{folder}/cronjob.yaml",
            YamlDocuments((cronjob_document(catalog, service),)),
            subject=service.name,
        )
        context = {
            "service": service,
            "drill": service.drill,
            "drill_files": DRILL_FILES,
            "verify_mark": VERIFY_MARK,
            "manual_trigger": MANUAL_TRIGGER,
            "metrics_job": DRILL_METRICS_JOB,
        }
        yield OutputFile(
            f"{folder}/drill.sh",
            TemplateRender(f"scripts/drill/{service.drill.layer}.sh.j2", context),
            subject=service.name,
        )
        yield OutputFile(
            f"{folder}/lib.sh",
            shell_library(),
            subject=service.name,
        )
        if service.drill.layer == "volsync":
            yield OutputFile(
                f"{folder}/verify.sh",
                TemplateRender("scripts/drill/volsync-verify.sh.j2", context),
                subject=service.name,
            )
        for file, document in objects.items():
            yield OutputFile(f"{folder}/{file}", _manifest(document, file), subject=service.name)
