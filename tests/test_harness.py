"""The test harness itself: throwaway servers, HTTP fakes, recording stubs and the HCL decoder.

Each piece is shown to work and to fail the way later tests rely on: data survives a real
dump/restore round trip, failures surface as errors (with logs), servers listen on 127.0.0.1
only, and ``hcl.py`` decodes strings exactly as ``terraform console`` evaluates them.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool
from engines import (
    LOOPBACK,
    FakePrometheusAdmin,
    FakePushgateway,
    MariaDBServer,
    PostgresServer,
    RedisServer,
    ServerError,
    StubRecorder,
    client_env,
    listening_addresses,
    make_stub,
    parse_metrics,
    parse_samples,
)
from hcl import (
    Expression,
    HCLDecodeError,
    SecretRef,
    Template,
    container,
    decode_string,
    env_of,
    find_blocks,
    find_resources,
    has_interpolation,
    is_expression,
    load_tf,
    pod_spec,
    shell_script,
)

TIMEOUT = 60


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
    )


def assert_loopback_only(port: int) -> None:
    assert listening_addresses(port) == {LOOPBACK}


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

ROWS_SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));
INSERT INTO items VALUES (1, 'widget', 9.99), (2, 'gadget ''quoted''', 0.5),
                         (3, 'ünïcödé, tab\tinside', NULL);
"""


def test_postgres_dumpall_round_trip(
    postgres: PostgresServer, postgres_restore: PostgresServer, tmp_path: Path
) -> None:
    pg_dumpall = require_tool("pg_dumpall")
    assert postgres.port != postgres_restore.port
    for server in (postgres, postgres_restore):
        assert_loopback_only(server.port)
        assert server.psql("SHOW listen_addresses").strip() == LOOPBACK
        assert server.psql("SHOW unix_socket_directories").strip() == str(server.socket_dir)
    postgres.psql("CREATE DATABASE shop")
    postgres.psql(ROWS_SQL, db="shop")
    rows = postgres.psql("SELECT * FROM items ORDER BY id", db="shop")
    assert rows.count("\n") == 3 and "gadget 'quoted'" in rows

    dump = tmp_path / "all.sql"
    # postgres.env() holds PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
    done = run([pg_dumpall, "--file", str(dump)], env=client_env(postgres.env()))
    assert done.returncode == 0, done.stderr
    assert "CREATE DATABASE shop" in dump.read_text(encoding="utf-8")

    with pytest.raises(ServerError, match="does not exist"):
        postgres_restore.psql("SELECT 1", db="shop")
    # pg_dumpall always emits CREATE ROLE postgres, which fails on an existing cluster.
    with pytest.raises(ServerError, match='role "postgres" already exists'):
        postgres_restore.psql(file=dump)
    postgres_restore.psql(file=dump, on_error_stop=False)
    assert postgres_restore.psql("SELECT * FROM items ORDER BY id", db="shop") == rows
    # Same default password on both servers, so the restored role hash still lets us in.
    assert postgres_restore.psql("SELECT current_user").strip() == "postgres"


def test_postgres_requires_the_password(postgres: PostgresServer) -> None:
    psql = require_tool("psql")
    argv = [psql, "-X", "-h", LOOPBACK, "-p", str(postgres.port), "-U", "postgres", "-c", "SELECT"]
    wrong = run(argv, env=client_env({"PGPASSWORD": "wrong"}))
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr
    with pytest.raises(ServerError, match="syntax error"):
        postgres.psql("SELEC 1")
    if os.geteuid() == 0:
        assert postgres.os_user != "root"
        assert postgres.data_dir.stat().st_uid != 0

    # stop() keeps the cluster; start() brings it back on the same port.
    postgres.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    port = postgres.port
    postgres.stop()
    assert not postgres.running and listening_addresses(port) == set()
    postgres.start()
    assert postgres.port == port and postgres.psql("SELECT x FROM kept") == "42\n"


# --------------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------------


