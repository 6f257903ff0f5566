"""Each generated script calls only programs its image has (README's "Default images").

The scripts are parsed by ``shfmt --to-json`` (mvdan/sh, a real shell parser): every simple
command whose name is a literal word is a call; functions the script defines and shell
builtins are not programs. ``curl`` and ``wget`` are allowed where the script probes for
them first (``command -v``), as ``http_post`` does.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from conftest import REPO, backup_stacks, require_tool
from hcl import find_resources, load_tf, pod_spec
from jobs import load_job

STACKS = REPO / "out" / "terraform" / "stacks"
RUNBOOKS = REPO / "out" / "docs" / "runbooks"
DRILLS = REPO / "out" / "kubernetes" / "drills"
#: Where the backup stacks mount their scripts ConfigMap.
SCRIPTS_MOUNT = "/scripts"
#: Builtins of bash and busybox ash that the scripts use.
BUILTINS = frozenset(
    [
        ":",
        "[",
        ".",
        "break",
        "cd",
        "command",
        "continue",
        "echo",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "kill",
        "local",
        "printf",
        "read",
        "return",
        "set",
        "shift",
        "test",
        "trap",
        "true",
        "type",
        "umask",
        "unset",
        "wait",
    ]
)
PROBED = frozenset({"curl", "wget"})


def declared() -> dict[str, frozenset[str]]:
    """``{image: programs}`` from README's table of default images."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Default images", 1)[1].split("\n\n|", 1)[1]
    lines = ("|" + section).split("\n\n", 1)[0].splitlines()  # the table, to its end
    rows = [line for line in lines if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        image = cells[0].strip("`")
        table[image] = frozenset(cells[3].strip("`").split())
    return table


def calls(script: str) -> set[str]:
    """The literal command names of ``script``, less the functions it defines."""
    shfmt = require_tool("shfmt")
    parsed = subprocess.run(
        [shfmt, "--to-json"], input=script, capture_output=True, text=True, check=True
    )
    names: set[str] = set()
    functions: set[str] = set()

    def literal(word: dict[str, Any]) -> str | None:
        parts = word.get("Parts", [])
        if len(parts) == 1 and parts[0].get("Type") == "Lit":
            return str(parts[0]["Value"])
        return None

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            call = node.get("Type") == "CallExpr" and node.get("Args")
            if call and (name := literal(node["Args"][0])) is not None:
                names.add(name)
            if node.get("Type") == "FuncDecl":
                functions.add(node["Name"]["Value"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(parsed.stdout))
    return names - functions


def scripts() -> Iterator[tuple[str, str, str]]:
    """(where, image, script) of every generated script: backups, checks, restores."""
    for stack in backup_stacks(STACKS):
        jobs = find_resources(load_tf(stack / "backup.tf"), "kubernetes_cron_job_v1")
        for resource in jobs:
            job = load_job(stack, resource)
            yield f"{stack.name}/{resource}", job.image, job.script
        manifest = yaml.safe_load((RUNBOOKS / f"restore-{stack.name}/job.yaml").read_text())
        pod = manifest["spec"]["template"]["spec"]
        (runner,) = [
            box
            for box in [*pod.get("initContainers", []), *pod["containers"]]
            if box["command"][-1].endswith("restore.sh")
        ]
        restore = (RUNBOOKS / f"restore-{stack.name}/restore.sh").read_text()
        yield f"{stack.name}/restore", runner["image"], restore
    # The drills of scratch objects in the cluster: the CronJob's script, the verify Job's.
    for folder in sorted(DRILLS.glob("*/*")):
        yield from _drill_scripts(folder)


def _drill_scripts(folder: Path) -> Iterator[tuple[str, str, str]]:
    lib = (folder / "lib.sh").read_text()
    for manifest in ("cronjob.yaml", "verify-job.yaml"):
        if not (folder / manifest).exists():
            continue
        doc = yaml.safe_load((folder / manifest).read_text())
        spec = doc["spec"]
        pod = (spec["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else spec)["template"]
        (box,) = pod["spec"]["containers"]
        script = (folder / PurePosixPath(box["command"][-1]).name).read_text()
        script = script.replace('. "${0%/*}/lib.sh"', lib)
        yield f"{folder.name}/{manifest}", box["image"], script


@pytest.mark.tool("shfmt")
def test_every_script_calls_only_what_its_image_has() -> None:
    table = declared()
    seen = 0
    for where, image, script in scripts():
        assert image in table, f"{where}: {image} is not in README's image table"
        probed = {p for p in PROBED if re.search(rf"command -v {p}\b", script)}
        missing = calls(script) - BUILTINS - table[image] - probed
        assert not missing, f"{where} ({image}) calls {sorted(missing)}"
        seen += 1
    assert seen >= 2 * len(backup_stacks(STACKS))


def test_exec_form_containers_call_what_their_image_has() -> None:
    """The shell-less containers (etcd's tools image) run a declared program directly."""
    table = declared()
    found = 0
    for stack in backup_stacks(STACKS):
        for body in find_resources(load_tf(stack / "backup.tf"), "kubernetes_cron_job_v1").values():
            for box in pod_spec(body).get("init_container", []):
                if box["command"][1:2] and box["command"][1].startswith(f"{SCRIPTS_MOUNT}/"):
                    continue  # the script in the image's shell (the etcd drill's prepare step)
                assert box["command"][0] in table[box["image"]], (stack.name, box["name"])
                found += 1
        manifest = yaml.safe_load((RUNBOOKS / f"restore-{stack.name}/job.yaml").read_text())
        for box in manifest["spec"]["template"]["spec"]["containers"]:
            if not box["command"][-1].endswith("restore.sh"):
                assert box["command"][0] in table[box["image"]], (stack.name, box["name"])
                found += 1
    assert found == 5  # etcd: snapshot, check, restore; the drill's status and restore


@pytest.mark.tool("shfmt")
def test_the_check_finds_a_program_an_image_lacks() -> None:
    """A script that calls jq in the Alpine image must be caught."""
    table = declared()
    script = 'set -eu\nlog() { printf "%s\\n" "$*"; }\nlog start\njq . < x.json | tail -n 1\n'
    image = "docker.io/library/alpine:3.21.0"
    assert calls(script) - BUILTINS - table[image] == {"jq"}


def test_no_default_image_is_bitnami() -> None:
    assert not [image for image in declared() if "bitnami" in image]
    assert "bitnami" not in "".join(p.read_text() for p in STACKS.rglob("*.tf"))


def test_the_table_names_every_default_image() -> None:
    from homeops_gen.catalog.policy import DEFAULT_IMAGES

    assert {image for image, _ in DEFAULT_IMAGES.values()} <= set(declared())
    shells = {image: shell for image, shell in DEFAULT_IMAGES.values()}
    text = (REPO / "README.md").read_text()
    for image, shell in shells.items():
        assert f"| `{image}` | `{shell}` |" in text


def test_the_nas_monitor_runs_what_its_image_has() -> None:
    """The monitor's exec-form container names a program of its image's README row, and
    the script imports nothing beyond the standard library that image carries."""
    import sys

    table = declared()
    stack = STACKS / "nas-monitor"
    jobs = find_resources(load_tf(stack / "monitor.tf"), "kubernetes_cron_job_v1")
    (body,) = jobs.values()
    (box,) = pod_spec(body)["container"]
    assert box["command"][0] in table[box["image"]]
    script = (stack / "nas_monitor.py").read_text()
    imported = set(
        re.findall(r"^\s*(?:import|from) ([A-Za-z_][A-Za-z0-9_]*)", script, re.MULTILINE)
    )
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported
