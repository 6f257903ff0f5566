"""The kopiur Kustomize components, repositories and each app's values (``out/kubernetes/``).

kopiur is the Kopia-based operator that replaced VolSync in the home-ops repositories the
stack follows. The layout mirrors the VolSync family, so that an app moves from one to the
other by changing its catalog block (``volsync:`` to ``kopiur:``, or ``pvc.engine``). An app
includes one component, ``components/kopiur-apps/<app>/``, from its Flux Kustomization and
fills it with ``postBuild.substituteFrom`` from its ConfigMap
(``apps/<namespace>/<app>/kopiur.yaml``). That component lists the shared ones the app needs:

- ``components/kopiur/`` (every app): the SnapshotPolicy ``${APP}`` (what to copy, how, how
  many snapshots to keep, the mover's cache and user, quick verification and a
  ``successExpr`` that fails an empty snapshot) on the NFS ClusterRepository, its
  SnapshotSchedule, and the Restore ``${APP}`` with ``target.populator`` that the app's PVC
  names in ``dataSourceRef``: a fresh cluster restores the newest snapshot before the app
  starts, and ``onMissingSnapshot`` says what a first deploy gets;
- ``components/kopiur-deep/`` (apps with a restore drill of this layer): adds the deep
  verification (a scratch restore kopiur runs itself) at the drill's cadence;
- ``components/kopiur-r2/`` (apps copied offsite, when the catalog has an R2 store): a
  second SnapshotPolicy ``${APP}-r2`` on the R2 ClusterRepository and its schedule. An app
  kept out of the offsite copies never lists it and its ConfigMap carries no
  ``KOPIUR_R2_*`` value (``KOPIUR_R2_SCHEDULE`` has no default, so listing it anyway fails).

``kopiur/repositories.yaml`` holds the ClusterRepositories (cluster-scoped, open to the kopiur
apps' namespaces only) and the ExternalSecrets of their passwords and R2 keys, in the
operator's namespace; ``kopiur/secrets.yaml`` the same ExternalSecrets in each namespace the
movers run in (a mover reads its Secrets from its own namespace). Every cron is given its
zone (``timezone``, the catalog's): kopiur reads crons with ``croner`` in that zone
(:mod:`homeops_gen.schedules.kopiur`). Field names follow kopiur's CRDs
(``kopiur.home-operations.com/v1alpha1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, KopiurApp, KopiurSettings, Service
from homeops_gen.catalog.policy import RETAIN_PERIODS
from homeops_gen.generators.volsync import (
    Variable,
    app_files,
    component,
    component_header,
    external_secret,
    offsite_state,
    yaml_safe,
)
from homeops_gen.plan import OutputFile, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = [
    "APP_COMPONENTS",
    "COMPONENT",
    "DEEP_COMPONENT",
    "R2_COMPONENT",
    "REPOSITORIES",
    "SECRETS",
    "app_component",
    "app_components",
    "app_values",
    "component_variables",
    "deep_variables",
    "r2_variables",
    "secret_documents",
    "success_expr",
]

COMPONENT = "kubernetes/components/kopiur"
R2_COMPONENT = "kubernetes/components/kopiur-r2"
DEEP_COMPONENT = "kubernetes/components/kopiur-deep"
APP_COMPONENTS = "kubernetes/components/kopiur-apps"
REPOSITORIES = "kubernetes/kopiur/repositories.yaml"
SECRETS = "kubernetes/kopiur/secrets.yaml"
API_GROUP = "kopiur.home-operations.com"
_API = f"{API_GROUP}/v1alpha1"
#: Where the filesystem backend mounts the NFS export inside kopiur's pods.
REPOSITORY_PATH = "/repository"
#: The Secret the NFS repository's password is in, and the R2 repository's password and keys.
REPOSITORY_SECRET = "kopiur-repository"
R2_SECRET = "kopiur-r2"
#: Kopiur's retention keys for the catalog's periods (``yearly`` is ``keepAnnual``).
KEEP = {
    "hourly": "keepHourly",
    "daily": "keepDaily",
    "weekly": "keepWeekly",
    "monthly": "keepMonthly",
    "yearly": "keepAnnual",
}
#: The component's own fallback counts (an app's ConfigMap always gives its own).
_KEEP_DEFAULT = {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 2, "yearly": 0}
_R2_KEEP_DEFAULT = {"hourly": 0, "daily": 7, "weekly": 4, "monthly": 2, "yearly": 0}


def _keep_name(prefix: str, period: str) -> str:
    return f"{prefix}_KEEP_{'ANNUAL' if period == 'yearly' else period.upper()}"


def component_variables(k: KopiurSettings) -> dict[str, Variable]:
    """Every variable ``components/kopiur`` reads, with the catalog's defaults."""
    items = [
        Variable("APP", None, "name of the app: the SnapshotPolicy, its schedule and Restore"),
        Variable("KOPIUR_CLAIM", None, "the app's PVC"),
        Variable("KOPIUR_CAPACITY", "5Gi", "size of the PVC"),
        Variable("KOPIUR_ACCESSMODES", "ReadWriteOnce", "access mode of the PVC"),
        Variable("KOPIUR_STORAGECLASS", k.storage_class, "StorageClass of the PVC"),
        Variable(
            "KOPIUR_COPYMETHOD", k.copy_method, "how the PVC is captured: Snapshot, Clone or Direct"
        ),
        Variable(
            "KOPIUR_SNAPSHOTCLASS",
            k.snapshot_class or "",
            "VolumeSnapshotClass for Snapshot and Clone (empty: the driver's default class)",
        ),
        Variable("KOPIUR_CACHE_STORAGECLASS", k.cache_storage_class, "StorageClass of the cache"),
        Variable("KOPIUR_CACHE_CAPACITY", k.cache_capacity, "size of the mover's cache volume"),
        Variable("KOPIUR_PUID", str(k.uid), "UID the mover runs as (the app's)"),
        Variable("KOPIUR_PGID", str(k.gid), "GID and fsGroup the mover runs as"),
        Variable("KOPIUR_SCHEDULE", "H * * * *", f"cron of the snapshots, in {k.timezone}"),
        Variable(
            "KOPIUR_VERIFY_SCHEDULE",
            "H H * * *",
            f"cron of the quick verification, in {k.timezone}",
        ),
        Variable(
            "KOPIUR_MIN_FILES",
            "1",
            "a verification that finds fewer files fails (successExpr)",
        ),
        Variable(
            "KOPIUR_ON_MISSING_SNAPSHOT",
            k.on_missing_snapshot,
            "what the Restore does with no snapshot: Continue (empty volume) or Fail",
        ),
        *(
            Variable(_keep_name("KOPIUR", period), str(n), f"{period} snapshots kept")
            for period, n in _KEEP_DEFAULT.items()
        ),
    ]
    return {item.name: item for item in items}


