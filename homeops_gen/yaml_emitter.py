"""A fast block-style YAML emitter for plain data, byte-identical to the ruamel dump.

ruamel's pure-Python serializer costs about 8 ms per Kubernetes object, which made
rendering dominate every run (20 s for 1,000 services). This emitter writes the layout of
:func:`homeops_gen.render.to_yaml` (mappings indented by 2, sequences by 4 with the dash at
2, a sequence inside a sequence after ``-   ``, flow ``{}``/``[]`` when empty, strings with
a ``\\n`` as ``|`` blocks) directly. A string is written plain at once when
:data:`_PLAIN_SAFE` shows that ruamel writes it plain and that no reader takes it for
anything but a string; any other string is judged by ruamel's scalar analysis (redone here
as regular expressions: ruamel's loop over each character costs seconds on a dashboard's
megabytes of JSON) and by ruamel's own implicit-type resolver, which decide how it is
written (plain, ``'single'`` or ``"double"`` quoted). A scalar that would pass ruamel's
line width is folded as ruamel folds it.
Anything outside that subset (floats, nulls, subclasses of the plain types, non-string,
long or multi-line keys, line breaks other than ``\\n``) raises :class:`Unsupported`, and
the caller falls back to ruamel. Tests compare both on every generated document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["Unsupported", "emit_documents", "plain_safe", "yaml11_reads_as_other"]

_STR = "tag:yaml.org,2002:str"
#: ruamel's line width, as :func:`homeops_gen.render.ruamel_yaml` sets it.
_WIDTH = 4096
#: A scalar whose line ends at or before this column is never folded (each of ruamel's
#: folds needs a column past the width); a longer one is folded below, as ruamel does.
_FOLD_SAFE = 4000
#: A scalar up to this long is written without measuring its column, which is safe while
#: the indentation stays within :data:`_MAX_INDENT` (with a key of at most :data:`_MAX_KEY`
#: characters, six each once escaped, the line still ends before :data:`_FOLD_SAFE`).
_LONG = 1000
_MAX_INDENT = 2000
#: ruamel writes a key of 128 characters or more as a complex key (``? key``).
_MAX_KEY = 100
#: Each scalar cache is emptied when it reaches this many strings. A 10,000-service
#: catalog has about 418,000 distinct strings, most written once or within a few files;
#: the cache only has to keep the ones that come back, and they come back soon.
_CACHE_LIMIT = 1 << 16


class Unsupported(Exception):
    """The data holds something this emitter does not write exactly as ruamel would."""


@lru_cache(maxsize=1)
def _ruamel_resolver() -> tuple[Any, Any, frozenset[str] | None]:
    """ruamel's resolver, its scalar node class, and the first characters it has implicit
    types for (``None``: it may have one for any)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import ScalarNode

    resolver = YAML(typ="rt").resolver
    table = resolver.versioned_resolver
    firsts = None if None in table else frozenset(key for key in table if key)
    return resolver, ScalarNode, firsts


#: YAML 1.1 as Kubernetes reads it (gopkg.in/yaml.v2, under sigs.k8s.io/yaml: kubectl, the
#: API server, Flux): words it takes for booleans and nulls, which YAML 1.2 (ruamel, and the
#: rest of this emitter) reads as strings.
_YAML11_WORDS = frozenset(
    [
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE"),
        *("on", "On", "ON", "off", "Off", "OFF"),
        *("~", "null", "Null", "NULL"),
    ]
)
#: yaml.v2's numbers, once its reader has dropped every "_": Go's ParseInt with base 0
#: (0x, 0o, 0b, a leading 0 for octal) and its float syntax.
_YAML11_NUMBER = re.compile(
    r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+"
    r"|(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)"
)


