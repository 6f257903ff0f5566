"""Throwaway servers, HTTP fakes and recording stubs for tests that run backup scripts for real.

Everything here listens on 127.0.0.1 only (on a free port found by binding port 0), keeps its
data under a caller-supplied temporary folder and is stopped, with its processes reaped, when
the ``with`` block (or the pytest fixture at the bottom) ends, even when the test failed.
Waits are bounded: a server that does not accept connections within ``START_TIMEOUT`` seconds
raises :class:`ServerError` carrying the tail of its log.

The classes do not depend on pytest; the fixtures at the end of the file wrap them and call
``require_tool`` first (skip locally when a program is missing, fail under ``CI=true``).
To use the fixtures from a test module (see test_harness.py)::

    pytest.register_assert_rewrite("engines")  # before importing it: no "already imported"
    from engines import PostgresServer  # noqa: E402
    pytest_plugins = ["engines"]

Passwords default to fixed values shared by every instance of a kind, on purpose: a
``pg_dumpall`` (or ``mariadb-dump --all-databases``) carries the source's password hashes, so a
restore target that used a different password would lock the test out after the restore.
"""

from __future__ import annotations

import atexit
import contextlib
import http.server
import ipaddress
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

LOOPBACK = "127.0.0.1"
#: Seconds a server gets to accept connections before start-up counts as failed.
START_TIMEOUT = 30.0
#: Seconds a server gets to exit after its polite shutdown signal before it is killed.
STOP_TIMEOUT = 15.0
#: Seconds any single helper command (initdb, psql, mariadb, redis-cli ...) may take.
COMMAND_TIMEOUT = 120.0
#: Unix socket paths longer than this are moved to a short folder under /tmp (limit is 107).
_MAX_SOCKET_PATH = 100

POSTGRES_PASSWORD = "pg-test-secret"
MARIADB_USER = "backup"
MARIADB_PASSWORD = "mariadb-test-secret"

# Variables from the caller's environment that would redirect our client commands elsewhere.
_CLIENT_ENV_PREFIXES = ("PG", "MYSQL", "MARIADB", "REDISCLI_")


class ServerError(RuntimeError):
    """A server could not be started, did not answer in time, or a helper command failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def listening_addresses(port: int) -> set[str]:
    """IP addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].split(":")
                if fields[3] != "0A" or int(port_hex, 16) != port or len(address) != width:
                    continue
                # The kernel prints each 32-bit word of the address as a host-order integer.
                step = -1 if sys.byteorder == "little" else 1
                raw = b"".join(
                    bytes.fromhex(address[i : i + 8])[::step] for i in range(0, width, 8)
                )
                found.add(str(ipaddress.ip_address(raw)))
    return found


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (or a note that there is none)."""
    if path is None or not path.exists():
        return "(no log file)"
    text = path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without PG*/MYSQL*/... variables that could redirect a client, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env.update(extra or {})
    return env


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    what: str,
    log: Path | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run a helper command with a timeout; raise ServerError with its output when it fails."""
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(
            f"{what} timed out after {COMMAND_TIMEOUT:.0f}s: {shlex.join(argv)}"
        ) from exc
    if proc.returncode != 0:
        details = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        if log is not None:
            details += f"\nserver log tail:\n{log_tail(log)}"
        raise ServerError(
            f"{what} failed with exit code {proc.returncode}: {shlex.join(argv)}\n{details}"
        )
    return proc


