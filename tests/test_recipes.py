"""The generated backup recipes, run for real against throwaway engines, fakes and stubs.

Each test loads a job from a generated stack (``out/terraform/stacks/<service>/backup.tf`` for
the reference catalog, a temporary ``--out`` folder for inline catalogs), points its
environment at temporary folders, loopback servers and a fake Pushgateway, runs the script
under the shell its image has, and checks what matters: the backup's data restores, the
metrics are pushed once and are right, and every failure exits non-zero without a push,
without a half-written backup and without touching older backups.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import re
import shutil
import subprocess
import tarfile
import textwrap
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, require_tool
from engines import (
    FakePrometheusAdmin,
    FakePushgateway,
    MariaDBServer,
    PostgresServer,
    RecordedRequest,
    RedisServer,
    StubRecorder,
    client_env,
    free_port,
)
from jobs import Job, backups, fake_clock, load_job, run_job, without_programs

from homeops_gen.cli import main as homeops_gen_main

STACKS = REPO / "out" / "terraform" / "stacks"
LONDON = zoneinfo.ZoneInfo("Europe/London")
STAMP = re.compile(r"\d{8}T\d{6}Z")
METRIC_NAMES = {
    "backup_last_success_timestamp",
    "backup_last_run_success",
    "backup_last_duration_seconds",
    "backup_last_size_bytes",
}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def common_env(backup_dir: Path, pushgateway: FakePushgateway) -> dict[str, str]:
    backup_dir.mkdir(parents=True, exist_ok=True)
    return {"BACKUP_DIR": str(backup_dir), "PUSHGATEWAY_URL": pushgateway.url}


def succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def failed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, f"exit 0 where a failure was due\n{result.stderr}"


def the_backup(backup_dir: Path, service: str) -> Path:
    """The one finished backup of ``service`` (named ``<service>-<UTC stamp>``)."""
    (name,) = backups(backup_dir, service)
    assert re.fullmatch(rf"{re.escape(service)}-{STAMP.pattern}", name), name
    return backup_dir / name


def no_leftovers(backup_dir: Path) -> None:
    """No ``.partial`` work folder (or any hidden file) is left in the backup volume."""
    hidden = [p.name for p in backup_dir.iterdir() if p.name.startswith(".")]
    assert hidden == []


def apparent_bytes(folder: Path) -> int:
    """The sizes of the regular files below ``folder`` (what the backup reports)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def the_push(pushgateway: FakePushgateway, service: str) -> dict[str, float]:
    """The metrics of the single push the job made, to its own group."""
    (push,) = pushgateway.requests
    assert push.method in ("POST", "PUT")
    assert push.path == f"/metrics/job/homeops_backup/service/{service}"
    metrics = pushgateway.metrics()
    # Rows, keys or files counted, where the engine tells.
    assert set(metrics) - {"backup_last_items"} == METRIC_NAMES
    return metrics


def check_metrics(metrics: dict[str, float], folder: Path, started: float, ended: float) -> None:
    assert int(started) <= metrics["backup_last_success_timestamp"] <= ended + 1
    assert metrics["backup_last_run_success"] == 1
    assert 0 <= metrics["backup_last_duration_seconds"] <= ended - started + 1
    assert metrics["backup_last_size_bytes"] > 0
    assert metrics["backup_last_size_bytes"] == apparent_bytes(folder)


def files_of(folder: Path) -> dict[str, bytes | None]:
    """Every entry below ``folder``: file bytes, or None for a folder."""
    return {
        p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def old_backup(backup_dir: Path, name: str, payload: bytes = b"older backup\n") -> Path:
    folder = backup_dir / name
    folder.mkdir(parents=True)
    (folder / "data").write_bytes(payload)
    return folder


def london_epoch(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=LONDON).timestamp())


def first_weekday(year: int, month: int, weekday: int) -> int:
    """Day of the month of the first ``weekday`` (Monday 0 ... Sunday 6)."""
    return next(d for d in range(1, 8) if dt.date(year, month, d).weekday() == weekday)


