"""The CNPG restore drill (``kubernetes/drills/<namespace>/<service>/drill.sh``), run for real
against a model of the cluster: the Kubernetes API server, the CloudNativePG operator and the
live Cluster whose archive the drill recovers.

An inline catalog (a cnpg service with a table check and a query check) is rendered with the
cnpg and drills generators. The drill folder's ConfigMap files (drill.sh, lib.sh,
cluster.json) are written into a folder of their own and drill.sh runs under busybox sh, as
in the alpine/k8s image, with the CronJob container's environment and a PATH of busybox's
applets, Debian's jq and curl, and a stand-in ``kubectl``. No real cluster exists, so the
stand-in models one from the documented behaviour of kubectl, the API server and CNPG, never
from the generator's code:

- kubectl: exactly the verbs and flags the drill uses (``get TYPE NAME -o jsonpath=``,
  ``delete TYPE/NAME --ignore-not-found --wait --timeout``, ``create -f -``,
  ``wait TYPE/NAME --for=condition=C --timeout``, ``exec POD -c CONTAINER -- CMD``); anything
  else is refused (exit 1, with a message). jsonpath prints missing fields as nothing, as
  kubectl's printer does; ``wait`` polls until the condition holds and fails with
  ``timed out waiting for the condition`` when ``--timeout`` runs out (it never gives up
  early on a failing object); ``exec`` does not forward stdin without ``-i`` and ends with
  ``command terminated with exit code N`` like kubectl.
- The API server: every invocation is recorded (argv, stdin, exit code); every request is
  authorised as the CronJob's ServiceAccount through the generated Role and RoleBinding
  (rbac.yaml), kubectl's GETs, lists and watches included;
  ``create`` validates the object strictly against the upstream CRD (tests/crds.py
  ``validate()``, as ``--validate=strict`` does), runs CNPG's admission rules (one bootstrap
  method; ``bootstrap.recovery.source`` must name an ``externalClusters`` entry holding an
  object store or a plugin) and answers AlreadyExists for a name in use. A Cluster has no
  finalizer: deleting it removes the object at once (kubectl's background propagation) and
  the garbage collector then terminates its instance pod; a pod name is unique, so a new
  Cluster of the same name only gets its ``<name>-1`` once the old pod is gone.
- The operator, bootstrapping by recovery: the external cluster's barman-cloud plugin
  parameters name an ObjectStore and a serverName; with no base backup there it reports
  ``no target backup found``. The image's PostgreSQL major must be the archive's (defaulting
  webhook: the operator's default image when the Cluster names none), the archive must fit
  ``storage.size``, and a Cluster that would archive its own WAL into a folder already
  holding an archive is refused (CNPG's ``Expected empty archive``). The archive is a
  base backup of a seeded server (``pg_basebackup -F tar``: base.tar, the WAL it needs
  inside). The recovery extracts it into the instance's volume and starts ``<name>-1`` as a
  real PostgreSQL server listening on a unix socket only (no TCP), which replays that WAL
  (a base backup without it never starts, as when the WAL archive misses segments). Its
  ``postgresql.conf`` and ``pg_hba.conf`` are the operator's (``local all all peer
  map=local``, as CNPG writes them); ``exec ... psql`` runs the real psql against it as the
  container's ``postgres`` user. Only when the server answers is the Cluster Ready with
  ``status.currentPrimary`` ``<name>-1``; a failed recovery leaves it ``Setting up primary``
  with the reason.

The API server, operator and garbage collector run in the test process (a unix socket
server); ``kubectl`` on PATH is a thin client that sends it its arguments. Loading the CRD
takes seconds, too long for every ``create`` of a process of its own, and the interpreter may
be out of the unprivileged account's reach. PostgreSQL refuses root: as root the servers and
psql run as the unprivileged account (the instance pod's user), and so does the drill when
that account can run the test's interpreter (else the drill runs as the test's user).

A good archive passes, pushes the drill's metrics and leaves the scratch Cluster deleted and
its server stopped; an archive that cannot be recovered, a table with too few rows, a
database missing from the archive, a data set below the catalog's ``min_size`` each fail with
a clear message, push ``restore_drill_last_run_success 0`` without a success timestamp and
leave no server running; the scratch Cluster a killed drill left behind is deleted first.
Every case checks the live Cluster was only read. Negative controls: a cluster.json the CRD
rejects fails the drill, and the stand-in refuses what kubectl, the API server or CNPG would.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

pytest.register_assert_rewrite("engines", "jobs")

import crds  # noqa: E402
from conftest import MINIMAL_HEAD, require_tool  # noqa: E402
from engines import (  # noqa: E402
    FakePushgateway,
    _unprivileged_account,
    parse_samples,
    postgres_bindir,
    require_postgres,
)
from jobs import shell_argv  # noqa: E402

from homeops_gen import build_plan, load_catalog_text, registered_generators, render_plan  # noqa: E402

pytestmark = [
    pytest.mark.tool("busybox"),
    pytest.mark.tool("jq"),
    pytest.mark.tool("curl"),
    pytest.mark.tool("postgres"),
]

SERVICE = "photos-db"
NAMESPACE = "photos"
SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
    "restore_drill_restored_items",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
CHECKS: list[dict[str, object]] = [
    {"database": "app", "table": "items", "min_rows": 2},
    {"database": "app", "query": "SELECT count(*) > 0 FROM items"},
]
#: What the passing drill logs for the two checks.
CHECKS_PASSED = (
    "check passed: table items holds at least 2 rows in app",
    "check passed: the query 'SELECT count(*) > 0 FROM items' is true in app",
)
#: The live Cluster's own fields (the user's manifest; the archiving is the generated patch's).
LIVE_INSTANCES = 3
LIVE_STORAGE = "20Gi"
#: The failing-recovery cases' wait budget (the generator's floor is 60 s; a test needs less).
SHORT_WAIT_SECONDS = 3
#: Seconds the model gives a deleted Cluster's pods to go, and a drill to run.
SETTLE_SECONDS = 60.0
DRILL_TIMEOUT = 120.0

# --- what the model knows of CNPG ------------------------------------------------------------
CNPG_GROUP = "postgresql.cnpg.io"
CLUSTER_TYPES = {"cluster", "clusters", f"cluster.{CNPG_GROUP}", f"clusters.{CNPG_GROUP}"}
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
#: The image CNPG's defaulting webhook gives a Cluster that names none (operator 1.26).
DEFAULT_IMAGE = "ghcr.io/cloudnative-pg/postgresql:17.5"
#: The containers of a CNPG instance pod that kubectl exec may name.
INSTANCE_CONTAINERS = {"postgres"}
#: The seeded server's initdb; its base backups with the WAL they need; a fast, clean stop.
INITDB_OPTIONS = ("-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
INITDB_OPTIONS += ("--no-instructions", "--wal-segsize=1")
BASEBACKUP = ("-F", "tar", "-c", "fast", "--no-sync")
STOP_FAST = ("-m", "fast", "-w", "-t", "30", "stop")
#: The port CNPG instances listen on (here: the number of the unix socket only).
PG_PORT = "5432"
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# --------------------------------------------------------------------------------------------
# Accounts and PostgreSQL programs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    """The PostgreSQL programs, and the account the servers (and psql in a pod) run as."""

    bindir: Path
    psql: Path
    major: str
    version: str
    #: ``subprocess`` keywords that switch to the unprivileged account (empty: ourselves).
    run_as: Mapping[str, Any]
    uid: int
    gid: int
    user_name: str

    def run(
        self,
        argv: list[str | Path],
        *,
        what: str,
        check: bool = True,
        home: str | Path = "/",
        cwd: str | Path = "/",
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run a program as the servers' account, from ``cwd``, with a clean environment."""
        proc = subprocess.run(
            [str(a) for a in argv],
            env=server_env(home),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
            **self.run_as,
            **kwargs,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def folder(self, path: Path, mode: int) -> Path:
        """A new folder of the servers' account."""
        path.mkdir()
        if self.run_as:
            os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path


def server_env(home: str | Path) -> dict[str, str]:
    """A clean environment for the servers and clients (no PG* of the caller)."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": str(home)}


def postgres_programs() -> Postgres:
    require_postgres()
    bindir = postgres_bindir()
    assert bindir is not None
    for name in ("pg_ctl", "pg_basebackup"):
        if not (bindir / name).exists():
            require_tool(name)
    psql = bindir / "psql" if (bindir / "psql").exists() else Path(require_tool("psql"))
    version = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\s([0-9]+)(?:\.([0-9]+))?", version)
    assert match is not None, version
    major, minor = match.group(1), match.group(2) or "0"
    if os.geteuid() == 0:
        account = _unprivileged_account()
        run_as: dict[str, Any] = {
            "user": account.pw_uid,
            "group": account.pw_gid,
            "extra_groups": [],
        }
        uid, gid, name = account.pw_uid, account.pw_gid, account.pw_name
    else:
        import pwd

        run_as, uid, gid = {}, os.geteuid(), os.getegid()
        name = pwd.getpwuid(uid).pw_name
    return Postgres(bindir, psql, major, f"{major}.{minor}", run_as, uid, gid, name)


def processes_under(folder: Path) -> dict[int, str]:
    """The running processes whose command line names a path below ``folder``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(folder).encode() in arg for arg in argv):
            found[int(entry.name)] = " ".join(a.decode(errors="replace") for a in argv)
    return found


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quantity_bytes(text: str) -> int | None:
    match = _QUANTITY.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def archived_major(base_tar: Path) -> str:
    """The PostgreSQL major version a base backup is of (its PG_VERSION)."""
    with tarfile.open(base_tar) as tar:
        for name in ("PG_VERSION", "./PG_VERSION"):
            with contextlib.suppress(KeyError):
                member = tar.extractfile(name)
                if member is not None:
                    return member.read().decode("ascii").strip()
    raise RecoveryFailed(f"{base_tar} holds no PG_VERSION")


