"""The NAS monitor stack, its script run for real against stand-ins of TrueNAS's API.

The JSON-RPC stand-in is a WebSocket server (the ``websockets`` library, which enforces RFC
6455 on its side: masked client frames, a valid handshake, close codes) answering as
TrueNAS's middleware does (read from its source: ``api/base/server/ws_handler/rpc.py``,
``main.py``'s ``authorize_method_call``, ``plugins/auth.py``, ``plugins/cloud_sync/crud.py``,
``utils/service/task_state.py``, ``utils/filter_list.py``; dates as the API client's
``ejson`` writes them, ``{"$date": <ms>}``):

* ``auth.login_with_api_key [key]`` answers ``true``, or ``false`` for a wrong key (and
  -32601 "Method does not exist" on TrueNAS 27's current API, which removed it);
* ``auth.login_ex [login_data]`` (``api/v25_04_0``…``v27_0_0/auth.py``'s
  ``AuthLoginExArgs``/``AuthLoginExResult``, ``plugins/auth.py``'s ``login_ex``,
  ``plugins/auth_/login_ex_impl.py``'s ``login_ex_api_key_plain``) takes the
  ``API_KEY_PLAIN`` mechanism with ``username``, ``api_key`` and optional ``login_options``
  (``user_info``, ``reconnect_token``), extra fields refused with -32602 "Invalid params" as
  the models forbid them; it answers ``{"response_type": "SUCCESS", "user_info": <auth.me>
  or null, "authenticator": "LEVEL_1", "reconnect_token": null}`` when the user owns the key,
  else ``AUTH_ERR`` (a wrong key and an unknown user answer the same); ``EXPIRED``,
  ``DENIED``, ``REDIRECT`` and ``OTP_REQUIRED`` when configured to;
* any other call before a login is refused with error -32001 "Method call error",
  ``data.errname`` ENOTAUTHENTICATED (207); an unknown method with -32601;
* ``cloudsync.query [filters]`` and ``core.get_jobs [filters, options]`` filter as
  ``filter_list`` does (dotted paths, ``arguments.0``, ``order_by`` ``-id``, ``limit``);
  a task's ``job`` is its newest job (``core.get_jobs``'s shape), the one persisted in the
  database (``id`` and ``logs_path`` null) after a restart, or null when it never ran.

It also pings before each answer, sends a ``collection_update`` notification first and
fragments every answer, so the client's frame handling is exercised on every call. The REST
stand-in (``http.server``) reads query-filters from the query string as the REST API of
TrueNAS before 25.10 did (``restful.py``'s ``_filterable_args``) and answers 401 to a wrong
Bearer key.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePushgateway, parse_samples
from hcl import SecretRef, find_blocks, find_resources, load_tf, pod_spec
from jobs import Job, job_env, load_job
from provider_schema import validate_module
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.generators.alerts import rule_groups
from homeops_gen.generators.storage_layers import CLOUDSYNC_DESCRIPTION
from homeops_gen.hcl import hcl_string
from homeops_gen.metrics import metrics_read, sources
from homeops_gen.registry import registered_generators
from homeops_gen.schedule import alert_threshold

STACK = "terraform/stacks/nas-monitor"
KEY = "1-uz8DhKHFhRIUQIvjzabPYtpy5wf1DJ3ZBLlDgNVhRAFT7Y6pJGUlm0n3apwxWEU4"
#: The user the key belongs to on the NAS.
USER = "nas-monitor"
TASK_ID = 3
OTHER_ID = 1
#: Job times, in seconds since the epoch (whole seconds: ejson writes whole milliseconds).
T0, T1, T2, T3 = 1_735_000_000, 1_735_600_000, 1_736_200_000, 1_736_800_000


def catalog_text(
    api: str = "wss://nas.lan/api/current", full_sync_by: str = "cloudsync", user: str = ""
) -> str:
    settings = (
        "  truenas:\n"
        f"    api: {api}\n"
        "    api_key: {name: truenas-api-key, key: api-key}\n"
        + (f"    api_key_user: {user}\n" if user else "")
        + "    verify_tls: false\n"
        "    monitor_cadence: 1h\n"
        "  offsite:\n"
        "    target: sftp://backup.lan/tank\n"
        f"    full_sync_by: {full_sync_by}\n"
        "    cloudsync_credential: remote\n"
        "    rclone_remote: remote\n"
    )
    return MINIMAL_HEAD.replace("services:\n", settings + "services:\n") + (
        "  - {name: media, namespace: media, storage: nfs, churn: low, engine: files}\n"
    )


def render(catalog: Catalog, folder: Path) -> dict[str, bytes]:
    """The monitor's and the alerts' files of ``catalog``, written below ``folder``."""
    wanted = [g for g in registered_generators() if g.name in ("nas-monitor", "alerts")]
    files = render_plan(build_plan(catalog, wanted))
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return files


@dataclass
class Rendered:
    catalog: Catalog
    out: Path
    files: dict[str, bytes]

    @property
    def stack(self) -> Path:
        return self.out / STACK

    @property
    def job(self) -> Job:
        return load_job(self.stack, "monitor")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    catalog = load_catalog_text(catalog_text(), "services.yaml")
    out = tmp_path_factory.mktemp("out")
    return Rendered(catalog, out, render(catalog, out))


@pytest.fixture(scope="module")
def with_user(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The stack of a catalog naming the key's user (``settings.truenas.api_key_user``)."""
    catalog = load_catalog_text(catalog_text(user=USER), "services.yaml")
    out = tmp_path_factory.mktemp("with-user")
    return Rendered(catalog, out, render(catalog, out))


# --------------------------------------------------------------------------------------------
# The TrueNAS shapes
# --------------------------------------------------------------------------------------------


