"""Decode python-hcl2 (8.x) output into the values Terraform would see.

python-hcl2 8 keeps raw source text: string attributes come back with their quotes and escapes
(``'"a\\"b"'``), heredocs as ``'"<<-EOT\\n    line\\n  EOT"'``, block labels and quoted object
keys with their quotes, bare expressions (references, function calls, conditionals) wrapped as
``'${module.x.claim_name}'``, and nested blocks as lists of dicts carrying ``__is_block__``.

This module is written from HCL's native syntax rules (hashicorp/hcl ``hclsyntax``), not from the
package under test:

* quoted strings: ``\\n \\r \\t \\" \\\\ \\uNNNN \\UNNNNNNNN`` escapes; any other backslash
  sequence is an error;
* quoted strings and heredocs: ``$${`` is a literal ``${`` and ``%%{`` a literal ``%{``
  (scanned left to right, so ``$$$${`` gives ``$$${``); ``$$`` not followed by ``{`` stays;
  heredocs take backslashes literally;
* ``<<EOT``: the lines between the opener and the closing marker line (which may be indented
  and is not content), each keeping its newline;
* ``<<-EOT``: additionally, the smallest count of leading whitespace characters over the
  content lines is removed from every line; lines holding only whitespace neither count nor
  get trimmed, and a line starting with an interpolation counts as zero;
* ``${~`` / ``~}`` strip markers trim the whitespace of the adjacent literal text.

Real template sequences (``${var.x}``, ``%{ if ... }``) cannot be evaluated here: such strings
come back as :class:`Template` (a ``str`` holding the decoded text with each sequence kept
verbatim) so ``has_interpolation`` can tell them from text that merely contains an escaped
``${``. Bare expressions come back as :class:`Expression` (a ``str`` holding the expression
source, e.g. ``module.x.claim_name``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hcl2


class Expression(str):
    """A bare HCL expression (reference, function call ...), kept as its source text."""

    __slots__ = ()


class Template(str):
    """A string with real ``${...}`` / ``%{...}`` sequences, kept verbatim in the decoded text.

    ``parts`` lists the pieces in order: literal text as ``str``, sequences as ``Expression``
    holding the whole sequence (``${var.x}``)."""

    parts: tuple[str, ...]

    def __new__(cls, parts: list[str]) -> Template:
        self = super().__new__(cls, "".join(parts))
        self.parts = tuple(parts)
        return self


class HCLDecodeError(ValueError):
    """A string that is not valid HCL (bad escape, unterminated sequence, bad heredoc)."""


def has_interpolation(value: object) -> bool:
    """Whether a decoded string still holds a real (unescaped) ``${...}`` or ``%{...}``."""
    return isinstance(value, Template)


def is_expression(value: object) -> bool:
    """Whether a decoded value is a bare expression such as ``module.x.claim_name``."""
    return isinstance(value, Expression)


# --------------------------------------------------------------------------------------------
# Template scanning
# --------------------------------------------------------------------------------------------

_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_HEREDOC = re.compile(r'"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\n(.*)"', re.DOTALL)


def _sequence_end(text: str, start: int) -> int:
    """Index just past the ``}`` closing the ``${`` / ``%{`` that starts at ``start``.

    Skips nested braces and quoted strings inside the expression."""
    depth = 0
    i = start + 2
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _quoted_end(text, i)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    raise HCLDecodeError(f"unterminated template sequence in {text[start:]!r}")


def _quoted_end(text: str, start: int) -> int:
    """Index just past the closing quote of the quoted template starting at ``start``."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
        elif text.startswith(("$${", "%%{"), i):
            i += 3
        elif text.startswith(("${", "%{"), i):
            i = _sequence_end(text, i)
        elif char == '"':
            return i + 1
        else:
            i += 1
    raise HCLDecodeError(f"unterminated quoted string in {text[start:]!r}")


def _scan(text: str, *, quoted: bool) -> list[str]:
    """Split template source into decoded literal strs and raw sequences (as Expression)."""
    parts: list[str] = []
    literal: list[str] = []
    trim_next = False

    def flush_literal() -> None:
        nonlocal trim_next
        if literal:
            chunk = "".join(literal)
            if trim_next:  # "~}": trim the whitespace of the next literal token
                lines = [chunk] if quoted else _split_lines(chunk)
                chunk = "".join([lines[0].lstrip(), *lines[1:]])
            parts.append(chunk)
            literal.clear()
        trim_next = False

    i = 0
    while i < len(text):
        char = text[i]
        if quoted and char == "\\":
            selector = text[i + 1 : i + 2]
            if selector in _SIMPLE_ESCAPES:
                literal.append(_SIMPLE_ESCAPES[selector])
                i += 2
            elif selector in ("u", "U"):
                width = 4 if selector == "u" else 8
                digits = text[i + 2 : i + 2 + width]
                if not re.fullmatch(r"[0-9A-Fa-f]+", digits) or len(digits) != width:
                    raise HCLDecodeError(f"bad \\{selector} escape in {text!r}")
                literal.append(chr(int(digits, 16)))
                i += 2 + width
            else:
                raise HCLDecodeError(f"invalid escape \\{selector} in {text!r}")
        elif text.startswith(("$${", "%%{"), i):
            literal.append(char + "{")
            i += 3
        elif text.startswith(("${", "%{"), i):
            end = _sequence_end(text, i)
            sequence = text[i:end]
            if sequence[2:3] == "~" and literal:  # "${~": trim the previous literal token
                lines = ["".join(literal)] if quoted else _split_lines("".join(literal))
                literal[:] = [*lines[:-1], lines[-1].rstrip()]
            flush_literal()
            parts.append(Expression(sequence))
            trim_next = sequence.endswith("~}")
            i = end
        else:
            literal.append(char)
            i += 1
    flush_literal()
    return parts


def _split_lines(text: str) -> list[str]:
    """``text`` cut after each newline (HCL ends heredoc tokens there; no other separators)."""
    return [piece for piece in re.split(r"(?<=\n)", text) if piece] or [""]


def _lines(parts: list[str]) -> Iterator[list[str]]:
    """Regroup parts into lines (each literal split after its newlines)."""
    line: list[str] = []
    for part in parts:
        if isinstance(part, Expression):
            line.append(part)
            continue
        for piece in _split_lines(part):
            line.append(piece)
            if piece.endswith("\n"):
                yield line
                line = []
    if line:
        yield line


def _flush(parts: list[str]) -> list[str]:
    """Apply the ``<<-`` rule: trim the smallest leading-whitespace count from each line."""
    lines = [list(line) for line in _lines(parts)]
    counts = []
    for line in lines:
        first = line[0]
        if isinstance(first, Expression):
            counts.append(0)
        elif first.strip() == "" and first.endswith("\n"):
            continue  # a blank line: neither counted nor trimmed
        else:
            counts.append(len(first) - len(first.lstrip()))
    smallest = min(counts, default=0)
    out: list[str] = []
    for line in lines:
        first = line[0]
        if not isinstance(first, Expression) and not (first.strip() == "" and first.endswith("\n")):
            line[0] = first[smallest:]
        out.extend(line)
    return out


def _assemble(parts: list[str]) -> str:
    merged: list[str] = []
    for part in parts:
        if merged and not isinstance(part, Expression) and not isinstance(merged[-1], Expression):
            merged[-1] += part
        elif part or isinstance(part, Expression):
            merged.append(part)
    if any(isinstance(p, Expression) for p in merged):
        return Template(merged)
    return "".join(merged)


def decode_heredoc(raw: str) -> str:
    """Decode python-hcl2's ``'"<<[-]MARKER\\n...\\n  MARKER"'`` form."""
    match = _HEREDOC.fullmatch(raw)
    if not match:
        raise HCLDecodeError(f"not a heredoc: {raw[:40]!r}")
    indent, marker, rest = match.groups()
    body, _, closing = rest.rpartition("\n")
    if closing.strip() != marker:
        raise HCLDecodeError(f"heredoc {marker} does not end with its marker: {raw[-40:]!r}")
    content = body + "\n" if body or rest.count("\n") else ""
    parts = _scan(content, quoted=False)
    if indent:
        parts = _flush(parts)
    return _assemble(parts)


def decode_string(raw: str) -> str:
    """Decode one string value as python-hcl2 8 returns it (see the module docstring)."""
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        if raw.startswith('"<<') and "\n" in raw:  # quoted strings cannot hold raw newlines
            return decode_heredoc(raw)
        return _assemble(_scan(raw[1:-1], quoted=True))
    if raw.startswith("${") and raw.endswith("}") and _sequence_end(raw, 0) == len(raw):
        return Expression(raw[2:-1])
    return raw


def _decode_key(key: str) -> str:
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        return str(_assemble(_scan(key[1:-1], quoted=True)))
    return key


def decode(value: Any) -> Any:
    """Recursively decode python-hcl2 output (drops ``__is_block__`` and other ``__*__``)."""
    if isinstance(value, str):
        return decode_string(value)
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        return {
            _decode_key(k): decode(v)
            for k, v in value.items()
            if not (k.startswith("__") and k.endswith("__"))
        }
    return value


def loads_tf(text: str) -> dict[str, Any]:
    """Parse Terraform source text and decode every string."""
    major = int(version("python-hcl2").split(".")[0])
    if major != 8:  # 7.x returned strings already unquoted: decoding them again would be wrong
        raise RuntimeError(f"hcl.py decodes python-hcl2 8.x output, found {version('python-hcl2')}")
    result: dict[str, Any] = decode(hcl2.loads(text))
    return result


def load_tf(path: Path | str) -> dict[str, Any]:
    """Parse a .tf file and decode every string."""
    return loads_tf(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Navigation
# --------------------------------------------------------------------------------------------


def find_blocks(doc: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``{label: body}`` of single-label blocks such as ``module "x"`` or ``variable "y"``."""
    found: dict[str, Any] = {}
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            if label in found:
                raise KeyError(f"{kind} {label!r} is defined twice")
            found[label] = body
    return found


def find_resources(doc: Mapping[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """``{name: body}`` of every ``resource "<type_>" "<name>"`` block in a decoded doc."""
    found: dict[str, dict[str, Any]] = {}
    for entry in doc.get("resource", []):
        for name, body in entry.get(type_, {}).items():
            if name in found:
                raise KeyError(f"resource {type_}.{name} is defined twice")
            found[name] = body
    return found


def _only(blocks: Any, where: str) -> dict[str, Any]:
    if not isinstance(blocks, list) or len(blocks) != 1 or not isinstance(blocks[0], dict):
        raise KeyError(f"expected exactly one {where} block, got {blocks!r:.200}")
    block: dict[str, Any] = blocks[0]
    return block


def pod_spec(cron_job_body: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.job_template.spec.template.spec`` of a kubernetes_cron_job_v1 body."""
    node: Mapping[str, Any] = cron_job_body
    for step in ("spec", "job_template", "spec", "template", "spec"):
        if step not in node:
            raise KeyError(f"cron job body has no {step!r} block on the way to the pod spec")
        node = _only(node[step], step)
    return dict(node)


def container(
    cron_job_body: Mapping[str, Any], name: str, *, block: str = "container"
) -> dict[str, Any]:
    """The container block named ``name`` in a cron job's pod spec (``block="init_container"``
    for init containers)."""
    containers = pod_spec(cron_job_body).get(block, [])
    for candidate in containers:
        if candidate.get("name") == name:
            result: dict[str, Any] = candidate
            return result
    names = [c.get("name") for c in containers]
    raise KeyError(f"no {block} named {name!r} (have {names})")


@dataclass(frozen=True)
class SecretRef:
    """An env var taken from ``value_from { secret_key_ref { name, key } }``."""

    name: str
    key: str
    optional: bool | None = None


@dataclass(frozen=True)
class ValueFrom:
    """Any other ``value_from`` source (config_map_key_ref, field_ref, resource_field_ref)."""

    kind: str
    fields: dict[str, Any]


def env_of(container_body: Mapping[str, Any]) -> dict[str, str | SecretRef | ValueFrom]:
    """``{name: value}`` of a container's ``env`` blocks; ``value_from`` entries become
    SecretRef / ValueFrom. A name set twice raises KeyError."""
    result: dict[str, str | SecretRef | ValueFrom] = {}
    for entry in container_body.get("env", []):
        name = entry["name"]
        if name in result:
            raise KeyError(f"env {name} is set twice")
        if "value_from" in entry:
            source = _only(entry["value_from"], "value_from")
            if len(source) != 1:
                raise KeyError(f"env {name}: value_from needs exactly one source, got {source}")
            kind, refs = next(iter(source.items()))
            ref = _only(refs, kind)
            if kind == "secret_key_ref":
                result[name] = SecretRef(ref["name"], ref["key"], ref.get("optional"))
            else:
                result[name] = ValueFrom(kind, dict(ref))
        else:
            result[name] = entry.get("value", "")
    return result


def shell_script(container_body: Mapping[str, Any]) -> str:
    """The script a container runs as ``sh -c SCRIPT`` (command and args joined), e.g.
    ``command = ["/bin/sh", "-c", <<-EOT ... EOT]`` or ``command = ["sh", "-ec"]`` plus
    ``args = [SCRIPT]``."""
    argv = [*container_body.get("command", []), *container_body.get("args", [])]
    for index, arg in enumerate(argv[:-1]):
        if isinstance(arg, str) and re.fullmatch(r"-[a-z]*c[a-z]*", arg) and index >= 1:
            script: str = argv[index + 1]
            return script
    raise KeyError(f"container does not run 'sh -c SCRIPT': {argv!r:.200}")


# --------------------------------------------------------------------------------------------
# Evaluation of the text expressions the stacks use
# --------------------------------------------------------------------------------------------

_FILE_CALL = re.compile(r'file\("\$\{path\.module\}/([^"\\$%]+)"\)')
_MODULE_OUTPUT = re.compile(r"module\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)")


def module_doc(folder: Path) -> dict[str, Any]:
    """Every ``.tf`` file of a module folder, merged as Terraform reads a module."""
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.tf")):
        for kind, entries in load_tf(path).items():
            merged.setdefault(kind, []).extend(entries)
    return merged


def evaluate_text(value: Any, folder: Path, doc: Mapping[str, Any] | None = None) -> str:
    """The string Terraform gives ``value`` in the module at ``folder`` (``doc``: its parsed
    files). Plain strings are themselves; of expressions, only the two forms the generated
    stacks use for text are known, each as Terraform evaluates it:

    * ``file("${path.module}/NAME")``: the file's contents, which must be UTF-8 (Terraform
      refuses anything else); ``path.module`` is the folder of the module the call is in;
    * ``module.NAME.OUTPUT``: the ``value`` of ``output "OUTPUT"`` of the module called NAME,
      evaluated in the module's own folder (its ``source``, a local path).

    Anything else raises, so an unexpected form cannot slip past the tests."""
    if not isinstance(value, str):
        raise TypeError(f"not text: {value!r:.200}")
    if not is_expression(value):
        if has_interpolation(value):
            raise ValueError(f"cannot evaluate the template {value!r:.200}")
        return value
    if match := _FILE_CALL.fullmatch(value):
        name = match.group(1)
        if ".." in Path(name).parts:
            raise ValueError(f"{value}: reads outside its module")
        return (folder / name).read_bytes().decode("utf-8")
    if match := _MODULE_OUTPUT.fullmatch(value):
        module, output = match.groups()
        calls = find_blocks(doc if doc is not None else module_doc(folder), "module")
        if module not in calls:
            raise KeyError(f"{value}: no module {module!r} in {folder}")
        source = calls[module]["source"]
        if not source.startswith(("./", "../")):
            raise ValueError(f"{value}: module source {source!r} is not a local path")
        inner = (folder / source).resolve()
        inner_doc = module_doc(inner)
        outputs = find_blocks(inner_doc, "output")
        if output not in outputs:
            raise KeyError(f"{value}: module {source} has no output {output!r}")
        return evaluate_text(outputs[output]["value"], inner, inner_doc)
    raise ValueError(f"cannot evaluate {value!r:.200}")
