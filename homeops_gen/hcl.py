"""HCL literals for the Terraform templates: quoted strings, heredocs, aligned maps.

Terraform reads ``${`` and ``%{`` as the start of an interpolation or directive in every
string and heredoc, so a literal one is written ``$${`` / ``%%{``. Nothing else is escaped
with a doubled ``$``: ``$$`` before anything but ``{`` reaches the program unchanged, so a
shell's ``$$result`` would expand to the shell's PID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["hcl_heredoc", "hcl_key", "hcl_map", "hcl_string", "hcl_template_escape"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_QUOTED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hcl_template_escape(text: str) -> str:
    """Make ``${`` and ``%{`` literal."""
    return text.replace("${", "$${").replace("%{", "%%{")


#: What :func:`hcl_string` must escape: a string without any is quoted as it is.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]|[$%]\{')


def hcl_string(value: object) -> str:
    """A quoted HCL string holding exactly ``value``."""
    text = str(value)
    if _NEEDS_ESCAPE.search(text) is None:
        return f'"{text}"'
    out = []
    for char in hcl_template_escape(text):
        if char in _QUOTED_ESCAPES:
            out.append(_QUOTED_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def hcl_key(key: str) -> str:
    """A map key: bare when it is an identifier, quoted otherwise."""
    return key if _IDENTIFIER.fullmatch(key) else hcl_string(key)


def hcl_heredoc(text: str, indent: int) -> str:
    """An indented heredoc (``<<-``) holding exactly ``text``, closed at ``indent`` spaces.

    Blank lines stay empty: Terraform ignores them when it finds the indentation to strip.
    """
    marker = "EOT"
    lines = text.rstrip("\n").split("\n")
    while any(line.strip() == marker for line in lines):
        marker += "_"
    pad = " " * indent
    body = "\n".join(pad + line if line.strip() else "" for line in lines)
    return f"<<-{marker}\n{hcl_template_escape(body)}\n{pad}{marker}"


def hcl_map(mapping: Mapping[str, object], indent: int) -> str:
    """A multi-line map with aligned ``=`` as ``terraform fmt`` writes it (``{}`` if empty)."""
    if not mapping:
        return "{}"
    keys = {key: hcl_key(key) for key in mapping}
    width = max(len(k) for k in keys.values())
    pad = " " * (indent + 2)
    lines = [
        f"{pad}{keys[key].ljust(width)} = {hcl_string(value)}" for key, value in mapping.items()
    ]
    return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
