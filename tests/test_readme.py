"""The README's code blocks, run, so that the README cannot drift from the code.

Every fenced block of README.md (as CommonMark reads it, with markdown-it-py) is classified by
its info string and content, and each kind is run the way a user would run it:

- ``sh`` / ``bash`` / ``shell`` / ``console``: the commands, one logical line at a time, by
  bash in a fresh ``git clone`` of a scratch repository holding this working tree (tagged
  ``v<version>``), with a virtual environment first on ``PATH``. The environment sees the
  already installed dependencies (``--system-site-packages``), and its ``pip`` installs
  offline: ``--no-deps --no-build-isolation --no-index`` (an editable install builds in
  isolation when the ``editables`` package is missing, which needs the index). The
  placeholders ``<this repository's URL>`` and ``<a tag or commit>`` become
  ``file://localhost/<scratch repository>`` and its tag;
- ``python``: a fresh interpreter, in such a clone, with the clone on ``PYTHONPATH``; a block
  whose first line is ``# <path>.py`` is that module: written there and imported;
- ``yaml``: a catalog (``version: homeops/v1`` and ``services``) is loaded by homeops_gen's
  loader; a GitHub workflow is checked and its ``run:`` steps run in a scratch repository
  holding ``services.yaml`` and its ``out/`` (:func:`test_workflow_sample`); a pre-commit
  configuration must use this repository's hooks (tests/test_precommit.py runs the hook);
- ``toml``: a plug-in's entry points, compared with tests/plugins/homeops-gen-example.

A block that must not run carries a marker right before its fence: ``<!-- not run: REASON
-->`` for the whole block, or ``<!-- not run `COMMAND`: REASON -->`` for one command of a shell
block. Any other block the test cannot classify fails :func:`test_every_block_is_run_or_marked`,
so a new example is run by default.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool
from markdown_it import MarkdownIt
from packaging.specifiers import SpecifierSet

import homeops_gen
from homeops_gen import HomeopsError, load_catalog_text

README = REPO / "README.md"
PLUGIN = REPO / "tests" / "plugins" / "homeops-gen-example"
URL_PLACEHOLDER = "<this repository's URL>"
REV_PLACEHOLDER = "<a tag or commit>"
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}

#: Variables that would point git, pip or Python at another repository or environment.
_LEAKY = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH"}
_MARKER = re.compile(r"not run(?: `(?P<command>[^`]+)`)?:\s*(?P<reason>\S.*)", re.DOTALL)
_MODULE_LINE = re.compile(r"#\s*(?P<path>[\w/]+\.py)\s*$")


# --- the blocks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string, its text and the markers before it."""

    line: int  # 1-based line of the opening fence
    section: str  # the heading it is under
    info: str
    text: str
    markers: tuple[tuple[str | None, str], ...]  # (command or None for the block, reason)

    @property
    def lang(self) -> str:
        return self.info.split()[0].lower() if self.info.strip() else ""

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason the whole block is not run, when it is marked so."""
        return next((reason for command, reason in self.markers if command is None), None)

    @property
    def commands_not_run(self) -> dict[str, str]:
        return {command: reason for command, reason in self.markers if command is not None}


def _read_blocks(text: str) -> list[Block]:
    tokens = MarkdownIt("commonmark").parse(text)
    blocks: list[Block] = []
    section = ""
    markers: list[tuple[str | None, str]] = []
    for index, token in enumerate(tokens):
        if token.type == "inline" and index and tokens[index - 1].type == "heading_open":
            section = token.content
        if token.type == "html_block":
            comment = token.content.strip()
            body = comment.removeprefix("<!--").removesuffix("-->").strip()
            if comment.startswith("<!--") and body.startswith("not run"):
                match = _MARKER.fullmatch(" ".join(body.split()))
                assert match, f"README.md:{token.map[0] + 1}: malformed marker {comment!r}"
                markers.append((match["command"], match["reason"]))
                continue
        if token.type in ("fence", "code_block"):
            assert token.map is not None
            info = token.info if token.type == "fence" else ""
            blocks.append(Block(token.map[0] + 1, section, info, token.content, tuple(markers)))
        # A marker applies to the block right after it (blank lines aside), nothing further.
        markers = [] if token.type != "html_block" else markers
    return blocks


def _yaml(block: Block) -> object:
    try:
        return yaml.safe_load(block.text)
    except yaml.YAMLError:
        return None


def _module_path(block: Block) -> str | None:
    """``homeops_gen_example/__init__.py`` for a Python block that names its file first."""
    first = block.text.split("\n", 1)[0]
    match = _MODULE_LINE.fullmatch(first)
    return match["path"] if match else None


def kind(block: Block) -> str | None:
    """What the test does with the block, or None when it cannot tell."""
    if block.not_run:
        return "not run"
    if block.lang in SHELL:
        return "shell"
    if block.lang in PYTHON:
        return "python module" if _module_path(block) else "python"
    if block.lang in ("yaml", "yml"):
        data = _yaml(block)
        if isinstance(data, dict):
            if data.get("version") == "homeops/v1" and "services" in data:
                return "catalog"
            if "jobs" in data and ("on" in data or True in data):  # YAML 1.1 reads `on` as true
                return "workflow"
            if "repos" in data:
                return "pre-commit config"
    if block.lang == "toml":
        data = tomllib.loads(block.text)
        if "homeops_gen.generators" in data.get("project", {}).get("entry-points", {}):
            return "plug-in pyproject"
    return None


BLOCKS = _read_blocks(README.read_text(encoding="utf-8"))


def blocks_of(which: str) -> list[Block]:
    return [block for block in BLOCKS if kind(block) == which]


def _params(which: str) -> list[object]:
    return [pytest.param(block, id=block.id) for block in blocks_of(which)]


def test_every_block_is_run_or_marked() -> None:
    unknown = [f"{b.id} ({b.info or 'no info string'})" for b in BLOCKS if kind(b) is None]
    assert not unknown, (
        "README blocks the test cannot run; make them runnable, teach tests/test_readme.py, or "
        "put `<!-- not run: REASON -->` right before the fence: " + ", ".join(unknown)
    )
    counts = {which: len(blocks_of(which)) for which in ("shell", "python", "workflow")}
    assert counts["shell"] >= 3 and counts["python"] >= 2 and counts["workflow"] == 1, counts
    for block in BLOCKS:
        if block.commands_not_run:
            assert kind(block) == "shell", f"{block.id}: a command marker on a non-shell block"
            assert block.not_run is None, f"{block.id}: marked as a whole and per command"


# --- the repository, clones and virtual environments -----------------------------------------


@dataclass(frozen=True)
class Source:
    """The scratch repository: this working tree committed and tagged."""

    path: Path
    tag: str
    commit: str

    @property
    def url(self) -> str:
        # pip (packaging) wants a host in a git+file URL: file://localhost/<absolute path>.
        return "file://localhost" + self.path.as_posix()

    def substitute(self, text: str) -> str:
        return text.replace(URL_PLACEHOLDER, self.url).replace(REV_PLACEHOLDER, self.tag)


def _env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _LEAKY and not k.startswith(("GIT_", "PIP_"))
    }
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def _git(*args: str, cwd: Path) -> str:
    proc = _run([require_tool("git"), *args], cwd=cwd, env=_env())
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _working_tree_files() -> list[str]:
    """What git would track in this repository now: tracked and untracked, less ignored."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    return sorted({name for name in listed.split("\0") if name and (REPO / name).is_file()})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """This working tree (not only HEAD: the README and code as they are on disk), committed
    to a scratch repository and tagged ``v<version>``, as a user's clone or pip would see it."""
    root = tmp_path_factory.mktemp("readme")
    path = root / "homeops_gen"
    path.mkdir()
    for name in _working_tree_files():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    _git("init", "--quiet", "--initial-branch=main", cwd=path)
    for key, value in {
        "user.name": "homeops test",
        "user.email": "homeops-test@example.invalid",
        "commit.gpgsign": "false",
        "tag.gpgsign": "false",
        "core.autocrlf": "false",
    }.items():
        _git("config", key, value, cwd=path)
    _git("add", "--all", cwd=path)
    _git("commit", "--quiet", "-m", "Working tree of homeops_gen", cwd=path)
    version = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    tag = f"v{version}"
    _git("tag", tag, cwd=path)
    return Source(path, tag, _git("rev-parse", "HEAD", cwd=path).strip())


