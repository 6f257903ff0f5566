"""The command line: generate, ``--check`` (exit 0 / 1 / 2), templates, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG, CliResult, run_module, snapshot_of

from homeops_gen import registry
from homeops_gen.catalog import load_catalog_text
from homeops_gen.catalog.model import Catalog
from homeops_gen.plan import MANIFEST_NAME, OutputFile, Text, build_plan
from homeops_gen.registry import register_generator
from homeops_gen.render import HEADER

Run = Callable[..., CliResult]


def _generated_files() -> tuple[str, ...]:
    """Every file the built-in generators write for SMALL_CATALOG, the manifest included."""
    catalog = load_catalog_text(SMALL_CATALOG, "services.yaml")
    return tuple(sorted([MANIFEST_NAME, *build_plan(catalog).paths]))


GENERATED = _generated_files()
#: How many files out/ holds for SMALL_CATALOG (grows as generators are added).
N = len(GENERATED)
NOTES_ROW = "| notes | notes | iscsi |"


@pytest.fixture
def proj(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with SMALL_CATALOG, made the working directory (paths stay relative)."""
    root = project()
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def generated(proj: Path, run_cli: Run) -> Path:
    """``proj`` after one successful ``python -m homeops_gen``; returns its out/."""
    result = run_cli()
    assert result.code == 0, result.err
    return proj / "out"


def err_lines(result: CliResult) -> list[str]:
    return result.err.splitlines()


def diff_body(diff: str) -> list[str]:
    """The removed and added lines of a unified diff (headers excluded)."""
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]


def to_crlf(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


# --- a test generator whose file can be made to disappear ------------------------------------

EXTRA_PATH = "extra/notes.txt"


@pytest.fixture
def extra_generator() -> Iterator[dict[str, bool]]:
    """Register ``test-extra``, emitting EXTRA_PATH while ``switch["on"]``; unregistered after."""
    switch = {"on": True}

    @register_generator("test-extra", description="test only")
    def generate_extra(catalog: Catalog) -> Iterator[OutputFile]:
        if switch["on"]:
            yield OutputFile(EXTRA_PATH, Text("extra\n"))

    yield switch
    registry._REGISTRY.pop("test-extra", None)


# --- --check ---------------------------------------------------------------------------------


def test_check_clean(generated: Path, run_cli: Run) -> None:
    result = run_cli("--check")
    assert result.code == 0
    assert result.out == ""
    assert err_lines(result) == [f"homeops_gen: out/ is up to date ({N} files)"]


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("README.md", NOTES_ROW, "| NOTES | notes | iscsi |"),
        ("catalog/resolved.yaml", "backup_path: /mnt/tank/notes-backup", "backup_path: /edited"),
    ],
)
def test_check_edited_file(generated: Path, run_cli: Run, path: str, old: str, new: str) -> None:
    target = generated / path
    text = target.read_text(encoding="utf-8")
    assert text.count(old) == 1
    edited_line = next(line for line in text.splitlines() if old in line)
    target.write_text(text.replace(old, new), encoding="utf-8")

    result = run_cli("--check")

    assert result.code == 1
    assert result.out.startswith(f"--- a/out/{path}\n+++ b/out/{path}\n@@ ")
    assert diff_body(result.out) == [
        "-" + edited_line.replace(old, new),
        "+" + edited_line,
    ]
    assert err_lines(result) == [
        f"changed: {path}",
        "homeops_gen: out/ is out of date: 1 changed; run `python -m homeops_gen` to regenerate it",
    ]


def test_check_deleted_file(generated: Path, run_cli: Run) -> None:
    expected = (generated / "catalog/resolved.yaml").read_text(encoding="utf-8")
    (generated / "catalog/resolved.yaml").unlink()

    result = run_cli("--check")

    assert result.code == 1
    assert result.out.startswith("--- /dev/null\n+++ b/out/catalog/resolved.yaml\n@@ -0,0 +1,")
    assert diff_body(result.out) == ["+" + line for line in expected.splitlines()]
    assert err_lines(result) == [
        "missing: catalog/resolved.yaml",
        "homeops_gen: out/ is out of date: 1 missing; run `python -m homeops_gen` to regenerate it",
    ]


