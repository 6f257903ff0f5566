"""Validate Terraform files against the hashicorp/kubernetes provider's schema.

The schemas are the ones in ``tests/data/kubernetes-provider/<provider version>.json``
(extracted by ``extract.py`` there, in the layout of ``terraform providers schema -json``).
Each ``resource`` / ``data`` block of a ``kubernetes_*`` type is checked the way Terraform's
configuration decoder would see it, against every extracted version that the module's
``required_providers`` constraint admits:

* names: an argument or block the schema does not have, a computed-only attribute being set;
* syntax: an argument written as a block (``labels { ... }``) or a block written as an
  argument (``metadata = { ... }``), labels on a nested block;
* presence: a required argument missing (or set to ``null``), fewer blocks than ``min_items``,
  more than ``max_items`` (``max_items = 1`` blocks, ``single`` nesting);
* literal types: ``"3600"`` where a number is needed, ``3306`` where a string is needed, a list
  where a map is needed, and so on into list, set and map elements. Terraform would convert
  some of these (a numeric string to a number, a number to a string), which is why the message
  says whether it would; the generator should still write the type the schema names.
  Expressions (``module.x.y``, ``var.n``, function calls, a lone ``"${...}"``) can be of any
  type and are accepted everywhere.

``dynamic "name" { content { ... } }`` blocks are checked as blocks of type ``name`` (their
count is then unknown, so min/max checks are skipped for that block type). Meta-arguments
(``count``, ``for_each``, ``depends_on``, ``provider``, ``lifecycle``, ``provisioner``,
``connection``) are accepted and not checked further.

Problems come back as :class:`Problem` (file, address such as
``kubernetes_cron_job_v1.backup``, attribute path such as
``spec[0].job_template[0].spec[0].template[0].spec[0].container[0].name``, message, and the
provider version whose schema says so).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import hcl2
from hcl import Expression, HCLDecodeError, Template, decode_string

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "kubernetes-provider"
PROVIDER_SOURCES = {"hashicorp/kubernetes", "registry.terraform.io/hashicorp/kubernetes"}
LOCAL_NAME = "kubernetes"

_META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider"},
    "data": {"count", "for_each", "depends_on", "provider"},
}
_META_BLOCKS = {
    "resource": {"lifecycle", "provisioner", "connection"},
    "data": {"lifecycle"},
}
_BLOCK_FLAG = "__is_block__"


@dataclass(frozen=True)
class Problem:
    file: str
    address: str
    path: str
    message: str
    provider_version: str = ""

    def __str__(self) -> str:
        where = ".".join(part for part in (self.address, self.path) if part)
        version = f" [kubernetes {self.provider_version}]" if self.provider_version else ""
        return f"{self.file}: {where or '-'}: {self.message}{version}"


# --------------------------------------------------------------------------------------------
# Schemas and version constraints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSchema:
    version: str
    resources: Mapping[str, Any]
    data_sources: Mapping[str, Any]
    resource_types: frozenset[str]
    data_source_types: frozenset[str]

    def lookup(self, kind: str, type_: str) -> tuple[Mapping[str, Any] | None, bool]:
        """``(block schema or None, whether the provider has the type at all)``."""
        schemas, every = (
            (self.resources, self.resource_types)
            if kind == "resource"
            else (self.data_sources, self.data_source_types)
        )
        entry = schemas.get(type_)
        return (entry["block"] if entry else None), type_ in every or entry is not None


@cache
def load_schema(path: Path) -> ProviderSchema:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return ProviderSchema(
        version=data["provider_version"],
        resources=data.get("resource_schemas", {}),
        data_sources=data.get("data_source_schemas", {}),
        resource_types=frozenset(data.get("resource_types", ())),
        data_source_types=frozenset(data.get("data_source_types", ())),
    )


def available_schemas(directory: Path = SCHEMA_DIR) -> list[ProviderSchema]:
    """Every extracted schema, oldest provider version first."""
    schemas = [load_schema(p) for p in sorted(directory.glob("*.json"))]
    return sorted(schemas, key=lambda s: parse_version(s.version))


def parse_version(text: str) -> tuple[int, ...]:
    match = re.fullmatch(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a provider version: {text!r}")
    return tuple(int(part or 0) for part in match.groups())


def admits(constraint: str, version: str) -> bool:
    """Whether a Terraform version constraint (``">= 2.30, < 3"``, ``"~> 2.30"``) admits
    ``version``. Pre-release versions are not supported (the schemas are of releases)."""
    have = parse_version(version)
    for clause in constraint.split(","):
        match = re.fullmatch(r"\s*(=|!=|>=|<=|>|<|~>)?\s*(v?[\d.]+)\s*", clause)
        if not match:
            raise ValueError(f"cannot read version constraint {constraint!r}")
        op, text = match[1] or "=", match[2]
        want = parse_version(text)
        if op == "~>":  # the rightmost given part may grow: ~> 2.30 is >= 2.30, < 3
            given = len(text.lstrip("v").split("."))
            upper = (*want[: max(given - 2, 0)], want[max(given - 2, 0)] + 1)
            upper = (*upper, *(0,) * (3 - len(upper)))
            ok = want <= have < upper
        else:
            ok = {
                "=": have == want,
                "!=": have != want,
                ">": have > want,
                ">=": have >= want,
                "<": have < want,
                "<=": have <= want,
            }[op]
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_tf(text: str) -> dict[str, Any]:
    """python-hcl2 8.x output, raw: blocks keep ``__is_block__`` (hcl.decode drops it, and
    it is what tells ``x { }`` from ``x = { }``)."""
    major = int(package_version("python-hcl2").split(".")[0])
    if major != 8:
        raise RuntimeError(f"provider_schema reads python-hcl2 8.x output, found {major}.x")
    result: dict[str, Any] = hcl2.loads(text)
    return result


def _label(raw: str) -> str:
    return str(decode_string(raw)) if raw.startswith('"') else raw


def _is_block_list(value: Any) -> bool:
    """Whether a raw value is one or more blocks (``name { }`` or ``name "label" { }``)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(item, dict) and (item.get(_BLOCK_FLAG) or _labelled_body(item))
            for item in value
        )
    )


