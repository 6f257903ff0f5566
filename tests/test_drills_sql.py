"""The PostgreSQL and MariaDB restore drills, run for real against backups the generated
backup scripts took of live loopback servers.

For each engine a module-scoped world renders an inline catalog, seeds a live server and
takes two real backups with the generated backup script: a good one, and one taken before a
declared database existed (the wrong database). Each test then puts one backup (as taken,
or truncated, corrupted, emptied) in a backup folder of its own and runs the generated
drill script under the image's shell, as an unprivileged account (initdb and mariadbd
refuse root; the pod runs as the image's server user), with a scratch folder and a
FakePushgateway. A good backup passes and pushes the drill's metrics to the group the
generated alerts read; every broken one fails with a message naming the problem, pushes
restore_drill_last_run_success 0 without a success timestamp, and leaves no scratch server
running, no scratch folder, and the live server as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("engines")

from conftest import MINIMAL_HEAD  # noqa: E402
from engines import (  # noqa: E402
    FakePushgateway,
    MariaDBServer,
    PostgresServer,
    _unprivileged_account,
    parse_samples,
    postgres_bindir,
    require_mariadb,
    require_postgres,
    require_tool,
)
from jobs import Job, job_env, load_job, run_job  # noqa: E402

from homeops_gen import build_plan, load_catalog_text, registered_generators, render_plan  # noqa: E402
from homeops_gen.generators.alerts import drill_alerts  # noqa: E402
from homeops_gen.metrics import metrics_read  # noqa: E402

pytest_plugins = ["engines"]

SUCCESS_METRICS = {
    "restore_drill_last_success_timestamp",
    "restore_drill_last_run_success",
    "restore_drill_duration_seconds",
    "restore_drill_backup_size_bytes",
    "restore_drill_restored_items",
}
FAILURE_METRICS = {"restore_drill_last_run_success", "restore_drill_last_failure_timestamp"}
#: The databases every catalog here declares; the wrong backup lacks the second.
DATABASES = ("shop", "ledger")

PG_SEED = {
    "shop": "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"
    " INSERT INTO items VALUES (1, 'widget'), (2, 'O''Brien''s \"gadget\"'), (3, 'ünï ✓');",
    "ledger": "CREATE TABLE entries (id serial PRIMARY KEY, amount bigint);"
    " INSERT INTO entries (amount) VALUES (40), (2);",
}
MARIADB_SEED = {
    "shop": "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL);"
    " INSERT INTO items VALUES (1, 'widget'), (2, 'O''Brien''s \"gadget\"'), (3, 'ünï ✓');",
    "ledger": "CREATE TABLE entries (id INT AUTO_INCREMENT PRIMARY KEY, amount BIGINT);"
    " INSERT INTO entries (amount) VALUES (40), (2);",
}
#: The checks of the passing catalog: a table check and a query check.
GOOD_CHECKS: list[dict[str, object]] = [
    {"database": "shop", "table": "items", "min_rows": 3},
    {"database": "ledger", "query": "SELECT sum(amount) = 42 FROM entries"},
]


# --------------------------------------------------------------------------------------------
# Rendering and running
# --------------------------------------------------------------------------------------------


def catalog_text(name: str, engine: str, checks: list[dict[str, object]]) -> str:
    service = {
        "name": name,
        "namespace": "db",
        "storage": "nfs",
        "churn": "low",
        "engine": engine,
        "methods": ["dump"],
        "drill": {"checks": checks},
        "rto": "1h",
        engine: {"host": "db.example.lan", "databases": list(DATABASES)},
    }
    return MINIMAL_HEAD + textwrap.indent("- " + json.dumps(service) + "\n", "  ")


def render_stack(text: str, out: Path, name: str) -> Path:
    """The service's Terraform stack, rendered by the backup-jobs generator into ``out``."""
    generators = [g for g in registered_generators() if g.name == "backup-jobs"]
    for path, data in render_plan(build_plan(load_catalog_text(text), generators)).items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out / "terraform" / "stacks" / name


def account() -> tuple[int, int]:
    """Who runs the drill: the unprivileged account the server fixtures use when we are
    root (initdb and mariadbd refuse root), else ourselves."""
    if os.geteuid() == 0:
        user = _unprivileged_account()
        return user.pw_uid, user.pw_gid
    return os.geteuid(), os.getegid()


