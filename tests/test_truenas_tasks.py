"""The NAS's tasks, applied for real by the generated script against a stand-in ``midclt``.

The stand-in keeps the middleware's state in a JSON file and models the methods the way the
TrueNAS middleware defines them (``src/middlewared/middlewared/api/v27_0_0/`` of
truenas/middleware: ``pool_snapshottask.py``, ``cronjob.py``, ``cloud_sync.py``, ``cloud.py``,
``common.py``; the plugins' checks in ``plugins/snapshot/crud.py``, ``plugins/cron/crud.py``,
``plugins/cloud/crud.py``; zettarepl's naming-schema rules) and the way ``midclt call``
(truenas/api_client) passes them: each argument parsed as JSON when it can be, a result
printed as JSON (a number or string as is), an error on stderr with exit status 1.

- Arguments are strict pydantic models (``extra="forbid"``, ``strict=True``, strings of at most
  1024 characters): an unknown field, a wrong type or a value outside a ``Literal`` is an error.
- ``create`` fills in the model's defaults and assigns the next id; ``update`` replaces the
  top-level fields it is given (``BaseModel.updated``) and validates the result again.
- ``query`` takes query-filters (``[name, op, value]``, ``["OR", [...]]``, dotted names into
  nested objects) and query-options (``count``, ``get``, ``limit``, ``offset``, ``select``,
  ``order_by``); its results are shaped like the middleware's: a snapshot task with
  ``vmware_sync`` and ``state``, a Cloud Sync task with its credential as an object.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SMALL_CATALOG, require_tool

from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.catalog.model import Retention, parse_retention
from homeops_gen.errors import PlanError
from homeops_gen.generators import offsite_sync
from homeops_gen.generators.truenas_tasks import lifetime
from homeops_gen.registry import registered_generators
from homeops_gen.render import HEADER

STAND_IN = textwrap.dedent(
    r"""
    import json, os, re, sys

    STATE, LOG = os.environ["MIDCLT_STATE"], os.environ["MIDCLT_LOG"]
    REQUIRED = object()


    class Invalid(Exception):
        pass


    def string(value, path, limit=1024):
        if type(value) is not str:
            raise Invalid(f"{path}: Input should be a valid string")
        if limit is not None and len(value) > limit:
            raise Invalid(f"{path}: String should have at most {limit} characters")
        return value


    def non_empty(value, path):
        if not string(value, path):
            raise Invalid(f"{path}: String should have at least 1 character")
        return value


    def long_string(value, path):
        return string(value, path, None)


    def boolean(value, path):
        if type(value) is not bool:
            raise Invalid(f"{path}: Input should be a valid boolean")
        return value


    def integer(value, path):
        if type(value) is not int:
            raise Invalid(f"{path}: Input should be a valid integer")
        return value


    def positive_or_null(value, path):
        if value is not None and (integer(value, path) < 1):
            raise Invalid(f"{path}: Input should be greater than 0")
        return value


    def literal(*choices):
        def check(value, path):
            if type(value) is not str or value not in choices:
                raise Invalid(f"{path}: Input should be " + " or ".join(map(repr, choices)))
            return value
        return check


    def list_of(item):
        def check(value, path):
            if type(value) is not list:
                raise Invalid(f"{path}: Input should be a valid list")
            return [item(v, f"{path}.{i}") for i, v in enumerate(value)]
        return check


    CRON_PART = r"(\*|[0-9]+(-[0-9]+)?|[a-zA-Z]{3})(/[0-9]+)?"
    CRON_FIELD = re.compile(f"^{CRON_PART}(,{CRON_PART})*$")


    def cron_field(value, path):
        string(value, path)
        # croniter_for_schedule: only a range or `*` before `/`
        for part in value.split(","):
            if "/" in part and not re.match(r"^(\*|[0-9]+-[0-9]+)/([0-9]+)$", part):
                raise Invalid(f"{path}: Only range or `*` are allowed before `/`")
        if not CRON_FIELD.match(value):
            raise Invalid(f"{path}: Please ensure fields match cron syntax")
        return value


    def time_string(value, path):
        string(value, path)
        try:
            hours, minutes = value.split(":")
            if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
                raise ValueError
        except ValueError:
            raise Invalid(f'{path}: Time should be in 24 hour format like "18:00"') from None
        return ":".join(d.rjust(2, "0") for d in (hours, minutes))


    def naming_schema(value, path):
        # zettarepl.snapshot.name.validate_snapshot_naming_schema
        string(value, path)
        if "%%" in value:
            raise Invalid(f"{path}: % is not an allowed character in ZFS snapshot name")
        if re.findall("[^0-9A-Za-z %_.:-]", value):
            raise Invalid(f"{path}: not allowed characters in ZFS snapshot name")
        if "%s" in value:
            if re.search("%[^s]", value):
                raise Invalid(f"{path}: No other placeholder can be used with %s in naming schema")
        else:
            for s in ("%Y", "%m", "%d", "%H", "%M"):
                if s not in value:
                    raise Invalid(f"{path}: {s} must be present in snapshot naming schema")
        return value


    def model(fields):
        def check(value, path, partial=False):
            if type(value) is not dict:
                raise Invalid(f"{path}: Input should be a valid dictionary")
            for key in value:
                if key not in fields:
                    raise Invalid(f"{path}.{key}: Extra inputs are not permitted")
            result = {}
            for key, (validate, default) in fields.items():
                if key in value:
                    result[key] = validate(value[key], f"{path}.{key}")
                elif partial:
                    continue
                elif default is REQUIRED:
                    raise Invalid(f"{path}.{key}: Field required")
                else:
                    result[key] = json.loads(json.dumps(default))
            return result
        return check


    def cron(minute_default, window=False):
        fields = {
            "minute": (cron_field, minute_default),
            "hour": (cron_field, "*"),
            "dom": (cron_field, "*"),
            "month": (cron_field, "*"),
            "dow": (cron_field, "*"),
        }
        if window:
            fields.update(begin=(time_string, "00:00"), end=(time_string, "23:59"))
        check = model(fields)
        return check, check({}, "")


    SNAPSHOT_CRON, SNAPSHOT_CRON_DEFAULT = cron("00", window=True)
    SNAPSHOT_TASK = {
        "dataset": (string, REQUIRED),
        "recursive": (boolean, False),
        "lifetime_value": (integer, 2),
        "lifetime_unit": (literal("HOUR", "DAY", "WEEK", "MONTH", "YEAR"), "WEEK"),
        "enabled": (boolean, True),
        "exclude": (list_of(string), []),
        "naming_schema": (naming_schema, "auto-%Y-%m-%d_%H-%M"),
        "allow_empty": (boolean, True),
        "schedule": (SNAPSHOT_CRON, SNAPSHOT_CRON_DEFAULT),
    }
    CRONJOB_CRON, CRONJOB_CRON_DEFAULT = cron("00")
    CRONJOB = {
        "enabled": (boolean, True),
        "stderr": (boolean, False),
        "stdout": (boolean, True),
        "schedule": (CRONJOB_CRON, CRONJOB_CRON_DEFAULT),
        "command": (string, REQUIRED),
        "description": (string, ""),
        "user": (string, REQUIRED),
    }
    CLOUD_CRON, CLOUD_CRON_DEFAULT = cron("00")
    ATTRIBUTES = {  # CloudTaskAttributes (ForUpdateMetaclass: every field optional)
        "bucket": (non_empty, REQUIRED),
        "folder": (string, REQUIRED),
        "fast_list": (boolean, False),
        "region": (string, ""),
        "storage_class": (literal("", "STANDARD", "STANDARD_IA", "GLACIER"), ""),
    }
    #: plugins/cloud/crud.py task_attributes: bucket if the remote has buckets, folder,
    #: fast_list if it supports it, then the remote's own.
    PROVIDER_ATTRIBUTES = {"SFTP": ["folder"], "S3": ["bucket", "folder", "fast_list", "region"]}
    BWLIMIT = model({"time": (time_string, REQUIRED), "bandwidth": (positive_or_null, REQUIRED)})
    CLOUDSYNC = {
        "description": (string, ""),
        "path": (string, REQUIRED),
        "credentials": (integer, REQUIRED),
        "attributes": (model({k: (v, None) for k, (v, _) in ATTRIBUTES.items()}), REQUIRED),
        "schedule": (CLOUD_CRON, CLOUD_CRON_DEFAULT),
        "pre_script": (long_string, ""),
        "post_script": (long_string, ""),
        "snapshot": (boolean, False),
        "include": (list_of(non_empty), []),
        "exclude": (list_of(non_empty), []),
        "args": (long_string, ""),
        "enabled": (boolean, True),
        "bwlimit": (list_of(BWLIMIT), []),
        "transfers": (positive_or_null, None),
        "direction": (literal("PUSH", "PULL"), REQUIRED),
        "transfer_mode": (literal("SYNC", "COPY", "MOVE"), REQUIRED),
        "encryption": (boolean, False),
        "filename_encryption": (boolean, False),
        "encryption_password": (string, ""),
        "encryption_salt": (string, ""),
        "create_empty_src_dirs": (boolean, False),
        "follow_symlinks": (boolean, False),
    }


    def attributes_without_defaults(check):
        def run(value, path, partial=False):
            return check(value, path, partial=True)
        return run


    CLOUDSYNC["attributes"] = (attributes_without_defaults(CLOUDSYNC["attributes"][0]), REQUIRED)
    SERVICES = {
        "pool.snapshottask": (SNAPSHOT_TASK, {"fixate_removal_date": (boolean, REQUIRED)}),
        "cronjob": (CRONJOB, {}),
        "cloudsync": (CLOUDSYNC, {}),
    }


    def credential_of(state, id_):
        return next((c for c in state["cloudsync.credentials"] if c["id"] == id_), None)


    def check_snapshot_task(task, state, path):
        if task["dataset"] not in state["datasets"]:
            raise Invalid(f"{path}.dataset: Dataset not found")
        if not task["recursive"] and task["exclude"]:
            raise Invalid(
                f"{path}.exclude: Excluding datasets is not necessary for non-recursive "
                "periodic snapshot tasks"
            )
        for i, child in enumerate(task["exclude"]):
            if not child.startswith(task["dataset"] + "/"):
                raise Invalid(
                    f"{path}.exclude.{i}: Excluded dataset should be a child or other "
                    "descendant of the selected dataset"
                )


    def check_cronjob(task, state, path):
        if " " in task["user"]:
            raise Invalid(f"{path}.user: Usernames cannot have spaces")
        if task["user"] not in state["users"]:
            raise Invalid(f"{path}.user: Specified user does not exist")
        if not task["command"]:
            raise Invalid(f"{path}.command: Please specify a command for cronjob task.")


    def check_cloudsync(task, state, path):
        credential = credential_of(state, task["credentials"])
        if credential is None:
            raise Invalid(f"{path}.credentials: Invalid credentials")
        allowed = PROVIDER_ATTRIBUTES[credential["provider"]["type"]]
        for key in task["attributes"]:
            if key not in allowed:
                raise Invalid(f"{path}.attributes.{key}: Extra inputs are not permitted")
        for key in ("bucket", "folder"):
            if key in allowed and key not in task["attributes"]:
                raise Invalid(f"{path}.attributes.{key}: Field required")
        if not task["path"].startswith("/mnt/") or task["path"] not in state["paths"]:
            raise Invalid(f"{path}.path: This path does not exist.")
        if task["snapshot"] and task["direction"] != "PUSH":
            raise Invalid(f"{path}.snapshot: This option can only be enabled for PUSH tasks")


    CHECKS = {
        "pool.snapshottask": check_snapshot_task,
        "cronjob": check_cronjob,
        "cloudsync": check_cloudsync,
    }


    def shown(service, task, state):
        task = dict(task)
        if service == "pool.snapshottask":
            task.update(vmware_sync=False, state={"state": "PENDING"})
        if service == "cloudsync":
            task["credentials"] = credential_of(state, task["credentials"])
            task.update(dataset=task["path"].removeprefix("/mnt/"), relative_path="")
            task.update(job=None, locked=False)
        return task


    def lookup(item, name):
        for part in name.split("."):
            if not isinstance(item, dict) or part not in item:
                return None
            item = item[part]
        return item


    def matches(item, flt):
        if type(flt) is not list:
            raise Invalid("filters: Invalid filter")
        if len(flt) == 2 and flt[0] == "OR":
            # each alternative is one filter or a list of filters that must all match
            alternatives = [g if isinstance(g[0], list) else [g] for g in flt[1]]
            return any(all(matches(item, f) for f in group) for group in alternatives)
        if len(flt) != 3 or type(flt[0]) is not str:
            raise Invalid(f"filters: Invalid filter {flt!r}")
        name, op, want = flt
        have = lookup(item, name)
        if op == "=":
            return have == want
        if op == "!=":
            return have != want
        if op == "in":
            return have in want
        if op == "nin":
            return have not in want
        if op == "^":
            return isinstance(have, str) and have.startswith(want)
        if op == "$":
            return isinstance(have, str) and have.endswith(want)
        raise Invalid(f"filters: Invalid operation: {op}")


    QUERY_OPTIONS = {
        "extra", "order_by", "select", "count", "get", "offset", "limit", "force_sql_filters",
    }


    def query(items, filters=None, options=None, *extra):
        if extra:
            raise Invalid("Too many arguments")
        filters = [] if filters is None else filters
        options = {} if options is None else options
        if type(filters) is not list:
            raise Invalid("filters: Input should be a valid list")
        if type(options) is not dict or set(options) - QUERY_OPTIONS:
            raise Invalid("options: Extra inputs are not permitted")
        found = [i for i in items if all(matches(i, f) for f in filters)]
        for key in reversed(options.get("order_by", [])):
            found.sort(key=lambda i: lookup(i, key.lstrip("-")), reverse=key.startswith("-"))
        offset, limit = options.get("offset", 0), options.get("limit", 0)
        found = found[offset:offset + limit] if limit else found[offset:]
        if options.get("select"):
            found = [{k: i.get(k) for k in options["select"]} for i in found]
        if options.get("count"):
            return len(found)
        if options.get("get"):
            if not found:
                raise Invalid("MatchNotFound")
            return found[0]
        return found


    def call(state, method, args):
        if method == "system.general.config":
            return {"id": 1, "timezone": state["timezone"], "language": "en"}
        service, _, verb = method.rpartition(".")
        if verb == "query" and (service in SERVICES or service == "cloudsync.credentials"):
            items = state[service]
            if service in SERVICES:
                items = [shown(service, t, state) for t in items]
            return query(items, *args)
        if service not in SERVICES or verb not in ("create", "update"):
            raise Invalid(f"[ENOMETHOD] Method {method!r} not found")
        fields, update_only = SERVICES[service]
        if verb == "create":
            if len(args) != 1:
                raise Invalid(f"{method}: expected 1 argument, got {len(args)}")
            task = model(fields)(args[0], f"{method}.data")
            CHECKS[service](task, state, f"{method}.data")
            state["next_id"][service] = state["next_id"].get(service, 0) + 1
            task = {"id": state["next_id"][service], **task}
            state[service].append(task)
            return shown(service, task, state)
        if len(args) != 2:
            raise Invalid(f"{method}: expected 2 arguments, got {len(args)}")
        if type(args[0]) is not int:
            raise Invalid(f"{method}.id: Input should be a valid integer")
        old = next((t for t in state[service] if t["id"] == args[0]), None)
        if old is None:
            raise Invalid(f"[ENOENT] {service} {args[0]} does not exist")
        change = model({**fields, **update_only})(args[1], f"{method}.data", partial=True)
        change.pop("fixate_removal_date", None)
        new = {**old, **change}
        CHECKS[service](new, state, f"{method}.data")
        old.update(new)
        return shown(service, old, state)


    def parse(arg):
        try:
            return json.loads(arg)
        except Exception:
            return arg


    def main(argv):
        if len(argv) < 2 or argv[0] != "call":
            print("usage: midclt call METHOD [ARG ...]", file=sys.stderr)
            return 2
        method, args = argv[1], [parse(a) for a in argv[2:]]
        with open(LOG, "a") as log:
            log.write(json.dumps({"method": method, "args": args}) + "\n")
        with open(STATE) as f:
            state = json.load(f)
        try:
            result = call(state, method, args)
        except Invalid as exc:
            print(f"[EINVAL] {exc}", file=sys.stderr)
            return 1
        with open(STATE, "w") as f:
            json.dump(state, f)
        print(result if isinstance(result, (int, str)) else json.dumps(result))
        return 0


    sys.exit(main(sys.argv[1:]))
    """
)

#: The catalog of the tests: SMALL_CATALOG (an iSCSI and an excluded NFS service) with ZFS
#: tasks, an offsite sync whose full sync is a Cloud Sync task, and the NAS's API.
NAS_SETTINGS = textwrap.indent(
    textwrap.dedent(
        """\
        truenas:
          api: wss://nas.lan/api/current
          api_key: {name: truenas-api-key, key: api-key}
        offsite:
          target: sftp://backup.lan/Backup/nas
          incremental: 6h
          full_sync: "0 9 * * 0"
          full_sync_by: cloudsync
          cloudsync_credential: offsite-sftp
          rclone_remote: offsite
          exclude:
            - {pattern: "*.log", reason: Regenerable}
        snapshots:
          zfs:
            - {pool: tank, naming: auto-%Y-%m-%d_%H-%M, cadence: "0 0 * * *", retention: 3w}
            - pool: tank
              dataset: tank/apps
              naming: hourly-%Y%m%d.%H%M
              cadence: "0 * * * *"
              retention: 36h
              exclude: [tank/apps/cache]
            - {pool: tank, naming: "--%Y%m%d%H%M", cadence: "30 0,12 * * *", retention: 24h,
               recursive: false}
        """
    ),
    "  ",
)
CATALOG = SMALL_CATALOG.replace("services:\n", NAS_SETTINGS + "services:\n", 1)
#: What each snapshot task must be on the NAS, read from the catalog above by hand:
#: (dataset, naming schema) -> (recursive, exclude, lifetime, cron fields).
SNAPSHOT_TASKS = {
    ("tank", "auto-%Y-%m-%d_%H-%M"): (True, [], (3, "WEEK"), ("0", "0", "*", "*", "*")),
    ("tank/apps", "hourly-%Y%m%d.%H%M"): (
        True,
        ["tank/apps/cache"],
        (36, "HOUR"),
        ("0", "*", "*", "*", "*"),
    ),
    ("tank", "--%Y%m%d%H%M"): (False, [], (1, "DAY"), ("30", "0,12", "*", "*", "*")),
}
CLOUDSYNC = "homeops_gen offsite full sync"
WRITES = (".create", ".update", ".delete")


def render(catalog_text: str) -> dict[str, bytes]:
    generators = [g for g in registered_generators() if g.name == "truenas-tasks"]
    return render_plan(build_plan(load_catalog_text(catalog_text, "services.yaml"), generators))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated files, in a folder whose name a careless script would split."""
    folder = tmp_path_factory.mktemp("truenas") / "out dir" / "truenas"
    folder.mkdir(parents=True)
    rendered = render(CATALOG)
    assert set(rendered) == {"truenas/tasks.json", "truenas/apply-truenas-tasks.sh"}
    for path, content in rendered.items():
        (folder / Path(path).name).write_bytes(content)
    return folder


