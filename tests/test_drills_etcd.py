"""The etcd restore drill, run for real: its pod, step by step, on a real backup of a live
TLS etcd and on broken copies of it.

The drill CronJob's pod (``restore_drill`` in ``out/terraform/stacks/etcd/backup.tf``) is read
back from the HCL and modelled as the kubelet runs it: the init containers in order, then the
container, each from what the HCL says (exec-form command, env, volume mounts), stopping at the
first that fails (``restart_policy = "Never"``: the pod fails, the container never runs). Its
volumes are temporary folders chosen by kind: the backup claim is the backup folder, the
``empty_dir`` a fresh scratch folder per pod, the scripts ConfigMap its files (lib.sh and
drill.sh, evaluated as Terraform would). Pod paths in commands and env are moved to those
folders; one outside the container's own mounts fails the test rather than reach the host.

The shell image's steps (``/bin/sh drill.sh prepare|finish``) run under busybox sh with a PATH
of busybox's applets alone, as in Alpine, with no curl: lib.sh pushes with ``wget``. That one
program is Debian's GNU wget, not busybox's: Debian's busybox 1.35 build crashes on ``wget
-T`` (SIGSEGV), and GNU wget takes the same ``-q -T -O - --post-data`` lib.sh passes. The
tools image's steps run ``etcdutl snapshot status|restore``: Debian has etcd 3.4, which has
no etcdutl; etcdctl 3.4 (``ETCDCTL_API=3``) has both commands with the same flags, and etcd
3.5 moved them into etcdutl unchanged. A strict stand-in ``etcdutl`` on the tools image's
PATH execs etcdctl with ``ETCDCTL_API=3`` and the same arguments, and refuses any other
command or flag.

The backup is real: a live etcd on loopback with client TLS (kubeadm's certificate names),
seeded with keys, is snapshotted by the backup CronJob's own init containers
(``test_etcd``'s model of them) and kept by the generated backup.sh. A good backup passes
every step, restores a data folder a new etcd member starts on with every key, pushes the
drill's success to ``job="homeops_drill"`` and leaves the scratch folder empty. A truncated
snapshot, a missing one, an empty backup folder or a backup below the catalog's ``min_size``
fails in ``prepare``, which pushes ``restore_drill_last_run_success 0``. A corrupt snapshot
whose SHA-256 was recomputed passes ``prepare`` and fails in etcdutl: the pod fails there and
nothing is pushed, which is what RestoreDrillJobFailing (kube-state-metrics) reports. The
live etcd is never reached.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from engines import EtcdServer, FakePushgateway, parse_samples
from hcl import env_of, find_resources, module_doc, pod_spec
from jobs import backups, load_job, run_job, shell_argv
from test_etcd import CERT_DIR, SNAPSHOT_DIR, _pki
from test_etcd import _init_containers as backup_init_containers

from homeops_gen import build_plan, load_catalog_text, registered_generators, render_plan

STACK = REPO / "out" / "terraform" / "stacks" / "etcd"
RULES = REPO / "out" / "prometheus" / "rules" / "drill-etcd.rules.yaml"
SHELL_IMAGE = "docker.io/library/alpine:"
TOOLS_IMAGE = "registry.k8s.io/etcd:"
#: What a passing etcd drill pushes (it counts no items), and what a failing one does.
SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
#: A later stamp than any real backup's: a broken copy named so is the newest.
LATER = "29991231T235959Z"
#: The keys the live member holds: (key, value), written in a few transactions.
SEED = [(f"/registry/pods/ns-{i % 4}/pod-{i:03d}", f"spec {i} " + "x" * 40) for i in range(160)]

pytestmark = pytest.mark.tool("etcd")


# --------------------------------------------------------------------------------------------
# The pod, read from the HCL
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """One container of the pod, as the HCL declares it."""

    name: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    #: mount path: volume name
    mounts: Mapping[str, str]
    read_only: frozenset[str]


@dataclass(frozen=True)
class Pod:
    """The drill CronJob's pod: its init containers, its container, its volumes' kinds."""

    cron_job: str
    namespace: str
    spec: Mapping[str, Any]
    init: tuple[Box, ...]
    main: Box
    #: volume name: its kind (persistent_volume_claim, empty_dir, config_map ...)
    volumes: Mapping[str, str]
    #: the scripts ConfigMap's files (name: text)
    scripts: Mapping[str, str]

    @property
    def boxes(self) -> tuple[Box, ...]:
        return (*self.init, self.main)


def _box(body: Mapping[str, Any]) -> Box:
    values = env_of(body)
    env = {k: v for k, v in values.items() if isinstance(v, str)}
    assert env == values, f"{body['name']}: only plain values are modelled: {values}"
    assert "args" not in body, body["name"]
    mounts = {m["mount_path"]: m["name"] for m in body.get("volume_mount", [])}
    read_only = frozenset(m["mount_path"] for m in body.get("volume_mount", []) if m["read_only"])
    return Box(body["name"], body["image"], tuple(body["command"]), env, mounts, read_only)


def load_pod(stack: Path, resource: str = "restore_drill") -> Pod:
    doc = module_doc(stack)
    body = find_resources(doc, "kubernetes_cron_job_v1")[resource]
    spec = pod_spec(body)
    (main,) = spec["container"]
    volumes = {}
    for volume in spec["volume"]:
        (kind,) = [k for k in volume if k != "name"]
        volumes[volume["name"]] = kind
    scripts = load_job(stack, resource).files
    (metadata,) = body["metadata"]
    return Pod(
        metadata["name"],
        metadata["namespace"],
        spec,
        tuple(_box(b) for b in spec.get("init_container", [])),
        _box(main),
        volumes,
        scripts,
    )


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    result: subprocess.CompletedProcess[str]
    #: The scratch volume's folders and files once the step ended.
    scratch: frozenset[str]

    @property
    def ok(self) -> bool:
        return self.result.returncode == 0


@dataclass
class PodRun:
    steps: list[Step]
    scratch: Path
    #: The containers' working folder (outside every mount): nothing may be written there.
    cwd: Path

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    @property
    def succeeded(self) -> bool:
        return all(s.ok for s in self.steps)

    def step(self, name: str) -> Step:
        (found,) = [s for s in self.steps if s.name == name]
        return found

    def log(self) -> str:
        return "\n".join(
            f"--- {s.name}: exit {s.result.returncode}\n{s.result.stdout}{s.result.stderr}"
            for s in self.steps
        )


def tree(folder: Path) -> frozenset[str]:
    return frozenset(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def contents(folder: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def _moved(value: str, places: Mapping[str, Path], box: str) -> str:
    """A pod path (or ``--flag=<pod path>``) moved to the folder standing in for its mount;
    a path outside the container's mounts fails rather than reach this machine's."""
    flag, equals, rest = value.rpartition("=")
    if equals and flag.startswith("-"):
        return f"{flag}={_moved(rest, places, box)}"
    if not value.startswith("/"):
        return value
    for pod_path, here in places.items():
        if value == pod_path or value.startswith(pod_path.rstrip("/") + "/"):
            return str(here) + value[len(pod_path) :]
    raise AssertionError(f"container {box} names {value}, outside its mounts {sorted(places)}")


@dataclass
class Node:
    """Runs the pod's containers: per image, the folder that is its whole PATH."""

    alpine: Path
    tools: Path
    base: Path
    pushgateway: FakePushgateway

    def path_of(self, image: str) -> Path:
        if image.startswith(SHELL_IMAGE):
            return self.alpine
        if image.startswith(TOOLS_IMAGE):
            return self.tools
        raise AssertionError(f"no model of the image {image}")

    def run(
        self,
        pod: Pod,
        backup_dir: Path,
        *,
        skip: frozenset[str] = frozenset(),
        after: Callable[[str, Path], None] | None = None,
        argv: Callable[[Box, tuple[str, ...]], tuple[str, ...]] | None = None,
    ) -> PodRun:
        """Run ``pod`` on ``backup_dir``: each container in order, stopping at the first
        that fails. ``skip`` leaves containers out, ``after(name, scratch)`` runs after each
        step that passed, ``argv`` may change a container's command (negative controls)."""
        work = Path(tempfile.mkdtemp(prefix="pod-", dir=self.base))
        folders = {"scratch": work / "scratch", "scripts": work / "scripts", "cwd": work / "cwd"}
        for folder in folders.values():
            folder.mkdir()
        for name, text in pod.scripts.items():
            (folders["scripts"] / name).write_text(text, encoding="utf-8")
        by_kind = {
            "persistent_volume_claim": backup_dir,
            "empty_dir": folders["scratch"],
            "config_map": folders["scripts"],
        }
        volumes = {name: by_kind[kind] for name, kind in pod.volumes.items()}
        assert len(set(pod.volumes.values())) == len(pod.volumes), pod.volumes
        run = PodRun([], folders["scratch"], folders["cwd"])
        for box in pod.boxes:
            if box.name in skip:
                continue
            places = {path: volumes[volume] for path, volume in box.mounts.items()}
            env = {k: _moved(v, places, box.name) for k, v in box.env.items()}
            if "PUSHGATEWAY_URL" in env:
                env["PUSHGATEWAY_URL"] = self.pushgateway.url
            env |= {"PATH": str(self.path_of(box.image)), "HOME": str(folders["cwd"])}
            command = argv(box, box.command) if argv else box.command
            result = _exec(command, places, env, box.name, folders["cwd"])
            run.steps.append(Step(box.name, result, tree(folders["scratch"])))
            if result.returncode != 0:
                break
            if after is not None:
                after(box.name, folders["scratch"])
        return run


