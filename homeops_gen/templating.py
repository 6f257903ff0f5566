"""The Jinja environment the templates render in, and templates compiled ahead of time.

A built wheel carries every packaged template compiled to Python (:func:`compile_templates`,
run by the wheel's build hook, ``hatch_build.py``) beside a manifest of the Jinja version
and of each template source's SHA-256. :class:`CompiledLoader` takes a template from there
only while both still hold; otherwise, and for every override folder, the template is
compiled on demand (and kept in the bytecode cache). The compiled code is what Jinja itself
compiles on demand: the same generator, the same options, so the output is the same bytes.

This module imports Jinja: :mod:`homeops_gen.render` imports it only to render a template.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import json
import os
import shlex
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from homeops_gen import hcl
from homeops_gen.markdown import md_text
from homeops_gen.render import COMPILED_FOLDER

__all__ = ["CompiledLoader", "compile_templates", "environment"]

_MANIFEST = "manifest.json"
_FORMAT = "homeops_gen-compiled-templates-1"


def _configured(
    loader: jinja2.BaseLoader, bytecode_cache: jinja2.BytecodeCache | None
) -> jinja2.Environment:
    """An environment with every option explicit; the filters the templates use."""
    env = jinja2.Environment(
        loader=loader,
        bytecode_cache=bytecode_cache,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,  # a library caller may edit a template between two renders
    )

    @jinja2.pass_context
    def render_script(context: Any, template: str, variables: Mapping[str, Any]) -> str:
        """Render another template (a job's script) with this context plus ``variables``."""
        return env.get_template(template).render({**context.get_all(), **variables})

    env.filters.update(
        render_script=render_script,
        hcl_string=hcl.hcl_string,
        hcl_heredoc=hcl.hcl_heredoc,
        hcl_map=hcl.hcl_map,
        md=md_text,
        shell_quote=shlex.quote,
    )
    return env


def environment(
    template_dirs: Sequence[Path],
    packaged: Path,
    bytecode_cache: jinja2.BytecodeCache | None,
) -> jinja2.Environment:
    """The environment of one override chain: each of ``template_dirs`` in order, then the
    packaged templates, compiled ahead of time where the wheel carries them."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(d)) for d in template_dirs]
    compiled = CompiledLoader.beside(packaged)
    if compiled is not None:
        loaders.append(compiled)
    loaders.append(jinja2.FileSystemLoader(str(packaged)))
    return _configured(jinja2.ChoiceLoader(loaders), bytecode_cache)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compile_templates(source: Path, target: Path) -> dict[str, str]:
    """Compile every template below ``source`` into Python modules in ``target``, with the
    manifest :class:`CompiledLoader` checks; returns the manifest's templates (name: SHA-256).

    Raises :class:`jinja2.TemplateSyntaxError` for a template that does not compile.
    """
    env = _configured(jinja2.FileSystemLoader(str(source)), None)
    target.mkdir(parents=True, exist_ok=True)
    templates: dict[str, str] = {}
    for name in env.list_templates():
        data = (source / name).read_bytes()
        # The name stands for the file name: the module is the same wherever it is built.
        code = env.compile(data.decode("utf-8"), name, name, raw=True)
        module = target / jinja2.ModuleLoader.get_module_filename(name)
        module.write_text(code, encoding="utf-8")
        templates[name] = _digest(data)
    manifest = {"format": _FORMAT, "jinja2": jinja2.__version__, "templates": templates}
    (target / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return templates


class CompiledLoader(jinja2.BaseLoader):
    """The packaged templates as compiled ahead of time, each while its source is unchanged.

    A template the manifest does not list, or whose source's SHA-256 is not the one it was
    compiled from, is not found here, so that the next loader compiles it.
    """

    def __init__(self, compiled: Path, packaged: Path, templates: Mapping[str, str]) -> None:
        self.compiled = compiled
        self.packaged = packaged
        self.templates = dict(templates)

    @classmethod
    def beside(cls, packaged: Path) -> CompiledLoader | None:
        """The loader of the compiled templates next to ``packaged``, or None when there are
        none, or they were compiled by another Jinja or in another format."""
        compiled = packaged.parent / COMPILED_FOLDER
        try:
            manifest = json.loads((compiled / _MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            return None
        if manifest.get("jinja2") != jinja2.__version__:
            return None  # another Jinja generates other code: compile on demand
        templates = manifest.get("templates")
        if not isinstance(templates, dict):
            return None
        return cls(compiled, packaged, templates)

    def list_templates(self) -> list[str]:
        return sorted(self.templates)

    def load(
        self,
        environment: jinja2.Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        expected = self.templates.get(name)
        if expected is None:
            raise jinja2.TemplateNotFound(name)
        path = self.packaged / name
        try:
            mtime = os.path.getmtime(path)
            current = _digest(path.read_bytes())
        except OSError:
            raise jinja2.TemplateNotFound(name) from None
        module = self.compiled / jinja2.ModuleLoader.get_module_filename(name)
        if current != expected or not module.is_file():
            raise jinja2.TemplateNotFound(name)
        key = f"{__name__}.{module.stem}"
        # The module's code as Python caches it (__pycache__, written when the wheel was
        # installed); executed with the environment, as Jinja runs code it compiled.
        code = importlib.machinery.SourceFileLoader(key, str(module)).get_code(key)
        if code is None:  # pragma: no cover - a source file always has code
            raise jinja2.TemplateNotFound(name)

        def uptodate() -> bool:
            with contextlib.suppress(OSError):
                return os.path.getmtime(path) == mtime
            return False

        template = environment.template_class.from_code(
            environment, code, globals if globals is not None else {}, uptodate
        )
        template.filename = str(path)  # tracebacks name the template, not the module
        return template