def test_check_stale_owned_file(proj: Path, run_cli: Run, extra_generator: dict[str, bool]) -> None:
    assert run_cli().code == 0
    assert (proj / "out" / EXTRA_PATH).read_text(encoding="utf-8") == f"# {HEADER}\nextra\n"
    extra_generator["on"] = False

    result = run_cli("--check")

    assert result.code == 1
    assert f"--- a/out/{EXTRA_PATH}\n+++ /dev/null\n" in result.out
    assert f"-{EXTRA_PATH}" in diff_body(result.out)  # the manifest no longer lists it
    assert err_lines(result) == [
        f"changed: {MANIFEST_NAME}",
        f"stale: {EXTRA_PATH}",
        "homeops_gen: out/ is out of date: 1 changed, 1 stale; "
        "run `python -m homeops_gen` to regenerate it",
    ]
    assert (proj / "out" / EXTRA_PATH).is_file()


def test_generate_deletes_stale_file_and_its_empty_folder(
    proj: Path, run_cli: Run, extra_generator: dict[str, bool]
) -> None:
    assert run_cli().code == 0
    extra_generator["on"] = False

    result = run_cli()

    assert result.code == 0
    assert err_lines(result) == [
        f"update {MANIFEST_NAME}",
        f"delete {EXTRA_PATH}",
        f"homeops_gen: out/: 1 updated, 1 deleted, {N - 1} unchanged",
    ]
    assert not (proj / "out/extra").exists()
    assert sorted(snapshot_of(proj / "out")) == sorted(GENERATED)
    assert run_cli("--check").code == 0


def test_generate_keeps_a_folder_holding_an_unowned_file(
    proj: Path, run_cli: Run, extra_generator: dict[str, bool]
) -> None:
    assert run_cli().code == 0
    mine = proj / "out/extra/mine.txt"
    mine.write_bytes(b"written by hand\n")
    extra_generator["on"] = False

    assert run_cli().code == 0

    assert not (proj / "out" / EXTRA_PATH).exists()
    assert mine.read_bytes() == b"written by hand\n"


def test_unowned_extra_files_are_left_alone(generated: Path, run_cli: Run) -> None:
    (generated / "notes-by-hand.txt").write_bytes(b"mine\n")
    (generated / "catalog/hand.yaml").write_bytes(b"also mine\n")
    (generated / "mine").mkdir()
    (generated / "mine/deep.txt").write_bytes(b"deep\n")
    before = snapshot_of(generated)

    generate = run_cli()
    check = run_cli("--check")

    assert generate.code == 0
    assert err_lines(generate) == [f"homeops_gen: out/: {N} unchanged"]
    assert check.code == 0
    assert check.out == ""
    assert err_lines(check) == [f"homeops_gen: out/ is up to date ({N} files)"]
    assert snapshot_of(generated) == before


def test_check_without_out_folder_lists_everything_missing(proj: Path, run_cli: Run) -> None:
    result = run_cli("--check")

    assert result.code == 1
    assert err_lines(result) == [
        *(f"missing: {path}" for path in GENERATED),
        f"homeops_gen: out/ is out of date: {N} missing; "
        "run `python -m homeops_gen` to regenerate it",
    ]
    for path in GENERATED:
        assert f"--- /dev/null\n+++ b/out/{path}\n" in result.out
    assert not (proj / "out").exists()
    assert sorted(p.name for p in proj.iterdir()) == ["services.yaml"]


@pytest.mark.parametrize("path", GENERATED)
def test_crlf_only_file_is_up_to_date_and_not_rewritten(
    generated: Path, run_cli: Run, path: str
) -> None:
    to_crlf(generated / path)
    before = snapshot_of(generated)

    check = run_cli("--check")
    generate = run_cli()

    assert check.code == 0
    assert check.out == ""
    assert generate.code == 0
    assert err_lines(generate) == [f"homeops_gen: out/: {N} unchanged"]
    assert snapshot_of(generated) == before
    assert b"\r\n" in (generated / path).read_bytes()