def deep_variables() -> dict[str, Variable]:
    """The variables ``components/kopiur-deep`` reads besides those of ``components/kopiur``."""
    item = Variable(
        "KOPIUR_DEEP_VERIFY_SCHEDULE",
        None,
        "cron of the deep verification, the app's restore drill (only drilled apps carry it)",
    )
    return {item.name: item}


def r2_variables() -> dict[str, Variable]:
    """The variables ``components/kopiur-r2`` reads besides those of ``components/kopiur``."""
    items = [
        Variable(
            "KOPIUR_R2_SCHEDULE",
            None,
            "cron of the copy to R2 (only offsite-included apps carry it)",
        ),
        *(
            Variable(_keep_name("KOPIUR_R2", period), str(n), f"{period} R2 snapshots kept")
            for period, n in _R2_KEEP_DEFAULT.items()
        ),
    ]
    return {item.name: item for item in items}


def success_expr(min_files: str) -> str:
    """The CEL predicate both verification tiers must pass: no error, and files: the blob
    check must have seen some, the scratch restore must have written ``min_files`` with
    matching checksums. kopiur's own example is the quick half: a verify that succeeds on
    an empty snapshot is the silent failure this rules out."""
    return (
        "stats.errors == 0 && (tier == 'deep' ? "
        f"restored.files >= {min_files} && restored.checksumMatches : stats.files >= {min_files})"
    )


def _ref(var: dict[str, Variable], name: str) -> str:
    return var[name].ref()