def bytes_below(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# The model: kubectl's client side, the API server, the CNPG operator, the garbage collector
# --------------------------------------------------------------------------------------------


class Refused(Exception):
    """What kubectl prints (stderr) and exits with when it, the API server or a webhook
    refuses a request."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message.rstrip("\n") + "\n"
        self.code = code


def unmodelled(what: str) -> Refused:
    return Refused(f"kubectl (test stand-in): not modelled: {what}")


class RecoveryFailed(Exception):
    """Why the operator could not bring the recovered primary up."""


@dataclass(eq=False)
class Pod:
    """An instance pod: the live Cluster's (no server here) or a scratch Cluster's."""

    name: str
    owner_uid: str
    phase: str  # Pending, Running, Failed, Terminating
    live: bool = False
    #: The instance's folder: pgdata/ (its data), run/ (its socket), postgres.log.
    instance: Path | None = None
    #: Set once the operator is done with the pod (up or failed): the collector waits for it.
    settled: threading.Event = field(default_factory=threading.Event)


# (flag as typed) -> (key, "bool" | "value"), for each verb the drill uses.
_FLAGS: dict[str, dict[str, tuple[str, str]]] = {
    "get": {"-o": ("output", "value"), "--output": ("output", "value")},
    "delete": {
        "--ignore-not-found": ("ignore_not_found", "bool"),
        "--wait": ("wait", "bool"),
        "--timeout": ("timeout", "value"),
        "--cascade": ("cascade", "value"),
    },
    "create": {"-f": ("filename", "value"), "--filename": ("filename", "value")},
    "wait": {"--for": ("for", "value"), "--timeout": ("timeout", "value")},
    "exec": {"-c": ("container", "value"), "--container": ("container", "value")},
}


def parse_args(verb: str, args: list[str]) -> tuple[list[str], dict[str, Any], list[str] | None]:
    """Positional arguments, flags and (exec) the command after ``--``, as cobra reads them;
    a flag the model does not know is refused."""
    flags = _FLAGS[verb]
    positionals: list[str] = []
    values: dict[str, Any] = {}
    command: list[str] | None = None
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            if verb != "exec":
                raise unmodelled(f"'--' in kubectl {verb}")
            command = args[i:]
            break
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            attached = bool(eq)
        else:
            name, value = token[:2], token[2:]
            attached = bool(value)
            value = value.removeprefix("=")
        if name not in flags:
            raise unmodelled(f"the flag {name} of kubectl {verb} (modelled: {sorted(flags)})")
        key, kind = flags[name]
        if kind == "bool":
            value = value if attached else "true"
            if value not in ("true", "false"):
                raise Refused(
                    f'error: invalid argument "{value}" for "{name}" flag: '
                    f'strconv.ParseBool: parsing "{value}": invalid syntax'
                )
            values[key] = value == "true"
            continue
        if not attached:
            if i >= len(args):
                raise Refused(f"error: flag needs an argument: {name}")
            value = args[i]
            i += 1
        values[key] = value
    return positionals, values, command


def parse_duration(text: str, flag: str) -> float:
    """A Go duration (``14280s``, ``1m30s``); ``0`` is zero."""
    if text == "0":
        return 0.0
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Refused(
            f'error: invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"'
        )
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def cluster_type(word: str) -> None:
    if word in CLUSTER_TYPES:
        return
    if word in ("pod", "pods", "po", "clusters.cluster.x-k8s.io"):
        raise unmodelled(f"the resource type {word} here (modelled: {sorted(CLUSTER_TYPES)})")
    raise Refused(f'error: the server doesn\'t have a resource type "{word}"')


def jsonpath(template: str, obj: Mapping[str, Any]) -> str:
    """kubectl's ``-o jsonpath=`` for field chains (``{.a.b}``) and literal text; a missing
    field prints nothing (kubectl's printer allows missing keys)."""
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"\{([^{}]*)\}", template):
        literal = template[pos : match.start()]
        if "{" in literal or "}" in literal:
            raise unmodelled(f"the jsonpath template {template!r}")
        out.append(literal)
        expression = match.group(1)
        if not re.fullmatch(r"(\.[A-Za-z0-9_-]+)+", expression):
            raise unmodelled(f"the jsonpath expression {{{expression}}} (only field chains)")
        pos = match.end()
        value: Any = obj
        for key in expression[1:].split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            pass
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, dict | list):
            out.append(json.dumps(value, separators=(",", ":")))
        else:
            out.append(str(value))
    literal = template[pos:]
    if "{" in literal or "}" in literal:
        raise unmodelled(f"the jsonpath template {template!r}")
    out.append(literal)
    return "".join(out)


def condition(status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_iso(),
    }