def _find_program(name: str, *extra_dirs: str | Path) -> str | None:
    """``shutil.which(name)``, falling back to the given folders (e.g. /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _require_program(name: str, *extra_dirs: str | Path) -> str:
    found = _find_program(name, *extra_dirs)
    if found is None:
        raise ServerError(f"{name} is not installed (looked on PATH and in {list(extra_dirs)})")
    return found


def _short_dir_if_needed(preferred: Path, socket_name: str, prefix: str) -> Path | None:
    """None when ``preferred/socket_name`` fits a unix socket path, else a new short folder."""
    if len(str(preferred / socket_name)) <= _MAX_SOCKET_PATH:
        return None
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# --------------------------------------------------------------------------------------------
# Process-backed servers
# --------------------------------------------------------------------------------------------

_OPEN: set[_ServerProcess] = set()


@atexit.register
def _close_leftovers() -> None:  # safety net for interrupted runs; fixtures close servers
    for server in list(_OPEN):
        with contextlib.suppress(Exception):
            server.close()


class _EarlyExit(Exception):
    pass


class _ServerProcess:
    """Common start/wait/stop logic: one foreground server process in its own session.

    ``start()`` prepares the data on first use and waits until the server answers;
    ``stop()`` only stops the process (a later ``start()`` reuses the data and, if it is
    still free, the port); ``close()`` (what ``with`` calls on exit) stops and removes
    anything kept outside ``tmp_dir``.
    """

    kind: ClassVar[str] = "server"
    #: Signal that asks the server for a clean, fast shutdown.
    stop_signal: ClassVar[int] = signal.SIGTERM

    host: str = LOOPBACK
    port: int = 0

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._cleanups: list[Callable[[], None]] = []
        self._prepared = False
        self.log_path: Path | None = None

    # -- to be provided by subclasses ----------------------------------------------------
    def _prepare(self) -> None:
        """One-time setup before the first launch (create folders, initialise data)."""

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        """argv and extra Popen keyword arguments for the server on ``self.port``."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the server answers a real request (called once the TCP port is open)."""
        return True

    def _after_ready(self) -> None:
        """Bootstrap once the server answers (create users ...)."""

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> _ServerProcess:
        if self.running:
            raise ServerError(f"{self.kind} is already running on port {self.port}")
        fresh = not self._prepared
        _OPEN.add(self)
        try:
            if fresh:
                self._prepare()
                self._prepared = True
            for attempt in range(3):
                if fresh or attempt or not self.port:
                    self.port = free_port()
                self._launch()
                try:
                    self._wait_ready()
                except _EarlyExit:
                    tail = log_tail(self.log_path)
                    self._reap()
                    if "in use" in tail.lower() and attempt < 2:
                        continue  # lost the race for the port: try another one
                    raise ServerError(
                        f"{self.kind} exited during start-up on {self.host}:{self.port}; "
                        f"log tail ({self.log_path}):\n{tail}"
                    ) from None
                break
            if fresh:
                self._after_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _launch(self) -> None:
        argv, kwargs = self._command()
        assert self.log_path is not None
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise _EarlyExit
            if port_open(self.port) and self._ready():
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.kind} did not accept connections on {self.host}:{self.port} within "
                    f"{START_TIMEOUT:.0f}s; log tail ({self.log_path}):\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (polite signal, then SIGKILL to its whole process group); idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def close(self) -> None:
        """stop(), then remove what lives outside ``tmp_dir``; idempotent."""
        self.stop()
        while self._cleanups:
            cleanup = self._cleanups.pop()
            with contextlib.suppress(Exception):
                cleanup()
        self._prepared = False
        _OPEN.discard(self)

    def _reap(self) -> None:
        proc = self._proc
        if proc is not None:
            # The server led its own session; kill whatever is left of the group, then reap.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT)
        self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Folder holding initdb and postgres: next to ``initdb`` on PATH, else the newest
    ``/usr/lib/postgresql/<major>/bin`` (Debian does not put initdb on PATH)."""
    found = shutil.which("initdb")
    if found:
        folder = Path(found).resolve().parent
        if (folder / "postgres").exists():
            return folder
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]

    def major(p: Path) -> tuple[int, str]:
        name = p.parent.name
        return (int(name), name) if name.isdigit() else (-1, name)

    return max(candidates, key=major) if candidates else None


def _unprivileged_account() -> pwd.struct_passwd:
    """The account postgres runs as when we are root: ``postgres`` if the package made one,
    else ``nobody``."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("running as root but neither a 'postgres' nor a 'nobody' account exists")


