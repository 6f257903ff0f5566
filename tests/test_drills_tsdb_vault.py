"""The Prometheus and Vault restore drills, run for real on backups the generated backup
scripts took, and on broken copies of them.

Prometheus: real TSDB blocks, written by Debian's ``promtool tsdb create-blocks-from
openmetrics``, are what a Prometheus admin API snapshot holds (``snapshots/<name>/<ULID>/``);
the generated backup archives them as ``tsdb.tar.gz`` and the drill reads them back with the
same real promtool. Vault: snapshots are built in Vault's archive format (a gzipped tar of
``meta.json``, ``state.bin`` as length-delimited StorageEntry protobufs and ``SHA256SUMS``,
written back to back without padding as Go's tar writer does), and a ``vault`` stand-in on
PATH models ``operator raft snapshot save`` (hands over that archive) and ``operator raft
snapshot inspect`` (reads the file alone: gunzips, walks the tar, decodes every entry,
verifies the sums, refuses trailing data, prints the JSON of ``-format=json``), as Vault's
source does. Everything runs under busybox sh with busybox's applets first on PATH, as in the
images. A passing drill pushes one success to ``job="homeops_drill"``; a truncated, a corrupt,
an empty or a wrong backup fails with a clear message, pushes ``restore_drill_last_run_success
0`` without a success timestamp (a POST) and removes its scratch folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePrometheusAdmin, FakePushgateway, RecordedRequest, parse_samples
from jobs import Job, load_job, run_job

from homeops_gen import build_plan, load_catalog_text, render_plan

SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
    "restore_drill_restored_items",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
#: The busybox applets the scripts call (both images link busybox's applets in /bin).
APPLETS = [
    *("basename", "cat", "cp", "cut", "date", "dirname", "du", "find", "grep", "gzip", "head"),
    *("ls", "mkdir", "mv", "rm", "sed", "sha256sum", "sleep", "sort", "tail", "tar", "tr", "wc"),
]
#: A later stamp than any real backup's: a broken copy named so is the newest.
LATER = "29991231T235959Z"

SERVICES = [
    {
        "name": "vault",
        "namespace": "vault",
        "storage": "iscsi",
        "churn": "low",
        "engine": "vault",
        "criticality": "critical",
        "vault": {
            "address": "http://vault-active.vault.svc:8200",
            "token": {"name": "vault-backup-token", "key": "token"},
        },
    },
    {
        "name": "prometheus",
        "namespace": "monitoring",
        "storage": "nfs",
        "churn": "high",
        "engine": "prometheus",
        "cadence": "daily",
        "offsite": {"excluded": "Large TSDB"},
        "prometheus": {"url": "http://prometheus.monitoring.svc:9090", "claim": "prometheus-data"},
    },
]


@dataclass(frozen=True)
class Stacks:
    root: Path
    rules: str

    def job(self, service: str, resource: str) -> Job:
        return load_job(self.root / "terraform" / "stacks" / service, resource)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Stacks:
    text = MINIMAL_HEAD + "".join(f"  - {json.dumps(s)}\n" for s in SERVICES)
    rendered = render_plan(build_plan(load_catalog_text(text)))
    root = tmp_path_factory.mktemp("generated")
    for path, content in rendered.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    rules = "".join(p.read_text() for p in sorted((root / "prometheus").rglob("*.yaml")))
    return Stacks(root, rules)


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = require_tool("busybox")
    folder = tmp_path_factory.mktemp("busybox-bin")
    for name in APPLETS:
        (folder / name).symlink_to(busybox)
    return folder


@dataclass
class Drill:
    backup_dir: Path
    scratch: Path
    pushgateway: FakePushgateway
    path: list[Path]

    def run(self, job: Job) -> subprocess.CompletedProcess[str]:
        env = {
            "BACKUP_DIR": str(self.backup_dir),
            "SCRATCH_DIR": str(self.scratch),
            "PUSHGATEWAY_URL": self.pushgateway.url,
        }
        return run_job(job, env, path=self.path, timeout=60)


def succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def bytes_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def check_success(
    drill: Drill, stacks: Stacks, service: str, backup: Path, items: int, started: float
) -> None:
    """One push of a passing drill: its group, every metric, the items it restored."""
    (push,) = drill.pushgateway.requests
    assert push.path == f"/metrics/job/homeops_drill/service/{service}"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples)
    metrics = {s.name: s.value for s in samples}
    assert set(metrics) == SUCCESS_METRICS
    ended = time.time()
    assert metrics["restore_drill_last_run_success"] == 1
    assert int(started) <= metrics["restore_drill_last_success_timestamp"] <= ended + 1
    assert 0 <= metrics["restore_drill_duration_seconds"] <= ended - started + 1
    assert metrics["restore_drill_backup_size_bytes"] == bytes_of(backup) > 0
    assert metrics["restore_drill_restored_items"] == items
    read = {
        name
        for name, labels in re.findall(r"(restore_drill_\w+)\{([^}]*)\}", stacks.rules)
        if f'service="{service}"' in labels and 'job="homeops_drill"' in labels
    }
    assert read and read <= set(metrics)
    assert list(drill.scratch.iterdir()) == []


def check_failure(drill: Drill, service: str, result: subprocess.CompletedProcess[str]) -> None:
    """A failed drill: non-zero, one POST of the failure alone, the scratch folder gone."""
    assert result.returncode != 0, f"exit 0 where a failure was due\n{result.stderr}"
    (push,) = drill.pushgateway.requests
    assert push.method == "POST"
    assert push.path == f"/metrics/job/homeops_drill/service/{service}"
    metrics = {s.name: s.value for s in parse_samples(push.body)}
    assert set(metrics) == FAILURE_METRICS
    assert metrics["restore_drill_last_run_success"] == 0
    assert metrics["restore_drill_last_failure_timestamp"] > 0
    assert list(drill.scratch.iterdir()) == []


def flip_middle(path: Path, count: int = 32) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def take_backup(
    job: Job, backup_dir: Path, path: list[Path], env: dict[str, str]
) -> tuple[Path, dict[str, float]]:
    """Run the generated backup script; the finished backup and what it pushed."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    with FakePushgateway() as pushgateway:
        result = run_job(
            job,
            {"BACKUP_DIR": str(backup_dir), "PUSHGATEWAY_URL": pushgateway.url, **env},
            path=path,
        )
        succeeded(result)
        (push,) = pushgateway.requests
    (backup,) = [p for p in backup_dir.iterdir() if not p.name.startswith(".")]
    return backup, {s.name: s.value for s in parse_samples(push.body)}