def date(seconds: int | None) -> dict[str, int] | None:
    """A datetime as the middleware's JSON encoder writes it."""
    return None if seconds is None else {"$date": seconds * 1000}


def job(
    id_: int, task_id: int, state: str, started: int, finished: int | None, error: str = ""
) -> dict[str, Any]:
    """A ``core.get_jobs`` item of a ``cloudsync.sync`` run (CoreGetJobsItem's fields)."""
    return {
        "id": id_,
        "message_ids": [],
        "method": "cloudsync.sync",
        "arguments": [task_id],
        "transient": False,
        "description": None,
        "abortable": True,
        "logs_path": f"/var/log/jobs/{id_}.log",
        "logs_excerpt": None,
        "progress": {
            "percent": 100 if finished else 37,
            "description": "12 / 20, 1.234 GiB / 2.000 GiB, 10.123 MiB/s, ETA 1m17s",
            "extra": None,
        },
        "result": None,
        "result_encoding_error": None,
        "error": error or None,
        "exception": f"Traceback ...\nCallError: {error}" if error else None,
        "exc_info": {
            "repr": f"CallError('{error}')",
            "type": "CallError",
            "errno": 14,
            "extra": None,
        }
        if error
        else None,
        "state": state,
        "time_started": date(started),
        "time_finished": date(finished),
        "credentials": None,
    }


def persisted(entry: dict[str, Any]) -> dict[str, Any]:
    """A finished job as the database keeps it for the task across a middleware restart."""
    return dict(entry, id=None, logs_path=None)


def task(id_: int, description: str, last_job: dict[str, Any] | None) -> dict[str, Any]:
    """A ``cloudsync.query`` entry (CloudSyncEntry's fields); ``post_script`` is long enough
    to need a WebSocket frame with a 64-bit length."""
    return {
        "id": id_,
        "description": description,
        "path": "/mnt/tank",
        "credentials": {"id": 2, "name": "remote", "provider": {"type": "SFTP"}},
        "attributes": {"folder": "/tank", "fast_list": False},
        "schedule": {"minute": "0", "hour": "9", "dom": "*", "month": "*", "dow": "7"},
        "pre_script": "",
        "post_script": "# " + "x" * 70_000 + "\n",
        "snapshot": False,
        "include": [],
        "exclude": ["/iocage/**"],
        "args": "",
        "enabled": True,
        "job": last_job,
        "locked": False,
        "bwlimit": [],
        "transfers": None,
        "direction": "PUSH",
        "transfer_mode": "SYNC",
        "encryption": False,
        "filename_encryption": False,
        "encryption_password": "",
        "encryption_salt": "",
        "create_empty_src_dirs": False,
        "follow_symlinks": False,
    }


@dataclass
class NasState:
    """What the NAS knows: its tasks and the jobs of this middleware's lifetime."""

    tasks: list[dict[str, Any]]
    jobs: list[dict[str, Any]] = field(default_factory=list)


EARLIER = [
    job(40, TASK_ID, "SUCCESS", T0 - 600, T0),
    job(41, TASK_ID, "SUCCESS", T1 - 600, T1),
    job(43, OTHER_ID, "SUCCESS", T3 - 60, T3),  # newer, of another task
    job(42, TASK_ID, "FAILED", T2 - 600, T2, "rclone failed with exit code 1"),
]


def state_of(case: str) -> NasState:
    other = task(OTHER_ID, "photos to the cloud", persisted(EARLIER[2]))
    if case == "success":
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, EARLIER[1])], EARLIER[:3])
    if case == "failed":
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, EARLIER[3])], EARLIER)
    if case == "running":
        running = job(44, TASK_ID, "RUNNING", T3, None)
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, running)], [*EARLIER, running])
    if case == "waiting":
        waiting = job(44, TASK_ID, "WAITING", T3, None)
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, waiting)], [*EARLIER, waiting])
    if case == "never-run":
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, None)], [EARLIER[2]])
    if case == "failed-after-restart":
        # The middleware restarted: no jobs in memory, the task's last job from the database.
        return NasState([other, task(TASK_ID, CLOUDSYNC_DESCRIPTION, persisted(EARLIER[3]))])
    if case == "missing":
        return NasState([other], EARLIER)
    raise KeyError(case)


#: What the monitor must push for each case (``None``: the run fails, nothing is pushed).
EXPECTED: dict[str, dict[str, float]] = {
    "success": {
        "offsite_sync_last_run_success": 1,
        "offsite_sync_last_success_timestamp": T1,
        "offsite_sync_running": 0,
    },
    "failed": {
        "offsite_sync_last_run_success": 0,
        "offsite_sync_last_success_timestamp": T1,
        "offsite_sync_running": 0,
    },
    "running": {"offsite_sync_last_success_timestamp": T1, "offsite_sync_running": 1},
    "waiting": {"offsite_sync_last_success_timestamp": T1, "offsite_sync_running": 0},
    "never-run": {"offsite_sync_running": 0},
    "failed-after-restart": {"offsite_sync_last_run_success": 0, "offsite_sync_running": 0},
}


# --------------------------------------------------------------------------------------------
# The middleware's query semantics (utils/filter_list.py), for both stand-ins
# --------------------------------------------------------------------------------------------

_MISSING = object()


def resolve(entry: Any, path: str) -> Any:
    """A dotted path as filter_list reads it: keys of objects, indexes of arrays."""
    current = entry
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list):
            if not part.isdigit():
                raise ValueError(f"{part}: must be array index or wildcard character")
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return _MISSING
    return current


