"""Extract the hashicorp/kubernetes provider schema from prebuilt CDK-for-Terraform packages.

The provider binary cannot be downloaded here, so ``terraform providers schema -json`` cannot be
run. Its schema is however published, resource by resource, in the prebuilt provider bindings
on PyPI: HashiCorp's ``cdktf-cdktf-provider-kubernetes`` (2.x) and its community successor
``cdktn-provider-kubernetes`` (CDK Terrain, 3.x). Each wheel ships the JSII assembly of the
bindings as ``_jsii/provider-kubernetes@<version>.jsii.tgz``; that tarball holds

* ``package/.jsii``: every config struct, its properties (camelCase), whether each is
  ``optional``, and its type: a primitive, a list/map of primitives, a single struct (a block
  with ``max_items = 1``) or ``IResolvable | Struct[]`` (a repeatable block);
* ``package/lib/<resource>/**.js``: the generated code, whose ``<struct>ToHclTerraform`` and
  ``synthesizeHclAttributes`` functions map each property to the Terraform name it is written
  as, with ``isBlock``, the collection kind (``simple`` / ``list`` / ``set`` / ``map`` /
  ``struct``) and the element type; and ``// name - computed: true, optional: false`` comments
  before the getters of the computed-only attributes, which a configuration cannot set.

Both are read and cross-checked (every property of a struct must appear in its HCL function
and the reverse, with agreeing types), then written for the resources and data sources the
repository's generated Terraform uses, in the layout of ``terraform providers schema -json``
(``resource_schemas.<type>.block.{attributes,block_types}``), one compact file per provider
version: ``<provider version>.json`` beside this script.

Run from anywhere (needs ``pip`` and the package index)::

    python tests/data/kubernetes-provider/extract.py            # download the wheels
    python tests/data/kubernetes-provider/extract.py --wheels D # use the wheels already in D
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# (PyPI package, package version): the provider version each wraps is read from the package.
SOURCES = [
    # hashicorp/kubernetes 2.30.0: the lowest version `version = ">= 2.30"` admits.
    ("cdktf-cdktf-provider-kubernetes", "11.5.0"),
    # hashicorp/kubernetes 2.38.0: the last build HashiCorp published (archived 2025-12).
    ("cdktf-cdktf-provider-kubernetes", "12.1.1"),
    # hashicorp/kubernetes 3.4.0: CDK Terrain, the community successor, tracks `~> 3.0`.
    ("cdktn-provider-kubernetes", "17.1.0"),
]

# Where the repository's generated Terraform lives: the types used there are the ones kept.
TF_ROOTS = ["out/terraform", "tests/snapshots"]
TEMPLATE_ROOTS = ["templates/terraform"]
_USE = re.compile(r'^\s*(resource|data)\s+"(kubernetes_[a-z0-9_]+)"', re.MULTILINE)

_PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool"}


# --------------------------------------------------------------------------------------------
# Reading a wheel
# --------------------------------------------------------------------------------------------


class Assembly:
    """The JSII assembly and generated JavaScript of one prebuilt provider wheel."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        with zipfile.ZipFile(wheel) as archive:
            (tgz,) = [n for n in archive.namelist() if re.search(r"/_jsii/.*\.jsii\.tgz$", n)]
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            self.metadata = archive.read(metadata).decode("utf-8")
            blob = archive.read(tgz)
        self.files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and (
                    member.name.startswith("package/.jsii")
                    or member.name.endswith(".js")
                    or member.name == "package/package.json"
                ):
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    self.files[member.name] = extracted.read()
        self.jsii = self._load_jsii()
        self.types: dict[str, Any] = self.jsii["types"]
        self.package = json.loads(self.files["package/package.json"])
        self._js_cache: dict[str, str] = {}

    def _load_jsii(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.files["package/.jsii"])
        if data.get("schema") == "jsii/file-redirect":  # large assemblies are gzipped aside
            raw = self.files["package/" + data["filename"]]
            if data.get("compression") == "gzip":
                raw = gzip.decompress(raw)
            data = json.loads(raw)
        return data

    def module_js(self, module_dir: str) -> str:
        """All generated JavaScript of one module (``lib/cron-job-v1/**.js``), concatenated."""
        if module_dir not in self._js_cache:
            prefix = f"package/lib/{module_dir}/"
            names = sorted(n for n in self.files if n.startswith(prefix) and n.endswith(".js"))
            self._js_cache[module_dir] = "\n".join(self.files[n].decode("utf-8") for n in names)
        return self._js_cache[module_dir]