def _reachable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether ``uid`` can traverse every folder from / down to ``path`` (mode bits only)."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PostgresServer(_ServerProcess):
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>.

    Attributes: ``host``, ``port``, ``user`` (superuser, ``postgres``), ``password``,
    ``data_dir``, ``socket_dir``, ``log_path``, ``os_user`` (account the server runs as).
    As root the cluster runs as the ``postgres`` (else ``nobody``) account; when ``tmp_dir``
    is not reachable for that account (pytest's tmp folders are mode 0700) the cluster lives
    in a private folder under /tmp that ``close()`` removes after copying the server log to
    ``tmp_dir``.
    """

    kind = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown

    def __init__(
        self, tmp_dir: Path | str, *, password: str = POSTGRES_PASSWORD, user: str = "postgres"
    ) -> None:
        super().__init__()
        self.tmp_dir = Path(tmp_dir)
        self.user = user
        self.password = password
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerError("PostgreSQL server binaries (initdb, postgres) are not installed")
        self.bindir = bindir
        self.psql_path = _require_program("psql", bindir)
        self._as: dict[str, Any] = {}
        self.os_user = pwd.getpwuid(os.geteuid()).pw_name
        self.base_dir = self.data_dir = self.socket_dir = Path()

    def _prepare(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            account = _unprivileged_account()
            self.os_user = account.pw_name
            uid, gid = account.pw_uid, account.pw_gid
            self._as = {"user": uid, "group": gid, "extra_groups": []}
            private = not _reachable_by(self.tmp_dir, uid, {gid})
        else:
            uid, gid = os.geteuid(), os.getegid()
            private = False
        if not private and len(str(self.tmp_dir)) + 40 > _MAX_SOCKET_PATH:
            private = True  # the socket path would be too long
        if private:
            base = Path(tempfile.mkdtemp(prefix="pgtest-", dir="/tmp"))
            self._cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))
            self._cleanups.append(self._keep_log)
        else:
            base = Path(tempfile.mkdtemp(prefix="postgres-", dir=self.tmp_dir))
        os.chown(base, uid, gid)
        base.chmod(0o700)
        self.base_dir = self.socket_dir = base
        self.data_dir = base / "data"
        self.log_path = base / "postgres.log"
        self.log_path.touch()
        os.chown(self.log_path, uid, gid)
        pwfile = base / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        os.chown(pwfile, uid, gid)
        try:
            _run(
                [
                    str(self.bindir / "initdb"),
                    f"--pgdata={self.data_dir}",
                    f"--username={self.user}",
                    "--auth=scram-sha-256",  # local and host connections need the password
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                env=self._server_env(),
                cwd=base,
                what="initdb",
                **self._as,
            )
        finally:
            pwfile.unlink()

    def _keep_log(self) -> None:
        if self.log_path is not None and self.log_path.exists():
            shutil.copyfile(self.log_path, self.tmp_dir / f"{self.base_dir.name}.log")

    def _server_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "HOME": str(self.base_dir),
        }

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "30",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv, {"env": self._server_env(), "cwd": self.base_dir, **self._as}

    def _ready(self) -> bool:
        try:
            return self.psql("SELECT 1").strip() == "1"
        except ServerError:
            return False

    def env(self, db: str = "postgres") -> dict[str, str]:
        """libpq variables for a client (pg_dump, psql ...) to reach this server."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": db,
        }

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/postgres"

    def psql(
        self,
        sql: str | None = None,
        db: str = "postgres",
        *,
        file: Path | str | None = None,
        on_error_stop: bool = True,
    ) -> str:
        """Run SQL (or a script file) with ``psql -X -At -v ON_ERROR_STOP=1``; its stdout.

        Restoring ``pg_dumpall`` output needs ``on_error_stop=False``: it always tries
        ``CREATE ROLE postgres``, which fails on a cluster that already has that role.
        """
        if (sql is None) == (file is None):
            raise ValueError("pass exactly one of sql or file")
        argv = [self.psql_path, "-X", "-q", "-A", "-t"]
        argv += ["-v", f"ON_ERROR_STOP={1 if on_error_stop else 0}"]
        argv += ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db]
        argv += ["-f", str(file) if file is not None else "-"]
        env = client_env({"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"})
        return _run(argv, env=env, input_text=sql, what="psql").stdout


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------


