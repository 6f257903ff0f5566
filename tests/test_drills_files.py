"""The SQLite, Redis and files restore drills, run for real on backups the generated backup
scripts took, and on broken copies of them.

An inline catalog (drill checks, ``min_keys``, ``min_files`` set) is rendered into a temporary
folder; each engine's backup job runs against a live SQLite file, a loopback redis-server or a
tree of files, then its ``restore_drill`` job (``drill.sh``) runs on what that backup wrote.
Everything runs under busybox sh with busybox's own applets first on PATH (sha256sum, tar,
find...), as in the Alpine-based images; sqlite3, redis-server, redis-cli and redis-check-rdb
are Debian's. A passing drill pushes one success to ``job="homeops_drill"``; a truncated, a
corrupt, an empty or a wrong backup fails with a clear message, pushes
``restore_drill_last_run_success 0`` without a success timestamp (a POST: the last success
stays), leaves no scratch server running, removes its scratch folder and never touches the
live data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePushgateway, RedisServer, parse_samples, require_redis
from jobs import Job, load_job, run_job

from homeops_gen import build_plan, load_catalog_text, render_plan

#: What a passing drill pushes, and what a failing one does.
SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
    "restore_drill_restored_items",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
#: The applets of the images' busybox the scripts call (Alpine links them in /bin).
APPLETS = [
    *("basename", "cat", "cp", "cut", "date", "dirname", "du", "find", "grep", "gzip", "head"),
    *("ls", "mkdir", "mv", "rm", "sed", "sha256sum", "sleep", "sort", "tail", "tar", "tr", "wc"),
]
#: A later stamp than any real backup's: a broken copy named so is the newest.
LATER = "29991231T235959Z"

SERVICES = [
    {
        "name": "notes",
        "namespace": "notes",
        "storage": "iscsi",
        "churn": "low",
        "engine": "sqlite",
        "drill": {
            "checks": [
                {"table": "users", "min_rows": 2},
                {"query": "SELECT count(*) = 1 FROM users WHERE name = 'O''Brien \"$(id)\"'"},
            ]
        },
        "sqlite": {"claim": "notes-data", "database": "/data/notes.db"},
    },
    {
        "name": "cache",
        "namespace": "cache",
        "storage": "iscsi",
        "churn": "low",
        "engine": "redis",
        "drill": {"min_keys": 3},
        "redis": {"host": "redis.cache.svc", "claim": "cache-data"},
    },
    {
        "name": "docs",
        "namespace": "docs",
        "storage": "nfs",
        "churn": "low",
        "engine": "files",
        "methods": ["dump"],
        "drill": {"min_files": 2},
        "files": {"claim": "docs-data", "mount_path": "/data", "paths": ["/data/a", "/data/b"]},
    },
]


@dataclass(frozen=True)
class Stacks:
    """The rendered inline catalog: its stacks, and the text of its alert rules."""

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
    """A folder whose programs are busybox's applets (put first on PATH)."""
    busybox = require_tool("busybox")
    folder = tmp_path_factory.mktemp("busybox-bin")
    for name in APPLETS:
        (folder / name).symlink_to(busybox)
    return folder


@dataclass
class Drill:
    """One drill run's folders: the backup volume, the scratch volume, the Pushgateway."""

    backup_dir: Path
    scratch: Path
    pushgateway: FakePushgateway
    applets: Path

    def run(
        self, job: Job, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "BACKUP_DIR": str(self.backup_dir),
            "SCRATCH_DIR": str(self.scratch),
            "PUSHGATEWAY_URL": self.pushgateway.url,
            **(extra or {}),
        }
        return run_job(job, env, path=[self.applets], timeout=60)


@pytest.fixture
def drill(tmp_path: Path, pushgateway: FakePushgateway, applets: Path) -> Iterator[Drill]:
    # Short: the scratch redis-server's unix socket path must fit in sun_path (108 bytes).
    scratch = Path(tempfile.mkdtemp(prefix="drill-"))
    yield Drill(tmp_path / "backup", scratch, pushgateway, applets)
    shutil.rmtree(scratch, ignore_errors=True)


def succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def bytes_of(folder: Path) -> int:
    """The apparent size of the regular files below ``folder`` (what lib.sh's bytes_below sums)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def take_backup(
    job: Job, backup_dir: Path, pushgateway: FakePushgateway, applets: Path, env: dict[str, str]
) -> tuple[Path, dict[str, float]]:
    """Run the generated backup script; the finished backup and what it pushed."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    before = len(pushgateway.requests)
    result = run_job(
        job,
        {"BACKUP_DIR": str(backup_dir), "PUSHGATEWAY_URL": pushgateway.url, **env},
        path=[applets],
    )
    succeeded(result)
    (name,) = [p for p in backup_dir.iterdir() if not p.name.startswith(".")]
    (push,) = pushgateway.requests[before:]
    assert push.path == f"/metrics/job/homeops_backup/service/{job.env['SERVICE']}"
    return name, {s.name: s.value for s in parse_samples(push.body)}


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
    check_alerts_read(stacks, service, set(metrics))
    assert list(drill.scratch.iterdir()) == []


def check_alerts_read(stacks: Stacks, service: str, pushed: set[str]) -> None:
    """Every drill metric a generated alert of ``service`` reads is pushed, to its group."""
    for name, labels in re.findall(r"(restore_drill_\w+)\{([^}]*)\}", stacks.rules):
        if f'service="{service}"' in labels:
            assert name in pushed, name
            assert 'job="homeops_drill"' in labels, labels


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


def broken_copy(good: Path, service: str, change: Callable[[Path], None]) -> Path:
    """A copy of the backup ``good``, newer than it, changed by ``change`` (its folder)."""
    copy = good.parent / f"{service}-{LATER}"
    shutil.copytree(good, copy)
    change(copy)
    return copy


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_middle(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of ``path``."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def tree_of(folder: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------


def seed_sqlite(database: Path) -> None:
    """A WAL-mode database with two tables (users holds 3 rows) and an index."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
        db.execute("CREATE INDEX users_name ON users (name)")
        db.execute("CREATE TABLE ciphers (id INTEGER PRIMARY KEY, body BLOB)")
        names = ["ada", 'O\'Brien "$(id)"', "zoë"]
        db.executemany("INSERT INTO users (name) VALUES (?)", [(n,) for n in names])
        db.executemany(
            "INSERT INTO ciphers VALUES (?, ?)", [(i, os.urandom(900)) for i in range(40)]
        )
    db.close()


@pytest.fixture(scope="module")
def sqlite_backup(
    stacks: Stacks, applets: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, float]]:
    """A real backup of a live database: (live database, backup folder, backup metrics)."""
    require_tool("sqlite3")
    root = tmp_path_factory.mktemp("sqlite")
    database = root / "data" / "notes.db"
    seed_sqlite(database)
    with FakePushgateway() as pushgateway:
        backup, metrics = take_backup(
            stacks.job("notes", "backup"),
            root / "backup",
            pushgateway,
            applets,
            {"SQLITE_ROOT": str(database.parent), "SQLITE_DATABASE": str(database)},
        )
    return database, backup, metrics


def sqlite_drill_setup(drill: Drill, sqlite_backup: tuple[Path, Path, dict[str, float]]) -> Path:
    """The module's backup copied into this test's backup volume."""
    _, backup, _ = sqlite_backup
    drill.backup_dir.mkdir(parents=True)
    copy = drill.backup_dir / backup.name
    shutil.copytree(backup, copy)
    return copy


def test_sqlite_backup_counts_its_tables(
    sqlite_backup: tuple[Path, Path, dict[str, float]],
) -> None:
    _, backup, metrics = sqlite_backup
    # The backup's own integrity check (sqlite3 -readonly on a WAL-mode copy) leaves the
    # copy's empty -wal and its -shm beside it.
    assert {p.name for p in backup.iterdir()} - {"notes.db-wal", "notes.db-shm"} == {"notes.db"}
    assert metrics["backup_last_items"] == 2  # users and ciphers; sqlite_sequence aside


def test_sqlite_drill_passes_on_a_real_backup(
    stacks: Stacks, drill: Drill, sqlite_backup: tuple[Path, Path, dict[str, float]]
) -> None:
    database, _, _ = sqlite_backup
    live = database.read_bytes()
    backup = sqlite_drill_setup(drill, sqlite_backup)
    job = stacks.job("notes", "restore_drill")
    assert job.shell == "/bin/sh"
    assert job.env["SQLITE_NAME"] == "notes.db"
    started = time.time()
    result = drill.run(job)
    succeeded(result)
    assert "check passed: table users holds at least 2 rows" in result.stderr
    assert "check passed: the query" in result.stderr
    check_success(drill, stacks, "notes", backup, 2, started)
    assert database.read_bytes() == live


def _sqlite_wrong(folder: Path) -> None:
    """A sound database, but not this service's: it lacks the checked table."""
    (folder / "notes.db").unlink()
    with sqlite3.connect(folder / "notes.db") as db:
        db.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")
    db.close()


def _sqlite_few_rows(folder: Path) -> None:
    with sqlite3.connect(folder / "notes.db") as db:
        db.execute("DELETE FROM users WHERE name LIKE 'O%'")
    db.close()


def _sqlite_corrupt(folder: Path) -> None:
    """Page 2 onwards overwritten: the b-trees' pages no longer parse."""
    path = folder / "notes.db"
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page : page * 3] = b"\xa5" * (page * 2)
    path.write_bytes(bytes(data))