# --------------------------------------------------------------------------------------------
# Parsing the generated code
# --------------------------------------------------------------------------------------------

_HCL_ENTRY = re.compile(
    r"(?P<tf>\w+): \{\s*value: (?P<value>.*?),\s*isBlock: (?P<block>true|false),"
    r'\s*type: "(?P<kind>\w+)",\s*storageClassType: "(?P<storage>\w+)",\s*\}',
    re.DOTALL,
)
_COMPUTED_GETTER = re.compile(
    r"// (?P<tf>\w+) - computed: true, optional: false, required: false\s*\n"
    r"\s*get (?P<camel>\w+)\(\) \{\s*return this\.(?P<getter>\w+)\('(?P<tf2>\w+)'\);"
)
_COMPUTED_COMMENT = re.compile(r"// (\w+) - computed: true, optional: false, required: false")
_GETTER_TYPES: dict[str, Any] = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
}


def _body(text: str, start: int) -> str:
    """The ``{...}`` body that opens at or after ``start`` (generated code: braces balance
    outside strings, and the strings in these functions hold no braces)."""
    open_at = text.index("{", start)
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at : index + 1]
    raise ValueError("unbalanced braces")


def _hcl_entries(body: str, holder: str) -> dict[str, dict[str, Any]]:
    """``{camel: {tf, block, kind, storage}}`` from a ``const attrs = {...}`` body."""
    entries: dict[str, dict[str, Any]] = {}
    for match in _HCL_ENTRY.finditer(body):
        refs = re.findall(rf"\b{holder}(\w+)\b", match["value"])
        if len(refs) != 1:
            raise ValueError(f"cannot tell the property of {match['tf']}: {match['value']}")
        entries[refs[0]] = {
            "tf": match["tf"],
            "block": match["block"] == "true",
            "kind": match["kind"],
            "storage": match["storage"],
        }
    if body.count("isBlock:") != len(entries):
        raise ValueError(f"unparsed entries in {body[:200]}")
    return entries


def _class_text(js: str, class_name: str) -> str:
    match = re.search(rf"^class {class_name} extends ", js, re.MULTILINE)
    if not match:
        raise KeyError(f"class {class_name} not found")
    return _body(js, match.end())


def _computed_only(class_text: str) -> dict[str, Any]:
    """``{tf_name: type}`` of the computed-only attributes whose getters a class defines."""
    found: dict[str, Any] = {}
    for match in _COMPUTED_GETTER.finditer(class_text):
        if match["tf"] != match["tf2"] or match["getter"] not in _GETTER_TYPES:
            raise ValueError(f"unexpected computed getter {match.group(0)!r}")
        found[match["tf"]] = _GETTER_TYPES[match["getter"]]
    every = set(_COMPUTED_COMMENT.findall(class_text))
    if every != set(found):  # e.g. a computed-only nested object: not handled, say so
        raise ValueError(f"computed-only attributes not understood: {sorted(every - set(found))}")
    return found


# --------------------------------------------------------------------------------------------
# Building the schema
# --------------------------------------------------------------------------------------------


