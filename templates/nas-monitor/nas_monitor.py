#!/usr/bin/env python3
"""The NAS monitor: reports TrueNAS's Cloud Sync task of the offsite full sync.

It asks the NAS's middleware for the task whose description is CLOUDSYNC_DESCRIPTION and
pushes what the offsite alerts read, to PUSHGATEWAY_URL/metrics/PUSHGATEWAY_GROUP with POST
(only the names pushed are replaced; the others keep their last value):

* offsite_sync_last_run_success: 1 when the task's last job is SUCCESS, 0 when it is FAILED
  or ABORTED; not pushed while a job is RUNNING or WAITING (the last outcome stands) nor
  when the task never ran (the never-succeeded alert is then right);
* offsite_sync_last_success_timestamp: when the last SUCCESS job finished, in seconds
  (from the task's job, else from core.get_jobs); not pushed when TrueNAS does not know;
* offsite_sync_running: 1 while the task's job is RUNNING, else 0.

TrueNAS tells the amount copied only as rclone's rounded progress text, so no byte or file
counts are pushed.

TRUENAS_PROTOCOL "jsonrpc": JSON-RPC 2.0 over a WebSocket (RFC 6455) at TRUENAS_URL
(wss://<nas>/api/current), logged in with auth.login_ex (mechanism API_KEY_PLAIN, the key
and its user TRUENAS_API_KEY_USER; TrueNAS 25.04 and later, the only API-key login of the
current API from TrueNAS 27 on) or, without a user, auth.login_with_api_key. Only a SUCCESS
answer logs in: a wrong key or user, an expired key, a user without API access or a demand
for a one-time password stop the run. "rest": the REST API of systems before 25.04
(https://<nas>/api/v2.0), with "Authorization: Bearer <key>" (no user needed). Dates
come as {"$date": <milliseconds since the epoch>} either way. TRUENAS_VERIFY_TLS "false"
skips the certificate check (a self-signed NAS). Exit 0 after a push; 1 when the API, the
task or the push fails, with a message on stderr and nothing pushed.

Python's standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import NoReturn

TIMEOUT = float(os.environ.get("TRUENAS_TIMEOUT", "30"))
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
#: A message larger than this is refused (a cloudsync.query answer is a few kilobytes).
MAX_MESSAGE = 64 * 1024 * 1024
#: JSON-RPC's "Method not found".
METHOD_NOT_FOUND = -32601


class MonitorError(Exception):
    """Anything that stops the monitor before it pushes: the message says what and where."""


# ---------------------------------------------------------------------------------------
# WebSocket (RFC 6455), client side
# ---------------------------------------------------------------------------------------


class WebSocket:
    """One client connection: the opening handshake, masked frames out, messages in."""

    def __init__(self, url: str, verify: bool) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise MonitorError(f"{url}: not a ws:// or wss:// URL")
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        try:
            self.sock = _tls(raw, host, verify) if secure else raw
        except BaseException:
            raw.close()
            raise
        self.buffer = b""
        self.closed = False
        default_port = port == (443 if secure else 80)
        authority = host if ":" not in host else f"[{host}]"
        self._handshake(authority if default_port else f"{authority}:{port}", target)

    def _handshake(self, authority: str, target: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {target} HTTP/1.1\r\n"
            f"Host: {authority}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self.sock.sendall(request.encode("ascii"))
        head = self._read_until(b"\r\n\r\n", limit=65536)
        lines = head.decode("iso-8859-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "101":
            raise MonitorError(f"the WebSocket upgrade was refused: {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in tokens:
            raise MonitorError("the server's 101 answer is not a WebSocket upgrade")
        digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
        if headers.get("sec-websocket-accept") != base64.b64encode(digest).decode("ascii"):
            raise MonitorError("the server's Sec-WebSocket-Accept does not match the key sent")
        # Neither was asked for: a server that answers with one breaks the protocol.
        for name in ("sec-websocket-extensions", "sec-websocket-protocol"):
            if headers.get(name):
                raise MonitorError(f"the server chose {name} {headers[name]!r}, never offered")

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise MonitorError("the server's handshake answer is too long")
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MonitorError("the server closed the connection")
        self.buffer += chunk

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """One final frame, masked as a client's must be."""
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + _xor(payload, mask))

    def read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            self._fail(1002, "a frame with RSV bits set, no extension was agreed")
        if second & 0x80:
            self._fail(1002, "a masked frame from the server")
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
            if length >> 63:
                self._fail(1002, "a frame length with its most significant bit set")
        if opcode >= 0x8 and (not fin or length > 125):
            self._fail(1002, "a fragmented or oversized control frame")
        if length > MAX_MESSAGE:
            self._fail(1009, f"a frame of {length} bytes")
        return fin, opcode, self._read_exact(length)

    def receive(self) -> str:
        """The next text message, joined from its fragments; pings answered on the way."""
        fragments: list[bytes] = []
        kind: int | None = None
        while True:
            fin, opcode, payload = self.read_frame()
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self._closed_by_server(payload)
            if opcode == OP_CONTINUATION:
                if kind is None:
                    self._fail(1002, "a continuation frame outside a message")
            elif opcode in (OP_TEXT, OP_BINARY):
                if kind is not None:
                    self._fail(1002, "a new message inside a fragmented one")
                kind = opcode
            else:
                self._fail(1002, f"unknown opcode {opcode:#x}")
            fragments.append(payload)
            if sum(map(len, fragments)) > MAX_MESSAGE:
                self._fail(1009, "a message too large")
            if fin:
                break
        data = b"".join(fragments)
        if kind == OP_BINARY:
            self._fail(1003, "a binary message; the API speaks JSON text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(1007, "a text message that is not UTF-8")

    def _closed_by_server(self, payload: bytes) -> NoReturn:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        reason = payload[2:].decode("utf-8", "replace")
        if not self.closed:
            self.send_frame(OP_CLOSE, payload[:2])
            self.closed = True
        self.sock.close()
        raise MonitorError(f"the server closed the WebSocket: {code} {reason}".rstrip())

    def _fail(self, code: int, what: str) -> NoReturn:
        self.close(code)  # sends the close frame when it can; never raises
        raise MonitorError(f"WebSocket protocol error: {what}")

    def close(self, code: int = 1000) -> None:
        """Send a close frame, wait for the server's (briefly), and end the connection."""
        if self.closed:
            return
        self.closed = True
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code))
            self.sock.settimeout(min(TIMEOUT, 5.0))
            while True:
                _, opcode, _ = self.read_frame()
                if opcode == OP_CLOSE:
                    break
        except (OSError, MonitorError):
            pass
        finally:
            self.sock.close()


