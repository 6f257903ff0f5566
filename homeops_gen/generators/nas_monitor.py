"""The NAS monitor (``out/terraform/stacks/nas-monitor/``), when a Cloud Sync task runs the
offsite full sync (``settings.offsite.full_sync_by: cloudsync``).

The TrueNAS Cloud Sync task pushes nothing itself, so a CronJob in ``settings.truenas``'s
namespace asks the NAS's middleware API for the task's state and its last successful run
and pushes the ``sync="full"`` series the offsite alerts read. Generated:

* ``nas_monitor.py``: the monitor, Python's standard library only (the image has nothing
  else): a WebSocket client, JSON-RPC 2.0 to ``wss://<nas>/api/current``, or the REST API
  of older systems (``https://<nas>/api/v2.0``);
* ``monitor.tf``: the ConfigMap that carries the script (read with ``file()``) and the
  ``kubernetes_cron_job_v1`` that runs it as an unprivileged user, the API key from the
  catalog's Secret and, when ``settings.truenas.api_key_user`` names the key's user, that
  user (the script then logs in with ``auth.login_ex``);
* ``versions.tf``: the provider constraint every stack has.

Every catalog value reaches the script as an environment variable, never as code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from homeops_gen.catalog.model import Catalog, Truenas
from homeops_gen.catalog.spec import SecretRef
from homeops_gen.generators.backup_jobs import SCRIPTS_MOUNT, EnvVar
from homeops_gen.generators.storage_layers import CLOUDSYNC_DESCRIPTION
from homeops_gen.plan import OutputFile, TemplateRender
from homeops_gen.registry import register_generator
from homeops_gen.schedule import Schedule

__all__ = [
    "MONITOR_IMAGE",
    "MONITOR_METRICS_GROUP",
    "MONITOR_SCRIPT",
    "STACK",
    "generate_nas_monitor",
    "monitor_env",
]

STACK = "terraform/stacks/nas-monitor"
MONITOR_SCRIPT = "nas_monitor.py"
#: A pinned Python image: the script needs its standard library and nothing else.
MONITOR_IMAGE = "docker.io/library/python:3.13.1-alpine3.21"
#: The Pushgateway group the monitor pushes to: ``/metrics/job/nas-monitor/sync/full``.
MONITOR_METRICS_GROUP = (("job", "nas-monitor"), ("sync", "full"))
#: The image's ``nobody``: the monitor writes nothing and needs no privilege.
_NOBODY = 65534
#: A run is a handful of API calls, each bounded by the script's own timeout.
_ACTIVE_DEADLINE_SECONDS = 300


def monitor_env(catalog: Catalog, truenas: Truenas) -> tuple[EnvVar, ...]:
    """The monitor's environment: where the NAS and the Pushgateway are, and what to ask.

    ``TRUENAS_API_KEY_USER`` is there only when the catalog names the key's user: the script
    then logs in with ``auth.login_ex``, else with ``auth.login_with_api_key``."""
    group = "/".join(f"{key}/{value}" for key, value in MONITOR_METRICS_GROUP)
    user = (
        ()
        if truenas.api_key_user is None
        else (EnvVar("TRUENAS_API_KEY_USER", truenas.api_key_user),)
    )
    return (
        EnvVar("TRUENAS_URL", truenas.url),
        EnvVar("TRUENAS_PROTOCOL", truenas.protocol),
        EnvVar(
            "TRUENAS_API_KEY",
            secret=SecretRef(name=truenas.api_key_secret, key=truenas.api_key_key),
        ),
        *user,
        EnvVar("TRUENAS_VERIFY_TLS", "true" if truenas.verify_tls else "false"),
        EnvVar("CLOUDSYNC_DESCRIPTION", CLOUDSYNC_DESCRIPTION),
        EnvVar("PUSHGATEWAY_URL", catalog.settings.pushgateway),
        EnvVar("PUSHGATEWAY_GROUP", group),
    )


def _starting_deadline(schedule: Schedule) -> int:
    """A quarter of the largest gap, 60 s to one hour, as the backup jobs have it."""
    quarter = int(schedule.max_gap().total_seconds()) // 4
    return max(60, min(3600, quarter))


def _context(catalog: Catalog, truenas: Truenas) -> dict[str, Any]:
    schedule = truenas.monitor_schedule
    return {
        "truenas": truenas,
        "description": CLOUDSYNC_DESCRIPTION,
        "image": MONITOR_IMAGE,
        "script": MONITOR_SCRIPT,
        "scripts_mount": SCRIPTS_MOUNT,
        "schedule": schedule,
        "timezone": schedule.zone,
        "starting_deadline_seconds": _starting_deadline(schedule),
        "active_deadline_seconds": _ACTIVE_DEADLINE_SECONDS,
        "user": _NOBODY,
        "env": monitor_env(catalog, truenas),
    }


@register_generator(
    "nas-monitor",
    description="out/terraform/stacks/nas-monitor: the TrueNAS Cloud Sync monitor",
)
def generate_nas_monitor(catalog: Catalog) -> Iterator[OutputFile]:
    settings = catalog.settings
    truenas = settings.truenas
    if truenas is None or settings.offsite is None or settings.offsite.full_sync_by != "cloudsync":
        return
    context = _context(catalog, truenas)
    yield OutputFile(f"{STACK}/monitor.tf", TemplateRender("nas-monitor/monitor.tf.j2", context))
    yield OutputFile(
        f"{STACK}/{MONITOR_SCRIPT}", TemplateRender(f"nas-monitor/{MONITOR_SCRIPT}", context)
    )
    yield OutputFile(f"{STACK}/versions.tf", TemplateRender("terraform/versions.tf.j2"))
