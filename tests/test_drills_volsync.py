"""The VolSync restore drill (``kubernetes/drills/<ns>/<app>/``), run for real against a model
of the cluster: its ``drill.sh`` under busybox sh, its verify Job's ``verify.sh`` under bash,
with GNU find and du, jq and the real restic.

An inline catalog with two VolSync apps is rendered: ``recipes``, copied to R2, with
``min_size`` and ``drill: {min_files: 3}``; ``scratchpad``, kept out of offsite, with neither.
``kubectl`` is a stand-in first on PATH: a thin client of a model API server in the test
process, which models what the drill talks to:

- the API server: one namespace (the CronJob's, where kubectl in the pod points), the generated
  Role as the ServiceAccount's only rights (every request kubectl makes is authorized against
  it), every created object validated strictly with tests/crds.py (the CRD kinds against the
  upstream CRDs, built-in kinds with kubernetes-validate), names that exist refused as
  AlreadyExists; only the verbs, flags and JSONPath forms the drill uses are modelled, any
  other use is refused and recorded as a problem the test fails on;
- VolSync's ReplicationDestination controller, from VolSync's source and its Kopia fork's
  mover: a sync runs when ``spec.trigger.manual`` differs from ``status.lastManualSync``; it
  needs the repository Secret (KOPIA_REPOSITORY and KOPIA_PASSWORD) and the claim of
  ``spec.kopia.destinationPVC``; the mover restores the newest snapshot of the source
  identity (``sourceName``@namespace) into the claim, or, with no snapshot, prints "No eligible
  snapshots found" and succeeds with nothing restored. A sync that completes sets
  ``latestMoverStatus`` Successful and only then ``lastManualSync`` to the trigger; a failed
  mover Job sets ``latestMoverStatus`` Failed with its log, is deleted and retried, and
  ``lastManualSync`` stays unset (VolSync's mover ``handleJobStatus``);
- the Job controller: a Job's one pod runs its container for real, ``bash verify.sh`` with the
  container's environment (Secrets resolved), the claim's folder standing for ``/data``, the
  NAS export standing for the repository's NFS volume and a fresh folder for each emptyDir; the
  pod's log is kept for ``kubectl logs`` and ``status.succeeded``/``status.failed`` set from the
  exit code, at once, so the drill's polling ends at its first look.

The controllers act when an object is created, so a condition not met when ``kubectl wait``
asks is never met: the wait ends as kubectl's does at its timeout, without the sleep, and
the model records the budget it would have used.

Kopia is not in Debian: ``kopia`` is a stand-in modelled on Kopia's documented command line
(``repository connect filesystem --path --readonly``, ``snapshot list --all --json``,
``snapshot verify --verify-files-percent``), strict about its flags; its repository is its own
JSON file at the storage root holding the password and the snapshot manifests. restic is the
real one, on a local repository the test makes with ``restic init`` and ``restic backup``; a
PATH wrapper records its calls and reads ``/tmp`` paths through the pod's emptyDir. The
Secrets are the generated ExternalSecrets' templates filled from a test secret store, except
the offsite RESTIC_REPOSITORY, a local path standing for R2.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, require_tool
from crds import crd_dir, validate
from engines import FakePushgateway, parse_samples

from homeops_gen import build_plan, load_catalog_text, render_plan

pytestmark = [
    pytest.mark.tool("busybox"),
    pytest.mark.tool("restic"),
    pytest.mark.tool("jq"),
    pytest.mark.tool("bash"),
]

SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
    "restore_drill_restored_items",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
#: The busybox applets drill.sh and lib.sh call (alpine/k8s links them in /bin; curl is its own).
APPLETS = ("cat", "cut", "date", "grep", "head", "sed", "sleep", "tail", "tr", "wc")

NAMESPACE = "home"
SERVICES = [
    {
        "name": "recipes",
        "namespace": NAMESPACE,
        "storage": "local-hostpath",
        "churn": "low",
        "engine": "files",
        "min_size": "16Ki",
        "drill": {"min_files": 3},
        "volsync": {"capacity": "5Gi"},
    },
    {
        "name": "scratchpad",
        "namespace": NAMESPACE,
        "storage": "local-hostpath",
        "churn": "low",
        "engine": "files",
        "offsite": {"excluded": "Rebuilt from its sources"},
        "volsync": {"capacity": "1Gi"},
    },
]
CATALOG = MINIMAL_HEAD.replace(
    "services:",
    textwrap.dedent(
        """\
          object_stores:
            r2: {provider: r2, endpoint: "https://acct.r2.cloudflarestorage.com", region: auto,
                 bucket: volsync}
        services:"""
    ),
) + "".join(f"  - {json.dumps(s)}\n" for s in SERVICES)
#: recipes' min_size (16Ki) and min_files, as the catalog says them.
MIN_SIZE = 16 * 1024
MIN_FILES = 3
#: The NAS export of the shared Kopia repository: settings.nfs.server and the documented
#: default path <settings.nfs.backup_root>/volsync-kopia.
KOPIA_EXPORT = ("nas.lan", "/mnt/tank/volsync-kopia")
STORAGE_CLASSES = {"local-hostpath"}
#: The secret store the ExternalSecrets extract from (keys settings.volsync.*_secret_key).
SECRET_STORE = {
    "volsync-kopia": {"KOPIA_PASSWORD": "kopia-test-password"},
    "volsync-r2": {
        "RESTIC_PASSWORD": "restic-test-password",
        "R2_ACCESS_KEY_ID": "test-access-key",
        "R2_SECRET_ACCESS_KEY": "test-secret-key",
    },
}
KOPIA_FORMAT = "kopia.repository.f"


# --------------------------------------------------------------------------------------------
# The stand-ins the shells run: kubectl (a client of the model), kopia, the restic wrapper
# --------------------------------------------------------------------------------------------

KUBECTL = '''\
#!@PYTHON@ -I
"""kubectl, the test's stand-in: hands its arguments to the model API server of
tests/test_drills_volsync.py and prints what it answers."""
import json, os, socket, sys

connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(@SOCKET@)
connection.sendall(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}).encode() + b"\\n")
connection.shutdown(socket.SHUT_WR)
data = b""
while chunk := connection.recv(65536):
    data += chunk
answer = json.loads(data)
sys.stdout.write(answer["stdout"])
sys.stderr.write(answer["stderr"])
sys.exit(answer["code"])
'''

#: Paths as the pod sees them: mounts.json beside the program maps each mount to its folder.
POD_PATHS = '''\
import json, sys
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
MOUNTS = json.loads((HERE / "mounts.json").read_text())


def host(path, write=False):
    """The folder standing for the pod's ``path``; None when no volume holds it (the image's
    read-only root holds nothing the tools are given)."""
    pod = PurePosixPath("/") / path
    for mount in sorted(MOUNTS, key=lambda m: len(m["path"]), reverse=True):
        root = PurePosixPath(mount["path"])
        if pod == root or root in pod.parents:
            if write and mount["readOnly"]:
                return None
            return Path(mount["host"], *pod.relative_to(root).parts)
    return None


def record(name, argv):
    with open(HERE / f"{name}-calls.jsonl", "a") as log:
        log.write(json.dumps(argv) + "\\n")
'''

KOPIA = (
    '#!@PYTHON@ -I\n"""kopia, the test\'s stand-in (see tests/test_drills_volsync.py)."""\n'
    + POD_PATHS
    + r'''
import getpass, os, socket

FORMAT = "kopia.repository.f"


def fail(message):
    sys.stderr.write(f"ERROR {message}\n")
    sys.exit(1)


def usage(message):
    sys.stderr.write(f"kopia: error: {message}, try --help\n")
    sys.exit(1)


def parse(args, flags):
    """kingpin's forms: --name=value or --name value for a value flag, --name for a boolean."""
    found, positional, i = {}, [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            kind = flags.get(name)
            if kind is None:
                usage(f"unknown long flag '--{name}'")
            if kind == "bool":
                if eq:
                    usage(f"--{name} takes no value")
                found[name] = True
            else:
                if not eq:
                    i += 1
                    if i == len(args):
                        usage(f"expected argument for flag '--{name}'")
                    value = args[i]
                found[name] = value
        elif arg.startswith("-") and arg != "-":
            usage(f"unknown short flag '{arg}'")
        else:
            positional.append(arg)
        i += 1
    return found, positional


def config_path():
    if os.environ.get("KOPIA_CONFIG_PATH"):
        return os.environ["KOPIA_CONFIG_PATH"]
    if not os.environ.get("HOME"):
        fail("unable to determine the config file: neither KOPIA_CONFIG_PATH nor HOME is set")
    return os.environ["HOME"] + "/.config/kopia/repository.config"


def password():
    value = os.environ.get("KOPIA_PASSWORD")
    if not value:
        fail("unable to get repository password: KOPIA_PASSWORD is not set and there is no tty")
    return value


def open_storage(path):
    folder = host(path)
    if folder is None or not folder.is_dir():
        fail(f"unable to open storage: cannot access storage path: stat {path}: "
             "no such file or directory")
    if not (folder / FORMAT).is_file():
        fail("repository not initialized in the provided storage")
    repository = json.loads((folder / FORMAT).read_text())
    if password() != repository["password"]:
        fail("invalid repository password")
    return repository


def connected():
    config = host(config_path())
    if config is None or not config.is_file():
        fail("repository is not connected. See https://kopia.io/docs/repositories/")
    settings = json.loads(config.read_text())
    return settings, open_storage(settings["storage"]["config"]["path"])


def public(manifest):
    return {k: v for k, v in manifest.items() if not k.startswith("_")}


def connect(args):
    flags, positional = parse(args, {"path": "value", "readonly": "bool"})
    if positional:
        usage(f"unexpected {positional[0]}")
    if "path" not in flags:
        usage("required flag --path not provided")
    open_storage(flags["path"])
    config = host(config_path(), write=True)
    if config is None:
        fail(f"unable to write config file {config_path()}: read-only file system")
    config.parent.mkdir(parents=True, exist_ok=True)
    cache = os.environ.get("KOPIA_CACHE_DIRECTORY")
    if cache:
        folder = host(cache, write=True)
        if folder is None:
            fail(f"unable to create cache directory {cache}: read-only file system")
        folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "storage": {"type": "filesystem", "config": {"path": flags["path"]}},
        "caching": {"cacheDirectory": cache or ""},
        "hostname": socket.gethostname(),
        "username": getpass.getuser(),
        "description": "Repository in Filesystem: " + flags["path"],
        "readonly": bool(flags.get("readonly")),
    }
    config.write_text(json.dumps(settings, indent=2))
    sys.stderr.write("Connected to repository.\n")


def snapshot_list(args):
    flags, positional = parse(args, {"all": "bool", "json": "bool"})
    if positional:
        usage(f"the stand-in does not model a source argument ({positional[0]})")
    settings, repository = connected()
    manifests = sorted(
        repository["snapshots"],
        key=lambda m: (m["source"]["userName"], m["source"]["host"], m["startTime"]),
    )
    if not flags.get("all"):
        mine = (settings["username"], settings["hostname"])
        manifests = [m for m in manifests if (m["source"]["userName"], m["source"]["host"]) == mine]
    if flags.get("json"):
        print(json.dumps([public(m) for m in manifests], indent=2))
        return
    for m in manifests:
        source = m["source"]
        print(f"{source['userName']}@{source['host']}:{source['path']} {m['startTime']} {m['id']}")


def snapshot_verify(args):
    flags, ids = parse(args, {"verify-files-percent": "value"})
    try:
        percent = float(flags.get("verify-files-percent", "0"))
    except ValueError:
        usage("--verify-files-percent must be a number")
    if not 0 <= percent <= 100:
        usage("--verify-files-percent must be between 0 and 100")
    _, repository = connected()
    by_id = {m["id"]: m for m in repository["snapshots"]}
    errors = 0
    for snapshot in ids or sorted(by_id):
        if snapshot not in by_id:
            fail(f"unable to load snapshot {snapshot}: manifest not found")
        damaged = by_id[snapshot].get("_damaged")
        if damaged:
            errors += 1
            sys.stderr.write(f"error processing {snapshot}/{damaged}: unable to open object: "
                             "content not found\n")
    sys.stderr.write(f"Finished verifying {len(ids or by_id)} snapshots with {errors} errors.\n")
    if errors:
        fail(f"encountered {errors} errors")


def main(argv):
    record("kopia", argv)
    if argv[:3] == ["repository", "connect", "filesystem"]:
        connect(argv[3:])
    elif argv[:2] == ["snapshot", "list"]:
        snapshot_list(argv[2:])
    elif argv[:2] == ["snapshot", "verify"]:
        snapshot_verify(argv[2:])
    else:
        usage(f"the stand-in does not model the command {' '.join(argv[:3])!r}")


main(sys.argv[1:])
'''
)

