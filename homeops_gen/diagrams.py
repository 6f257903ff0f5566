"""Mermaid flowcharts of where each service's data goes (``out/docs/``).

:func:`service_flowchart` draws one service's data through every layer that protects it, as
:func:`homeops_gen.protection.protection_layers` lists them: the service (its namespace, name
and storage), each layer (title, schedule as its runtime is given it with the zone, what it
keeps) and the stores the copies land in (the NAS's ZFS pools, the PVE host's LVM thin pool,
the NFS backup folder, the Kopia repositories, the object stores and the offsite target).
The arrows follow the data:

- volume -> snapshot layer -> the pool the snapshots stay in;
- volume -> application backup -> its NFS folder -> NAS sync -> offsite target (a service
  on NFS without a backup of its own: its dataset -> NAS sync -> offsite target);
- claim -> PVC copy (VolSync or kopiur) -> Kopia repository on NFS, and claim -> offsite
  copy -> R2 (both copies are taken from the claim, not one from the other);
- CNPG cluster -> WAL archive and base backups -> object store.

:func:`catalog_flowchart` is the union of every service's chart, a node drawn once however
many services share it; services whose whole path is the same share one node.

Nothing of the catalog reaches the Mermaid text but inside a quoted label, through
:func:`mermaid_text`: node ids are generated (``n1``, ``n2`` ...), and every character that
means something to Mermaid (quotes, brackets, ``|``, ``;``, ``#``, ``%``), to its HTML labels
(``<``, ``&``) or to the markdown fence around the chart (backticks) is written as Mermaid's
entity code (``#quot;``, ``#35;``), as is anything outside printable ASCII. Line breaks in
catalog text become spaces; only the generator's own ``<br>`` breaks a label's lines. In a
label that holds ``style`` or ``classDef``, ``:`` is an entity code too (see
:func:`mermaid_label`).
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from homeops_gen.catalog.model import Catalog, Service
from homeops_gen.catalog.spec import ObjectStoreSpec
from homeops_gen.protection import Layer, protection_layers, when

__all__ = [
    "NodeKind",
    "catalog_flowchart",
    "mermaid_label",
    "mermaid_text",
    "service_flowchart",
]

#: What a node is: the service, a local or an offsite layer, a store on or off the site.
NodeKind = Literal["service", "layer", "offsite", "store", "remote"]

#: Characters written as themselves; every other one is an entity code.
_PLAIN = frozenset(string.ascii_letters + string.digits + " .,:/-_()+=@*'!?")
#: Mermaid's named entity codes for the characters that most often need one.
_NAMED = {'"': "quot", "&": "amp", "<": "lt", ">": "gt"}
#: A character that is not printable (control, format, unassigned): shown as U+FFFD.
_REPLACEMENT = 0xFFFD
#: Where Mermaid would read the text of a label as markup even with every character
#: written as an entity code: a label of more than one line goes through DOMPurify, which
#: gives the codes back as characters (all but "&", "<" and ">") before Mermaid looks for
#: KaTeX's ``$$...$$`` and Font Awesome's ``fa:fa-name``; and Mermaid decodes its own
#: stand-ins for "&" and ";" (``#lt;`` is ``\ufb02\xb0lt\xb6\xdf`` while it parses) once more in
#: the SVG it returns. An invisible word joiner (U+2060) between the two characters keeps
#: each pattern from matching and the text as it reads.
_MARKUP = re.compile(r"(?<=\$)(?=\$)|(?<=:)(?=fa-)|(?<=\ufb02)(?=\xb0)|(?<=\xb6)(?=\xdf)")
_WORD_JOINER = "\u2060"


def mermaid_text(text: str) -> str:
    """``text`` for the inside of a quoted Mermaid label, shown as the text it is.

    White space of any kind (newlines included) collapses to one space and a character that
    is not printable (control, format, unassigned) becomes U+FFFD; ``"`` is written
    ``#quot;``, ``#`` ``#35;``, a non-ASCII letter its code point (``é`` -> ``#233;``).
    Mermaid turns each ``#...;`` into an HTML entity before it draws the label, so the reader
    sees the original characters. A word joiner goes between the characters of ``$$``,
    ``:fa-`` and Mermaid's entity markers (see ``_MARKUP``).
    """
    collapsed = " ".join(text.split())
    if _PLAIN.issuperset(collapsed) and ":fa-" not in collapsed:
        return collapsed  # every character as itself, and no markup to break up
    printable = "".join(c if c.isprintable() else chr(_REPLACEMENT) for c in collapsed)
    out: list[str] = []
    for char in _MARKUP.sub(_WORD_JOINER, printable):
        if char in _PLAIN:
            out.append(char)
        elif char in _NAMED:
            out.append(f"#{_NAMED[char]};")
        else:
            out.append(f"#{ord(char)};")
    return "".join(out)


def mermaid_label(lines: Sequence[str]) -> str:
    """The inside of a quoted Mermaid label showing ``lines`` one under the other."""
    label = "<br>".join(mermaid_text(line) for line in lines)
    if "style" in label.lower() or "classdef" in label.lower():
        # Before it parses, Mermaid drops the last ";" of a line where "style" or "classDef"
        # comes before a ":" and a "#" (a style statement's colours): with no raw ":" on
        # the line, every entity code keeps its ";".
        label = label.replace(":", "#58;")
    return label


@dataclass(frozen=True)
class _Node:
    kind: NodeKind
    #: The label's lines, as plain text (escaped when drawn).
    lines: tuple[str, ...]


#: Each kind's shape (Mermaid's brackets around the quoted label) and class.
_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "service": ("([", "])"),
    "layer": ("[", "]"),
    "offsite": ("[", "]"),
    "store": ("[(", ")]"),
    "remote": ("[(", ")]"),
}
_CLASSES: dict[NodeKind, str] = {
    "service": "fill:#dbeafe,stroke:#1d4ed8,color:#0f172a",
    "layer": "fill:#f1f5f9,stroke:#475569,color:#0f172a",
    "offsite": "fill:#ffedd5,stroke:#c2410c,color:#0f172a",
    "store": "fill:#dcfce7,stroke:#15803d,color:#0f172a",
    "remote": "fill:#fef3c7,stroke:#b45309,color:#0f172a",
}
_PROVIDERS = {"garage": "Garage", "r2": "R2", "s3": "S3"}
#: The order the catalog's chart draws its services in, by the kinds of their layers.
_DRAWING_ORDER: dict[str, int] = {
    "lvm": 0,
    "zfs": 1,
    "dump": 2,
    "nas-sync": 3,
    "cnpg-wal": 4,
    "cnpg-base": 5,
    "volsync": 6,
    "r2": 7,
    "kopiur": 8,
    "kopiur-r2": 9,
}


@dataclass
class _Graph:
    """Nodes (each drawn once, in the order first added) and the arrows between them."""

    ids: dict[_Node, str] = field(default_factory=dict)
    edges: dict[tuple[str, str], None] = field(default_factory=dict)

    def node(self, node: _Node) -> str:
        return self.ids.setdefault(node, f"n{len(self.ids) + 1}")

    def chain(self, nodes: Sequence[_Node]) -> None:
        ids = [self.node(node) for node in nodes]
        for start, end in itertools.pairwise(ids):
            self.edges.setdefault((start, end), None)

    def render(self) -> str:
        lines = ["flowchart LR"]
        for node, node_id in self.ids.items():
            opening, closing = _SHAPES[node.kind]
            lines.append(f'    {node_id}{opening}"{mermaid_label(node.lines)}"{closing}')
        lines += [f"    {start} --> {end}" for start, end in self.edges]
        for kind, style in _CLASSES.items():
            members = [node_id for node, node_id in self.ids.items() if node.kind == kind]
            if members:
                lines.append(f"    classDef {kind} {style}")
                lines.append(f"    class {','.join(members)} {kind}")
        return "\n".join(lines) + "\n"


def _layer_node(layer: Layer) -> _Node:
    # One line per schedule (the ZFS tasks have several), each as the layer shows it.
    runs = sorted({when(schedule) for schedule in layer.schedules})
    if "; ".join(runs) != layer.when:
        runs = [layer.when]
    lines = [layer.title, *runs, f"keeps {layer.retention}"]
    if layer.note:
        lines.append(layer.note)
    return _Node("offsite" if layer.offsite else "layer", tuple(lines))


def _object_store(spec: ObjectStoreSpec, *head: str) -> _Node:
    """A bucket of an object store (off the site unless it is the in-cluster Garage)."""
    provider = _PROVIDERS.get(spec.provider, spec.provider)
    bucket = f"{provider} bucket {spec.bucket}" if spec.bucket else f"{provider} store"
    kind: NodeKind = "remote" if spec.provider in ("r2", "s3") else "store"
    return _Node(kind, (*head, bucket, spec.endpoint))


def _zfs_store(catalog: Catalog) -> _Node:
    tasks = catalog.settings.zfs_snapshots
    names = list(dict.fromkeys(task.dataset or task.pool for task in tasks))
    roots = all((task.dataset or task.pool) == task.pool for task in tasks)
    return _Node("store", (f"ZFS {'pools' if roots else 'datasets'} {', '.join(names)}",))


def _stores(catalog: Catalog, service: Service, layer: Layer) -> list[_Node]:
    """Where a layer's copy lands (nothing when the catalog names no store for it)."""
    settings = catalog.settings
    if layer.kind == "zfs":
        return [_zfs_store(catalog)]
    if layer.kind == "lvm" and settings.lvm_snapshots is not None:
        lvm = settings.lvm_snapshots
        pool = f"LVM thin pool {lvm.volume_group}/{lvm.thin_pool}"
        return [_Node("store", (pool, "on the PVE host"))]
    if layer.kind == "volsync":
        v = settings.volsync
        return [_Node("store", ("Kopia repository", f"NFS {v.nfs_server}:{v.kopia_nfs_path}"))]
    if layer.kind == "kopiur":
        k = settings.kopiur
        return [
            _Node("store", (f"Kopia repository {k.repository}", f"NFS {k.nfs_server}:{k.nfs_path}"))
        ]
    if layer.kind == "r2" and settings.volsync.r2 is not None:
        return [_object_store(settings.volsync.r2)]
    if layer.kind == "kopiur-r2" and settings.kopiur.r2 is not None:
        return [_object_store(settings.kopiur.r2)]
    if layer.kind in ("cnpg-wal", "cnpg-base") and service.cnpg is not None:
        return [_object_store(service.cnpg.store, f"ObjectStore {service.cnpg.store_name}")]
    if layer.kind == "nas-sync" and settings.offsite_target is not None:
        return [_Node("remote", ("offsite target", settings.offsite_target))]
    return []