class MariaDBServer(_ServerProcess):
    """A throwaway MariaDB server on 127.0.0.1:<free port>.

    Attributes: ``host``, ``port``, ``user`` (``backup``, ALL PRIVILEGES WITH GRANT OPTION,
    password-authenticated as ``backup@127.0.0.1`` and ``backup@localhost``), ``password``,
    ``data_dir``, ``socket``, ``log_path``, ``defaults_file`` (a ``[client]`` option file
    with those credentials, for ``--defaults-extra-file``). ``root@localhost`` stays
    password-less but socket-only; the install's password-less TCP root accounts are dropped.
    As root the server runs as root (``--user=root``).
    """

    kind = "mariadb"

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        user: str = MARIADB_USER,
        password: str = MARIADB_PASSWORD,
    ) -> None:
        super().__init__()
        self.tmp_dir = Path(tmp_dir)
        self.user = user
        self.password = password
        sbin = ("/usr/sbin", "/usr/local/sbin")
        self.mariadbd = _require_program("mariadbd", *sbin)
        self.install_db = _require_program("mariadb-install-db", *sbin)
        self.client = _require_program("mariadb")
        self.base_dir = self.data_dir = self.socket = self.defaults_file = Path()

    def _prepare(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="mariadb-", dir=self.tmp_dir))
        self.base_dir = base
        self.data_dir = base / "data"
        (base / "tmp").mkdir()
        short = _short_dir_if_needed(base, "mysqld.sock", "mariadb-")
        if short is not None:
            self._cleanups.append(lambda: shutil.rmtree(short, ignore_errors=True))
        self.socket = (short or base) / "mysqld.sock"
        self.log_path = base / "mariadbd.log"
        self.defaults_file = base / "client.cnf"
        argv = [
            self.install_db,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        _run(argv, env=client_env({"LC_ALL": "C"}), cwd=base, what="mariadb-install-db")

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        self.socket.parent.mkdir(exist_ok=True)  # a short socket folder is removed by close()
        self.defaults_file.write_text(
            "[client]\n"
            f"user={self.user}\npassword={self.password}\n"
            f"host={self.host}\nport={self.port}\nprotocol=TCP\n",
            encoding="utf-8",
        )
        self.defaults_file.chmod(0o600)
        argv = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            f"--bind-address={LOOPBACK}",
            "--skip-networking=0",
            f"--socket={self.socket}",
            f"--pid-file={self.base_dir / 'mariadbd.pid'}",
            f"--log-error={self.log_path}",
            f"--tmpdir={self.base_dir / 'tmp'}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-use-native-aio=0",
            "--innodb-buffer-pool-size=32M",
            "--innodb-flush-log-at-trx-commit=0",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv, {"env": client_env({"LC_ALL": "C"}), "cwd": self.base_dir}

    def _root_argv(self) -> list[str]:
        return [self.client, "--no-defaults", "-uroot", f"--socket={self.socket}", "--batch"]

    def _ready(self) -> bool:
        try:
            _run([*self._root_argv(), "-e", "SELECT 1"], env=client_env(), what="mariadb ping")
        except ServerError:
            return False
        return True

    def _after_ready(self) -> None:
        quoted_pw = self.password.replace("\\", "\\\\").replace("'", "\\'")
        statements = [
            "DELETE FROM mysql.global_priv WHERE User = ''",
            "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost'",
            "FLUSH PRIVILEGES",
        ]
        for host in (LOOPBACK, "localhost"):
            account = f"'{self.user}'@'{host}'"
            statements += [
                f"CREATE USER {account} IDENTIFIED BY '{quoted_pw}'",
                f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION",
            ]
        statements.append("FLUSH PRIVILEGES")
        self.admin_sql(";\n".join(statements) + ";\n")

    def admin_sql(self, statement: str, db: str | None = None) -> str:
        """Run SQL as ``root@localhost`` over the unix socket (bypasses the TCP account)."""
        argv = [*self._root_argv(), "--skip-column-names", *([db] if db else [])]
        return _run(argv, env=client_env(), input_text=statement, what="mariadb (root)").stdout

    def client_args(self) -> list[str]:
        """Connection options for mariadb / mariadb-dump (password via ``env()``)."""
        return [
            "--no-defaults",
            "--protocol=TCP",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.user}",
        ]

    def env(self) -> dict[str, str]:
        """Variables the MariaDB clients read: MYSQL_PWD, MYSQL_HOST, MYSQL_TCP_PORT."""
        return {
            "MYSQL_PWD": self.password,
            "MYSQL_HOST": self.host,
            "MYSQL_TCP_PORT": str(self.port),
        }

    def sql(self, statement: str, db: str | None = None) -> str:
        """Run SQL over TCP as ``user`` (``--batch --skip-column-names``); its stdout."""
        argv = [self.client, *self.client_args(), "--batch", "--skip-column-names"]
        if db:
            argv.append(db)
        env = client_env({"MYSQL_PWD": self.password})
        return _run(argv, env=env, input_text=statement, what="mariadb").stdout


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