def empty_nas() -> dict[str, Any]:
    return {
        "timezone": "Etc/UTC",
        "datasets": ["tank", "tank/apps", "tank/apps/cache", "tank/media"],
        "paths": ["/mnt/tank"],
        "users": ["root"],
        "cloudsync.credentials": [
            {"id": 1, "name": "photos-s3", "provider": {"type": "S3", "access_key_id": "k"}},
            {
                "id": 3,
                "name": "offsite-sftp",
                "provider": {"type": "SFTP", "host": "backup.lan", "port": 22, "user": "root"},
            },
        ],
        "pool.snapshottask": [],
        "cronjob": [],
        "cloudsync": [],
        "next_id": {},
    }


@dataclass
class Nas:
    """The stand-in's state file and call log, and the environment that finds it first."""

    state_file: Path
    log_file: Path
    env: dict[str, str]

    def load(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def writes(self) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["method"].endswith(WRITES)]

    def forget_calls(self) -> None:
        self.log_file.unlink(missing_ok=True)

    def midclt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["midclt", "call", *args], env=self.env, capture_output=True, text=True, check=False
        )


@pytest.fixture
def nas(tmp_path: Path) -> Nas:
    jq = require_tool("jq")
    bash = require_tool("bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "midclt.py").write_text(STAND_IN, encoding="utf-8")
    program = bin_dir / "midclt"
    program.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "midclt.py"} "$@"\n')
    program.chmod(0o755)
    path = os.pathsep.join(
        dict.fromkeys(
            [str(bin_dir), str(Path(jq).parent), str(Path(bash).parent), "/usr/bin", "/bin"]
        )
    )
    env = {
        "PATH": path,
        "MIDCLT_STATE": str(tmp_path / "state.json"),
        "MIDCLT_LOG": str(tmp_path / "calls.log"),
    }
    found = Nas(tmp_path / "state.json", tmp_path / "calls.log", env)
    found.save(empty_nas())
    return found


