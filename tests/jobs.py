"""Run the backup jobs that ``out/terraform`` describes, the way their containers would.

A job is read back from the generated stack: its container's command (the image's shell and a
script path), the scripts ConfigMap mounted where that path points (each value evaluated as
Terraform would: ``file()`` of a file beside ``backup.tf``, or the shell module's output),
and its environment. Tests write the ConfigMap's files into a temporary folder, point the
environment at temporary folders and loopback servers and run the script for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from conftest import require_tool
from hcl import (
    SecretRef,
    container,
    env_of,
    evaluate_text,
    find_resources,
    is_expression,
    module_doc,
    pod_spec,
)

_CONFIG_MAP_NAME = re.compile(
    r"kubernetes_config_map_v1\.([A-Za-z_][A-Za-z0-9_-]*)\.metadata\[0\]\.name"
)
_SOURCE_BESIDE = re.compile(r'^\. "\$\{0%/\*\}/([A-Za-z0-9_.-]+)"$', re.MULTILINE)


@dataclass(frozen=True)
class Job:
    """One container of a generated ``kubernetes_cron_job_v1`` and the scripts it runs."""

    #: The container's command: the image's shell, the path of the script it runs and the
    #: script's arguments (the etcd drill's phase).
    command: tuple[str, ...]
    #: Where the scripts ConfigMap is mounted, and its files (name: text).
    mount: str
    files: Mapping[str, str]
    image: str
    env: Mapping[str, str | SecretRef]

    @property
    def shell(self) -> str:
        return self.command[0]

    @property
    def entry(self) -> str:
        """The name, in the ConfigMap, of the script the container runs."""
        return PurePosixPath(self.command[1]).name

    @property
    def script(self) -> str:
        """Everything a run reads: the entry script with each file it sources from beside it
        (``. "${0%/*}/lib.sh"``) put in place of that line."""

        def inline(match: re.Match[str]) -> str:
            return self.files[match.group(1)].rstrip("\n")

        return _SOURCE_BESIDE.sub(inline, self.files[self.entry])

    def argv(self, folder: Path) -> list[str]:
        """Write the ConfigMap's files into ``folder`` (the mount) and return the command that
        runs the entry script from there under the local stand-in for the image's shell."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return [*shell_argv(self.shell), str(folder / self.entry), *self.command[2:]]


def load_job(stack: Path, resource: str = "backup") -> Job:
    """The job of ``resource`` in ``stack/backup.tf``."""
    doc = module_doc(stack)
    body = find_resources(doc, "kubernetes_cron_job_v1")[resource]
    (only,) = _containers(body)
    box = container(body, only)
    values = {k: v for k, v in env_of(box).items() if isinstance(v, str | SecretRef)}
    command = tuple(box["command"])
    if len(command) < 2 or "args" in box:
        raise ValueError(
            f"{stack.name}/{resource}: expected [shell, script, *arguments], got {command!r}"
        )
    mount, files = _scripts(stack, doc, body, box, PurePosixPath(command[1]).parent)
    if PurePosixPath(command[1]).name not in files:
        raise KeyError(f"{stack.name}/{resource}: {command[1]} is not in the scripts ConfigMap")
    return Job(command, mount, files, box["image"], values)


def _scripts(
    stack: Path,
    doc: Mapping[str, object],
    body: Mapping[str, object],
    box: Mapping[str, object],
    folder: PurePosixPath,
) -> tuple[str, dict[str, str]]:
    """The mount path and files of the ConfigMap volume mounted at ``folder``."""
    (mount,) = [m for m in box["volume_mount"] if PurePosixPath(m["mount_path"]) == folder]  # type: ignore[attr-defined]
    (volume,) = [v for v in pod_spec(body)["volume"] if v["name"] == mount["name"]]
    (config_map,) = volume["config_map"]
    reference = config_map["name"]
    match = _CONFIG_MAP_NAME.fullmatch(reference) if is_expression(reference) else None
    if match is None:
        raise ValueError(f"{stack.name}: the scripts volume names {reference!r}, not a resource")
    data = find_resources(doc, "kubernetes_config_map_v1")[match.group(1)]["data"]
    files = {name: evaluate_text(value, stack, doc) for name, value in data.items()}
    return str(folder), files


def _containers(body: Mapping[str, object]) -> list[str]:
    spec = body["spec"][0]["job_template"][0]["spec"][0]["template"][0]["spec"][0]  # type: ignore[index]
    return [c["name"] for c in spec["container"]]


def shell_argv(shell: str) -> list[str]:
    """How to run a script file under the shell its image has: busybox ash for /bin/sh
    (Alpine), bash for /bin/bash. Debian's dash is never used: it lacks ``set -o pipefail``."""
    if shell == "/bin/bash":
        return [require_tool("bash")]
    return [require_tool("busybox"), "sh"]


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
    with tempfile.TemporaryDirectory(prefix="scripts-") as folder:
        return subprocess.run(
            job.argv(Path(folder)),
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