def test_mariadb_dump_round_trip(
    mariadb: MariaDBServer, mariadb_restore: MariaDBServer, tmp_path: Path
) -> None:
    dump_tool = require_tool("mariadb-dump")
    for server in (mariadb, mariadb_restore):
        assert_loopback_only(server.port)
        assert server.sql("SELECT CURRENT_USER()").strip() == f"{server.user}@{LOOPBACK}"
    mariadb.sql("CREATE DATABASE shop")
    mariadb.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, price DECIMAL(8,2));"
        "INSERT INTO items VALUES (1, 'widget', 9.99), (2, 'gadget ''quoted''', 0.5),"
        " (3, 'ünïcödé', NULL);",
        db="shop",
    )
    rows = mariadb.sql("SELECT * FROM items ORDER BY id", db="shop")
    assert rows.splitlines()[2] == "3\tünïcödé\tNULL"

    dump = tmp_path / "shop.sql"
    with dump.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [dump_tool, *mariadb.client_args(), "--single-transaction", "--databases", "shop"],
            env=client_env(mariadb.env()),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert done.returncode == 0, done.stderr

    with pytest.raises(ServerError, match="Unknown database"):
        mariadb_restore.sql("SELECT 1", db="shop")
    mariadb_restore.sql(dump.read_text(encoding="utf-8"))
    assert mariadb_restore.sql("SELECT * FROM items ORDER BY id", db="shop") == rows


def test_mariadb_has_no_passwordless_tcp_accounts(mariadb: MariaDBServer) -> None:
    client = require_tool("mariadb")
    base = [client, "--no-defaults", "--protocol=TCP", "-h", LOOPBACK, "-P", str(mariadb.port)]
    for user, password in (("root", ""), (mariadb.user, "wrong"), ("someone", "")):
        argv = [*base, f"--user={user}", "-e", "SELECT 1"]
        denied = run(argv, env=client_env({"MYSQL_PWD": password}))
        assert denied.returncode != 0 and "Access denied" in denied.stderr, (user, denied)
    query = ["-N", "-e", "SELECT CURRENT_USER()"]
    via_file = run(
        [client, f"--defaults-extra-file={mariadb.defaults_file}", *query], env=client_env()
    )
    assert via_file.stdout.strip() == f"{mariadb.user}@{LOOPBACK}", via_file.stderr
    assert mariadb.admin_sql("SELECT CURRENT_USER()").strip() == "root@localhost"


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def test_redis_save_and_reload(redis: RedisServer, tmp_path: Path) -> None:
    assert_loopback_only(redis.port)
    assert redis.cli("CONFIG", "GET", "save") == "save\n"  # i.e. save is "": no auto snapshots
    assert redis.cli("SET", "greeting", "hello world") == "OK"
    assert not redis.rdb_path.exists()
    assert redis.cli("SAVE") == "OK"
    assert redis.rdb_path == redis.data_dir / "dump.rdb"
    assert redis.rdb_path.read_bytes().startswith(b"REDIS")
    with pytest.raises(ServerError, match="unknown command"):
        redis.cli("NOSUCHCOMMAND")
    redis.stop()
    assert not redis.running

    with RedisServer(tmp_path / "reloaded", rdb=redis.rdb_path, password="s3cret") as reloaded:
        assert reloaded.cli("GET", "greeting") == "hello world"
        anonymous = run(
            [reloaded.redis_cli, "-e", "-h", LOOPBACK, "-p", str(reloaded.port), "GET", "greeting"]
        )
        assert anonymous.returncode != 0 and "NOAUTH" in anonymous.stdout + anonymous.stderr