def apply(out: Path, nas: Nas, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("bash"), str(out / "apply-truenas-tasks.sh"), *args],
        env=nas.env,
        capture_output=True,
        text=True,
        check=False,
    )


def ours(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    if kind == "pool.snapshottask":
        return [t for t in state[kind] if (t["dataset"], t["naming_schema"]) in SNAPSHOT_TASKS]
    return [t for t in state[kind] if t["description"].startswith("homeops_gen ")]


def expected_cron_jobs() -> list[tuple[str, str, str]]:
    """The offsite sync's (kind, cron, command) entries, from the sync generator itself."""
    return offsite_sync.sync_commands(load_catalog_text(CATALOG, "services.yaml"))


def applied(out: Path, nas: Nas) -> dict[str, Any]:
    result = apply(out, nas)
    assert result.returncode == 0, result.stderr
    return nas.load()


# --- the stand-in itself refuses what the middleware refuses ----------------------------------


@pytest.mark.parametrize(
    "method, payload, message",
    [
        ("pool.snapshottask.create", {"dataset": "tank", "color": "red"}, "Extra inputs"),
        ("pool.snapshottask.create", {"dataset": "tank", "lifetime_unit": "MIN"}, "Input should"),
        ("pool.snapshottask.create", {"dataset": "tank", "lifetime_value": "3"}, "valid integer"),
        ("pool.snapshottask.create", {"dataset": "nope"}, "Dataset not found"),
        ("pool.snapshottask.create", {"dataset": "tank", "naming_schema": "auto-%Y"}, "%m must"),
        ("cronjob.create", {"command": "true", "user": "root", "stdout": 1}, "valid boolean"),
        ("cronjob.create", {"command": "true"}, "user: Field required"),
        ("cloudsync.create", {"path": "/mnt/tank", "credentials": 3, "attributes": {"folder": "/"},
                              "direction": "UP", "transfer_mode": "SYNC"}, "Input should"),
        ("cloudsync.create", {"path": "/mnt/tank", "credentials": 3, "attributes": {"bucket": "b"},
                              "direction": "PUSH", "transfer_mode": "SYNC"}, "attributes.bucket"),
    ],
)  # fmt: skip
def test_the_stand_in_rejects_what_the_middleware_rejects(
    nas: Nas, method: str, payload: dict[str, Any], message: str
) -> None:
    result = nas.midclt(method, json.dumps(payload))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert nas.load() == empty_nas()


# --- the generator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("24h", (1, "DAY")),
        ("3w", (3, "WEEK")),
        ("36h", (36, "HOUR")),
        ("14d", (2, "WEEK")),
        ("48h", (2, "DAY")),
        ("1h", (1, "HOUR")),
    ],
)
def test_a_retention_period_becomes_the_largest_exact_unit(
    text: str, value: tuple[int, str]
) -> None:
    assert lifetime(parse_retention(text)) == value