SQLITE_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (lambda f: truncate(f / "notes.db"), "integrity check of notes.db"),
    "corrupt": (_sqlite_corrupt, "integrity check of notes.db"),
    # The -shm beside it keeps the folder above the minimum size: the header check tells.
    "empty": (
        lambda f: (f / "notes.db").write_bytes(b""),
        "notes.db in notes-29991231T235959Z is not an SQLite database",
    ),
    "missing": (
        lambda f: (f / "notes.db").unlink(),
        "notes-29991231T235959Z holds no notes.db",
    ),
    "not-sqlite": (
        lambda f: (f / "notes.db").write_bytes(b"PGDMP pg_dump output\n" * 50),
        "notes.db in notes-29991231T235959Z is not an SQLite database",
    ),
    "wrong-database": (_sqlite_wrong, "check failed: table users holds at least 2 rows"),
    "too-few-rows": (_sqlite_few_rows, "check failed: the query"),
}


@pytest.mark.parametrize("case", sorted(SQLITE_BROKEN))
def test_sqlite_drill_fails_on_a_broken_backup(
    case: str, stacks: Stacks, drill: Drill, sqlite_backup: tuple[Path, Path, dict[str, float]]
) -> None:
    database, _, _ = sqlite_backup
    live = database.read_bytes()
    good = sqlite_drill_setup(drill, sqlite_backup)
    change, message = SQLITE_BROKEN[case]
    broken = broken_copy(good, "notes", change)
    kept = tree_of(broken)
    result = drill.run(stacks.job("notes", "restore_drill"))
    check_failure(drill, "notes", result)
    assert message in result.stderr
    assert "FAILED" in result.stderr
    assert tree_of(broken) == kept  # the backup itself was only read
    assert database.read_bytes() == live


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisBackup:
    server: RedisServer
    backup: Path
    metrics: dict[str, float]
    #: An RDB of the same server holding a single key (fewer than min_keys).
    small_rdb: bytes


@pytest.fixture(scope="module")
def redis_backup(
    stacks: Stacks, applets: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisBackup]:
    require_redis()
    require_tool("redis-check-rdb")
    root = tmp_path_factory.mktemp("redis")
    with RedisServer(root / "live") as server:
        for i in range(4):
            server.cli("SET", f"key {i}", f"value 'ü' {i}")
        server.cli("RPUSH", "queue", "a", "b")
        server.cli("-n", "5", "HSET", "user:1", "name", "Zoë")
        with FakePushgateway() as pushgateway:
            backup, metrics = take_backup(
                stacks.job("cache", "backup"),
                root / "backup",
                pushgateway,
                applets,
                {
                    "REDIS_HOST": server.host,
                    "REDIS_PORT": str(server.port),
                    "REDIS_DATA_DIR": str(server.data_dir),
                },
            )
        with RedisServer(root / "small") as small:
            small.cli("SET", "only", "one")
            small.cli("SAVE")
            small_rdb = small.rdb_path.read_bytes()
        yield RedisBackup(server, backup, metrics, small_rdb)