def test_start_failure_reports_the_log_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("redis-server")

    class Broken(RedisServer):
        def _command(self) -> tuple[list[str], dict[str, object]]:
            argv, kwargs = super()._command()
            return [*argv, "--no-such-directive", "1"], kwargs

    with pytest.raises(ServerError, match="exited during start-up") as failure:
        Broken(tmp_path / "broken").start()
    assert "no-such-directive" in str(failure.value)  # the log tail is in the message

    class Deaf(RedisServer):  # starts, but never counts as ready
        def _ready(self) -> bool:
            return False

    monkeypatch.setattr("engines.START_TIMEOUT", 1.0)
    deaf = Deaf(tmp_path / "deaf")
    with pytest.raises(ServerError, match=r"did not accept connections .* within 1s"):
        deaf.start()
    assert not deaf.running and deaf.pid is None
    assert listening_addresses(deaf.port) == set()


# --------------------------------------------------------------------------------------------
# HTTP fakes
# --------------------------------------------------------------------------------------------

METRICS = """\
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 1.7e+09
backup_duration_seconds{job="pg", note="say \\"hi\\""} 12.5 1700000000000
backup_bytes 2048
"""


def test_pushgateway_records_a_curl_push(pushgateway: FakePushgateway) -> None:
    curl = require_tool("curl")
    url = f"{pushgateway.url}/metrics/job/backup/instance/notes"
    posted = run([curl, "-fsS", "--max-time", "10", "--data-binary", "@-", url], input=METRICS)
    assert posted.returncode == 0, posted.stderr
    put = run([curl, "-fsS", "--max-time", "10", "-T", "-", url], input="backup_bytes 1\n")
    assert put.returncode == 0, put.stderr  # an upload from stdin is sent chunked

    first, second = pushgateway.requests
    assert (first.method, first.path) == ("POST", "/metrics/job/backup/instance/notes")
    assert first.body == METRICS
    assert second.method == "PUT" and second.body == "backup_bytes 1\n"
    assert pushgateway.pushes == [first, second]
    assert pushgateway.metrics(0) == {
        "backup_last_success_timestamp_seconds": 1.7e9,
        "backup_duration_seconds": 12.5,
        "backup_bytes": 2048.0,
    }
    assert pushgateway.metrics() == {"backup_bytes": 1.0}
    labelled = parse_samples(first.body)[1]
    assert labelled.labels == {"job": "pg", "note": 'say "hi"'}
    assert labelled.timestamp == 1700000000000


def test_pushgateway_failure_mode_fails_curl() -> None:
    curl = require_tool("curl")
    with FakePushgateway(status=500) as failing:
        url = f"{failing.url}/metrics/job/backup"
        pushed = run([curl, "-fsS", "--max-time", "10", "--data-binary", "@-", url], input=METRICS)
        assert pushed.returncode == 22  # curl --fail on an HTTP error
        assert "500" in pushed.stderr
        assert len(failing.requests) == 1
        failing.status = 200
        assert run([curl, "-fsS", "--data-binary", "x 1", url]).returncode == 0


def test_parse_metrics_rejects_what_it_cannot_map() -> None:
    assert parse_metrics("a +Inf\nb -Inf\n\n# HELP c x\nc 3") == {
        "a": float("inf"),
        "b": float("-inf"),
        "c": 3.0,
    }
    assert parse_metrics("n NaN")["n"] != parse_metrics("n NaN")["n"]  # NaN
    with pytest.raises(ValueError, match="more than once"):
        parse_metrics('x{a="1"} 1\nx{a="2"} 2\n')
    for bad in ("x", "x one", '{a="1"} 1', "x{a=1} 1", "x 1 2 3"):
        with pytest.raises(ValueError):
            parse_samples(bad)


