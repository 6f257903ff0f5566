"""The fast YAML emitter's shortcuts against ruamel, over every string homeops_gen writes.

Three shortcuts are proven here: the plain-safe strings (written as they are, without
ruamel's analysis or resolver), the scalar rules that replace ruamel's analysis for every
other string, and the folding of scalars longer than ruamel's line width. The reference is
ruamel itself: :func:`homeops_gen.render.ruamel_yaml` (homeops_gen's settings, which also
single-quote what YAML 1.1 reads as something else) and a bare round-trip ``YAML()`` with
the same settings; and PyYAML's YAML 1.1 resolver as an independent reader.

The corpus is every key and value of every YAML document of the bundled catalog, the test
catalogs and ``synthetic_catalog(N)`` (N = 1,000; ``HOMEOPS_YAML_PROOF=1`` makes it 10,000
and adds the whole-document comparison of the 1,000-service catalog: minutes, not seconds),
plus a hostile corpus. A negative control plants faults in the emitter and sees them caught.
"""

from __future__ import annotations

import gc
import io
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import yaml as pyyaml
from conftest import REPO, SMALL_CATALOG
from ruamel.yaml import YAML
from test_cnpg import LEGACY

from homeops_gen import build_plan, load_catalog, load_catalog_text, render, yaml_emitter
from homeops_gen.catalog.model import Catalog
from homeops_gen.plan import YamlDocuments
from homeops_gen.render import ruamel_yaml
from homeops_gen.yaml_emitter import Unsupported, emit_documents, plain_safe

sys.path.insert(0, str(REPO / "bench"))
from synthetic import synthetic_catalog

PROOF = os.environ.get("HOMEOPS_YAML_PROOF") == "1"
CORPUS_SERVICES = 10_000 if PROOF else 1_000
#: Scalars written on one line by both (each of ruamel's folds needs a column past 4096).
ONE_LINE = 3900
BATCH = 2000

HOSTILE = [
    *("", " ", "  ", "a ", " a", "a  b", "a\tb", "\ta", "a\t"),
    *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "yEs", "nO"),
    *("true", "True", "TRUE", "false", "False", "FALSE", "tRUE"),
    *("on", "On", "ON", "off", "Off", "OFF", "oN"),
    *("~", "null", "Null", "NULL", "nULL", "None", "none", "NaN", "Inf", "nan", "inf"),
    *("0", "1", "-1", "+1", "017", "0o17", "0O17", "0x1F", "0X1f", "0b101", "0B1", "1_000"),
    *("_1", "1_", "-0", "+0", "00", "09", "1e3", "1E3", "1e+3", "1.5", ".5", "5.", "-.5"),
    *(".inf", ".Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "1:20", "190:20:30.15"),
    *("1:2:3", "-1:20", "12:30", "12:30:45", "2026-03-23", "2026-3-3", "2026-03-23T10:00:00Z"),
    *("2026-03-23 10:00:00 +01:00", "2026-03-23t10:00:00.5-05:00", "20260323"),
    *("<<", "=", "<", "==", "<<a", "=a", "a=", "a=b", "a==b"),
    *(":", "::", ":a", "a:", "a::", "a:b", "a: b", "a :b", "a:b:", "a:b c", "a :", "a: "),
    *("Yes:", "k:v", "http://x", "a:\tb", "a:,b", "a:{b}"),
    *("#", "#a", "a#b", "a #b", "a# b", "a\t#b", " #"),
    *("-", "--", "---", "----", "- a", "-a", "--- a", "...", "....", ".. .", "-\ta"),
    *("?", "? a", "?a", "a?", "a ? b", "&", "&a", "a&b", "*", "*a", "a*b", "!", "!a", "a!b"),
    *("!!str", "%", "%a", "a%b", "@", "@a", "a@b", "`", "`a", "a`b", "|", "|a", ">", ">a"),
    *("{", "}", "[", "]", "{a}", "[a]", "a,b", "a, b", ",a", "a{b}", "a[b]", "{}", "[]"),
    *("'", '"', "''", '""', "it's", "'a'", '"a"', 'a"b', "a'b", "a'\"b", "'a", '"a'),
    *("\\", "a\\b", "\\n", "a\\", "${APP}", "${VAR:=default}", "$a", "%{x}", "(a)", "/a"),
    *("\x00", "a\x01b", "\x07", "\x1b[0m", "a\x7fb", "\x85", "a\x85b", "\xa0", "a\xa0b"),
    *("\u2028", "a\u2028b", "\u2029", "a\u2029b", "\ufeff", "a\ufeffb", "\ufffe", "\uffff"),
    *("\ud800", "a\udfffb", "é", "日本語", "🙂", "a🙂b", "\u200b", "a\u3000b"),
    *("\n", "\n\n", "a\n", "a\nb", "a\n\n", " a\nb", "\na", "a\nb\n", "a \nb", "a\n b"),
    *("a\r\nb\n", "a\rb", "\r", "a\tb\n", "x\x01\ny\n", "#!/bin/sh\nset -eu\n"),
    *("0 0,12 * * *", "*/5 * * * *", "@daily", "app.kubernetes.io/name", "s3://bucket/"),
    *('instance="truenas:9100"', 'time() - x{a="b"} > 3600', "a: 'b'", "- 'a'", "k=v, x"),
    *("x" * 100, "x" * 101, "x" * 127, "x" * 128, "x" * 3000, "x" * 5000, "a " * 3000),
    *(("a" * 4090 + " b c"), ("ab'c " * 900), ('ab"c d ' * 800), ("\\" * 4500)),
    *(('{"k": "v\\n"} ' * 600), ("a\tb " * 1200), ("é " * 2500), ("x" * 4094 + "  y")),
]


