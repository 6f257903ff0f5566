"""The libyaml fast path reads a catalog exactly as the round-trip parser does, or declines."""

from __future__ import annotations

import sys

import pytest
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG
from ruamel.yaml import YAML

from homeops_gen import load_catalog_text
from homeops_gen.catalog.fast_yaml import ReadError, fast_load
from homeops_gen.catalog.loader import _plain
from homeops_gen.errors import CatalogError

sys.path.insert(0, str(REPO / "bench"))
from synthetic import synthetic_catalog

TRICKY = [
    "a: yes\nb: No\nc: on\n",
    "a: 017\nb: 0o17\nc: 0x1f\nd: 0b11\ne: 1_000\nf: -0\ng: +5\nh: 10\n",
    "a: 1.5\n",
    "a: .inf\n",
    "a: 1e3\n",
    "a: 2026-03-23\n",
    "a: 2026-03-23T10:00:00Z\n",
    "a: 12:30\n",
    "a: ~\nb: null\nc: Null\nd:\n",
    "a: true\nb: True\nc: TRUE\nd: false\n",
    "a: !!str 5\n",
    "a: !!int '5'\n",
    "a: !custom x\n",
    "a: &x {b: 1}\nc: *x\n",
    "base: &b {x: 1}\nderived: {<<: *b, y: 2}\n",
    "a: 1\na: 2\n",
    "a: 1\n---\nb: 2\n",
    "a: 'quoted'\nb: \"dq\\tx\"\nc: |\n  block\n  text\nd: >\n  folded\n  text\n",
    "1: a\n",
    "? [a, b]\n: c\n",
    "- a\n- b\n",
    "",
    "just text\n",
    "a: [1, [2, 3], {b: c}]\n",
    "a: {}\nb: []\n",
    "a: 'it''s'\n",
    "a: x # comment\n",
    'a: "\\u00e9 \\U0001F642"\n',
    "a: 😀\n",
    "a: [yes, NO, 1.0]\n",
]


def ruamel_plain(text: str) -> object:
    return _plain(YAML(typ="rt").load(text))


@pytest.mark.parametrize("text", TRICKY)
def test_fast_path_agrees_or_declines(text: str) -> None:
    try:
        fast = fast_load(text)
    except ReadError:  # refused at a position, as the loader's own ruamel reader refuses it
        with pytest.raises(CatalogError):
            load_catalog_text(text)
        return
    try:
        expected = ruamel_plain(text)
    except Exception:  # ruamel rejects it: the fast path must not accept it
        assert fast is None
        return
    assert fast is None or (fast == expected and type(fast) is type(expected)), (fast, expected)


@pytest.mark.parametrize(
    "text",
    ["a: yes\n", "a: 10\nb: true\nc: ~\n", "a: 'quoted'\n", "a: [x, {b: c}]\n"],
)
def test_fast_path_takes_plain_documents(text: str) -> None:
    assert fast_load(text) == ruamel_plain(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1.5\n",
        "a: 2026-03-23\n",
        "a: 017\n",
        "a: !!str 5\n",
        "a: 1\na: 2\n",
        "a:\tb\n",  # ruamel refuses the tab, libyaml does not
        "a: !!bool yes\n",  # an explicit tag PyYAML's nodes cannot tell from an implicit one
        "%YAML 1.1\n---\na: yes\n",  # ruamel reads yes as true under 1.1
        "x: &l [*l]\n",  # a node that contains itself
        "a: &x 1\nb: *x\n",
    ],
)
def test_fast_path_declines_what_could_differ(text: str) -> None:
    assert fast_load(text) is None


def test_a_tab_in_a_catalog_is_still_an_error_at_its_line() -> None:
    from homeops_gen import CatalogError, load_catalog_text

    text = SMALL_CATALOG.replace("timezone: Etc/UTC", "timezone:\tEtc/UTC")
    with pytest.raises(CatalogError) as raised:
        load_catalog_text(text, "services.yaml")
    (problem,) = raised.value.problems
    assert str(problem).startswith("services.yaml:3:") and "invalid YAML" in str(problem)


def test_an_explicitly_tagged_value_is_judged_by_ruamel() -> None:
    from homeops_gen import CatalogError, load_catalog_text

    text = SMALL_CATALOG.replace(
        "offsite: {excluded: Replaceable downloads}", "offsite: !!bool yes"
    )
    catalog = load_catalog_text(text, "services.yaml")  # ruamel: the boolean true
    assert catalog.service("media").offsite.included
    with pytest.raises(CatalogError):
        load_catalog_text(text.replace("!!bool yes", "!!str yes"), "services.yaml")


def test_real_catalogs_take_the_fast_path_and_agree() -> None:
    for text in (
        (REPO / "services.yaml").read_text(),
        SMALL_CATALOG,
        MINIMAL_HEAD + "  []\n",
        synthetic_catalog(50),
    ):
        fast = fast_load(text)
        assert fast is not None
        assert fast == ruamel_plain(text)