def _mover(var: dict[str, Variable], k: KopiurSettings) -> dict[str, Any]:
    return {
        "cache": {
            "mode": k.cache_mode,
            "capacity": _ref(var, "KOPIUR_CACHE_CAPACITY"),
            "storageClassName": _ref(var, "KOPIUR_CACHE_STORAGECLASS"),
        },
        "securityContext": {
            "runAsUser": _ref(var, "KOPIUR_PUID"),
            "runAsGroup": _ref(var, "KOPIUR_PGID"),
        },
        "podSecurityContext": {"fsGroup": _ref(var, "KOPIUR_PGID")},
    }


def _policy(
    name: str,
    repository: str,
    retention: dict[str, str],
    var: dict[str, Variable],
    k: KopiurSettings,
) -> dict[str, Any]:
    return {
        "apiVersion": _API,
        "kind": "SnapshotPolicy",
        "metadata": {"name": name},
        "spec": {
            "repository": {"kind": "ClusterRepository", "name": repository},
            "sources": [{"pvc": {"name": _ref(var, "KOPIUR_CLAIM")}}],
            "copyMethod": _ref(var, "KOPIUR_COPYMETHOD"),
            "volumeSnapshotClassName": _ref(var, "KOPIUR_SNAPSHOTCLASS"),
            "compression": {"compressor": k.compression},
            "retention": retention,
            "mover": _mover(var, k),
        },
    }


def _schedule(name: str, cron: str, k: KopiurSettings) -> dict[str, Any]:
    return {
        "apiVersion": _API,
        "kind": "SnapshotSchedule",
        "metadata": {"name": name},
        "spec": {
            "policyRef": {"name": name},
            "schedule": {"cron": cron, "timezone": k.timezone, "concurrencyPolicy": "Forbid"},
        },
    }


def policy_documents(k: KopiurSettings) -> list[dict[str, Any]]:
    """``snapshotpolicy.yaml`` and ``snapshotschedule.yaml`` of ``components/kopiur``."""
    var = component_variables(k)
    retention = {KEEP[p]: _ref(var, _keep_name("KOPIUR", p)) for p in RETAIN_PERIODS}
    policy = _policy("${APP}", k.repository, retention, var, k)
    policy["spec"]["verification"] = {
        "quick": {
            "schedule": {"cron": _ref(var, "KOPIUR_VERIFY_SCHEDULE"), "timezone": k.timezone}
        },
        "verifyFilesPercent": k.verify_files_percent,
        "successExpr": success_expr(_ref(var, "KOPIUR_MIN_FILES")),
    }
    return [policy, _schedule("${APP}", _ref(var, "KOPIUR_SCHEDULE"), k)]