def yaml_documents(catalog: Catalog) -> Iterator[tuple[Any, ...]]:
    """Every sequence of documents the plan of ``catalog`` serialises: the YAML files'
    and those its generators pass to ``to_yaml`` themselves (iSCSI's cloud-init)."""
    extra: list[tuple[Any, ...]] = []
    original = render.to_yaml

    def recording(documents: Any) -> str:
        extra.append(tuple(documents))
        return original(documents)

    collecting = gc.isenabled()
    gc.disable()  # as the CLI runs: the collector makes planning thousands of services slow
    render.to_yaml = recording
    try:
        plan = build_plan(catalog)
    finally:
        render.to_yaml = original
        if collecting:
            gc.enable()
    yield from extra
    for output in plan.files:
        if isinstance(output.payload, YamlDocuments):
            yield output.payload.documents


def strings_of(node: Any, into: set[str]) -> None:
    if type(node) is dict:
        for key, value in node.items():
            if type(key) is str:
                into.add(key)
            strings_of(value, into)
    elif type(node) is list or type(node) is tuple:
        for item in node:
            strings_of(item, into)
    elif type(node) is str:
        into.add(node)


def named_catalogs() -> Iterator[Catalog]:
    """The bundled catalog and the test suite's own."""
    yield load_catalog(REPO / "services.yaml")
    yield load_catalog_text(SMALL_CATALOG, "services.yaml")
    yield load_catalog_text(LEGACY, "services.yaml")


def catalogs(services: int) -> Iterator[Catalog]:
    yield from named_catalogs()
    yield load_catalog_text(synthetic_catalog(services), "services.yaml")


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Every distinct string of the catalogs' documents, then the hostile ones, sorted."""
    found: set[str] = set()
    for catalog in catalogs(CORPUS_SERVICES):
        for documents in yaml_documents(catalog):
            for document in documents:
                strings_of(document, found)
    gc.collect()
    return sorted(found) + HOSTILE


def fresh_caches() -> None:
    yaml_emitter._value_cache.clear()
    yaml_emitter._key_cache.clear()


def bare_ruamel(documents: Iterable[Any]) -> str:
    """A round-trip dump with homeops_gen's settings but none of its own quoting."""
    dumper = YAML(typ="rt")
    dumper.default_flow_style = False
    dumper.width = 4096
    dumper.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    dumper.dump_all(list(documents), stream)
    return stream.getvalue()


def first_difference(fast: str, reference: str, strings: list[str]) -> str:
    """The string of a batch whose line differs, for the failure message."""
    ours, theirs = fast.splitlines(), reference.splitlines()
    for number, line in enumerate(ours):
        other = theirs[number] if number < len(theirs) else ""
        if line != other:
            known = [s for s in strings if s and s in line]
            return f"line {number}: {line!r} != {other!r}; strings {known[:3]!r}"
    return "the outputs differ in length"


def emitted(documents: tuple[Any, ...]) -> str | None:
    try:
        return emit_documents(documents)
    except Unsupported:
        return None