def _chains(catalog: Catalog, service: Service) -> list[tuple[_Node, ...]]:
    """Every path of the service's data after the service itself, layer by layer."""
    layers = protection_layers(catalog, service)
    sync = next((layer for layer in layers if layer.kind == "nas-sync"), None)
    carried = [_layer_node(sync), *_stores(catalog, service, sync)] if sync else []
    chains: list[tuple[_Node, ...]] = []
    has_dump = any(layer.kind == "dump" for layer in layers)
    for layer in layers:
        if layer.kind == "nas-sync":
            # The sync carries the dumps when there are any, else the service's dataset.
            if not has_dump:
                chains.append(tuple(carried))
            continue
        if layer.kind == "dump":
            folder = _Node("store", ("NFS", f"{catalog.settings.nfs_server}:{service.backup_path}"))
            chains.append((_layer_node(layer), folder, *carried))
            continue
        chains.append((_layer_node(layer), *_stores(catalog, service, layer)))
    return chains


def _service_lines(services: Iterable[Service], storage: str, bare: bool) -> tuple[str, ...]:
    names = [f"{s.namespace}/{s.name}" for s in services]
    return (*names, f"{storage} storage", *(["no protection layer"] if bare else []))


def service_flowchart(catalog: Catalog, service: Service) -> str:
    """The service's data through every layer that protects it, as a Mermaid flowchart."""
    chains = _chains(catalog, service)
    lines = _service_lines([service], service.storage, not chains)
    if not service.offsite.included:
        lines += (f"not copied offsite: {service.offsite.reason or 'no reason given'}",)
    graph = _Graph()
    head = _Node("service", lines)
    graph.node(head)
    for chain in chains:
        graph.chain((head, *chain))
    return graph.render()


def catalog_flowchart(catalog: Catalog) -> str:
    """Every service's chart in one: the layers, their schedules and their stores, each
    drawn once; services whose data takes the same path share a node."""
    groups: dict[tuple[str, tuple[tuple[_Node, ...], ...]], list[Service]] = {}
    kinds: dict[tuple[str, tuple[tuple[_Node, ...], ...]], list[int]] = {}
    for service in catalog.services:
        key = (service.storage, tuple(_chains(catalog, service)))
        groups.setdefault(key, []).append(service)
        layers = protection_layers(catalog, service)
        kinds[key] = sorted(_DRAWING_ORDER.get(layer.kind, len(_DRAWING_ORDER)) for layer in layers)
    graph = _Graph()
    # Services with the same kinds of layer side by side (fewer crossing arrows), the
    # unprotected last.
    ordered = sorted(groups.items(), key=lambda item: kinds[item[0]] or [len(_DRAWING_ORDER) + 1])
    for (storage, chains), services in ordered:
        head = _Node("service", _service_lines(services, storage, not chains))
        graph.node(head)
        for chain in chains:
            graph.chain((head, *chain))
    return graph.render()
