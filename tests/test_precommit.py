"""homeops_gen as a pre-commit hook, run by the real ``pre-commit``.

The hook repository is a throwaway git repository holding the current working tree of this
one (what git would track), so the test proves the hook as it is on disk, not as of the last
commit. Each test runs pre-commit in its own temporary git repository with a copy of
``services.yaml``; the hook's environment (a virtualenv with homeops_gen and its dependencies,
installed by pip from the configured index) is built once per module in PRE_COMMIT_HOME.
Nothing is written outside the temporary folders (PRE_COMMIT_HOME, virtualenv's app data and
pip's cache all point into them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool, run_module, snapshot_of

pytestmark = pytest.mark.tool("pre-commit")

MANIFEST = REPO / ".pre-commit-hooks.yaml"
HOOK_ID = "homeops-gen"

#: Environment variables that would make git or pre-commit act on another repository, skip
#: hooks, or let the hook import this source tree instead of its installed package.
_LEAKY = {"PRE_COMMIT", "PRE_COMMIT_HOME", "SKIP", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}


def _hook() -> dict[str, object]:
    (hook,) = (
        h for h in yaml.safe_load(MANIFEST.read_text(encoding="utf-8")) if h["id"] == HOOK_ID
    )
    return hook


def _pre_commit_exe() -> str:
    """The venv's pre-commit (beside this interpreter) first, then PATH."""
    beside = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    return beside or require_tool("pre-commit")


@dataclass(frozen=True)
class Result:
    code: int
    output: str

    def status(self, word: str) -> bool:
        """Whether pre-commit's line for the hook ends in ``word`` (Passed, Failed, ...)."""
        name = re.escape(str(_hook()["name"]))
        return re.search(rf"^{name}\.+{re.escape(word)}$", self.output, re.MULTILINE) is not None


@dataclass(frozen=True)
class HookRepo:
    """The throwaway hook repository, its commit, and the environment pre-commit runs in."""

    path: Path
    rev: str
    env: dict[str, str]
    exe: str