def server_path() -> list[str]:
    """Where the server programs are (Debian keeps initdb and mariadbd off PATH)."""
    folders = ["/usr/sbin", "/usr/local/sbin"]
    bindir = postgres_bindir()
    if bindir is not None:
        folders.insert(0, str(bindir))
    return folders


def run_drill(
    job: Job, base: Path, backup_dir: Path, pushgateway: FakePushgateway
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the drill script on ``backup_dir`` as the drill's account, from ``/`` as a pod
    does; returns the result and the scratch folder (an emptyDir: mode 0777)."""
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=base))
    scratch.chmod(0o777)
    scripts = Path(tempfile.mkdtemp(prefix="scripts-", dir=base))
    scripts.chmod(0o755)
    env = job_env(
        job,
        {
            "BACKUP_DIR": str(backup_dir),
            "SCRATCH_DIR": str(scratch),
            "PUSHGATEWAY_URL": pushgateway.url,
            "HOME": str(scratch),
        },
    )
    env["PATH"] = os.pathsep.join([*server_path(), env["PATH"]])
    uid, gid = account()
    result = subprocess.run(
        job.argv(scripts),
        env=env,
        cwd="/",
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return result, scratch


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


# --------------------------------------------------------------------------------------------
# The worlds: a live server, its two real backups, the rendered stacks
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """One engine's live server, the backups its generated backup script took, and the
    drill jobs of the passing catalog and of the two failing-check catalogs."""

    service: str
    engine: str
    good: Path
    wrong: Path
    drills: dict[str, Job]
    #: What the live server holds, read again after every drill.
    live_state: Callable[[], str]
    alert_reads: list[tuple[str, dict[str, str]]]
    base: Path


@contextlib.contextmanager
def shared_base() -> Iterator[Path]:
    """A folder the drill's account can reach (pytest's tmp folders are 0700 to root)."""
    base = Path(tempfile.mkdtemp(prefix="sqldrill-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def make_stacks(
    base: Path, service: str, engine: str
) -> tuple[dict[str, Job], Path, list[tuple[str, dict[str, str]]]]:
    """The drill jobs of the passing catalog and of two with a failing check, the passing
    catalog's stack (for its backup job) and the series its drill alerts read."""
    variants: dict[str, list[dict[str, object]]] = {
        "good": GOOD_CHECKS,
        "missing-table": [{"database": "shop", "table": "no_such_table", "min_rows": 1}],
        "false-query": [{"database": "ledger", "query": "SELECT count(*) = 0 FROM entries"}],
    }
    drills = {}
    for variant, checks in variants.items():
        text = catalog_text(service, engine, checks)
        rendered = render_stack(text, base / f"out-{variant}", service)
        drills[variant] = load_job(rendered, "restore_drill")
    stack = base / "out-good" / "terraform" / "stacks" / service
    entry = load_catalog_text(catalog_text(service, engine, GOOD_CHECKS)).service(service)
    assert entry.drill is not None
    reads = [
        (read.metric, dict(read.labels))
        for alert in drill_alerts(entry, entry.drill)
        for read in metrics_read(alert.expr)
    ]
    return drills, stack, reads


def take_backup(job: Job, folder: Path, overrides: dict[str, str]) -> Path:
    """Run the generated backup script once into ``folder``; its one finished backup."""
    folder.mkdir(parents=True)
    with FakePushgateway() as pushgateway:
        env = {"BACKUP_DIR": str(folder), "PUSHGATEWAY_URL": pushgateway.url, **overrides}
        result = run_job(job, env, path=[Path(p) for p in server_path()])
    assert result.returncode == 0, result.stderr
    (backup,) = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return backup


@pytest.fixture(scope="module")
def postgresql_world() -> Iterator[World]:
    require_postgres()
    require_tool("pg_dumpall")
    require_tool("gzip")
    with shared_base() as base:
        drills, stack, reads = make_stacks(base, "pgshop", "postgresql")
        with PostgresServer(base / "live") as live:
            env = live.env()
            del env["PGDATABASE"]
            backup = load_job(stack)
            live.psql("CREATE DATABASE shop")
            live.psql(PG_SEED["shop"], db="shop")
            wrong = take_backup(backup, base / "wrong", {**env, "PG_DATABASES": "shop"})
            live.psql("CREATE DATABASE ledger")
            live.psql(PG_SEED["ledger"], db="ledger")
            good = take_backup(backup, base / "good", env)

            def state() -> str:
                return "\n".join(
                    [
                        live.psql("SELECT datname FROM pg_database ORDER BY 1"),
                        live.psql("SELECT * FROM items ORDER BY id", db="shop"),
                        live.psql("SELECT * FROM entries ORDER BY id", db="ledger"),
                        live.psql("SELECT rolname FROM pg_roles ORDER BY 1"),
                    ]
                )

            yield World("pgshop", "postgresql", good, wrong, drills, state, reads, base)


