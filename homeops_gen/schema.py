"""The JSON Schema of ``services.yaml``, for editors (yaml-language-server) and other tools.

Derived from the pydantic models of :mod:`homeops_gen.catalog.spec`, so it says exactly what
the loader accepts: unknown keys are rejected, strings carry their patterns.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_ID", "catalog_json_schema"]

SCHEMA_ID = "https://homeops-gen.invalid/schema/homeops-v1.json"


def catalog_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``homeops/v1`` catalog."""
    from homeops_gen.catalog.spec import CatalogSpec

    schema = CatalogSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "homeops_gen service catalog (homeops/v1)",
        **{key: value for key, value in schema.items() if key != "title"},
    }