def restore_documents(k: KopiurSettings) -> list[dict[str, Any]]:
    """``restore.yaml`` and ``pvc.yaml``: the claim is populated from the newest snapshot."""
    var = component_variables(k)
    restore = {
        "apiVersion": _API,
        "kind": "Restore",
        "metadata": {"name": "${APP}"},
        "spec": {
            "source": {"fromPolicy": {"name": "${APP}", "offset": 0}},
            "target": {"populator": {}},
            "policy": {"onMissingSnapshot": _ref(var, "KOPIUR_ON_MISSING_SNAPSHOT")},
            "mover": {
                "securityContext": {
                    "runAsUser": _ref(var, "KOPIUR_PUID"),
                    "runAsGroup": _ref(var, "KOPIUR_PGID"),
                },
                "podSecurityContext": {"fsGroup": _ref(var, "KOPIUR_PGID")},
            },
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": _ref(var, "KOPIUR_CLAIM")},
        "spec": {
            "accessModes": [_ref(var, "KOPIUR_ACCESSMODES")],
            "dataSourceRef": {"apiGroup": API_GROUP, "kind": "Restore", "name": "${APP}"},
            "resources": {"requests": {"storage": _ref(var, "KOPIUR_CAPACITY")}},
            "storageClassName": _ref(var, "KOPIUR_STORAGECLASS"),
        },
    }
    return [restore, pvc]


def deep_document(k: KopiurSettings) -> dict[str, Any]:
    """``components/kopiur-deep``: a strategic-merge patch adding the deep verification,
    restored into a scratch claim of the app's own size and class."""
    var = component_variables(k) | deep_variables()
    return {
        "apiVersion": _API,
        "kind": "SnapshotPolicy",
        "metadata": {"name": "${APP}"},
        "spec": {
            "verification": {
                "deep": {
                    "schedule": {
                        "cron": _ref(var, "KOPIUR_DEEP_VERIFY_SCHEDULE"),
                        "timezone": k.timezone,
                    },
                    "capacity": _ref(var, "KOPIUR_CAPACITY"),
                    "storageClassName": _ref(var, "KOPIUR_STORAGECLASS"),
                }
            }
        },
    }


def r2_documents(k: KopiurSettings) -> list[dict[str, Any]]:
    """``components/kopiur-r2``: the offsite policy and its schedule."""
    var = component_variables(k) | r2_variables()
    retention = {KEEP[p]: _ref(var, _keep_name("KOPIUR_R2", p)) for p in RETAIN_PERIODS}
    policy = _policy("${APP}-r2", k.r2_repository, retention, var, k)
    return [policy, _schedule("${APP}-r2", _ref(var, "KOPIUR_R2_SCHEDULE"), k)]


def _namespaces(apps: list[Service]) -> list[str]:
    return sorted({s.namespace for s in apps})


def _repository_secret(k: KopiurSettings, namespace: str) -> dict[str, Any]:
    data = {"KOPIA_PASSWORD": "{{ .KOPIA_PASSWORD }}"}
    return external_secret(REPOSITORY_SECRET, k, k.secret_key, data, namespace)


def _r2_secret(k: KopiurSettings, namespace: str) -> dict[str, Any]:
    data = {
        "KOPIA_PASSWORD": "{{ .KOPIA_PASSWORD }}",
        "AWS_ACCESS_KEY_ID": "{{ .AWS_ACCESS_KEY_ID }}",
        "AWS_SECRET_ACCESS_KEY": "{{ .AWS_SECRET_ACCESS_KEY }}",
    }
    return external_secret(R2_SECRET, k, k.r2_secret_key, data, namespace)


def secret_documents(
    k: KopiurSettings, apps: list[Service], offsite: list[Service]
) -> list[dict[str, Any]]:
    """The repositories' Secrets in each namespace a mover of theirs runs in
    (``kopiur/secrets.yaml``): a ClusterRepository's own reads are from the operator's
    namespace, but a Snapshot's or Restore's mover reads the Secret from its own namespace
    (``envFrom``), so it must exist there too."""
    documents = [_repository_secret(k, ns) for ns in _namespaces(apps)]
    if offsite and k.r2 is not None:
        documents += [_r2_secret(k, ns) for ns in _namespaces(offsite)]
    return documents


def repository_documents(
    k: KopiurSettings, apps: list[Service], offsite: list[Service]
) -> list[dict[str, Any]]:
    """The ClusterRepositories and the ExternalSecrets they read (``kopiur/repositories.yaml``)."""
    documents = [_repository_secret(k, k.namespace)]
    common = {
        # What kopia records as username@hostname: the policy's name at its namespace, the
        # identity a restore by `identity` names.
        "identityDefaults": {"hostnameExpr": "namespace", "usernameExpr": "policyName"},
        "scheduleDefaults": {"timezone": k.timezone},
        "maintenance": {
            "schedule": {
                "quick": {"cron": k.maintenance_quick.timing.cron},
                "full": {"cron": k.maintenance_full.timing.cron},
                "timezone": k.timezone,
            }
        },
    }
    documents.append(
        {
            "apiVersion": _API,
            "kind": "ClusterRepository",
            "metadata": {"name": k.repository},
            "spec": {
                "backend": {
                    "filesystem": {
                        "path": REPOSITORY_PATH,
                        "volume": {"nfs": {"server": k.nfs_server, "path": k.nfs_path}},
                    }
                },
                "encryption": {
                    "passwordSecretRef": {
                        "name": REPOSITORY_SECRET,
                        "namespace": k.namespace,
                        "key": "KOPIA_PASSWORD",
                    }
                },
                "allowedNamespaces": {"list": _namespaces(apps)},
                **common,
            },
        }
    )
    if offsite and k.r2 is not None and k.r2.bucket is not None:
        documents.append(_r2_secret(k, k.namespace))
        endpoint = k.r2.endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")
        documents.append(
            {
                "apiVersion": _API,
                "kind": "ClusterRepository",
                "metadata": {"name": k.r2_repository},
                "spec": {
                    "backend": {
                        "s3": {
                            "bucket": k.r2.bucket,
                            "endpoint": endpoint,
                            "region": k.r2.region,
                            "prefix": "kopiur/",
                            "auth": {"secretRef": {"name": R2_SECRET, "namespace": k.namespace}},
                        }
                    },
                    "encryption": {
                        "passwordSecretRef": {
                            "name": R2_SECRET,
                            "namespace": k.namespace,
                            "key": "KOPIA_PASSWORD",
                        }
                    },
                    # Only the apps copied offsite write to it.
                    "allowedNamespaces": {"list": _namespaces(offsite)},
                    **common,
                },
            }
        )
    return documents


def _app(service: Service) -> KopiurApp:
    app = service.kopiur
    assert app is not None
    return app


def app_components(catalog: Catalog, service: Service) -> list[str]:
    """The shared components ``service`` needs (paths below ``out/``), in build order."""
    app = _app(service)
    components = [COMPONENT]
    if app.deep_verify is not None:
        components.append(DEEP_COMPONENT)
    if app.r2_schedule is not None and catalog.settings.kopiur.r2 is not None:
        components.append(R2_COMPONENT)
    return components


def app_component(service: Service) -> str:
    """The folder of ``service``'s own component (below ``out/``)."""
    return f"{APP_COMPONENTS}/{service.name}"


def app_values(catalog: Catalog, service: Service) -> dict[str, str]:
    """The values of the variables of every component ``service`` uses (all strings, for a
    ConfigMap); ``KOPIUR_R2_*`` only for an app copied to R2, the deep schedule only for a
    drilled one."""
    app = _app(service)
    k = catalog.settings.kopiur
    assert app.quick_verify is not None
    values = {
        "APP": service.name,
        "KOPIUR_CLAIM": app.claim,
        "KOPIUR_CAPACITY": app.capacity,
        "KOPIUR_ACCESSMODES": app.access_mode,
        "KOPIUR_STORAGECLASS": app.storage_class,
        "KOPIUR_COPYMETHOD": app.copy_method,
        **({"KOPIUR_SNAPSHOTCLASS": app.snapshot_class} if app.snapshot_class else {}),
        "KOPIUR_CACHE_STORAGECLASS": k.cache_storage_class,
        "KOPIUR_CACHE_CAPACITY": app.cache_capacity,
        "KOPIUR_PUID": str(app.uid),
        "KOPIUR_PGID": str(app.gid),
        "KOPIUR_SCHEDULE": app.schedule.timing.cron,
        "KOPIUR_VERIFY_SCHEDULE": app.quick_verify.timing.cron,
        "KOPIUR_MIN_FILES": str(app.min_files),
        "KOPIUR_ON_MISSING_SNAPSHOT": k.on_missing_snapshot,
        **{_keep_name("KOPIUR", p): str(n) for p, n in app.retain.items()},
    }
    variables = component_variables(k)
    components = app_components(catalog, service)
    if DEEP_COMPONENT in components:
        assert app.deep_verify is not None
        values["KOPIUR_DEEP_VERIFY_SCHEDULE"] = app.deep_verify.timing.cron
        variables |= deep_variables()
    if R2_COMPONENT in components:
        assert app.r2_schedule is not None and app.r2_retain is not None
        values["KOPIUR_R2_SCHEDULE"] = app.r2_schedule.timing.cron
        values |= {_keep_name("KOPIUR_R2", p): str(n) for p, n in app.r2_retain.items()}
        variables |= r2_variables()
    assert values.keys() <= variables.keys()
    assert all(n in values for n, var in variables.items() if var.default is None), service.name
    unsafe = sorted(name for name, value in values.items() if not yaml_safe(value))
    if unsafe:  # the catalog's validation keeps these out; never write a ConfigMap Flux breaks
        raise ValueError(f"{service.name}: not YAML-safe after substitution: {unsafe}")
    return values


_USAGE = [
    "Apps do not list it themselves: each includes its own components/kopiur-apps/<app>,",
    "which lists the shared components it needs, from its Flux Kustomization:",
    "  spec.components: [<path>/components/kopiur-apps/<app>]",
    "  spec.postBuild.substituteFrom: [{kind: ConfigMap, name: <app>-kopiur}]",
]


@register_generator("kopiur", description="out/kubernetes: the kopiur components, repositories")
def generate_kopiur(catalog: Catalog) -> Iterator[OutputFile]:
    apps = [s for s in catalog.services if s.uses("kopiur") and s.kopiur is not None]
    if not apps:
        return
    k = catalog.settings.kopiur
    used = {c for s in apps for c in app_components(catalog, s)}
    title = (
        "kopiur component: snapshots an app's PVC to the Kopia repository on NFS, and restores it."
    )
    yield OutputFile(
        f"{COMPONENT}/kustomization.yaml",
        YamlDocuments(
            (
                component(
                    [
                        "./snapshotpolicy.yaml",
                        "./snapshotschedule.yaml",
                        "./restore.yaml",
                        "./pvc.yaml",
                    ]
                ),
            ),
            comment=component_header(title, _USAGE, component_variables(k)),
        ),
    )
    policy, schedule = policy_documents(k)
    restore, pvc = restore_documents(k)
    yield OutputFile(f"{COMPONENT}/snapshotpolicy.yaml", YamlDocuments((policy,)))
    yield OutputFile(f"{COMPONENT}/snapshotschedule.yaml", YamlDocuments((schedule,)))
    yield OutputFile(f"{COMPONENT}/restore.yaml", YamlDocuments((restore,)))
    yield OutputFile(f"{COMPONENT}/pvc.yaml", YamlDocuments((pvc,)))
    if DEEP_COMPONENT in used:
        title = (
            "kopiur deep-verification component, after components/kopiur: kopiur restores the "
            "newest\nsnapshot into a scratch claim at the app's restore-drill cadence and checks "
            "it (successExpr)."
        )
        yield OutputFile(
            f"{DEEP_COMPONENT}/kustomization.yaml",
            YamlDocuments(
                (component(patches=[{"path": "./deep.yaml"}]),),
                comment=component_header(title, [], deep_variables()),
            ),
        )
        yield OutputFile(f"{DEEP_COMPONENT}/deep.yaml", YamlDocuments((deep_document(k),)))
    offsite = [s for s in apps if R2_COMPONENT in app_components(catalog, s)]
    if offsite:
        title = (
            "kopiur R2 component: a second snapshot of the app's PVC, to the Cloudflare R2 "
            "repository.\nOnly for apps copied offsite; it needs components/kopiur before it."
        )
        yield OutputFile(
            f"{R2_COMPONENT}/kustomization.yaml",
            YamlDocuments(
                (component(["./r2.yaml"]),), comment=component_header(title, [], r2_variables())
            ),
        )
        yield OutputFile(f"{R2_COMPONENT}/r2.yaml", YamlDocuments(tuple(r2_documents(k))))
    yield OutputFile(
        REPOSITORIES,
        YamlDocuments(
            tuple(repository_documents(k, apps, offsite)),
            comment="The kopiur repositories and their Secrets; apply once, before the apps.",
        ),
    )
    yield OutputFile(
        SECRETS,
        YamlDocuments(
            tuple(secret_documents(k, apps, offsite)),
            comment="The repositories' Secrets in each namespace their movers run in (a "
            "mover reads them\nfrom its own namespace); apply with repositories.yaml, before "
            "the apps.",
        ),
    )
    for service in apps:
        folder = app_component(service)
        components = app_components(catalog, service)
        deep = "deep-verified" if DEEP_COMPONENT in components else "not deep-verified (no drill)"
        copied = offsite_state(service, R2_COMPONENT in components)
        yield from app_files(
            service,
            "kopiur",
            folder,
            components,
            f"kopiur of {service.name} ({service.namespace}): {copied}; {deep}.",
            k.flux_namespace,
            app_values(catalog, service),
        )
