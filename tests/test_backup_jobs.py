"""Terraform backup stacks: structure, formatting, escaping, and the SQLite recipe run for real.

Engine round trips (PostgreSQL, MariaDB, Redis, ...) live in test_recipes.py; this module
covers the stack itself and the behaviour every recipe shares (verification before the
final name, rotation, failure paths), using SQLite, which needs no server.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, backup_stacks, require_tool
from engines import FakePushgateway, parse_metrics
from hcl import (
    Expression,
    SecretRef,
    container,
    env_of,
    find_blocks,
    find_resources,
    load_tf,
    pod_spec,
)
from jobs import Job, backups, load_job, run_job

from homeops_gen import load_catalog, load_catalog_text
from homeops_gen.cli import main as homeops_gen_main
from homeops_gen.errors import CatalogError
from homeops_gen.hcl import hcl_heredoc, hcl_string

TERRAFORM = REPO / "out" / "terraform"
CATALOG = load_catalog(REPO / "services.yaml")
DUMPED = sorted(s.name for s in CATALOG.services if s.uses("dump"))


def cron_jobs(service: str) -> dict[str, dict[str, object]]:
    return find_resources(
        load_tf(TERRAFORM / "stacks" / service / "backup.tf"), "kubernetes_cron_job_v1"
    )


# --- the stacks ----------------------------------------------------------------------------


def test_every_dumped_service_has_a_stack_and_nothing_else_does() -> None:
    stacks = [p.name for p in backup_stacks(TERRAFORM / "stacks")]
    assert stacks == DUMPED
    # The one other stack: the NAS monitor, as the catalog's full sync is a Cloud Sync task.
    others = {p.name for p in (TERRAFORM / "stacks").iterdir()} - set(stacks)
    assert others == {"nas-monitor"}
    assert {"etcd", "mysql", "postgresql", "prometheus", "redis", "vault", "vaultwarden"} <= set(
        stacks
    )


def test_terraform_fmt_accepts_every_file_unchanged() -> None:
    terraform = require_tool("terraform")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", DUMPED)
def test_backup_job_follows_the_catalog(name: str) -> None:
    service = CATALOG.service(name)
    body = cron_jobs(name)["backup"]
    spec = body["spec"][0]
    assert spec["schedule"] == service.schedule.cron
    assert spec["timezone"] == CATALOG.settings.timezone
    assert spec["concurrency_policy"] == "Forbid"
    assert spec["starting_deadline_seconds"] == service.job.starting_deadline(service.schedule)
    assert spec["starting_deadline_seconds"] >= 60  # a 10 s deadline loses runs
    box = container(body, "backup")
    assert box["image"] == service.job.image and re.search(r":[\w.-]+$", box["image"])
    assert box["command"] == [service.job.shell, "/scripts/backup.sh"]
    assert "args" not in box
    env = env_of(box)
    assert env["SERVICE"] == name
    assert env["BACKUP_DIR"] == "/backup"
    assert env["PUSHGATEWAY_URL"] == CATALOG.settings.pushgateway
    assert env["TZ"] == CATALOG.settings.container_timezone == "GMT0BST,M3.5.0/1,M10.5.0"
    retention = service.retention
    if retention.copies is not None:
        assert env["RETENTION_COPIES"] == str(retention.copies)
    else:
        assert retention.period is not None
        assert env["RETENTION_MINUTES"] == str(int(retention.period.total_seconds() // 60))
    volumes = {v["name"]: v for v in pod_spec(body)["volume"]}
    claim = volumes["backup"]["persistent_volume_claim"][0]["claim_name"]
    assert claim == Expression("module.backup_volume.claim_name")
    mounts = {m["name"]: m["mount_path"] for m in box["volume_mount"]}
    assert mounts["backup"] == "/backup"


@pytest.mark.parametrize("name", DUMPED)
def test_scripts_reach_the_pod_from_a_configmap_in_its_namespace(name: str) -> None:
    """The container runs its script from the stack's ConfigMap, which must live in the
    CronJob's own namespace (a pod can only mount ConfigMaps of its namespace) and carry
    every script the stack's jobs run plus the lib.sh they source."""
    doc = load_tf(TERRAFORM / "stacks" / name / "backup.tf")
    (config_map,) = find_resources(doc, "kubernetes_config_map_v1").values()
    metadata = config_map["metadata"][0]
    assert metadata["namespace"] == CATALOG.service(name).namespace
    assert metadata["name"] == f"{name}-backup-scripts"
    for resource, body in cron_jobs(name).items():
        assert body["metadata"][0]["namespace"] == metadata["namespace"]
        (box,) = pod_spec(body)["container"]
        script = box["command"][1]
        volumes = {v["name"]: v for v in pod_spec(body)["volume"]}
        (mount,) = [m for m in box["volume_mount"] if m["mount_path"] == "/scripts"]
        assert mount["read_only"] is True
        source = volumes[mount["name"]]["config_map"][0]["name"]
        assert source == Expression("kubernetes_config_map_v1.scripts.metadata[0].name")
        assert script.removeprefix("/scripts/") in config_map["data"], resource
    assert config_map["data"]["lib.sh"] == Expression("module.shell.lib_sh")


