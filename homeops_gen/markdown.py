"""Catalog text in generated markdown: shown as the text it is, never as markup.

Free text (a service's ``description``, an offsite exclusion's reason) is written into
paragraphs and table cells of ``out/docs`` and ``out/README.md``. Rendered by GitHub (GFM)
or any CommonMark reader, ``<!--`` would hide the rest of the page, three backticks would
open a code block, ``[x](y)`` would become a link, ``|`` would split a table cell. Every
character that can start inline markup is backslash-escaped (CommonMark lets any ASCII
punctuation be escaped, and renders the escape as the character), as is a line-start marker
(heading, list, quote, setext underline) where the text begins a line.
"""

from __future__ import annotations

import re

__all__ = ["md_text"]

#: Inline markup: code spans, emphasis, links and images, raw HTML and comments, entities,
#: GFM strikethrough and GitHub's math; the backslash itself. An underscore between two
#: letters or digits (pg_dumpall) never delimits emphasis and stays as it is.
_WORD_UNDERSCORE = r"(?<=[A-Za-z0-9])_(?=[A-Za-z0-9])"
_INLINE = re.compile(rf"(?!{_WORD_UNDERSCORE})([\\`*_\[\]<>~&$])")
_TABLE = re.compile(rf"(?!{_WORD_UNDERSCORE})([\\`*_\[\]<>~&$|])")
#: Markers that mean something at the start of a line: headings, lists, quotes, setext
#: underlines, thematic breaks; an ordered list's "1." or "1)".
_LINE_START = re.compile(r"[#+\-=>]")
_ORDERED = re.compile(r"([0-9]+)([.)])")


def md_text(text: str, table: bool = False) -> str:
    """``text`` escaped for a markdown paragraph (or, with ``table``, a table cell)."""
    text = re.sub(" +", " ", text).strip(" ")  # leading spaces: an indented code block
    escaped = (_TABLE if table else _INLINE).sub(r"\\\1", text)
    if _LINE_START.match(escaped):
        return "\\" + escaped
    if ordered := _ORDERED.match(escaped):
        return f"{ordered.group(1)}\\{escaped[ordered.end(1) :]}"
    return escaped