class FakeCluster:
    """One namespace of a cluster with CNPG and the barman-cloud plugin installed (see the
    module docstring). ``handle(argv, stdin)`` answers one kubectl invocation; ``calls``
    records every one (argv, stdin, exit code). ``object_stores`` maps an ObjectStore's name
    to its archives: serverName -> a base backup folder."""

    def __init__(
        self,
        base: Path,
        postgres: Postgres,
        *,
        namespace: str,
        user: str,
        rules: list[dict[str, Any]],
        object_stores: dict[str, dict[str, Path]],
    ) -> None:
        self.base = base
        self.postgres = postgres
        self.namespace = namespace
        self.user = user
        self.rules = rules
        self.object_stores = object_stores
        self.objects: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, Pod] = {}
        self.calls: list[dict[str, Any]] = []
        self.instances = postgres.folder(base / "instances", 0o755)
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []

    # -- state -------------------------------------------------------------------------------
    def instance_dir(self, uid: str) -> Path:
        """The folder of a Cluster's instance (short: its unix socket's path is limited)."""
        return self.instances / uid[:8]

    def add_live_cluster(self, obj: dict[str, Any]) -> None:
        """The live Cluster (a copy) and its running instance pods (no server of ours)."""
        obj = copy.deepcopy(obj)
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        with self._lock:
            self.objects[name] = obj
            for n in range(1, obj["spec"]["instances"] + 1):
                pod = Pod(f"{name}-{n}", obj["metadata"]["uid"], "Running", live=True)
                pod.settled.set()
                self.pods[pod.name] = pod

    def object(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.objects.get(name)
            return copy.deepcopy(found) if found is not None else None

    def _owned(self, name: str, uid: str) -> dict[str, Any] | None:
        found = self.objects.get(name)
        if found is None or found["metadata"]["uid"] != uid:
            return None
        return found

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait for the operator and the garbage collector to finish what they started."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the model's controllers still run after {timeout} s")
            alive[0].join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Delete everything (the garbage collector stops the servers), then make sure."""
        with self._lock:
            for name in list(self.objects):
                self._remove(name)
        with contextlib.suppress(AssertionError):
            self.settle()
        for pid in processes_under(self.instances):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # -- requests ----------------------------------------------------------------------------
    def handle(self, argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        call: dict[str, Any] = {"argv": list(argv), "stdin": stdin, "code": None}
        with self._lock:
            self.calls.append(call)
        try:
            if not argv:
                raise unmodelled("kubectl without a command")
            verb, args = argv[0], argv[1:]
            verbs = {
                "get": self._get,
                "delete": self._delete,
                "create": self._create,
                "wait": self._wait,
                "exec": self._exec,
            }
            if verb not in verbs:
                raise unmodelled(f'the command "{verb}" (modelled: {sorted(verbs)})')
            code, out, err = verbs[verb](*parse_args(verb, args), stdin)
        except Refused as refusal:
            code, out, err = refusal.code, "", refusal.message
        except Exception:  # a bug of the model: loud, never a silent pass
            code, out = 1, ""
            err = f"kubectl (test stand-in): internal error:\n{traceback.format_exc()}"
        call["code"] = code
        return code, out, err

    def _authorize(self, verb: str, group: str, resource: str, name: str | None) -> None:
        """RBAC: one rule of the ServiceAccount's Role must grant the verb."""
        for rule in self.rules:
            groups, resources, verbs = rule["apiGroups"], rule["resources"], rule["verbs"]
            if not (group in groups or "*" in groups):
                continue
            if not (resource in resources or "*" in resources):
                continue
            if not (verb in verbs or "*" in verbs):
                continue
            names = rule.get("resourceNames")
            if names and name not in names:
                continue
            return
        kind = f"{resource}.{group}" if group else resource
        subject = f'{kind} "{name}"' if name else kind
        raise Refused(
            f'Error from server (Forbidden): {subject} is forbidden: User "{self.user}" '
            f'cannot {verb} resource "{resource}" in API group "{group}" '
            f'in the namespace "{self.namespace}"'
        )

    @staticmethod
    def _not_found(name: str) -> Refused:
        return Refused(f'Error from server (NotFound): clusters.{CNPG_GROUP} "{name}" not found')

    def _get(
        self, positionals: list[str], flags: dict[str, Any], command: Any, stdin: Any
    ) -> tuple[int, str, str]:
        if len(positionals) != 2:
            raise unmodelled(f"kubectl get {' '.join(positionals)} (only: get TYPE NAME -o ...)")
        kind, name = positionals
        cluster_type(kind)
        output = flags.get("output", "")
        if not output.startswith("jsonpath="):
            raise unmodelled(f"the output format {output or '(the table)'} (only jsonpath=)")
        self._authorize("get", CNPG_GROUP, "clusters", name)
        obj = self.object(name)
        if obj is None:
            raise self._not_found(name)
        return 0, jsonpath(output.removeprefix("jsonpath="), obj), ""

    @staticmethod
    def _named(word: str) -> str:
        kind, slash, name = word.partition("/")
        if not slash or not name:
            raise unmodelled(f"the argument {word} (only TYPE/NAME)")
        cluster_type(kind)
        return name

    def _remove(self, name: str) -> None:
        """Delete the object now (no finalizer) and collect its pods in the background."""
        with self._lock:
            obj = self.objects.pop(name)
            uid = obj["metadata"]["uid"]
            for pod in [p for p in self.pods.values() if p.owner_uid == uid]:
                pod.phase = "Terminating"
                self._spawn(self._collect, pod)

    def _delete(
        self, positionals: list[str], flags: dict[str, Any], command: Any, stdin: Any
    ) -> tuple[int, str, str]:
        if not positionals:
            raise Refused("error: resource(s) were provided, but no name was specified")
        names = [self._named(word) for word in positionals]
        wait = flags.get("wait", True)
        cascade = flags.get("cascade", "background")
        if cascade not in ("background", "foreground"):
            raise unmodelled(f"kubectl delete --cascade={cascade}")
        timeout = parse_duration(flags.get("timeout", "0s"), "--timeout") or 60.0
        out, errors, deleted = [], [], []
        for name in names:
            self._authorize("get", CNPG_GROUP, "clusters", name)
            with self._lock:
                exists = name in self.objects
                if exists:
                    self._authorize("delete", CNPG_GROUP, "clusters", name)
                    self._remove(name)
            if not exists:
                if not flags.get("ignore_not_found", False):
                    errors.append(self._not_found(name).message)
                continue
            out.append(f'cluster.{CNPG_GROUP} "{name}" deleted\n')
            deleted.append(name)
        if wait and deleted:
            for verb in ("list", "watch"):
                self._authorize(verb, CNPG_GROUP, "clusters", None)
            deadline = time.monotonic() + timeout
            while any(self.object(n) is not None for n in deleted):
                if time.monotonic() > deadline:
                    errors.append(f"error: timed out waiting for the condition on {deleted}\n")
                    break
                time.sleep(0.05)
            if cascade == "foreground":
                # Foreground deletion: the owner goes only after the collector removed what
                # it owns (the instance pod and its claim).
                self.settle(max(1.0, deadline - time.monotonic()))
        return (1 if errors else 0), "".join(out), "".join(errors)

    def _create(
        self, positionals: list[str], flags: dict[str, Any], command: Any, stdin: str | None
    ) -> tuple[int, str, str]:
        if positionals or flags.get("filename") != "-" or stdin is None:
            raise unmodelled("kubectl create other than `create -f -`")
        try:
            documents = [d for d in yaml.safe_load_all(stdin) if d is not None]
        except yaml.YAMLError as error:
            raise Refused(f"error: error parsing STDIN: {error}") from None
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise unmodelled(f"{len(documents)} objects on stdin (only one Cluster)")
        obj: dict[str, Any] = documents[0]
        if (obj.get("apiVersion"), obj.get("kind")) != (f"{CNPG_GROUP}/v1", "Cluster"):
            raise unmodelled(f"creating {obj.get('kind')} {obj.get('apiVersion')} (only Clusters)")
        creating = 'error when creating "STDIN"'
        self._authorize("create", CNPG_GROUP, "clusters", None)
        metadata = obj.get("metadata") or {}
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(metadata, dict) and metadata.get("namespace", self.namespace) != (
            self.namespace
        ):
            raise Refused(
                f'error: the namespace from the provided object "{metadata["namespace"]}" does '
                f'not match the namespace "{self.namespace}". You must pass '
                "'--namespace=...' to perform this operation."
            )
        problems = crds.validate(obj)
        if problems:
            raise Refused(
                f'Error from server (BadRequest): {creating}: Cluster in version "v1" cannot '
                f"be handled as a Cluster: strict decoding error: {'; '.join(problems)}"
            )
        invalid = self._admission_problems(obj)
        if invalid:
            raise Refused(
                f'Error from server (Forbidden): {creating}: admission webhook "vcluster.cnpg.io" '
                f'denied the request: Cluster.{CNPG_GROUP} "{name}" is invalid: '
                + "; ".join(invalid)
            )
        stored = copy.deepcopy(obj)
        stored.setdefault("spec", {}).setdefault(
            "imageName", DEFAULT_IMAGE
        )  # the defaulting webhook
        uid = str(uuid.uuid4())
        stored["metadata"].update(
            namespace=self.namespace, uid=uid, generation=1, creationTimestamp=now_iso()
        )
        stored["status"] = {}
        with self._lock:
            if name in self.objects:
                raise Refused(
                    f"Error from server (AlreadyExists): {creating}: "
                    f'clusters.{CNPG_GROUP} "{name}" already exists'
                )
            self.objects[name] = stored
        self._spawn(self._reconcile, name, uid)
        return 0, f"cluster.{CNPG_GROUP}/{name} created\n", ""

    @staticmethod
    def _admission_problems(obj: Mapping[str, Any]) -> list[str]:
        """CNPG's validating webhook, for what a recovery needs."""
        spec = obj.get("spec") or {}
        bootstrap = spec.get("bootstrap") or {}
        methods = [m for m in ("initdb", "recovery", "pg_basebackup") if m in bootstrap]
        if len(methods) > 1:
            return [f"spec.bootstrap: Invalid value: {methods}: only one bootstrap method"]
        if methods != ["recovery"]:
            raise unmodelled(f"bootstrap {methods or ['initdb (the default)']} (only recovery)")
        recovery = bootstrap["recovery"]
        source = recovery.get("source")
        if source is None:
            raise unmodelled("recovery without source (from a Backup or volume snapshots)")
        externals = {e.get("name"): e for e in spec.get("externalClusters") or []}
        if source not in externals:
            return [
                f'spec.bootstrap.recovery.source: Invalid value: "{source}": '
                f"External cluster {source} not found"
            ]
        external = externals[source]
        if "barmanObjectStore" not in external and "plugin" not in external:
            return [
                f'spec.externalClusters: Invalid value: "{source}": recovery needs a '
                "barmanObjectStore or a plugin"
            ]
        return []

    def _wait(
        self, positionals: list[str], flags: dict[str, Any], command: Any, stdin: Any
    ) -> tuple[int, str, str]:
        if len(positionals) != 1:
            raise unmodelled(f"kubectl wait {' '.join(positionals)} (only one TYPE/NAME)")
        name = self._named(positionals[0])
        wanted = re.fullmatch(r"condition=([A-Za-z]+)(?:=([A-Za-z]+))?", flags.get("for", ""))
        if wanted is None:
            raise unmodelled(f"--for={flags.get('for', '')} (only condition=NAME[=VALUE])")
        kind, value = wanted.group(1), (wanted.group(2) or "True")
        timeout = parse_duration(flags.get("timeout", "30s"), "--timeout")
        for verb in ("get", "list", "watch"):
            self._authorize(verb, CNPG_GROUP, "clusters", name if verb == "get" else None)
        deadline = time.monotonic() + timeout
        while True:
            obj = self.object(name)
            if obj is None:
                raise self._not_found(name)
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(
                c.get("type") == kind and str(c.get("status")).lower() == value.lower()
                for c in conditions
            ):
                return 0, f"cluster.{CNPG_GROUP}/{name} condition met\n", ""
            left = deadline - time.monotonic()
            if left <= 0:
                raise Refused(f"error: timed out waiting for the condition on clusters/{name}")
            time.sleep(min(0.05, left))

    def _exec(
        self,
        positionals: list[str],
        flags: dict[str, Any],
        command: list[str] | None,
        stdin: Any,
    ) -> tuple[int, str, str]:
        if len(positionals) != 1:
            raise unmodelled(f"kubectl exec {' '.join(positionals)} (only: exec POD -c C -- ...)")
        if not command:
            raise Refused("error: you must specify at least one command for the container")
        (name,) = positionals
        container = flags.get("container")
        if container is None:
            raise unmodelled("exec without -c (the pod's default container)")
        self._authorize("get", "", "pods", name)
        with self._lock:
            pod = self.pods.get(name)
        if pod is None:
            raise Refused(f'Error from server (NotFound): pods "{name}" not found')
        self._authorize("create", "", "pods/exec", name)
        if container not in INSTANCE_CONTAINERS:
            raise Refused(
                f"Error from server (BadRequest): container {container} is not valid for pod {name}"
            )
        if pod.live:
            raise unmodelled(f"exec in the live Cluster's pod {name} (the model runs no server)")
        if pod.phase != "Running" or pod.instance is None:
            raise Refused(
                f'error: unable to upgrade connection: container not found ("{container}")'
            )
        if command[0] != "psql":
            raise unmodelled(f"running {command[0]} in the postgres container (only psql)")
        env = server_env(pod.instance)
        # The container's user is postgres; CNPG points PGHOST at the instance's socket.
        env.update(PGHOST=str(pod.instance / "run"), PGPORT=PG_PORT, PGUSER="postgres")
        proc = subprocess.run(
            [str(self.postgres.psql), *command[1:]],
            env=env,
            stdin=subprocess.DEVNULL,  # kubectl exec without -i sends no stdin
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            check=False,
            **self.postgres.run_as,
        )
        err = proc.stderr
        if proc.returncode != 0:
            err += f"command terminated with exit code {proc.returncode}\n"
        return proc.returncode, proc.stdout, err

    # -- the operator ------------------------------------------------------------------------
    def _set_status(self, name: str, uid: str, status: dict[str, Any]) -> None:
        with self._lock:
            obj = self._owned(name, uid)
            if obj is not None:
                obj["status"] = status

    @staticmethod
    def _setting_up(pod: str, reason: str) -> dict[str, Any]:
        return {
            "phase": "Setting up primary",
            "phaseReason": reason,
            "instances": 1,
            "readyInstances": 0,
            "targetPrimary": pod,
            "conditions": [condition("False", "ClusterIsNotReady", "Cluster Is Not Ready")],
        }

    def _reconcile(self, name: str, uid: str) -> None:
        pod_name = f"{name}-1"
        self._set_status(name, uid, self._setting_up(pod_name, f"Creating {pod_name}"))
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:  # a pod name is unique: an old incarnation's pod must be gone first
            with self._lock:
                obj = self._owned(name, uid)
                if obj is None:
                    return
                if pod_name not in self.pods:
                    pod = Pod(pod_name, uid, "Pending")
                    self.pods[pod_name] = pod
                    obj = copy.deepcopy(obj)
                    break
            if time.monotonic() > deadline:
                reason = f"the pod {pod_name} of an earlier Cluster still exists"
                self._set_status(name, uid, self._setting_up(pod_name, reason))
                return
            time.sleep(0.05)
        try:
            try:
                self._recover(obj, pod)
                problem = None
            except RecoveryFailed as failure:
                problem = str(failure)
            with self._lock:
                if pod.phase == "Pending":
                    pod.phase = "Running" if problem is None else "Failed"
                if problem is not None:
                    self._set_status(name, uid, self._setting_up(pod_name, problem))
                elif pod.phase == "Running":
                    status = {
                        "phase": "Cluster in healthy state",
                        "instances": 1,
                        "readyInstances": 1,
                        "currentPrimary": pod_name,
                        "targetPrimary": pod_name,
                        "conditions": [condition("True", "ClusterIsReady", "Cluster is Ready")],
                    }
                    self._set_status(name, uid, status)
        finally:
            pod.settled.set()

    def _archive(self, external: Mapping[str, Any]) -> Path:
        """The base backup the external cluster's object store holds (barman-cloud plugin)."""
        plugin = external.get("plugin")
        if plugin is None:
            raise RecoveryFailed("the model holds archives of barman-cloud ObjectStores only")
        if plugin.get("name") != BARMAN_PLUGIN:
            raise RecoveryFailed(f"the plugin {plugin.get('name')} is not installed")
        parameters = plugin.get("parameters") or {}
        store_name = parameters.get("barmanObjectName")
        if store_name not in self.object_stores:
            raise RecoveryFailed(f'ObjectStore "{store_name}" not found in {self.namespace}')
        server = parameters.get("serverName", external["name"])
        archive = self.object_stores[store_name].get(server)
        if archive is None:
            raise RecoveryFailed(
                f"no target backup found in ObjectStore {store_name} for serverName {server}"
            )
        return archive

    def _refuse_archiving_over(self, obj: Mapping[str, Any]) -> None:
        """A Cluster archiving WAL where an archive already is fails CNPG's check."""
        spec = obj["spec"]
        if (spec.get("backup") or {}).get("barmanObjectStore"):
            raise RecoveryFailed("the model does not archive in-tree (spec.backup)")
        for plugin in spec.get("plugins") or []:
            if plugin.get("name") != BARMAN_PLUGIN or plugin.get("isWALArchiver") is False:
                continue
            parameters = plugin.get("parameters") or {}
            store = self.object_stores.get(parameters.get("barmanObjectName"), {})
            server = parameters.get("serverName", obj["metadata"]["name"])
            if server in store:
                raise RecoveryFailed(
                    f"WAL archive check failed for server {server}: Expected empty archive"
                )

    def _recover(self, obj: Mapping[str, Any], pod: Pod) -> None:
        spec = obj["spec"]
        source = spec["bootstrap"]["recovery"]["source"]
        (external,) = [e for e in spec["externalClusters"] if e["name"] == source]
        archive = self._archive(external)
        self._refuse_archiving_over(obj)
        image = spec["imageName"]
        tag = re.search(
            r":([0-9]+)(?:\.[0-9]+)*(?:-[A-Za-z0-9.-]*)?(?:@sha256:[0-9a-f]{64})?$", image
        )
        base_tar = archive / "base.tar"
        if not base_tar.is_file():
            raise RecoveryFailed(f"no base.tar in the archive {archive}")
        archived = archived_major(base_tar)
        if tag is None or tag.group(1) != archived:
            raise RecoveryFailed(
                f"the archive is of PostgreSQL {archived} and the image {image} runs another "
                "major version: a base backup replays only into its own"
            )
        if archived != self.postgres.major:
            raise RecoveryFailed(f"the model runs PostgreSQL {self.postgres.major} only")
        size = quantity_bytes(str((spec.get("storage") or {}).get("size", "")))
        if size is None:
            raise RecoveryFailed("the Cluster has no storage.size")
        needed = bytes_below(archive)
        if needed > size:
            raise RecoveryFailed(f"the archive's {needed} bytes do not fit storage.size {size}")
        instance = self.postgres.folder(self.instance_dir(obj["metadata"]["uid"]), 0o700)
        pod.instance = instance
        run = self.postgres.folder(instance / "run", 0o700)
        pgdata = self.postgres.folder(instance / "pgdata", 0o700)
        # The recovery job: the base backup into the instance's volume.
        self.postgres.run(["tar", "-xf", base_tar, "-C", pgdata], what="restoring base.tar")
        # The instance manager's configuration (CNPG writes postgresql.conf and pg_hba.conf).
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{run}'",
            "port": PG_PORT,
            "fsync": "off",
            "logging_collector": "off",
            "max_connections": "20",
            "shared_buffers": "'16MB'",
        }
        with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# the operator's settings\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (pgdata / "pg_hba.conf").write_text("local all all peer map=local\n", encoding="utf-8")
        (pgdata / "pg_ident.conf").write_text(
            f"local {self.postgres.user_name} postgres\n", encoding="utf-8"
        )
        log = instance / "postgres.log"
        started = self.postgres.run(
            [self.postgres.bindir / "pg_ctl", "-D", pgdata, "-l", log, "-w", "-t", "60", "start"],
            what="pg_ctl start",
            check=False,
            home=instance,
            cwd=instance,
            start_new_session=True,
        )
        if started.returncode != 0:
            lines = (
                log.read_text(encoding="utf-8", errors="replace").splitlines()
                if log.exists()
                else []
            )
            fatal = [line for line in lines if "FATAL" in line or "PANIC" in line]
            raise RecoveryFailed(
                "the recovered instance did not start: "
                + (fatal[-1] if fatal else started.stderr.strip() or "no log")
            )

    # -- the garbage collector ---------------------------------------------------------------
    def _collect(self, pod: Pod) -> None:
        """A deleted Cluster's pod: once the operator is done with it, stop its server
        (a graceful, fast shutdown) and remove its volume."""
        pod.settled.wait(SETTLE_SECONDS)
        if pod.instance is not None:
            pgdata = pod.instance / "pgdata"
            if (pgdata / "postmaster.pid").exists():
                stopped = self.postgres.run(
                    [self.postgres.bindir / "pg_ctl", "-D", pgdata, *STOP_FAST],
                    what="pg_ctl stop",
                    check=False,
                    home=pod.instance,
                    cwd=pod.instance,
                )
                if stopped.returncode != 0:
                    for pid in processes_under(pgdata):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
            shutil.rmtree(pod.instance, ignore_errors=True)
        with self._lock:
            if self.pods.get(pod.name) is pod:
                del self.pods[pod.name]