@pytest.mark.parametrize("name", DUMPED)
def test_backup_volume_is_the_services_nfs_folder(name: str) -> None:
    module = load_tf(TERRAFORM / "stacks" / name / "backup.tf")["module"][0]["backup_volume"]
    service = CATALOG.service(name)
    assert module["source"] == "../../modules/nfs-backup-volume"
    assert module["nfs_server"] == CATALOG.settings.nfs_server
    assert module["nfs_path"] == service.backup_path
    assert module["namespace"] == service.namespace


@pytest.mark.parametrize(
    ("name", "variable", "secret"),
    [
        ("postgresql", "PGPASSWORD", SecretRef("pg-cluster-superuser", "password")),
        ("mysql", "MYSQL_PWD", SecretRef("mysql-root", "password")),
        ("vault", "VAULT_TOKEN", SecretRef("vault-backup-token", "token")),
    ],
)
def test_credentials_come_from_secrets(name: str, variable: str, secret: SecretRef) -> None:
    env = env_of(container(cron_jobs(name)["backup"], "backup"))
    assert env[variable] == secret
    text = (TERRAFORM / "stacks" / name / "backup.tf").read_text()
    assert "password =" not in text.lower() and "token =" not in text.lower()


def test_postgresql_job_names_every_database() -> None:
    env = env_of(container(cron_jobs("postgresql")["backup"], "backup"))
    assert str(env["PG_DATABASES"]).split() == list(
        CATALOG.service("postgresql").connection.databases  # type: ignore[union-attr]
    )
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"]) == (
        "pg-cluster-rw.dbaas.svc.cluster.local",
        "5432",
        "postgres",
    )