@pytest.fixture(scope="module")
def mysql_world() -> Iterator[World]:
    require_mariadb()
    require_tool("mariadb-dump")
    require_tool("gzip")
    with shared_base() as base:
        drills, stack, reads = make_stacks(base, "myshop", "mysql")
        with MariaDBServer(base / "live") as live:
            env = {
                "MYSQL_HOST": live.host,
                "MYSQL_PORT": str(live.port),
                "MYSQL_USER": live.user,
                "MYSQL_PWD": live.password,
            }
            backup = load_job(stack)
            live.sql("CREATE DATABASE shop CHARACTER SET utf8mb4")
            live.sql(MARIADB_SEED["shop"], db="shop")
            wrong = take_backup(backup, base / "wrong", env)
            live.sql("CREATE DATABASE ledger")
            live.sql(MARIADB_SEED["ledger"], db="ledger")
            good = take_backup(backup, base / "good", env)

            def state() -> str:
                return "\n".join(
                    [
                        live.sql("SHOW DATABASES"),
                        live.sql("SELECT * FROM items ORDER BY id", db="shop"),
                        live.sql("SELECT * FROM entries ORDER BY id", db="ledger"),
                        live.sql("SELECT User, Host FROM mysql.user ORDER BY 1, 2"),
                    ]
                )

            yield World("myshop", "mysql", good, wrong, drills, state, reads, base)


@pytest.fixture(params=["postgresql", "mysql"])
def world(request: pytest.FixtureRequest) -> World:
    found: World = request.getfixturevalue(f"{request.param}_world")
    return found


# --------------------------------------------------------------------------------------------
# Backups as the drill finds them
# --------------------------------------------------------------------------------------------


def place(world: World, source: Path, change: Callable[[Path], None] | None = None) -> Path:
    """A backup folder of its own holding a copy of ``source`` (changed by ``change``)."""
    folder = Path(tempfile.mkdtemp(prefix="backups-", dir=world.base))
    folder.chmod(0o755)
    copy = folder / source.name
    shutil.copytree(source, copy)
    if change is not None:
        change(copy)
    return folder


def truncate(backup: Path) -> None:
    dump = backup / "all.sql.gz"
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])


def corrupt(backup: Path) -> None:
    dump = backup / "all.sql.gz"
    data = bytearray(dump.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    dump.write_bytes(bytes(data))


def empty_dump(backup: Path) -> None:
    """A well-formed gzip of nothing (20 bytes: above the minimum size)."""
    (backup / "all.sql.gz").write_bytes(gzip.compress(b""))


def empty_folder(backup: Path) -> None:
    for child in backup.iterdir():
        child.unlink()


def truncate_custom_dump(backup: Path) -> None:
    dump = backup / "ledger.dump"
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) * 2 // 3])


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------


def apparent_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def the_push(world: World, pushgateway: FakePushgateway) -> tuple[str, dict[str, float]]:
    (push,) = pushgateway.pushes
    assert push.path == f"/metrics/job/homeops_drill/service/{world.service}"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples), samples
    metrics = {s.name: s.value for s in samples}
    assert len(metrics) == len(samples)
    return push.method, metrics


def cleaned_up(world: World, scratch: Path, before: str) -> None:
    """No scratch server runs, the scratch folder is gone, the live server is as it was."""
    leftovers = processes_under(scratch)
    for pid in leftovers:  # a failing test must not leave a server behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert leftovers == {}
    assert list(scratch.iterdir()) == []
    assert world.live_state() == before


