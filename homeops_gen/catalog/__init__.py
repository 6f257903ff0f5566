"""The service catalog.

User format in :mod:`.spec`, resolution in :mod:`.policy`, the result in :mod:`.model`.
"""

from __future__ import annotations

from homeops_gen.catalog.loader import load_catalog, load_catalog_data, load_catalog_text
from homeops_gen.catalog.model import Catalog, Offsite, Origin, Retention, Service, Settings

__all__ = [
    "Catalog",
    "Offsite",
    "Origin",
    "Retention",
    "Service",
    "Settings",
    "load_catalog",
    "load_catalog_data",
    "load_catalog_text",
]