def _xor(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls(raw: socket.socket, host: str, verify: bool) -> ssl.SSLSocket:
    try:
        return _tls_context(verify).wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raise MonitorError(
            f"the NAS's TLS certificate is not trusted ({exc.verify_message}); "
            "settings.truenas.verify_tls: false accepts a self-signed one"
        ) from None


# ---------------------------------------------------------------------------------------
# The middleware's APIs
# ---------------------------------------------------------------------------------------


class JsonRpc:
    """JSON-RPC 2.0 calls over one WebSocket; notifications in between are skipped."""

    def __init__(self, url: str, verify: bool) -> None:
        self.url = url
        self.ws = WebSocket(url, verify)
        self.next_id = 0

    def call(self, method: str, params: list[object]) -> object:
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.ws.send_frame(OP_TEXT, json.dumps(request).encode("utf-8"))
        while True:
            try:
                message = json.loads(self.ws.receive())
            except ValueError as exc:
                raise MonitorError(f"{method}: the answer is not JSON: {exc}") from None
            if not isinstance(message, dict):
                continue
            # An error without an id answers a request the server could not read.
            unread = message.get("id") is None and "error" in message
            if message.get("id") != self.next_id and not unread:
                continue  # a notification (collection_update ...) or a stray answer
            if "error" in message:
                raise ApiError(method, message["error"])
            if "result" not in message:
                raise MonitorError(f"{method}: an answer with neither result nor error")
            return message["result"]

    def login(self, key: str, user: str) -> None:
        """auth.login_ex as the key's user when TRUENAS_API_KEY_USER names one, else
        auth.login_with_api_key (which TrueNAS 27 removed from its current API)."""
        if user:
            self.login_ex(key, user)
        else:
            self.login_with_api_key(key)

    def login_with_api_key(self, key: str) -> None:
        try:
            answer = self.call("auth.login_with_api_key", [key])
        except ApiError as exc:
            if exc.code == METHOD_NOT_FOUND:
                raise MonitorError(
                    f"{self.url} has no auth.login_with_api_key (TrueNAS 27 removed it from "
                    "its current API): set settings.truenas.api_key_user to the key's user "
                    "(the monitor then logs in with auth.login_ex)"
                ) from None
            raise
        if answer is not True:
            raise MonitorError(
                f"TrueNAS refused the API key (auth.login_with_api_key answered {answer!r}): "
                "check the Secret and that the key is not revoked or expired"
            )

    def login_ex(self, key: str, user: str) -> None:
        """The API_KEY_PLAIN mechanism: the key and its user, in one step. Only SUCCESS
        logs in; every other response_type stops the run, named."""
        login_data = {
            "mechanism": "API_KEY_PLAIN",
            "username": user,
            "api_key": key,
            "login_options": {"user_info": False},
        }
        try:
            answer = self.call("auth.login_ex", [login_data])
        except ApiError as exc:
            if exc.code == METHOD_NOT_FOUND:
                raise MonitorError(
                    f"{self.url} has no auth.login_ex (TrueNAS before 25.04): leave "
                    "settings.truenas.api_key_user unset there"
                ) from None
            raise
        kind = answer.get("response_type") if isinstance(answer, dict) else None
        if kind == "SUCCESS":
            return
        said = f"auth.login_ex answered {kind}"
        if kind == "AUTH_ERR":
            raise MonitorError(
                f'TrueNAS refused the API key for the user "{user}" ({said}): check the Secret, '
                "that the key belongs to settings.truenas.api_key_user and is not revoked"
            )
        if kind == "EXPIRED":
            raise MonitorError(
                f'the API key of the user "{user}" is expired ({said}), or TrueNAS revoked it '
                "for being sent over an insecure transport: create a new key"
            )
        if kind == "DENIED":
            raise MonitorError(
                f'the user "{user}" has no API access ({said}): give the user a role that allows it'
            )
        if kind == "OTP_REQUIRED":
            raise MonitorError(
                f'TrueNAS asks for a one-time password for the user "{user}" ({said}): an API '
                "key login must not need one, and the monitor sends none"
            )
        if kind == "REDIRECT":
            urls = answer.get("urls") if isinstance(answer, dict) else None
            raise MonitorError(
                f"{self.url} is the standby controller ({said}, to {urls!r}): point "
                "settings.truenas.api at the active one"
            )
        raise MonitorError(
            f'auth.login_ex for the user "{user}" answered {answer!r}, not SUCCESS: '
            "the monitor knows no such response"
        )

    def tasks(self, description: str) -> list[object]:
        filters = [["description", "=", description]]
        return _list("cloudsync.query", self.call("cloudsync.query", [filters]))

    def last_success(self, task_id: int) -> list[object]:
        filters = [
            ["method", "=", "cloudsync.sync"],
            ["arguments.0", "=", task_id],
            ["state", "=", "SUCCESS"],
        ]
        options = {"order_by": ["-id"], "limit": 1}
        return _list("core.get_jobs", self.call("core.get_jobs", [filters, options]))

    def close(self) -> None:
        self.ws.close()


class ApiError(MonitorError):
    """A JSON-RPC error object: code, message and TrueNAS's own data (errname, reason)."""

    def __init__(self, method: str, error: object) -> None:
        error = error if isinstance(error, dict) else {"message": repr(error)}
        self.code = error.get("code")
        raw = error.get("data")
        data: dict[str, object] = raw if isinstance(raw, dict) else {}
        detail = data.get("reason") or data.get("errname") or ""
        text = f"{error.get('message')}" + (f": {detail}" if detail else "")
        super().__init__(f"{method} failed ({self.code}): {text}")


class Rest:
    """The REST API (/api/v2.0) of older systems: GET with query-filters in the query string
    (``field=value`` is an equality, numbers are read as numbers)."""

    def __init__(self, url: str, key: str, verify: bool) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.context = _tls_context(verify) if url.startswith("https:") else None

    def get(self, path: str, query: dict[str, object]) -> object:
        url = f"{self.url}/{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.key}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace").strip()[:500]
            if exc.code == 401:
                raise MonitorError(f"TrueNAS refused the API key (HTTP 401 {text})") from None
            raise MonitorError(f"GET {self.url}/{path}: HTTP {exc.code} {text}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise MonitorError(
                    f"the NAS's TLS certificate is not trusted ({reason.verify_message}); "
                    "settings.truenas.verify_tls: false accepts a self-signed one"
                ) from None
            raise MonitorError(f"GET {self.url}/{path}: {reason}") from None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise MonitorError(f"GET {self.url}/{path}: the answer is not JSON: {exc}") from None

    def tasks(self, description: str) -> list[object]:
        return _list("cloudsync", self.get("cloudsync", {"description": description}))

    def last_success(self, task_id: int) -> list[object]:
        query = {"method": "cloudsync.sync", "arguments.0": task_id, "state": "SUCCESS"}
        jobs = _list("core/get_jobs", self.get("core/get_jobs", query))
        # The newest first, as the JSON-RPC call orders them.
        return sorted(jobs, key=lambda j: (j.get("id") or 0) if isinstance(j, dict) else 0)[::-1]

    def close(self) -> None:
        pass


