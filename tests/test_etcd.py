"""etcd's backup and restore, run for real against etcd on loopback with client TLS.

The generated CronJob's init containers (the tools image's ``etcdctl``, exec form, no shell)
and the restore Job's ``etcdctl snapshot restore`` are run as written, with only their paths
and endpoint moved to this test's folders; the scripts between them run as the other
recipes do (``jobs.py``). Debian's etcd (3.4) stands in for the tools image's (3.5): the
commands used, ``snapshot save|status|restore`` with ``ETCDCTL_*`` flags from the
environment, are the same in both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from engines import EtcdServer, FakePushgateway
from hcl import container, env_of, find_resources, load_tf, pod_spec
from jobs import backups, job_env, load_job, run_job
from test_runbooks import job_manifest, load_restore, run_restore

STACK = REPO / "out" / "terraform" / "stacks" / "etcd"
CERT_DIR = "/etc/kubernetes/pki/etcd"  # where the job mounts kubeadm's certificates
SNAPSHOT_DIR = "/snapshot"
RESTORE_ROOT = "/var/lib/etcd-restore"

pytestmark = pytest.mark.tool("etcd")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def _pki(folder: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and kubeadm's client pair, named as kubeadm
    names them; the client key is 0600, as kubeadm writes it."""
    folder.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=etcd-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, extra in (
        ("server", "/CN=127.0.0.1", ["-extfile", "san.cnf"]),
        ("healthcheck-client", "/CN=kube-etcd-healthcheck-client", []),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
        _openssl("x509", "-req", "-in", f"{name}.csr", *sign, "-out", f"{name}.crt", *extra,
                 cwd=folder)  # fmt: skip
    (folder / "healthcheck-client.key").chmod(0o600)
    return folder


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdServer]:
    require_tool("etcd")
    with EtcdServer(tmp_path / "member", _pki(tmp_path / "pki")) as member:
        for index in range(200):
            member.ctl("put", f"/registry/pods/ns/pod-{index:03d}", f"spec {index}")
        yield member


def _moved(value: str, places: Mapping[str, Path]) -> str:
    """A path of the pod moved to the test's folder that stands in for it."""
    flag, equals, path = value.rpartition("=")
    if equals:  # --data-dir=<path>
        return f"{flag}={_moved(path, places)}"
    for pod_path, here in places.items():
        if value == pod_path or value.startswith(pod_path + "/"):
            return str(here) + value[len(pod_path) :]
    return value


def _run(
    command: list[str], env: Mapping[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """An exec-form container command: no shell, the first word found on PATH. One still
    running at ``timeout`` is killed, as the Job's deadline would (exit -9)."""
    program = shutil.which(command[0], path=env["PATH"])
    assert program, command
    argv = [program, *command[1:]]
    try:
        return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as stopped:
        return subprocess.CompletedProcess(argv, -9, str(stopped.stdout), str(stopped.stderr))


def _init_containers(
    places: Mapping[str, Path], etcd: EtcdServer, timeout: float = 90
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run the backup pod's init containers in order, as the kubelet would; stops at the
    first that fails."""
    pod = pod_spec(find_resources(load_tf(STACK / "backup.tf"), "kubernetes_cron_job_v1")["backup"])
    results = []
    for box in pod["init_container"]:
        env = {name: _moved(str(value), places) for name, value in env_of(box).items()}
        if "ETCDCTL_ENDPOINTS" in env:
            env["ETCDCTL_ENDPOINTS"] = etcd.url  # the node's 127.0.0.1:2379, on a free port
        env["PATH"] = os.environ["PATH"]
        result = _run([_moved(a, places) for a in box["command"]], env, timeout)
        results.append((box["name"], result))
        if result.returncode != 0:
            break
    return results


def test_the_job_takes_checks_and_keeps_a_snapshot_and_the_restore_brings_every_key_back(
    cluster: EtcdServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    assert cluster.pki is not None
    snapshots, backup_dir = tmp_path / "snapshot", tmp_path / "backup"
    snapshots.mkdir()
    backup_dir.mkdir()
    places = {CERT_DIR: cluster.pki, SNAPSHOT_DIR: snapshots}

    ran = _init_containers(places, cluster)
    assert [(name, r.returncode) for name, r in ran] == [("snapshot", 0), ("check", 0)], ran
    assert "REVISION" in ran[1][1].stdout.upper()  # the status table

    job = load_job(STACK)
    env = {
        "BACKUP_DIR": str(backup_dir),
        "PUSHGATEWAY_URL": pushgateway.url,
        "ETCD_SNAPSHOT": _moved(job.env["ETCD_SNAPSHOT"], places),  # type: ignore[arg-type]
    }
    result = run_job(job, env)
    assert result.returncode == 0, result.stderr
    (name,) = backups(backup_dir, "etcd")
    kept = backup_dir / name
    data = (kept / "snapshot.db").read_bytes()
    assert data == (snapshots / "snapshot.db").read_bytes()
    digest = (kept / "snapshot.db.sha256").read_text().split()
    assert digest == [hashlib.sha256(data).hexdigest(), "snapshot.db"]
    assert pushgateway.metrics()["backup_last_run_success"] == 1

    # The restore: the init container's script picks and checks the snapshot, then the
    # Job's etcdctl restores it into a new data directory.
    restore_root, shared = tmp_path / "etcd-restore", tmp_path / "restore-snapshot"
    restore_root.mkdir()
    shared.mkdir()
    moved = {SNAPSHOT_DIR: shared, RESTORE_ROOT: restore_root}
    restore = load_restore("etcd")
    overrides = {
        "BACKUP_DIR": str(backup_dir),
        "ETCD_SNAPSHOT": _moved(str(restore.env["ETCD_SNAPSHOT"]), moved),
        "ETCD_RESTORE_ROOT": str(restore_root),
    }
    selected = run_restore(restore, overrides)
    assert selected.returncode == 0, selected.stderr
    box = _restore_container()
    restored = _run(
        [_moved(a, moved) for a in box["command"]], _env_of(box) | {"PATH": os.environ["PATH"]}
    )
    assert restored.returncode == 0, restored.stderr
    data_dir = restore_root / "data-restored"
    assert (data_dir / "member").is_dir()

    # A member started on the restored directory answers with every key.
    with EtcdServer(data_dir, new=False) as revived:
        keys = revived.ctl("get", "/registry/pods/", "--prefix", "--keys-only").stdout.split()
        assert len(keys) == 200
        value = revived.ctl("get", "/registry/pods/ns/pod-123", "--print-value-only").stdout
        assert value.strip() == "spec 123"

    # A second restore never writes over the first.
    again = run_restore(restore, overrides)
    assert again.returncode != 0 and "already exists" in again.stderr


def _restore_container() -> dict[str, Any]:
    (box,) = job_manifest("etcd")["spec"]["template"]["spec"]["containers"]
    return box  # type: ignore[no-any-return]


def _env_of(box: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in box["env"]}


def test_a_snapshot_etcd_refuses_fails_in_the_init_container_and_nothing_is_kept(
    cluster: EtcdServer, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    """A client certificate etcd does not trust: the snapshot container fails (or, as
    etcdctl 3.4 does, retries until the Job's deadline stops it), the pod never reaches the
    script (BackupJobFailing reports it), and no snapshot is left for it."""
    assert cluster.pki is not None
    stranger = _pki(tmp_path / "other-pki")
    shutil.copy(cluster.pki / "ca.crt", stranger / "ca.crt")  # trusts etcd, is not trusted
    snapshots = tmp_path / "snapshot"
    snapshots.mkdir()
    ran = _init_containers({CERT_DIR: stranger, SNAPSHOT_DIR: snapshots}, cluster, timeout=10)
    assert [name for name, _ in ran] == ["snapshot"]
    assert ran[0][1].returncode != 0
    assert (
        not (snapshots / "snapshot.db").exists() or (snapshots / "snapshot.db").stat().st_size == 0
    )


def test_the_script_fails_and_reports_it_without_a_snapshot(
    pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    env = {
        "BACKUP_DIR": str(backup_dir),
        "PUSHGATEWAY_URL": pushgateway.url,
        "ETCD_SNAPSHOT": str(tmp_path / "missing.db"),
    }
    result = run_job(load_job(STACK), env)
    assert result.returncode != 0
    assert "no snapshot" in result.stderr
    pushgateway.failure_report("etcd")
    assert backups(backup_dir, "etcd") == []


def test_the_pod_runs_etcdctl_from_the_tools_image_and_the_script_from_a_shell_image() -> None:
    body = find_resources(load_tf(STACK / "backup.tf"), "kubernetes_cron_job_v1")["backup"]
    pod = pod_spec(body)
    tools = {box["image"] for box in pod["init_container"]}
    assert tools == {"registry.k8s.io/etcd:3.5.17-0"}
    assert [box["command"][0] for box in pod["init_container"]] == ["etcdctl", "etcdctl"]
    script = container(body, "backup")
    assert script["image"] == "docker.io/library/alpine:3.21.0"
    assert script["command"] == ["/bin/sh", "/scripts/backup.sh"]
    manifest = yaml.safe_load((REPO / "out/docs/runbooks/restore-etcd/job.yaml").read_text())
    assert "bitnami" not in (STACK / "backup.tf").read_text() + yaml.safe_dump(manifest)


def test_a_run_stopped_by_its_deadline_reports_the_failure(
    pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    """A TERM (the pod being stopped) runs the script's trap once the command in progress
    returns (the shell defers it until then): it pushes backup_last_run_success 0 and removes
    the partial folder. A run SIGKILLed first reports nothing; BackupJobFailing covers it."""
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"etcd-snapshot")
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "cp").write_text("#!/bin/sh\nexec sleep 3\n")  # a copy on a slow volume
    (slow / "cp").chmod(0o755)
    job = load_job(STACK)
    overrides = {
        "BACKUP_DIR": str(backup_dir),
        "PUSHGATEWAY_URL": pushgateway.url,
        "ETCD_SNAPSHOT": str(snapshot),
    }
    env = job_env(job, overrides)
    env["PATH"] = f"{slow}:{env['PATH']}"
    with subprocess.Popen(
        job.argv(tmp_path / "scripts"), env=env, stderr=subprocess.PIPE, text=True
    ) as run:
        _wait_for(lambda: any(p.name.endswith(".partial") for p in backup_dir.iterdir()))
        time.sleep(0.3)  # inside cp
        run.terminate()
        _, stderr = run.communicate(timeout=30)
    assert run.returncode == 143, stderr
    pushgateway.failure_report("etcd")
    assert list(backup_dir.iterdir()) == []


def _wait_for(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