@pytest.mark.parametrize(
    "retention, message",
    [
        (parse_retention("7 copies"), "not a count"),
        (Retention(period=dt.timedelta(minutes=90)), "whole number of hours"),
    ],
)
def test_a_retention_no_lifetime_can_say_is_refused(retention: Retention, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lifetime(retention)


def test_a_count_retention_fails_the_plan_at_its_task() -> None:
    text = CATALOG.replace("retention: 36h", "retention: 48 copies")
    with pytest.raises(PlanError, match=r"settings\.snapshots\.zfs\[1\]\.retention: .*not a count"):
        render(text)


def test_a_sync_command_cron_would_break_fails_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    def stub(catalog: object) -> list[tuple[str, str, str]]:
        return [("incremental", "0 * * * *", "/root/offsite-sync.sh --at %H")]

    monkeypatch.setattr(offsite_sync, "sync_commands", stub)
    with pytest.raises(PlanError, match="incremental sync's command"):
        render(CATALOG)


def test_no_nas_layer_no_tasks() -> None:
    assert not any(path.startswith("truenas/") for path in render(SMALL_CATALOG))


def test_the_tasks_file_is_stable_documented_json(out: Path) -> None:
    text = (out / "tasks.json").read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert render(CATALOG)["truenas/tasks.json"] == text.encode()
    document = json.loads(text)
    assert set(document) == {
        "comment",
        "format",
        "timezone",
        "pool.snapshottask",
        "cronjob",
        "cloudsync",
    }
    assert document["comment"] == HEADER
    for kind in ("pool.snapshottask", "cronjob", "cloudsync"):
        for entry in document[kind]:
            assert set(entry) == {"identity", "payload"}
            assert entry["identity"].items() <= entry["payload"].items()
    assert document["cloudsync"][0]["payload"]["credentials"] == "offsite-sftp"


# --- the apply script on the NAS ----------------------------------------------------------------


def test_the_first_apply_creates_every_task(out: Path, nas: Nas) -> None:
    result = apply(out, nas)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    jobs = expected_cron_jobs()
    assert len(lines) == len(SNAPSHOT_TASKS) + len(jobs) + 1
    assert all(line.startswith("created ") for line in lines), lines
    state = nas.load()
    snapshots = {(t["dataset"], t["naming_schema"]): t for t in state["pool.snapshottask"]}
    assert set(snapshots) == set(SNAPSHOT_TASKS)
    for key, (recursive, exclude, (value, unit), fields) in SNAPSHOT_TASKS.items():
        task = snapshots[key]
        assert (task["recursive"], task["exclude"]) == (recursive, exclude)
        assert (task["lifetime_value"], task["lifetime_unit"]) == (value, unit)
        schedule = task["schedule"]
        assert tuple(schedule[f] for f in ("minute", "hour", "dom", "month", "dow")) == fields
        assert (schedule["begin"], schedule["end"]) == ("00:00", "23:59")  # all day
        assert task["enabled"] and task["allow_empty"]
    assert "created pool.snapshottask dataset=tank naming_schema=--%Y%m%d%H%M" in lines
    cron = {t["description"]: t for t in state["cronjob"]}
    assert set(cron) == {f"homeops_gen offsite sync ({kind})" for kind, _, _ in jobs}
    for kind, expression, command in jobs:
        job = cron[f"homeops_gen offsite sync ({kind})"]
        assert (job["user"], job["command"], job["enabled"]) == ("root", command, True)
        fields = [job["schedule"][f] for f in ("minute", "hour", "dom", "month", "dow")]
        assert " ".join(fields) == expression
    [sync] = state["cloudsync"]
    assert sync["description"] == CLOUDSYNC
    assert (sync["credentials"], sync["path"]) == (3, "/mnt/tank")
    assert (sync["direction"], sync["transfer_mode"]) == ("PUSH", "SYNC")
    assert sync["attributes"] == {"folder": "/Backup/nas"}
    assert sync["exclude"] == ["/media/**", "*.log"]  # the excluded NFS service, the pattern
    assert [sync["schedule"][f] for f in ("minute", "hour", "dom", "month", "dow")] == [
        "0",
        "9",
        "*",
        "*",
        "0",
    ]


def test_a_second_apply_changes_nothing(out: Path, nas: Nas) -> None:
    before = applied(out, nas)
    nas.forget_calls()
    result = apply(out, nas)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("unchanged ") for line in result.stdout.splitlines())
    assert len(result.stdout.splitlines()) == len(SNAPSHOT_TASKS) + len(expected_cron_jobs()) + 1
    assert nas.writes() == [] and nas.calls()  # it asked, and wrote nothing
    assert nas.load() == before