@pytest.fixture
def clone(source: Source, tmp_path: Path) -> Path:
    """A fresh clone, with ``../shared`` (the CRDs some tests read) beside it when it exists."""
    target = tmp_path / "homeops_gen"
    _git("clone", "--quiet", str(source.path), str(target), cwd=tmp_path)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (tmp_path / "shared").symlink_to(shared, target_is_directory=True)
    return target


#: ``pip`` inside the test's virtual environments: dependencies are already installed.
_PIP = '''\
#!{python}
"""pip, offline: installs without dependencies and builds with the installed hatchling."""
import importlib.util
import subprocess
import sys

args = sys.argv[1:]
if args[:1] == ["install"]:
    extra = ["--no-deps"]
    editable = any(a in ("-e", "--editable") or a.startswith("--editable=") for a in args)
    # hatchling's editable wheel needs `editables`; without it, let pip fetch it (online).
    if not editable or importlib.util.find_spec("editables") is not None:
        extra += ["--no-build-isolation", "--no-index"]
    args = ["install", *extra, *args[1:]]
raise SystemExit(subprocess.call([sys.executable, "-m", "pip", *args]))
'''


def _purelib(python: Path) -> Path:
    proc = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=python.parent,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def make_venv(path: Path) -> Path:
    """A virtual environment over this one's packages, with the offline ``pip`` above."""
    proc = _run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)],
        cwd=path.parent,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    python = path / "bin" / "python"
    if sys.prefix != sys.base_prefix:
        # Run from a virtual environment (.ci/run's): --system-site-packages reaches only the
        # base interpreter's packages, so add this environment's as site directories.
        lines = [f"import site; site.addsitedir({p!r})\n" for p in _site_dirs()]
        (_purelib(python) / "_homeops_readme_outer.pth").write_text("".join(lines), "utf-8")
    for name in ("pip", "pip3"):
        wrapper = path / "bin" / name
        wrapper.write_text(_PIP.format(python=python), encoding="utf-8")
        wrapper.chmod(0o755)
    return path


