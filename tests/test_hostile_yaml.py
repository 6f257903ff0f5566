"""Hostile catalogs: whatever the YAML or a value holds, the answer is a positioned problem.

Binary bytes and control characters, tags YAML cannot construct, nesting thousands deep,
huge values and numbers, durations past any date, odd time zone names and wrong types:
each is ``services.yaml:LINE:COL: [path: ]message`` and exit 2, without a traceback, with
out/ untouched, through the command line and through :func:`load_catalog_text`.

Positions are those of ``SMALL_CATALOG`` (conftest): ``timezone`` on line 3, the first
service's ``cadence: 6h`` on line 14, the second service's ``offsite`` on line 22, the last.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SMALL_CATALOG, CliResult, run_module, snapshot_of

from homeops_gen.catalog import load_catalog_text
from homeops_gen.catalog.fast_yaml import MAX_DEPTH, MAX_DIGITS, MAX_SCALAR
from homeops_gen.catalog.loader import MAX_SIZE
from homeops_gen.errors import CatalogError

SOURCE = "services.yaml"
#: A comment with a '!' in it: the text goes to the round-trip reader instead of libyaml.
ROUND_TRIP = "# the '!' in this comment makes the fast path decline\n"


def at_marker(text: str, marker: str) -> tuple[int, int]:
    """1-based line and column of the first ``marker`` in ``text``."""
    index = text.index(marker)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def replaced(old: str, new: str) -> str:
    assert old in SMALL_CATALOG
    return SMALL_CATALOG.replace(old, new, 1)


def in_media(line: str) -> str:
    """SMALL_CATALOG with ``line`` in the second service, instead of its ``offsite``."""
    return replaced("offsite: {excluded: Replaceable downloads}", line)


def in_notes(line: str) -> str:
    """SMALL_CATALOG with ``line`` added to the first service, after its cadence."""
    return replaced("    cadence: 6h\n", f"    cadence: 6h\n    {line}\n")


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as raised:
        load_catalog_text(text, SOURCE)
    return list(raised.value.lines)


def one_problem(text: str) -> str:
    """The one problem of ``text``, the same from both readers (libyaml and ruamel)."""
    [problem] = problems_of(text)
    assert problems_of(text + ROUND_TRIP) == [problem]
    return problem


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose out/ a valid catalog generated: the hostile runs must leave it be."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / SOURCE).write_text(SMALL_CATALOG, encoding="utf-8")
    result = run_module("--catalog", SOURCE, "--out", "out", cwd=folder)
    assert result.code == 0, result.err
    return folder


def run_hostile(folder: Path, generated: Path, catalog: str | bytes) -> CliResult:
    """``python -m homeops_gen`` on ``catalog`` beside a copy of ``generated``'s out/; the
    run must exit 2 without a traceback and leave out/ exactly as it was."""
    shutil.copytree(generated / "out", folder / "out")
    before = snapshot_of(folder / "out")
    if isinstance(catalog, str):
        catalog = catalog.encode("utf-8", "surrogatepass")
    (folder / SOURCE).write_bytes(catalog)
    result = run_module("--catalog", SOURCE, "--out", "out", cwd=folder)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err, result.err
    assert result.out == ""
    assert result.err.splitlines()[-1].endswith("; nothing was written")
    assert snapshot_of(folder / "out") == before
    return result


# --- each hostile input, at its position -------------------------------------------------

#: (catalog, where the problem is: line and column or the text there, what the message
#: says), in groups.
CASES = [
    # Characters: anywhere in the text, comments included, or written as an escape.
    *(
        pytest.param(
            in_media(f"offsite: {{excluded: Repl{char}aceable}}"),
            (22, 29),
            f"control character U+{ord(char):04X} is not allowed in YAML",
            id=f"control-U+{ord(char):04X}",
        )
        for char in "\x00\x07\x1b\x7f\x9b"
    ),
    pytest.param(
        in_media("offsite: {excluded: Repl\x85aceable}"),
        (22, 29),
        "character U+0085 is not allowed in a catalog (a line break YAML sees and editors "
        "do not show)",
        id="next-line-U+0085",
    ),
    pytest.param(
        in_media("offsite: {excluded: Repl\u2028aceable}"),
        (22, 29),
        "character U+2028 is not allowed in a catalog",
        id="line-separator-U+2028",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", "timezone: Etc/UTC  # bell \x07"),
        (3, 29),
        "control character U+0007 is not allowed in YAML",
        id="control-in-a-comment",
    ),
    pytest.param(
        in_media('description: "bell \\a"'),
        (22, 18),
        "services[1].description: control character U+0007, written as an escape, is not "
        "allowed in a catalog",
        id="control-as-an-escape",
    ),
    pytest.param(
        in_media('description: "half \\uD800"'),
        (22, 18),
        "services[1].description: lone surrogate U+D800, written as an escape, is not "
        "allowed in a catalog",
        id="lone-surrogate-as-an-escape",
    ),
    # Explicit tags YAML cannot construct, unknown tags, and a date that does not exist.
    pytest.param(
        replaced("churn: low\n    engine: sqlite", "churn: !!int abc\n    engine: sqlite"),
        (11, 12),
        "invalid YAML: 'abc' is not a valid !!int",
        id="tag-int",
    ),
    pytest.param(
        in_media("offsite: !!bool maybe"),
        (22, 14),
        "invalid YAML: 'maybe' is not a valid !!bool",
        id="tag-bool",
    ),
    pytest.param(
        in_media("offsite: !!timestamp 2020-13-45"),
        (22, 14),
        "invalid YAML: '2020-13-45' is not a valid !!timestamp",
        id="tag-timestamp",
    ),
    pytest.param(
        in_media("offsite: !!float x"),
        (22, 14),
        "invalid YAML: 'x' is not a valid !!float",
        id="tag-float",
    ),
    pytest.param(
        in_media("offsite: !!python/object:os.system x"),
        (22, 14),
        "invalid YAML: unknown tag '!!python/object:os.system'",
        id="tag-python-object",
    ),
    pytest.param(
        in_media("offsite: !foo bar"),
        (22, 14),
        "invalid YAML: unknown tag '!foo'",
        id="tag-local",
    ),
    pytest.param(
        in_media("description: 2026-02-30"),
        (22, 18),
        "invalid YAML: '2026-02-30' reads as a date or time but is not one; quote it if it is text",
        id="impossible-date",
    ),
    # Nesting: the root mapping is level 1, so the 64th '[' after "x: " is level 65.
    pytest.param(
        SMALL_CATALOG + "x: " + "[" * 5000 + "\n",
        (23, 4 + MAX_DEPTH - 1),
        f"the catalog nests deeper than {MAX_DEPTH} levels, the limit",
        id="5000-open-brackets",
    ),
    # "{{" is a mapping used as a key, which both readers (libyaml's events and ruamel's
    # composer, whichever a PyYAML build lets read it) report first, at the second brace.
    pytest.param(
        SMALL_CATALOG + "x: " + "{" * 5000 + "\n",
        (23, 5),
        "x: a key must be a single value, not a mapping",
        id="5000-open-braces",
    ),
    pytest.param(
        SMALL_CATALOG + "x: " + "{a: " * 5000 + "\n",
        (23, 5 + 4 * (MAX_DEPTH - 2)),
        f"the catalog nests deeper than {MAX_DEPTH} levels, the limit",
        id="5000-nested-flow-mappings",
    ),
    pytest.param(
        SMALL_CATALOG + "x: " + "[" * 5000 + "]" * 5000 + "\n",
        (23, 4 + MAX_DEPTH - 1),
        f"the catalog nests deeper than {MAX_DEPTH} levels, the limit",
        id="5000-closed-brackets",
    ),
    pytest.param(
        # k0 is level 2 (below the root); k63, on line 23 + 63, is level 65.
        SMALL_CATALOG + "".join(" " * i + f"k{i}:\n" for i in range(5000)),
        (23 + MAX_DEPTH - 1, MAX_DEPTH),
        f"the catalog nests deeper than {MAX_DEPTH} levels, the limit",
        id="5000-nested-block-mappings",
    ),
    pytest.param(
        # x's list is level 2, on line 24; the list at level 65 begins on line 24 + 63.
        SMALL_CATALOG + "x:\n" + "".join("  " * i + "-\n" for i in range(500)),
        (24 + MAX_DEPTH - 1, 2 * (MAX_DEPTH - 1) + 1),
        f"the catalog nests deeper than {MAX_DEPTH} levels, the limit",
        id="500-nested-block-lists",
    ),
    # Long values: the message says the length and the limit, and quotes 40 characters.
    pytest.param(
        in_media("offsite: {excluded: " + "x" * 1_000_000 + "}"),
        (22, 25),
        f"services[1].offsite.excluded: a value of 1000000 characters is too long (the limit "
        f"is {MAX_SCALAR}): '{'x' * 40}'...",
        id="a-megabyte-value",
    ),
    pytest.param(
        in_media("? " + "x" * 20_000 + "\n    : 1"),
        (22, 7),
        f"services[1]: a key of 20000 characters is too long (the limit is {MAX_SCALAR}): "
        f"'{'x' * 40}'...",
        id="a-long-key",
    ),
    pytest.param(
        in_media("description: " + "d" * 600),
        (22, 18),
        f"services[1].description: '{'d' * 40}'... is not single-line text without control "
        "or bidirectional characters: it is 600 characters long, the limit is 500",
        id="a-description-too-long",
    ),
    pytest.param(
        in_media("description: '" + "line\\n" * 100 + "'"),  # backslash-n: no escape in ''
        (22, 18),
        f"services[1].description: {('line' + chr(92) + 'n') * 6 + 'line'!r}... is not "
        "single-line text without control or bidirectional characters: it is 600 characters "
        "long, the limit is 500",
        id="a-long-value-with-escapes",
    ),
    pytest.param(
        replaced("backup_root: /mnt/tank", "backup_root: /" + "p" * 2000),
        "/ppp",
        f"settings.nfs.backup_root: '/{'p' * 39}'... is not an absolute path",
        id="a-path-too-long",
    ),
    # Numbers: more digits than any field takes, in both readers.
    pytest.param(
        replaced("cadence: 6h", "cadence: " + "9" * 5000),
        (14, 14),
        f"services[0].cadence: number too large: 5000 digits (the limit is {MAX_DIGITS}): "
        f"'{'9' * 40}'...",
        id="5000-digit-integer",
    ),
    pytest.param(
        replaced("cadence: 6h", "cadence: 0x" + "f" * 4000),
        (14, 14),
        f"services[0].cadence: number too large: 4000 digits (the limit is {MAX_DIGITS})",
        id="4000-digit-hex-integer",
    ),
    pytest.param(
        in_notes("job: {active_deadline_seconds: !!int " + "1" * 200 + "}"),
        (15, 36),
        f"services[0].job.active_deadline_seconds: number too large: 200 digits (the limit "
        f"is {MAX_DIGITS})",
        id="tagged-200-digit-integer",
    ),
    # Durations: at most 100 years, wherever a catalog gives one.
    pytest.param(
        in_notes("retention: 9999999999999999999999999999999d"),
        (15, 16),
        "services[0].retention: '9999999999999999999999999999999d' is longer than 100 years, "
        "the limit for a duration",
        id="retention-overflow",
    ),
    pytest.param(
        in_notes("rpo: 999999999999999w"),
        (15, 10),
        "services[0].rpo: '999999999999999w' is longer than 100 years, the limit for a duration",
        id="rpo-overflow",
    ),
    pytest.param(
        in_notes("stale_after: 999999999999999w"),
        (15, 18),
        "services[0].stale_after: '999999999999999w' is longer than 100 years, the limit for "
        "a duration",
        id="stale-after-overflow",
    ),
    pytest.param(
        replaced(
            "  timezone: Etc/UTC\n",
            "  timezone: Etc/UTC\n  snapshots: {lvm: {retention: 99999999999999999999h}}\n",
        ),
        "99999999999999999999h",
        "settings.snapshots.lvm.retention: '99999999999999999999h' is longer than 100 years",
        id="lvm-retention-overflow",
    ),
    pytest.param(
        replaced(
            "  timezone: Etc/UTC\n",
            "  timezone: Etc/UTC\n  defaults:\n    churn:\n"
            "      low: {cadence: daily, retention: 999999999999999999999d}\n",
        ),
        "999999999999999999999d",
        "settings.defaults.churn.low.retention: '999999999999999999999d' is longer than 100 years",
        id="default-retention-overflow",
    ),
    pytest.param(
        in_notes("job: {active_deadline_seconds: 99999999999999999999999}"),
        (15, 36),
        "services[0].job.active_deadline_seconds: Input should be less than or equal to 3155760000",
        id="deadline-overflow",
    ),
    pytest.param(
        in_notes("job: {starting_deadline_seconds: 99999999999999999999999}"),
        (15, 38),
        "services[0].job.starting_deadline_seconds: Input should be less than or equal to "
        "3155760000",
        id="starting-deadline-overflow",
    ),
    # Time zone names that are folders, paths, empty or with a line break.
    pytest.param(
        replaced("timezone: Etc/UTC", "timezone: America"),
        (3, 13),
        "settings.timezone: unknown IANA time zone 'America'",
        id="zone-folder",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", "timezone: ../../etc/passwd"),
        (3, 13),
        "settings.timezone: '../../etc/passwd' is not an IANA time zone",
        id="zone-path",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", 'timezone: ""'),
        (3, 13),
        "settings.timezone: '' is not an IANA time zone",
        id="zone-empty",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", 'timezone: "Europe/London\\n"'),
        (3, 13),
        "settings.timezone: 'Europe/London\\n' is not an IANA time zone",
        id="zone-line-break",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", "timezone: Etc/UTC\n  controller_timezone: posix"),
        (4, 24),
        "settings.controller_timezone: unknown IANA time zone 'posix'",
        id="controller-zone-folder",
    ),
    # Wrong types, and keys that are not names.
    pytest.param(
        replaced("  nfs: {server: nas.lan, backup_root: /mnt/tank}", "  nfs: [nas.lan]"),
        (4, 3),
        "settings.nfs: expected a mapping, got a list",
        id="list-for-a-mapping",
    ),
    pytest.param(
        replaced("timezone: Etc/UTC", "timezone: {zone: Etc/UTC}"),
        (3, 3),
        "settings.timezone: expected a string, got a mapping",
        id="mapping-for-a-string",
    ),
    pytest.param(
        replaced("  nfs: {server: nas.lan, backup_root: /mnt/tank}", "  nfs: ~"),
        (4, 3),
        "settings.nfs: expected a mapping, got nothing",
        id="null-for-a-mapping",
    ),
    pytest.param(
        replaced("namespace: notes", "namespace: true"),
        (9, 16),
        "services[0].namespace: expected a string, got a boolean",
        id="boolean-for-a-string",
    ),
    pytest.param(
        SMALL_CATALOG.replace("services:\n", "services: {notes: x}\n").split("\n  - name")[0]
        + "\n",
        (7, 1),
        "services: expected a list, got a mapping",
        id="mapping-for-a-list",
    ),
    pytest.param(
        in_media("2026-03-23: x"),
        (22, 5),
        "services[1]: a key must be text, not a date: quote it, or leave it out",
        id="date-as-a-key",
    ),
    pytest.param(
        in_media("{a: b}: c"),
        (22, 5),
        "services[1]: a key must be a single value, not a mapping",
        id="mapping-as-a-key",
    ),
    pytest.param(
        # The merged-in key has no position of its own: its mapping's is the one given.
        in_media("offsite: {<<: {excluded: 5}}"),
        (22, 5),
        "services[1].offsite.excluded: expected a string, got a number",
        id="merge-key",
    ),
    pytest.param(
        in_media("offsite: !!omap [excluded: 5]"),
        (22, 5),
        "services[1].offsite.excluded: expected a string, got a number",
        id="ordered-map",
    ),
]


def position_in(text: str, position: tuple[int, int] | str) -> tuple[int, int]:
    """A case's position: as given, or that of the marker text at which it is."""
    return at_marker(text, position) if isinstance(position, str) else position