def _list(what: str, value: object) -> list[object]:
    if not isinstance(value, list):
        raise MonitorError(f"{what}: expected a list, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------
# From the task to the metrics
# ---------------------------------------------------------------------------------------


def seconds(value: object) -> float | None:
    """A middleware datetime ({"$date": milliseconds}) in seconds; None when absent."""
    if isinstance(value, dict) and isinstance(value.get("$date"), int | float):
        return float(value["$date"]) / 1000
    if value is not None:
        print(f"nas-monitor: ignoring a date in an unknown form: {value!r}", file=sys.stderr)
    return None


def find_task(tasks: list[object], description: str) -> dict[str, object]:
    found = [t for t in tasks if isinstance(t, dict) and t.get("description") == description]
    if not found:
        raise MonitorError(
            f'no Cloud Sync task with the description "{description}" on the NAS: create it '
            "from the generated task definition (or fix its description)"
        )
    if len(found) > 1:
        ids = ", ".join(str(t.get("id")) for t in found)
        raise MonitorError(f'{len(found)} Cloud Sync tasks are called "{description}" ({ids})')
    return found[0]


def metrics(task: dict[str, object], api: JsonRpc | Rest) -> dict[str, float]:
    """What to push for the task, asking for the last success when its last job is not one."""
    job = task.get("job")
    if job is None:
        return {"offsite_sync_running": 0}
    if not isinstance(job, dict):
        raise MonitorError(f"cloudsync task {task.get('id')}: a job that is not an object")
    state = job.get("state")
    values: dict[str, float] = {"offsite_sync_running": 1 if state == "RUNNING" else 0}
    if state == "SUCCESS":
        values["offsite_sync_last_run_success"] = 1
        finished = seconds(job.get("time_finished"))
    elif state in ("FAILED", "ABORTED", "RUNNING", "WAITING"):
        if state in ("FAILED", "ABORTED"):
            values["offsite_sync_last_run_success"] = 0
            print(f"nas-monitor: the last run {state}: {job.get('error')}", file=sys.stderr)
        task_id = task.get("id")
        if not isinstance(task_id, int):
            raise MonitorError(f"the Cloud Sync task has no numeric id: {task_id!r}")
        earlier = [j for j in api.last_success(task_id) if isinstance(j, dict)]
        finished = seconds(earlier[0].get("time_finished")) if earlier else None
    else:
        raise MonitorError(f"cloudsync task {task.get('id')}: unknown job state {state!r}")
    if finished is not None:
        values["offsite_sync_last_success_timestamp"] = finished
    return values


def exposition(values: dict[str, float]) -> str:
    lines = []
    for name in sorted(values):
        lines += [f"# TYPE {name} gauge", f"{name} {values[name]:.17g}"]
    return "\n".join(lines) + "\n"


def push(values: dict[str, float]) -> None:
    base = os.environ["PUSHGATEWAY_URL"].rstrip("/")
    group = os.environ.get("PUSHGATEWAY_GROUP", "job/nas-monitor/sync/full")
    url = f"{base}/metrics/{group}"
    request = urllib.request.Request(
        url,
        data=exposition(values).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        raise MonitorError(f"POST {url}: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise MonitorError(f"POST {url}: {exc.reason}") from None


def connect(url: str, protocol: str, key: str, user: str, verify: bool) -> JsonRpc | Rest:
    if protocol == "rest":
        return Rest(url, key, verify)
    if protocol != "jsonrpc":
        raise MonitorError(f"TRUENAS_PROTOCOL {protocol!r}: expected jsonrpc or rest")
    api = JsonRpc(url, verify)
    try:
        api.login(key, user)
    except BaseException:
        api.close()
        raise
    return api


def run() -> dict[str, float]:
    env = os.environ
    missing = [n for n in ("TRUENAS_URL", "TRUENAS_API_KEY", "PUSHGATEWAY_URL") if not env.get(n)]
    if missing:
        raise MonitorError(f"missing environment: {', '.join(missing)}")
    verify = env.get("TRUENAS_VERIFY_TLS", "true").lower() != "false"
    description = env.get("CLOUDSYNC_DESCRIPTION", "")
    api = connect(
        env["TRUENAS_URL"],
        env.get("TRUENAS_PROTOCOL", "jsonrpc"),
        env["TRUENAS_API_KEY"].strip(),
        env.get("TRUENAS_API_KEY_USER", "").strip(),
        verify,
    )
    try:
        values = metrics(find_task(api.tasks(description), description), api)
    finally:
        api.close()
    push(values)
    return values


def main() -> int:
    try:
        values = run()
    except MonitorError as exc:
        print(f"nas-monitor: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"nas-monitor: cannot reach {os.environ.get('TRUENAS_URL')}: {exc}", file=sys.stderr)
        return 1
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))
    print(f"nas-monitor: pushed {shown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