def test_prometheus_admin_snapshot(tmp_path: Path) -> None:
    curl = require_tool("curl")
    with FakePrometheusAdmin(tmp_path / "prom") as prometheus:
        url = prometheus.url + FakePrometheusAdmin.SNAPSHOT_PATH
        first = run([curl, "-fsS", "-XPOST", url])
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stdout)
        name = "20240101T000000Z-1a2b3c4d5e6f7a8b"
        assert answer == {"status": "success", "data": {"name": name}}
        folder = tmp_path / "prom" / "snapshots" / answer["data"]["name"]
        assert folder == prometheus.snapshot_dir()
        assert (folder / "chunks" / "000001").stat().st_size > 0
        assert json.loads((folder / "meta.json").read_text())["version"] == 1
        second = json.loads(run([curl, "-fsS", "-XPOST", url + "?skip_head=true"]).stdout)
        assert second["data"]["name"] != answer["data"]["name"]
        assert prometheus.requests[1].query == "skip_head=true"
        assert run([curl, "-fsS", "-XPOST", prometheus.url + "/api/v1/nope"]).returncode == 22
        prometheus.admin_enabled = False
        disabled = run([curl, "-sS", "-w", "%{http_code}", "-XPOST", url])
        assert disabled.stdout.endswith("503") and "admin APIs disabled" in disabled.stdout
        assert prometheus.snapshots == [answer["data"]["name"], second["data"]["name"]]


# --------------------------------------------------------------------------------------------
# Stubs
# --------------------------------------------------------------------------------------------