def test_a_task_edited_on_the_nas_is_updated_back(out: Path, nas: Nas) -> None:
    state = applied(out, nas)
    [daily] = [t for t in state["pool.snapshottask"] if t["naming_schema"] == "auto-%Y-%m-%d_%H-%M"]
    daily.update(lifetime_value=5, lifetime_unit="DAY")
    [sync] = state["cloudsync"]
    sync["schedule"]["hour"] = "3"
    sync["transfers"] = 8  # a field the file does not set: the NAS's to choose
    nas.save(state)
    nas.forget_calls()
    result = apply(out, nas)
    assert result.returncode == 0, result.stderr
    updated = [line for line in result.stdout.splitlines() if line.startswith("updated ")]
    assert updated == [
        "updated pool.snapshottask dataset=tank naming_schema=auto-%Y-%m-%d_%H-%M "
        "(lifetime_unit,lifetime_value)",
        f"updated cloudsync description={CLOUDSYNC} (schedule)",
    ]
    writes = nas.writes()
    assert [(w["method"], w["args"][0]) for w in writes] == [
        ("pool.snapshottask.update", daily["id"]),
        ("cloudsync.update", sync["id"]),
    ]
    after = nas.load()
    [daily_after] = [t for t in after["pool.snapshottask"] if t["id"] == daily["id"]]
    assert (daily_after["lifetime_value"], daily_after["lifetime_unit"]) == (3, "WEEK")
    assert after["cloudsync"][0]["schedule"]["hour"] == "9"
    assert after["cloudsync"][0]["transfers"] == 8


