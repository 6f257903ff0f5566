"""What CI and editors read: GitHub Actions annotations and the catalog's JSON Schema."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG, CliResult

from homeops_gen.catalog.spec import CatalogSpec
from homeops_gen.cli import main

Run = Callable[..., CliResult]


@pytest.fixture
def proj(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    root = project()
    monkeypatch.chdir(root)
    return root


def annotations(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("::")]


def test_catalog_error_becomes_an_annotation_at_its_line(proj: Path, run_cli: Run) -> None:
    text = SMALL_CATALOG.replace("cadence: 6h\n", "cadenc: 6h\n")
    (proj / "services.yaml").write_text(text)
    lines = text.splitlines()
    line = next(i for i, item in enumerate(lines, 1) if item.strip() == "cadenc: 6h")
    col = lines[line - 1].index("cadenc") + 1
    result = run_cli("--format", "github")
    assert result.code == 2
    assert annotations(result.out) == [
        f"::error file=services.yaml,line={line},col={col}::services[0].cadenc: unknown field "
        "'cadenc'; did you mean 'cadence'?"
    ]
    assert f"services.yaml:{line}:{col}: services[0].cadenc" in result.err  # and the log
    assert not (proj / "out").exists()


def test_drift_annotates_each_file(proj: Path, run_cli: Run) -> None:
    assert run_cli("-q").code == 0
    (proj / "out" / "README.md").write_text("edited\n")
    (proj / "out" / "catalog" / "resolved.yaml").unlink()
    result = run_cli("check", "--format", "github")
    assert result.code == 1
    assert annotations(result.out) == [
        "::error file=out/README.md::out/README.md is changed: run `python -m homeops_gen` "
        "and commit the result",
        "::error file=out/catalog/resolved.yaml::out/catalog/resolved.yaml is missing: run "
        "`python -m homeops_gen` and commit the result",
    ]
    assert "--- a/out/README.md" in result.out  # the diff is still there for the log


def test_clean_check_prints_no_annotation(proj: Path, run_cli: Run) -> None:
    assert run_cli("-q").code == 0
    result = run_cli("--check", "--format", "github")
    assert result.code == 0 and annotations(result.out) == []


def test_lint_warning_is_a_warning_annotation(proj: Path, run_cli: Run) -> None:
    head = MINIMAL_HEAD.replace("services:\n", "  snapshots: {lvm: {}}\nservices:\n")
    body = "  - {name: logs, namespace: logs, storage: proxmox-lvm, churn: high, engine: files,\n"
    body += "     snapshots: true, offsite: {excluded: Regenerable}}\n"
    (proj / "services.yaml").write_text(head + body)
    result = run_cli("lint", "--format", "github")
    assert result.code == 0, result.err
    (note,) = annotations(result.out)
    assert note.startswith("::warning file=services.yaml,line=")
    assert "[high-churn-snapshot]" in note


def test_annotation_escapes_newlines_percent_and_property_separators(
    proj: Path, run_cli: Run
) -> None:
    folder = proj / "a,b:c"
    folder.mkdir()
    (folder / "services.yaml").write_text('version: homeops/v1\nsettings: {timezone: "5%"}\n')
    result = run_cli("--catalog", "a,b:c/services.yaml", "--format", "github")
    assert result.code == 2
    notes = annotations(result.out)
    assert notes and all(n.startswith("::error file=a%2Cb%3Ac/services.yaml,line=") for n in notes)
    assert any("'5%25'" in n for n in notes), notes


# --- JSON Schema -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        assert main(["schema"]) == 0
    loaded: dict[str, object] = json.loads(stream.getvalue())
    return loaded


def test_schema_is_valid_and_accepts_the_reference_catalog(schema: dict[str, object]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    catalog = yaml.safe_load((REPO / "services.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(catalog)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"] == CatalogSpec.model_json_schema()["$defs"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["services"][0].update(colour="red"), "Additional properties"),
        (lambda c: c["services"][0].update(storage="ceph"), "'ceph' is not one of"),
        (lambda c: c["services"][0].update(name="Not_A_Label"), "does not match"),
        (lambda c: c["settings"].pop("nfs"), "'nfs' is a required property"),
        (lambda c: c["services"][0].update(offsite="maybe"), "is not valid"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    schema: dict[str, object], change: Callable[[dict[str, object]], object], message: str
) -> None:
    catalog = yaml.safe_load(SMALL_CATALOG)
    change(catalog)
    with pytest.raises(jsonschema.ValidationError) as raised:
        jsonschema.Draft202012Validator(schema).validate(catalog)
    assert message in raised.value.message or any(
        message in error.message for error in raised.value.context
    )


def test_schema_needs_no_catalog(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no services.yaml here
    result = run_cli("schema")
    assert result.code == 0 and json.loads(result.out)["title"].startswith("homeops_gen")


def test_exit_non_zero_on_write_fails_only_the_run_that_wrote(proj: Path, run_cli: Run) -> None:
    first = run_cli("--exit-non-zero-on-write", "-q")
    assert first.code == 1 and (proj / "out" / "README.md").is_file()
    assert run_cli("generate", "--exit-non-zero-on-write", "-q").code == 0
    (proj / "out" / "README.md").write_text("edited\n")
    assert run_cli("--exit-non-zero-on-write", "-q").code == 1
    assert run_cli("--exit-non-zero-on-write", "-q").code == 0