def utc_stamp(epoch: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


class StrictPushgateway(FakePushgateway):
    """A FakePushgateway that parses pushes like the real one (Prometheus' expfmt text
    parser): a body whose last line does not end with a line feed is answered 400
    ``text format parsing error in line N: unexpected end of input stream``."""

    def _respond(self, request: RecordedRequest) -> tuple[int, str, bytes]:
        body = request.body_bytes
        if request.method in ("POST", "PUT") and body and not body.endswith(b"\n"):
            line = body.count(b"\n") + 1
            message = f"text format parsing error in line {line}: unexpected end of input stream\n"
            return 400, "text/plain; charset=utf-8", message.encode()
        return super()._respond(request)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

SHOP_SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));
INSERT INTO items VALUES (1, 'widget', 9.99),
                         (2, 'O''Brien''s "gadget"; DROP TABLE items; --', 0.5),
                         (3, 'ünïcödé ✓ 日本語, tab	inside', NULL);
"""
LEDGER_SQL = """
CREATE TABLE entries (id serial PRIMARY KEY, memo text, amount bigint, tags text[], raw bytea);
INSERT INTO entries (memo, amount, tags, raw) VALUES
  ('it''s €5', 500, ARRAY['a''b', 'ç'], '\\x00ff10'::bytea),
  (E'line one\\nline two', -7, '{}', NULL),
  ('Ελληνικά 🙂', 9223372036854775807, ARRAY['x'], '\\x'::bytea);
"""
PG_QUERIES = {
    "shop": "SELECT * FROM items ORDER BY id",
    "ledger": "SELECT * FROM entries ORDER BY id",
}


def seed_postgres(server: PostgresServer) -> dict[str, str]:
    """Two databases with rows; returns each database's rows as psql prints them."""
    for db, sql in (("shop", SHOP_SQL), ("ledger", LEDGER_SQL)):
        server.psql(f"CREATE DATABASE {db}")
        server.psql(sql, db=db)
    rows = {db: server.psql(query, db=db) for db, query in PG_QUERIES.items()}
    assert rows["shop"].count("\n") == 3 and "O'Brien's" in rows["shop"]
    assert "日本語" in rows["shop"] and "🙂" in rows["ledger"]
    return rows


def postgres_overrides(server: PostgresServer) -> dict[str, str]:
    env = server.env()
    del env["PGDATABASE"]  # the job does not set it
    return {**env, "PG_DATABASES": "shop ledger"}