def test_unrelated_tasks_are_left_alone(out: Path, nas: Nas) -> None:
    state = nas.load()
    state["pool.snapshottask"].append(
        {"id": 7, "dataset": "tank", "recursive": True, "lifetime_value": 2,
         "lifetime_unit": "WEEK", "enabled": True, "exclude": [],
         "naming_schema": "manual-%Y-%m-%d_%H-%M", "allow_empty": False,
         "schedule": {"minute": "15", "hour": "3", "dom": "*", "month": "*", "dow": "*",
                      "begin": "01:00", "end": "05:00"}}
    )  # fmt: skip
    state["cronjob"].append(
        {"id": 2, "enabled": True, "stderr": False, "stdout": True, "command": "zpool scrub tank",
         "description": "scrub", "user": "root",
         "schedule": {"minute": "0", "hour": "1", "dom": "1", "month": "*", "dow": "*"}}
    )  # fmt: skip
    state["cloudsync"].append(
        {**json.loads(json.dumps(empty_cloudsync())), "id": 4, "description": "photos"}
    )
    state["next_id"] = {"pool.snapshottask": 7, "cronjob": 2, "cloudsync": 4}
    nas.save(state)
    unrelated = {kind: [t for t in state[kind] if t not in ours(state, kind)] for kind in SERVICES}
    after = applied(out, nas)
    created = {"pool.snapshottask": len(SNAPSHOT_TASKS), "cronjob": len(expected_cron_jobs())}
    for kind, tasks in unrelated.items():
        assert tasks and all(task in after[kind] for task in tasks)  # byte for byte
        assert len(after[kind]) == len(tasks) + created.get(kind, 1)
    assert {w["method"].rpartition(".")[2] for w in nas.writes()} == {"create"}