def test_etcd_runs_on_a_control_plane_node_with_its_client_certificates() -> None:
    body = cron_jobs("etcd")["backup"]
    pod = pod_spec(body)
    assert pod["host_network"] is True  # the endpoint is the node's loopback
    assert pod["dns_policy"] == "ClusterFirstWithHostNet"
    assert pod["node_selector"] == {"node-role.kubernetes.io/control-plane": ""}
    (toleration,) = pod["toleration"]
    assert toleration == {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    # kubeadm's healthcheck-client.key is 0600 root: the pod reads it as root.
    assert pod["security_context"][0] == {"run_as_user": "0", "run_as_group": "0"}
    volumes = {v["name"]: v for v in pod["volume"]}
    assert volumes["etcd-certs"]["host_path"][0]["path"] == "/etc/kubernetes/pki/etcd"
    # Only the snapshot container reads the certificates; the script only sees the snapshot.
    snapshot, check = pod["init_container"]
    mounts = {m["name"]: m for m in snapshot["volume_mount"]}
    assert mounts["etcd-certs"]["read_only"] is True
    assert "etcd-certs" not in {m["name"] for m in check["volume_mount"]}
    script_mounts = {m["name"] for m in container(body, "backup")["volume_mount"]}
    assert script_mounts == {"backup", "snapshot", "scripts"}


def test_vaultwarden_has_an_hourly_integrity_check_job() -> None:
    jobs = cron_jobs("vaultwarden")
    assert set(jobs) == {"backup", "integrity_check", "restore_drill"}
    check = jobs["integrity_check"]
    assert check["metadata"][0]["name"] == "vaultwarden-integrity-check"
    assert CATALOG.service("vaultwarden").integrity is not None
    assert check["spec"][0]["schedule"] == CATALOG.service("vaultwarden").integrity.cron  # type: ignore[union-attr]
    assert re.fullmatch(r"\d+ \* \* \* \*", check["spec"][0]["schedule"])
    # No integrity cadence, no check job (its restore drill is the other CronJob).
    assert set(cron_jobs("plotting-book")) == {"backup", "restore_drill"}


def test_monthly_first_sunday_runs_days_1_to_7_and_guards_the_weekday() -> None:
    spec = cron_jobs("prometheus")["backup"]["spec"][0]
    _minute, _hour, dom, month, dow = spec["schedule"].split()
    assert (dom, month, dow) == ("1-7", "*", "*")  # "1-7 * 0" would also run every Sunday
    job = load_job(TERRAFORM / "stacks" / "prometheus")
    assert "\nonly_on_weekday 0 Sunday\nbegin_backup\n" in job.files["backup.sh"]
    assert 'if [ "$(date +%w)" != "$1" ]; then' in job.script


# --- HCL escaping ----------------------------------------------------------------------------


def test_no_bare_double_dollar_anywhere() -> None:
    """``$$`` before anything but ``{`` reaches the shell as its PID (``$$result``)."""
    for path in TERRAFORM.rglob("*.tf"):
        text = path.read_text()
        assert not re.search(r"\$\$(?!\{)", text), path
    for path in (TERRAFORM / "stacks").rglob("*.tf"):  # only file() beside the stack
        found = re.findall(r"(?<!\$)\$\{[^}]*\}", path.read_text())
        assert set(found) <= {"${path.module}"}, (path, found)


def terraform_eval(expressions: list[str], tmp_path: Path) -> list[str]:
    """The values Terraform itself gives HCL literal expressions (``terraform console``)."""
    terraform = require_tool("terraform")
    folder = tmp_path / "console"
    folder.mkdir(exist_ok=True)
    locals_ = "\n".join(f"  v{i} = {expression}" for i, expression in enumerate(expressions))
    (folder / "main.tf").write_text(f"locals {{\n{locals_}\n}}\n")
    query = "[" + ", ".join(f"base64encode(local.v{i})" for i in range(len(expressions))) + "]"
    result = subprocess.run(
        [terraform, "console"],
        input=f"jsonencode({query})\n",
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    line = result.stdout.strip().splitlines()[-1]

    encoded = json.loads(json.loads(line))
    return [base64.b64decode(value).decode() for value in encoded]


NASTY = [
    "plain",
    'a "quoted" word',
    "back\\slash",
    "${not_interpolated}",
    "%{ if x }y%{ endif }",
    "$$ and $${ and $$$",
    "tab\tand\nnewline",
    "ünïcödé ✓",
    "ends with \\",
    "\x01control",
    # Left as they are (nothing to escape): the quoting's shortcut.
    "cost: $5, 50% off, {braces} and }{",
    "ends with $",
    "ends with %",
    "$ {spaced} % {spaced}",
    "\u2028line separator\u0085next line",
    # ... and escaped: the characters next to the shortcut's edges.
    "\x7fdelete",
    "\x1funit separator",
    "$${already doubled}",
]


def test_hcl_strings_reach_terraform_unchanged(tmp_path: Path) -> None:
    assert terraform_eval([hcl_string(s) for s in NASTY], tmp_path) == NASTY


def _hcl_string_by_char(text: str) -> str:
    """HCL's quoted-string escapes, one character at a time (the spec's table)."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for index, char in enumerate(text):
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        elif char in "$%" and text[index + 1 : index + 2] == "{":
            out.append(char + char)  # "${" and "%{" start a template sequence
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def test_hcl_string_is_the_escape_table_over_a_corpus() -> None:
    """Every string of the bundled catalog's generated Terraform inputs and of random mixes
    of the characters that matter, quoted as the table says (Terraform itself checks the
    table above, on NASTY)."""
    alphabet = ["a", " ", "$", "%", "{", "}", "\\", '"', "\n", "\r", "\t", "\x00", "\x1f"]
    alphabet += ["\x7f", "\x80", "é", "\u2028", "✓", "$$", "%%"]
    rng = random.Random(20)
    corpus = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(20000)]
    corpus += NASTY + [s.name for s in CATALOG.services] + [str(v) for v in range(-3, 300)]
    for text in corpus:
        assert hcl_string(text) == _hcl_string_by_char(text), repr(text)


def test_hcl_heredocs_reach_terraform_unchanged(tmp_path: Path) -> None:
    texts = [
        "set -eu\n  indented ${VAR:-x}\n\nafter a blank line %{x}\n",
        "EOT\nthe marker itself as a line\nEOT\n",
        'echo "$$" "$${1}" \'%s\'\n',
    ]
    expressions = [hcl_heredoc(text, 2) + "\n" for text in texts]
    assert terraform_eval(expressions, tmp_path) == texts


def test_scripts_configmap_holds_in_terraform_what_the_tests_run(tmp_path: Path) -> None:
    """What the tests run (tests/jobs.py, evaluating ``file()`` and the shell module's output)
    is exactly what Terraform puts in each stack's scripts ConfigMap: each stack's ``data``
    expressions and module calls are evaluated by Terraform itself, in a copy of
    out/terraform where the stack's own files are replaced by one that outputs them."""
    terraform = require_tool("terraform")
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy)
    compared = 0
    for stack in backup_stacks(TERRAFORM / "stacks"):
        doc = load_tf(stack / "backup.tf")
        (data,) = [
            body["data"] for body in find_resources(doc, "kubernetes_config_map_v1").values()
        ]
        folder = copy / "stacks" / stack.name
        for tf in folder.glob("*.tf"):
            tf.unlink()
        modules = "".join(
            f'module "{name}" {{\n  source = {hcl_string(body["source"])}\n}}\n'
            for name, body in find_blocks(doc, "module").items()
            if name == "shell"
        )
        entries = "".join(f"    {hcl_string(key)} = {value}\n" for key, value in data.items())
        (folder / "eval.tf").write_text(
            f'{modules}output "data" {{\n  value = {{\n{entries}  }}\n}}\n'
        )
        for command in (["init", "-backend=false"], ["apply", "-auto-approve"]):
            subprocess.run(
                [terraform, *command, "-input=false", "-no-color"],
                cwd=folder,
                capture_output=True,
                text=True,
                check=True,
            )
        shown = subprocess.run(
            [terraform, "output", "-json", "data"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        in_terraform = json.loads(shown.stdout)
        for resource in cron_jobs(stack.name):
            job = load_job(stack, resource)
            assert dict(job.files) == in_terraform, f"{stack.name}/{resource}"
            assert in_terraform["lib.sh"] == (TERRAFORM / "modules/backup-shell/lib.sh").read_text()
            compared += 1
    # Every backup, the integrity check, and every restore drill.
    drilled = [s.name for s in CATALOG.services if s.drill is not None and s.drill.layer == "dump"]
    assert drilled and compared == len(DUMPED) + 1 + len(drilled)


# --- job settings from the catalog ------------------------------------------------------------

JOB_CATALOG = MINIMAL_HEAD.replace(
    "services:\n",
    "  jobs:\n    backoff_limit: 4\n    images: {sqlite: registry.lan/sqlite:1.0}\nservices:\n",
) + (
    "  - name: notes\n    namespace: notes\n    storage: iscsi\n    churn: low\n"
    "    engine: sqlite\n    sqlite: {claim: notes-data, database: /data/notes.db}\n"
    + (
        OWN_JOB := "    job: {starting_deadline_seconds: 120, image: registry.lan/own:2.0, "
        "shell: /bin/bash}\n"
    )
)


def test_job_settings_layer_service_over_settings_over_built_in() -> None:
    job = load_catalog_text(JOB_CATALOG).service("notes").job
    assert (job.image, job.shell) == ("registry.lan/own:2.0", "/bin/bash")
    assert (job.starting_deadline_seconds, job.backoff_limit) == (120, 4)
    assert job.concurrency_policy == "Forbid"  # built-in
    plain = (
        load_catalog_text(
            JOB_CATALOG.replace(
                OWN_JOB,
                "",
            )
        )
        .service("notes")
        .job
    )
    assert (plain.image, plain.shell) == ("registry.lan/sqlite:1.0", "/bin/sh")


def _app_affinity(pod: dict[str, object]) -> dict[str, str] | None:
    """The labels of the pods a job must run beside (``None``: it may run anywhere)."""
    if "affinity" not in pod:
        return None
    (affinity,) = pod["affinity"]  # type: ignore[misc]
    (required,) = affinity["pod_affinity"][0]["required_during_scheduling_ignored_during_execution"]
    assert required["topology_key"] == "kubernetes.io/hostname"
    return required["label_selector"][0]["match_labels"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "beside"),
    [
        ("vaultwarden", {"app.kubernetes.io/name": "vaultwarden"}),  # iSCSI: ReadWriteOnce
        ("plotting-book", {"app.kubernetes.io/name": "plotting-book"}),
        ("redis", {"app.kubernetes.io/name": "redis"}),
        ("prometheus", None),  # its claim is on NFS: ReadWriteMany
        ("postgresql", None),  # no claim: it dumps over the network
    ],
)
def test_jobs_that_mount_a_readwriteonce_claim_run_beside_the_app(
    name: str, beside: dict[str, str] | None
) -> None:
    for resource, body in cron_jobs(name).items():
        # A restore drill mounts only the backups and a scratch folder: it runs anywhere.
        expected = None if resource == "restore_drill" else beside
        assert _app_affinity(pod_spec(body)) == expected, resource


PLACED = JOB_CATALOG.replace(
    "    images: {sqlite: registry.lan/sqlite:1.0}\n",
    "    images: {sqlite: registry.lan/sqlite:1.0}\n"
    "    node_selector: {kubernetes.io/arch: amd64}\n"
    "    tolerations: [{key: dedicated, operator: Equal, value: backup, effect: NoSchedule}]\n"
    "    security_context: {run_as_user: 1000, run_as_group: 1000, fs_group: 1000,"
    " run_as_non_root: true}\n",
).replace(OWN_JOB, "    job: {app_labels: {app.kubernetes.io/instance: notes, role: web}}\n")


def test_placement_from_the_catalog_reaches_the_cron_job_and_the_restore_job(
    tmp_path: Path,
) -> None:
    from provider_schema import available_schemas, validate_text

    catalog = tmp_path / "services.yaml"
    catalog.write_text(PLACED)
    out = tmp_path / "out"
    assert homeops_gen_main(["--catalog", str(catalog), "--out", str(out), "-q"]) == 0
    tf = out / "terraform/stacks/notes/backup.tf"
    text = tf.read_text()
    pod = pod_spec(find_resources(load_tf(tf), "kubernetes_cron_job_v1")["backup"])
    assert pod["node_selector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["toleration"] == [
        {"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}
    ]
    assert pod["security_context"][0] == {
        "run_as_user": "1000",
        "run_as_group": "1000",
        "run_as_non_root": True,
        "fs_group": "1000",
    }
    assert _app_affinity(pod) == {"app.kubernetes.io/instance": "notes", "role": "web"}
    for schema in available_schemas():
        assert validate_text(text, schema) == []
    job = yaml.safe_load((out / "docs/runbooks/restore-notes/job.yaml").read_text())
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}
    ]
    assert spec["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "runAsNonRoot": True,
        "fsGroup": 1000,
    }
    assert "affinity" not in spec  # a restore runs with the app stopped
    import kubernetes_validate

    kubernetes_validate.validate(job, "1.32", strict=True)  # raises on a schema violation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("image: registry.lan/own:2.0", "image: registry.lan/own"),
        ("image: registry.lan/own:2.0", "image: registry.lan/own:latest"),
    ],
)
def test_unpinned_images_are_rejected(change: str, message: str) -> None:
    with pytest.raises(CatalogError, match="is not pinned"):
        load_catalog_text(JOB_CATALOG.replace(change, message), "services.yaml")