class RedisServer(_ServerProcess):
    """A throwaway redis-server on 127.0.0.1:<free port>.

    Attributes: ``host``, ``port``, ``password`` (None unless given: ``requirepass``),
    ``data_dir`` (redis' ``--dir``: ``SAVE`` writes ``data_dir/dump.rdb``), ``rdb_path``,
    ``log_path``. ``save=""`` (the default) disables automatic snapshots; ``rdb`` names an
    existing dump copied in as ``dump.rdb`` before start, so the server loads it.
    """

    kind = "redis"

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        password: str | None = None,
        save: str = "",
        rdb: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.tmp_dir = Path(tmp_dir)
        self.password = password
        self.save = save
        self.rdb = Path(rdb) if rdb is not None else None
        self.server = _require_program("redis-server")
        self.redis_cli = _require_program("redis-cli")
        self.base_dir = self.data_dir = Path()

    @property
    def rdb_path(self) -> Path:
        return self.data_dir / "dump.rdb"

    def _prepare(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = Path(tempfile.mkdtemp(prefix="redis-", dir=self.tmp_dir))
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir()
        self.log_path = self.base_dir / "redis.log"
        if self.rdb is not None:
            shutil.copyfile(self.rdb, self.rdb_path)

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        argv = [self.server, "--port", str(self.port), "--bind", LOOPBACK]
        argv += ["--dir", str(self.data_dir), "--dbfilename", "dump.rdb", "--save", self.save]
        argv += ["--appendonly", "no", "--daemonize", "no"]
        argv += ["--logfile", ""]  # log to stdout, which goes to log_path
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv, {"cwd": self.base_dir}

    def _ready(self) -> bool:
        try:
            return self.cli("PING") == "PONG"
        except ServerError:
            return False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def cli(self, *args: str) -> str:
        """``redis-cli -e -h 127.0.0.1 -p PORT [-a PASSWORD] ARGS``; its stdout without the
        final newline. Error replies raise ServerError (``-e``)."""
        argv = [self.redis_cli, "-e", "-h", self.host, "-p", str(self.port)]
        if self.password is not None:
            argv += ["-a", self.password, "--no-auth-warning"]
        out = _run([*argv, *args], env=client_env(), what="redis-cli").stdout
        return out[:-1] if out.endswith("\n") else out


# --------------------------------------------------------------------------------------------
# etcd, and servers that answer a readiness URL (Pushgateway, Prometheus)
# --------------------------------------------------------------------------------------------


class EtcdServer(_ServerProcess):
    """One etcd member on 127.0.0.1:<free port>, its data in ``data_dir``.

    ``pki``: a folder with ``ca.crt``, ``server.crt``/``.key`` and the client pair
    ``healthcheck-client.crt``/``.key``; clients must then present that certificate (TLS
    only). ``new=False`` starts on an existing data directory (a restored one).
    """

    kind = "etcd"

    def __init__(self, data_dir: Path, pki: Path | None = None, *, new: bool = True) -> None:
        super().__init__()
        self.data_dir, self.pki, self.new = data_dir, pki, new
        self.etcd = _require_program("etcd")
        self.etcdctl = _require_program("etcdctl")

    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.host}:{self.port}"

    def _prepare(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-etcd.log"

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        peer = f"http://{self.host}:{free_port()}"
        argv = [
            self.etcd,
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
        ]
        if self.new:
            argv += [f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=default={peer}"]
        if self.pki:
            argv += [
                f"--cert-file={self.pki}/server.crt",
                f"--key-file={self.pki}/server.key",
                f"--trusted-ca-file={self.pki}/ca.crt",
                "--client-cert-auth",
            ]
        return argv, {}

    def _ready(self) -> bool:
        return self.ctl("endpoint", "health", check=False).returncode == 0

    def client_env(self) -> dict[str, str]:
        env = {"ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": self.url, "PATH": os.environ["PATH"]}
        if self.pki:
            env |= {
                "ETCDCTL_CACERT": f"{self.pki}/ca.crt",
                "ETCDCTL_CERT": f"{self.pki}/healthcheck-client.crt",
                "ETCDCTL_KEY": f"{self.pki}/healthcheck-client.key",
            }
        return env

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.etcdctl, *args],
            env=self.client_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )


class ReadyServer(_ServerProcess):
    """A program given its listen address by ``argv(port)``, ready once ``ready_path``
    answers 200 (the Pushgateway's and Prometheus' ``/-/ready``)."""

    def __init__(
        self, kind: str, argv: Callable[[int], list[str]], log_path: Path, ready_path: str
    ) -> None:
        super().__init__()
        self.kind, self._argv, self.ready_path = kind, argv, ready_path  # type: ignore[misc]
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> tuple[list[str], dict[str, Any]]:
        return self._argv(self.port), {}

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False


# --------------------------------------------------------------------------------------------
# HTTP fakes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake HTTP server received."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]
    body_bytes: bytes

    @property
    def body(self) -> str:
        return self.body_bytes.decode("utf-8", errors="replace")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so ``Expect: 100-continue`` is answered at once
    server: _HTTPServer

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k: v for k, v in self.headers.items()},
            body_bytes=self._read_body(),
        )
        fake = self.server.fake
        status, content_type, payload = fake._respond(request)
        fake._record(request)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: _FakeHTTP


