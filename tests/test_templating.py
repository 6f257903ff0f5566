"""Templates compiled ahead of time (what a wheel carries) render the very bytes that
templates compiled on demand do, and are used only while their source is the one they
were compiled from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
import pytest
from conftest import REPO

from homeops_gen import render
from homeops_gen.catalog import load_catalog
from homeops_gen.plan import build_plan
from homeops_gen.render import COMPILED_FOLDER
from homeops_gen.templating import CompiledLoader, compile_templates


@pytest.fixture(scope="module")
def bundled() -> dict[str, bytes]:
    """The bundled catalog's files, every template compiled on demand from the source tree."""
    return render.render_plan(build_plan(load_catalog(REPO / "services.yaml")))


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package folder laid out as a wheel installs it: templates/ and their compiled
    modules side by side; rendering reads its templates from there, with no bytecode cache."""
    package = tmp_path / "homeops_gen"
    shutil.copytree(REPO / "templates", package / "templates")
    compile_templates(package / "templates", package / COMPILED_FOLDER)
    monkeypatch.setattr(render, "packaged_templates_dir", lambda: package / "templates")
    monkeypatch.setattr(render, "_bytecode_cache", lambda: None)
    render._environment.cache_clear()
    yield package
    render._environment.cache_clear()


@pytest.fixture
def compiled_on_demand(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates read from source (and so compiled) while rendering."""
    names: list[str] = []
    original = jinja2.FileSystemLoader.get_source

    def get_source(
        self: jinja2.FileSystemLoader, environment: jinja2.Environment, name: str
    ) -> tuple[str, str, Callable[[], bool]]:
        found = original(self, environment, name)
        names.append(name)
        return found

    monkeypatch.setattr(jinja2.FileSystemLoader, "get_source", get_source)
    return names


def test_the_manifest_names_every_template_and_its_source(installed: Path) -> None:
    manifest = json.loads((installed / COMPILED_FOLDER / "manifest.json").read_text())
    sources = sorted(
        p.relative_to(REPO / "templates").as_posix()
        for p in (REPO / "templates").rglob("*")
        if p.is_file()
    )
    assert sorted(manifest["templates"]) == sources
    assert manifest["jinja2"] == jinja2.__version__
    for name, digest in manifest["templates"].items():
        assert hashlib.sha256((REPO / "templates" / name).read_bytes()).hexdigest() == digest
        module = installed / COMPILED_FOLDER / jinja2.ModuleLoader.get_module_filename(name)
        assert module.is_file(), name
        assert str(REPO) not in module.read_text(), f"{name}: the build's own path"


def test_compiled_templates_render_the_same_bytes_and_compile_nothing(
    installed: Path, bundled: dict[str, bytes], compiled_on_demand: list[str]
) -> None:
    rendered = render.render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    assert rendered == bundled
    assert compiled_on_demand == []


def test_without_the_compiled_modules_every_template_is_compiled_on_demand(
    installed: Path, bundled: dict[str, bytes], compiled_on_demand: list[str]
) -> None:
    """The control of the test above: the spy does see templates compiled from source."""
    shutil.rmtree(installed / COMPILED_FOLDER)
    rendered = render.render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    assert rendered == bundled
    assert "terraform/backup.tf.j2" in compiled_on_demand


def test_an_edited_template_is_compiled_anew_and_its_edit_shows(
    installed: Path, bundled: dict[str, bytes], compiled_on_demand: list[str]
) -> None:
    index = installed / "templates" / "markdown" / "index.md.j2"
    index.write_text(index.read_text() + "Edited after the build.\n")
    rendered = render.render_plan(build_plan(load_catalog(REPO / "services.yaml")))
    assert compiled_on_demand == ["markdown/index.md.j2"]
    changed = [path for path in bundled if rendered[path] != bundled[path]]
    assert changed == ["README.md"]  # out/README.md is the index
    assert rendered["README.md"].endswith(b"Edited after the build.\n")


def test_an_edit_between_two_renders_of_one_process_shows(
    installed: Path, compiled_on_demand: list[str]
) -> None:
    """auto_reload holds for a compiled template: its source's time is watched."""
    environment = render._environment(())
    name = "markdown/index.md.j2"
    first = environment.get_template(name)
    assert compiled_on_demand == [] and first.filename == str(installed / "templates" / name)
    source = installed / "templates" / name
    source.write_text("{{ 'edited' }}\n")
    os.utime(source, ns=(1, 1))  # a time of its own, however coarse the clock
    assert environment.get_template(name).render() == "edited\n"
    assert compiled_on_demand == [name]


@pytest.mark.parametrize(
    "manifest_change",
    [
        {"jinja2": "0.0.1"},
        {"format": "something-else"},
        {"templates": "not a mapping"},
    ],
)
def test_a_manifest_of_another_jinja_or_format_is_not_used(
    installed: Path, manifest_change: dict[str, str]
) -> None:
    path = installed / COMPILED_FOLDER / "manifest.json"
    manifest = json.loads(path.read_text())
    assert CompiledLoader.beside(installed / "templates") is not None
    path.write_text(json.dumps({**manifest, **manifest_change}))
    assert CompiledLoader.beside(installed / "templates") is None


def test_a_damaged_manifest_is_not_used(installed: Path) -> None:
    (installed / COMPILED_FOLDER / "manifest.json").write_text("{not json")
    assert CompiledLoader.beside(installed / "templates") is None


def test_an_override_folder_still_comes_first(
    installed: Path, tmp_path: Path, compiled_on_demand: list[str]
) -> None:
    override = tmp_path / "override" / "markdown"
    override.mkdir(parents=True)
    (override / "index.md.j2").write_text("Our own index.\n")
    rendered = render.render_plan(
        build_plan(load_catalog(REPO / "services.yaml")), [tmp_path / "override"]
    )
    assert rendered["README.md"].endswith(b"Our own index.\n")
    assert compiled_on_demand == ["markdown/index.md.j2"]


def test_a_template_error_names_the_template_file(installed: Path) -> None:
    """Tracebacks through a compiled template point at its source, as Jinja's own do."""
    environment = render._environment(())
    template = environment.get_template("terraform/backup.tf.j2")
    with pytest.raises(jinja2.UndefinedError) as raised:
        template.render({})
    frames = [str(entry.path) for entry in raised.traceback]
    assert str(installed / "templates" / "terraform" / "backup.tf.j2") in frames