SERVICES = ("pool.snapshottask", "cronjob", "cloudsync")


def empty_cloudsync() -> dict[str, Any]:
    return {
        "path": "/mnt/tank", "credentials": 1, "attributes": {"bucket": "photos", "folder": "/"},
        "direction": "PUSH", "transfer_mode": "COPY", "description": "",
        "schedule": {"minute": "00", "hour": "2", "dom": "*", "month": "*", "dow": "*"},
        "pre_script": "", "post_script": "", "snapshot": False, "include": [], "exclude": [],
        "args": "", "enabled": True, "bwlimit": [], "transfers": None, "encryption": False,
        "filename_encryption": False, "encryption_password": "", "encryption_salt": "",
        "create_empty_src_dirs": False, "follow_symlinks": False,
    }  # fmt: skip


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(out: Path, nas: Nas) -> None:
    before = nas.load()
    result = apply(out, nas, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("would create ") for line in lines)
    assert nas.writes() == [] and nas.load() == before
    state = applied(out, nas)
    state["cronjob"][0]["enabled"] = False
    nas.save(state)
    nas.forget_calls()
    result = apply(out, nas, "--dry-run")
    assert result.returncode == 0, result.stderr
    [changed] = [line for line in result.stdout.splitlines() if not line.startswith("unchanged")]
    assert changed.startswith("would update cronjob description=homeops_gen offsite sync (")
    assert changed.endswith(" (enabled)")
    assert nas.writes() == [] and nas.load() == state