def test_cron_job_names_must_fit_kubernetes() -> None:
    long_name = "n" * 40  # 40 + len("-integrity-check") > 52
    text = JOB_CATALOG.replace("name: notes", f"name: {long_name}").replace(
        "churn: low\n", "churn: low\n    integrity: hourly\n"
    )
    with pytest.raises(CatalogError, match="longer than 52 characters"):
        load_catalog_text(text, "services.yaml")


# --- the SQLite recipe, run for real ----------------------------------------------------------


@pytest.fixture
def vaultwarden(tmp_path: Path) -> tuple[Job, dict[str, str], Path]:
    """The vaultwarden job pointed at a live database with rows, keys and attachments."""
    require_tool("sqlite3")
    data = tmp_path / "data"
    (data / "attachments" / "x1").mkdir(parents=True)
    (data / "attachments" / "x1" / "file.bin").write_bytes(bytes(range(256)))
    (data / "rsa_key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (data / "config.json").write_text('{"domain": "https://vault.lan"}')
    with sqlite3.connect(data / "db.sqlite3") as db:
        db.execute("create table ciphers (id integer primary key, name text)")
        db.executemany(
            "insert into ciphers (name) values (?)", [(f"entry {i} '✓'",) for i in range(500)]
        )
    job = load_job(TERRAFORM / "stacks" / "vaultwarden")
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()

    def rebase(value: str) -> str:
        return " ".join(str(data) + p.removeprefix("/data") for p in value.split())

    env = {
        "BACKUP_DIR": str(backup_dir),
        "SQLITE_ROOT": str(data),
        "SQLITE_DATABASE": str(data / "db.sqlite3"),
        "SQLITE_EXTRA_PATHS": rebase(str(job.env["SQLITE_EXTRA_PATHS"])),
    }
    return job, env, backup_dir


def rows(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("select id, name from ciphers order by id").fetchall()


def test_sqlite_backup_restores_the_same_rows_and_files(
    vaultwarden: tuple[Job, dict[str, str], Path], pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    job, env, backup_dir = vaultwarden
    started = time.time()
    result = run_job(job, {**env, "PUSHGATEWAY_URL": pushgateway.url})
    assert result.returncode == 0, result.stderr

    (name,) = backups(backup_dir, "vaultwarden")
    copy = backup_dir / name
    restored = tmp_path / "restored.sqlite3"
    restored.write_bytes((copy / "db.sqlite3").read_bytes())
    assert rows(restored) == rows(Path(env["SQLITE_DATABASE"]))
    assert len(rows(restored)) == 500
    data = Path(env["SQLITE_ROOT"])
    assert (copy / "files/attachments/x1/file.bin").read_bytes() == bytes(range(256))
    assert (copy / "files/rsa_key.pem").read_bytes() == (data / "rsa_key.pem").read_bytes()
    assert (copy / "files/config.json").exists()
    assert "does not exist yet; skipped" in result.stderr  # /data/sends is optional

    (push,) = pushgateway.pushes
    assert push.path == "/metrics/job/homeops_backup/service/vaultwarden"
    metrics = parse_metrics(push.body)
    assert started - 1 <= metrics["backup_last_success_timestamp"] <= time.time() + 1
    assert metrics["backup_last_size_bytes"] > 0
    assert metrics["backup_last_duration_seconds"] >= 0
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".")]  # no partial left


def corrupt(database: Path) -> None:
    """Overwrite a page in the middle of the file, as a torn write would."""
    data = bytearray(database.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2048] = b"\xff" * 2048
    database.write_bytes(bytes(data))


def old_backup(backup_dir: Path, stamp: str, age_minutes: float) -> Path:
    folder = backup_dir / f"vaultwarden-{stamp}"
    folder.mkdir()
    (folder / "db.sqlite3").write_bytes(b"previous backup")
    then = time.time() - age_minutes * 60
    os.utime(folder, (then, then))
    return folder


@pytest.mark.parametrize(
    "breakage", ["corrupt-database", "missing-database", "unwritable-target", "disk-full"]
)
def test_a_failed_backup_reports_its_failure_and_keeps_the_previous_ones(
    vaultwarden: tuple[Job, dict[str, str], Path],
    pushgateway: FakePushgateway,
    tmp_path: Path,
    breakage: str,
) -> None:
    job, env, backup_dir = vaultwarden
    # Older than the 30-day retention: a failing job must never be what removes it.
    previous = old_backup(backup_dir, "20240101T000000Z", age_minutes=60 * 24 * 60)
    limit = None
    if breakage == "corrupt-database":
        corrupt(Path(env["SQLITE_DATABASE"]))
    elif breakage == "missing-database":
        Path(env["SQLITE_DATABASE"]).unlink()
    elif breakage == "unwritable-target":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        env["BACKUP_DIR"] = str(blocker / "backup")
    elif breakage == "disk-full":
        limit = 16 * 1024  # the database is larger than this

    result = run_job(job, {**env, "PUSHGATEWAY_URL": pushgateway.url}, file_size_limit=limit)

    assert result.returncode != 0, result.stderr
    if breakage == "disk-full":
        assert "disk I/O error" in result.stderr, result.stderr  # it failed writing the copy
    pushgateway.failure_report("vaultwarden")
    assert backups(backup_dir, "vaultwarden") == [previous.name]
    assert (previous / "db.sqlite3").read_bytes() == b"previous backup"
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".")]