def test_stubs_record_argv_and_write_outputs(stubs: StubRecorder, tmp_path: Path) -> None:
    stubs.stub("etcdctl", output_after="save", record_env=("ETCDCTL_API",))
    stubs.stub("vault", output_after="save", output_content="raft-bytes", stdout="saved\n")
    stubs.stub("failing", 'echo "failing: $1" >&2', exit_code=3)
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(
        """\
        set -eu
        ETCDCTL_API=3 etcdctl --endpoints="https://127.0.0.1:2379" snapshot save "$OUT/etcd db"
        vault operator raft snapshot save "$OUT/raft.snap"
        failing "it's \\"quoted\\"" || echo "failing exited $?"
        """
    )
    done = run(["/bin/sh", "-c", script], env={**stubs.env(), "OUT": str(out)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "saved\nfailing exited 3\n"
    assert done.stderr == 'failing: it\'s "quoted"\n'

    assert stubs.argv("etcdctl") == [
        ["--endpoints=https://127.0.0.1:2379", "snapshot", "save", f"{out}/etcd db"]
    ]
    (etcd_call,) = stubs.calls("etcdctl")
    assert etcd_call.env == {"ETCDCTL_API": "3"} and etcd_call.cwd == str(tmp_path)
    assert stubs.argv("vault") == [["operator", "raft", "snapshot", "save", f"{out}/raft.snap"]]
    assert stubs.argv("failing") == [['it\'s "quoted"']]
    assert (out / "etcd db").read_text() == "stub output\n"
    assert (out / "raft.snap").read_text() == "raft-bytes"

    # A missing output folder makes the stub fail like the real tool would.
    missing = run(["etcdctl", "snapshot", "save", str(tmp_path / "nope" / "x.db")], env=stubs.env())
    assert missing.returncode == 1 and "cannot write" in missing.stderr


def test_make_stub_and_stdin_capture(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    path = make_stub(bin_dir, "mc", capture_stdin=True, output_arg=-1)
    assert path == bin_dir / "mc" and os.access(path, os.X_OK)
    recorder = StubRecorder(bin_dir)
    target = tmp_path / "copy"
    done = run(["mc", "pipe", str(target)], input="payload", env=recorder.env())
    assert done.returncode == 0, done.stderr
    (call,) = recorder.calls()
    assert (call.name, call.argv, call.stdin) == ("mc", ["pipe", str(target)], "payload")
    assert target.read_text() == "stub output\n"


# --------------------------------------------------------------------------------------------
# hcl.py
# --------------------------------------------------------------------------------------------

# Every value below is valid, `terraform fmt`-clean HCL; see test_snippets_are_valid_hcl.
STRINGS_TF = r"""locals {
  escapes   = "a\"b\\c\nd\te\r|\u00e9|\U0001F600"
  templates = "pre $${HOME} %%{ if } $$ $$$${x} $$${y} 100% $ \\$${z} %% end"
  empty     = ""
  plain     = <<EOT
  keeps "quotes" \n \\ $${VAR} %%{x} $$
    and indentation
EOT
  indented  = <<-EOT
    echo "$${HOME}" %%{x} $$

      deeper
	tab counts as one
  EOT
  nothing   = <<EOT
EOT
  blankline = <<-EOT

        first
          second
      EOT
}
"""

EXPECTED = {
    "escapes": 'a"b\\c\nd\te\r|é|\U0001f600',
    "templates": "pre ${HOME} %{ if } $$ $$${x} $${y} 100% $ \\${z} %% end",
    "empty": "",
    "plain": '  keeps "quotes" \\n \\\\ ${VAR} %{x} $$\n    and indentation\n',
    "indented": '   echo "${HOME}" %{x} $$\n\n     deeper\ntab counts as one\n',
    "nothing": "",
    "blankline": "\nfirst\n  second\n",
}

TEMPLATES_TF = r"""locals {
  v       = "VAL"
  inline  = "a ${local.v} b $${literal} ${"}"}"
  leading = <<-EOT
      ${local.v} starts the line
        so nothing is trimmed
      EOT
  strip   = <<-EOT
      x   ${~local.v~}
        y
    EOT
  mixed   = <<-EOT
      a ${local.v}
        b $${c}
    EOT
}
"""

CRON_TF = r"""resource "kubernetes_cron_job_v1" "notes-backup" {
  metadata {
    name      = "notes-backup"
    namespace = "notes"
    labels = {
      "app.kubernetes.io/name" = "notes-backup"
      tier                     = "backup"
    }
  }
  spec {
    schedule = "0 */6 * * *"
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            restart_policy = "Never"
            container {
              name  = "backup"
              image = "alpine:3.20"
              command = ["/bin/sh", "-ec", <<-EOT
                echo "db=$${DB_NAME:-none} home=${module.paths.home}"
                printf '%s\n' "$$"
              EOT
              ]
              env {
                name  = "DB_NAME"
                value = "notes"
              }
              env {
                name = "DB_PASSWORD"
                value_from {
                  secret_key_ref {
                    name = "notes-db"
                    key  = "password"
                  }
                }
              }
              volume_mount {
                name       = "data"
                mount_path = "/data"
              }
            }
            container {
              name    = "sidecar"
              image   = "busybox"
              command = ["sh", "-c"]
              args    = ["echo \"$${X}\""]
            }
            volume {
              name = "data"
              persistent_volume_claim {
                claim_name = module.notes.claim_name
              }
            }
          }
        }
      }
    }
  }
}

module "notes" {
  source = "./modules/pvc"
}
"""


def write_tf(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "main.tf"
    path.write_text(text, encoding="utf-8")
    return path


def terraform_eval(folder: Path, names: list[str]) -> dict[str, str]:
    """``{name: local.<name>}`` as ``terraform console`` evaluates it (offline, no init)."""
    terraform = require_tool("terraform")
    expression = "jsonencode({" + ", ".join(f"{n} = local.{n}" for n in names) + "})"
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    done = run([terraform, "console"], input=expression, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(json.loads(done.stdout))
    return result


@pytest.mark.parametrize(
    "text", [STRINGS_TF, TEMPLATES_TF, CRON_TF], ids=["strings", "templates", "cron"]
)
def test_snippets_are_valid_hcl(text: str, tmp_path: Path) -> None:
    terraform = require_tool("terraform")
    write_tf(tmp_path, text)
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    done = run([terraform, "fmt", "-check", "-diff", "main.tf"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_strings_decode_to_terraform_values(tmp_path: Path) -> None:
    values = load_tf(write_tf(tmp_path, STRINGS_TF))["locals"][0]
    assert values == EXPECTED
    assert not any(has_interpolation(v) or is_expression(v) for v in values.values())
    assert all(type(v) is str for v in values.values())


def test_strings_match_terraform_console(tmp_path: Path) -> None:
    write_tf(tmp_path, STRINGS_TF)
    assert terraform_eval(tmp_path, sorted(EXPECTED)) == EXPECTED


def test_real_interpolations_stay_detectable(tmp_path: Path) -> None:
    values = load_tf(write_tf(tmp_path, TEMPLATES_TF))["locals"][0]
    assert values.pop("v") == "VAL"
    assert values["inline"] == 'a ${local.v} b ${literal} ${"}"}'
    assert values["inline"].parts == ("a ", "${local.v}", " b ${literal} ", '${"}"}')
    assert values["leading"] == "${local.v} starts the line\n  so nothing is trimmed\n"
    assert values["strip"] == "x${~local.v~}        y\n"
    assert values["mixed"] == "a ${local.v}\n  b ${c}\n"
    for value in values.values():
        assert isinstance(value, Template) and has_interpolation(value)
    assert not has_interpolation(decode_string('"$${escaped}"'))

    # Substituting the sequences must give what Terraform renders (trims, <<- included).
    def render(value: Template) -> str:
        substitutes = {"${local.v}": "VAL", "${~local.v~}": "VAL", '${"}"}': "}"}
        return "".join(substitutes[p] if isinstance(p, Expression) else p for p in value.parts)

    rendered = terraform_eval(tmp_path, sorted(values))
    assert {name: render(value) for name, value in values.items()} == rendered


def test_decode_string_edge_cases() -> None:
    assert decode_string("${module.x.claim_name}") == "module.x.claim_name"
    assert is_expression(decode_string("${module.x.claim_name}"))
    assert decode_string('"\\u0041\\U0001F600"') == "A\U0001f600"
    assert decode_string('"<<EOT not a heredoc"') == "<<EOT not a heredoc"
    assert decode_string('"<<-X\n\tone\n  X"') == "one\n"
    for bad in ('"\\q"', '"\\u12"', '"${unterminated"', '"<<EOT\nno marker\nEOF"'):
        with pytest.raises(HCLDecodeError):
            decode_string(bad)


def test_cron_job_navigation(tmp_path: Path) -> None:
    doc = load_tf(write_tf(tmp_path, CRON_TF))
    assert find_blocks(doc, "module") == {"notes": {"source": "./modules/pvc"}}
    jobs = find_resources(doc, "kubernetes_cron_job_v1")
    assert list(jobs) == ["notes-backup"] and find_resources(doc, "kubernetes_secret_v1") == {}
    job = jobs["notes-backup"]
    labels = job["metadata"][0]["labels"]
    assert labels == {"app.kubernetes.io/name": "notes-backup", "tier": "backup"}
    assert job["spec"][0]["job_template"][0]["metadata"] == [{}]  # empty block, marker dropped
    claim = pod_spec(job)["volume"][0]["persistent_volume_claim"][0]["claim_name"]
    assert claim == "module.notes.claim_name" and is_expression(claim)

    backup = container(job, "backup")
    assert backup["image"] == "alpine:3.20"
    assert backup["volume_mount"] == [{"name": "data", "mount_path": "/data"}]
    assert env_of(backup) == {"DB_NAME": "notes", "DB_PASSWORD": SecretRef("notes-db", "password")}
    script = shell_script(backup)
    assert script == (
        'echo "db=${DB_NAME:-none} home=${module.paths.home}"\nprintf \'%s\\n\' "$$"\n'
    )
    assert has_interpolation(script)  # ${module.paths.home} is real; ${DB_NAME:-none} was $${

    sidecar = container(job, "sidecar")
    assert shell_script(sidecar) == 'echo "${X}"' and not has_interpolation(shell_script(sidecar))
    assert env_of(sidecar) == {}
    done = run(["/bin/sh", "-c", shell_script(sidecar)], env={"X": "from env"})
    assert done.stdout == "from env\n"
    with pytest.raises(KeyError, match="no container named 'missing'"):
        container(job, "missing")