def scalar_mismatches(strings: list[str]) -> list[str]:
    """Where the emitter writes a string otherwise than ruamel_yaml does, as a value, as a
    key and as a sequence item. Short single-line strings are compared in batches (one
    mapping, a line each); the others one document each."""
    problems: list[str] = []
    short = [s for s in strings if len(s) <= ONE_LINE and s.isprintable()]
    short_set = set(short)
    others = [s for s in strings if s not in short_set]
    for offset in range(0, len(short), BATCH):
        batch = short[offset : offset + BATCH]
        keys = list(dict.fromkeys(s for s in batch if len(s) <= 100))
        for document in ({f"k{i}": text for i, text in enumerate(batch)}, dict.fromkeys(keys, 0)):
            if not document:
                continue
            fast, reference = emitted((document,)), ruamel_yaml((document,))
            if fast != reference:
                problems.append(first_difference(fast or "", reference, batch))
    for text in others:
        shapes = [{"k": text}, {"items": [text, "x"]}, {text: "v"}]
        for document in shapes[:1] if len(text) > 100_000 else shapes:
            fast = emitted((document,))
            if fast is not None and fast != ruamel_yaml((document,)):
                problems.append(repr(text[:80]) + f" in {next(iter(document))!r:.20}")
    return problems


#: gopkg.in/yaml.v2's resolve (Kubernetes' reader), from its resolve.go: the first
#: character picks what a plain scalar may be; letters other than these are always strings.
YAML_V2_WORDS = {
    *("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"),
    *("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"),
    *("", "~", "null", "Null", "NULL", "<<"),
}


def yaml_v2_may_read_as_other(text: str) -> bool:
    """Conservative: a word of its map, or anything a number or timestamp could start as."""
    return text in YAML_V2_WORDS or text[:1] in set("+-.0123456789")


def plain_safe_mismatches(strings: list[str]) -> list[str]:
    """Strings the fast path takes that a bare ruamel would not write plain (as a value
    and as a key), or that a YAML 1.1 (PyYAML, yaml.v2) or 1.2 (ruamel) reader could take
    for something else than a string."""
    from ruamel.yaml.nodes import ScalarNode

    str_tag = "tag:yaml.org,2002:str"
    pyyaml_resolver = pyyaml.resolver.Resolver()
    ruamel_resolver = YAML(typ="rt").resolver
    taken = [s for s in strings if plain_safe(s)]
    problems = [
        s
        for s in taken
        if pyyaml_resolver.resolve(pyyaml.nodes.ScalarNode, s, (True, False)) != str_tag
        or ruamel_resolver.resolve(ScalarNode, s, (True, False)) != str_tag
        or yaml_v2_may_read_as_other(s)
    ]
    short = [s for s in taken if len(s) <= ONE_LINE]
    for offset in range(0, len(short), BATCH):
        batch = short[offset : offset + BATCH]
        keys = list(dict.fromkeys(s for s in batch if len(s) <= 100))
        for document, plain in (
            (
                {f"k{i}": text for i, text in enumerate(batch)},
                "".join(f"k{i}: {text}\n" for i, text in enumerate(batch)),
            ),
            (dict.fromkeys(keys, 0), "".join(f"{text}: 0\n" for text in keys)),
        ):
            written = bare_ruamel([document]) if document else ""
            if written != plain:
                problems.append(first_difference(written, plain, batch))
    return problems


def test_the_corpus_holds_every_generated_string(corpus: list[str]) -> None:
    """A guard on the corpus itself: it must be as large as the catalogs make it."""
    assert len(corpus) > 30 * CORPUS_SERVICES
    taken = sum(plain_safe(s) for s in corpus)
    assert taken > len(corpus) // 2, "the fast path must take most generated strings"
    assert any(len(s) > 1_000_000 for s in corpus), "the dashboard's JSON, folded"


def test_every_plain_safe_string_is_plain_to_ruamel_and_a_string_to_every_reader(
    corpus: list[str],
) -> None:
    assert plain_safe_mismatches(corpus) == []


def test_every_string_is_written_as_ruamel_writes_it(corpus: list[str]) -> None:
    fresh_caches()
    assert scalar_mismatches(corpus) == []


def random_strings(seed: int, count: int, lengths: tuple[int, int]) -> list[str]:
    alphabet = "ab01 :#-?*&!|>'\"%@`,[]{}\\/.=~_\t\u00e9\u65e5\x01\x7f\ufeff\U0001f642\n"
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        letters = [*rng.sample(alphabet, rng.randint(2, 8)), "a"]
        weights = [rng.random() for _ in letters]
        found.append("".join(rng.choices(letters, weights, k=rng.randint(*lengths))))
    return found