@dataclass
class Repo:
    """A user's repository with services.yaml and a .pre-commit-config.yaml using the hook."""

    path: Path
    hook: HookRepo

    def git(self, *args: str) -> str:
        return _git(*args, cwd=self.path, env=self.hook.env)

    def pre_commit(self, *args: str) -> Result:
        proc = subprocess.run(
            [self.hook.exe, *args, "--color=never"],
            cwd=self.path,
            env=self.hook.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        return Result(proc.returncode, proc.stdout + proc.stderr)

    def staged(self) -> list[str]:
        return self.git("diff", "--cached", "--name-only").splitlines()

    def unstaged(self) -> list[str]:
        return self.git("diff", "--name-only").splitlines()

    def untracked(self) -> list[str]:
        return self.git("ls-files", "--others", "--exclude-standard").splitlines()

    def commit(self, message: str) -> None:
        self.git("commit", "--quiet", "--no-verify", "-m", message)

    def generate_and_commit(self) -> None:
        """The first run writes out/ (and so fails); commit what it wrote."""
        first = self.pre_commit("run", "--all-files")
        assert first.code == 1, first.output
        self.git("add", "out")
        self.commit("Generate out/")
        assert self.git("status", "--porcelain") == ""


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [require_tool("git"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _init_repo(path: Path, env: dict[str, str]) -> None:
    _git("init", "--quiet", "--initial-branch=main", str(path), cwd=path.parent, env=env)
    for key, value in {
        "user.name": "homeops test",
        "user.email": "homeops-test@example.invalid",
        "commit.gpgsign": "false",
        "tag.gpgsign": "false",
        "core.autocrlf": "false",
    }.items():
        _git("config", key, value, cwd=path, env=env)


def _isolated_env(root: Path) -> dict[str, str]:
    """This environment, with pre-commit's, virtualenv's and pip's caches below ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in _LEAKY}
    env.update(
        PRE_COMMIT_HOME=str(root / "pre-commit-home"),
        VIRTUALENV_OVERRIDE_APP_DATA=str(root / "virtualenv-app-data"),
        PIP_CACHE_DIR=str(root / "pip-cache"),
    )
    return env


def _working_tree_files() -> list[str]:
    """What git would track in this repository now: tracked and untracked, less ignored."""
    listed = _git(
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        cwd=REPO,
        env=dict(os.environ),
    )
    return sorted({name for name in listed.split("\0") if name and (REPO / name).is_file()})


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> HookRepo:
    exe = _pre_commit_exe()
    root = tmp_path_factory.mktemp("precommit")
    env = _isolated_env(root)

    # This repository's working tree as a throwaway repository: pre-commit clones by rev.
    source = root / "homeops-gen"
    source.mkdir()
    _init_repo(source, env)
    for name in _working_tree_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    assert (source / ".pre-commit-hooks.yaml").is_file()
    _git("add", "--all", cwd=source, env=env)
    _git("commit", "--quiet", "-m", "Working tree of homeops-gen", cwd=source, env=env)
    rev = _git("rev-parse", "HEAD", cwd=source, env=env).strip()
    hook = HookRepo(source, rev, env, exe)

    # Build the hook's environment once (pip installs homeops_gen and its dependencies).
    seed = _new_repo(root / "seed", hook)
    built = seed.pre_commit("install-hooks")
    assert built.code == 0, built.output
    assert "Installing environment for" in built.output
    return hook


def _new_repo(path: Path, hook: HookRepo) -> Repo:
    path.mkdir()
    _init_repo(path, hook.env)
    shutil.copy2(REPO / "services.yaml", path / "services.yaml")
    (path / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {hook.path.as_posix()}\n"
        f"    rev: {hook.rev}\n"
        "    hooks:\n"
        f"      - id: {HOOK_ID}\n",
        encoding="utf-8",
    )
    repo = Repo(path, hook)
    repo.git("add", "services.yaml", ".pre-commit-config.yaml")
    repo.commit("Catalog and pre-commit config")
    return repo


@pytest.fixture
def repo(hook_repo: HookRepo, tmp_path: Path) -> Repo:
    return _new_repo(tmp_path / "homelab", hook_repo)


@pytest.fixture
def generated(repo: Repo) -> Repo:
    """A repository whose out/ was generated by the hook and committed."""
    repo.generate_and_commit()
    return repo


def test_manifest_is_valid_and_runs_the_console_script(tmp_path: Path) -> None:
    proc = subprocess.run(
        [_pre_commit_exe(), "validate-manifest", str(MANIFEST)],
        env=_isolated_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hook = _hook()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    script, *options = str(hook["entry"]).split()
    assert script in scripts and options == ["--exit-non-zero-on-write"]
    assert scripts[script] == "homeops_gen.cli:main"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert hook["always_run"] is False
    assert hook["require_serial"] is True
    files = re.compile(str(hook["files"]))
    assert files.search("services.yaml")
    assert files.search("templates/terraform/backup.tf.j2")
    assert not files.search("README.md")
    assert files.search("out/catalog/resolved.yaml")  # a hand edit under out/ runs the hook
    assert not files.search("homelab/services.yaml")


def test_first_run_generates_out_then_a_clean_repo_passes(repo: Repo) -> None:
    first = repo.pre_commit("run", "--all-files")
    # pre-commit sees a hook's changes through `git diff`, blind to the untracked files of a
    # new out/; --exit-non-zero-on-write fails the run that created them all the same.
    assert first.code == 1, first.output
    assert first.status("Failed"), first.output
    assert "- exit code: 1" in first.output and "created" in first.output
    assert (repo.path / "out" / ".homeops_gen-manifest").is_file()
    assert (repo.path / "out" / "terraform" / "stacks" / "vaultwarden" / "backup.tf").is_file()
    assert repo.git("status", "--porcelain") == "?? out/\n"

    repo.git("add", "out")
    repo.commit("Generate out/")
    before = snapshot_of(repo.path / "out")
    again = repo.pre_commit("run", "--all-files")
    assert again.code == 0, again.output
    assert again.status("Passed"), again.output
    assert "files were modified by this hook" not in again.output
    assert snapshot_of(repo.path / "out") == before
    assert repo.git("status", "--porcelain") == ""


def test_catalog_edit_fails_and_leaves_regenerated_files_unstaged(generated: Repo) -> None:
    repo = generated
    catalog = repo.path / "services.yaml"
    text = catalog.read_text(encoding="utf-8")
    vaultwarden = text.index("  - name: vaultwarden\n")
    cadence = text.index("    cadence: 6h\n", vaultwarden)
    catalog.write_text(
        text[:cadence] + "    cadence: 4h\n" + text[cadence + len("    cadence: 6h\n") :],
        encoding="utf-8",
    )
    repo.git("add", "services.yaml")

    failed = repo.pre_commit("run")
    assert failed.code == 1, failed.output
    assert failed.status("Failed"), failed.output
    assert f"- hook id: {HOOK_ID}" in failed.output
    assert "files were modified by this hook" in failed.output
    assert "update terraform/stacks/vaultwarden/backup.tf" in failed.output
    regenerated = {
        "out/terraform/stacks/vaultwarden/backup.tf",
        "out/prometheus/rules/backup-vaultwarden.rules.yaml",
        "out/prometheus/tests/backup-vaultwarden.test.yaml",
        "out/kubernetes/monitoring/prometheusrules/backup-vaultwarden.yaml",
    }
    assert regenerated <= set(repo.unstaged()), repo.unstaged()
    assert repo.staged() == ["services.yaml"]
    # What the hook left in the work tree is exactly out/ for the edited catalog.
    assert run_module("--check", "-q", cwd=repo.path).code == 0

    repo.git("add", "out")
    passed = repo.pre_commit("run")
    assert passed.code == 0, passed.output
    assert passed.status("Passed"), passed.output
    assert repo.unstaged() == []
    assert regenerated <= set(repo.staged())


def test_new_service_fails_through_the_manifest(generated: Repo) -> None:
    """A new service's files are new (untracked), but out/'s manifest is tracked and changes."""
    repo = generated
    with (repo.path / "services.yaml").open("a", encoding="utf-8") as catalog:
        catalog.write(
            "  - name: notes\n"
            "    namespace: notes\n"
            "    storage: iscsi\n"
            "    churn: low\n"
            "    engine: sqlite\n"
            "    criticality: critical\n"
            "    cadence: 6h\n"
            "    integrity: hourly\n"
            "    sqlite: {claim: notes-data, database: /data/notes.db}\n"
        )
    repo.git("add", "services.yaml")

    failed = repo.pre_commit("run")
    assert failed.code == 1, failed.output
    assert "files were modified by this hook" in failed.output
    assert "out/.homeops_gen-manifest" in repo.unstaged()
    assert "out/terraform/stacks/notes/backup.tf" in repo.untracked()
    assert repo.staged() == ["services.yaml"]

    repo.git("add", "out")
    passed = repo.pre_commit("run")
    assert passed.code == 0, passed.output
    assert passed.status("Passed"), passed.output


def test_template_edit_runs_the_hook(generated: Repo) -> None:
    repo = generated
    override = repo.path / "templates" / "markdown" / "index.md.j2"
    override.parent.mkdir(parents=True)
    packaged = (REPO / "templates" / "markdown" / "index.md.j2").read_text(encoding="utf-8")
    override.write_text(packaged + "\nOverridden in this homelab.\n", encoding="utf-8")
    repo.git("add", "templates")

    failed = repo.pre_commit("run")
    assert failed.code == 1, failed.output
    assert "files were modified by this hook" in failed.output
    assert repo.unstaged() == ["out/README.md"]
    assert "Overridden in this homelab." in (repo.path / "out" / "README.md").read_text()


def test_a_hand_edit_under_out_is_refused_and_put_back(generated: Repo) -> None:
    """A commit that only touches out/ (no catalog or template change) still runs the hook:
    the generate writes the file back, so the commit fails and the edit is undone in the
    work tree (still staged, for the user to drop)."""
    repo = generated
    edited = repo.path / "out" / "kubernetes" / "monitoring" / "prometheusrules"
    target = sorted(edited.glob("*.yaml"))[0]
    original = target.read_text(encoding="utf-8")
    target.write_text(original.replace("for: ", "for: 1", 1), encoding="utf-8")
    repo.git("add", str(target.relative_to(repo.path)))
    assert repo.staged() == [target.relative_to(repo.path).as_posix()]

    failed = repo.pre_commit("run")
    assert failed.code == 1, failed.output
    assert failed.status("Failed"), failed.output
    assert "files were modified by this hook" in failed.output
    assert target.read_text(encoding="utf-8") == original
    # Committing through git's own hook is refused too.
    repo.pre_commit("install")
    committed = subprocess.run(
        ["git", "commit", "-m", "hand edit"],
        cwd=repo.path,
        env=repo.hook.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert committed.returncode != 0, committed.stdout + committed.stderr
    assert repo.git("log", "--format=%s", "-1") == "Generate out/\n"


def test_catalog_error_fails_at_its_line_and_writes_nothing(generated: Repo) -> None:
    repo = generated
    catalog = repo.path / "services.yaml"
    lines = catalog.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("  - name: vaultwarden\n")
    offset = next(i for i in range(start, len(lines)) if lines[i] == "    retention: 30d\n")
    index = sum(line.startswith("  - name: ") for line in lines[:start])
    lines[offset] = "    retension: 30d\n"
    catalog.write_text("".join(lines), encoding="utf-8")
    repo.git("add", "services.yaml")
    before = snapshot_of(repo.path / "out")

    failed = repo.pre_commit("run")
    assert failed.code == 1, failed.output
    assert failed.status("Failed"), failed.output
    assert "- exit code: 2" in failed.output
    assert (
        f"services.yaml:{offset + 1}:5: services[{index}].retension: unknown field 'retension'; "
        "did you mean 'retention'?" in failed.output
    )
    assert "nothing was written" in failed.output
    assert "files were modified by this hook" not in failed.output
    assert snapshot_of(repo.path / "out") == before
    assert repo.unstaged() == []
    assert repo.staged() == ["services.yaml"]


def test_other_files_do_not_run_the_hook(generated: Repo) -> None:
    repo = generated
    (repo.path / "README.md").write_text("# My homelab\n", encoding="utf-8")
    repo.git("add", "README.md")
    before = snapshot_of(repo.path / "out")

    skipped = repo.pre_commit("run")
    assert skipped.code == 0, skipped.output
    assert skipped.status("(no files to check)Skipped"), skipped.output
    assert snapshot_of(repo.path / "out") == before
    assert repo.staged() == ["README.md"]