class Extractor:
    def __init__(self, assembly: Assembly) -> None:
        self.asm = assembly
        self.scope = assembly.jsii["name"]  # "@cdktf/provider-kubernetes"
        self.runtime = next(iter(assembly.jsii["dependencies"]))  # "cdktf" or "cdktn"
        assert self.runtime in ("cdktf", "cdktn"), assembly.jsii["dependencies"]

    def classes(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(kind, terraform type, jsii class)`` of every resource and data source."""
        bases = {
            f"{self.runtime}.TerraformResource": "resource",
            f"{self.runtime}.TerraformDataSource": "data",
        }
        for jsii_type in self.asm.types.values():
            kind = bases.get(jsii_type.get("base", ""))
            if kind is None:
                continue
            module_dir = _module_dir(jsii_type)
            js = self.asm.module_js(module_dir)
            match = re.search(
                rf'(?:{jsii_type["name"]}\.|static )tfResourceType = "(\w+)"',
                _class_text(js, jsii_type["name"]) + js,
            )
            if not match:
                raise KeyError(f"no tfResourceType for {jsii_type['fqn']}")
            yield kind, match[1], jsii_type

    def provider_version(self) -> str:
        versions = set()
        for _, _, jsii_type in self.classes():
            js = self.asm.module_js(_module_dir(jsii_type))
            versions.update(re.findall(r"providerVersion: '([^']+)'", js))
        if len(versions) != 1:
            raise ValueError(f"expected one provider version, found {sorted(versions)}")
        return versions.pop()

    def resource(self, jsii_class: dict[str, Any]) -> dict[str, Any]:
        module_dir = _module_dir(jsii_class)
        js = self.asm.module_js(module_dir)
        text = _class_text(js, jsii_class["name"])
        synth = text.index("synthesizeHclAttributes()")
        entries = _hcl_entries(_body(text, synth), r"this\._")
        config = next(p for p in jsii_class["initializer"]["parameters"] if p["name"] == "config")
        struct = self.asm.types[config["type"]["fqn"]]
        own = [p for p in self._properties(struct) if not self._is_meta(p)]
        return self._block(struct["fqn"], own, entries, text, module_dir)

    def _is_meta(self, prop: Mapping[str, Any]) -> bool:
        """Properties inherited from TerraformMetaArguments (count, for_each, provider...)."""
        return str(prop.get("_from", "")).startswith(f"{self.runtime}.")

    def _properties(self, struct: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A struct's properties, including those of the interfaces it extends."""
        props = [dict(p, _from=struct["fqn"]) for p in struct.get("properties", [])]
        for parent in struct.get("interfaces", []):
            if parent.startswith(f"{self.runtime}."):
                props.append({"name": f"<{parent}>", "_from": parent})
            else:
                props.extend(self._properties(self.asm.types[parent]))
        return props

    def struct_block(self, fqn: str, module_dir: str) -> dict[str, Any]:
        struct = self.asm.types[fqn]
        js = self.asm.module_js(module_dir)
        function = f"{struct['name'][0].lower()}{struct['name'][1:]}ToHclTerraform"
        match = re.search(rf"^function {function}\(struct\) ", js, re.MULTILINE)
        if not match:
            raise KeyError(f"function {function} not found in {module_dir}")
        entries = _hcl_entries(_body(js, match.end()), r"struct\.")
        text = _class_text(js, f"{struct['name']}OutputReference")
        return self._block(fqn, self._properties(struct), entries, text, module_dir)

    def _block(
        self,
        fqn: str,
        props: list[dict[str, Any]],
        entries: dict[str, dict[str, Any]],
        class_text: str,
        module_dir: str,
    ) -> dict[str, Any]:
        names = {p["name"] for p in props}
        if names != set(entries):
            raise ValueError(
                f"{fqn}: struct and HCL function disagree: {sorted(names ^ set(entries))}"
            )
        attributes: dict[str, Any] = {}
        block_types: dict[str, Any] = {}
        for prop in props:
            entry = entries[prop["name"]]
            tf = entry["tf"]
            if tf in attributes or tf in block_types:
                raise ValueError(f"{fqn}: {tf} twice")
            required = not prop.get("optional", False)
            if entry["block"]:
                block_types[tf] = self._block_type(fqn, prop, entry, required, module_dir)
            else:
                type_ = _attribute_type(fqn, prop, entry)
                attributes[tf] = {"type": type_, "required" if required else "optional": True}
        for tf, type_ in _computed_only(class_text).items():
            if tf in attributes or tf in block_types:
                raise ValueError(f"{fqn}: computed-only {tf} is also configurable")
            attributes[tf] = {"type": type_, "computed": True}
        block: dict[str, Any] = {}
        if attributes:
            block["attributes"] = dict(sorted(attributes.items()))
        if block_types:
            block["block_types"] = dict(sorted(block_types.items()))
        return block

    def _block_type(
        self,
        fqn: str,
        prop: Mapping[str, Any],
        entry: Mapping[str, Any],
        required: bool,
        module_dir: str,
    ) -> dict[str, Any]:
        jsii_type = prop["type"]
        if "fqn" in jsii_type:  # a single struct: max_items = 1 (or nesting mode single)
            element, single = jsii_type["fqn"], True
        else:
            union = jsii_type["union"]["types"]
            arrays = [t["collection"] for t in union if "collection" in t]
            if len(arrays) != 1 or arrays[0]["kind"] != "array":
                raise ValueError(f"{fqn}.{prop['name']}: unexpected block type {jsii_type}")
            element, single = arrays[0]["elementtype"]["fqn"], False
        nesting = {"list": "list", "set": "set", "struct": "single"}[entry["kind"]]
        result: dict[str, Any] = {
            "nesting_mode": nesting,
            "block": self.struct_block(element, module_dir),
        }
        if nesting != "single":
            if required:
                result["min_items"] = 1  # cdktf marks a block required when min_items >= 1
            if single:
                result["max_items"] = 1
        elif required:
            raise ValueError(f"{fqn}.{prop['name']}: required single block")
        return result


def _module_dir(jsii_type: Mapping[str, Any]) -> str:
    filename = jsii_type["locationInModule"]["filename"]  # "src/cron-job-v1/index.ts"
    parts = filename.split("/")
    assert parts[0] == "src" and len(parts) >= 3, filename
    return parts[1]


def _attribute_type(fqn: str, prop: Mapping[str, Any], entry: Mapping[str, Any]) -> Any:
    """The Terraform type of an attribute, from the HCL function, checked against jsii."""
    kind, storage = entry["kind"], entry["storage"]
    if kind == "simple" and storage in _PRIMITIVES:
        type_: Any = _PRIMITIVES[storage]
        expected = [{"primitive": storage}]
    else:
        match = re.fullmatch(r"(string|number|boolean)(List|Map)", storage)
        if (
            not match
            or kind not in ("list", "set", "map")
            or (kind == "map") != (match[2] == "Map")
        ):
            raise ValueError(f"{fqn}.{prop['name']}: unexpected attribute {kind}/{storage}")
        type_ = [kind, _PRIMITIVES[match[1]]]
        expected = [
            {
                "collection": {
                    "elementtype": {"primitive": match[1]},
                    "kind": "map" if kind == "map" else "array",
                }
            }
        ]
    jsii_type = prop["type"]
    seen = jsii_type["union"]["types"] if "union" in jsii_type else [jsii_type]
    seen = [t for t in seen if t.get("fqn") not in ("cdktf.IResolvable", "cdktn.IResolvable")]
    if seen != expected:
        raise ValueError(f"{fqn}.{prop['name']}: jsii type {jsii_type} is not {type_}")
    return type_


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def used_types() -> dict[str, set[str]]:
    """``{"resource": {...}, "data": {...}}`` of the kubernetes_* types the repository writes."""
    used: dict[str, set[str]] = {"resource": set(), "data": set()}
    for root, pattern in [
        *((r, "*.tf") for r in TF_ROOTS),
        *((r, "*.tf.j2") for r in TEMPLATE_ROOTS),
    ]:
        for path in sorted((REPO / root).rglob(pattern)):
            for kind, type_ in _USE.findall(path.read_text(encoding="utf-8")):
                used[kind].add(type_)
    return used


def download(directory: Path) -> list[Path]:
    wheels = []
    for package, version in SOURCES:
        found = _find_wheel(directory, package, version)
        if found is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    f"{package}=={version}",
                    "--dest",
                    str(directory),
                ],
                check=True,
            )
            found = _find_wheel(directory, package, version)
        if found is None:
            raise FileNotFoundError(f"pip did not bring {package}=={version}")
        wheels.append(found)
    return wheels