def test_random_short_strings_are_written_as_ruamel_writes_them() -> None:
    fresh_caches()
    strings = random_strings(20261202, 4000, (0, 12))
    assert scalar_mismatches(strings) == []
    assert plain_safe_mismatches(strings) == []


@pytest.mark.parametrize("seed", range(2))
def test_random_long_strings_are_folded_as_ruamel_folds_them(seed: int) -> None:
    """Folding depends on the column a scalar starts at: keys of every length, nesting."""
    rng = random.Random(seed)
    for text in random_strings(seed, 30, (3900, 6000)):
        key = "k" * rng.randint(1, 90)
        document = rng.choice(
            [{key: text}, {"a": {"b": [text]}}, {"a": [{key: text}]}, {"l": [[[text]]]}]
        )
        fast = emitted((document,))
        assert fast is None or fast == ruamel_yaml((document,)), (seed, key, text[:60])


def documents_of(services: int | None) -> list[tuple[Any, ...]]:
    if services is None:
        return [docs for c in named_catalogs() for docs in yaml_documents(c)]
    catalog = load_catalog_text(synthetic_catalog(services), "services.yaml")
    return list(yaml_documents(catalog))


@pytest.mark.parametrize(
    "services",
    [
        None,
        pytest.param(
            1000,
            marks=pytest.mark.skipif(not PROOF, reason="HOMEOPS_YAML_PROOF=1: minutes"),
        ),
    ],
    ids=["bundled-and-test-catalogs", "synthetic-1000"],
)
def test_every_document_is_written_as_ruamel_writes_it(services: int | None) -> None:
    """Whole documents, and none left to ruamel: not the dashboard, not cloud-init."""
    fresh_caches()
    documents = documents_of(services)
    assert len(documents) > 150
    declined = []
    for docs in documents:
        fast = emitted(docs)
        if fast is None:
            declined.append(docs)
        else:
            assert fast == ruamel_yaml(docs), docs[0].get("metadata", docs[0])
    assert declined == []
    kinds = {d.get("kind") for docs in documents for d in docs}
    assert "ConfigMap" in kinds and any("write_files" in d for docs in documents for d in docs)


@pytest.mark.parametrize(
    "document",
    [
        {"float": 0.5},
        {"none": None},
        {"none_item": [None]},
        {1: "int key"},
        {"long-key-" + "k" * 120: "v"},
        {"multi\nline": "key"},
        {"break": "a\u2028b"},
        {"block": "a\nb\u2028c\n"},
        {"ok": [[1, "a"]], "nested_float": [[1.5]]},
    ],
)
def test_what_it_cannot_write_still_falls_back_to_ruamel(document: dict[Any, Any]) -> None:
    with pytest.raises(Unsupported):
        emit_documents((document,))
    assert render.to_yaml((document,)) == ruamel_yaml((document,))


def test_a_keep_block_at_the_end_of_the_stream_is_closed_as_ruamel_closes_it() -> None:
    for documents in (({"a": "x\n\n"},), ({"a": "\n"},), ({"a": "x\n\n"}, {"b": 1})):
        assert emit_documents(documents) == ruamel_yaml(documents)
    assert emit_documents(({"a": "x\n\n"},)).endswith("\n...\n")


LOOSE_PLAIN = re.compile(r"[A-Za-z0-9/($][^\n]*")


@pytest.mark.parametrize(
    "fault",
    ["plain-safe takes digits and ': '", "width 4095", "no keep hint", "escape as \\u"],
)
def test_a_planted_fault_is_caught(monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    """Negative control: the checks above fail when the emitter is wrong."""
    if fault.startswith("plain-safe"):
        monkeypatch.setattr(yaml_emitter, "_PLAIN_SAFE", LOOSE_PLAIN)
    elif fault == "width 4095":
        monkeypatch.setattr(yaml_emitter, "_WIDTH", 4095)
    elif fault == "no keep hint":
        literal = yaml_emitter._literal

        def no_keep(prefix: str, text: str, indent: int, out: list[str]) -> None:
            literal(prefix, text, indent, out)
            if prefix + "|+" in out:
                out[out.index(prefix + "|+")] = prefix + "|"

        monkeypatch.setattr(yaml_emitter, "_literal", no_keep)
    else:
        monkeypatch.setattr(yaml_emitter, "_escape", lambda ch: f"\\u{ord(ch):04X}")
    fresh_caches()
    try:
        assert scalar_mismatches(HOSTILE) != []
        if fault.startswith("plain-safe"):
            assert plain_safe_mismatches(HOSTILE) != []
    finally:
        fresh_caches()