def _exec(
    command: tuple[str, ...], places: Mapping[str, Path], env: dict[str, str], box: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """An exec-form command: ``/bin/sh`` is the image's busybox ash, any other first word is
    looked up on the image's PATH. One still running after 60 s is killed (exit -9)."""
    first, *rest = command
    if first == "/bin/sh":
        program = shell_argv(first)
    else:
        found = shutil.which(first, path=env["PATH"])
        assert found, f"{box}: no {first} in the image"
        program = [found]
    argv = [*program, *(_moved(a, places, box) for a in rest)]
    try:
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as stopped:
        return subprocess.CompletedProcess(argv, -9, str(stopped.stdout), str(stopped.stderr))


# --------------------------------------------------------------------------------------------
# Fixtures: the images' programs, a live member and its real backup
# --------------------------------------------------------------------------------------------

#: The stand-in for etcd 3.5's etcdutl: the two commands the drill runs, passed to etcdctl
#: 3.4 (ETCDCTL_API=3), which has them with the same flags; anything else is refused.
ETCDUTL = """\
#!{busybox} sh
refuse() {{ echo "etcdutl stand-in: not modelled: $*" >&2; exit 64; }}
[ "$#" = 4 ] && [ "$1" = snapshot ] || refuse "$@"
case "$3" in -* | "") refuse "$@" ;; esac
case "$2 $4" in
  "status --write-out=table") ;;
  "restore --data-dir="?*) ;;
  *) refuse "$@" ;;
esac
ETCDCTL_API=3
export ETCDCTL_API
exec {etcdctl} "$@"
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the shell image's PATH: every busybox applet, the tools image's PATH: etcdutl)."""
    busybox = require_tool("busybox")
    etcdctl = require_tool("etcdctl")
    alpine = tmp_path_factory.mktemp("alpine-bin")
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for name in listed.stdout.split():
        if name != "wget":
            (alpine / name).symlink_to(busybox)
    (alpine / "wget").symlink_to(require_tool("wget"))
    assert not (alpine / "curl").exists()
    tools = tmp_path_factory.mktemp("etcd-image-bin")
    (tools / "etcdutl").write_text(ETCDUTL.format(busybox=busybox, etcdctl=etcdctl))
    (tools / "etcdutl").chmod(0o755)
    return alpine, tools


@dataclass(frozen=True)
class World:
    """The live member, the real backup its generated backup job kept, and the snapshot's
    revision as ``etcdctl snapshot status`` read it in the backup's check container."""

    etcd: EtcdServer
    backup: Path
    revision: int

    def state(self) -> tuple[int, list[dict[str, Any]]]:
        """The live member's revision and every key-value with its revisions."""
        answer = json.loads(self.etcd.ctl("get", "", "--prefix", "-w", "json").stdout)
        return answer["header"]["revision"], answer["kvs"]


def _seed(etcd: EtcdServer) -> None:
    """SEED, in transactions of 40 puts (under etcd's --max-txn-ops)."""
    for start in range(0, len(SEED), 40):
        ops = "".join(f'put {k} "{v}"\n' for k, v in SEED[start : start + 40])
        subprocess.run(
            [etcd.etcdctl, "txn"],
            input=f"\n{ops}\n\n",
            env=etcd.client_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )


def _status_row(table: str) -> dict[str, str]:
    """The one row of ``snapshot status --write-out=table``, by column."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ]
    header, values = rows
    return dict(zip(header, values, strict=True))


@pytest.fixture(scope="module")
def world(images: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_tool("etcd")
    require_tool("etcdctl")
    alpine, _ = images
    root = tmp_path_factory.mktemp("etcd-live")
    with EtcdServer(root / "member", _pki(root / "pki")) as etcd:
        assert etcd.pki is not None
        _seed(etcd)
        snapshots, backup_dir = root / "snapshot", root / "backup"
        snapshots.mkdir()
        backup_dir.mkdir()
        ran = backup_init_containers({CERT_DIR: etcd.pki, SNAPSHOT_DIR: snapshots}, etcd)
        assert [(name, r.returncode) for name, r in ran] == [("snapshot", 0), ("check", 0)], ran
        revision = int(_status_row(ran[1][1].stdout)["REVISION"])
        job = load_job(STACK)
        with FakePushgateway() as pushgateway:
            overrides = {
                "BACKUP_DIR": str(backup_dir),
                "PUSHGATEWAY_URL": pushgateway.url,
                "ETCD_SNAPSHOT": str(snapshots / "snapshot.db"),
            }
            result = run_job(job, overrides, path=[alpine])
            assert result.returncode == 0, result.stderr
            assert pushgateway.metrics()["backup_last_run_success"] == 1
        (name,) = backups(backup_dir, "etcd")
        yield World(etcd, backup_dir / name, revision)


@pytest.fixture
def node(images: tuple[Path, Path], pushgateway: FakePushgateway, tmp_path: Path) -> Node:
    alpine, tools = images
    return Node(alpine, tools, tmp_path, pushgateway)


@pytest.fixture
def backup_dir(world: World, tmp_path: Path) -> Path:
    """This test's backup volume, holding a copy of the real backup."""
    folder = tmp_path / "backup"
    folder.mkdir()
    shutil.copytree(world.backup, folder / world.backup.name)
    return folder


@pytest.fixture(scope="module")
def pod() -> Pod:
    return load_pod(STACK)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def bytes_of(folder: Path) -> int:
    """The apparent size of the regular files below ``folder`` (lib.sh's bytes_below)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def failure_pushed(pushgateway: FakePushgateway) -> dict[str, float]:
    """The one push of a failed drill: a POST of the failure alone to the drill's group."""
    (push,) = pushgateway.requests
    assert push.method == "POST"
    assert push.path == "/metrics/job/homeops_drill/service/etcd"
    metrics = {s.name: s.value for s in parse_samples(push.body)}
    assert set(metrics) == FAILURE_METRICS
    assert metrics["restore_drill_last_run_success"] == 0
    assert metrics["restore_drill_last_failure_timestamp"] > 0
    return metrics


def failed_in_prepare(run: PodRun, pushgateway: FakePushgateway, message: str) -> None:
    """The pod stopped at prepare, which said why, pushed the failure and cleaned up."""
    assert run.names == ["prepare"], run.log()
    (step,) = run.steps
    assert step.result.returncode == 1, run.log()
    assert message in step.result.stderr, run.log()
    failure_pushed(pushgateway)
    assert tree(run.scratch) == frozenset()


def alerts_read() -> list[tuple[str, str]]:
    """(metric, label set) of every restore_drill_* selector the etcd drill's alerts use."""
    return re.findall(r"(restore_drill_\w+)\{([^}]*)\}", RULES.read_text())


def broken_copy(backup_dir: Path, good: str, change: Callable[[Path], None]) -> Path:
    """A copy of the backup ``good``, newer than it, changed by ``change`` (its folder)."""
    copy = backup_dir / f"etcd-{LATER}"
    shutil.copytree(backup_dir / good, copy)
    change(copy)
    return copy


def rehash(folder: Path) -> None:
    """snapshot.db.sha256 written again for the snapshot as it now is (sha256sum's format)."""
    digest = hashlib.sha256((folder / "snapshot.db").read_bytes()).hexdigest()
    (folder / "snapshot.db.sha256").write_text(f"{digest}  snapshot.db\n")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_middle(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_a_value(path: Path) -> None:
    """Invert the bytes of one seeded value where bbolt keeps it: its pages stay whole (bbolt
    checks no value), only the content differs. Always the same bytes, whatever the layout
    of the pages (inverting the middle of the file may hit a page's own header instead)."""
    data = bytearray(path.read_bytes())
    key, value = SEED[80]
    start = data.find(value.encode())
    assert start >= 0 and key.encode() in data, f"{value!r} is not in {path}"
    for i in range(start, start + len(value)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def zero_meta_pages(path: Path) -> None:
    """bbolt's two meta pages (the first two 4 KiB pages) zeroed."""
    data = bytearray(path.read_bytes())
    data[:8192] = bytes(8192)
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------
# The pod's shape
# --------------------------------------------------------------------------------------------


def test_the_pod_prepares_then_runs_etcdutl_then_finishes_and_has_no_way_to_etcd(pod: Pod) -> None:
    assert [b.name for b in pod.init] == ["prepare", "status", "restore"]
    assert pod.main.name == "restore-drill"
    assert pod.spec["restart_policy"] == "Never"
    prepare, status, restore = pod.init
    assert prepare.command == ("/bin/sh", "/scripts/drill.sh", "prepare")
    assert pod.main.command == ("/bin/sh", "/scripts/drill.sh", "finish")
    assert prepare.image == pod.main.image and prepare.image.startswith(SHELL_IMAGE)
    assert prepare.env == pod.main.env
    for box in (status, restore):
        assert box.image.startswith(TOOLS_IMAGE)
        assert box.command[0] == "etcdutl"
        assert box.env == {}
        assert dict(box.mounts) == {"/scratch": "scratch"}
    assert set(pod.scripts) == {"lib.sh", "backup.sh", "drill.sh"}
    # The backup is only read; nothing of the live member is in reach: no node network
    # (the member listens on the node's loopback), no certificates, no endpoints.
    for box in (prepare, pod.main):
        assert pod.volumes[box.mounts["/backup"]] == "persistent_volume_claim"
        assert "/backup" in box.read_only and "/scripts" in box.read_only
    assert "host_network" not in pod.spec
    assert set(pod.volumes.values()) == {"persistent_volume_claim", "empty_dir", "config_map"}
    assert not any(k.startswith("ETCDCTL") for b in pod.boxes for k in b.env)
    assert "2379" not in json.dumps(pod.spec)


def test_a_failure_in_etcdutl_is_left_to_the_job_failing_alert(pod: Pod) -> None:
    """The etcdutl steps push nothing: RestoreDrillJobFailing, which reads the CronJob's
    last schedule and success times, is what reports them."""
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    expr = rules["RestoreDrillJobFailing"]["expr"]
    selector = f'{{namespace="{pod.namespace}",cronjob="{pod.cron_job}"}}'
    assert f"kube_cronjob_status_last_schedule_time{selector}" in expr
    assert f"kube_cronjob_status_last_successful_time{selector}" in expr


# --------------------------------------------------------------------------------------------
# A good backup
# --------------------------------------------------------------------------------------------


def test_a_real_backup_passes_every_step_restores_every_key_and_pushes_the_success(
    world: World, pod: Pod, node: Node, backup_dir: Path, tmp_path: Path
) -> None:
    live = world.state()
    kept = contents(backup_dir)
    backup = backup_dir / world.backup.name
    revived: list[str] = []

    def after(step: str, scratch: Path) -> None:
        if step != "restore":
            return
        # A copy of what the restore wrote, started as a member: it holds every key.
        copy = tmp_path / "revived"
        shutil.copytree(scratch / "etcd-drill" / "restored", copy)
        with EtcdServer(copy, new=False) as member:
            revived.extend(member.ctl("get", "", "--prefix", "--keys-only").stdout.split())
            value = member.ctl("get", SEED[77][0], "--print-value-only").stdout
            assert value.strip() == SEED[77][1]

    started = time.time()
    run = node.run(pod, backup_dir, after=after)
    ended = time.time()
    assert run.succeeded, run.log()
    assert run.names == ["prepare", "status", "restore", "restore-drill"]

    prepared = run.step("prepare")
    assert prepared.scratch == {"etcd-drill", "etcd-drill/snapshot.db", "etcd-drill/started"}
    assert f"restoring {backup.name} ({bytes_of(backup)} bytes)" in prepared.result.stderr
    assert "snapshot.db matches its SHA-256" in prepared.result.stderr
    row = _status_row(run.step("status").result.stdout)
    assert int(row["REVISION"]) == world.revision
    assert int(row["TOTAL KEYS"]) >= len(SEED)
    restored = run.step("restore").scratch
    assert {"etcd-drill/restored/member/snap/db", "etcd-drill/restored/member/wal"} <= restored
    assert sorted(revived) == sorted(k for k, _ in SEED)
    # finish removed the work folder: the emptyDir is empty when the pod ends.
    assert run.step("restore-drill").scratch == frozenset()
    assert "drill of etcd-" in run.step("restore-drill").result.stderr

    (push,) = node.pushgateway.requests
    assert push.method == "POST"
    assert push.path == "/metrics/job/homeops_drill/service/etcd"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples)
    metrics = {s.name: s.value for s in samples}
    assert set(metrics) == SUCCESS_METRICS
    assert metrics["restore_drill_last_run_success"] == 1
    assert int(started) <= metrics["restore_drill_last_success_timestamp"] <= ended + 1
    assert 0 <= metrics["restore_drill_duration_seconds"] <= ended - started + 1
    assert metrics["restore_drill_backup_size_bytes"] == bytes_of(backup) > 0
    for name, labels in alerts_read():
        assert name in SUCCESS_METRICS | FAILURE_METRICS, name
        assert 'job="homeops_drill"' in labels and 'service="etcd"' in labels, labels

    assert contents(backup_dir) == kept  # mounted read-only: the drill only reads it
    assert tree(run.cwd) == frozenset()
    assert world.state() == live  # the live member: same revision, same keys and values


# --------------------------------------------------------------------------------------------
# Broken backups
# --------------------------------------------------------------------------------------------

PREPARE_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (
        lambda f: truncate(f / "snapshot.db"),
        f"snapshot.db of etcd-{LATER} does not match its SHA-256 (truncated or corrupt)",
    ),
    "corrupt": (
        lambda f: flip_middle(f / "snapshot.db"),
        f"snapshot.db of etcd-{LATER} does not match its SHA-256 (truncated or corrupt)",
    ),
    "no-sha256": (
        lambda f: (f / "snapshot.db.sha256").unlink(),
        f"etcd-{LATER} holds no snapshot.db.sha256",
    ),
    "no-snapshot": (
        lambda f: (f / "snapshot.db").unlink(),
        f"etcd-{LATER} holds no snapshot.db",
    ),
}


@pytest.mark.parametrize("case", sorted(PREPARE_BROKEN))
def test_a_snapshot_that_fails_its_sha256_fails_in_prepare_and_is_reported(
    case: str, world: World, pod: Pod, node: Node, backup_dir: Path
) -> None:
    """The newest backup is broken (an older good one is beside it): prepare refuses it."""
    change, message = PREPARE_BROKEN[case]
    broken = broken_copy(backup_dir, world.backup.name, change)
    kept = contents(broken)
    run = node.run(pod, backup_dir)
    failed_in_prepare(run, node.pushgateway, message)
    assert contents(broken) == kept


ETCDUTL_BROKEN: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # bbolt reads it page by page: status passes; restore checks the snapshot's own
    # trailing SHA-256 (etcdctl snapshot save appends it) and refuses it.
    "flipped-value": (flip_a_value, "restore", "expected sha256"),
    # bbolt's meta pages gone: status cannot open it.
    "zeroed-meta-pages": (zero_meta_pages, "status", "invalid database"),
    # Pages past the end of the file: status faults reading them.
    "truncated": (truncate, "status", ""),
}