def drill_on(drill: Drill, good: Path, change: Callable[[Path], None] | None = None) -> Path:
    """The backup ``good`` in this test's backup volume; with ``change``, a changed copy
    named as a later backup (so the drill picks it) beside it."""
    drill.backup_dir.mkdir(parents=True)
    copy = drill.backup_dir / good.name
    shutil.copytree(good, copy)
    if change is None:
        return copy
    service = good.name.rsplit("-", 1)[0]
    broken = drill.backup_dir / f"{service}-{LATER}"
    shutil.copytree(good, broken)
    change(broken)
    return broken


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------

#: Two series sampled every minute over five hours: promtool cuts them into 2 h blocks.
SERIES = ('up{job="node"}', 'http_requests_total{code="200",job="api"}')
HOURS = 5


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="module")
def tsdb_blocks(promtool: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real TSDB blocks, as the admin API's snapshot holds them."""
    root = tmp_path_factory.mktemp("tsdb")
    start = (int(time.time()) - 24 * 3600) // 7200 * 7200
    lines = ["# TYPE up gauge", "# TYPE http_requests counter"]
    for n in range(HOURS * 60):
        lines += [f"{s} {n} {start + 60 * n}" for s in SERIES[:1]]
    lines += [f"{SERIES[1]} {n * 3} {start + 60 * n}" for n in range(HOURS * 60)]
    lines.append("# EOF")
    (root / "data.om").write_text("\n".join(lines) + "\n")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(root / "data.om"), "blocks"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    blocks = root / "blocks"
    assert len(list(blocks.iterdir())) >= 3
    return blocks


class SnapshottingPrometheus(FakePrometheusAdmin):
    """The admin API whose snapshot folder holds real blocks (a copy of ``blocks``)."""

    def __init__(self, data_dir: Path, blocks: Path) -> None:
        super().__init__(data_dir)
        self.blocks = blocks

    def _respond(self, request: RecordedRequest) -> tuple[int, str, bytes]:
        status, kind, body = super()._respond(request)
        if status == 200:
            folder = self.snapshot_dir()
            shutil.rmtree(folder)
            shutil.copytree(self.blocks, folder)
        return status, kind, body


@dataclass(frozen=True)
class PromBackup:
    backup: Path
    blocks: list[str]


@pytest.fixture(scope="module")
def prometheus_backup(
    stacks: Stacks, applets: Path, tsdb_blocks: Path, tmp_path_factory: pytest.TempPathFactory
) -> PromBackup:
    root = tmp_path_factory.mktemp("prometheus")
    with SnapshottingPrometheus(root / "data", tsdb_blocks) as admin:
        backup, _ = take_backup(
            stacks.job("prometheus", "backup"),
            root / "backup",
            [applets],
            {"PROMETHEUS_URL": admin.url, "PROMETHEUS_DATA_DIR": str(admin.data_dir)},
        )
    return PromBackup(backup, sorted(p.name for p in tsdb_blocks.iterdir()))


@pytest.fixture
def prom_drill(tmp_path: Path, pushgateway: FakePushgateway, applets: Path, promtool: str) -> Drill:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Drill(tmp_path / "backup", scratch, pushgateway, [applets, Path(promtool).parent])


def rewrite_tsdb(folder: Path, change: Callable[[Path], None]) -> None:
    """tsdb.tar.gz unpacked, changed by ``change`` (the snapshot folder), packed again."""
    archive = folder / "tsdb.tar.gz"
    work = folder / "work"
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (snapshot,) = work.iterdir()
    change(snapshot)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(snapshot, arcname=snapshot.name)
    shutil.rmtree(work)


def first_block(snapshot: Path) -> Path:
    return sorted(p for p in snapshot.iterdir())[0]


def _empty_snapshot(snapshot: Path) -> None:
    for block in snapshot.iterdir():
        shutil.rmtree(block)


def _other_archive(folder: Path) -> None:
    """A sound tar.gz, of two loose files (not a snapshot)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("a.txt", "b.txt"):
            info = tarfile.TarInfo(name)
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
    (folder / "tsdb.tar.gz").write_bytes(buffer.getvalue())


PROM_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (
        lambda f: truncate(f / "tsdb.tar.gz"),
        "tsdb.tar.gz of prometheus-29991231T235959Z is damaged (gzip -t)",
    ),
    "corrupt-index": (
        lambda f: rewrite_tsdb(f, lambda s: flip_middle(first_block(s) / "index")),
        "promtool tsdb analyze found block",
    ),
    "corrupt-chunks": (
        lambda f: rewrite_tsdb(f, lambda s: flip_middle(first_block(s) / "chunks" / "000001")),
        "checksum mismatch",
    ),
    "broken-meta": (
        lambda f: rewrite_tsdb(f, lambda s: (first_block(s) / "meta.json").write_text("{broken")),
        "promtool could not read every block of prometheus-29991231T235959Z",
    ),
    "missing-index": (
        lambda f: rewrite_tsdb(f, lambda s: (first_block(s) / "index").unlink()),
        "has no index",
    ),
    "empty-snapshot": (
        lambda f: rewrite_tsdb(f, _empty_snapshot),
        "holds no block: nothing to restore",
    ),
    "other-archive": (_other_archive, "does not hold exactly one folder (a TSDB snapshot) but 2"),
    "not-tar": (
        lambda f: (f / "tsdb.tar.gz").write_bytes(gzip.compress(b"not a tar archive\n" * 40)),
        "could not unpack tsdb.tar.gz of prometheus-29991231T235959Z (not a tar archive)",
    ),
    "no-archive": (
        lambda f: (f / "tsdb.tar.gz").rename(f / "other.gz"),
        "prometheus-29991231T235959Z holds no tsdb.tar.gz",
    ),
}


def test_prometheus_backup_archives_one_snapshot_of_real_blocks(
    prometheus_backup: PromBackup,
) -> None:
    assert [p.name for p in prometheus_backup.backup.iterdir()] == ["tsdb.tar.gz"]
    with tarfile.open(prometheus_backup.backup / "tsdb.tar.gz") as tar:
        names = tar.getnames()
    (snapshot,) = {n.split("/")[0] for n in names}
    for block in prometheus_backup.blocks:
        assert f"{snapshot}/{block}/index" in names
        assert f"{snapshot}/{block}/meta.json" in names


def test_prometheus_drill_reads_every_block_of_a_real_backup(
    stacks: Stacks, prom_drill: Drill, prometheus_backup: PromBackup
) -> None:
    job = stacks.job("prometheus", "restore_drill")
    assert job.shell == "/bin/sh"
    assert job.image == "docker.io/prom/prometheus:v3.1.0"
    backup = drill_on(prom_drill, prometheus_backup.backup)
    started = time.time()
    result = prom_drill.run(job)
    succeeded(result)
    count = len(prometheus_backup.blocks)
    assert f"promtool lists {count} blocks" in result.stderr
    assert f"promtool read the index and every chunk of {count} blocks" in result.stderr
    check_success(prom_drill, stacks, "prometheus", backup, count, started)


@pytest.mark.parametrize("case", sorted(PROM_BROKEN))
def test_prometheus_drill_fails_on_a_broken_backup(
    case: str, stacks: Stacks, prom_drill: Drill, prometheus_backup: PromBackup
) -> None:
    change, message = PROM_BROKEN[case]
    broken = drill_on(prom_drill, prometheus_backup.backup, change)
    kept = {p.name: p.read_bytes() for p in broken.iterdir()}
    result = prom_drill.run(stacks.job("prometheus", "restore_drill"))
    check_failure(prom_drill, "prometheus", result)
    assert message in result.stderr
    assert {p.name: p.read_bytes() for p in broken.iterdir()} == kept


def test_promtool_alone_misses_what_the_drill_catches(
    promtool: str, tsdb_blocks: Path, tmp_path: Path
) -> None:
    """Why the drill compares the listing and reads every chunk: promtool's ``tsdb list``
    skips a block whose meta.json is broken and exits 0, and plain ``analyze`` does not read
    the chunks."""
    db = tmp_path / "db"
    shutil.copytree(tsdb_blocks, db)
    block = first_block(db)
    flip_middle(block / "chunks" / "000001")
    plain = subprocess.run([promtool, "tsdb", "analyze", str(db), block.name], capture_output=True)
    assert plain.returncode == 0
    (block / "meta.json").write_text("{broken")
    listing = subprocess.run([promtool, "tsdb", "list", str(db)], capture_output=True, text=True)
    assert listing.returncode == 0 and block.name not in listing.stdout


# --------------------------------------------------------------------------------------------
# Vault
# --------------------------------------------------------------------------------------------

VAULT_TOKEN = "hvs.drill-test-token"
#: What the stand-in does, written from Vault's command/operator_raft_snapshot_inspect.go and
#: its raft snapshot archive code: "save" copies $FAKE_VAULT_SNAPSHOT to the file named,
#: "inspect" reads the archive on its own.
VAULT_STANDIN = r'''#!/usr/bin/env python3
import gzip, hashlib, json, os, shutil, sys, zlib

def error(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)

args = sys.argv[1:]
if args[:4] == ["operator", "raft", "snapshot", "save"] and len(args) == 5:
    if os.environ.get("VAULT_TOKEN") != os.environ.get("FAKE_VAULT_TOKEN"):
        error("Error taking the snapshot: permission denied")
    shutil.copyfile(os.environ["FAKE_VAULT_SNAPSHOT"], args[4])
    sys.exit(0)
if args[:4] != ["operator", "raft", "snapshot", "inspect"]:
    error("stand-in: unexpected arguments %r" % args)
fmt, files = os.environ.get("VAULT_FORMAT", "table"), []
for arg in args[4:]:
    if arg.startswith("-format="):
        fmt = arg.split("=", 1)[1]
    elif arg.startswith("-"):
        error("flag provided but not defined: " + arg)
    else:
        files.append(arg)
if not files:
    error("Missing FILE argument")
if len(files) > 1:
    error("Too many arguments (expected 1, got %d)" % len(files))
try:
    raw = open(files[0], "rb").read()
except OSError as exc:
    error("Error opening snapshot file: %s" % exc)

def failed(reason):
    error("Error reading snapshot: failed to read snapshot file: " + reason)

try:
    data = gzip.decompress(raw)
except (OSError, EOFError, zlib.error) as exc:
    # A bad header is refused at once, a damaged stream while it is read.
    error("Error reading snapshot: failed to decompress snapshot: %s" % exc)

def uvarint(buf, pos):
    shift = value = 0
    while True:
        if pos >= len(buf):
            raise ValueError("unexpected EOF")
        byte = buf[pos]; pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint overflows a 64-bit integer")

def storage_entry(msg):
    """The Key of one pb.StorageEntry (1: key, 2: value, 3: seal_wrap)."""
    key, pos = "", 0
    while pos < len(msg):
        tag, pos = uvarint(msg, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ValueError("proto: illegal field number 0")
        if wire == 0:
            _, pos = uvarint(msg, pos)
        elif wire == 2:
            size, pos = uvarint(msg, pos)
            if pos + size > len(msg):
                raise ValueError("proto: unexpected EOF")
            if field == 1:
                try:
                    key = msg[pos:pos + size].decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("proto: string field contains invalid UTF-8")
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(msg):
                raise ValueError("proto: unexpected EOF")
        else:
            raise ValueError("proto: cannot parse invalid wire-format data")
    return key

hashes = {"meta.json": hashlib.sha256(), "state.bin": hashlib.sha256()}
meta, sums, keys, size, pos = None, b"", 0, 0, 0
while True:
    header = data[pos:pos + 512]
    if len(header) < 512:
        failed("failed reading snapshot: unexpected EOF")
    pos += 512
    if header == b"\0" * 512:
        if data[pos:pos + 512] != b"\0" * 512:
            failed("failed reading snapshot: archive/tar: invalid tar header")
        pos += 512
        break
    name = header[:100].split(b"\0", 1)[0].decode()
    if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
        name = header[345:500].split(b"\0", 1)[0].decode() + "/" + name
    try:
        length = int(header[124:136].strip(b" \0") or b"0", 8)
    except ValueError:
        failed("failed reading snapshot: archive/tar: invalid tar header")
    body = data[pos:pos + length]
    if len(body) < length:
        failed("failed reading snapshot: unexpected EOF")
    pos += (length + 511) // 512 * 512
    if name == "meta.json":
        hashes[name].update(body)
        try:
            meta = json.loads(body)
        except ValueError as exc:
            failed("failed to decode snapshot metadata: %s" % exc)
    elif name == "state.bin":
        hashes[name].update(body)
        at = 0
        try:
            while at < len(body):
                n, at = uvarint(body, at)
                if at + n > len(body):
                    raise ValueError("unexpected EOF")
                if storage_entry(body[at:at + n]):
                    keys += 1
                    size += n
                at += n
        except ValueError as exc:
            failed("error parsing snapshot state: %s" % exc)
    elif name == "SHA256SUMS":
        sums = body[:10000]
    elif name == "SHA256SUMS.sealed":
        continue
    else:
        failed("unexpected file %r in snapshot" % name)
seen = set()
for line in sums.decode(errors="replace").splitlines():
    parts = line.split("  ", 1)
    try:
        digest = bytes.fromhex(parts[0])
        name = parts[1].split()[0]
    except (ValueError, IndexError):
        failed("failed checking integrity of snapshot: unexpected EOF")
    if name not in hashes:
        failed("failed checking integrity of snapshot: list missing hash for %r" % name)
    if digest != hashes[name].digest():
        failed("failed checking integrity of snapshot: hash check failed for %r" % name)
    seen.add(name)
for name in hashes:
    if name not in seen:
        failed("failed checking integrity of snapshot: file missing for %r" % name)
rest = data[pos:]
if rest:
    error("Error reading snapshot: %d unread uncompressed bytes remain" % len(rest))
meta = meta or {}
info = {"ID": meta.get("ID", ""), "Size": meta.get("Size", 0), "Index": meta.get("Index", 0),
        "Term": meta.get("Term", 0), "Version": meta.get("Version", 0)}
out = {"Meta": info, "StatsKV": None, "TotalCountKV": keys, "TotalSizeKV": size}
if fmt == "json":
    print(json.dumps(out, indent=2))
else:
    print(" ID      %s\n Size    %d\n Index   %d\n Term    %d\n Version %d" % tuple(info.values()))
'''


def protobuf_entry(key: str, value: bytes) -> bytes:
    """One pb.StorageEntry (key = 1, value = 2), length-delimited as Vault's FSM writes it."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    raw = key.encode()
    msg = b"\x0a" + varint(len(raw)) + raw + b"\x12" + varint(len(value)) + value
    return varint(len(msg)) + msg


#: The keys of a small initialised Vault's state.
VAULT_KEYS = [
    "core/cluster/local/info",
    "core/keyring",
    "core/mounts",
    "core/auth",
    "logical/4f1c2a/secret/app/db",
    "logical/4f1c2a/secret/app/api",
    "sys/token/id/h1a2b3",
]


def vault_snapshot(
    entries: list[bytes], *, sums: str | None = None, extra: dict[str, bytes] | None = None
) -> bytes:
    """A raft.snap: meta.json, state.bin, SHA256SUMS in a tar (no padding) in gzip."""
    state = b"".join(entries)
    meta = (
        json.dumps(
            {
                "Version": 1,
                "ID": "2-1042-1733130000000",
                "Index": 1042,
                "Term": 2,
                "Peers": "",
                "Configuration": {
                    "Servers": [{"Suffrage": 0, "ID": "vault-0", "Address": "vault-0:8201"}]
                },
                "ConfigurationIndex": 1,
                "Size": len(state),
            }
        ).encode()
        + b"\n"
    )
    if sums is None:
        sums = (
            f"{hashlib.sha256(meta).hexdigest()}  meta.json\n"
            f"{hashlib.sha256(state).hexdigest()}  state.bin\n"
        )
    parts = {"meta.json": meta, "state.bin": state, "SHA256SUMS": sums.encode(), **(extra or {})}
    out = b""
    for name, body in parts.items():
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(body), 0o600, 1733130000
        out += info.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512)
    return gzip.compress(out + b"\0" * 1024)


