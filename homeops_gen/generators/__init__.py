"""Built-in generators. Importing this package registers them (see :mod:`homeops_gen.registry`)."""

from __future__ import annotations

from homeops_gen.generators import catalog_view

__all__ = ["catalog_view"]