def query(rows: list[dict[str, Any]], filters: list[Any], options: dict[str, Any]) -> Any:
    def keep(row: dict[str, Any]) -> bool:
        for name, op, value in filters:
            found = resolve(row, name)
            if op == "=" and found != value:
                return False
            if op == "!=" and found == value:
                return False
            if op not in ("=", "!="):
                raise ValueError(f"operator {op} is not modelled")
        return True

    result = [r for r in rows if keep(r)]
    for key in reversed(options.get("order_by", [])):
        name = key.lstrip("-")
        result.sort(key=lambda r, name=name: resolve(r, name), reverse=key.startswith("-"))
    if options.get("limit"):
        result = result[: options["limit"]]
    return result


# --------------------------------------------------------------------------------------------
# The JSON-RPC WebSocket stand-in
# --------------------------------------------------------------------------------------------


def call_error(
    id_: Any, errno_: int, errname: str, reason: str, code: int = -32001
) -> dict[str, Any]:
    data = {"error": errno_, "errname": errname, "reason": reason, "trace": None, "extra": None}
    message = {-32001: "Method call error", -32602: "Invalid params"}[code]
    error = {"code": code, "message": message, "data": data}
    return {"jsonrpc": "2.0", "error": error, "id": id_}


#: auth.login_ex's mechanisms and the fields each takes (required, optional).
LOGIN_MECHANISMS = {
    "API_KEY_PLAIN": ({"mechanism", "username", "api_key"}, {"login_options"}),
    "PASSWORD_PLAIN": ({"mechanism", "username", "password"}, {"login_options"}),
    "TOKEN_PLAIN": ({"mechanism", "token"}, {"login_options"}),
    "OTP_TOKEN": ({"mechanism", "otp_token"}, {"login_options"}),
}
#: AuthCommonOptions' fields.
LOGIN_OPTIONS = {"user_info", "reconnect_token"}


def auth_me(user: str) -> dict[str, Any]:
    """What ``auth.me`` tells of an API key's local user (AuthUserInfo's fields)."""
    return {
        "pw_name": user,
        "pw_gecos": "NAS monitor",
        "pw_dir": "/var/empty",
        "pw_shell": "/usr/sbin/nologin",
        "pw_uid": 3001,
        "pw_gid": 3001,
        "grouplist": [3001],
        "sid": None,
        "source": "LOCAL",
        "local": True,
        "attributes": {},
        "two_factor_config": {"secret_configured": False, "interval": 30, "otp_digits": 6},
        "privilege": {"roles": {"$set": ["READONLY_ADMIN"]}, "web_shell": False},
        "account_attributes": ["LOCAL", "API_KEY"],
    }


class FakeTrueNAS:
    """``/api/current`` of a TrueNAS middleware holding ``state``; records every call."""

    def __init__(
        self,
        state: NasState,
        *,
        tls: ssl.SSLContext | None = None,
        login_removed: bool = False,
        failing: str = "",
        bad_accept: bool = False,
        login_ex_answer: str = "",
    ) -> None:
        self.state = state
        #: What auth.login_ex answers a well-formed request instead of checking the key:
        #: EXPIRED, DENIED, OTP_REQUIRED, REDIRECT or a response_type TrueNAS may add.
        self.login_ex_answer = login_ex_answer
        self.tls = tls
        self.login_removed = login_removed  # TrueNAS 27's current API
        self.failing = failing  # a method that fails with a CallError
        self.bad_accept = bad_accept
        self.calls: list[tuple[str, list[Any]]] = []
        self.pings: list[threading.Event] = []
        self.close_codes: list[int | None] = []

    def __enter__(self) -> FakeTrueNAS:
        self.server = serve(
            self.handle,
            "127.0.0.1",
            0,
            ssl=self.tls,
            compression=None,
            ping_interval=None,
            process_request=self.route,
            process_response=self.answer_upgrade,
        )
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/api/current"

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/api/current":
            return connection.respond(404, "Not Found\n")
        return None

    def answer_upgrade(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if self.bad_accept and response.status_code == 101:
            headers = Headers(response.headers)
            headers["Sec-WebSocket-Accept"] = "dGhlIHNhbXBsZSBub25jZQ=="
            return Response(response.status_code, response.reason_phrase, headers, response.body)
        return None

    def handle(self, connection: ServerConnection) -> None:
        authenticated = False
        try:
            for raw in connection:
                message = json.loads(raw)
                id_, method, params = message["id"], message["method"], message.get("params", [])
                self.calls.append((method, params))
                answer, authenticated = self.dispatch(id_, method, params, authenticated)
                self.pings.append(connection.ping(b"truenas"))
                notice = {"msg": "changed", "collection": "core.get_jobs", "id": 99, "fields": {}}
                connection.send(
                    json.dumps({"jsonrpc": "2.0", "method": "collection_update", "params": notice})
                )
                # Three fragments: 7-bit, 16- or 64-bit (the tasks' long post_script), 7-bit.
                text = json.dumps(answer)
                connection.send([text[:10], text[10:-10], text[-10:]])
        finally:
            self.close_codes.append(connection.close_code)

    def dispatch(
        self, id_: Any, method: str, params: list[Any], authenticated: bool
    ) -> tuple[dict[str, Any], bool]:
        def result(value: Any) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "result": value, "id": id_}

        if method == "auth.login_with_api_key" and not self.login_removed:
            ok = params == [KEY]
            return result(ok), authenticated or ok
        if method == "auth.login_ex":
            answer = self.login_ex(params)
            if "response_type" not in answer:
                return call_error(id_, 22, "EINVAL", answer["reason"], code=-32602), authenticated
            return result(answer), authenticated or answer["response_type"] == "SUCCESS"
        if method not in ("cloudsync.query", "core.get_jobs", "core.ping"):
            error = {"code": -32601, "message": "Method does not exist"}
            return {"jsonrpc": "2.0", "error": error, "id": id_}, authenticated
        if not authenticated:
            return call_error(
                id_, 207, "ENOTAUTHENTICATED", "[ENOTAUTHENTICATED] Not authenticated"
            ), False
        if method == self.failing:
            return call_error(id_, 14, "EFAULT", "[EFAULT] the database is locked"), True
        filters = params[0] if params else []
        options = params[1] if len(params) > 1 else {}
        rows = self.state.tasks if method == "cloudsync.query" else self.state.jobs
        return result(query(rows, filters, options)), True

    def login_ex(self, params: list[Any]) -> dict[str, Any]:
        """auth.login_ex's answer to ``params``, or ``{"reason": ...}`` for invalid params."""
        if len(params) != 1 or not isinstance(params[0], dict):
            return {"reason": "auth.login_ex takes one argument, login_data"}
        data = params[0]
        fields = LOGIN_MECHANISMS.get(data.get("mechanism"))
        if fields is None:
            return {"reason": f"login_data.mechanism: {data.get('mechanism')!r} is not allowed"}
        required, optional = fields
        if not required <= data.keys() or not data.keys() <= required | optional:
            return {"reason": f"login_data: fields {sorted(data)}, expected {sorted(required)}"}
        options = {"user_info": True, "reconnect_token": False, **data.get("login_options", {})}
        if not options.keys() <= LOGIN_OPTIONS:
            return {"reason": f"login_data.login_options: extra {sorted(options)}"}
        if data["mechanism"] != "API_KEY_PLAIN":
            return {"response_type": "AUTH_ERR"}  # no passwords or tokens here
        if self.login_ex_answer == "OTP_REQUIRED":
            return {"response_type": "OTP_REQUIRED", "username": data["username"]}
        if self.login_ex_answer == "REDIRECT":
            return {"response_type": "REDIRECT", "urls": ["192.0.2.10", "192.0.2.11"]}
        if self.login_ex_answer:
            return {"response_type": self.login_ex_answer}
        if (data["username"], data["api_key"]) != (USER, KEY):
            return {"response_type": "AUTH_ERR"}  # PAM_AUTH_ERR and PAM_USER_UNKNOWN alike
        return {
            "response_type": "SUCCESS",
            "user_info": auth_me(USER) if options["user_info"] else None,
            "authenticator": "LEVEL_1",
            "reconnect_token": None,
        }