def _site_dirs() -> list[str]:
    import site

    return [p for p in site.getsitepackages() if Path(p).is_dir()]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return make_venv(tmp_path / "venv")


def _imported_from(venv: Path, cwd: Path) -> Path:
    """Where the environment's ``python`` imports homeops_gen from, run outside any clone."""
    proc = _run(
        [str(venv / "bin" / "python"), "-c", "import homeops_gen; print(homeops_gen.__file__)"],
        cwd=cwd,
        env=_env(venv),
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip()).resolve()


# --- shell blocks ----------------------------------------------------------------------------


def command_lines(block: Block) -> list[str]:
    """The block's logical command lines (continuations joined, comments and output left out)."""
    lines: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        if block.lang == "console":
            if not (pending or raw.startswith("$ ")):
                continue  # output
            raw = raw if pending else raw[2:]
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line, pending = (pending + raw).strip(), ""
        if line and not line.startswith("#"):
            lines.append(line)
    assert not pending, f"{block.id}: a continuation line ends the block"
    return lines


def shell_script(block: Block, source: Source) -> str:
    """Bash for the block: each line must succeed (a failed ``a && b`` stops the script too,
    which ``set -e`` would not do), a command marked not run is replaced by ``:``."""
    skipped = block.commands_not_run
    seen: set[str] = set()
    script = ["set -o pipefail"]
    for line in command_lines(block):
        assert "<<" not in line, f"{block.id}: here-documents are not supported"
        parts = []
        for part in line.split(" && "):
            if part.strip() in skipped:
                seen.add(part.strip())
                part = ": not run"
            parts.append(part)
        command = source.substitute(" && ".join(parts))
        script.append(
            f"{command} || {{ status=$?; "
            f"echo 'README command failed (exit '$status'):' {shlex.quote(line)} >&2; "
            "exit $status; }"
        )
    missing = set(skipped) - seen
    assert not missing, f"{block.id}: markers name commands the block does not have: {missing}"
    return "\n".join(script) + "\n"


def run_shell(block: Block, source: Source, cwd: Path, venv: Path) -> None:
    script = cwd.parent / f"readme-{block.line}.sh"
    script.write_text(shell_script(block, source), encoding="utf-8")
    proc = _run(
        [require_tool("bash"), "--noprofile", "--norc", str(script)], cwd=cwd, env=_env(venv)
    )
    assert proc.returncode == 0, f"{block.id}:\n{block.text}\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("block", _params("shell"))