@pytest.mark.parametrize("case", sorted(ETCDUTL_BROKEN))
def test_a_corrupt_snapshot_with_a_matching_sha256_fails_the_pod_in_etcdutl(
    case: str, world: World, pod: Pod, node: Node, backup_dir: Path
) -> None:
    change, where, message = ETCDUTL_BROKEN[case]
    live = world.state()

    def corrupt(folder: Path) -> None:
        change(folder / "snapshot.db")
        rehash(folder)

    broken_copy(backup_dir, world.backup.name, corrupt)
    run = node.run(pod, backup_dir)
    assert run.names[0] == "prepare" and run.steps[0].ok, run.log()
    assert run.names[-1] == where, run.log()
    assert all(s.ok for s in run.steps[:-1]), run.log()
    assert run.steps[-1].result.returncode != 0
    assert message in run.steps[-1].result.stderr, run.log()
    # The pod fails at that init container and never starts finish: no push at all (no
    # success, no failure), the CronJob's failed run is the only report.
    assert "restore-drill" not in run.names
    assert node.pushgateway.requests == []
    # What prepare left stays in the emptyDir, which goes with the pod.
    assert "etcd-drill/snapshot.db" in tree(run.scratch)
    assert world.state() == live


def test_the_same_snapshots_unhashed_again_fail_in_prepare_instead(
    world: World, pod: Pod, node: Node, backup_dir: Path
) -> None:
    """Negative control of the test above: without the recomputed .sha256, prepare's own
    check stops the flipped snapshot that only etcdutl restore would have caught."""
    broken_copy(backup_dir, world.backup.name, lambda f: flip_middle(f / "snapshot.db"))
    run = node.run(pod, backup_dir)
    failed_in_prepare(run, node.pushgateway, "does not match its SHA-256")


@pytest.mark.parametrize("case", ["empty", "only-a-partial-run", "another-service"])
def test_no_finished_backup_fails_in_prepare_with_a_clear_message(
    case: str, world: World, pod: Pod, node: Node, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "empty-backup"
    backup_dir.mkdir()
    if case == "only-a-partial-run":
        shutil.copytree(world.backup, backup_dir / f".etcd-{LATER}.partial")
    if case == "another-service":
        shutil.copytree(world.backup, backup_dir / f"etcd2-{LATER}")
    run = node.run(pod, backup_dir)
    failed_in_prepare(
        run, node.pushgateway, f"no finished backup of etcd in {backup_dir} to restore"
    )


# --------------------------------------------------------------------------------------------
# The catalog's min_size
# --------------------------------------------------------------------------------------------


def min_size_pod(base: Path, min_size: int) -> Pod:
    """The drill pod of an inline catalog's etcd with ``min_size`` bytes."""
    service = {
        "name": "etcd",
        "namespace": "kube-system",
        "storage": "local-disk",
        "churn": "low",
        "engine": "etcd",
        "criticality": "critical",
        "min_size": str(min_size),
    }
    text = MINIMAL_HEAD + f"  - {json.dumps(service)}\n"
    generators = [g for g in registered_generators() if g.name == "backup-jobs"]
    for path, data in render_plan(build_plan(load_catalog_text(text), generators)).items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(data)
    pod = load_pod(base / "terraform" / "stacks" / "etcd")
    assert pod.init[0].env["MIN_SIZE_BYTES"] == str(min_size)
    return pod


def test_a_backup_below_the_catalogs_min_size_fails_in_prepare(
    world: World, node: Node, backup_dir: Path, tmp_path: Path
) -> None:
    size = bytes_of(world.backup)
    pod = min_size_pod(tmp_path / "generated", size + 1)
    run = node.run(pod, backup_dir)
    message = f"{world.backup.name} is {size} bytes, below the minimum of {size + 1}"
    failed_in_prepare(run, node.pushgateway, message)


def test_a_backup_above_the_catalogs_min_size_passes(
    world: World, node: Node, backup_dir: Path, tmp_path: Path
) -> None:
    """Control of the test above: the same rendering with a minimum the backup and its
    restored database clear passes."""
    pod = min_size_pod(tmp_path / "generated", 16 * 1024)
    run = node.run(pod, backup_dir)
    assert run.succeeded and run.names[-1] == "restore-drill", run.log()
    assert node.pushgateway.metrics()["restore_drill_last_run_success"] == 1


# --------------------------------------------------------------------------------------------
# finish's checks, and the script's phases
# --------------------------------------------------------------------------------------------


def _remove(relative: str) -> Callable[[str, Path], None]:
    def after(step: str, scratch: Path) -> None:
        if step == "restore":
            target = scratch / "etcd-drill" / "restored" / relative
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    return after


@pytest.mark.parametrize(
    ("case", "skip", "after", "message"),
    [
        ("no-restore", {"restore"}, None, "etcdutl snapshot restore wrote no member/snap/db"),
        ("no-db", set(), _remove("member/snap/db"), "wrote no member/snap/db"),
        ("no-wal", set(), _remove("member/wal"), "etcdutl snapshot restore wrote no member/wal"),
    ],
)
def test_finish_fails_and_reports_when_the_restore_left_no_data_folder(
    case: str,
    skip: set[str],
    after: Callable[[str, Path], None] | None,
    message: str,
    pod: Pod,
    node: Node,
    backup_dir: Path,
) -> None:
    """Negative controls of finish: a restore step that wrote nothing, or part of a data
    folder, fails the drill in the container, which pushes it and empties the scratch."""
    run = node.run(pod, backup_dir, skip=frozenset(skip), after=after)
    assert run.names[-1] == "restore-drill", run.log()
    assert all(s.ok for s in run.steps[:-1]), run.log()
    finish = run.steps[-1]
    assert finish.result.returncode == 1 and message in finish.result.stderr, run.log()
    failure_pushed(node.pushgateway)
    assert tree(run.scratch) == frozenset()


@pytest.mark.parametrize(
    ("phase", "message"),
    [
        ((), "usage: drill.sh prepare|finish"),
        (("verify",), "usage: drill.sh prepare|finish"),
        (("finish",), "the prepare step left nothing in"),
    ],
)
def test_drill_sh_needs_its_phase_and_finish_needs_prepare(
    phase: tuple[str, ...], message: str, pod: Pod, node: Node, backup_dir: Path
) -> None:
    """The prepare container's command with its phase argument removed or changed."""

    def command(box: Box, argv: tuple[str, ...]) -> tuple[str, ...]:
        return (*argv[:2], *phase) if box.name == "prepare" else argv

    run = node.run(pod, backup_dir, argv=command)
    assert run.names == ["prepare"], run.log()
    result = run.steps[0].result
    assert result.returncode == 1 and message in result.stderr, run.log()
    failure_pushed(node.pushgateway)


def test_the_etcdutl_standin_refuses_what_it_does_not_model(
    images: tuple[Path, Path], world: World, tmp_path: Path
) -> None:
    _, tools = images
    etcdutl = str(tools / "etcdutl")
    snapshot = str(world.backup / "snapshot.db")
    env = {"PATH": str(tools)}
    for argv in (
        ["snapshot", "save", snapshot],
        ["snapshot", "status", snapshot],
        ["snapshot", "status", snapshot, "--write-out=json"],
        ["snapshot", "restore", snapshot, f"--data-dir={tmp_path}/x", "--skip-hash-check"],
        ["snapshot", "restore", snapshot, "--data-dir="],
        ["snapshot", "restore", "--data-dir=/tmp/x", snapshot],
        ["defrag", "--data-dir", snapshot, "x"],
    ):
        result = subprocess.run([etcdutl, *argv], env=env, capture_output=True, text=True)
        assert result.returncode == 64 and "not modelled" in result.stderr, argv
    assert not (tmp_path / "x").exists()
    # What it does model reaches etcdctl 3.4 as the v3 API's command.
    status = [etcdutl, "snapshot", "status", snapshot, "--write-out=table"]
    result = subprocess.run(status, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(_status_row(result.stdout)["REVISION"]) == world.revision
