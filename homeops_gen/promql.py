"""PromQL label matchers from the catalog: parsed, checked, and satisfied by a test series.

``settings.backup_disk.selector`` (``mountpoint="/mnt/main",fstype=~"ext4|xfs"``) is pasted
into the generated rules' expressions, so it is parsed here as Prometheus parses a selector's
matchers: ``name op "value"`` joined by commas, ``op`` one of ``= != =~ !~``, and a regex
(fully anchored, RE2 syntax) that must compile. The generated promtool tests need a series the
selector selects: :func:`satisfying_labels` builds its labels (a value each regex matches, and
none that a negative matcher excludes).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Matcher", "parse_matchers", "quoted", "satisfying_labels"]

Matcher = tuple[str, str, str]

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"\\\x00-\x1f\x7f]*)"\s*')
#: Syntax Python's re accepts and RE2 (Prometheus) refuses: look-around, atomic groups,
#: possessive quantifiers, back references.
_NOT_RE2 = re.compile(r"\(\?[=!>]|\(\?<[=!]|[*+?}]\+|\\[1-9]")


def quoted(value: str) -> str:
    """``value`` as a double-quoted string of PromQL (and of Alertmanager's matchers)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """The matchers of ``text``; ``ValueError`` says what is wrong and where."""
    matchers: list[Matcher] = []
    position = 0
    while True:
        match = _MATCHER.match(text, position)
        if match is None:
            raise ValueError(
                f"character {position + 1}: expected a label matcher such as "
                'mountpoint="/mnt/main" (name, one of = != =~ !~, a double-quoted value '
                "without quotes or backslashes: write [.] for a literal dot)"
            )
        name, op, value = match.groups()
        if op in ("=~", "!~"):
            _check_regex(name, value)
        matchers.append((name, op, value))
        position = match.end()
        if position == len(text):
            break
        if text[position] != ",":
            raise ValueError(f"character {position + 1}: expected ',' between matchers")
        position += 1
    if all(op in ("!=", "!~") or _matches_empty(op, value) for _, op, value in matchers):
        # Prometheus refuses a selector whose every matcher matches the empty value.
        raise ValueError("at least one matcher must not match the empty value")
    if satisfying_labels(tuple(matchers)) is None:
        raise ValueError(
            "no label values found that every matcher selects, for the generated promtool "
            "test's series: simplify the regexes"
        )
    return tuple(matchers)


def _check_regex(name: str, pattern: str) -> None:
    if bad := _NOT_RE2.search(pattern):
        raise ValueError(f"{name}: {bad.group(0)!r} is not RE2 syntax (Prometheus' regexes)")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}: {pattern!r} is not a valid regex: {exc}") from None


def _matches_empty(op: str, value: str) -> bool:
    return (op == "=" and value == "") or (op == "=~" and re.fullmatch(value, "") is not None)


def _selects(op: str, pattern: str, value: str) -> bool:
    if op == "=":
        return value == pattern
    if op == "!=":
        return value != pattern
    found = re.fullmatch(pattern, value) is not None
    return found if op == "=~" else not found


def satisfying_labels(matchers: tuple[Matcher, ...]) -> dict[str, str] | None:
    """Labels of a series that every matcher selects (an absent label is the empty value),
    or ``None`` when none can be found."""
    labels: dict[str, str] = {}
    for name in dict.fromkeys(n for n, _, _ in matchers):
        own = [(op, value) for n, op, value in matchers if n == name]
        candidates = ["", *(v for op, v in own if op == "="), *_examples(own), "homeops-test"]
        chosen = next((c for c in candidates if all(_selects(o, v, c) for o, v in own)), None)
        if chosen is None:
            return None
        if chosen:
            labels[name] = chosen
    return labels


def _examples(own: list[tuple[str, str]]) -> list[str]:
    found = []
    for op, pattern in own:
        if op == "=~":
            import re._parser as parser  # type: ignore[import-not-found]

            try:
                found.append(_example(parser.parse(pattern)))
            except _NoExample:
                continue
    return found


class _NoExample(Exception):
    pass


def _example(tree: Any) -> str:
    """A shortest string the parsed regex ``tree`` matches (best effort)."""
    import re._constants as c  # type: ignore[import-not-found]

    out = []
    for op, arg in tree:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is c.ANY:
            out.append("a")
        elif op is c.IN:
            out.append(_in_example(arg))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, _high, sub = arg
            out.append(_example(sub) * low)
        elif op is c.SUBPATTERN:
            out.append(_example(arg[-1]))
        elif op is c.BRANCH:
            out.append(_example(arg[1][0]))
        elif op is c.AT:
            continue
        else:
            raise _NoExample(str(op))
    return "".join(out)


def _in_example(items: Any) -> str:
    import re._constants as c

    negate = bool(items) and items[0][0] is c.NEGATE
    pool = "a0_-./:A"
    if not negate:
        op, arg = items[0]
        if op is c.LITERAL:
            return chr(arg)
        if op is c.RANGE:
            return chr(arg[0])
    pattern = "[" + "".join(_in_source(items)) + "]"
    for char in pool:
        if re.fullmatch(pattern, char):
            return char
    raise _NoExample("class")


def _in_source(items: Any) -> list[str]:
    import re._constants as c

    parts = []
    for op, arg in items:
        if op is c.NEGATE:
            parts.append("^")
        elif op is c.LITERAL:
            parts.append(re.escape(chr(arg)))
        elif op is c.RANGE:
            parts.append(f"{re.escape(chr(arg[0]))}-{re.escape(chr(arg[1]))}")
        elif op is c.CATEGORY:
            parts.append(
                {
                    c.CATEGORY_DIGIT: r"\d",
                    c.CATEGORY_NOT_DIGIT: r"\D",
                    c.CATEGORY_SPACE: r"\s",
                    c.CATEGORY_NOT_SPACE: r"\S",
                    c.CATEGORY_WORD: r"\w",
                    c.CATEGORY_NOT_WORD: r"\W",
                }[arg]
            )
        else:
            raise _NoExample(str(op))
    return parts