@pytest.mark.parametrize(("text", "position", "message"), CASES)
def test_hostile_text_is_one_positioned_problem(
    text: str, position: tuple[int, int] | str, message: str
) -> None:
    problem = one_problem(text)
    line, column = position_in(text, position)
    assert problem.startswith(f"{SOURCE}:{line}:{column}: "), problem
    assert message in problem, problem
    assert len(problem) < 400, problem  # no value comes back whole


@pytest.mark.parametrize(("text", "position", "message"), CASES)
def test_hostile_catalog_exits_2_at_its_position(
    tmp_path: Path, generated: Path, text: str, position: tuple[int, int] | str, message: str
) -> None:
    result = run_hostile(tmp_path, generated, text)
    line, column = position_in(text, position)
    [problem, _summary] = result.err.splitlines()
    assert problem.startswith(f"{SOURCE}:{line}:{column}: "), problem
    assert message in problem, problem


def test_positions_of_the_cases_are_where_their_markers_are() -> None:
    """The hard-coded positions above agree with the texts (a check of the test itself)."""
    assert at_marker(in_media("offsite: !!bool maybe"), "!!bool") == (22, 14)
    assert at_marker(in_notes("rpo: 1w"), "1w") == (15, 10)
    assert at_marker(SMALL_CATALOG, "Etc/UTC") == (3, 13)