# --------------------------------------------------------------------------------------------
# The REST stand-in
# --------------------------------------------------------------------------------------------


def rest_query(raw_query: str) -> tuple[list[Any], dict[str, Any]]:
    """query-filters and query-options from a query string, as the REST API read them."""

    def convert(value: str) -> Any:
        if value.isdigit():
            return int(value)
        return {"true": True, "false": False, "null": None}.get(value.lower(), value)

    ops = {"eq": "=", "neq": "!=", "gt": ">", "lt": "<", "gte": ">=", "lte": "<=", "regex": "~"}
    filters: list[Any] = []
    options: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        if key in ("limit", "offset", "count"):
            options[key] = convert(value)
            continue
        name, _, op = key.partition("__")
        filters.append([name, ops.get(op, op) if op else "=", convert(value)])
    return filters, options


class FakeRest:
    """``/api/v2.0`` of an older TrueNAS: GET ``cloudsync`` and ``core/get_jobs``."""

    def __init__(self, state: NasState) -> None:
        self.state = state
        self.requests: list[tuple[str, str, str]] = []

    def __enter__(self) -> FakeRest:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, raw_query = self.path.partition("?")
                fake.requests.append((path, raw_query, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self.reply(401, b"401: Invalid API key", "text/plain; charset=utf-8")
                rows = {
                    "/api/v2.0/cloudsync": fake.state.tasks,
                    "/api/v2.0/core/get_jobs": fake.state.jobs,
                }.get(path)
                if rows is None:
                    return self.reply(404, b"404: Not Found", "text/plain; charset=utf-8")
                body = json.dumps(query(rows, *rest_query(raw_query)), indent=True).encode()
                return self.reply(200, body, "application/json")

            def reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v2.0"


# --------------------------------------------------------------------------------------------
# Running the monitor
# --------------------------------------------------------------------------------------------


def run_monitor(
    job: Job, folder: Path, url: str, pushgateway: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    """The script from the evaluated ConfigMap, run with the CronJob's environment."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / job.entry
    script.write_text(job.files[job.entry], encoding="utf-8")
    env = job_env(
        job,
        {
            "TRUENAS_URL": url,
            "TRUENAS_API_KEY": KEY + "\n",  # a Secret written with echo keeps its newline
            "PUSHGATEWAY_URL": pushgateway,
            "TRUENAS_TIMEOUT": "10",
            **overrides,
        },
    )
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )


def pushed(gateway: FakePushgateway) -> dict[str, float]:
    """The one push of a run: POST to the monitor's group, each sample's value by name."""
    (push,) = gateway.pushes
    assert push.method == "POST"
    assert push.path == "/metrics/job/nas-monitor/sync/full"
    samples = parse_samples(push.body)
    assert all(s.labels == {} for s in samples), samples
    return {s.name: s.value for s in samples}


def full_sync_reads(catalog: Catalog) -> dict[str, dict[str, str]]:
    """The ``sync="full"`` offsite series the generated alerts read: name -> labels."""
    reads: dict[str, dict[str, str]] = {}
    for group in rule_groups(catalog):
        for alert in group.alerts:
            for read in metrics_read(alert.expr):
                labels = dict(read.labels)
                if read.metric.startswith("offsite_sync_") and labels.get("sync") == "full":
                    reads[read.metric] = labels
    return reads


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


def test_the_stack_is_generated_only_when_a_cloud_sync_task_runs_the_full_sync() -> None:
    for by, expected in (("cloudsync", True), ("script", False)):
        catalog = load_catalog_text(catalog_text(full_sync_by=by), "services.yaml")
        paths = {f.path for f in build_plan(catalog).files}
        assert (f"{STACK}/nas_monitor.py" in paths) is expected, by
        assert (f"{STACK}/monitor.tf" in paths) is expected, by
    no_nas = (
        MINIMAL_HEAD
        + "  - {name: media, namespace: media, storage: nfs, churn: low, engine: files}\n"
    )
    paths = {f.path for f in build_plan(load_catalog_text(no_nas, "services.yaml")).files}
    assert not any(p.startswith(STACK) for p in paths)


def test_the_stack_matches_the_provider_schema_and_terraform_fmt(rendered: Rendered) -> None:
    assert validate_module(rendered.stack) == []
    terraform = require_tool("terraform")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", str(rendered.stack)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cron_job_follows_the_catalog(rendered: Rendered) -> None:
    truenas = rendered.catalog.settings.truenas
    assert truenas is not None
    body = find_resources(load_tf(rendered.stack / "monitor.tf"), "kubernetes_cron_job_v1")[
        "monitor"
    ]
    assert body["metadata"][0]["namespace"] == truenas.namespace == "monitoring"
    spec = body["spec"][0]
    assert spec["schedule"] == truenas.monitor_schedule.cron
    assert spec["timezone"] == truenas.monitor_schedule.zone
    assert spec["concurrency_policy"] == "Forbid"
    assert spec["job_template"][0]["spec"][0]["backoff_limit"] <= 2
    pod = pod_spec(body)
    assert pod["restart_policy"] == "Never"
    context = pod["security_context"][0]
    assert context["run_as_non_root"] is True and context["run_as_user"] != "0"
    job = rendered.job
    assert re.fullmatch(r"docker\.io/library/python:3\.\d+\.\d+-alpine3\.\d+", job.image)
    assert job.command == ("python3", "/scripts/nas_monitor.py")
    assert job.env == {
        "TRUENAS_URL": "wss://nas.lan/api/current",
        "TRUENAS_PROTOCOL": "jsonrpc",
        "TRUENAS_API_KEY": SecretRef("truenas-api-key", "api-key"),
        "TRUENAS_VERIFY_TLS": "false",
        "CLOUDSYNC_DESCRIPTION": CLOUDSYNC_DESCRIPTION,
        "PUSHGATEWAY_URL": rendered.catalog.settings.pushgateway,
        "PUSHGATEWAY_GROUP": "job/nas-monitor/sync/full",
    }


def test_the_config_map_holds_in_terraform_the_script_byte_for_byte(
    rendered: Rendered, tmp_path: Path
) -> None:
    """Terraform itself evaluates the ConfigMap's ``data`` in a copy of the stack."""
    terraform = require_tool("terraform")
    doc = load_tf(rendered.stack / "monitor.tf")
    (data,) = [b["data"] for b in find_resources(doc, "kubernetes_config_map_v1").values()]
    assert not find_blocks(doc, "module")
    folder = tmp_path / "nas-monitor"
    shutil.copytree(rendered.stack, folder)
    for tf in folder.glob("*.tf"):
        tf.unlink()
    entries = "".join(f"    {hcl_string(key)} = {value}\n" for key, value in data.items())
    (folder / "eval.tf").write_text(f'output "data" {{\n  value = {{\n{entries}  }}\n}}\n')
    for command in (["init", "-backend=false"], ["apply", "-auto-approve"]):
        subprocess.run(
            [terraform, *command, "-input=false", "-no-color"],
            cwd=folder,
            capture_output=True,
            check=True,
        )
    shown = subprocess.run(
        [terraform, "output", "-json", "data"], cwd=folder, capture_output=True, check=True
    )
    script = rendered.files[f"{STACK}/nas_monitor.py"]
    assert {k: v.encode() for k, v in json.loads(shown.stdout).items()} == {
        "nas_monitor.py": script
    }
    assert rendered.job.files == {"nas_monitor.py": script.decode()}
    assert script.startswith(b"#!/usr/bin/env python3\n# Code generated by homeops_gen")


def test_the_script_uses_only_the_standard_library(rendered: Rendered) -> None:
    tree = ast.parse(rendered.files[f"{STACK}/nas_monitor.py"])
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert "urllib" in imported and "ssl" in imported
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_the_monitor_is_the_producer_the_metrics_join_names(rendered: Rendered) -> None:
    script = f"{STACK}/nas_monitor.py"
    monitor = [s for s in sources(rendered.catalog) if s.producer == script]
    assert script in rendered.files
    assert {dict(s.labels)["job"] for s in monitor} == {"nas-monitor"}
    assert {dict(s.labels)["sync"] for s in monitor} == {"full"}
    assert set(full_sync_reads(rendered.catalog)) <= {s.metric for s in monitor}


# --------------------------------------------------------------------------------------------
# The script against the JSON-RPC stand-in
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_monitor_pushes_what_the_task_says(
    case: str, rendered: Rendered, tmp_path: Path
) -> None:
    state = state_of(case)
    with FakeTrueNAS(state) as nas, FakePushgateway() as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 0, result.stderr
    values = pushed(gateway)
    assert values == EXPECTED[case]
    # What the alerts read, with the labels they select (the group's labels, from the path).
    for name, labels in full_sync_reads(rendered.catalog).items():
        if name in values:
            assert labels.items() <= {"job": "nas-monitor", "sync": "full"}.items()
    methods = [m for m, _ in nas.calls]
    assert methods[:2] == ["auth.login_with_api_key", "cloudsync.query"]
    assert nas.calls[0][1] == [KEY]
    assert nas.calls[1][1] == [[["description", "=", CLOUDSYNC_DESCRIPTION]]]
    asked_jobs = "core.get_jobs" in methods
    assert asked_jobs is (case in ("failed", "running", "waiting", "failed-after-restart"))
    # Every ping answered, the connection closed normally (the server checked the masking).
    assert all(ping.is_set() for ping in nas.pings)
    assert nas.close_codes == [1000]


def test_a_success_pushes_every_series_the_alerts_read(rendered: Rendered, tmp_path: Path) -> None:
    with FakeTrueNAS(state_of("success")) as nas, FakePushgateway() as gateway:
        assert run_monitor(rendered.job, tmp_path, nas.url, gateway.url).returncode == 0
    reads = full_sync_reads(rendered.catalog)
    assert set(reads) == {"offsite_sync_last_run_success", "offsite_sync_last_success_timestamp"}
    assert set(reads) <= set(pushed(gateway))


def test_the_last_success_is_asked_for_this_task_newest_first(
    rendered: Rendered, tmp_path: Path
) -> None:
    with FakeTrueNAS(state_of("failed")) as nas, FakePushgateway() as gateway:
        assert run_monitor(rendered.job, tmp_path, nas.url, gateway.url).returncode == 0
    (params,) = [p for m, p in nas.calls if m == "core.get_jobs"]
    filters, options = params
    assert sorted(map(tuple, filters)) == [
        ("arguments.0", "=", TASK_ID),
        ("method", "=", "cloudsync.sync"),
        ("state", "=", "SUCCESS"),
    ]
    assert options == {"order_by": ["-id"], "limit": 1}
    # Not T3, the other task's newer success.
    assert pushed(gateway)["offsite_sync_last_success_timestamp"] == T1


def test_a_wrong_key_pushes_nothing(rendered: Rendered, tmp_path: Path) -> None:
    with FakeTrueNAS(state_of("success")) as nas, FakePushgateway() as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url, TRUENAS_API_KEY="2-bad")
    assert result.returncode == 1
    assert "TrueNAS refused the API key" in result.stderr
    assert [m for m, _ in nas.calls] == ["auth.login_with_api_key"]
    assert gateway.pushes == []


# --------------------------------------------------------------------------------------------
# auth.login_ex, with settings.truenas.api_key_user
# --------------------------------------------------------------------------------------------

LOGIN_EX = "auth.login_ex"


def login_data(user: str = USER, key: str = KEY) -> dict[str, Any]:
    return {"mechanism": "API_KEY_PLAIN", "username": user, "api_key": key}


@pytest.mark.parametrize("case", ["success", "failed", "never-run"])
@pytest.mark.parametrize("login_removed", [False, True], ids=["25.04", "27"])
def test_with_the_keys_user_the_monitor_logs_in_with_login_ex(
    case: str, login_removed: bool, with_user: Rendered, tmp_path: Path
) -> None:
    """auth.login_ex, also where auth.login_with_api_key is gone (TrueNAS 27's current API),
    then the usual queries and push."""
    state = state_of(case)
    with (
        FakeTrueNAS(state, login_removed=login_removed) as nas,
        FakePushgateway() as gateway,
    ):
        result = run_monitor(with_user.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 0, result.stderr
    assert pushed(gateway) == EXPECTED[case]
    methods = [m for m, _ in nas.calls]
    assert methods[:2] == [LOGIN_EX, "cloudsync.query"]
    assert "auth.login_with_api_key" not in methods
    ((data,),) = [p for m, p in nas.calls if m == LOGIN_EX]
    assert data.items() >= login_data().items()  # the key without the Secret's newline
    assert nas.close_codes == [1000]


def test_the_stand_in_answers_login_ex_as_truenas_does() -> None:
    """SUCCESS carries auth.me's user_info (unless login_options says not), authenticator
    and reconnect_token; a wrong key or user is AUTH_ERR; a malformed login_data -32602."""
    from websockets.sync.client import connect

    def ask(ws: Any, id_: int, params: list[Any]) -> dict[str, Any]:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": LOGIN_EX, "params": params}))
        while True:
            answer = json.loads(ws.recv())
            if answer.get("id") == id_:
                return dict(answer)

    with FakeTrueNAS(state_of("success")) as nas, connect(nas.url, compression=None) as ws:
        assert ask(ws, 1, [login_data(key="1-wrong")])["result"] == {"response_type": "AUTH_ERR"}
        assert ask(ws, 2, [login_data(user="root")])["result"] == {"response_type": "AUTH_ERR"}
        bad = ask(ws, 3, [{**login_data(), "otp_token": "123456"}])
        assert bad["error"]["code"] == -32602
        bad = ask(ws, 4, [{**login_data(), "login_options": {"user_info": False, "x": 1}}])
        assert bad["error"]["code"] == -32602
        success = ask(ws, 5, [login_data()])["result"]
        assert success["response_type"] == "SUCCESS"
        assert success["user_info"]["pw_name"] == USER
        assert (success["authenticator"], success["reconnect_token"]) == ("LEVEL_1", None)
        quiet = ask(ws, 6, [{**login_data(), "login_options": {"user_info": False}}])["result"]
        assert quiet["user_info"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TRUENAS_API_KEY": "1-wrong"}, f'refused the API key for the user "{USER}"'),
        ({"TRUENAS_API_KEY_USER": "root"}, 'refused the API key for the user "root"'),
    ],
    ids=["wrong-key", "wrong-user"],
)
def test_a_login_ex_refusal_pushes_nothing(
    overrides: dict[str, str], message: str, with_user: Rendered, tmp_path: Path
) -> None:
    with FakeTrueNAS(state_of("success")) as nas, FakePushgateway() as gateway:
        result = run_monitor(with_user.job, tmp_path, nas.url, gateway.url, **overrides)
    assert result.returncode == 1
    assert message in result.stderr and "AUTH_ERR" in result.stderr
    assert [m for m, _ in nas.calls] == [LOGIN_EX]
    assert gateway.pushes == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("EXPIRED", f'the API key of the user "{USER}" is expired'),
        ("DENIED", f'the user "{USER}" has no API access'),
        ("OTP_REQUIRED", "an API key login must not need one"),
        ("REDIRECT", "is the standby controller"),
        ("SCRAM_RESPONSE", "the monitor knows no such response"),
    ],
)
def test_a_login_ex_answer_other_than_success_pushes_nothing(
    answer: str, message: str, with_user: Rendered, tmp_path: Path
) -> None:
    with (
        FakeTrueNAS(state_of("success"), login_ex_answer=answer) as nas,
        FakePushgateway() as gateway,
    ):
        result = run_monitor(with_user.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 1
    assert message in result.stderr and answer in result.stderr
    # Nothing more asked: no OTP sent, no query made on a session that is not logged in.
    assert [m for m, _ in nas.calls] == [LOGIN_EX]
    assert gateway.pushes == []


def test_the_keys_user_reaches_the_cron_job_only_when_named(
    rendered: Rendered, with_user: Rendered
) -> None:
    assert "TRUENAS_API_KEY_USER" not in rendered.job.env
    assert with_user.job.env == {**rendered.job.env, "TRUENAS_API_KEY_USER": USER}
    assert validate_module(with_user.stack) == []


def test_the_stand_in_refuses_calls_before_a_login_as_truenas_does() -> None:
    from websockets.sync.client import connect

    with FakeTrueNAS(state_of("success")) as nas, connect(nas.url, compression=None) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "cloudsync.query", "params": []}))
        answers = [json.loads(ws.recv()) for _ in range(2)]
    (answer,) = [a for a in answers if a.get("id") == 1]
    assert answer["error"]["code"] == -32001
    assert answer["error"]["data"]["errname"] == "ENOTAUTHENTICATED"