class _FakeHTTP:
    """A threaded HTTP server on 127.0.0.1:<free port> recording every request."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host = LOOPBACK
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _respond(self, request: RecordedRequest) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> Any:
        server = _HTTPServer((LOOPBACK, 0), _Handler)
        server.fake = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Sample:
    """One sample line of the Prometheus text exposition format."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: int | None = None


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,?)')
_LABEL_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_samples(text: str) -> list[Sample]:
    """Every sample in a Prometheus text-format body (comments and blank lines skipped)."""
    samples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name_match = _METRIC_NAME.match(line)
        if not name_match:
            raise ValueError(f"line {number}: no metric name: {raw!r}")
        pos = name_match.end()
        labels: dict[str, str] = {}
        if line.startswith("{", pos):
            pos += 1
            while True:
                if line.startswith("}", pos):
                    pos += 1
                    break
                label = _LABEL.match(line, pos)
                if not label:
                    raise ValueError(f"line {number}: bad label set: {raw!r}")
                labels[label.group(1)] = re.sub(
                    r"\\.", lambda m: _LABEL_ESCAPES.get(m.group(0), m.group(0)), label.group(2)
                )
                pos = label.end()
                if not label.group(3) and not line.startswith("}", pos):
                    raise ValueError(f"line {number}: bad label set: {raw!r}")
        fields = line[pos:].split()
        if len(fields) not in (1, 2) or not line[pos : pos + 1].isspace():
            raise ValueError(f"line {number}: expected 'VALUE [TIMESTAMP]': {raw!r}")
        try:
            value = float(fields[0])
            timestamp = int(fields[1]) if len(fields) == 2 else None
        except ValueError:
            raise ValueError(f"line {number}: bad value or timestamp: {raw!r}") from None
        samples.append(Sample(name_match.group(0), labels, value, timestamp))
    _agrees_with_prometheus_client(text, samples)
    return samples


def _agrees_with_prometheus_client(text: str, samples: list[Sample]) -> None:
    """The same body read by prometheus-client's text-format parser, the reference reading
    of the format: it must accept the body (``# TYPE`` lines included) and find the same
    samples."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # the test extra installs it; without it only the reading above
        if os.environ.get("CI") == "true":
            raise
        return
    theirs = sorted(
        (s.name, sorted(s.labels.items()), repr(float(s.value)))  # repr: NaN equals NaN
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )
    ours = sorted((s.name, sorted(s.labels.items()), repr(s.value)) for s in samples)
    if theirs != ours:
        raise ValueError(f"prometheus-client reads {theirs}, this parser {ours}")


def parse_metrics(text: str) -> dict[str, float]:
    """``{metric_name: value}`` of a Prometheus text-format body. A name that occurs twice
    (several label sets) is ambiguous here and raises ValueError: use parse_samples."""
    result: dict[str, float] = {}
    for sample in parse_samples(text):
        if sample.name in result:
            raise ValueError(f"metric {sample.name} occurs more than once; use parse_samples()")
        result[sample.name] = sample.value
    return result


class FakePushgateway(_FakeHTTP):
    """Records pushes (``requests``: method, path, query, headers, body); answers ``status``.

    ``status`` (200 by default, 500 to test failure handling) may be changed at any time.
    """

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status

    def _respond(self, request: RecordedRequest) -> tuple[int, str, bytes]:
        if self.status >= 400:
            return self.status, "text/plain; charset=utf-8", b"fake pushgateway: failure\n"
        return self.status, "text/plain; charset=utf-8", b""

    @property
    def pushes(self) -> list[RecordedRequest]:
        """The PUT and POST requests (what ``curl --data-binary`` sends)."""
        return [r for r in self.requests if r.method in ("PUT", "POST")]

    def metrics(self, index: int = -1) -> dict[str, float]:
        """parse_metrics() of the body of ``requests[index]``."""
        return parse_metrics(self.requests[index].body)

    def failure_report(self, service: str) -> dict[str, float]:
        """The one push of a failed run: to ``service``'s group, the run's outcome 0 and its
        time, and no success timestamp (the last success stays as it was)."""
        (push,) = self.requests
        assert push.method == "POST", push
        assert push.path == f"/metrics/job/homeops_backup/service/{service}"
        metrics = parse_metrics(push.body)
        assert set(metrics) == {"backup_last_run_success", "backup_last_failure_timestamp"}
        assert metrics["backup_last_run_success"] == 0
        assert metrics["backup_last_failure_timestamp"] > 0
        return metrics


class FakePrometheusAdmin(_FakeHTTP):
    """Answers ``POST|PUT /api/v1/admin/tsdb/snapshot`` like Prometheus with the admin API on.

    Each call creates ``data_dir/snapshots/<name>/`` holding ``chunks/000001`` and
    ``meta.json`` and answers ``{"status":"success","data":{"name":"<name>"}}``; the first
    name is ``20240101T000000Z-1a2b3c4d5e6f7a8b``, later ones count up. ``admin_enabled=False``
    answers 503 ``admin APIs disabled`` like Prometheus without ``--web.enable-admin-api``.
    Other paths answer 404.
    """

    SNAPSHOT_PATH = "/api/v1/admin/tsdb/snapshot"

    def __init__(self, data_dir: Path | str, *, admin_enabled: bool = True) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.admin_enabled = admin_enabled
        self.snapshots: list[str] = []

    def _next_name(self) -> str:
        n = len(self.snapshots)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1704067200 + n))
        return f"{stamp}-{0x1A2B3C4D5E6F7A8B + n:016x}"

    def snapshot_dir(self, name: str | None = None) -> Path:
        """Folder of snapshot ``name`` (default: the latest one)."""
        return self.data_dir / "snapshots" / (name or self.snapshots[-1])

    def _respond(self, request: RecordedRequest) -> tuple[int, str, bytes]:
        def answer(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
            return status, "application/json", json.dumps(body).encode()

        if request.path != self.SNAPSHOT_PATH:
            return answer(404, {"status": "error", "errorType": "not_found", "error": "no route"})
        if request.method not in ("POST", "PUT"):
            return answer(405, {"status": "error", "errorType": "bad_data", "error": "method"})
        if not self.admin_enabled:
            return answer(
                503, {"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"}
            )
        with self._lock:
            name = self._next_name()
            folder = self.data_dir / "snapshots" / name
            (folder / "chunks").mkdir(parents=True)
            (folder / "chunks" / "000001").write_bytes(b"\x85\xbd\x40\xdd" + os.urandom(60))
            meta = {"ulid": "01HKXE5W2N0000000000000000", "version": 1, "stats": {"numSeries": 1}}
            (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            self.snapshots.append(name)
        return answer(200, {"status": "success", "data": {"name": name}})


# --------------------------------------------------------------------------------------------
# Recording stubs
# --------------------------------------------------------------------------------------------

_RECORDER = r"""
import json, os, sys