@lru_cache(maxsize=1 << 16)
def yaml11_reads_as_other(text: str) -> bool:
    """Whether a plain scalar ``text`` is something else than a string to a YAML 1.1 reader:
    Kubernetes' (booleans ``y``/``on``/``no``, ``0x1f``, ``1e3``, ``1_000``...) or PyYAML's
    (YAML 1.1's timestamps, sexagesimal numbers, ``.inf``, ``<<``, ``=``). Such a string is
    always written quoted."""
    if text in _YAML11_WORDS or _YAML11_NUMBER.fullmatch(text.replace("_", "")):
        return True
    if not text or not (text[0] in "-+.0123456789<=" or text[0].isdigit()):
        return False
    import yaml

    resolver = yaml.resolver.Resolver()
    resolved = resolver.resolve(yaml.nodes.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved != _STR)


#: Strings that every reader takes for strings and that ruamel writes plain, known without
#: asking ruamel. The first character is one that no implicit type of YAML 1.1 (PyYAML,
#: yaml.v2) or 1.2 (ruamel) starts with, except the words of :data:`_YAML11_WORDS` (digits,
#: signs, ".", "<", "=", "~" and "_" are left out), and none of ruamel's leading
#: indicators. The rest is printable ASCII without "#", with ":" only before a character
#: other than a space (so neither ": " nor " #" nor a final ":"), and no final space.
_PLAIN_SAFE = re.compile(r"[A-Za-z/($](?:[\x20-\x22\x24-\x39\x3b-\x7e]|:(?=[\x21-\x7e]))*(?<! )")


def plain_safe(text: str) -> bool:
    """Whether ``text`` takes the fast path: written as it is, no analysis, no resolver."""
    return _PLAIN_SAFE.fullmatch(text) is not None and text not in _YAML11_WORDS


# ruamel's Emitter.analyze_scalar (with allow_unicode), as regular expressions over the
# whole string: what it calls special characters, line breaks, whitespace and indicators.
_SPECIAL = re.compile(r"[^\n\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|\ufeff")
#: The same for ASCII text, which a search for this short class reads many times faster.
_SPECIAL_ASCII = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\n\x85\u2028\u2029]")
_WHITESPACE = "\0 \t\r\n\x85\u2028\u2029"
_LEADING_INDICATORS = "#,[]{}&*!|>'\"%@`"
#: After the first character: ":" before whitespace or at the end, "#" after whitespace.
_INNER_INDICATOR = re.compile(
    r":(?=[\0 \t\r\n\x85\u2028\u2029]|\Z)|(?<=[\0 \t\r\n\x85\u2028\u2029])#"
)


def _scalar(text: str, key: bool) -> str:
    """``text`` on one line as ruamel writes a ``str`` scalar (a mapping key when ``key``)."""
    if plain_safe(text):
        return text
    if _LINE_BREAK.search(text) is not None:
        raise Unsupported("a multi-line string")
    special = (_SPECIAL_ASCII if text.isascii() else _SPECIAL).search(text) is not None
    plain = text == "" or not (
        special
        or text[0] == " "
        or text[-1] == " "
        or text.startswith(("---", "..."))
        or text[0] in _LEADING_INDICATORS
        or (text[0] in "?:-" and (len(text) == 1 or text[1] in _WHITESPACE))
        or _INNER_INDICATOR.search(text, 1) is not None
    )
    resolver, node, firsts = _ruamel_resolver()
    if firsts is not None and text and text[0] not in firsts:
        implicit = True  # no implicit type of ruamel's starts with that character
    else:
        implicit = resolver.resolve(node, text, (True, False)) == _STR
    if implicit and yaml11_reads_as_other(text):
        return "'" + text + "'"  # no quote inside: none of those forms has one
    if implicit and plain and not (key and text == ""):
        return text
    if "'" in text or special:  # ruamel's preference, then what single quotes cannot hold
        return '"' + _escaped(text) + '"'
    return "'" + text + "'"


# What ruamel's write_double_quoted escapes (with allow_unicode), and how.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]')
#: Escapes other than ``\"`` and ``\\`` (each of which adds one character).
_RARE_ESCAPE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_NAMED_ESCAPES = {
    "\0": "0",
    "\x07": "a",
    "\x08": "b",
    "\x09": "t",
    "\x0a": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\x0d": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\u2028": "L",
    "\u2029": "P",
}