RESTIC = (
    '#!@PYTHON@ -I\n"""restic as the verify pod runs it (see tests/test_drills_volsync.py)."""\n'
    + POD_PATHS
    + r"""
import os

record("restic", sys.argv[1:])
arguments = []
for arg in sys.argv[1:]:
    if arg.startswith("/"):
        folder = host(arg)
        if folder is None:
            sys.stderr.write(f"restic (test wrapper): {arg} is on no volume of the pod\n")
            sys.exit(1)
        arg = str(folder)
    arguments.append(arg)
os.execv("@RESTIC@", ["restic", *arguments])
"""
)


def write_program(path: Path, source: str, **values: str) -> Path:
    text = source.replace("@PYTHON@", sys.executable)
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------------------------
# The Kopia repository (the stand-in's) and its snapshots
# --------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One snapshot manifest of the stand-in's repository, with the tree it holds."""

    user: str
    host: str
    start: str
    tree: Path
    #: A file the verify finds unreadable (a snapshot the test marked damaged).
    damaged: str | None = None

    @property
    def id(self) -> str:
        key = f"{self.user}@{self.host}/{self.start}/{self.tree.name}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def manifest(self) -> dict[str, Any]:
        files = [p for p in self.tree.rglob("*") if p.is_file() and not p.is_symlink()]
        size = sum(p.stat().st_size for p in files)
        return {
            "id": self.id,
            "source": {"host": self.host, "userName": self.user, "path": "/data"},
            "description": "",
            "startTime": self.start,
            "endTime": self.start,  # a snapshot taken in no time: only startTime is read
            "stats": {"totalSize": size, "fileCount": len(files), "errorCount": 0},
            "rootEntry": {
                "name": "data",
                "type": "d",
                "obj": "k" + hashlib.sha256(self.id.encode()).hexdigest()[:32],
                "summ": {"size": size, "files": len(files)},
            },
            "_tree": str(self.tree),
            "_damaged": self.damaged,
        }


