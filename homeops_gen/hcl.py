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


#: What :func:`hcl_string` escapes: a template sequence's start, or one character.
_NEEDS_ESCAPE = re.compile(r'[$%]\{|[\x00-\x1f\x7f"\\]')


def _escaped(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) == 2:  # "${" or "%{": doubled, as hcl_template_escape does
        return found[0] + found
    return _QUOTED_ESCAPES.get(found) or f"\\u{ord(found):04x}"


def hcl_string(value: object) -> str:
    """A quoted HCL string holding exactly ``value``."""
    text = str(value)
    if _NEEDS_ESCAPE.search(text) is None:  # most strings: no call of _escaped to set up
        return f'"{text}"'
    return '"' + _NEEDS_ESCAPE.sub(_escaped, text) + '"'


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