def test_rotation_removes_only_backups_older_than_the_retention(
    vaultwarden: tuple[Job, dict[str, str], Path], pushgateway: FakePushgateway
) -> None:
    job, env, backup_dir = vaultwarden
    expired = old_backup(backup_dir, "20240101T000000Z", age_minutes=31 * 24 * 60)
    recent = old_backup(backup_dir, "20240301T000000Z", age_minutes=29 * 24 * 60)
    other = backup_dir / "plotting-book-20240101T000000Z"  # another service's backup
    other.mkdir()
    os.utime(other, (0, 0))
    stray = backup_dir / "notes.txt"
    stray.write_text("not a backup")

    result = run_job(job, {**env, "PUSHGATEWAY_URL": pushgateway.url})

    assert result.returncode == 0, result.stderr
    kept = backups(backup_dir, "vaultwarden")
    assert expired.name not in kept and recent.name in kept and len(kept) == 2
    assert other.exists() and stray.exists()


def test_after_failing_longer_than_the_retention_one_good_backup_always_remains(
    vaultwarden: tuple[Job, dict[str, str], Path], pushgateway: FakePushgateway
) -> None:
    job, env, backup_dir = vaultwarden
    database = Path(env["SQLITE_DATABASE"])
    good = database.read_bytes()
    last_good = old_backup(backup_dir, "20240101T000000Z", age_minutes=90 * 24 * 60)
    corrupt(database)
    failed = run_job(job, {**env, "PUSHGATEWAY_URL": pushgateway.url})
    assert failed.returncode != 0
    assert backups(backup_dir, "vaultwarden") == [last_good.name]

    database.write_bytes(good)  # repaired: the next run succeeds and only then rotates
    fixed = run_job(job, {**env, "PUSHGATEWAY_URL": pushgateway.url})
    assert fixed.returncode == 0, fixed.stderr
    (newest,) = backups(backup_dir, "vaultwarden")
    assert newest != last_good.name
    assert rows(backup_dir / newest / "db.sqlite3") == rows(database)


@pytest.mark.parametrize(("damage", "ok", "code"), [(False, 1.0, 0), (True, 0.0, 1)])
def test_integrity_check_job_pushes_1_or_0(
    vaultwarden: tuple[Job, dict[str, str], Path],
    pushgateway: FakePushgateway,
    damage: bool,
    ok: float,
    code: int,
) -> None:
    _, env, _ = vaultwarden
    check = load_job(TERRAFORM / "stacks" / "vaultwarden", "integrity_check")
    if damage:
        corrupt(Path(env["SQLITE_DATABASE"]))
    result = run_job(
        check, {"SQLITE_DATABASE": env["SQLITE_DATABASE"], "PUSHGATEWAY_URL": pushgateway.url}
    )
    assert result.returncode == code, result.stderr
    (push,) = pushgateway.pushes
    assert push.path == "/metrics/job/homeops_integrity/service/vaultwarden"
    metrics = parse_metrics(push.body)
    assert metrics["sqlite_integrity_ok"] == ok
    assert abs(metrics["sqlite_integrity_last_check_timestamp"] - time.time()) < 60