config = json.load(open(sys.argv[1], encoding="utf-8"))
args = sys.argv[2:]
call = {"name": config["name"], "argv": args, "cwd": os.getcwd(),
        "env": {k: os.environ[k] for k in config["env"] if k in os.environ}}
if config["stdin"]:
    call["stdin"] = sys.stdin.buffer.read().decode("utf-8", "replace")
with open(config["log"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\n")
target = None
if config["output_after"] is not None and config["output_after"] in args:
    at = args.index(config["output_after"]) + 1
    target = args[at] if at < len(args) else None
elif config["output_arg"] is not None and -len(args) <= config["output_arg"] < len(args):
    target = args[config["output_arg"]]
if target is not None:
    try:
        with open(target, "wb") as out:
            out.write(config["output_content"].encode("utf-8", "surrogateescape"))
    except OSError as exc:
        sys.stderr.write(f"{config['name']} (stub): cannot write {target}: {exc}\n")
        sys.exit(1)
sys.stdout.write(config["stdout"])
"""


@dataclass(frozen=True)
class StubCall:
    """One recorded invocation of a stub: argv (without the program name), cwd, selected
    environment variables, and stdin when the stub captures it."""

    name: str
    argv: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


class StubRecorder:
    """Writes stub programs into ``bin_dir`` that log each call (one JSON line) to ``log``.

    Put ``bin_dir`` first on PATH (``env()`` does that) so a script under test runs the stubs
    instead of etcdctl, vault, ... Then assert on ``calls(name)`` / ``argv(name)``.
    """

    def __init__(self, bin_dir: Path | str, log: Path | str | None = None) -> None:
        self.bin_dir = Path(bin_dir)
        self._meta = self.bin_dir / ".stubs"
        self._meta.mkdir(parents=True, exist_ok=True)
        self.log = Path(log) if log is not None else self._meta / "calls.jsonl"
        self._recorder = self._meta / "recorder.py"
        if not self._recorder.exists():
            self._recorder.write_text(_RECORDER, encoding="utf-8")

    def stub(
        self,
        name: str,
        script_body: str = "",
        *,
        output_after: str | None = None,
        output_arg: int | None = None,
        output_content: str = "stub output\n",
        stdout: str = "",
        exit_code: int = 0,
        record_env: Sequence[str] = (),
        capture_stdin: bool = False,
    ) -> Path:
        """Create (or replace) the stub ``bin_dir/name``.

        On each call it logs its argv; then, if ``output_after`` (e.g. ``"save"``) occurs in
        argv, writes ``output_content`` to the argument after it (or to ``argv[output_arg]``),
        failing with exit 1 when that file cannot be written; prints ``stdout``; runs
        ``script_body`` (POSIX sh, ``"$@"`` available); exits ``exit_code``.
        """
        if "/" in name or not name:
            raise ValueError(f"bad stub name {name!r}")
        config = {
            "name": name,
            "log": str(self.log),
            "env": list(record_env),
            "stdin": capture_stdin,
            "output_after": output_after,
            "output_arg": output_arg,
            "output_content": output_content,
            "stdout": stdout,
        }
        config_path = self._meta / f"{name}.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        recorder = shlex.join([sys.executable, str(self._recorder), str(config_path)])
        script = (
            "#!/bin/sh\n"
            f"# Test stub for {name} (tests/engines.py): logs its arguments, then runs the body.\n"
            f'{recorder} "$@" || exit $?\n'
            f"{script_body.rstrip()}\n"
            f"exit {int(exit_code)}\n"
        )
        path = self.bin_dir / name
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
        return path

    def calls(self, name: str | None = None) -> list[StubCall]:
        if not self.log.exists():
            return []
        calls = [StubCall(**json.loads(line)) for line in self.log.read_text("utf-8").splitlines()]
        return [c for c in calls if name is None or c.name == name]

    def argv(self, name: str) -> list[list[str]]:
        """The argument lists of every call of stub ``name``, in order."""
        return [c.argv for c in self.calls(name)]

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A copy of ``base`` (default ``os.environ``) with ``bin_dir`` first on PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join(filter(None, [str(self.bin_dir), env.get("PATH", "")]))
        return env


def make_stub(bin_dir: Path | str, name: str, script_body: str = "", **options: Any) -> Path:
    """Shorthand for ``StubRecorder(bin_dir).stub(name, script_body, **options)``; calls are
    logged to ``bin_dir/.stubs/calls.jsonl`` (read them with ``StubRecorder(bin_dir).calls()``)."""
    return StubRecorder(bin_dir).stub(name, script_body, **options)


# --------------------------------------------------------------------------------------------
# pytest fixtures (function-scoped: every test gets fresh, empty servers)
# --------------------------------------------------------------------------------------------


def require_tool(name: str) -> str:
    """conftest's require_tool, imported late so this module also works outside pytest."""
    from conftest import require_tool as conftest_require_tool

    return conftest_require_tool(name)


def require_postgres() -> None:
    """Skip (locally) / fail (CI=true) unless the PostgreSQL server and psql are installed."""
    if postgres_bindir() is None:
        require_tool("initdb")  # not on PATH and not in /usr/lib/postgresql: skip or fail
    require_tool("psql")


def require_mariadb() -> None:
    for name in ("mariadbd", "mariadb-install-db"):
        if _find_program(name, "/usr/sbin", "/usr/local/sbin") is None:
            require_tool(name)
    require_tool("mariadb")


def require_redis() -> None:
    require_tool("redis-server")
    require_tool("redis-cli")


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A running, empty PostgreSQL server (superuser ``postgres`` / POSTGRES_PASSWORD)."""
    require_postgres()
    with PostgresServer(tmp_path / "postgres") as server:
        yield server


@pytest.fixture
def postgres_restore(tmp_path: Path) -> Iterator[PostgresServer]:
    """A second, fresh PostgreSQL server to restore a backup into (same credentials)."""
    require_postgres()
    with PostgresServer(tmp_path / "postgres-restore") as server:
        yield server


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    """A running MariaDB server with user ``backup`` / MARIADB_PASSWORD over TCP."""
    require_mariadb()
    with MariaDBServer(tmp_path / "mariadb") as server:
        yield server


@pytest.fixture
def mariadb_restore(tmp_path: Path) -> Iterator[MariaDBServer]:
    """A second, fresh MariaDB server to restore a backup into (same credentials)."""
    require_mariadb()
    with MariaDBServer(tmp_path / "mariadb-restore") as server:
        yield server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server without a password and without automatic saves."""
    require_redis()
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def pushgateway() -> Iterator[FakePushgateway]:
    """A FakePushgateway answering 200 (set ``.status = 500`` to make pushes fail)."""
    with FakePushgateway() as fake:
        yield fake


@pytest.fixture
def prometheus_admin(tmp_path: Path) -> Iterator[FakePrometheusAdmin]:
    """A FakePrometheusAdmin whose snapshots land under ``tmp_path/prometheus``."""
    with FakePrometheusAdmin(tmp_path / "prometheus") as fake:
        yield fake


@pytest.fixture
def stubs(tmp_path: Path) -> StubRecorder:
    """A StubRecorder over ``tmp_path/stub-bin`` (use ``stubs.env()`` for the PATH)."""
    return StubRecorder(tmp_path / "stub-bin")
