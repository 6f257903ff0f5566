"""homeops_gen: backup plumbing for a homelab Kubernetes cluster, from one service catalog.

The pipeline, each step usable on its own::

    from homeops_gen import load_catalog, build_plan, render_plan, write_output, check_output

    catalog = load_catalog("services.yaml")      # CatalogError lists every problem
    rendered = render_plan(build_plan(catalog))  # {"path/in/out": b"bytes"}
    report = check_output(rendered, "out")       # report.exit_code: 0 clean, 1 drift
    write_output(rendered, "out")                # writes changed files only

Names are imported lazily, so ``import homeops_gen`` costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeops_gen.catalog import (
        Catalog,
        Service,
        load_catalog,
        load_catalog_data,
        load_catalog_text,
    )
    from homeops_gen.errors import (
        CatalogError,
        HomeopsError,
        OutputError,
        PlanError,
        Problem,
        RenderError,
    )
    from homeops_gen.objects import kubernetes_objects
    from homeops_gen.plan import OutputFile, Plan, TemplateRender, Text, YamlDocuments, build_plan
    from homeops_gen.registry import Generator, register_generator, registered_generators
    from homeops_gen.render import render_plan
    from homeops_gen.report import Report
    from homeops_gen.schedule import Schedule
    from homeops_gen.writer import Action, Change, WriteMode, check_output, write_output

_EXPORTS = {
    "Catalog": "homeops_gen.catalog",
    "Service": "homeops_gen.catalog",
    "load_catalog": "homeops_gen.catalog",
    "load_catalog_data": "homeops_gen.catalog",
    "load_catalog_text": "homeops_gen.catalog",
    "CatalogError": "homeops_gen.errors",
    "HomeopsError": "homeops_gen.errors",
    "OutputError": "homeops_gen.errors",
    "PlanError": "homeops_gen.errors",
    "Problem": "homeops_gen.errors",
    "RenderError": "homeops_gen.errors",
    "OutputFile": "homeops_gen.plan",
    "Plan": "homeops_gen.plan",
    "TemplateRender": "homeops_gen.plan",
    "Text": "homeops_gen.plan",
    "YamlDocuments": "homeops_gen.plan",
    "build_plan": "homeops_gen.plan",
    "kubernetes_objects": "homeops_gen.objects",
    "Generator": "homeops_gen.registry",
    "register_generator": "homeops_gen.registry",
    "registered_generators": "homeops_gen.registry",
    "render_plan": "homeops_gen.render",
    "Report": "homeops_gen.report",
    "Schedule": "homeops_gen.schedule",
    "Action": "homeops_gen.writer",
    "Change": "homeops_gen.writer",
    "WriteMode": "homeops_gen.writer",
    "check_output": "homeops_gen.writer",
    "write_output": "homeops_gen.writer",
}

__all__ = [
    "Action",
    "Catalog",
    "CatalogError",
    "Change",
    "Generator",
    "HomeopsError",
    "OutputError",
    "OutputFile",
    "Plan",
    "PlanError",
    "Problem",
    "RenderError",
    "Report",
    "Schedule",
    "Service",
    "TemplateRender",
    "Text",
    "WriteMode",
    "YamlDocuments",
    "build_plan",
    "check_output",
    "kubernetes_objects",
    "load_catalog",
    "load_catalog_data",
    "load_catalog_text",
    "register_generator",
    "registered_generators",
    "render_plan",
    "write_output",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'homeops_gen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