def assert_failed(
    world: World,
    job: Job,
    backups: Path,
    pushgateway: FakePushgateway,
    message: str,
) -> str:
    before = world.live_state()
    result, scratch = run_drill(job, world.base, backups, pushgateway)
    assert result.returncode != 0, result.stderr
    assert f"{world.service}: FAILED: " in result.stderr
    assert message in result.stderr, result.stderr
    method, metrics = the_push(world, pushgateway)
    assert method == "POST"  # the last success stays as it was
    assert set(metrics) == FAILURE_METRICS
    assert metrics["restore_drill_last_run_success"] == 0
    assert metrics["restore_drill_last_failure_timestamp"] > 0
    cleaned_up(world, scratch, before)
    return result.stderr


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_a_good_backup_passes_and_pushes_what_the_alerts_read(
    world: World, pushgateway: FakePushgateway
) -> None:
    before = world.live_state()
    backups = place(world, world.good)
    result, scratch = run_drill(world.drills["good"], world.base, backups, pushgateway)
    assert result.returncode == 0, result.stderr
    for check in (
        "check passed: table items holds at least 3 rows in shop",
        "check passed: the query 'SELECT sum(amount) = 42 FROM entries' is true in ledger",
        "database shop is back",
        "database ledger is back",
    ):
        assert check in result.stderr, result.stderr
    _, metrics = the_push(world, pushgateway)
    assert set(metrics) == SUCCESS_METRICS
    assert metrics["restore_drill_last_run_success"] == 1
    assert metrics["restore_drill_last_success_timestamp"] > 0
    assert metrics["restore_drill_duration_seconds"] >= 0
    assert metrics["restore_drill_backup_size_bytes"] == apparent_bytes(world.good) > 0
    assert metrics["restore_drill_restored_items"] == len(DATABASES)
    cleaned_up(world, scratch, before)

    # Every drill series the generated alerts select is one the drill pushes, in the group
    # (job, service) the alerts name; the CronJob's own series come from kube-state-metrics.
    group = {"job": "homeops_drill", "service": world.service}
    reads = [(m, labels) for m, labels in world.alert_reads if m.startswith("restore_drill_")]
    assert {m for m, _ in reads} >= {
        "restore_drill_last_success_timestamp",
        "restore_drill_last_run_success",
        "restore_drill_duration_seconds",
    }
    for metric, labels in reads:
        assert metric in metrics, metric
        assert labels == group, (metric, labels)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (truncate, "all.sql.gz is not a whole gzip file (truncated or corrupt)"),
        (corrupt, "all.sql.gz is not a whole gzip file (truncated or corrupt)"),
        (empty_dump, "all.sql.gz is not a complete"),
        (empty_folder, "is 0 bytes, below the minimum of 1"),
    ],
    ids=["truncated", "corrupt", "empty-dump", "empty-folder"],
)
def test_a_broken_backup_fails_the_drill(
    world: World,
    pushgateway: FakePushgateway,
    change: Callable[[Path], None],
    message: str,
) -> None:
    backups = place(world, world.good, change)
    assert_failed(world, world.drills["good"], backups, pushgateway, message)


def test_a_backup_without_a_declared_database_fails(
    world: World, pushgateway: FakePushgateway
) -> None:
    """The backup of a server that lacks ``ledger``: the replay works, the database does
    not come back (the scratch server had started: it must be stopped)."""
    backups = place(world, world.wrong)
    stderr = assert_failed(
        world, world.drills["good"], backups, pushgateway, "database ledger is not in"
    )
    assert "database shop is back" in stderr


def test_a_check_on_a_missing_table_fails(world: World, pushgateway: FakePushgateway) -> None:
    backups = place(world, world.good)
    assert_failed(
        world,
        world.drills["missing-table"],
        backups,
        pushgateway,
        "check failed: table no_such_table holds at least 1 row in shop",
    )


def test_a_false_query_fails_with_what_it_shows(world: World, pushgateway: FakePushgateway) -> None:
    backups = place(world, world.good)
    stderr = assert_failed(
        world,
        world.drills["false-query"],
        backups,
        pushgateway,
        "check failed: the query 'SELECT count(*) = 0 FROM entries' is true in ledger",
    )
    assert "the query returned: " in stderr


def test_a_truncated_custom_format_dump_fails_the_postgresql_drill(
    postgresql_world: World, pushgateway: FakePushgateway
) -> None:
    backups = place(postgresql_world, postgresql_world.good, truncate_custom_dump)
    assert_failed(
        postgresql_world,
        postgresql_world.drills["good"],
        backups,
        pushgateway,
        "ledger.dump is",
    )