def redis_servers_in(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (a scratch redis-server left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"redis" in argv and str(folder).encode() in argv:
            found.append(int(entry.name))
    return found


def redis_state(server: RedisServer) -> tuple[str, str, bytes]:
    return server.cli("DBSIZE"), server.cli("-n", "5", "DBSIZE"), server.rdb_path.read_bytes()


def redis_drill_setup(drill: Drill, redis_backup: RedisBackup) -> Path:
    drill.backup_dir.mkdir(parents=True)
    copy = drill.backup_dir / redis_backup.backup.name
    shutil.copytree(redis_backup.backup, copy)
    return copy


def test_redis_drill_loads_every_key_of_a_real_backup(
    stacks: Stacks, drill: Drill, redis_backup: RedisBackup
) -> None:
    live = redis_state(redis_backup.server)
    backup = redis_drill_setup(drill, redis_backup)
    job = stacks.job("cache", "restore_drill")
    assert job.shell == "/bin/sh"
    started = time.time()
    result = drill.run(job)
    succeeded(result)
    assert "check passed: at least 3 keys (found 6)" in result.stderr
    check_success(drill, stacks, "cache", backup, 6, started)
    assert redis_servers_in(drill.scratch) == []
    assert redis_state(redis_backup.server) == live
    assert (backup / "dump.rdb").read_bytes() == (redis_backup.backup / "dump.rdb").read_bytes()


REDIS_BROKEN: dict[str, tuple[Callable[[Path, RedisBackup], None], str]] = {
    "truncated": (lambda f, _: truncate(f / "dump.rdb"), "redis-check-rdb found dump.rdb"),
    "corrupt": (lambda f, _: flip_middle(f / "dump.rdb", 8), "redis-check-rdb found dump.rdb"),
    "empty": (lambda f, _: (f / "dump.rdb").write_bytes(b""), "below the minimum of 1"),
    "not-rdb": (
        lambda f, _: (f / "dump.rdb").write_bytes(b"*1\r\n$4\r\nPING\r\n"),
        "dump.rdb in cache-29991231T235959Z is not an RDB file",
    ),
    "too-few-keys": (
        lambda f, b: (f / "dump.rdb").write_bytes(b.small_rdb),
        "check failed: at least 3 keys (found 1)",
    ),
}


@pytest.mark.parametrize("case", sorted(REDIS_BROKEN))
def test_redis_drill_fails_on_a_broken_backup(
    case: str, stacks: Stacks, drill: Drill, redis_backup: RedisBackup
) -> None:
    live = redis_state(redis_backup.server)
    good = redis_drill_setup(drill, redis_backup)
    change, message = REDIS_BROKEN[case]
    broken = broken_copy(good, "cache", lambda f: change(f, redis_backup))
    kept = tree_of(broken)
    result = drill.run(stacks.job("cache", "restore_drill"))
    check_failure(drill, "cache", result)
    assert message in result.stderr
    assert redis_servers_in(drill.scratch) == []
    assert tree_of(broken) == kept
    assert redis_state(redis_backup.server) == live


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

#: Names busybox's sha256sum must write and read back as they are (below /data/a).
ODD_NAMES = [
    "plain.txt",
    "two  spaces and a trailing one ",
    "quotes 'single' \"double\" $(id) `id`.txt",
    "back\\slash\\n.txt",
    "-leading-dash",
    "*star",
    "ünïcödé ✓ 日本語",
    "tab\tinside",
]


def files_tree(root: Path) -> None:
    (root / "a" / "sub dir").mkdir(parents=True)
    (root / "a" / "empty").mkdir()
    for n, name in enumerate(ODD_NAMES):
        (root / "a" / name).write_bytes(f"{name} {n}\n".encode() * (n + 1))
    (root / "a" / "sub dir" / "data.bin").write_bytes(bytes(range(256)) * 5)
    (root / "a" / "line\nfeed").write_text("archived, not in the manifest\n")
    (root / "a" / "link").symlink_to("plain.txt")
    (root / "b").mkdir()
    (root / "b" / "notes.md").write_text("# notes\n")
    (root / "c").mkdir()
    (root / "c" / "not-archived.txt").write_text("no\n")


#: The regular files of files_tree the manifest lists (the line-feed name aside).
MANIFEST_FILES = len(ODD_NAMES) + 2


@dataclass(frozen=True)
class FilesBackup:
    root: Path
    backup: Path
    metrics: dict[str, float]
    log: str


@pytest.fixture(scope="module")
def files_backup(
    stacks: Stacks, applets: Path, tmp_path_factory: pytest.TempPathFactory
) -> FilesBackup:
    base = tmp_path_factory.mktemp("files")
    files_tree(base / "data")
    job = stacks.job("docs", "backup")
    with FakePushgateway() as pushgateway:
        backup_dir = base / "backup"
        backup_dir.mkdir()
        result = run_job(
            job,
            {
                "BACKUP_DIR": str(backup_dir),
                "PUSHGATEWAY_URL": pushgateway.url,
                "FILES_ROOT": str(base / "data"),
            },
            path=[applets],
        )
        succeeded(result)
        (backup,) = backup_dir.iterdir()
        (push,) = pushgateway.requests
    metrics = {s.name: s.value for s in parse_samples(push.body)}
    return FilesBackup(base / "data", backup, metrics, result.stderr)


def test_files_backup_writes_the_manifest_and_counts_its_files(files_backup: FilesBackup) -> None:
    backup, root = files_backup.backup, files_backup.root
    assert sorted(p.name for p in backup.iterdir()) == ["SHA256SUMS", "files.tar.gz"]
    lines = (backup / "SHA256SUMS").read_bytes().decode().splitlines()
    # busybox's format: the hash, two spaces, the name as it is (no escaping)
    listed = {}
    for line in lines:
        digest, name = line[:64], line[66:]
        assert re.fullmatch(r"[0-9a-f]{64}", digest) and line[64:66] == "  ", line
        listed[name] = digest
    expected = {
        "./" + p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.parts[len(root.parts)] in ("a", "b")
        if "\n" not in p.name
    }
    assert listed == expected
    assert len(listed) == MANIFEST_FILES
    with tarfile.open(backup / "files.tar.gz") as tar:
        archived = {m.name for m in tar.getmembers() if m.isfile()}
    assert set(listed) <= archived  # named as in the archive
    assert "./a/line\nfeed" in archived
    assert "a line feed; they are archived but not in SHA256SUMS" in files_backup.log
    metrics = files_backup.metrics
    assert metrics["backup_last_items"] == MANIFEST_FILES
    assert metrics["backup_last_size_bytes"] == bytes_of(backup)


def files_drill_setup(drill: Drill, files_backup: FilesBackup) -> Path:
    drill.backup_dir.mkdir(parents=True)
    copy = drill.backup_dir / files_backup.backup.name
    shutil.copytree(files_backup.backup, copy)
    return copy


def test_files_drill_verifies_every_file_of_a_real_backup(
    stacks: Stacks, drill: Drill, files_backup: FilesBackup
) -> None:
    live = tree_of(files_backup.root)
    backup = files_drill_setup(drill, files_backup)
    job = stacks.job("docs", "restore_drill")
    assert job.shell == "/bin/sh"
    started = time.time()
    result = drill.run(job)
    succeeded(result)
    assert f"{MANIFEST_FILES} files match SHA256SUMS" in result.stderr
    check_success(drill, stacks, "docs", backup, MANIFEST_FILES, started)
    assert tree_of(files_backup.root) == live


def rebuild_archive(folder: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """files.tar.gz rewritten with its regular files' contents changed by ``change``."""
    with tarfile.open(folder / "files.tar.gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]  # type: ignore[union-attr]
    contents = {m.name: data for m, data in members if data is not None}
    change(contents)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, _ in members:
            if member.isfile() and member.name not in contents:
                continue
            if member.isfile():
                member.size = len(contents[member.name])
                tar.addfile(member, io.BytesIO(contents[member.name]))
            else:
                tar.addfile(member)
    (folder / "files.tar.gz").write_bytes(gzip.compress(buffer.getvalue()))


def _changed_after_manifest(folder: Path) -> None:
    rebuild_archive(folder, lambda c: c.update({"./b/notes.md": b"# edited later\n"}))


def _ghost_line(folder: Path) -> None:
    with (folder / "SHA256SUMS").open("a") as manifest:
        manifest.write(hashlib.sha256(b"ghost").hexdigest() + "  ./a/ghost.txt\n")


def _empty_archive(folder: Path) -> None:
    rebuild_archive(folder, lambda c: c.clear())


def _one_file(folder: Path) -> None:
    """A sound backup of a single file: fewer than min_files."""
    rebuild_archive(folder, lambda c: [c.pop(k) for k in list(c) if k != "./b/notes.md"])
    digest = hashlib.sha256(b"# notes\n").hexdigest()
    (folder / "SHA256SUMS").write_text(f"{digest}  ./b/notes.md\n")


FILES_BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (lambda f: truncate(f / "files.tar.gz"), "damaged (gzip -t)"),
    "corrupt": (lambda f: flip_middle(f / "files.tar.gz"), "damaged (gzip -t)"),
    "empty": (_empty_archive, "do not match its SHA256SUMS"),
    "changed-after-manifest": (_changed_after_manifest, "do not match its SHA256SUMS"),
    "missing-file": (_ghost_line, "do not match its SHA256SUMS"),
    "too-few-files": (_one_file, "check failed: at least 2 files (verified 1)"),
    "no-manifest": (
        lambda f: (f / "SHA256SUMS").unlink(),
        "has no SHA256SUMS (taken before backups wrote a checksum manifest)",
    ),
}


@pytest.mark.parametrize("case", sorted(FILES_BROKEN))
def test_files_drill_fails_on_a_broken_backup(
    case: str, stacks: Stacks, drill: Drill, files_backup: FilesBackup
) -> None:
    live = tree_of(files_backup.root)
    good = files_drill_setup(drill, files_backup)
    change, message = FILES_BROKEN[case]
    broken = broken_copy(good, "docs", change)
    kept = tree_of(broken)
    result = drill.run(stacks.job("docs", "restore_drill"))
    check_failure(drill, "docs", result)
    assert message in result.stderr
    if case == "changed-after-manifest":
        assert "./b/notes.md: FAILED" in result.stderr
    if case == "missing-file":
        assert "./a/ghost.txt: FAILED" in result.stderr
    assert tree_of(broken) == kept
    assert tree_of(files_backup.root) == live


def test_an_empty_data_set_passes_without_a_minimum(
    drill: Drill, applets: Path, tmp_path: Path
) -> None:
    """Without min_files, a tree that holds no files is a legitimate (empty) backup."""
    service = {**SERVICES[2], "drill": True}
    text = MINIMAL_HEAD + f"  - {json.dumps(service)}\n"
    rendered = render_plan(build_plan(load_catalog_text(text)))
    stack = tmp_path / "generated"
    for path, content in rendered.items():
        (stack / path).parent.mkdir(parents=True, exist_ok=True)
        (stack / path).write_bytes(content)
    stacks = Stacks(stack, "")
    root = tmp_path / "data"
    (root / "a" / "empty").mkdir(parents=True)
    (root / "b").mkdir()
    with FakePushgateway() as pushgateway:
        backup, metrics = take_backup(
            stacks.job("docs", "backup"),
            drill.backup_dir,
            pushgateway,
            applets,
            {"FILES_ROOT": str(root)},
        )
    assert metrics["backup_last_items"] == 0
    assert (backup / "SHA256SUMS").read_bytes() == b""
    started = time.time()
    result = drill.run(stacks.job("docs", "restore_drill"))
    succeeded(result)
    check_success(drill, stacks, "docs", backup, 0, started)