def test_crlf_file_with_a_real_edit_shows_only_that_line(generated: Path, run_cli: Run) -> None:
    readme = generated / "README.md"
    original = readme.read_text(encoding="utf-8")
    row = next(line for line in original.splitlines() if line.startswith(NOTES_ROW))
    readme.write_bytes(
        original.replace(row, row.replace("| notes |", "| NOTES |", 1))
        .replace("\n", "\r\n")
        .encode()
    )

    result = run_cli("--check")

    assert result.code == 1
    assert "\r" not in result.out
    assert diff_body(result.out) == ["-" + row.replace("| notes |", "| NOTES |", 1), "+" + row]
    assert err_lines(result)[0] == "changed: README.md"

    fix = run_cli()
    assert err_lines(fix) == [
        "update README.md",
        f"homeops_gen: out/: 1 updated, {N - 1} unchanged",
    ]
    assert readme.read_text(encoding="utf-8") == original


INVALID_CATALOGS = {
    "bad-yaml": "version: homeops/v1\nservices: [\n",
    "not-a-mapping": "- just\n- a list\n",
    "bad-version": SMALL_CATALOG.replace("homeops/v1", "homeops/v9"),
    "unknown-field": MINIMAL_HEAD + "  - name: x\n    namespace: x\n    colour: blue\n",
}


@pytest.mark.parametrize("mode", [(), ("--check",)], ids=["generate", "check"])
@pytest.mark.parametrize("catalog_text", INVALID_CATALOGS.values(), ids=INVALID_CATALOGS.keys())
def test_invalid_catalog_exits_2_and_writes_nothing(
    project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Run,
    catalog_text: str,
    mode: tuple[str, ...],
) -> None:
    root = project(catalog_text)
    monkeypatch.chdir(root)

    result = run_cli(*mode)

    assert result.code == 2
    assert result.out == ""
    lines = err_lines(result)
    assert lines[0].startswith("services.yaml:")
    assert lines[-1].startswith("homeops_gen: ")
    assert lines[-1].endswith("; nothing was written")
    assert not (root / "out").exists()


def test_invalid_catalog_leaves_existing_out_untouched(generated: Path, run_cli: Run) -> None:
    before = snapshot_of(generated)
    Path("services.yaml").write_text(
        SMALL_CATALOG.replace("homeops/v1", "homeops/v9"), encoding="utf-8"
    )

    result = run_cli()

    assert result.code == 2
    assert err_lines(result) == [
        "services.yaml:1:10: version: unsupported catalog version 'homeops/v9'; "
        "this homeops_gen reads 'homeops/v1'",
        "homeops_gen: 1 problem; nothing was written",
    ]
    assert snapshot_of(generated) == before


def test_missing_catalog_exits_2(proj: Path, run_cli: Run) -> None:
    result = run_cli("--catalog", "nope.yaml")
    assert result.code == 2
    assert err_lines(result)[0].startswith("nope.yaml: cannot read: ")
    assert not (proj / "out").exists()


def _edit_readme(out: Path) -> None:
    readme = out / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")


def _delete_resolved(out: Path) -> None:
    (out / "catalog/resolved.yaml").unlink()


def _stale_file(out: Path) -> None:
    (out / MANIFEST_NAME).write_text(
        (out / MANIFEST_NAME).read_text(encoding="utf-8") + "old.txt\n", encoding="utf-8"
    )
    (out / "old.txt").write_bytes(b"stale\n")


def _crlf_everything(out: Path) -> None:
    for path in GENERATED:
        to_crlf(out / path)


def _conflict(out: Path) -> None:
    (out / MANIFEST_NAME).unlink()
    _edit_readme(out)


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda out: None, 0),
        (_edit_readme, 1),
        (_delete_resolved, 1),
        (_stale_file, 1),
        (_conflict, 1),
        (_crlf_everything, 0),
    ],
    ids=["clean", "edited", "deleted", "stale", "not-owned", "crlf"],
)
def test_check_never_writes(
    generated: Path, run_cli: Run, damage: Callable[[Path], object], code: int
) -> None:
    damage(generated)
    before = snapshot_of(generated.parent)

    result = run_cli("--check")

    assert result.code == code
    assert snapshot_of(generated.parent) == before


