"""Lint findings are placed from libyaml's nodes exactly where ruamel's round trip puts them."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG, CliResult

from homeops_gen.catalog import load_catalog_text
from homeops_gen.catalog.loader import CatalogPositions
from homeops_gen.catalog.places import CatalogPlaces
from homeops_gen.lint import lint_catalog

sys.path.insert(0, str(REPO / "bench"))
from synthetic import synthetic_catalog

#: Layouts a hand-written catalog has: flow and block collections, comments, quoted keys,
#: empty and null values, values on the next line, block scalars, non-ASCII text before a
#: value (columns count characters), a document marker, CRLF line ends.
LAYOUTS = {
    "flow": "a: {b: 1, c: [x, {d: 2}], e: ~}\nf: [1, 2]\n",
    "comments": "# head\na:   # after\n  # between\n  b: 1   # tail\n  c:\n    - x  # item\n",
    "quoted keys": "'a': {\"b\": 'v', 'c d': \"w\"}\n\"e\": 1\n",
    "empty and null": "a:\nb: ~\nc: null\nd: {e: , f: ~}\ng:\n  - \n  - null\n",
    "next line": "a:\n  b:\n    1\n  c:\n    'x'\n",
    "block scalars": "a: |\n  one\n  two\nb: >-\n  folded\n  text\nc: 3\n",
    "unicode": "ä: {ö: ü, ß: [€, 'ñ']}\nx: 'zürich'\n",
    "document marker": "---\na: {b: 1}\n...\n",
    "crlf": "a:\r\n  b: 1\r\n  c: [x, y]\r\nd: 2\r\n",
    "deep lists": "a:\n- - 1\n  - [2, 3]\n- b: {c: [4]}\n",
}


def _locations(node: Any, loc: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    """Every location in a document, and one missing child of each collection and scalar."""
    yield loc
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _locations(value, (*loc, key))
        yield (*loc, "no-such-key")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _locations(value, (*loc, index))
        yield (*loc, len(node))
    else:
        yield (*loc, "below-a-scalar")


def _assert_same_places(text: str) -> int:
    places, positions = CatalogPlaces(text, "services.yaml"), CatalogPositions(text)
    assert places.root is not None, "libyaml declined: the comparison would be ruamel's own"
    count = 0
    for loc in _locations(yaml.safe_load(text)):
        for at_key in (False, True):
            assert places.at(loc, at_key) == positions.at(loc, at_key), (loc, at_key)
            count += 1
    return count


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_location_of_a_layout_is_where_ruamel_puts_it(name: str) -> None:
    assert _assert_same_places(LAYOUTS[name]) >= 8


def test_every_location_of_large_catalogs_is_where_ruamel_puts_it() -> None:
    texts = [synthetic_catalog(60), (REPO / "services.yaml").read_text(encoding="utf-8")]
    assert sum(_assert_same_places(text) for text in texts) > 4_000


def test_value_and_key_places_differ_so_the_comparison_can_fail() -> None:
    text = LAYOUTS["flow"]
    places = CatalogPlaces(text, "services.yaml")
    assert places.at(("a", "b")) == (1, 8)  # the value 1
    assert places.at(("a", "b"), at_key=True) == (1, 5)  # its key
    assert places.at(("a", "e")) == places.at(("a", "e"), at_key=True)  # null: at the key
    assert places.where(("f", 1)) == "services.yaml:2:8"


def test_what_libyaml_may_read_otherwise_is_placed_by_ruamel() -> None:
    text = "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n"
    places = CatalogPlaces(text, "services.yaml")
    assert places.root is None
    positions = CatalogPositions(text)
    for loc in _locations(yaml.safe_load(text)):
        assert places.at(loc) == positions.at(loc)


def test_lint_findings_of_a_large_catalog_are_placed_as_before() -> None:
    text = synthetic_catalog(200)
    findings = lint_catalog(load_catalog_text(text, "services.yaml"))
    assert findings, "the synthetic catalog is expected to have lint findings"
    places, positions = CatalogPlaces(text, "services.yaml"), CatalogPositions(text)
    for finding in findings:
        assert places.at(finding.loc) == positions.at(finding.loc) != (1, 1), finding


def test_the_cli_prints_a_finding_at_its_value(run_cli: Any, tmp_path: Any) -> None:
    text = SMALL_CATALOG.replace(
        "  alerts: {runbook_base_url: https://git.example.com/homelab/runbooks}\n", ""
    )
    assert text != SMALL_CATALOG
    catalog = tmp_path / "services.yaml"
    catalog.write_text(text, encoding="utf-8")
    result: CliResult = run_cli("lint", "--catalog", str(catalog))
    findings = lint_catalog(load_catalog_text(text, str(catalog)))
    assert findings
    for finding in findings:
        line, column = CatalogPositions(text).at(finding.loc)
        assert f"{catalog}:{line}:{column}: " in result.err, (finding, result.err)


def test_minimal_head_is_placed_as_ruamel_does() -> None:
    text = MINIMAL_HEAD + textwrap.indent("- {name: a, namespace: b}\n", "  ")
    assert _assert_same_places(text) > 20