def write_kopia_repository(folder: Path, password: str, snapshots: list[Snapshot]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "standIn": "the test's Kopia repository (tests/test_drills_volsync.py)",
        "password": password,
        "snapshots": [s.manifest() for s in snapshots],
    }
    (folder / KOPIA_FORMAT).write_text(json.dumps(body, indent=2), encoding="utf-8")


def make_tree(folder: Path, files: Mapping[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def recipes_tree(folder: Path) -> Path:
    """Four files (two folders deep), a symlink and an empty folder: above both minimums."""
    tree = make_tree(
        folder,
        {
            "recipes/soup.md": b"# Soup\n" + b"leek potato stock\n" * 400,
            "recipes/bread.md": b"# Bread\n" + b"flour water salt yeast\n" * 300,
            "images/cake.jpg": hashlib.sha512(b"cake").digest() * 150,
            "db/recipes.db": bytes(range(256)) * 20,
        },
    )
    (tree / "latest").symlink_to("recipes/soup.md")
    (tree / "drafts").mkdir()
    return tree


def file_bytes(folder: Path) -> int:
    """The bytes of the tree's regular files (neither folders nor symbolic links count)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def regular_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --------------------------------------------------------------------------------------------
# The model cluster
# --------------------------------------------------------------------------------------------


class Unmodelled(Exception):
    """A use of kubectl the stand-in does not model (recorded as a problem)."""


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str

    @property
    def qualified(self) -> str:
        """How kubectl names the kind (``job.batch``, ``persistentvolumeclaim``)."""
        return self.kind.lower() + (f".{self.group}" if self.group else "")

    @property
    def plural_qualified(self) -> str:
        return self.plural + (f".{self.group}" if self.group else "")


PVC = Resource("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims")
DESTINATION = Resource(
    "ReplicationDestination", "volsync.backube", "v1alpha1", "replicationdestinations"
)
JOB = Resource("Job", "batch", "v1", "jobs")
PODS = Resource("Pod", "", "v1", "pods")
POD_LOGS = Resource("Pod", "", "v1", "pods/log")
#: The names kubectl resolves to each kind (plural, singular, short, group-qualified).
RESOURCE_NAMES = {
    name: resource
    for resource, names in (
        (PVC, ("pvc", "persistentvolumeclaim", "persistentvolumeclaims")),
        (DESTINATION, ("replicationdestination", "replicationdestinations")),
        (JOB, ("job", "jobs")),
    )
    for base in names
    for name in (base, f"{base}.{resource.group}" if resource.group else base)
}
BY_KIND = {r.kind: r for r in (PVC, DESTINATION, JOB)}
_GO_DURATION = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$")
_JSONPATH_FIELDS = re.compile(r"^(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class ApiError(Exception):
    pass


@dataclass
class Pod:
    name: str
    log: str


@dataclass
class Wait:
    target: str
    timeout: str
    met: bool


@dataclass
class Cluster:
    """The API server, VolSync's ReplicationDestination controller and the Job controller of
    one namespace, as the drill's ServiceAccount sees them."""

    root: Path
    namespace: str
    service_account: str
    rules: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]]
    config_maps: dict[str, Path]
    exports: dict[tuple[str, str], Path]
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    claims: dict[str, Path] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    #: Every pod that ran, deleted ones too (what the tests read after the drill).
    pod_history: list[Pod] = field(default_factory=list)
    pods_started: int = 0
    problems: list[str] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)
    pod_bins: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    # -- kubectl ---------------------------------------------------------------------------

    def kubectl(self, argv: list[str], cwd: str) -> tuple[int, str, str]:
        with self.lock:
            self.calls.append(argv)
            try:
                if not argv:
                    raise Unmodelled("kubectl without a command")
                handler = {
                    "delete": self._delete,
                    "create": self._create,
                    "wait": self._wait,
                    "get": self._get,
                    "logs": self._logs,
                }.get(argv[0])
                if handler is None:
                    raise Unmodelled(f"the command {argv[0]!r}")
                return handler(argv[1:], Path(cwd))
            except Unmodelled as unmodelled:
                self.problems.append(f"kubectl {' '.join(argv)}: {unmodelled}")
                return 1, "", f"error: the kubectl stand-in does not model {unmodelled}\n"
            except ApiError as error:
                return 1, "", f"{error}\n"
            except Exception as error:  # a bug of the model: fail the test, answer kubectl
                self.problems.append(f"kubectl {' '.join(argv)}: the model crashed: {error!r}")
                return 1, "", f"error: the model API server crashed: {error!r}\n"

    @staticmethod
    def _parse(args: list[str], flags: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
        """pflag's forms for the flags given (``--name``, ``-n`` -> ``bool``/``value``)."""
        found: dict[str, list[str]] = {}
        positional: list[str] = []
        aliases = {"-f": "--filename", "-o": "--output"}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("-") and arg != "-":
                if arg[:2] in aliases and not arg.startswith("--"):
                    name, value = aliases[arg[:2]], arg[2:].removeprefix("=")
                    eq = bool(value)
                else:
                    name, eq_sign, value = arg.partition("=")
                    eq = bool(eq_sign)
                kind = flags.get(name)
                if kind is None:
                    raise Unmodelled(f"the flag {name}")
                if kind == "bool":
                    value = value if eq else "true"
                    if value not in ("true", "false"):
                        raise ApiError(f'error: invalid argument "{value}" for "{name}"')
                elif not eq:
                    i += 1
                    if i == len(args):
                        raise ApiError(f"error: flag needs an argument: {name}")
                    value = args[i]
                found.setdefault(name, []).append(value)
            else:
                positional.append(arg)
            i += 1
        return found, positional

    def _ref(self, text: str) -> tuple[Resource, str]:
        kind, slash, name = text.partition("/")
        if not slash or not name:
            raise Unmodelled(f"the object reference {text!r} (only TYPE/NAME is modelled)")
        resource = RESOURCE_NAMES.get(kind)
        if resource is None:
            raise Unmodelled(f"the resource type {kind!r}")
        return resource, name

    def _authorize(self, verb: str, resource: Resource, name: str) -> None:
        for rule in self.rules:
            if (
                resource.group in rule.get("apiGroups", [])
                and resource.plural in rule.get("resources", [])
                and verb in rule.get("verbs", [])
            ):
                return
        raise ApiError(
            f'Error from server (Forbidden): {resource.plural_qualified} "{name}" is forbidden: '
            f'User "{self.user}" cannot {verb} resource "{resource.plural}" in API group '
            f'"{resource.group}" in the namespace "{self.namespace}"'
        )

    def _not_found(self, resource: Resource, name: str) -> ApiError:
        return ApiError(
            f'Error from server (NotFound): {resource.plural_qualified} "{name}" not found'
        )

    def _delete(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        flags, names = self._parse(
            args,
            {
                "--ignore-not-found": "bool",
                "--wait": "bool",
                "--timeout": "value",
                "--cascade": "value",
            },
        )
        # Owned objects go with their owner at once in this model: foreground and background
        # deletion end the same; anything else is not modelled.
        for cascade in flags.get("--cascade", []):
            if cascade not in ("background", "foreground"):
                raise Unmodelled(f"kubectl delete --cascade={cascade}")
        if not names:
            raise Unmodelled("kubectl delete without objects")
        for timeout in flags.get("--timeout", []):
            if not _GO_DURATION.match(timeout):
                raise ApiError(f'error: invalid argument "{timeout}" for "--timeout"')
        ignore = flags.get("--ignore-not-found", ["false"])[-1] == "true"
        wait = flags.get("--wait", ["true"])[-1] == "true"
        out, err, code = "", "", 0
        for text in names:
            resource, name = self._ref(text)
            try:
                self._authorize("get", resource, name)
                if (resource.kind, name) not in self.objects:
                    if not ignore:
                        raise self._not_found(resource, name)
                    continue
                self._authorize("delete", resource, name)
                if wait:  # kubectl watches the object until it is gone
                    self._authorize("list", resource, name)
                    self._authorize("watch", resource, name)
                self.remove(resource, name)
                out += f'{resource.qualified} "{name}" deleted\n'
            except ApiError as error:
                err, code = err + f"{error}\n", 1
        return code, out, err

    def _create(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        flags, positional = self._parse(args, {"--filename": "value"})
        if positional or not flags.get("--filename"):
            raise Unmodelled("kubectl create without -f, or with arguments")
        out, err, code = "", "", 0
        for file in flags["--filename"]:
            path = cwd / file
            try:
                documents = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
            except OSError as error:
                err, code = err + f'error: the path "{file}" does not exist ({error})\n', 1
                continue
            for document in documents:
                try:
                    out += self.create(document, file)
                except ApiError as error:
                    err, code = err + f"{error}\n", 1
        return code, out, err

    def create(self, document: dict[str, Any], file: str, *, authorize: bool = True) -> str:
        """Create one object as the API server does, then let its controller act."""
        group, _, version = str(document.get("apiVersion", "")).rpartition("/")
        resource = BY_KIND.get(str(document.get("kind")))
        if resource is None or (resource.group, resource.version) != (group, version):
            raise ApiError(
                f'error: resource mapping not found for name: "{file}": no matches for kind '
                f'"{document.get("kind")}" in version "{document.get("apiVersion")}"'
            )
        name = str(document.get("metadata", {}).get("name", ""))
        namespace = document.get("metadata", {}).get("namespace", self.namespace)
        if authorize:
            if namespace != self.namespace:
                raise ApiError(
                    f'Error from server (Forbidden): error when creating "{file}": '
                    f'{resource.plural_qualified} is forbidden: User "{self.user}" cannot create '
                    f'resource "{resource.plural}" in API group "{resource.group}" in the '
                    f'namespace "{namespace}"'
                )
            self._authorize("create", resource, name)
        problems = validate(document)
        if problems:
            raise ApiError(
                f'Error from server (BadRequest): error when creating "{file}": '
                f'{resource.kind} in version "{version}" cannot be handled as a '
                f"{resource.kind}: strict decoding error: {'; '.join(problems)}"
            )
        if (resource.kind, name) in self.objects:
            raise ApiError(
                f'Error from server (AlreadyExists): error when creating "{file}": '
                f'{resource.plural_qualified} "{name}" already exists'
            )
        stored = copy.deepcopy(document)
        stored["metadata"]["namespace"] = self.namespace
        stored["metadata"]["creationTimestamp"] = now()
        stored["status"] = {}
        self.objects[(resource.kind, name)] = stored
        controllers = {"PersistentVolumeClaim": self._bind, "Job": self._run}
        controllers.get(resource.kind, self._sync)(stored)
        return f"{resource.qualified}/{name} created\n"

    def remove(self, resource: Resource, name: str) -> None:
        """Delete an object and what goes with it: a Job's pod, a claim's volume (the
        local-hostpath class reclaims with Delete)."""
        del self.objects[(resource.kind, name)]
        if resource is JOB:
            self.pods.pop(name, None)
        if resource is PVC and name in self.claims:
            shutil.rmtree(self.claims.pop(name))

    def _wait(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        flags, names = self._parse(args, {"--for": "value", "--timeout": "value"})
        if len(names) != 1 or len(flags.get("--for", [])) != 1:
            raise Unmodelled("kubectl wait other than for one object and one condition")
        resource, name = self._ref(names[0])
        timeout = flags.get("--timeout", ["30s"])[-1]
        if not _GO_DURATION.match(timeout):
            raise ApiError(f'error: invalid argument "{timeout}" for "--timeout"')
        condition = flags["--for"][0]
        match = re.fullmatch(r"jsonpath=(\{[^}]*\})=(.*)", condition)
        if match is None:
            raise Unmodelled(f"the condition {condition!r} (only jsonpath={{...}}=VALUE)")
        for verb in ("get", "list", "watch"):
            self._authorize(verb, resource, name)
        obj = self.objects.get((resource.kind, name))
        if obj is None:
            raise self._not_found(resource, name)
        met = jsonpath(match.group(1), obj) == match.group(2)
        self.waits.append(Wait(names[0], timeout, met))
        if not met:
            raise ApiError(
                f"error: timed out waiting for the condition on {resource.plural}/{name}"
            )
        return 0, f"{resource.qualified}/{name} condition met\n", ""

    def _get(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        flags, names = self._parse(args, {"--output": "value"})
        output = flags.get("--output", [""])[-1]
        if len(names) != 1 or not output.startswith("jsonpath="):
            raise Unmodelled("kubectl get other than of one object with -o jsonpath=")
        resource, name = self._ref(names[0])
        self._authorize("get", resource, name)
        obj = self.objects.get((resource.kind, name))
        if obj is None:
            raise self._not_found(resource, name)
        return 0, jsonpath(output.removeprefix("jsonpath="), obj), ""

    def _logs(self, args: list[str], cwd: Path) -> tuple[int, str, str]:
        flags, names = self._parse(args, {"--tail": "value"})
        if len(names) != 1:
            raise Unmodelled("kubectl logs other than of one object")
        resource, name = self._ref(names[0])
        if resource is not JOB:
            raise Unmodelled("kubectl logs of anything but a Job")
        # kubectl reads the Job, lists its pods and reads the first one's log.
        self._authorize("get", JOB, name)
        if (JOB.kind, name) not in self.objects:
            raise self._not_found(JOB, name)
        self._authorize("list", PODS, name)
        pod = self.pods.get(name)
        if pod is None:
            raise ApiError(f"error: timed out waiting for the condition (no pod of job/{name})")
        self._authorize("get", POD_LOGS, pod.name)
        lines = pod.log.splitlines(keepends=True)
        tail = int(flags.get("--tail", ["-1"])[-1])
        return 0, "".join(lines[-tail:] if tail >= 0 else lines), ""

    # -- the controllers -------------------------------------------------------------------

    def _bind(self, claim: dict[str, Any]) -> None:
        """The storage class provisions a volume: an empty folder of the claim's own."""
        name = claim["metadata"]["name"]
        if claim["spec"].get("storageClassName") not in STORAGE_CLASSES:
            claim["status"] = {"phase": "Pending"}
            return
        folder = self.root / "volumes" / f"{name}-{len(list(self.root.glob('volumes/*')))}"
        folder.mkdir(parents=True)
        self.claims[name] = folder
        claim["status"] = {"phase": "Bound"}

    def _sync(self, destination: dict[str, Any]) -> None:
        """VolSync's reconcile of a ReplicationDestination with the Kopia mover."""
        spec, status = destination["spec"], destination["status"]
        trigger = spec.get("trigger", {}).get("manual")
        kopia = spec.get("kopia")
        if trigger is None or kopia is None:
            self.problems.append("only a Kopia ReplicationDestination with a manual trigger")
            return
        status["latestMoverStatus"] = {}
        if trigger == status.get("lastManualSync"):
            return
        status["conditions"] = [{"type": "Synchronizing", "status": "True"}]
        secret = self.secrets.get(kopia.get("repository", ""))
        claim = self.claims.get(kopia.get("destinationPVC", ""))
        if secret is None or not {"KOPIA_REPOSITORY", "KOPIA_PASSWORD"} <= set(secret):
            why = "Kopia config secret does not contain the proper fields"
            status["conditions"] = [{"type": "Reconciled", "status": "False", "message": why}]
            return
        if claim is None:
            why = f"PVC {kopia.get('destinationPVC')} not bound"
            status["conditions"] = [{"type": "Reconciled", "status": "False", "message": why}]
            return
        result, logs = self._restore(destination, secret, claim)
        status["latestMoverStatus"] = {"result": result, "logs": logs}
        if result == "Successful":  # a failed mover Job is deleted and retried
            status["lastManualSync"] = trigger
            status["lastSyncTime"] = now()
            status["conditions"] = [{"type": "Synchronizing", "status": "False"}]

    def _restore(
        self, destination: dict[str, Any], secret: Mapping[str, str], claim: Path
    ) -> tuple[str, str]:
        """The Kopia mover: connect to KOPIA_REPOSITORY through the mover's volumes (mounted
        at /mnt/<mountPath>), restore the newest snapshot of the source identity."""
        kopia = destination["spec"]["kopia"]
        url = secret["KOPIA_REPOSITORY"]
        mounts = {}
        for volume in kopia.get("moverVolumes", []):
            nfs = volume.get("volumeSource", {}).get("nfs", {})
            export = self.exports.get((nfs.get("server"), nfs.get("path")))
            if export is None:
                return "Failed", f"MountVolume.SetUp failed: nfs {nfs} is not exported"
            mounts[f"/mnt/{volume['mountPath']}"] = export
        if not url.startswith("filesystem://") or url[len("filesystem://") :] not in mounts:
            return "Failed", f"ERROR unable to connect to repository {url}"
        storage = mounts[url[len("filesystem://") :]] / KOPIA_FORMAT
        repository = json.loads(storage.read_text("utf-8"))
        if repository["password"] != secret["KOPIA_PASSWORD"]:
            return "Failed", "ERROR error connecting to repository: invalid repository password"
        identity = kopia.get("sourceIdentity", {})
        user = identity.get("sourceName", destination["metadata"]["name"])
        host = identity.get("sourceNamespace", self.namespace)
        mine = [
            s
            for s in repository["snapshots"]
            if (s["source"]["userName"], s["source"]["host"]) == (user, host)
        ]
        if not mine:
            return "Successful", "No eligible snapshots found\n=== No data will be restored ==="
        newest = max(mine, key=lambda s: s["startTime"])
        shutil.copytree(newest["_tree"], claim, symlinks=True, dirs_exist_ok=True)
        return "Successful", f"Selected snapshot with id: {newest['id']}\n=== Done ==="

    def _run(self, job: dict[str, Any]) -> None:
        """The Job controller: one pod (backoffLimit 0), run to its end at once."""
        name = job["metadata"]["name"]
        if job["spec"].get("backoffLimit") != 0:
            self.problems.append(f"job/{name}: only backoffLimit 0 is modelled")
        self.pods_started += 1
        suffix = hashlib.sha256(f"{name}/{self.pods_started}".encode()).hexdigest()[:5]
        pod = Pod(f"{name}-{suffix}", "")
        self.pods[name] = pod
        self.pod_history.append(pod)
        started = now()
        code, pod.log = self._run_pod(pod.name, job["spec"]["template"]["spec"])
        outcome = "succeeded" if code == 0 else "failed"
        job["status"] = {"startTime": started, outcome: 1}
        job["status"]["conditions"] = [
            {"type": "Complete" if code == 0 else "Failed", "status": "True"}
        ]

    def _run_pod(self, name: str, spec: dict[str, Any]) -> tuple[int, str]:
        containers = spec.get("containers", [])
        if len(containers) != 1:
            self.problems.append(f"pod {name}: only one container is modelled")
            return 1, ""
        (box,) = containers
        folder = self.root / "pods" / name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: list[dict[str, Any]] = []
        for mount in box.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            read_only = bool(mount.get("readOnly"))
            if "persistentVolumeClaim" in volume:
                source = volume["persistentVolumeClaim"]
                host = self.claims.get(source["claimName"])
                read_only = read_only or bool(source.get("readOnly"))
            elif "nfs" in volume:
                nfs = volume["nfs"]
                host = self.exports.get((nfs["server"], nfs["path"]))
                read_only = read_only or bool(nfs.get("readOnly"))
            elif "configMap" in volume:
                host = self.config_maps.get(volume["configMap"]["name"])
                read_only = True
            elif "emptyDir" in volume:
                host = folder / "volumes" / mount["name"]
                host.mkdir(parents=True)
            else:
                host = None
            if host is None:
                self.problems.append(f"pod {name}: the volume {volume} cannot be mounted")
                return 1, f"MountVolume.SetUp failed for volume {mount['name']!r}\n"
            mounts.append({"path": mount["mountPath"], "host": str(host), "readOnly": read_only})

        def on_pod(path: str) -> Path | None:
            for m in sorted(mounts, key=lambda m: len(m["path"]), reverse=True):
                root = PurePosixPath(m["path"])
                if PurePosixPath(path) == root or root in PurePosixPath(path).parents:
                    return Path(m["host"], *PurePosixPath(path).relative_to(root).parts)
            return None

        env: dict[str, str] = {}
        for variable in box.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
                continue
            ref = variable["valueFrom"]["secretKeyRef"]
            value = self.secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                self.problems.append(f"pod {name}: no key {ref['key']} in Secret {ref['name']}")
                return 1, f"CreateContainerConfigError: {ref['name']}/{ref['key']} not found\n"
            env[variable["name"]] = value
        # A value naming a mount point (DATA_DIR=/data) is given the folder standing for it:
        # the GNU tools verify.sh runs read the test's folders, not the pod's.
        mount_points = {m["path"]: m["host"] for m in mounts}
        env = {k: mount_points.get(v, v) for k, v in env.items()}

        command = box.get("command", [])
        script = on_pod(command[1]) if len(command) == 2 else None
        if command[:1] != ["/bin/bash"] or script is None or "args" in box:
            self.problems.append(f"pod {name}: only [/bin/bash, <script on a volume>] is modelled")
            return 1, ""
        bin_dir = folder / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "mounts.json").write_text(json.dumps(mounts), encoding="utf-8")
        write_program(bin_dir / "kopia", KOPIA)
        write_program(bin_dir / "restic", RESTIC, RESTIC=require_tool("restic"))
        self.pod_bins.append(bin_dir)
        env["PATH"] = os.pathsep.join([str(bin_dir), os.environ["PATH"]])
        cwd = folder / "root"
        cwd.mkdir()
        frozen = [Path(m["host"]) for m in mounts if m["readOnly"]]
        before = [tree_state(p) for p in frozen]
        result = subprocess.run(
            [require_tool("bash"), str(script)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        if [tree_state(p) for p in frozen] != before:
            self.problems.append(f"pod {name} changed a read-only volume")
        return result.returncode, result.stdout

    # -- what the tests read ---------------------------------------------------------------

    def scratch_left(self) -> list[str]:
        return sorted(f"{kind}/{name}" for kind, name in self.objects)

    def recorded(self, program: str) -> list[list[str]]:
        """Every call of ``program`` (kopia, restic) by the pods that ran."""
        calls = []
        for folder in self.pod_bins:
            log = folder / f"{program}-calls.jsonl"
            if log.exists():
                calls += [json.loads(line) for line in log.read_text("utf-8").splitlines()]
        return calls


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def jsonpath(template: str, obj: Mapping[str, Any]) -> str:
    """kubectl's JSONPath output for the forms the drill uses: text with ``{.a.b}`` fields
    (a missing field prints nothing, as for ``kubectl get``)."""

    def field_value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not _JSONPATH_FIELDS.match(expression):
            raise Unmodelled(f"the JSONPath {expression!r}")
        value: Any = obj
        for key in expression.split(".")[1:]:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        return value if isinstance(value, str) else json.dumps(value)

    return re.sub(r"\{([^}]*)\}", field_value, template)


def tree_state(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), os.lstat(p).st_size, os.lstat(p).st_mtime_ns)
        for p in folder.rglob("*")
    )


class _ApiServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    cluster: Cluster


class _ApiHandler(socketserver.StreamRequestHandler):
    server: _ApiServer

    def handle(self) -> None:
        request = json.loads(self.rfile.read())
        code, out, err = self.server.cluster.kubectl(request["argv"], request["cwd"])
        self.wfile.write(json.dumps({"code": code, "stdout": out, "stderr": err}).encode())


@contextlib.contextmanager
def api_server(cluster: Cluster) -> Iterator[Path]:
    """The model served on a unix socket (a short path: sun_path holds 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="kube-", dir="/tmp"))
    path = folder / "api.sock"
    server = _ApiServer(str(path), _ApiHandler)
    server.cluster = cluster
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The rendered catalog, the apps' objects, the offsite restic repository
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    out: Path

    def folder(self, app: str) -> Path:
        return self.out / "kubernetes" / "drills" / NAMESPACE / app

    def cronjob_container(self, app: str) -> dict[str, Any]:
        cronjob = yaml.safe_load((self.folder(app) / "cronjob.yaml").read_text("utf-8"))
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (box,) = pod["containers"]
        return {"pod": pod, "container": box, "namespace": cronjob["metadata"]["namespace"]}

    def rules(self) -> str:
        return "".join(p.read_text() for p in sorted((self.out / "prometheus").rglob("*.yaml")))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    crd_dir()  # skip (locally) or fail (CI) now when the CRDs are missing
    out = tmp_path_factory.mktemp("generated")
    for path, data in render_plan(build_plan(load_catalog_text(CATALOG))).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    return Rendered(out)


def config_map(folder: Path, target: Path) -> tuple[str, Path]:
    """The ConfigMap the drill folder's kustomization generates: its name and its files."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text("utf-8"))
    (generator,) = kustomization["configMapGenerator"]
    target.mkdir(parents=True)
    for file in generator["files"]:
        shutil.copyfile(folder / file, target / file)
    return generator["name"], target


def bound_rules(folder: Path, service_account: str) -> list[dict[str, Any]]:
    """The rules of the Roles bound to the ServiceAccount, from the folder's rbac.yaml."""
    documents = list(yaml.safe_load_all((folder / "rbac.yaml").read_text("utf-8")))
    roles = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Role"}
    rules = []
    for binding in (d for d in documents if d["kind"] == "RoleBinding"):
        subjects = binding["subjects"]
        if {"kind": "ServiceAccount", "name": service_account} in subjects:
            rules += roles[binding["roleRef"]["name"]]["rules"]
    return rules


def fill(template: str, values: Mapping[str, str]) -> str:
    """An ExternalSecret template's ``{{ .KEY }}`` filled from the store's values."""
    return re.sub(r"\{\{ \.(\w+) \}\}", lambda m: values[m.group(1)], template)


def app_secrets(rendered: Rendered, app: str, restic_repository: Path) -> dict[str, Any]:
    """The Secrets of the app's ExternalSecrets (its VolSync components), filled from the
    test's secret store; the offsite repository is a local restic repository."""
    components = rendered.out / "kubernetes" / "components" / "volsync-apps" / app
    listed = yaml.safe_load((components / "kustomization.yaml").read_text("utf-8"))
    secrets: dict[str, dict[str, str]] = {}
    for component in listed["components"]:
        for file in sorted((components / component).resolve().glob("*.yaml")):
            for document in yaml.safe_load_all(file.read_text("utf-8")):
                if not document or document.get("kind") != "ExternalSecret":
                    continue
                target = document["spec"]["target"]
                (source,) = document["spec"]["dataFrom"]
                values = SECRET_STORE[source["extract"]["key"]]
                data = {
                    key: fill(value, values).replace("${APP}", app)
                    for key, value in target["template"]["data"].items()
                }
                secrets[target["name"].replace("${APP}", app)] = data
    if "RESTIC_REPOSITORY" in secrets.get(f"{app}-volsync-r2", {}):
        secrets[f"{app}-volsync-r2"]["RESTIC_REPOSITORY"] = str(restic_repository)
    return secrets


def restic(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> None:
    subprocess.run(
        [require_tool("restic"), *args],
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recipes' R2 copy: a real restic repository holding one backup of its tree."""
    base = tmp_path_factory.mktemp("offsite")
    tree = recipes_tree(base / "data")
    repository = base / "restic"
    env = {
        "RESTIC_REPOSITORY": str(repository),
        "RESTIC_PASSWORD": SECRET_STORE["volsync-r2"]["RESTIC_PASSWORD"],
    }
    restic("init", "--no-cache", env=env)
    restic("backup", "--no-cache", "--host", NAMESPACE, ".", env=env, cwd=tree)
    return repository


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = require_tool("busybox")
    folder = tmp_path_factory.mktemp("busybox-bin")
    for name in APPLETS:
        (folder / name).symlink_to(busybox)
    return folder


# --------------------------------------------------------------------------------------------
# One drill's world
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """One app's drill and the cluster it runs against."""

    app: str
    base: Path
    rendered: Rendered
    cluster: Cluster
    config_map: Path
    kopia_repository: Path
    restic_repository: Path
    pushgateway: FakePushgateway
    applets: Path
    snapshots: list[Snapshot]

    def tree(self, name: str, files: Mapping[str, bytes]) -> Path:
        return make_tree(self.base / "trees" / name, files)

    def snapshot(self, tree: Path, start: str, **options: Any) -> Snapshot:
        return Snapshot(self.app, NAMESPACE, start, tree, **options)

    def set_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        write_kopia_repository(
            self.kopia_repository, SECRET_STORE["volsync-kopia"]["KOPIA_PASSWORD"], snapshots
        )

    @property
    def newest(self) -> Snapshot:
        mine = [s for s in self.snapshots if (s.user, s.host) == (self.app, NAMESPACE)]
        return max(mine, key=lambda s: s.start)

    def run(self) -> subprocess.CompletedProcess[str]:
        """drill.sh as the CronJob's container runs it: busybox sh, its environment, the
        ConfigMap at DRILL_FILES, an emptyDir at HOME (/tmp), kubectl pointing at the model."""
        job = self.rendered.cronjob_container(self.app)
        box = job["container"]
        assert box["command"][0] == "/bin/sh"
        assert PurePosixPath(box["command"][1]).parent == PurePosixPath("/drill")
        env = {v["name"]: v["value"] for v in box["env"]}
        assert env["DRILL_FILES"] == "/drill" and env["HOME"] == "/tmp"
        home = Path(tempfile.mkdtemp(prefix="tmp-", dir=self.base))
        with api_server(self.cluster) as socket_path:
            bin_dir = Path(tempfile.mkdtemp(prefix="kubectl-", dir=self.base))
            write_program(bin_dir / "kubectl", KUBECTL, SOCKET=repr(str(socket_path)))
            env |= {
                "PUSHGATEWAY_URL": self.pushgateway.url,
                "DRILL_FILES": str(self.config_map),
                "HOME": str(home),
                "PATH": os.pathsep.join([str(bin_dir), str(self.applets), os.environ["PATH"]]),
            }
            script = self.config_map / PurePosixPath(box["command"][1]).name
            return subprocess.run(
                [require_tool("busybox"), "sh", str(script)],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

    def verify_log(self) -> str:
        """The logs of the verify pods that ran (their Jobs are deleted by then)."""
        return "".join(pod.log for pod in self.cluster.pod_history)


@pytest.fixture
def world(
    rendered: Rendered,
    offsite: Path,
    applets: Path,
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> Callable[[str], World]:
    require_tool("jq")

    def make(app: str) -> World:
        base = tmp_path / app
        folder = rendered.folder(app)
        job = rendered.cronjob_container(app)
        name, maps = config_map(folder, base / "configmap")
        restic_repository = base / "restic"
        shutil.copytree(offsite, restic_repository)
        kopia_repository = base / "nas" / "volsync-kopia"
        cluster = Cluster(
            root=base / "cluster",
            namespace=job["namespace"],
            service_account=job["pod"]["serviceAccountName"],
            rules=bound_rules(folder, job["pod"]["serviceAccountName"]),
            secrets=app_secrets(rendered, app, restic_repository),
            config_maps={name: maps},
            exports={KOPIA_EXPORT: kopia_repository},
        )
        cluster.root.mkdir(parents=True)
        made = World(
            app, base, rendered, cluster, maps, kopia_repository, restic_repository,
            pushgateway, applets, [],
        )  # fmt: skip
        tree = recipes_tree(base / "trees" / "newest")
        older = made.tree("older", {"recipes/soup.md": b"# Soup\n" * 3000})
        other = made.tree("other", {"notes.txt": b"another app's data\n" * 2000})
        made.set_snapshots(
            [
                made.snapshot(older, "2025-01-01T02:00:00.123456789Z"),
                made.snapshot(tree, "2025-01-02T02:00:00.123456789Z"),
                Snapshot("cookbook", NAMESPACE, "2025-01-03T02:00:00Z", other),
            ]
        )
        return made

    return make


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


def the_push(world: World) -> tuple[str, dict[str, float]]:
    (push,) = world.pushgateway.pushes
    assert push.path == f"/metrics/job/homeops_drill/service/{world.app}"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples), samples
    metrics = {s.name: s.value for s in samples}
    assert len(metrics) == len(samples)
    return push.method, metrics


def cleaned_up(world: World) -> None:
    """Every scratch object is gone (and the claim's volume with it); the stand-ins saw
    nothing they do not model."""
    assert world.cluster.scratch_left() == []
    assert world.cluster.claims == {}
    assert list((world.cluster.root / "volumes").glob("*")) == []
    assert world.cluster.problems == []
    # The scratch objects' last delete does not wait: the drill's own deadline is spent.
    final = world.cluster.calls[-1]
    assert final[0] == "delete" and "--wait=false" in final and "--ignore-not-found" in final


def succeeded(world: World, result: subprocess.CompletedProcess[str], items: int) -> None:
    assert result.returncode == 0, f"{result.stderr}\n--- verify log ---\n{world.verify_log()}"
    _, metrics = the_push(world)
    assert set(metrics) == SUCCESS_METRICS
    assert metrics["restore_drill_last_run_success"] == 1
    assert metrics["restore_drill_last_success_timestamp"] > 0
    assert metrics["restore_drill_duration_seconds"] >= 0
    assert metrics["restore_drill_restored_items"] == items
    # The size the verify step measured of the restored tree (du --apparent-size).
    assert metrics["restore_drill_backup_size_bytes"] == file_bytes(world.newest.tree)
    for name, labels in re.findall(r"(restore_drill_\w+)\{([^}]*)\}", world.rendered.rules()):
        if f'service="{world.app}"' in labels:
            assert name in metrics, name
            assert 'job="homeops_drill"' in labels, labels
    cleaned_up(world)


def failed(world: World, result: subprocess.CompletedProcess[str], message: str) -> str:
    assert result.returncode != 0, f"exit 0 where a failure was due\n{result.stderr}"
    assert f"{world.app}: FAILED: " in result.stderr, result.stderr
    assert message in result.stderr, f"{result.stderr}\n--- verify log ---\n{world.verify_log()}"
    method, metrics = the_push(world)
    assert method == "POST"  # the last success stays as it was
    assert set(metrics) == FAILURE_METRICS
    assert metrics["restore_drill_last_run_success"] == 0
    assert metrics["restore_drill_last_failure_timestamp"] > 0
    cleaned_up(world)
    return result.stderr


# --------------------------------------------------------------------------------------------
# Passing drills
# --------------------------------------------------------------------------------------------


def test_a_good_restore_passes_and_pushes_what_the_alerts_read(
    world: Callable[[str], World],
) -> None:
    drill = world("recipes")
    result = drill.run()
    succeeded(drill, result, items=regular_files(drill.newest.tree))
    assert drill.verify_log().count("homeops-drill-verify files=4 bytes=") == 1
    assert "restored the newest snapshot into recipes-drill" in result.stderr

    # What the drill asked the cluster, in order: the leftovers of a killed run deleted and
    # waited for, the scratch claim and destination, its status polled, the verify Job.
    verbs = [call[0] for call in drill.cluster.calls]
    assert verbs[:3] == ["delete", "create", "get"], drill.cluster.calls
    assert "--wait=true" in drill.cluster.calls[0]
    assert "--cascade=foreground" in drill.cluster.calls[0]
    assert drill.cluster.calls[2][:2] == ["get", "replicationdestination/recipes-drill"]

    # The verify pod read the newest snapshot of recipes@home, and the offsite copy.
    kopia = drill.cluster.recorded("kopia")
    assert kopia[0] == [
        "repository",
        "connect",
        "filesystem",
        "--path=/mnt/repository",
        "--readonly",
    ]
    assert kopia[1] == ["snapshot", "list", "--all", "--json"]
    assert kopia[2] == ["snapshot", "verify", "--verify-files-percent=10", drill.newest.id]
    (check,) = drill.cluster.recorded("restic")
    assert check == ["--cache-dir", "/tmp/restic", "check", "--read-data-subset=5%"]
    assert "no errors were found" in drill.verify_log()


def test_the_app_kept_out_of_offsite_never_runs_restic(world: Callable[[str], World]) -> None:
    drill = world("scratchpad")
    tree = drill.tree("scratchpad", {"todo.txt": b"buy flour\n", "ideas/one.txt": b"x" * 50})
    drill.set_snapshots([drill.snapshot(tree, "2025-02-01T00:00:00Z")])
    result = drill.run()
    succeeded(drill, result, items=2)
    assert drill.cluster.recorded("restic") == []
    assert "restic check" not in drill.verify_log()
    assert [c[:2] for c in drill.cluster.recorded("kopia")][-1] == ["snapshot", "verify"]


def test_an_older_damaged_snapshot_does_not_fail_the_drill(world: Callable[[str], World]) -> None:
    """The verify reads the newest snapshot, the one restored, not every one."""
    drill = world("recipes")
    older, newest, other = drill.snapshots
    older.damaged = "recipes/soup.md"
    drill.set_snapshots([older, newest, other])
    result = drill.run()
    succeeded(drill, result, items=regular_files(newest.tree))
    assert f"snapshot {newest.id} reads back" in drill.verify_log()


def test_a_killed_runs_leftovers_are_deleted_first(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    cluster, files = drill.cluster, drill.config_map
    for name in ("claim.yaml", "replicationdestination.yaml", "verify-job.yaml"):
        document = yaml.safe_load((files / name).read_text("utf-8"))
        cluster.create(document, name, authorize=False)
    (stale,) = cluster.claims.values()
    (stale / "stale.txt").write_bytes(b"left by the killed run\n")
    cluster.pod_history.clear()
    # The names are taken: a drill that did not delete them could not create its own.
    code, _, err = cluster.kubectl(["create", "-f", str(files / "claim.yaml")], str(files))
    assert code == 1 and "(AlreadyExists)" in err, err
    cluster.calls.clear()

    result = drill.run()
    succeeded(drill, result, items=regular_files(drill.newest.tree))
    deletes = cluster.calls[0]
    assert deletes[:4] == [
        "delete",
        "job/recipes-drill-verify",
        "replicationdestination/recipes-drill",
        "pvc/recipes-drill",
    ]
    # Its figures are the fresh restore's: the stale claim, and its extra file, are gone.
    assert "homeops-drill-verify files=4 " in drill.verify_log()


# --------------------------------------------------------------------------------------------
# Failing drills
# --------------------------------------------------------------------------------------------


def test_a_failed_mover_is_reported_with_its_log(world: Callable[[str], World]) -> None:
    """The repository's password is not the Secret's: VolSync's mover fails (and would be
    retried; lastManualSync is never set). The drill reports the Failed result with the
    mover's log at once instead of waiting out its budget, and creates no verify Job."""
    drill = world("recipes")
    write_kopia_repository(drill.kopia_repository, "another-password", drill.snapshots)
    result = drill.run()
    failed(drill, result, "VolSync's restore into recipes-drill failed")
    failed(drill, result, "invalid repository password")
    assert drill.cluster.pod_history == []


def test_fewer_files_than_min_files_fail(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    tree = drill.tree("two", {"a.bin": b"a" * 20000, "b.bin": b"b" * 20000})
    drill.set_snapshots([drill.snapshot(tree, "2025-03-01T00:00:00Z")])
    failed(
        drill,
        drill.run(),
        "the restored tree holds 2 files, fewer than the minimum of 3",
    )
    assert drill.cluster.recorded("kopia") == []  # the tree is checked first


def test_a_tree_of_empty_files_below_min_size_fails(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    tree = drill.tree("empty", {"a": b"", "b": b"", "c/d": b""})
    drill.set_snapshots([drill.snapshot(tree, "2025-03-01T00:00:00Z")])
    stderr = failed(drill, drill.run(), f"below the minimum of {MIN_SIZE}")
    assert f"the restored tree holds {file_bytes(tree)} bytes" in stderr


def test_a_damaged_snapshot_fails_the_kopia_verify(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    older, newest, other = drill.snapshots
    newest.damaged = "images/cake.jpg"
    drill.set_snapshots([older, newest, other])
    failed(drill, drill.run(), f"kopia snapshot verify found snapshot {newest.id} damaged")
    assert "error processing" in drill.verify_log()
    assert drill.cluster.recorded("restic") == []


def test_a_repository_without_the_apps_snapshots_fails(world: Callable[[str], World]) -> None:
    """Only another app's snapshots: the mover restores nothing and succeeds (as the Kopia
    fork's mover does); the empty tree fails even without catalog minimums (no bytes is
    below the default of 1), before the repository is read."""
    drill = world("scratchpad")
    other = drill.tree("other-app", {"notes.txt": b"not scratchpad's\n" * 100})
    drill.set_snapshots([Snapshot("scratchpad-old", NAMESPACE, "2025-01-01T00:00:00Z", other)])
    result = drill.run()
    failed(drill, result, "the restored tree holds 0 bytes, below the minimum of 1")
    assert "the restored tree holds 0 files" in drill.verify_log()
    assert drill.cluster.recorded("kopia") == []


def test_a_corrupted_offsite_pack_fails_the_restic_check(world: Callable[[str], World]) -> None:
    """Every pack flipped in its middle: whichever the 5% subset reads is damaged."""
    drill = world("recipes")
    packs = [p for p in (drill.restic_repository / "data").rglob("*") if p.is_file()]
    assert packs
    for pack in packs:
        pack.chmod(0o600)
        data = bytearray(pack.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 32] = bytes(b ^ 0xFF for b in data[middle : middle + 32])
        pack.write_bytes(bytes(data))
    failed(drill, drill.run(), "restic check found the offsite repository damaged")
    assert "kopia snapshot verify: snapshot" in drill.verify_log()  # Kopia's half passed


def test_an_empty_restore_fails_without_minimums(world: Callable[[str], World]) -> None:
    drill = world("scratchpad")
    drill.set_snapshots([drill.snapshot(drill.tree("nothing", {}), "2025-02-01T00:00:00Z")])
    failed(drill, drill.run(), "below the minimum of 1")


# --------------------------------------------------------------------------------------------
# Negative controls: the model's checks bite
# --------------------------------------------------------------------------------------------


def test_a_field_the_crd_lacks_fails_the_create(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    manifest = drill.config_map / "replicationdestination.yaml"
    text = manifest.read_text("utf-8")
    assert "destinationPVC:" in text
    manifest.write_text(text.replace("destinationPVC:", "destinationPvc:"), encoding="utf-8")
    stderr = failed(
        drill, drill.run(), "could not create the scratch claim and ReplicationDestination"
    )
    assert "(BadRequest)" in stderr and "destinationPvc" in stderr
    assert drill.cluster.pod_history == []


def test_a_role_without_pod_logs_fails_the_drill(world: Callable[[str], World]) -> None:
    """The Role is what the model authorizes with: without pods/log the verify Job's
    figures cannot be read."""
    drill = world("recipes")
    drill.cluster.rules = [r for r in drill.cluster.rules if r["resources"] != ["pods/log"]]
    failed(drill, drill.run(), "the verify Job's log ends without its figures")


def test_the_stand_ins_refuse_what_they_do_not_model(world: Callable[[str], World]) -> None:
    drill = world("recipes")
    for argv in (
        ["get", "pods", "-n", "kube-system"],
        ["apply", "-f", "claim.yaml"],
        ["get", "job/x", "-o", "yaml"],
        ["wait", "pvc/x", "--for=condition=Bound"],
    ):
        code, _, err = drill.cluster.kubectl(argv, str(drill.config_map))
        assert code == 1 and "does not model" in err, (argv, err)
    assert len(drill.cluster.problems) == 4
    with pytest.raises(Unmodelled):
        jsonpath("{.items[0].metadata.name}", {})

    bin_dir = drill.base / "kopia-bin"
    bin_dir.mkdir()
    (bin_dir / "mounts.json").write_text(json.dumps([]), encoding="utf-8")
    kopia = write_program(bin_dir / "kopia", KOPIA)
    for argv, message in (
        (["snapshot", "list", "--all", "--json", "--max-results=1"], "unknown long flag"),
        (["snapshot", "restore", "x", "/data"], "does not model the command"),
        (["repository", "connect", "filesystem", "--path=/mnt/repository"], "cannot access"),
        (["snapshot", "verify", "--verify-files-percent=150", "x"], "between 0 and 100"),
    ):
        run = subprocess.run(
            [str(kopia), *argv],
            env={"PATH": os.environ["PATH"], "KOPIA_PASSWORD": "x", "KOPIA_CONFIG_PATH": "/c"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 1 and message in run.stderr, (argv, run.stderr)