# The stand-in on PATH: a thin client of the model's API server.
_KUBECTL = '''\
#!{python} -I
"""kubectl, as tests/test_drills_cnpg.py models it: the arguments (and the standard input of
`create -f -`) go to the test's model of the API server; its answer is printed and its status
is the exit status."""
import json
import socket
import sys

args = sys.argv[1:]
reads_stdin = "--filename=-" in args or any(
    a == "-f" and b == "-" for a, b in zip(args, args[1:])
)
stdin = sys.stdin.buffer.read().decode("utf-8", "replace") if reads_stdin else None
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
    connection.connect({socket!r})
    connection.sendall(json.dumps({{"argv": args, "stdin": stdin}}).encode())
    connection.shutdown(socket.SHUT_WR)
    answer = json.loads(b"".join(iter(lambda: connection.recv(65536), b"")))
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["code"])
'''


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request = json.loads(self.rfile.read())
        model: FakeCluster = self.server.model  # type: ignore[attr-defined]
        code, out, err = model.handle(request["argv"], request["stdin"])
        self.wfile.write(json.dumps({"code": code, "stdout": out, "stderr": err}).encode())


class _ApiServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def serving(model: FakeCluster, bin_dir: Path) -> Iterator[Path]:
    """Serve ``model`` on a unix socket and write the ``kubectl`` client into ``bin_dir``."""
    path = model.base / "api.sock"
    server = _ApiServer(str(path), _Handler)
    server.model = model  # type: ignore[attr-defined]
    path.chmod(0o777)  # the drill may run as the unprivileged account
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    bin_dir.mkdir(parents=True, exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(_KUBECTL.format(python=sys.executable, socket=str(path)), encoding="utf-8")
    kubectl.chmod(0o755)
    try:
        yield kubectl
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------
# The rendered drill and the world around it
# --------------------------------------------------------------------------------------------


def catalog_text(min_size: str | None = None) -> str:
    service: dict[str, Any] = {
        "name": SERVICE,
        "namespace": NAMESPACE,
        "storage": "local-hostpath",
        "churn": "high",
        "engine": "postgresql",
        "drill": {"checks": CHECKS},
        "cnpg": {"cluster": SERVICE, "object_store": "garage"},
    }
    if min_size is not None:
        service["min_size"] = min_size
    stores = textwrap.dedent(
        """\
          object_stores:
            garage: {provider: garage, endpoint: "http://garage.lan:3900", bucket: pg-archive,
                     credentials_key: garage-cnpg, region: garage}
        services:"""
    )
    head = MINIMAL_HEAD.replace("services:", stores)
    return head + textwrap.indent("- " + json.dumps(service) + "\n", "  ")


def yaml_file(files: Mapping[str, bytes], path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(files[path].decode("utf-8")) if d]


@dataclass(frozen=True)
class Drill:
    """The rendered drill: its ConfigMap's files, its container's command and environment,
    the Role its ServiceAccount is bound to, and where the live Cluster archives."""

    files: dict[str, str]
    command: list[str]
    env: dict[str, str]
    service_account: str
    rules: list[dict[str, Any]]
    object_store: str
    server_name: str
    archiving: list[dict[str, Any]]


def render_drill(text: str) -> Drill:
    generators = [g for g in registered_generators() if g.name in ("cnpg", "drills")]
    files = render_plan(build_plan(load_catalog_text(text), generators))
    folder = f"kubernetes/drills/{NAMESPACE}/{SERVICE}"
    (kustomization,) = yaml_file(files, f"{folder}/kustomization.yaml")
    (generator,) = kustomization["configMapGenerator"]
    configmap = {name: files[f"{folder}/{name}"].decode("utf-8") for name in generator["files"]}
    (cronjob,) = yaml_file(files, f"{folder}/cronjob.yaml")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    env = {e["name"]: e["value"] for e in box["env"]}
    (mount,) = [m for m in box["volumeMounts"] if m["name"] == "drill"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "drill"]
    assert volume["configMap"]["name"] == generator["name"]
    assert env["DRILL_FILES"] == mount["mountPath"]
    assert PurePosixPath(box["command"][1]).parent == PurePosixPath(mount["mountPath"])
    account = pod["serviceAccountName"]
    rbac = yaml_file(files, f"{folder}/rbac.yaml")
    (binding,) = [
        d
        for d in rbac
        if d["kind"] == "RoleBinding"
        and {"kind": "ServiceAccount", "name": account} in d["subjects"]
    ]
    (role,) = [
        d
        for d in rbac
        if d["kind"] == "Role" and d["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    cnpg = f"kubernetes/cnpg/{NAMESPACE}/{SERVICE}"
    (store,) = yaml_file(files, f"{cnpg}/objectstore.yaml")
    (patch,) = yaml_file(files, f"{cnpg}/cluster-patch.yaml")
    (archiver,) = [p for p in patch["spec"]["plugins"] if p.get("isWALArchiver")]
    assert archiver["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    return Drill(
        configmap,
        box["command"],
        env,
        account,
        role["rules"],
        store["metadata"]["name"],
        archiver["parameters"]["serverName"],
        patch["spec"]["plugins"],
    )


@dataclass(frozen=True)
class Archives:
    """Base backups of one seeded server, taken at its stages, and its data sizes then."""

    empty: Path  # the database app with an empty table items
    few_rows: Path  # one row in items
    good: Path  # three rows and some more data
    wrong_db: Path  # the same data, the database renamed to application
    no_wal: Path  # the good stage's base backup without the WAL it needs (-X none)
    empty_bytes: int
    good_bytes: int


def seed_archives(base: Path, pg: Postgres) -> Archives:
    folder = pg.folder(base / "archives", 0o755)
    seed = pg.folder(base / "seed", 0o700)
    data = seed / "data"
    pg.run(
        [pg.bindir / "initdb", "-D", data, *INITDB_OPTIONS],
        what="initdb",
        cwd=seed,
    )
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(f"listen_addresses = ''\nunix_socket_directories = '{seed}'\nfsync = off\n")
    pg_ctl = pg.bindir / "pg_ctl"
    pg.run([pg_ctl, "-D", data, "-l", seed / "log", "-w", "-t", "60", "start"], what="start")

    def sql(statement: str, db: str = "postgres") -> str:
        argv: list[str | Path] = [pg.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", seed, "-U", "postgres", "-d", db, "-c", statement]
        return pg.run(argv, what=f"psql {statement!r}").stdout.strip()

    def size() -> int:
        return int(sql("SELECT sum(pg_database_size(oid)) FROM pg_database"))

    def backup(name: str, wal: str = "fetch") -> Path:
        """A base backup (base.tar), with the WAL it needs in it (or none)."""
        target = folder / name
        argv: list[str | Path] = [pg.bindir / "pg_basebackup", "-h", seed, "-U", "postgres"]
        pg.run([*argv, "-D", target, "-X", wal, *BASEBACKUP], what="pg_basebackup")
        return target

    try:
        sql("CREATE DATABASE app")
        sql("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)", "app")
        empty_bytes = size()
        empty = backup("empty")
        sql("INSERT INTO items VALUES (1, 'widget')", "app")
        few_rows = backup("few-rows")
        sql("INSERT INTO items VALUES (2, 'O''Brien''s \"gadget\"'), (3, 'ünï ✓')", "app")
        sql(
            "CREATE TABLE filler AS SELECT g AS id, md5(g::text) || repeat(md5((g + 1)::text), 30)"
            " AS pad FROM generate_series(1, 8000) AS g",
            "app",
        )
        good_bytes = size()
        good = backup("good")
        no_wal = backup("no-wal", wal="none")
        sql("ALTER DATABASE app RENAME TO application")
        wrong_db = backup("wrong-db")
    finally:
        pg.run([pg_ctl, "-D", data, *STOP_FAST], what="stop", check=False)
    shutil.rmtree(seed)
    return Archives(empty, few_rows, good, wrong_db, no_wal, empty_bytes, good_bytes)


@dataclass(frozen=True)
class World:
    base: Path
    pg: Postgres
    archives: Archives
    #: The drill of the catalog without a minimum size, and of one with ``min_size``.
    drill: Drill
    sized_drill: Drill
    min_size_bytes: int
    #: Busybox's applets (Alpine's /bin), jq and curl: the drill image's programs.
    image_bin: Path
    #: ``subprocess`` keywords for the drill's account.
    drill_as: Mapping[str, Any]
    #: The live Cluster: the user's manifest with the generated archiving patch.
    live: dict[str, Any]


def image_programs(folder: Path) -> Path:
    busybox = require_tool("busybox")
    jq, curl = require_tool("jq"), require_tool("curl")
    folder.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        (folder / applet).symlink_to(busybox)
    for program in (jq, curl):
        (folder / Path(program).name).symlink_to(program)
    return folder


def drill_account(pg: Postgres) -> Mapping[str, Any]:
    """The unprivileged account when it can run this interpreter (the kubectl client), else
    ourselves."""
    if not pg.run_as:
        return {}
    try:
        probe = pg.run([sys.executable, "-I", "-c", "import json, socket"], what="a probe")
    except (OSError, AssertionError):
        return {}
    return pg.run_as if probe.returncode == 0 else {}


def live_cluster(pg: Postgres, drill: Drill) -> dict[str, Any]:
    ready = condition("True", "ClusterIsReady", "Cluster is Ready")
    return {
        "apiVersion": f"{CNPG_GROUP}/v1",
        "kind": "Cluster",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "instances": LIVE_INSTANCES,
            "imageName": f"ghcr.io/cloudnative-pg/postgresql:{pg.version}",
            "storage": {"size": LIVE_STORAGE},
            "plugins": drill.archiving,
        },
        "status": {
            "phase": "Cluster in healthy state",
            "instances": LIVE_INSTANCES,
            "readyInstances": LIVE_INSTANCES,
            "currentPrimary": f"{SERVICE}-1",
            "targetPrimary": f"{SERVICE}-1",
            "conditions": [ready],
        },
    }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    pg = postgres_programs()
    crds.crd_dir()  # skip (or fail under CI=true) here, not inside the model's thread
    base = Path(tempfile.mkdtemp(prefix="cnpgdrill-", dir="/tmp"))
    base.chmod(0o755)
    try:
        image_bin = image_programs(base / "image-bin")
        archives = seed_archives(base, pg)
        assert archives.good_bytes - archives.empty_bytes > 4 * 2**20, archives
        # A minimum between the empty data set and the good one, in whole MiB.
        middle = (archives.empty_bytes + archives.good_bytes) // 2
        min_mib = -(-middle // 2**20)
        drill = render_drill(catalog_text())
        sized = render_drill(catalog_text(f"{min_mib}Mi"))
        assert archives.empty_bytes < int(sized.env["MIN_SIZE_BYTES"]) < archives.good_bytes
        live = live_cluster(pg, drill)
        assert crds.validate(live) == []  # the model's live Cluster is one CNPG accepts
        yield World(
            base,
            pg,
            archives,
            drill,
            sized,
            int(sized.env["MIN_SIZE_BYTES"]),
            image_bin,
            drill_account(pg),
            live,
        )
    finally:
        for pid in processes_under(base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Namespace:
    """The drill's namespace in the model, served to a ``kubectl`` in ``bin``."""

    model: FakeCluster
    bin: Path
    archives: dict[str, Path]

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=DRILL_TIMEOUT,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )


@contextlib.contextmanager
def namespace_of(
    world: World, archive: Path, *, rules: list[dict[str, Any]] | None = None, server: str = ""
) -> Iterator[Namespace]:
    """The namespace where the live Cluster runs and archives to ``archive`` (under the
    live Cluster's serverName, or ``server``)."""
    folder = Path(tempfile.mkdtemp(prefix="ns-", dir=world.base))
    folder.chmod(0o755)
    drill = world.drill
    stores = {drill.object_store: {server or drill.server_name: archive}}
    user = f"system:serviceaccount:{NAMESPACE}:{drill.service_account}"
    model = FakeCluster(
        folder,
        world.pg,
        namespace=NAMESPACE,
        user=user,
        rules=drill.rules if rules is None else rules,
        object_stores=stores,
    )
    model.add_live_cluster(world.live)
    try:
        with serving(model, folder / "bin"):
            yield Namespace(model, folder / "bin", stores[drill.object_store])
    finally:
        model.close()


@pytest.fixture
def pushgateway() -> Iterator[FakePushgateway]:
    with FakePushgateway() as fake:
        yield fake


def run_drill(
    world: World,
    ns: Namespace,
    pushgateway: FakePushgateway,
    drill: Drill | None = None,
    *,
    change: Callable[[dict[str, str]], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the drill as its pod would: its ConfigMap's files in a folder of their own (changed
    by ``change``), its container's environment, the image's programs, from ``/``."""
    drill = drill or world.drill
    files = dict(drill.files)
    if change is not None:
        change(files)
    folder = Path(tempfile.mkdtemp(prefix="drill-files-", dir=world.base))
    folder.chmod(0o755)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    home = Path(tempfile.mkdtemp(prefix="home-", dir=world.base))
    home.chmod(0o777)  # an emptyDir
    environment = {
        **drill.env,
        "DRILL_FILES": str(folder),
        "HOME": str(home),
        "PUSHGATEWAY_URL": pushgateway.url,
        "PATH": os.pathsep.join([str(ns.bin), str(world.image_bin)]),
        **(env or {}),
    }
    script = folder / PurePosixPath(drill.command[1]).name
    return subprocess.run(
        [*shell_argv(drill.command[0]), str(script), *drill.command[2:]],
        env=environment,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DRILL_TIMEOUT,
        check=False,
        **world.drill_as,
    )


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


def the_push(pushgateway: FakePushgateway) -> tuple[str, dict[str, float]]:
    (push,) = pushgateway.pushes
    assert push.path == f"/metrics/job/homeops_drill/service/{SERVICE}"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples), samples
    metrics = {s.name: s.value for s in samples}
    assert len(metrics) == len(samples)
    return push.method, metrics


def scratch_name(world: World) -> str:
    return world.drill.env["SCRATCH"]


def creates(ns: Namespace) -> list[dict[str, Any]]:
    """The Clusters the drill asked to create (the stdin of each ``create -f -``)."""
    return [json.loads(c["stdin"]) for c in ns.model.calls if c["argv"][:1] == ["create"]]


def live_only_read(world: World, ns: Namespace) -> None:
    """Every call naming the live Cluster (or one of its pods) was a ``get``; the live
    Cluster and its pods are as they were."""
    source = world.drill.env["SOURCE_CLUSTER"]
    live_pod = re.compile(rf"{re.escape(source)}-[0-9]+")

    def names_live(argv: list[str]) -> bool:
        return any(
            a in (source, f"cluster/{source}") or live_pod.fullmatch(a) is not None for a in argv
        )

    touching = [c["argv"] for c in ns.model.calls if names_live(c["argv"])]
    assert touching, "the drill never read the live Cluster"
    assert all(argv[0] == "get" for argv in touching), touching
    assert all(c["metadata"]["name"] != source for c in creates(ns))
    live = ns.model.object(source)
    assert live is not None
    live["metadata"].pop("uid")
    assert live == world.live
    assert sorted(p for p, pod in ns.model.pods.items() if pod.live) == [
        f"{source}-{n}" for n in range(1, LIVE_INSTANCES + 1)
    ]


def cleaned_up(world: World, ns: Namespace) -> None:
    """The scratch Cluster is deleted; once its pod is collected no server runs."""
    ns.model.settle()
    assert ns.model.object(scratch_name(world)) is None, "the scratch Cluster was not deleted"
    assert all(pod.live for pod in ns.model.pods.values()), ns.model.pods
    assert processes_under(ns.model.instances) == {}, "a scratch server still runs"
    assert list(ns.model.instances.iterdir()) == [], "a scratch volume is left"
    live_only_read(world, ns)


def assert_failed(
    world: World,
    ns: Namespace,
    result: subprocess.CompletedProcess[str],
    pushgateway: FakePushgateway,
    message: str,
) -> None:
    assert result.returncode != 0, result.stderr
    assert f"{SERVICE}: FAILED: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    method, metrics = the_push(pushgateway)
    assert method == "POST"  # the last success stays as it was
    assert set(metrics) == FAILURE_METRICS
    assert metrics["restore_drill_last_run_success"] == 0
    assert metrics["restore_drill_last_failure_timestamp"] > 0
    cleaned_up(world, ns)


def assert_passed(
    world: World,
    ns: Namespace,
    result: subprocess.CompletedProcess[str],
    pushgateway: FakePushgateway,
) -> dict[str, float]:
    assert result.returncode == 0, result.stderr
    for line in CHECKS_PASSED:
        assert line in result.stderr, result.stderr
    assert f"its primary is {scratch_name(world)}-1" in result.stderr
    _, metrics = the_push(pushgateway)
    assert set(metrics) == SUCCESS_METRICS
    assert metrics["restore_drill_last_run_success"] == 1
    assert metrics["restore_drill_last_success_timestamp"] > 0
    assert metrics["restore_drill_duration_seconds"] >= 0
    assert metrics["restore_drill_backup_size_bytes"] > world.archives.empty_bytes
    assert metrics["restore_drill_restored_items"] == 1  # app (postgres is not counted)
    cleaned_up(world, ns)
    return metrics


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_a_good_archive_passes_and_the_scratch_cluster_is_deleted(
    world: World, pushgateway: FakePushgateway
) -> None:
    with namespace_of(world, world.archives.good) as ns:
        result = run_drill(world, ns, pushgateway)
        assert_passed(world, ns, result, pushgateway)
        # The scratch Cluster: the live one's image and size, archiving nothing of its own.
        (created,) = creates(ns)
        assert created["metadata"]["name"] == scratch_name(world)
        assert created["spec"]["imageName"] == world.live["spec"]["imageName"]
        assert created["spec"]["storage"]["size"] == LIVE_STORAGE
        assert "plugins" not in created["spec"]
        assert "backup" not in created["spec"]
        # Created once, deleted after (what a killed drill left is deleted before).
        verbs = [c["argv"][0] for c in ns.model.calls]
        assert verbs.count("create") == 1
        assert verbs[-1] == "delete"
        assert all(c["code"] == 0 for c in ns.model.calls), ns.model.calls


def test_an_archive_that_cannot_be_recovered_fails(
    world: World, pushgateway: FakePushgateway
) -> None:
    """The base backup without its WAL: the recovered instance never starts, the Cluster
    stays ``Setting up primary`` and the drill's wait runs out (a short budget here)."""
    with namespace_of(world, world.archives.no_wal) as ns:
        result = run_drill(world, ns, pushgateway, env={"WAIT_SECONDS": str(SHORT_WAIT_SECONDS)})
        assert_failed(world, ns, result, pushgateway, "did not become ready from the archive")
        assert "Setting up primary: the recovered instance did not start: " in result.stderr
        (wait,) = [c["argv"] for c in ns.model.calls if c["argv"][0] == "wait"]
        (timeout,) = [a for a in wait if a.startswith("--timeout=")]
        assert parse_duration(timeout.removeprefix("--timeout="), "") <= SHORT_WAIT_SECONDS


def test_a_cluster_with_no_base_backup_yet_fails(
    world: World, pushgateway: FakePushgateway
) -> None:
    """Nothing archived under the live Cluster's serverName (only under another's)."""
    with namespace_of(world, world.archives.good, server="someone-else-v1") as ns:
        result = run_drill(world, ns, pushgateway, env={"WAIT_SECONDS": str(SHORT_WAIT_SECONDS)})
        assert_failed(world, ns, result, pushgateway, "did not become ready from the archive")
        assert "no target backup found" in result.stderr


def test_a_table_with_too_few_rows_fails(world: World, pushgateway: FakePushgateway) -> None:
    with namespace_of(world, world.archives.few_rows) as ns:
        result = run_drill(world, ns, pushgateway)
        assert_failed(
            world, ns, result, pushgateway, "check failed: table items holds at least 2 rows in app"
        )


def test_a_database_missing_from_the_archive_fails(
    world: World, pushgateway: FakePushgateway
) -> None:
    with namespace_of(world, world.archives.wrong_db) as ns:
        result = run_drill(world, ns, pushgateway)
        assert_failed(
            world, ns, result, pushgateway, "database app is not in the recovered cluster"
        )


def test_a_data_set_below_min_size_fails_and_a_big_enough_one_passes(
    world: World, pushgateway: FakePushgateway
) -> None:
    with namespace_of(world, world.archives.empty) as ns:
        result = run_drill(world, ns, pushgateway, world.sized_drill)
        assert_failed(
            world,
            ns,
            result,
            pushgateway,
            f"bytes, below the minimum of {world.min_size_bytes}",
        )
        assert "check passed" not in result.stderr  # the size is checked first
    with FakePushgateway() as second, namespace_of(world, world.archives.good) as ns:
        result = run_drill(world, ns, second, world.sized_drill)
        metrics = assert_passed(world, ns, result, second)
        assert metrics["restore_drill_backup_size_bytes"] >= world.min_size_bytes


def test_a_scratch_cluster_a_killed_drill_left_is_deleted_first(
    world: World, pushgateway: FakePushgateway
) -> None:
    """A killed drill's scratch Cluster, up, its table emptied but one row: the drill must
    delete it (the name is reused) and check a fresh recovery, never the leftover."""
    scratch = scratch_name(world)
    with namespace_of(world, world.archives.good) as ns:
        leftover = json.loads(world.drill.files["cluster.json"])
        leftover["spec"]["imageName"] = world.live["spec"]["imageName"]
        created = ns.kubectl("create", "-f", "-", stdin=json.dumps(leftover))
        assert created.returncode == 0, created.stderr
        ready = ns.kubectl("wait", f"cluster/{scratch}", "--for=condition=Ready", "--timeout=60s")
        assert ready.returncode == 0, ready.stderr
        spoiled = ns.kubectl(
            "exec", f"{scratch}-1", "-c", "postgres", "--",
            "psql", "-X", "--dbname=app", "-c", "DELETE FROM items WHERE id > 1",
        )  # fmt: skip
        assert spoiled.returncode == 0, spoiled.stderr
        old = ns.model.object(scratch)
        assert old is not None
        ns.model.calls.clear()

        result = run_drill(world, ns, pushgateway)
        assert_passed(world, ns, result, pushgateway)
        calls = [c["argv"] for c in ns.model.calls]
        first_delete = next(i for i, a in enumerate(calls) if a[0] == "delete")
        assert "--wait=true" in calls[first_delete]
        assert first_delete < next(i for i, a in enumerate(calls) if a[0] == "create")
        assert not ns.model.instance_dir(old["metadata"]["uid"]).exists()


def test_a_cluster_json_the_crd_rejects_fails_the_drill(
    world: World, pushgateway: FakePushgateway
) -> None:
    """Negative control: the stand-in validates what the drill creates against the CRD."""

    def misname(files: dict[str, str]) -> None:
        cluster = json.loads(files["cluster.json"])
        cluster["spec"]["replicas"] = cluster["spec"].pop("instances")
        files["cluster.json"] = json.dumps(cluster, indent=2)

    with namespace_of(world, world.archives.good) as ns:
        result = run_drill(world, ns, pushgateway, change=misname)
        assert_failed(
            world,
            ns,
            result,
            pushgateway,
            f"could not create the scratch Cluster {scratch_name(world)}",
        )
        assert "strict decoding error" in result.stderr
        assert "'replicas' was unexpected" in result.stderr
        assert [c["code"] for c in ns.model.calls if c["argv"][0] == "create"] == [1]


def _cluster_json(world: World, change: Callable[[dict[str, Any]], None]) -> str:
    cluster = json.loads(world.drill.files["cluster.json"])
    change(cluster)
    return json.dumps(cluster)


def _elsewhere(cluster: dict[str, Any]) -> None:
    cluster["spec"]["bootstrap"]["recovery"]["source"] = "elsewhere"


def _namespaced(cluster: dict[str, Any]) -> None:
    cluster["metadata"]["namespace"] = "other"


def _initdb(cluster: dict[str, Any]) -> None:
    cluster["spec"]["bootstrap"] = {"initdb": {}}


@pytest.mark.parametrize(
    ("argv", "change", "message"),
    [
        (["apply", "-f", "-"], None, 'not modelled: the command "apply"'),
        (["get", "cluster", SERVICE, "-n", NAMESPACE, "-o", "jsonpath={.a}"], None, "flag -n"),
        (["get", "cluster", SERVICE, "-o", "yaml"], None, "not modelled: the output format"),
        (["get", "cluster", SERVICE, "-o", "jsonpath={.spec.plugins[0]}"], None, "expression"),
        (["get", "cluster", "nope", "-o", "jsonpath={.spec}"], None, "(NotFound)"),
        (["get", "widgets", "x", "-o", "jsonpath={.a}"], None, 'resource type "widgets"'),
        (["delete", f"cluster/{SERVICE}", "--now"], None, "the flag --now"),
        (["delete", "cluster/nope", "--wait=maybe"], None, "strconv.ParseBool"),
        (["delete", "cluster/nope", "--wait=false"], None, "(NotFound)"),
        (["wait", "cluster/nope", "--for=condition=Ready", "--timeout=5"], None, "duration"),
        (["wait", f"cluster/{SERVICE}", "--for=delete"], None, "not modelled: --for=delete"),
        (["exec", f"{SERVICE}-1", "-c", "postgres", "--", "psql"], None, "live Cluster's pod"),
        (["exec", "nope-1", "-c", "postgres", "--", "psql"], None, 'pods "nope-1" not found'),
        (["exec", f"{SERVICE}-1", "-c", "plugin", "--", "psql"], None, "is not valid for pod"),
        (["create", "-f", "-"], _elsewhere, "External cluster elsewhere not found"),
        (["create", "-f", "-"], _namespaced, 'does not match the namespace "photos"'),
        (["create", "-f", "-"], _initdb, "not modelled: bootstrap ['initdb']"),
    ],
    ids=[
        *("unknown-verb", "namespace-flag", "yaml-output", "jsonpath-index", "get-missing"),
        *("unknown-type", "unknown-flag", "bad-bool", "delete-missing", "bad-duration"),
        *("wait-for-delete", "exec-live-pod", "exec-missing-pod", "exec-bad-container"),
        *("source-not-external", "other-namespace", "initdb-bootstrap"),
    ],
)
def test_the_stand_in_refuses_what_kubectl_the_api_server_or_cnpg_would(
    world: World,
    argv: list[str],
    change: Callable[[dict[str, Any]], None] | None,
    message: str,
) -> None:
    with namespace_of(world, world.archives.good) as ns:
        stdin = _cluster_json(world, change) if change is not None else None
        result = ns.kubectl(*argv, stdin=stdin)
        assert result.returncode == 1, result
        assert message in result.stderr, result.stderr
        assert "internal error" not in result.stderr
        assert ns.model.object(scratch_name(world)) is None


def test_the_stand_in_refuses_a_name_in_use_and_what_the_role_does_not_grant(
    world: World,
) -> None:
    cluster = _cluster_json(
        world, lambda c: c["spec"].update(imageName=world.live["spec"]["imageName"])
    )
    with namespace_of(world, world.archives.good) as ns:
        assert ns.kubectl("create", "-f", "-", stdin=cluster).returncode == 0
        again = ns.kubectl("create", "-f", "-", stdin=cluster)
        assert again.returncode == 1
        assert "(AlreadyExists)" in again.stderr
    no_delete = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "delete"]} for rule in world.drill.rules
    ]
    with namespace_of(world, world.archives.good, rules=no_delete) as ns:
        refused = ns.kubectl("delete", f"cluster/{SERVICE}", "--wait=false")
        assert refused.returncode == 1
        assert "(Forbidden)" in refused.stderr
        assert f'cannot delete resource "clusters" in API group "{CNPG_GROUP}"' in refused.stderr
        assert ns.model.object(SERVICE) is not None


def test_the_stand_in_fails_a_recovery_into_another_major_version(world: World) -> None:
    """The operator's image check bites: without the live Cluster's image the scratch
    Cluster gets the operator's default, whose major the archive is not of."""
    if world.pg.major == DEFAULT_IMAGE.rsplit(":", 1)[1].split(".")[0]:
        pytest.skip(f"the local PostgreSQL is the default image's major ({DEFAULT_IMAGE})")
    scratch = scratch_name(world)
    with namespace_of(world, world.archives.good) as ns:
        created = ns.kubectl("create", "-f", "-", stdin=world.drill.files["cluster.json"])
        assert created.returncode == 0, created.stderr
        waited = ns.kubectl("wait", f"cluster/{scratch}", "--for=condition=Ready", "--timeout=1s")
        assert waited.returncode == 1
        assert "timed out waiting for the condition" in waited.stderr
        phase = ns.kubectl("get", "cluster", scratch, "-o", "jsonpath={.status.phaseReason}")
        assert "replays only into its own" in phase.stdout, phase