def test_postgresql_backup_restores_every_row(
    postgres: PostgresServer,
    postgres_restore: PostgresServer,
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    pg_restore = require_tool("pg_restore")
    job = load_job(STACKS / "postgresql")
    assert job.shell == "/bin/bash"
    rows = seed_postgres(postgres)
    backup_dir = tmp_path / "backup"

    started = time.time()
    result = run_job(job, {**common_env(backup_dir, pushgateway), **postgres_overrides(postgres)})
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "postgresql")
    no_leftovers(backup_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["all.sql.gz", "ledger.dump", "shop.dump"]
    check_metrics(the_push(pushgateway, "postgresql"), folder, started, ended)

    # The whole cluster, from the pg_dumpall.
    dump = tmp_path / "all.sql"
    dump.write_bytes(gzip.decompress((folder / "all.sql.gz").read_bytes()))
    postgres_restore.psql(file=dump, on_error_stop=False)
    for db, query in PG_QUERIES.items():
        assert postgres_restore.psql(query, db=db) == rows[db]

    # One database, from its custom-format dump, into a database of another name.
    postgres_restore.psql("CREATE DATABASE ledger_copy")
    ledger = str(folder / "ledger.dump")
    restored = subprocess.run(
        [pg_restore, "--no-owner", "--exit-on-error", "--dbname=ledger_copy", ledger],
        env=client_env(postgres_restore.env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr
    assert postgres_restore.psql(PG_QUERIES["ledger"], db="ledger_copy") == rows["ledger"]


def test_postgresql_unreachable_server_fails_and_keeps_older_backups(
    pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    require_tool("pg_dumpall")
    job = load_job(STACKS / "postgresql")
    backup_dir = tmp_path / "backup"
    env = common_env(backup_dir, pushgateway)
    older = old_backup(backup_dir, "postgresql-20240101T000000Z", b"\x1f\x8b precious bytes")
    before = files_of(backup_dir)

    closed = free_port()
    result = run_job(
        job,
        {
            **env,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(closed),
            "PGUSER": "postgres",
            "PGPASSWORD": "irrelevant",
            "PG_DATABASES": "shop",
            "PGCONNECT_TIMEOUT": "5",
        },
    )

    failed(result)
    assert f'connection to server at "127.0.0.1", port {closed} failed' in result.stderr
    pushgateway.failure_report("postgresql")
    # The failure push arrived, and the script (bash, in its EXIT trap) knows it did.
    assert "could not push the failure" not in result.stderr
    assert backups(backup_dir, "postgresql") == [older.name]
    assert files_of(backup_dir) == before  # no .partial, the older backup byte for byte


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------

MARIADB_SQL = """
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(128) NOT NULL, price DECIMAL(8,2),
                    raw VARBINARY(16));
INSERT INTO items VALUES (1, 'widget', 9.99, NULL),
                         (2, 'O''Brien''s "gadget" \\\\ backslash', 0.5, X'00FF10'),
                         (3, 'ünïcödé ✓ 日本語', NULL, X'');
"""
MARIADB_QUERY = "SELECT id, name, price, HEX(raw) FROM items ORDER BY id"


def mysql_overrides(server: MariaDBServer, password: str | None = None) -> dict[str, str]:
    return {
        "MYSQL_HOST": server.host,
        "MYSQL_PORT": str(server.port),
        "MYSQL_USER": server.user,
        "MYSQL_PWD": server.password if password is None else password,
    }


def test_mysql_backup_restores_every_row(
    mariadb: MariaDBServer,
    mariadb_restore: MariaDBServer,
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    client = require_tool("mariadb")
    require_tool("mariadb-dump")
    job = load_job(STACKS / "mysql")
    mariadb.sql("CREATE DATABASE shop CHARACTER SET utf8mb4")
    mariadb.sql(MARIADB_SQL, db="shop")
    rows = mariadb.sql(MARIADB_QUERY, db="shop")
    assert rows.count("\n") == 3 and "O'Brien's" in rows and "日本語" in rows
    backup_dir = tmp_path / "backup"

    started = time.time()
    result = run_job(job, {**common_env(backup_dir, pushgateway), **mysql_overrides(mariadb)})
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "mysql")
    no_leftovers(backup_dir)
    assert [p.name for p in folder.iterdir()] == ["all.sql.gz"]
    check_metrics(the_push(pushgateway, "mysql"), folder, started, ended)

    dump = gzip.decompress((folder / "all.sql.gz").read_bytes())
    assert dump.rstrip().splitlines()[-1].startswith(b"-- Dump completed")
    restored = subprocess.run(
        [client, *mariadb_restore.client_args()],
        input=dump,
        env=client_env({"MYSQL_PWD": mariadb_restore.password}),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr.decode(errors="replace")
    assert mariadb_restore.sql(MARIADB_QUERY, db="shop") == rows


def test_mysql_wrong_password_fails_and_reports_it(
    mariadb: MariaDBServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    require_tool("mariadb-dump")
    job = load_job(STACKS / "mysql")
    backup_dir = tmp_path / "backup"
    older = old_backup(backup_dir, "mysql-20240101T000000Z")
    before = files_of(backup_dir)

    result = run_job(
        job, {**common_env(backup_dir, pushgateway), **mysql_overrides(mariadb, "wrong")}
    )

    failed(result)
    assert "Access denied" in result.stderr
    pushgateway.failure_report("mysql")
    assert backups(backup_dir, "mysql") == [older.name]
    assert files_of(backup_dir) == before


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------

REDIS_STRINGS = {
    "greeting": "hello world",
    "key with spaces": "value with 'quotes' and \"doubles\"",
    "binary": "\x01\x02\x7f bin\tary \u00ff\u2603 \x1b[0m",
    "unicode:ключ": "значение ✓",
}


def test_redis_backup_reloads_every_key(
    redis: RedisServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job = load_job(STACKS / "redis")
    assert job.shell == "/bin/sh"
    # A stale dump is already on disk, and the next background save is slow (0.1 s per
    # key): a job that copied dump.rdb without waiting for its own BGSAVE would back up
    # the stale one (without most of the keys below).
    redis.cli("SET", "stale", "from the previous save")
    assert redis.cli("SAVE") == "OK"
    stale = redis.rdb_path.read_bytes()
    for key, value in REDIS_STRINGS.items():
        assert redis.cli("SET", key, value) == "OK"
    redis.cli("RPUSH", "queue", "first", "second", "third")
    redis.cli("HSET", "user:1", "name", "Zoë", "age", "42")
    assert redis.cli("CONFIG", "SET", "rdb-key-save-delay", "100000") == "OK"
    backup_dir = tmp_path / "backup"

    started = time.time()
    result = run_job(
        job,
        {
            **common_env(backup_dir, pushgateway),
            "REDIS_HOST": redis.host,
            "REDIS_PORT": str(redis.port),
            "REDIS_DATA_DIR": str(redis.data_dir),
        },
    )
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "redis")
    no_leftovers(backup_dir)
    assert [p.name for p in folder.iterdir()] == ["dump.rdb"]
    rdb = folder / "dump.rdb"
    assert rdb.read_bytes().startswith(b"REDIS")
    assert rdb.read_bytes() == redis.rdb_path.read_bytes() != stale
    check_metrics(the_push(pushgateway, "redis"), folder, started, ended)

    redis.stop()
    with RedisServer(tmp_path / "reloaded", rdb=rdb) as reloaded:
        for key, value in REDIS_STRINGS.items():
            assert reloaded.cli("GET", key) == value, key
        assert reloaded.cli("LRANGE", "queue", "0", "-1") == "first\nsecond\nthird"
        assert reloaded.cli("HGET", "user:1", "name") == "Zoë"
        assert reloaded.cli("GET", "stale") == "from the previous save"
        assert reloaded.cli("DBSIZE") == str(len(REDIS_STRINGS) + 3)


def test_redis_unreachable_server_fails_and_reports_it(
    pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    require_tool("redis-cli")
    job = load_job(STACKS / "redis")
    backup_dir = tmp_path / "backup"
    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(b"REDIS0011 stale dump from another day")

    result = run_job(
        job,
        {
            **common_env(backup_dir, pushgateway),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(free_port()),
            "REDIS_DATA_DIR": str(data_dir),
        },
        timeout=60,
    )

    failed(result)
    pushgateway.failure_report("redis")
    assert list(backup_dir.iterdir()) == []  # no backup of the stale dump, no .partial


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


@pytest.fixture
def prometheus(
    prometheus_admin: FakePrometheusAdmin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakePrometheusAdmin, Path]]:
    """``prometheus_admin`` answering compact JSON, as Prometheus itself does (Go's encoder:
    ``{"status":"success","data":{"name":"..."}}``), plus a folder where a copy of every
    snapshot it made is kept (the job deletes the original)."""
    seen = tmp_path / "snapshots-seen"
    seen.mkdir()
    respond = prometheus_admin._respond

    def compact(request: RecordedRequest) -> tuple[int, str, bytes]:
        status, content_type, body = respond(request)
        if status == 200:
            name = prometheus_admin.snapshots[-1]
            shutil.copytree(prometheus_admin.snapshot_dir(name), seen / name)
        return status, content_type, json.dumps(json.loads(body), separators=(",", ":")).encode()

    monkeypatch.setattr(prometheus_admin, "_respond", compact)
    yield prometheus_admin, seen


def prometheus_env(
    admin: FakePrometheusAdmin, backup_dir: Path, pushgateway: FakePushgateway
) -> dict[str, str]:
    return {
        **common_env(backup_dir, pushgateway),
        "PROMETHEUS_URL": admin.url,
        "PROMETHEUS_DATA_DIR": str(admin.data_dir),
    }


def check_snapshot_archive(folder: Path, admin: FakePrometheusAdmin, seen: Path) -> None:
    (name,) = admin.snapshots
    assert [p.name for p in folder.iterdir()] == ["tsdb.tar.gz"]
    with tarfile.open(folder / "tsdb.tar.gz", "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {
            name,
            f"{name}/chunks",
            f"{name}/chunks/000001",
            f"{name}/meta.json",
        }
        for path, content in files_of(seen / name).items():
            member = members[f"{name}/{path}"]
            if content is None:
                assert member.isdir()
            else:
                extracted = tar.extractfile(member)
                assert extracted is not None and extracted.read() == content
    # The snapshot (hard links into the TSDB in real life) is removed once archived.
    assert not admin.snapshot_dir(name).exists()
    assert list((admin.data_dir / "snapshots").iterdir()) == []


# 2025-06-01 is the first Sunday of June; 00:30 BST is still Saturday 23:30 in UTC, so the
# second case only runs when the guard asks for the weekday in the CronJob's time zone.
FIRST_SUNDAYS = {
    "02:00": london_epoch(2025, 6, first_weekday(2025, 6, 6), 2),
    "00:30-bst": london_epoch(2025, 6, first_weekday(2025, 6, 6), 0, 30),
}


@pytest.mark.parametrize("when", sorted(FIRST_SUNDAYS))
def test_prometheus_first_sunday_archives_the_snapshot(
    when: str,
    prometheus: tuple[FakePrometheusAdmin, Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    admin, seen = prometheus
    epoch = FIRST_SUNDAYS[when]
    local = dt.datetime.fromtimestamp(epoch, LONDON)
    assert local.weekday() == 6 and local.day <= 7
    job = load_job(STACKS / "prometheus")
    # The container gets London's POSIX rule: Alpine images have no zoneinfo for the name.
    assert job.env["TZ"] == "GMT0BST,M3.5.0/1,M10.5.0"
    backup_dir = tmp_path / "backup"

    result = run_job(
        job,
        prometheus_env(admin, backup_dir, pushgateway),
        path=[fake_clock(tmp_path / "clock", epoch)],
    )

    succeeded(result)
    assert [(r.method, r.path) for r in admin.requests] == [("POST", admin.SNAPSHOT_PATH)]
    folder = the_backup(backup_dir, "prometheus")
    assert folder.name == f"prometheus-{utc_stamp(epoch)}"
    no_leftovers(backup_dir)
    check_snapshot_archive(folder, admin, seen)
    metrics = the_push(pushgateway, "prometheus")
    assert metrics["backup_last_success_timestamp"] == epoch  # the (fake) clock's instant
    assert metrics["backup_last_duration_seconds"] == 0
    assert metrics["backup_last_size_bytes"] == apparent_bytes(folder) > 0


# Days 1-7 that are not the first Sunday: the CronJob runs on each of them (cron cannot say
# "first Sunday"), and the guard must turn all but the Sunday into a no-op. 2025-06-01 23:30
# UTC is already Monday 00:30 in London.
NOT_FIRST_SUNDAYS = {
    "monday-02:00": london_epoch(2025, 9, first_weekday(2025, 9, 0), 2),
    "monday-00:30-bst": london_epoch(2025, 6, 2, 0, 30),
    "saturday-02:00": london_epoch(2025, 6, 7, 2),
}


@pytest.mark.parametrize("when", sorted(NOT_FIRST_SUNDAYS))
def test_prometheus_guard_skips_other_days(
    when: str,
    prometheus: tuple[FakePrometheusAdmin, Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    admin, _ = prometheus
    epoch = NOT_FIRST_SUNDAYS[when]
    local = dt.datetime.fromtimestamp(epoch, LONDON)
    assert local.weekday() != 6 and local.day <= 7
    job = load_job(STACKS / "prometheus")
    backup_dir = tmp_path / "backup"

    result = run_job(
        job,
        prometheus_env(admin, backup_dir, pushgateway),
        path=[fake_clock(tmp_path / "clock", epoch)],
    )

    succeeded(result)
    assert "not the first Sunday of the month; nothing to do" in result.stderr
    assert admin.requests == []
    assert pushgateway.requests == []
    assert list(backup_dir.iterdir()) == []


def test_prometheus_without_time_zone_data_fails_closed(
    prometheus: tuple[FakePrometheusAdmin, Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    """Without zoneinfo, ``date +%w`` would silently answer in UTC: the job must refuse."""
    admin, _ = prometheus
    job = load_job(STACKS / "prometheus")
    backup_dir = tmp_path / "backup"
    env = {**prometheus_env(admin, backup_dir, pushgateway), "TZ": "Nowhere/Atlantis"}

    result = run_job(job, env, path=[fake_clock(tmp_path / "clock", FIRST_SUNDAYS["02:00"])])

    failed(result)
    assert "no time zone data for Nowhere/Atlantis" in result.stderr
    assert admin.requests == []
    pushgateway.failure_report("prometheus")
    assert list(backup_dir.iterdir()) == []


def test_prometheus_admin_api_error_fails_and_reports_it(
    prometheus: tuple[FakePrometheusAdmin, Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    require_tool("curl")  # the status in the message is curl's (wget words it otherwise)
    admin, _ = prometheus
    admin.admin_enabled = False
    job = load_job(STACKS / "prometheus")
    backup_dir = tmp_path / "backup"
    older = old_backup(backup_dir, "prometheus-20240101T000000Z")
    before = files_of(backup_dir)

    result = run_job(
        job,
        prometheus_env(admin, backup_dir, pushgateway),
        path=[fake_clock(tmp_path / "clock", FIRST_SUNDAYS["02:00"])],
    )

    failed(result)
    assert "503" in result.stderr
    assert len(admin.requests) == 1 and admin.snapshots == []
    pushgateway.failure_report("prometheus")
    assert backups(backup_dir, "prometheus") == [older.name]
    assert files_of(backup_dir) == before


def test_prometheus_retention_keeps_two_copies(
    prometheus: tuple[FakePrometheusAdmin, Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
) -> None:
    admin, _ = prometheus
    job = load_job(STACKS / "prometheus")
    assert job.env["RETENTION_COPIES"] == "2" and "RETENTION_MINUTES" not in job.env
    backup_dir = tmp_path / "backup"
    for month in ("01", "02", "03"):
        old_backup(backup_dir, f"prometheus-2024{month}01T000000Z", f"{month}\n".encode())
    # Not backups of this service, or not finished ones: retention must not touch them.
    bystanders = [
        old_backup(backup_dir, "prometheus-20231201T000000Z.copy"),
        old_backup(backup_dir, "prometheus-notes"),
        old_backup(backup_dir, "prometheus-old-20231101T000000Z"),
    ]
    epoch = FIRST_SUNDAYS["02:00"]

    result = run_job(
        job,
        prometheus_env(admin, backup_dir, pushgateway),
        path=[fake_clock(tmp_path / "clock", epoch)],
    )

    succeeded(result)
    new = f"prometheus-{utc_stamp(epoch)}"
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(
        ["prometheus-20240301T000000Z", new, *(b.name for b in bystanders)]
    )
    assert (backup_dir / "prometheus-20240301T000000Z" / "data").read_bytes() == b"03\n"
    assert "removing prometheus-20240201T000000Z (retention)" in result.stderr
    assert "removing prometheus-20240101T000000Z (retention)" in result.stderr
    assert len(pushgateway.pushes) == 1


def test_prometheus_accepts_any_valid_json_answer(
    prometheus_admin: FakePrometheusAdmin, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job = load_job(STACKS / "prometheus")
    backup_dir = tmp_path / "backup"

    result = run_job(
        job,
        prometheus_env(prometheus_admin, backup_dir, pushgateway),
        path=[fake_clock(tmp_path / "clock", FIRST_SUNDAYS["02:00"])],
    )

    succeeded(result)
    assert the_backup(backup_dir, "prometheus").joinpath("tsdb.tar.gz").is_file()
    assert list((prometheus_admin.data_dir / "snapshots").iterdir()) == []


# --------------------------------------------------------------------------------------------
# Vault (stubbed vault CLI)
# --------------------------------------------------------------------------------------------

VAULT_TOKEN = "hvs.test-token-'quoted' $HOME"


def vault_env(backup_dir: Path, pushgateway: FakePushgateway) -> dict[str, str]:
    return {**common_env(backup_dir, pushgateway), "VAULT_TOKEN": VAULT_TOKEN}


def test_vault_raft_snapshot(
    stubs: StubRecorder, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job = load_job(STACKS / "vault")
    assert job.shell == "/bin/sh"
    stubs.stub(
        "vault",
        output_after="save",
        output_content="raft\x00snapshot-bytes",
        record_env=("VAULT_ADDR", "VAULT_TOKEN"),
    )
    backup_dir = tmp_path / "backup"

    started = time.time()
    result = run_job(job, vault_env(backup_dir, pushgateway), path=[stubs.bin_dir])
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "vault")
    no_leftovers(backup_dir)
    assert [p.name for p in folder.iterdir()] == ["raft.snap"]
    assert (folder / "raft.snap").read_bytes() == b"raft\x00snapshot-bytes"
    check_metrics(the_push(pushgateway, "vault"), folder, started, ended)

    work = str(backup_dir / f".{folder.name}.partial" / "raft.snap")
    assert stubs.argv("vault") == [
        ["operator", "raft", "snapshot", "save", work],
        ["operator", "raft", "snapshot", "inspect", work],
    ]
    expected_env = {"VAULT_ADDR": str(job.env["VAULT_ADDR"]), "VAULT_TOKEN": VAULT_TOKEN}
    assert [call.env for call in stubs.calls("vault")] == [expected_env, expected_env]
    assert VAULT_TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("case", ["empty-snapshot", "inspect-fails"])
def test_vault_bad_snapshot_fails_and_reports_it(
    case: str, stubs: StubRecorder, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job = load_job(STACKS / "vault")
    if case == "empty-snapshot":
        stubs.stub("vault", output_after="save", output_content="")
    else:
        stubs.stub(
            "vault",
            'if [ "$4" = inspect ]; then echo "Error: invalid snapshot" >&2; exit 2; fi',
            output_after="save",
            output_content="corrupt",
        )
    backup_dir = tmp_path / "backup"
    older = old_backup(backup_dir, "vault-20240101T000000Z")
    before = files_of(backup_dir)

    result = run_job(job, vault_env(backup_dir, pushgateway), path=[stubs.bin_dir])

    failed(result)
    verbs = [argv[3] for argv in stubs.argv("vault")]
    if case == "empty-snapshot":
        assert "the snapshot is empty" in result.stderr
        assert verbs == ["save"]
    else:
        assert "invalid snapshot" in result.stderr
        assert verbs == ["save", "inspect"]
    pushgateway.failure_report("vault")
    assert files_of(backup_dir) == before
    assert backups(backup_dir, "vault") == [older.name]


# --------------------------------------------------------------------------------------------
# Pushing the metrics
# --------------------------------------------------------------------------------------------


def test_push_without_curl_or_wget_goes_through_dev_tcp(
    postgres: PostgresServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job = load_job(STACKS / "postgresql")
    assert job.shell == "/bin/bash"
    bare = without_programs(tmp_path / "bin", "curl", "wget")
    assert not (bare / "curl").exists() and not (bare / "wget").exists()
    for tool in ("pg_dumpall", "pg_dump", "pg_restore", "gzip", "du", "date"):
        assert (bare / tool).exists(), tool
    postgres.psql("CREATE DATABASE shop")
    postgres.psql(SHOP_SQL, db="shop")
    backup_dir = tmp_path / "backup"
    overrides = {
        **common_env(backup_dir, pushgateway),
        **postgres_overrides(postgres),
        "PG_DATABASES": "shop",
        "PATH": str(bare),
    }

    started = time.time()
    result = run_job(job, overrides)
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "postgresql")
    assert sorted(p.name for p in folder.iterdir()) == ["all.sql.gz", "shop.dump"]
    check_metrics(the_push(pushgateway, "postgresql"), folder, started, ended)
    (push,) = pushgateway.requests
    # Written by the script itself: curl and wget would have sent a User-Agent.
    assert push.method == "POST" and "User-Agent" not in push.headers
    assert push.headers["Content-Type"] == "text/plain"
    assert int(push.headers["Content-Length"]) == len(push.body_bytes)


def test_push_answered_500_fails_the_job(
    postgres: PostgresServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    require_tool("curl")
    job = load_job(STACKS / "postgresql")
    pushgateway.status = 500
    backup_dir = tmp_path / "backup"
    overrides = {
        **common_env(backup_dir, pushgateway),
        **postgres_overrides(postgres),
        "PG_DATABASES": "",
    }

    result = run_job(job, overrides)

    failed(result)
    assert "500" in result.stderr
    assert "complete" not in result.stderr  # the success line comes after the push
    # The success push was refused; the run then tried to report its failure (refused too).
    assert len(pushgateway.requests) == 2
    assert pushgateway.metrics(0)["backup_last_run_success"] == 1
    assert pushgateway.metrics(1)["backup_last_run_success"] == 0
    assert "could not push the failure" in result.stderr
    # The backup itself was complete and verified before the push, so it is kept.
    folder = the_backup(backup_dir, "postgresql")
    assert [p.name for p in folder.iterdir()] == ["all.sql.gz"]
    no_leftovers(backup_dir)


@pytest.mark.parametrize(
    "transport",
    [
        "curl",
        "wget",
        "dev-tcp",
    ],
)
def test_push_is_valid_prometheus_text(transport: str, stubs: StubRecorder, tmp_path: Path) -> None:
    """Each of http_post's transports must send what a real Pushgateway accepts."""
    require_tool(transport if transport != "dev-tcp" else "bash")
    removed = {"curl": (), "wget": ("curl",), "dev-tcp": ("curl", "wget")}[transport]
    # The etcd script (it only keeps a snapshot), under bash so every transport is there.
    etcd = load_job(STACKS / "etcd")
    job = dataclasses.replace(etcd, command=("/bin/bash", *etcd.command[1:]))
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"etcd-snapshot\x00bytes")
    backup_dir = tmp_path / "backup"
    with StrictPushgateway() as strict:
        overrides = {
            **common_env(backup_dir, strict),
            "ETCD_SNAPSHOT": str(snapshot),
            "PATH": str(without_programs(tmp_path / "bin", *removed)),
        }
        result = run_job(job, overrides, path=[stubs.bin_dir])

        (push,) = strict.requests
        assert push.body_bytes.endswith(b"\n"), push.body_bytes[-40:]
        succeeded(result)
        assert set(strict.metrics()) == METRIC_NAMES


# --------------------------------------------------------------------------------------------
# Files (not in the reference catalog: generated from an inline one)
# --------------------------------------------------------------------------------------------


def generate_files_stack(tmp_path: Path, paths: list[str]) -> Job:
    catalog = tmp_path / "services.yaml"
    service = {
        "name": "docs",
        "namespace": "docs",
        "storage": "nfs",
        "churn": "low",
        "engine": "files",
        "methods": ["dump"],
        "files": {"claim": "docs-data", "mount_path": "/data", "paths": paths},
    }
    catalog.write_text(
        MINIMAL_HEAD + textwrap.indent("- " + json.dumps(service) + "\n", "  "), encoding="utf-8"
    )
    out = tmp_path / "generated"
    assert homeops_gen_main(["--catalog", str(catalog), "--out", str(out), "-q"]) == 0
    return load_job(out / "terraform" / "stacks" / "docs")


def data_tree(root: Path, extra: str | None = None) -> None:
    (root / "a" / "sub").mkdir(parents=True)
    (root / "a" / "empty").mkdir()
    (root / "a" / "one.txt").write_text("one\n", encoding="utf-8")
    (root / "a" / "sub" / "two.bin").write_bytes(bytes(range(256)) * 3)
    (root / "b").mkdir()
    (root / "b" / "ünï côdé 'q'.txt").write_text("three ✓\n", encoding="utf-8")
    (root / "c").mkdir()
    (root / "c" / "not-archived.txt").write_text("no\n", encoding="utf-8")
    (root / "top-level.txt").write_text("not archived either\n", encoding="utf-8")
    if extra:
        (root / extra).mkdir()
        (root / extra / "kept.txt").write_text("also archived\n", encoding="utf-8")


@pytest.mark.parametrize(
    "extra",
    [
        None,
        "-x",
    ],
    ids=["a-and-b", "dash-path"],
)
def test_files_archives_only_the_listed_paths(
    extra: str | None, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    paths = ["/data/a", "/data/b", *([f"/data/{extra}"] if extra else [])]
    job = generate_files_stack(tmp_path, paths)
    assert job.shell == "/bin/sh"
    assert job.env["FILES_ROOT"] == "/data"
    assert job.env["FILES_PATHS"] == " ".join("./" + p.removeprefix("/data/") for p in paths)
    root = tmp_path / "data"
    data_tree(root, extra)
    backup_dir = tmp_path / "backup"

    started = time.time()
    result = run_job(job, {**common_env(backup_dir, pushgateway), "FILES_ROOT": str(root)})
    ended = time.time()

    succeeded(result)
    folder = the_backup(backup_dir, "docs")
    no_leftovers(backup_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "files.tar.gz"]
    metrics = the_push(pushgateway, "docs")
    check_metrics(metrics, folder, started, ended)
    manifest = (folder / "SHA256SUMS").read_text().splitlines()
    assert metrics["backup_last_items"] == len(manifest) > 0

    extracted = tmp_path / "extracted"
    with tarfile.open(folder / "files.tar.gz", "r:gz") as tar:
        tar.extractall(extracted, filter="data")
    expected = {
        path: content
        for path, content in files_of(root).items()
        if path.split("/")[0] in {"a", "b", *([extra] if extra else [])}
    }
    assert files_of(extracted) == expected
    assert "c/not-archived.txt" not in files_of(extracted)