# --- limits: exactly at them is fine, past them is a problem -----------------------------


@pytest.mark.parametrize("suffix", ["", ROUND_TRIP], ids=["libyaml", "round-trip"])
def test_nesting_up_to_the_limit_is_read(suffix: str) -> None:
    # 63 brackets below the root mapping: the innermost list is level 64.
    text = SMALL_CATALOG + "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert problems_of(text + suffix) == [f"{SOURCE}:23:1: x: unknown field 'x'"]


@pytest.mark.parametrize("suffix", ["", ROUND_TRIP], ids=["libyaml", "round-trip"])
def test_a_value_of_the_longest_length_is_read(suffix: str) -> None:
    [problem] = problems_of(in_media("description: " + "d" * MAX_SCALAR) + suffix)
    assert problem.startswith(f"{SOURCE}:22:18: services[1].description: 'dddd")
    assert problem.endswith(f"it is {MAX_SCALAR} characters long, the limit is 500")


def test_durations_up_to_100_years_are_accepted() -> None:
    catalog = load_catalog_text(in_notes("retention: 36525d"), SOURCE)
    assert catalog.service("notes").retention.period.days == 36525  # type: ignore[union-attr]
    [problem] = problems_of(in_notes("retention: 36526d"))
    assert "is longer than 100 years" in problem
    assert load_catalog_text(in_notes("rpo: 5217w"), SOURCE).service("notes").rpo
    assert "is longer than 100 years" in one_problem(in_notes("rpo: 5218w"))