def _labelled_body(item: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """``("label", body)`` when a block item is ``name "label" { ... }``."""
    keys = [k for k in item if not _is_dunder(k)]
    if len(keys) == 1 and isinstance(item[keys[0]], dict) and item[keys[0]].get(_BLOCK_FLAG):
        return keys[0], item[keys[0]]
    return None


def _body_items(body: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """A body's arguments and blocks, without python-hcl2's ``__is_block__`` and
    ``__comments__`` (hcl.decode drops every ``__*__`` key the same way)."""
    return ((k, v) for k, v in body.items() if not _is_dunder(k))


def _is_dunder(key: str) -> bool:
    return key.startswith("__") and key.endswith("__")


def constraints(doc: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(version constraints, problems)`` for the kubernetes provider in a parsed file."""
    found: list[str] = []
    problems: list[str] = []
    for terraform in doc.get("terraform", []):
        for required in terraform.get("required_providers", []):
            entry = required.get(LOCAL_NAME)
            if entry is None:
                continue
            if not isinstance(entry, dict):
                problems.append(f"required_providers.{LOCAL_NAME} is not an object")
                continue
            source = _label(str(entry.get("source", '""')))
            if source not in PROVIDER_SOURCES:
                problems.append(f"required_providers.{LOCAL_NAME}.source is {source!r}")
            if "version" in entry:
                found.append(_label(str(entry["version"])))
    return found, problems


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def _kind(raw: Any) -> str:
    """The literal kind of a raw python-hcl2 value: bool, number, string, null, tuple,
    object, or expression (any type)."""
    if isinstance(raw, bool):
        return "bool"
    if isinstance(raw, int | float):
        return "number"
    if raw is None:
        return "null"
    if isinstance(raw, list):
        return "tuple"
    if isinstance(raw, dict):
        return "object"
    if isinstance(raw, str):
        if raw.startswith('"'):
            decoded = decode_string(raw)  # raises HCLDecodeError on a bad string
            if (
                isinstance(decoded, Template)
                and len(decoded.parts) == 1
                and isinstance(decoded.parts[0], Expression)
                and decoded.parts[0].startswith("${")
            ):
                return "expression"  # "${x}" alone is x, of x's type
            return "string"
        return "expression"  # ${...}, or a bare reference inside a collection
    return "unknown"


def _type_name(type_: Any) -> str:
    if isinstance(type_, str):
        return type_
    if isinstance(type_, list) and len(type_) == 2:
        return f"{type_[0]}({_type_name(type_[1])})"
    return json.dumps(type_)


def _source(raw: Any) -> str:
    """A raw python-hcl2 value written back roughly as HCL (strings keep their quotes)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return "null"
    if isinstance(raw, str):
        return raw[2:-1] if raw.startswith("${") and raw.endswith("}") else raw
    if isinstance(raw, list):
        return "[" + ", ".join(_source(item) for item in raw) + "]"
    if isinstance(raw, dict):
        items = (f"{k} = {_source(v)}" for k, v in raw.items() if not _is_dunder(k))
        return "{ " + ", ".join(items) + " }"
    return str(raw)


def _show(raw: Any) -> str:
    text = _source(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _key_path(path: str, key: str) -> str:
    return f"{path}[{json.dumps(_label(key), ensure_ascii=False)}]"


def _check_value(raw: Any, type_: Any, path: str, out: list[tuple[str, str]]) -> None:
    """Append ``(path, message)`` for each literal in ``raw`` that is not of ``type_``."""
    try:
        kind = _kind(raw)
    except HCLDecodeError as error:
        out.append((path, f"invalid string: {error}"))
        return
    if kind in ("expression", "unknown") or type_ == "dynamic":
        return
    if kind == "null":
        return  # null is "unset": required-ness is checked by the caller
    if isinstance(type_, str):
        if kind == type_:
            return
        hint = ""
        if type_ == "number" and kind == "string":
            text = str(decode_string(raw))
            convertible = re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text)
            hint = (
                " (Terraform would convert it)"
                if convertible
                else " (not a number: Terraform rejects it)"
            )
        elif type_ == "bool" and kind == "string":
            text = str(decode_string(raw))
            hint = (
                " (Terraform would convert it)"
                if text in ("true", "false")
                else " (not a bool: Terraform rejects it)"
            )
        elif type_ == "string" and kind in ("number", "bool"):
            hint = " (Terraform would convert it)"
        elif kind in ("tuple", "object") or type_ in ("number", "bool"):
            hint = " (Terraform rejects it)"
        out.append((path, f"expected {type_}, got {kind} {_show(raw)}{hint}"))
        return
    collection, element = type_
    if collection in ("list", "set"):
        if kind != "tuple":
            out.append((path, f"expected {_type_name(type_)}, got {kind} {_show(raw)}"))
            return
        for index, item in enumerate(raw):
            if item is None:
                out.append((f"{path}[{index}]", f"null element in a {collection}"))
            else:
                _check_value(item, element, f"{path}[{index}]", out)
    elif collection == "map":
        if kind != "object":
            out.append((path, f"expected {_type_name(type_)}, got {kind} {_show(raw)}"))
            return
        for key, item in raw.items():
            if _is_dunder(key):
                continue
            if item is None:
                out.append((_key_path(path, key), "null value in a map"))
            else:
                _check_value(item, element, _key_path(path, key), out)
    else:
        out.append((path, f"schema type {_type_name(type_)} not understood"))


def _check_block(
    body: Mapping[str, Any],
    schema: Mapping[str, Any],
    path: str,
    out: list[tuple[str, str]],
    *,
    meta_arguments: frozenset[str] = frozenset(),
    meta_blocks: frozenset[str] = frozenset(),
) -> None:
    attributes: Mapping[str, Any] = schema.get("attributes", {})
    block_types: Mapping[str, Any] = schema.get("block_types", {})
    prefix = f"{path}." if path else ""
    counts: dict[str, int] = defaultdict(int)
    dynamic: set[str] = set()
    present: set[str] = set()

    for name, value in _body_items(body):
        where = f"{prefix}{name}"
        if name == "dynamic" and _is_block_list(value):
            for item in value:
                labelled = _labelled_body(item)
                if labelled is None:
                    out.append((where, "dynamic block without a label"))
                    continue
                label = _label(labelled[0])
                dynamic.add(label)
                _check_dynamic(label, labelled[1], block_types, attributes, prefix, out)
            continue
        if name in meta_arguments or name in meta_blocks:
            continue
        if name in attributes:
            attribute = attributes[name]
            present.add(name)
            if _is_block_list(value):
                out.append(
                    (
                        where,
                        f"{name} is an argument ({_type_name(attribute['type'])}), written as"
                        f" a block: write {name} = ...",
                    )
                )
                continue
            if attribute.get("computed") and not (
                attribute.get("optional") or attribute.get("required")
            ):
                out.append((where, f"{name} is computed-only: it cannot be set"))
                continue
            if value is None and attribute.get("required"):
                out.append((where, f"required argument {name} is null"))
                continue
            _check_value(value, attribute["type"], where, out)
        elif name in block_types:
            block_type = block_types[name]
            if not _is_block_list(value):
                out.append(
                    (where, f"{name} is a block, written as an argument: write {name} {{ ... }}")
                )
                continue
            for index, item in enumerate(value):
                item_path = f"{where}[{index}]"
                labelled = _labelled_body(item)
                if labelled is not None:
                    out.append((item_path, f"block {name} takes no labels, got {labelled[0]}"))
                    item = labelled[1]
                counts[name] += 1
                _check_block(item, block_type["block"], item_path, out)
        else:
            kind = "block" if _is_block_list(value) else "argument"
            out.append((where, f"unknown {kind} {name}{_suggest(name, attributes, block_types)}"))

    for name, attribute in attributes.items():
        if attribute.get("required") and name not in present and name not in dynamic:
            out.append((f"{prefix}{name}", f"missing required argument {name}"))
    for name, block_type in block_types.items():
        if name in dynamic:
            continue
        count = counts[name]
        low = block_type.get("min_items", 0)
        high = block_type.get("max_items")
        if block_type.get("nesting_mode") == "single":
            high = 1
        if count < low:
            message = (
                f"missing required block {name}"
                if count == 0
                else f"{name}: {count} blocks, at least {low} needed"
            )
            out.append((f"{prefix}{name}", message))
        if high is not None and count > high:
            out.append((f"{prefix}{name}", f"{name}: {count} blocks, at most {high} allowed"))


def _check_dynamic(
    label: str,
    body: Mapping[str, Any],
    block_types: Mapping[str, Any],
    attributes: Mapping[str, Any],
    prefix: str,
    out: list[tuple[str, str]],
) -> None:
    where = f"{prefix}dynamic.{label}"
    if label not in block_types:
        what = "an argument, not a block" if label in attributes else "not a block of this schema"
        out.append((where, f"dynamic {label}: {label} is {what}"))
        return
    if "for_each" not in body:
        out.append((where, "dynamic block without for_each"))
    contents = body.get("content")
    if not _is_block_list(contents) or len(contents) != 1:
        out.append((where, "dynamic block needs exactly one content block"))
        return
    _check_block(contents[0], block_types[label]["block"], f"{where}.content", out)


def _suggest(name: str, attributes: Mapping[str, Any], block_types: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, [*attributes, *block_types], n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def validate_doc(
    doc: Mapping[str, Any], schema: ProviderSchema, file: str = "<string>"
) -> list[Problem]:
    """Check every kubernetes_* resource and data block of a parsed (raw) document."""
    problems: list[Problem] = []
    for kind in ("resource", "data"):
        for entry in doc.get(kind, []):
            for raw_type, named in entry.items():
                type_ = _label(raw_type)
                if not type_.startswith(f"{LOCAL_NAME}_"):
                    continue
                for raw_name, body in named.items():
                    name = _label(raw_name)
                    address = f"{'data.' if kind == 'data' else ''}{type_}.{name}"
                    block, known = schema.lookup(kind, type_)
                    if block is None:
                        message = (
                            f"{kind} type {type_} is in the provider but not in the extracted"
                            " data: re-run tests/data/kubernetes-provider/extract.py"
                            if known
                            else f"{kind} type {type_} does not exist in hashicorp/kubernetes"
                        )
                        problems.append(Problem(file, address, "", message, schema.version))
                        continue
                    found: list[tuple[str, str]] = []
                    _check_block(
                        body,
                        block,
                        "",
                        found,
                        meta_arguments=frozenset(_META_ARGUMENTS[kind]),
                        meta_blocks=frozenset(_META_BLOCKS[kind]),
                    )
                    problems.extend(
                        Problem(file, address, path, message, schema.version)
                        for path, message in found
                    )
    return problems


def validate_text(text: str, schema: ProviderSchema, file: str = "<string>") -> list[Problem]:
    try:
        doc = parse_tf(text)
    except Exception as error:  # python-hcl2 raises lark errors of several classes
        return [Problem(file, "", "", f"not valid HCL: {error}".splitlines()[0], schema.version)]
    return validate_doc(doc, schema, file)


def validate_module(
    directory: Path, *, relative_to: Path | None = None, schemas: list[ProviderSchema] | None = None
) -> list[Problem]:
    """Validate the ``.tf`` files of one Terraform module (one folder) against every extracted
    schema that the folder's ``required_providers`` constraints admit."""
    schemas = available_schemas() if schemas is None else schemas
    files = sorted(directory.glob("*.tf"))

    def shown(path: Path) -> str:
        return str(path.relative_to(relative_to)) if relative_to else str(path)

    problems: list[Problem] = []
    docs: dict[Path, dict[str, Any]] = {}
    wanted: list[str] = []
    uses_kubernetes = False
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            docs[path] = parse_tf(text)
        except Exception as error:
            problems.append(Problem(shown(path), "", "", f"not valid HCL: {error}".splitlines()[0]))
            continue
        found, issues = constraints(docs[path])
        wanted.extend(found)
        problems.extend(Problem(shown(path), "terraform", "", issue) for issue in issues)
        uses_kubernetes |= bool(re.search(r'^\s*(resource|data)\s+"kubernetes_', text, re.M))
    if not uses_kubernetes:
        return problems
    if not wanted:
        problems.append(
            Problem(
                shown(directory),
                "terraform",
                "required_providers",
                "kubernetes resources but no version constraint for hashicorp/kubernetes",
            )
        )
        return problems
    admitted = [s for s in schemas if all(admits(c, s.version) for c in wanted)]
    if not admitted:
        versions = ", ".join(s.version for s in schemas)
        problems.append(
            Problem(
                shown(directory),
                "terraform",
                "required_providers",
                f"{' and '.join(wanted)} admits none of the extracted versions ({versions})",
            )
        )
        return problems
    for schema in admitted:
        for path, doc in docs.items():
            problems.extend(validate_doc(doc, schema, shown(path)))
    return problems


def validate_tree(root: Path, *, relative_to: Path | None = None) -> list[Problem]:
    """Validate every module (folder holding ``.tf`` files) under ``root``."""
    folders = sorted({path.parent for path in root.rglob("*.tf")})
    problems: list[Problem] = []
    for folder in folders:
        problems.extend(validate_module(folder, relative_to=relative_to))
    return problems