def _escape(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return "\\" + named
    code = ord(ch)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}"  # no escape is past U+FFFF


def _escaped(text: str) -> str:
    """``text`` inside double quotes, on one line."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if _RARE_ESCAPE.search(text) is None:
        return text
    return _RARE_ESCAPE.sub(lambda match: _escape(match.group()), text)


# Folding: ports of ruamel's write_plain, write_single_quoted and write_double_quoted (with
# split on, no line breaks in the text). Each returns the lines of the scalar: the first
# continues the line it starts on (``column`` is where its text starts), the others start
# with ``indent`` spaces.


def _fold_plain(text: str, column: int, indent: int) -> list[str]:
    lines: list[str] = []
    line: list[str] = []
    spaces = False
    start = end = 0
    while end <= len(text):
        ch = text[end] if end < len(text) else None
        if spaces:
            if ch != " ":
                if start + 1 == end and column >= _WIDTH:
                    lines.append("".join(line))
                    line, column = [" " * indent], indent
                else:
                    line.append(text[start:end])
                    column += end - start
                start = end
        elif ch is None or ch == " ":
            data = text[start:end]
            if len(data) + column > _WIDTH and column > indent:  # a word on a line of its own
                lines.append("".join(line))
                line, column = [" " * indent], indent
            line.append(data)
            column += len(data)
            start = end
        if ch is not None:
            spaces = ch == " "
        end += 1
    lines.append("".join(line))
    return lines


def _fold_single_quoted(text: str, column: int, indent: int) -> list[str]:
    lines: list[str] = []
    line = ["'"]
    column += 1
    spaces = False
    start = end = 0
    while end <= len(text):
        ch = text[end] if end < len(text) else None
        if spaces:
            if ch is None or ch != " ":
                if start + 1 == end and column > _WIDTH and start != 0 and end != len(text):
                    lines.append("".join(line))
                    line, column = [" " * indent], indent
                else:
                    line.append(text[start:end])
                    column += end - start
                start = end
        elif (ch is None or ch == " " or ch == "'") and start < end:
            line.append(text[start:end])
            column += end - start
            start = end
        if ch == "'":
            line.append("''")
            column += 2
            start = end + 1
        if ch is not None:
            spaces = ch == " "
        end += 1
    line.append("'")
    lines.append("".join(line))
    return lines


class _DoubleQuoted:
    """ruamel's write_double_quoted, state for state, but over runs of characters: it
    visits only the escapes and the places where a fold can happen, and skips what cannot
    reach the width (a dashboard's JSON is megabytes long)."""

    def __init__(self, text: str, column: int, indent: int) -> None:
        self.text = text
        self.indent = indent
        self.column = column + 1  # after the opening quote
        self.start = 0  # ruamel's start: the first character not yet written
        self.lines: list[str] = []
        self.line = ['"']
        self.rare = _RARE_ESCAPE.search(text) is not None

    def width(self, start: int, stop: int) -> int:
        """How many characters ``text[start:stop]`` takes, escaped."""
        if self.rare:
            return len(self._escaped(start, stop))
        text = self.text
        return stop - start + text.count('"', start, stop) + text.count("\\", start, stop)

    def _escaped(self, start: int, stop: int) -> str:
        return _escaped(self.text[start:stop])

    def write(self, data: str) -> None:
        self.line.append(data)
        self.column += len(data)

    def lines_of(self) -> list[str]:
        text, n = self.text, len(self.text)
        end = 0  # ruamel's end: the character it looks at
        while True:
            if self.start <= end:
                end = self._skip(end)
            escape = _NEEDS_ESCAPE.search(text, end)
            at = escape.start() if escape is not None else n
            fold = self._fold_before(end, at)
            if fold >= 0:
                self._fold(fold)
                end = fold + 1
                continue
            if at >= n:
                self.line.append(text[self.start :])
                break
            if self.start < at:
                self.write(text[self.start : at])
            self.write(_escape(text[at]))
            self.start = at + 1
            if 0 < at < n - 1 and self.column - 1 > _WIDTH:
                self._fold(at)
            end = at + 1
        self.line.append('"')
        self.lines.append("".join(self.line))
        return self.lines

    def _skip(self, end: int) -> int:
        """Write ahead as long as no character can reach the width; the new ``end``."""
        text, n = self.text, len(self.text)
        while True:
            budget = _WIDTH - self.column
            stop = min(self.start + budget, n - 1)
            if stop <= end + 1:
                return end
            over = self.width(self.start, stop) - budget
            if over > 0:
                stop -= over
                if stop <= end + 1:
                    return end
            # Leave a plain last character pending, as ruamel would (it matters to a fold).
            upto = stop if _NEEDS_ESCAPE.match(text, stop - 1) else stop - 1
            self.write(self._escaped(self.start, upto))
            self.start = upto
            end = stop

    def _fold_before(self, end: int, at: int) -> int:
        """The first place in ``[end, at)`` (no escape in it) where ruamel folds, or -1."""
        n, start = len(self.text), self.start
        for place in range(end, min(start + 1, at)):  # right after an escape or a fold
            if 0 < place < n - 1 and self.column + place - start > _WIDTH:
                return place
        low = max(end, start + 1, _WIDTH - self.column + start + 1, 1)
        high = min(at, n - 1)
        return self.text.find(" ", low, high) if low < high else -1

    def _fold(self, end: int) -> None:
        text, start = self.text, self.start
        backslash = self._needs_backslash(end)
        self.line.append((text[start:end] if start < end else "") + ("\\" if backslash else ""))
        if start < end:
            self.start = end
        self.lines.append("".join(self.line))
        self.line, self.column = [" " * self.indent], self.indent
        if text[self.start] == " ":
            if backslash:
                self.write("\\")
            else:
                self.start += 1

    def _needs_backslash(self, end: int) -> bool:
        text = self.text
        space = text.find(" ", end)
        if space < 0 or space + 1 >= len(text):
            return True
        return not (
            '"' not in text[end:space]
            and "'" not in text[end:space]
            and text[space + 1] not in " \n"
            and text[end - 1 : end + 1] != "  "
            and self.start != end
        )


def _long(prefix: str, text: str, line: str, indent: int, out: list[str]) -> None:
    """Append ``prefix`` and the scalar ``line`` (``text`` as written on one line), folded
    as ruamel folds it at ``indent`` when it is too long for one line."""
    if len(prefix) + len(line) <= _FOLD_SAFE:
        out.append(prefix + line)
        return
    column = len(prefix)
    if line[0] == '"':
        lines = _DoubleQuoted(text, column, indent).lines_of()
    elif line[0] == "'":
        lines = _fold_single_quoted(text, column, indent)
    else:
        lines = _fold_plain(text, column, indent)
    out.append(prefix + lines[0])
    out.extend(lines[1:])


def _literal(prefix: str, text: str, indent: int, out: list[str]) -> None:
    """A string with a ``\\n`` as ruamel writes a ``|`` block (render's literal strings)."""
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        raise Unsupported("a line break other than \\n")
    hints = "2" if text[0] in " \n" else ""
    if text[-1] != "\n":
        hints += "-"
    elif len(text) == 1 or text[-2] == "\n":
        hints += "+"
    out.append(prefix + "|" + hints)
    lines = text.split("\n")
    if text[-1] == "\n":
        lines.pop()
    pad = " " * indent
    out.extend([pad + line if line else "" for line in lines])


_value_cache: dict[str, str] = {}
_key_cache: dict[str, str] = {}


def _new_value(text: str) -> str:
    """The one-line form of a value, cached unless it is longer than a line can be (a
    dashboard's JSON is megabytes, and written once); ``""`` for a ``|`` block."""
    line = "" if "\n" in text else _scalar(text, key=False)
    if len(text) <= _FOLD_SAFE:
        if len(_value_cache) >= _CACHE_LIMIT:
            _value_cache.clear()
        _value_cache[text] = line
    return line


def _new_key(key: Any) -> str:
    if type(key) is not str:
        raise Unsupported("a key that is not a string")
    if len(key) > _MAX_KEY:
        raise Unsupported("a long key")
    line = _scalar(key, key=True)
    if len(_key_cache) >= _CACHE_LIMIT:
        _key_cache.clear()
    _key_cache[key] = line
    return line


def _string(prefix: str, text: str, line: str, indent: int, out: list[str]) -> None:
    """A value whose one-line form ``line`` is not written as it is: ``""`` for a ``|``
    block, or a long scalar."""
    if line:
        _long(prefix, text, line, indent, out)
    else:
        _literal(prefix, text, indent, out)


def _mapping(data: dict[Any, Any], indent: int, out: list[str], first: str | None) -> None:
    """Write ``data`` at ``indent``; ``first`` is the prefix of its first line (``- ``)."""
    if indent > _MAX_INDENT:
        raise Unsupported("nesting this deep")
    pad = " " * indent
    lead = pad if first is None else first
    values, keys = _value_cache, _key_cache
    # One f-string per line: measured faster than joining its parts with "+".
    for key, value in data.items():
        head = keys.get(key) if type(key) is str else None
        if head is None:
            head = _new_key(key)
        kind = type(value)
        if kind is str:
            line = values.get(value)
            if line is None:
                line = _new_value(value)
            if 0 < len(line) <= _LONG:
                out.append(f"{lead}{head}: {line}")
            else:
                _string(f"{lead}{head}: ", value, line, indent + 2, out)
        elif kind is dict:
            if value:
                out.append(f"{lead}{head}:")
                _mapping(value, indent + 2, out, None)
            else:
                out.append(f"{lead}{head}: {{}}")
        elif kind is list or kind is tuple:
            if value:
                out.append(f"{lead}{head}:")
                _sequence(value, indent + 2, out, None)
            else:
                out.append(f"{lead}{head}: []")
        elif kind is bool:
            out.append(f"{lead}{head}: true" if value else f"{lead}{head}: false")
        elif kind is int:
            out.append(f"{lead}{head}: {value}")
        else:  # exact types: ruamel represents subclasses (enums, ...) its own way
            raise Unsupported(f"a {kind.__name__} value")  # None: "null" or nothing
        lead = pad


def _sequence(items: Sequence[Any], indent: int, out: list[str], first: str | None) -> None:
    """Write ``items`` with their dashes at ``indent``; ``first`` as in :func:`_mapping`."""
    if indent > _MAX_INDENT:
        raise Unsupported("nesting this deep")
    dash = " " * indent + "- "
    lead = dash if first is None else first
    values = _value_cache
    for item in items:
        kind = type(item)
        if kind is str:
            line = values.get(item)
            if line is None:
                line = _new_value(item)
            if 0 < len(line) <= _LONG:
                out.append(lead + line)
            else:
                _string(lead, item, line, indent + 2, out)
        elif kind is dict:
            if item:
                _mapping(item, indent + 2, out, lead)
            else:
                out.append(lead + "{}")
        elif kind is list or kind is tuple:
            if item:
                _sequence(item, indent + 4, out, lead + "  - ")
            else:
                out.append(lead + "[]")
        elif kind is bool:
            out.append(lead + ("true" if item else "false"))
        elif kind is int:
            out.append(lead + str(item))
        else:
            raise Unsupported(f"a {kind.__name__} item")
        lead = dash


def emit_documents(documents: Sequence[Any]) -> str:
    """The documents as ruamel's ``dump_all`` writes them with homeops_gen's settings."""
    out: list[str] = []
    for index, document in enumerate(documents):
        if index:
            out.append("---")
        if type(document) is not dict or not document:
            raise Unsupported("a document that is not a non-empty mapping")
        _mapping(document, 0, out, None)
    if out[-1] == "":  # the stream ends with a |+ block: ruamel closes it
        out.append("...")
    return "\n".join(out) + "\n"