def test_check_reports_an_unowned_file_at_a_planned_path(generated: Path, run_cli: Run) -> None:
    _conflict(generated)
    result = run_cli("--check")
    assert result.code == 1
    assert "not owned: README.md" in err_lines(result)


def test_generate_refuses_to_overwrite_an_unowned_file(proj: Path, run_cli: Run) -> None:
    (proj / "out").mkdir()
    (proj / "out/README.md").write_bytes(b"my own notes\n")
    before = snapshot_of(proj)

    result = run_cli()

    assert result.code == 2
    assert result.out == ""
    assert err_lines(result) == [
        f"out/README.md: exists but was not generated by homeops_gen (it is not in "
        f"{MANIFEST_NAME}); move it away or delete it, then run again",
        "homeops_gen: 1 problem; nothing was written",
    ]
    assert snapshot_of(proj) == before


def test_generate_with_a_folder_at_a_planned_path_exits_2(proj: Path) -> None:
    (proj / "out/catalog/resolved.yaml").mkdir(parents=True)

    result = run_module(cwd=proj)

    assert (result.code, "Traceback" in result.err) == (2, False)
    assert "out/catalog/resolved.yaml" in result.err
    assert not (proj / "out/README.md").exists()


def test_second_generate_rewrites_nothing(generated: Path, run_cli: Run) -> None:
    before = snapshot_of(generated)
    result = run_cli()
    assert result.code == 0
    assert err_lines(result) == [f"homeops_gen: out/: {N} unchanged"]
    assert snapshot_of(generated) == before


def test_first_generate_lists_what_it_created(proj: Path, run_cli: Run) -> None:
    result = run_cli()
    assert result.code == 0
    assert result.out == ""
    assert err_lines(result) == [
        *(f"create {path}" for path in GENERATED),
        f"homeops_gen: out/: {N} created",
    ]
    assert sorted(snapshot_of(proj / "out")) == sorted(GENERATED)


def test_generate_after_deleting_a_file_recreates_only_that_file(
    generated: Path, run_cli: Run
) -> None:
    before = snapshot_of(generated)
    (generated / "README.md").unlink()

    result = run_cli()

    assert result.code == 0
    assert err_lines(result) == [
        "create README.md",
        f"homeops_gen: out/: 1 created, {N - 1} unchanged",
    ]
    after = snapshot_of(generated)
    assert after["README.md"][0] == before["README.md"][0]
    del before["README.md"], after["README.md"]
    assert after == before


def test_quiet_prints_only_the_summary(generated: Path, run_cli: Run) -> None:
    _edit_readme(generated)
    result = run_cli("--check", "-q")
    assert result.code == 1
    assert result.out.startswith("--- a/out/README.md\n")
    assert err_lines(result) == [
        "homeops_gen: out/ is out of date: 1 changed; run `python -m homeops_gen` to regenerate it"
    ]


def test_absolute_catalog_and_out_paths(project: Callable[..., Path], run_cli: Run) -> None:
    root = project()
    catalog, out = str(root / "services.yaml"), str(root / "elsewhere/out")

    assert run_cli("--catalog", catalog, "--out", out).code == 0
    assert sorted(snapshot_of(Path(out))) == sorted(GENERATED)
    assert run_cli("--catalog", catalog, "--out", out, "--check").code == 0

    _edit_readme(Path(out))
    result = run_cli("--catalog", catalog, "--out", out, "--check")
    assert result.code == 1
    assert diff_body(result.out) == ["-edited"]


# --- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["--templates", "beside-catalog"])
def test_user_template_replaces_the_packaged_one(proj: Path, run_cli: Run, where: str) -> None:
    folder = proj / ("my-templates" if where == "--templates" else "templates")
    (folder / "markdown").mkdir(parents=True)
    (folder / "markdown/index.md.j2").write_text(
        "# Ours\n\n{% for row in rows %}- {{ row.name }}\n{% endfor %}", encoding="utf-8"
    )
    args = ("--templates", "my-templates") if where == "--templates" else ()

    result = run_cli(*args)

    assert result.code == 0, result.err
    assert (proj / "out/README.md").read_bytes() == (
        f"<!-- {HEADER} -->\n\n# Ours\n\n- media\n- notes\n".encode()
    )
    assert run_cli(*args, "--check").code == 0
    (proj / "empty").mkdir()
    assert run_cli("--check", "--templates", str(proj / "empty")).code == 1