def test_shell_block(block: Block, source: Source, clone: Path, venv: Path) -> None:
    run_shell(block, source, clone, venv)
    commands = [part.strip() for line in command_lines(block) for part in line.split(" && ")]
    commands = [c for c in commands if c not in block.commands_not_run]

    if any(c.startswith("pip install") for c in commands):
        # The environment's homeops_gen is the one just installed (into it, or editable from
        # the clone), never this repository's own installation.
        where = _imported_from(venv, clone.parent)
        assert where.is_relative_to(venv.resolve()) or where.is_relative_to(clone.resolve()), where
    if "python -m homeops_gen" in commands:
        # The main job ran on the bundled services.yaml, and out/ is now up to date.
        assert (clone / "out" / ".homeops_gen-manifest").is_file()
        check = _run(
            [str(venv / "bin" / "python"), "-m", "homeops_gen", "--check", "-q"],
            cwd=clone,
            env=_env(venv),
        )
        assert check.returncode == 0, check.stdout + check.stderr
    for command in commands:
        words = list(shlex.shlex(command, posix=True, punctuation_chars=True))
        for redirect, target in itertools.pairwise(words):
            if redirect not in (">", ">>"):
                continue
            # What the command writes is there, and is JSON when it says so.
            written = clone / target
            assert written.is_file() and written.stat().st_size, f"{command}: nothing written"
            if written.suffix == ".json":
                json.loads(written.read_text(encoding="utf-8"))


def test_two_commands_are_generate_and_the_tests() -> None:
    """The top of the README: one command runs the main job on the bundled services.yaml, one
    passes the tests, and .ci/run runs that one as it is written."""
    (block,) = [b for b in BLOCKS if b.section == "Two commands"]
    generate, tests = command_lines(block)
    assert generate.split(" && ") == ["pip install .", "python -m homeops_gen"]
    assert tests.split(" && ")[-1] == "python -m pytest"
    assert block.commands_not_run.keys() == {"python -m pytest"}
    assert tests in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


# --- Python blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", _params("python"))
def test_python_block(block: Block, clone: Path) -> None:
    proc = _run([sys.executable, "-c", block.text], cwd=clone, env=_env(PYTHONPATH=str(clone)))
    assert proc.returncode == 0, f"{block.id}:\n{block.text}\n{proc.stdout}\n{proc.stderr}"


def _write_module(block: Block, root: Path) -> str:
    """Write a module block at the path its first line names; return the module's name."""
    path = _module_path(block)
    assert path is not None
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.text, encoding="utf-8")
    module = path.removesuffix(".py").replace("/", ".")
    return module.removesuffix(".__init__")


@pytest.mark.parametrize("block", _params("python module"))
def test_python_module_block_imports(block: Block, clone: Path, tmp_path: Path) -> None:
    module = _write_module(block, tmp_path / "modules")
    proc = _run(
        [sys.executable, "-c", f"import {module}"],
        cwd=clone,
        env=_env(PYTHONPATH=os.pathsep.join([str(tmp_path / "modules"), str(clone)])),
    )
    assert proc.returncode == 0, f"{block.id}:\n{proc.stdout}\n{proc.stderr}"


_GENERATE_WITH_PLUGIN = """\
import importlib, sys
from homeops_gen import build_plan, load_catalog, render_plan
importlib.import_module(sys.argv[1])
files = render_plan(build_plan(load_catalog("services.yaml")))
print(repr({p: d for p, d in files.items() if p.startswith("inventory/")}))
"""


def test_plugin_blocks_are_the_example_plugin(clone: Path, tmp_path: Path) -> None:
    """The README's plug-in (its entry point and its module) is tests/plugins' example."""
    (pyproject,) = blocks_of("plug-in pyproject")
    documented = tomllib.loads(pyproject.text)["project"]["entry-points"]
    real = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert documented == real["entry-points"]
    ((name, module),) = documented["homeops_gen.generators"].items()

    (block,) = [b for b in blocks_of("python module") if b.section == "Library"]
    assert _write_module(block, tmp_path / "readme") == module
    outputs = []
    for root in (tmp_path / "readme", PLUGIN):
        proc = _run(
            [sys.executable, "-c", _GENERATE_WITH_PLUGIN, module],
            cwd=clone,
            env=_env(PYTHONPATH=os.pathsep.join([str(root), str(clone)])),
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert "inventory/backup-paths.txt" in outputs[0] and name == "inventory"


def test_documented_errors_are_exported() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    match = re.search(r"Errors derive from `HomeopsError` \(([^)]*)\)", text)
    assert match, "the README's list of public errors moved"
    names = re.findall(r"`(\w+)`", match[1])
    assert names, match[0]
    for name in ["HomeopsError", *names]:
        assert name in homeops_gen.__all__, name
        assert issubclass(getattr(homeops_gen, name), HomeopsError), name


# --- YAML and TOML blocks --------------------------------------------------------------------


@pytest.mark.parametrize("block", _params("catalog"))
def test_catalog_block_loads(block: Block) -> None:
    catalog = load_catalog_text(block.text, block.id)
    assert catalog.services


def test_pre_commit_config_uses_this_repository() -> None:
    """Its placeholders are the workflow's, and its hooks are this repository's."""
    (block,) = blocks_of("pre-commit config")
    (repo,) = yaml.safe_load(block.text)["repos"]
    assert repo["repo"] == URL_PLACEHOLDER and repo["rev"] == REV_PLACEHOLDER
    manifest = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert {hook["id"] for hook in repo["hooks"]} <= {hook["id"] for hook in manifest}


def _steps(workflow: dict[object, object]) -> Iterator[tuple[str, dict[str, object]]]:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict) and jobs
    for name, job in jobs.items():
        assert isinstance(job, dict), name
        assert str(job["runs-on"]).startswith("ubuntu-"), "run: steps are bash on Linux"
        steps = job["steps"]
        assert isinstance(steps, list) and steps, name
        for step in steps:
            assert isinstance(step, dict) and len({"uses", "run"} & set(step)) == 1, step
            yield str(name), step