def entries(count: int = len(VAULT_KEYS)) -> list[bytes]:
    return [protobuf_entry(k, hashlib.sha256(k.encode()).digest() * 3) for k in VAULT_KEYS[:count]]


@pytest.fixture(scope="module")
def vault_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vault-bin")
    (folder / "vault").write_text(VAULT_STANDIN)
    (folder / "vault").chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def vault_backup(
    stacks: Stacks, applets: Path, vault_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("vault")
    (root / "source.snap").write_bytes(vault_snapshot(entries()))
    backup, _ = take_backup(
        stacks.job("vault", "backup"),
        root / "backup",
        [applets, vault_bin],
        {
            "VAULT_TOKEN": VAULT_TOKEN,
            "FAKE_VAULT_TOKEN": VAULT_TOKEN,
            "FAKE_VAULT_SNAPSHOT": str(root / "source.snap"),
        },
    )
    return backup


@pytest.fixture
def vault_drill(
    tmp_path: Path, pushgateway: FakePushgateway, applets: Path, vault_bin: Path
) -> Drill:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Drill(tmp_path / "backup", scratch, pushgateway, [applets, vault_bin])


def standin_inspect(
    vault_bin: Path, data: bytes, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "x.snap").write_bytes(data)
    return subprocess.run(
        [
            str(vault_bin / "vault"),
            "operator",
            "raft",
            "snapshot",
            "inspect",
            "-format=json",
            str(tmp_path / "x.snap"),
        ],
        capture_output=True,
        text=True,
    )


def test_the_vault_standin_reads_and_refuses_as_vault_does(vault_bin: Path, tmp_path: Path) -> None:
    good = standin_inspect(vault_bin, vault_snapshot(entries()), tmp_path)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["TotalCountKV"] == len(VAULT_KEYS)
    padded = gzip.decompress(vault_snapshot(entries())) + b"\0" * 2048
    refused: dict[bytes, str] = {
        gzip.compress(padded): "unread uncompressed bytes remain",
        vault_snapshot(entries(), extra={"notes.txt": b"x"}): "unexpected file 'notes.txt'",
        vault_snapshot([b"\x05\x0a\x07abc"]): "error parsing snapshot state",
        vault_snapshot(entries(), sums="00" * 32 + "  meta.json\n"): "hash check failed",
        b"plain text": "failed to decompress snapshot",
    }
    for data, message in refused.items():
        result = standin_inspect(vault_bin, data, tmp_path)
        assert result.returncode == 1 and message in result.stderr, (message, result.stderr)


def _rewrite_vault(folder: Path, data: bytes) -> None:
    (folder / "raft.snap").write_bytes(data)


def _changed_state(folder: Path) -> None:
    """state.bin changed after its sum was taken (one key renamed), SHA256SUMS as it was."""
    changed = [*entries()[:-1], protobuf_entry("sys/token/id/EVIL00", b"x" * 96)]
    _rewrite_vault(folder, vault_snapshot(changed, sums=sums_of(entries())))


VAULT_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (
        lambda f: truncate(f / "raft.snap"),
        "raft.snap of vault-29991231T235959Z is damaged (gzip -t)",
    ),
    "corrupt-state": (
        _changed_state,
        "raft.snap of vault-29991231T235959Z does not match its SHA256SUMS",
    ),
    "empty-state": (
        lambda f: _rewrite_vault(f, vault_snapshot([])),
        "raft.snap of vault-29991231T235959Z holds no keys: nothing to restore",
    ),
    "zero-bytes": (lambda f: (f / "raft.snap").write_bytes(b""), "below the minimum of 1"),
    "not-tar": (
        lambda f: _rewrite_vault(f, gzip.compress(b"this is no snapshot\n" * 30)),
        "could not unpack raft.snap of vault-29991231T235959Z (not a tar archive)",
    ),
    "not-gzip": (
        lambda f: _rewrite_vault(f, b"this is no snapshot\n" * 30),
        "raft.snap of vault-29991231T235959Z is damaged (gzip -t)",
    ),
    "other-archive": (
        lambda f: _rewrite_vault(f, gzip.compress(tar_of({"dump.sql": b"SELECT 1;\n"}))),
        "raft.snap of vault-29991231T235959Z holds dump.sql: not a Vault raft snapshot",
    ),
    "no-sums": (
        lambda f: _rewrite_vault(
            f, gzip.compress(tar_of({"meta.json": b"{}\n", "state.bin": b""}))
        ),
        "raft.snap of vault-29991231T235959Z has no SHA256SUMS: not a Vault raft snapshot",
    ),
    "extra-sum": (
        lambda f: _rewrite_vault(
            f, vault_snapshot(entries(), sums=sums_of(entries()) + "00" * 32 + "  ../x\n")
        ),
        "does not list exactly meta.json and state.bin",
    ),
    "undecodable-state": (
        lambda f: _rewrite_vault(f, vault_snapshot([b"\x05\x0a\x07abc"])),
        "vault operator raft snapshot inspect refused raft.snap of vault-29991231T235959Z",
    ),
    "no-snapshot": (
        lambda f: (f / "raft.snap").rename(f / "raft.old"),
        "vault-29991231T235959Z holds no raft.snap",
    ),
}


def tar_of(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, body in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def sums_of(parts: list[bytes]) -> str:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(vault_snapshot(parts)))) as tar:
        member = tar.extractfile("SHA256SUMS")
        assert member is not None
        return member.read().decode()


def test_vault_drill_verifies_a_real_backup(
    stacks: Stacks, vault_drill: Drill, vault_backup: Path
) -> None:
    job = stacks.job("vault", "restore_drill")
    assert job.shell == "/bin/sh"
    assert "VAULT_TOKEN" not in job.env and "VAULT_ADDR" not in job.env
    backup = drill_on(vault_drill, vault_backup)
    started = time.time()
    result = vault_drill.run(job)
    succeeded(result)
    assert "meta.json and state.bin match SHA256SUMS" in result.stderr
    assert f"inspect read {len(VAULT_KEYS)} keys" in result.stderr
    check_success(vault_drill, stacks, "vault", backup, len(VAULT_KEYS), started)


def test_vault_drill_accepts_a_sealed_sum_beside_the_sums(
    stacks: Stacks, vault_drill: Drill, vault_backup: Path
) -> None:
    """Under an auto-unseal Vault adds SHA256SUMS.sealed; inspect skips it, so does the drill."""
    sealed = vault_snapshot(entries(3), extra={"SHA256SUMS.sealed": b"\x01sealed-blob"})
    backup = drill_on(vault_drill, vault_backup, lambda f: _rewrite_vault(f, sealed))
    started = time.time()
    result = vault_drill.run(stacks.job("vault", "restore_drill"))
    succeeded(result)
    check_success(vault_drill, stacks, "vault", backup, 3, started)


@pytest.mark.parametrize("case", sorted(VAULT_BROKEN))
def test_vault_drill_fails_on_a_broken_backup(
    case: str, stacks: Stacks, vault_drill: Drill, vault_backup: Path
) -> None:
    change, message = VAULT_BROKEN[case]
    broken = drill_on(vault_drill, vault_backup, change)
    kept = {p.name: p.read_bytes() for p in broken.iterdir()}
    result = vault_drill.run(stacks.job("vault", "restore_drill"))
    check_failure(vault_drill, "vault", result)
    assert message in result.stderr
    assert {p.name: p.read_bytes() for p in broken.iterdir()} == kept
