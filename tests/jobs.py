"""Run the backup jobs that ``out/terraform`` describes, the way their containers would.

A job is read back from the generated ``backup.tf``: its script (decoded as Terraform hands
it to the container), its shell, and its environment. Tests then point the environment at
temporary folders and loopback servers and run the script for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conftest import require_tool
from hcl import SecretRef, container, env_of, find_resources, load_tf, shell_script


@dataclass(frozen=True)
class Job:
    """One container of a generated ``kubernetes_cron_job_v1``."""

    script: str
    shell: str
    image: str
    env: Mapping[str, str | SecretRef]


def load_job(stack: Path, resource: str = "backup") -> Job:
    """The job of ``resource`` in ``stack/backup.tf``."""
    body = find_resources(load_tf(stack / "backup.tf"), "kubernetes_cron_job_v1")[resource]
    (only,) = _containers(body)
    box = container(body, only)
    values = {k: v for k, v in env_of(box).items() if isinstance(v, str | SecretRef)}
    return Job(shell_script(box), box["command"][0], box["image"], values)


def _containers(body: Mapping[str, object]) -> list[str]:
    spec = body["spec"][0]["job_template"][0]["spec"][0]["template"][0]["spec"][0]  # type: ignore[index]
    return [c["name"] for c in spec["container"]]


def shell_argv(shell: str) -> list[str]:
    """How to run a script under the shell its image has: busybox ash for /bin/sh (Alpine),
    bash for /bin/bash. Debian's dash is never used: it lacks ``set -o pipefail``."""
    if shell == "/bin/bash":
        return [require_tool("bash"), "-c"]
    return [require_tool("busybox"), "sh", "-c"]


def job_env(job: Job, overrides: Mapping[str, str]) -> dict[str, str]:
    """The job's environment with ``overrides``; every secret must be overridden."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    for name, value in job.env.items():
        if isinstance(value, SecretRef):
            if name not in overrides:
                raise KeyError(f"the job reads {name} from Secret {value.name}: give it a value")
            continue
        env[name] = value
    env.update(overrides)
    return env


def run_job(
    job: Job,
    overrides: Mapping[str, str],
    *,
    path: list[Path] | None = None,
    file_size_limit: int | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the job's script; ``path`` folders go first on PATH (stubs, a fake clock)."""
    env = job_env(job, overrides)
    if path:
        env["PATH"] = os.pathsep.join([*map(str, path), env["PATH"]])
    preexec: Callable[[], None] | None = None
    if file_size_limit is not None:
        preexec = _limit_file_size(file_size_limit)
    return subprocess.run(
        [*shell_argv(job.shell), job.script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


def _limit_file_size(limit: int) -> Callable[[], None]:
    """A disk that fills up: writes past ``limit`` bytes fail (RLIMIT_FSIZE, root or not)."""

    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def fake_clock(bin_dir: Path, epoch: int) -> Path:
    """A ``date`` that always answers for ``epoch`` (format and TZ still honoured)."""
    real = shutil.which("date")
    assert real is not None
    bin_dir.mkdir(parents=True, exist_ok=True)
    stub = bin_dir / "date"
    stub.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            exec {real} -d @{epoch} "$@"
            """
        )
    )
    stub.chmod(0o755)
    return bin_dir


def without_programs(bin_dir: Path, *names: str) -> Path:
    """A folder that mirrors every program on PATH except ``names`` (use it as the whole PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = bin_dir / entry.name
            if entry.name in names or link.exists() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    return bin_dir


def backups(folder: Path, service: str) -> list[str]:
    """The finished backups of ``service`` in ``folder``, oldest first."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f"{service}-"))