def test_workflow_sample(source: Source, tmp_path: Path) -> None:
    (block,) = blocks_of("workflow")
    workflow = yaml.safe_load(block.text)
    on = workflow.get("on", workflow.get(True))
    events = set(on) if isinstance(on, list | dict) else {on}
    assert {"push", "pull_request"} <= events, on
    text = block.text
    assert URL_PLACEHOLDER in text and REV_PLACEHOLDER in text, "install from the repository"

    venv = make_venv(tmp_path / "venv")
    checkout = tmp_path / "homelab"
    requires = tomllib.loads((source.path / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["requires-python"]
    ran: list[str] = []
    for _job, step in _steps(workflow):
        if "uses" in step:
            action, _, version = str(step["uses"]).partition("@")
            assert version, f"{action}: pin the action"
            if action == "actions/checkout":
                # The user's repository: services.yaml and the out/ it committed.
                checkout.mkdir()
                shutil.copy2(source.path / "services.yaml", checkout / "services.yaml")
                generate = _run(
                    [sys.executable, "-m", "homeops_gen", "-q"],
                    cwd=checkout,
                    env=_env(PYTHONPATH=str(source.path)),
                )
                assert generate.returncode == 0, generate.stderr
            elif action == "actions/setup-python":
                wanted = str(step["with"]["python-version"])  # type: ignore[index]
                assert SpecifierSet(requires).contains(wanted), (wanted, requires)
            else:
                pytest.fail(f"{action}: teach tests/test_readme.py what this action does")
            continue
        assert checkout.is_dir(), "a run: step before actions/checkout"
        script = tmp_path / f"step-{len(ran)}.sh"
        script.write_text(source.substitute(str(step["run"])) + "\n", encoding="utf-8")
        # GitHub's default for run: on Linux is `bash -e {0}`.
        proc = _run(
            [require_tool("bash"), "--noprofile", "--norc", "-e", str(script)],
            cwd=checkout,
            env=_env(venv, GITHUB_ACTIONS="true", CI="true"),
        )
        assert proc.returncode == 0, f"{step['run']}:\n{proc.stdout}\n{proc.stderr}"
        ran.append(str(step["run"]))
    assert any("pip install" in command for command in ran)
    assert any("check" in command for command in ran)

    # The install step installed homeops_gen from the git repository at the tag.
    (dist_info,) = _purelib(venv / "bin" / "python").glob("homeops_gen-*.dist-info")
    direct = json.loads((dist_info / "direct_url.json").read_text(encoding="utf-8"))
    assert direct["url"] == source.url
    assert direct["vcs_info"]["requested_revision"] == source.tag
    assert direct["vcs_info"]["commit_id"] == source.commit
    assert _imported_from(venv, tmp_path).is_relative_to(venv.resolve())

    # And the check step fails on drift, with an annotation.
    (check,) = [command for command in ran if " check" in command]
    with (checkout / "out" / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("edited\n")
    script = tmp_path / "drift.sh"
    script.write_text(check + "\n", encoding="utf-8")
    proc = _run(
        [require_tool("bash"), "--noprofile", "--norc", "-e", str(script)],
        cwd=checkout,
        env=_env(venv, GITHUB_ACTIONS="true", CI="true"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "::error file=out/README.md::" in proc.stdout