def test_a_missing_credential_stops_before_any_change(out: Path, nas: Nas) -> None:
    state = nas.load()
    state["cloudsync.credentials"] = [c for c in state["cloudsync.credentials"] if c["id"] != 3]
    nas.save(state)
    result = apply(out, nas)
    assert result.returncode != 0
    assert "no cloud credential named offsite-sftp" in result.stderr
    assert nas.writes() == [] and nas.load() == state


def test_two_tasks_with_one_identity_stop_before_any_change(out: Path, nas: Nas) -> None:
    state = applied(out, nas)
    state["cronjob"].append({**state["cronjob"][0], "id": 99})
    state["pool.snapshottask"][0]["lifetime_value"] = 9  # would be updated, if it got that far
    nas.save(state)
    nas.forget_calls()
    result = apply(out, nas)
    assert result.returncode != 0
    assert "2 tasks match cronjob description=homeops_gen offsite sync (" in result.stderr
    assert "ambiguous" in result.stderr
    assert nas.writes() == [] and nas.load() == state


def test_a_nas_in_another_zone_is_warned_about(out: Path, nas: Nas) -> None:
    state = nas.load()
    state["timezone"] = "Europe/Berlin"
    nas.save(state)
    result = apply(out, nas)
    assert result.returncode == 0, result.stderr
    assert "warning: the NAS runs its tasks in Europe/Berlin" in result.stderr
    assert "Etc/UTC" in result.stderr


def test_a_tasks_file_given_as_an_argument_is_read(out: Path, nas: Nas, tmp_path: Path) -> None:
    elsewhere = tmp_path / "-odd name.json"
    shutil.copy(out / "tasks.json", elsewhere)
    script = tmp_path / "apply.sh"
    shutil.copy(out / "apply-truenas-tasks.sh", script)  # no tasks.json beside this one
    result = subprocess.run(
        [require_tool("bash"), str(script), "--", str(elsewhere)],
        env=nas.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(ours(nas.load(), "pool.snapshottask")) == len(SNAPSHOT_TASKS)
    missing = subprocess.run(
        [require_tool("bash"), str(script)], env=nas.env, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "cannot read" in missing.stderr