def test_an_api_without_the_login_method_is_named(rendered: Rendered, tmp_path: Path) -> None:
    """TrueNAS 27's current API has no auth.login_with_api_key; the rest then is refused."""
    with FakeTrueNAS(state_of("success"), login_removed=True) as nas, FakePushgateway() as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 1
    assert "no auth.login_with_api_key" in result.stderr
    assert "set settings.truenas.api_key_user" in result.stderr
    assert gateway.pushes == []


@pytest.mark.parametrize(
    ("case", "failing", "message"),
    [
        ("missing", "", f'no Cloud Sync task with the description "{CLOUDSYNC_DESCRIPTION}"'),
        (
            "success",
            "cloudsync.query",
            "cloudsync.query failed (-32001): Method call error: [EFAULT] the database is locked",
        ),
        ("failed", "core.get_jobs", "core.get_jobs failed (-32001)"),
    ],
)
def test_a_missing_task_or_a_failing_call_pushes_nothing(
    case: str, failing: str, message: str, rendered: Rendered, tmp_path: Path
) -> None:
    with FakeTrueNAS(state_of(case), failing=failing) as nas, FakePushgateway() as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 1
    assert message in result.stderr
    assert gateway.pushes == []


def test_a_wrong_accept_header_or_path_is_refused(rendered: Rendered, tmp_path: Path) -> None:
    with FakeTrueNAS(state_of("success"), bad_accept=True) as nas, FakePushgateway() as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url)
        assert result.returncode == 1
        assert "Sec-WebSocket-Accept does not match" in result.stderr
        wrong = nas.url.replace("/api/current", "/websocket")
        result = run_monitor(rendered.job, tmp_path, wrong, gateway.url)
        assert result.returncode == 1
        assert "upgrade was refused" in result.stderr and "404" in result.stderr
    assert nas.calls == [] and gateway.pushes == []