def test_a_megabyte_value_is_refused_fast() -> None:
    text = in_media("description: " + "x" * 10_000_000)
    for suffix in ("", ROUND_TRIP):
        started = time.perf_counter()
        [problem] = problems_of(text + suffix)
        assert time.perf_counter() - started < 5  # it took 52 s and 447 MB
        assert "a value of 10000000 characters is too long" in problem


def test_a_catalog_larger_than_the_limit_is_refused_unread(tmp_path: Path, generated: Path) -> None:
    value = "x" * (MAX_SIZE + 1)
    assert problems_of(value) == [
        f"{SOURCE}: the catalog is {MAX_SIZE + 1} characters; the limit is {MAX_SIZE} (16 MiB)"
    ]
    result = run_hostile(tmp_path, generated, in_media("description: ") + "x" * 50_000_000)
    size = (tmp_path / SOURCE).stat().st_size
    assert result.err.splitlines()[0] == (
        f"{SOURCE}: the catalog is {size} bytes; the limit is {MAX_SIZE} (16 MiB)"
    )


def test_binary_bytes_are_refused(tmp_path: Path, generated: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    assert run_hostile(tmp_path, generated, png).err.splitlines()[0] == (
        f"{SOURCE}:1:1: not UTF-8 text: byte 0x89"
    )
    zeros = SMALL_CATALOG.encode() + b"\x00" * 64
    shutil.rmtree(tmp_path / "out")
    assert run_hostile(tmp_path, generated, zeros).err.splitlines()[0] == (
        f"{SOURCE}:23:1: control character U+0000 is not allowed in YAML"
    )


def test_a_line_break_in_a_value_still_gets_the_fields_own_message() -> None:
    """Tab, line feed and carriage return are allowed characters: the field judges them."""
    assert one_problem(in_media('description: "one\\ntwo"')) == (
        f"{SOURCE}:22:18: services[1].description: 'one\\ntwo' is not single-line text "
        "without control or bidirectional characters"
    )


# --- fuzz: hostile snippets in several places ----------------------------------------------

SNIPPETS = [
    "",
    "~",
    "yes",
    "-1",
    ".nan",
    "1e309",
    "0o777",
    "9" * 4500,
    "[]",
    "{a: b}",
    "[a, {b: [c, {d: e}]}]",
    "[" * 300,
    "{" * 300 + "}" * 300,
    "!!int abc",
    "!!bool maybe",
    "!!timestamp 2020-13-45",
    "!!binary aGk=",
    "!!set {a}",
    "!!omap [a: 1]",
    "!!str {a: 1}",
    "!!python/object/apply:os.system [id]",
    "!foo bar",
    "2026-02-30",
    "&a [*a]",
    "*nowhere",
    "{<<: {a: 1}}",
    "{a: 1, a: 2}",
    "? [a, b]",
    "'unterminated",
    "|\n  block",
    "\x07",
    "\x85",
    '"\\0\\e\\N\\L"',
    '"\\uD800"',
    "\ud800",
    "a: b: c",
    "- - - a",
    "%YAML 1.1",
    "99999999999999999999d",
    "x" * 9000,
    "\t",
    "😀",
]

#: Where a snippet goes: a setting's value, a service field's values, keys, a list item.
PLACES: dict[str, Callable[[str], str]] = {
    "setting": lambda s: replaced("timezone: Etc/UTC", f"timezone: {s}"),
    "setting-mapping": lambda s: replaced(
        "nfs: {server: nas.lan, backup_root: /mnt/tank}", f"nfs: {s}"
    ),
    "service-field": lambda s: replaced("cadence: 6h", f"cadence: {s}"),
    "service-duration": lambda s: in_notes(f"stale_after: {s}"),
    "service-key": lambda s: in_media(f"{s}: x"),
    "label-key": lambda s: replaced(
        "  timezone: Etc/UTC\n", f"  timezone: Etc/UTC\n  alerts: {{rule_labels: {{{s}: x}}}}\n"
    ),
    "services-item": lambda s: SMALL_CATALOG + f"  - {s}\n",
}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[repr(s[:16]) for s in SNIPPETS])
def test_fuzz_the_cli_exits_0_or_2_without_a_traceback(
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
    snippet: str,
    place: str,
) -> None:
    catalog = tmp_path / SOURCE
    catalog.write_bytes(PLACES[place](snippet).encode("utf-8", "surrogatepass"))
    out = tmp_path / "out"
    result = run_cli("--catalog", str(catalog), "--out", str(out))  # raising is a traceback
    assert result.code in (0, 2), result.err
    assert "Traceback" not in result.err
    assert len(result.err) < 2000, result.err  # no value comes back whole
    if result.code == 2:
        assert result.err.startswith(f"{catalog}:"), result.err
        assert not out.exists()


def test_the_cache_reads_no_more_of_the_catalog_than_the_loader(tmp_path: Path) -> None:
    """``--catalog /dev/zero`` must end with the size error, not hang in the fingerprint."""
    from homeops_gen.cache import CATALOG_LIMIT
    from homeops_gen.catalog.loader import MAX_SIZE

    assert CATALOG_LIMIT == MAX_SIZE
    result = run_module("--catalog", "/dev/zero", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "the limit is" in result.err
    assert not (tmp_path / "out").exists()