def test_template_syntax_error_exits_2_with_name_and_line(proj: Path) -> None:
    folder = proj / "tpl/markdown"
    folder.mkdir(parents=True)
    (folder / "index.md.j2").write_text("# fine\n\n{% if %}\n", encoding="utf-8")

    result = run_module("--templates", "tpl", cwd=proj)

    assert result.code == 2
    assert "Traceback" not in result.err
    lines = err_lines(result)
    assert lines[0].startswith(str(folder / "index.md.j2") + ":3: template syntax error: ")
    assert lines[1:] == ["homeops_gen: 1 problem; nothing was written"]
    assert not (proj / "out").exists()


# --- output properties -----------------------------------------------------------------------


@pytest.fixture
def full_catalog(project: Callable[..., Path]) -> Path:
    """A project holding the repository's own services.yaml."""
    return project((REPO / "services.yaml").read_text(encoding="utf-8"))


def test_output_is_identical_under_different_hash_seeds(full_catalog: Path) -> None:
    for seed, out in (("1", "out1"), ("2", "out2")):
        result = run_module("--out", out, cwd=full_catalog, env={"PYTHONHASHSEED": seed})
        assert result.code == 0, result.err

    first = snapshot_of(full_catalog / "out1")
    second = snapshot_of(full_catalog / "out2")
    assert sorted(first) == sorted(second)
    assert len(first) >= len(GENERATED)
    for path in first:
        assert first[path][0] == second[path][0], path


@pytest.mark.parametrize("which", ["small", "repository"])
def test_every_generated_file_is_lf_with_one_final_newline_and_a_header(
    project: Callable[..., Path], which: str
) -> None:
    text = SMALL_CATALOG if which == "small" else (REPO / "services.yaml").read_text("utf-8")
    root = project(text)
    result = run_module(cwd=root)
    assert result.code == 0, result.err

    files = snapshot_of(root / "out")
    expected = set(GENERATED) if which == "small" else set(snapshot_of(REPO / "out"))
    assert set(files) == expected
    for path, (data, _) in files.items():
        assert data.endswith(b"\n"), path
        assert not data.endswith(b"\n\n"), path
        assert b"\r" not in data, path
        # The interpreter line, or cloud-init's "#cloud-config", stays first; the header follows.
        if data.startswith((b"#!", b"#cloud-config\n")):
            data = data.split(b"\n", 1)[1]
        if path.endswith(".md"):
            assert data.startswith(f"<!-- {HEADER} -->\n".encode()), path
        elif path.endswith(".json") and "/drills/" in path:
            # A manifest the API server reads (strict: no field of our own): its labels say
            # who made it.
            labels = json.loads(data)["metadata"]["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "homeops_gen", path
        elif path.startswith("grafana/"):  # a dashboard: Grafana shows its description
            assert json.loads(data)["description"].startswith(HEADER), path
        elif path.endswith(".json"):  # JSON has no comments: the header is its first field
            assert json.loads(data)["comment"].startswith(HEADER), path
        else:
            assert data.startswith(f"# {HEADER}\n".encode()), path


def test_help_exits_0(tmp_path: Path) -> None:
    result = run_module("--help", cwd=tmp_path)
    assert result.code == 0
    assert result.out.startswith("usage: python -m homeops_gen ")
    assert "--check" in result.out
    assert "--templates DIR" in result.out
    assert result.err == ""


def test_module_run_matches_in_process_run(proj: Path, run_cli: Run) -> None:
    assert run_cli("--out", "a").code == 0
    assert run_module("--out", "b", cwd=proj).code == 0
    a, b = snapshot_of(proj / "a"), snapshot_of(proj / "b")
    assert {p: d for p, (d, _) in a.items()} == {p: d for p, (d, _) in b.items()}


def test_help_does_not_import_the_heavy_dependencies() -> None:
    """`--help` runs in pre-commit tooling too: it must not pay for pydantic, jinja2, ruamel."""
    code = (
        "import sys\n"
        "from homeops_gen.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pydantic', 'jinja2', 'ruamel.yaml', 'cdk8s') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