def test_a_failing_push_fails_the_run(rendered: Rendered, tmp_path: Path) -> None:
    with FakeTrueNAS(state_of("success")) as nas, FakePushgateway(status=500) as gateway:
        result = run_monitor(rendered.job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 1
    assert "HTTP 500" in result.stderr


# --------------------------------------------------------------------------------------------
# wss with a self-signed certificate
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    openssl = require_tool("openssl")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        capture_output=True,
        check=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("verify", ["false", "true"])
def test_wss_with_a_self_signed_certificate(
    verify: str, self_signed: ssl.SSLContext, rendered: Rendered, tmp_path: Path
) -> None:
    with FakeTrueNAS(state_of("success"), tls=self_signed) as nas, FakePushgateway() as gateway:
        assert nas.url.startswith("wss://")
        result = run_monitor(
            rendered.job, tmp_path, nas.url, gateway.url, TRUENAS_VERIFY_TLS=verify
        )
    if verify == "false":
        assert result.returncode == 0, result.stderr
        assert pushed(gateway) == EXPECTED["success"]
    else:
        assert result.returncode == 1
        assert "TLS certificate is not trusted" in result.stderr
        assert nas.calls == [] and gateway.pushes == []


# --------------------------------------------------------------------------------------------
# The REST API of older systems
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    catalog = load_catalog_text(catalog_text(api="https://nas.lan/api/v2.0"), "services.yaml")
    out = tmp_path_factory.mktemp("rest")
    render(catalog, out)
    job = load_job(out / STACK, "monitor")
    assert job.env["TRUENAS_PROTOCOL"] == "rest"
    return job


@pytest.mark.parametrize("case", ["success", "failed", "running", "never-run"])
def test_the_rest_fallback_pushes_the_same(case: str, rest_job: Job, tmp_path: Path) -> None:
    with FakeRest(state_of(case)) as nas, FakePushgateway() as gateway:
        result = run_monitor(rest_job, tmp_path, nas.url, gateway.url)
    assert result.returncode == 0, result.stderr
    assert pushed(gateway) == EXPECTED[case]
    path, raw, auth = nas.requests[0]
    assert (path, auth) == ("/api/v2.0/cloudsync", f"Bearer {KEY}")
    assert urllib.parse.parse_qs(raw) == {"description": [CLOUDSYNC_DESCRIPTION]}
    if case in ("failed", "running"):
        path, raw, _ = nas.requests[1]
        assert path == "/api/v2.0/core/get_jobs"
        assert rest_query(raw)[0] == [
            ["method", "=", "cloudsync.sync"],
            ["arguments.0", "=", TASK_ID],
            ["state", "=", "SUCCESS"],
        ]


def test_the_rest_fallback_ignores_the_keys_user(tmp_path: Path) -> None:
    """The REST API takes the key alone, as a Bearer token, whoever its user is."""
    catalog = load_catalog_text(
        catalog_text(api="https://nas.lan/api/v2.0", user=USER), "services.yaml"
    )
    render(catalog, tmp_path / "out")
    job = load_job(tmp_path / "out" / STACK, "monitor")
    assert job.env["TRUENAS_API_KEY_USER"] == USER
    with FakeRest(state_of("success")) as nas, FakePushgateway() as gateway:
        result = run_monitor(job, tmp_path / "run", nas.url, gateway.url)
    assert result.returncode == 0, result.stderr
    assert pushed(gateway) == EXPECTED["success"]
    assert {auth for _, _, auth in nas.requests} == {f"Bearer {KEY}"}


def test_the_rest_fallback_with_a_wrong_key_pushes_nothing(rest_job: Job, tmp_path: Path) -> None:
    with FakeRest(state_of("success")) as nas, FakePushgateway() as gateway:
        result = run_monitor(rest_job, tmp_path, nas.url, gateway.url, TRUENAS_API_KEY="2-bad")
    assert result.returncode == 1
    assert "TrueNAS refused the API key (HTTP 401" in result.stderr
    assert gateway.pushes == []


# --------------------------------------------------------------------------------------------
# The full sync's stale threshold
# --------------------------------------------------------------------------------------------

STALE = re.compile(r'time\(\) - offsite_sync_last_success_timestamp\{sync="(\w+)"\} > (\d+)')


def stale_thresholds(catalog: Catalog) -> dict[str, dt.timedelta]:
    found = {}
    for group in rule_groups(catalog):
        for alert in group.alerts:
            if alert.name == "OffsiteSyncStale" and (match := STALE.fullmatch(alert.expr)):
                found[match[1]] = dt.timedelta(seconds=int(match[2])) + alert.for_
    return found


def test_the_full_sync_threshold_adds_the_monitors_largest_gap() -> None:
    by_cloudsync = load_catalog_text(catalog_text(), "services.yaml")
    by_script = load_catalog_text(catalog_text(full_sync_by="script"), "services.yaml")
    settings = by_cloudsync.settings
    assert settings.offsite_full_sync is not None and settings.truenas is not None
    assert settings.offsite_incremental is not None
    gap = settings.truenas.monitor_schedule.max_gap()
    assert gap == dt.timedelta(hours=1)
    assert stale_thresholds(by_cloudsync) == {
        "incremental": alert_threshold(settings.offsite_incremental),
        "full": alert_threshold(settings.offsite_full_sync) + gap,
    }
    assert stale_thresholds(by_script)["full"] == alert_threshold(settings.offsite_full_sync)
    descriptions = {
        a.name: a.description
        for g in rule_groups(by_cloudsync)
        for a in g.alerts
        if a.labels.get("sync") == "full"
    }
    late = "The NAS monitor reports the Cloud Sync task's finish up to 1h late"
    assert late in descriptions["OffsiteSyncStale"]


def offsite_rule_files(out: Path) -> Iterator[Path]:
    for path in sorted((out / "prometheus" / "rules").glob("*.rules.yaml")):
        if "offsite_sync_last_success_timestamp" in path.read_text():
            yield path


def test_promtool_proves_the_threshold_and_catches_the_old_one(
    rendered: Rendered, tmp_path: Path
) -> None:
    """The generated promtool tests pass; with the threshold the full sync had before (no
    monitor gap), its own test fails."""
    promtool = require_tool("promtool")
    shutil.copytree(rendered.out / "prometheus", tmp_path / "prometheus")
    (rules,) = offsite_rule_files(tmp_path)
    test_file = rules.name.replace(".rules.yaml", ".test.yaml")
    tests = tmp_path / "prometheus" / "tests"

    def promtool_test() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [promtool, "test", "rules", test_file], cwd=tests, capture_output=True, text=True
        )

    result = promtool_test()
    assert result.returncode == 0, result.stdout + result.stderr
    text = rules.read_text()
    match = re.search(r'offsite_sync_last_success_timestamp\{sync="full"\} > (\d+)', text)
    assert match is not None
    shortened = int(match[1]) - 3600
    rules.write_text(text.replace(match[0], match[0].replace(match[1], str(shortened))))
    result = promtool_test()
    assert result.returncode != 0
    assert "OffsiteSyncStale" in result.stdout + result.stderr