def _find_wheel(directory: Path, package: str, version: str) -> Path | None:
    stem = package.replace("-", "_")
    matches = sorted(directory.glob(f"{stem}-{version}-*.whl"))
    return matches[0] if matches else None


def extract(wheel: Path, used: Mapping[str, set[str]]) -> tuple[str, dict[str, Any]]:
    assembly = Assembly(wheel)
    extractor = Extractor(assembly)
    version = extractor.provider_version()
    readme = re.search(r"hashicorp/kubernetes provider version (\S+)", assembly.metadata)
    if not readme or readme[1] != version:
        raise ValueError(f"{wheel.name}: README and code disagree on the provider version")
    name = re.search(r"^Name: (.+)$", assembly.metadata, re.MULTILINE)
    assert name is not None
    license_ = re.search(r"^License: (.+)$", assembly.metadata, re.MULTILINE)
    schemas: dict[str, dict[str, Any]] = {"resource": {}, "data": {}}
    every: dict[str, set[str]] = {"resource": set(), "data": set()}
    for kind, type_, jsii_class in extractor.classes():
        every[kind].add(type_)
        if type_ in used[kind]:
            if type_ in schemas[kind]:
                raise ValueError(f"{kind} {type_} defined twice")
            schemas[kind][type_] = {"block": extractor.resource(jsii_class)}
    for kind in ("resource", "data"):
        missing = used[kind] - set(schemas[kind])
        if missing:
            raise KeyError(f"provider {version} has no {kind} {sorted(missing)}")
    document = {
        "format_version": "1.0",
        "provider": "registry.terraform.io/hashicorp/kubernetes",
        "provider_version": version,
        "extracted_from": {
            "package": name[1].strip(),
            "package_version": assembly.package["version"],
            "index": "PyPI",
            "npm_name": assembly.package["name"],
            "license": license_[1].strip() if license_ else assembly.package.get("license"),
            "repository": assembly.package["repository"]["url"],
            "script": "tests/data/kubernetes-provider/extract.py",
        },
        "notes": [
            "min_items is 1 where the bindings mark a block required (cdktf's rule is min_items"
            " >= 1); max_items is 1 where they type a block as one struct; otherwise unbounded.",
            "computed-only attributes (computed: true, no optional) cannot be set.",
            "only the types the repository's generated Terraform uses are kept (complete);"
            " resource_types and data_source_types list every type of the provider.",
        ],
        # Every type the provider has, so a validator can tell "no such type" from "not kept".
        "resource_types": sorted(every["resource"]),
        "data_source_types": sorted(every["data"]),
        "resource_schemas": dict(sorted(schemas["resource"].items())),
        "data_source_schemas": dict(sorted(schemas["data"].items())),
    }
    return version, document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, help="folder holding (or receiving) the wheels")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write <version>.json")
    args = parser.parse_args(argv)
    used = used_types()
    print("types used:", ", ".join(sorted(used["resource"] | used["data"])))
    with tempfile.TemporaryDirectory() as temp:
        folder = args.wheels or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        for wheel in download(folder):
            version, document = extract(wheel, used)
            target = args.out / f"{version}.json"
            text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            target.write_text(text + "\n", encoding="utf-8")
            print(f"{wheel.name}: provider {version} -> {target.name} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
