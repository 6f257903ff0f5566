"""An example plug-in: ``inventory/backup-paths.txt``, every dumped service's NFS folder.

Importing the module registers the generator, exactly as the built-ins do; the entry point
``homeops_gen.generators: inventory = "homeops_gen_example"`` makes homeops_gen import it.
"""

from __future__ import annotations

from collections.abc import Iterator

from homeops_gen import Catalog, OutputFile, Text, register_generator


@register_generator("inventory", description="inventory/backup-paths.txt")
def generate_inventory(catalog: Catalog) -> Iterator[OutputFile]:
    lines = [
        f"{service.name}\t{catalog.settings.nfs_server}:{service.backup_path}"
        for service in catalog.services
        if service.uses("dump")
    ]
    yield OutputFile("inventory/backup-paths.txt", Text("\n".join(lines) + "\n"))
