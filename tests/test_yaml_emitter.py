"""The fast YAML emitter writes exactly what ruamel writes, or steps aside."""

from __future__ import annotations

import random
import sys
from enum import StrEnum
from typing import Any

import pytest
from conftest import REPO, SMALL_CATALOG
from test_cnpg import LEGACY

from homeops_gen import build_plan, load_catalog, load_catalog_text, yaml_emitter
from homeops_gen.plan import YamlDocuments
from homeops_gen.render import ruamel_yaml, to_yaml
from homeops_gen.yaml_emitter import Unsupported, emit_documents

sys.path.insert(0, str(REPO / "bench"))
from synthetic import synthetic_catalog


class Colour(StrEnum):
    RED = "red"


TRICKY = [
    "",
    " ",
    "a ",
    " a",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "1",
    "-1",
    "+1",
    "0x1F",
    "0o17",
    "017",
    "1_000",
    "1e3",
    "1.5",
    ".5",
    ".inf",
    "-.Inf",
    ".nan",
    "2026-03-23",
    "2026-03-23T10:00:00Z",
    "12:30",
    "12:30:45",
    "<<",
    "=",
    "?",
    "-",
    ":",
    "::",
    "a: b",
    "a:b",
    "a :b",
    "a #b",
    "a#b",
    "#a",
    "- a",
    "-a",
    "*a",
    "&a",
    "!a",
    "%a",
    "@a",
    "`a",
    "|a",
    ">a",
    "{a}",
    "[a]",
    "a,b",
    "a, b",
    "it's",
    "'a'",
    'a"b',
    '"a"',
    "\\",
    "a\\b",
    "${APP}",
    "${VAR:=default}",
    "日本語",
    "🙂",
    "a\tb",
    "a\x01b",
    "a\u0085b",
    "x" * 3000,
    "line\nbreak",
    "0 0,12 * * *",
    "*/5 * * * *",
    "app.kubernetes.io/name",
    'instance="truenas:9100"',
    'time() - x{a="b"} > 3600',
    "s3://bucket/",
    "%{x}",
]


def rendered_documents() -> list[tuple[Any, ...]]:
    catalogs = [
        load_catalog(REPO / "services.yaml"),
        load_catalog_text(SMALL_CATALOG, "services.yaml"),
        load_catalog_text(LEGACY, "services.yaml"),
        load_catalog_text(synthetic_catalog(60), "services.yaml"),
    ]
    return [
        f.payload.documents
        for catalog in catalogs
        for f in build_plan(catalog).files
        if isinstance(f.payload, YamlDocuments)
    ]


def test_every_generated_document_is_written_as_ruamel_writes_it() -> None:
    documents = rendered_documents()
    assert len(documents) > 300
    declined = []
    for docs in documents:
        try:
            text = emit_documents(docs)
        except Unsupported:
            declined.append(docs)
            continue
        assert text == ruamel_yaml(docs)
    # Every document homeops_gen makes takes the fast path, the dashboard's folded JSON too.
    assert declined == []


def agree_or_decline(document: dict[Any, Any]) -> bool:
    """Whether the fast emitter wrote ``document`` (and then exactly as ruamel does)."""
    try:
        fast = emit_documents((document,))
    except Unsupported:
        return False
    assert fast == ruamel_yaml((document,)), repr(document)
    return True


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_as_values_keys_and_items(text: str) -> None:
    for document in ({"k": text}, {text: "v"}, {"list": [text, "x"]}, {"m": [{text: text}]}):
        agree_or_decline(document)


def test_most_tricky_strings_take_the_fast_path() -> None:
    """The comparisons above prove something only if the fast path writes most of them."""
    taken = sum(agree_or_decline({"k": text}) for text in TRICKY)
    assert taken >= len(TRICKY) - 8


@pytest.mark.parametrize("length", [99, 100, 101, 122, 123, 127, 128, 200])
def test_long_keys(length: int) -> None:
    key = "example.com/" + "a" * (length - 12)
    agree_or_decline({key: "v"})
    agree_or_decline({"labels": {key: "v"}})


def test_a_value_too_long_for_a_line_is_written_but_not_remembered() -> None:
    """The scalar cache keeps strings that come back; a megabyte of dashboard JSON, written
    once, is not kept (with its escaped line) for the rest of the run."""
    short, long = 'short "value" 1', 'x"y ' * 2_000
    assert agree_or_decline({"data": {"a.json": long, "b": short}})
    assert short in yaml_emitter._value_cache
    assert long not in yaml_emitter._value_cache


def test_random_strings_agree_with_ruamel() -> None:
    alphabet = "ab01 :#-?*&!|>'\"%@`,[]{}\\/.=~_\t\u00e9\u65e5"
    rng = random.Random(20261201)
    taken = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        taken += agree_or_decline({"key": text, text or "empty": [text, {"x": text}]})
    assert taken > 2500


@pytest.mark.parametrize(
    "document",
    [
        {"float": 0.5},
        {1: "int key"},
        {"none_item": [None]},
        {"none": None},
        {"long-key-" + "k" * 120: "v"},
    ],
)
def test_what_it_does_not_cover_falls_back_to_ruamel(document: dict[Any, Any]) -> None:
    with pytest.raises(Unsupported):
        emit_documents((document,))
    assert to_yaml((document,)) == ruamel_yaml((document,))


def test_values_of_other_types() -> None:
    document = {"n": 3, "t": True, "f": False, "empty_map": {}, "empty_list": [], "deep": [{}]}
    assert emit_documents((document,)) == ruamel_yaml((document,))
    assert emit_documents(({"a": 1}, {"b": 2})) == ruamel_yaml(({"a": 1}, {"b": 2}))


def test_a_string_subclass_is_not_written_as_its_str() -> None:
    """ruamel refuses an enum member; the fast path must not quietly write ``Colour.RED``."""
    with pytest.raises(Unsupported):
        emit_documents(({"colour": Colour.RED},))
