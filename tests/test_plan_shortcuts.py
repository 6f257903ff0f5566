"""The plan's shortcuts give what the long way gives.

Planning a large catalog stays linear through shortcuts: a YAML-safety check that skips the
parser for plain words and integers, a metric reader that skips regular expressions that
cannot match, an index joining alert reads to metric sources, an indented-JSON writer for
the dashboard, a Mermaid escaper that passes plain text through, and results remembered per
catalog. Each is checked here against the long way, written out plainly in this file
(PyYAML's parser, the standard library's ``json``, a join over every source), on generated
inputs, and the remembered results against a second catalog that differs.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import string
import sys
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, SMALL_CATALOG
from hypothesis import given, settings
from hypothesis import strategies as st

from homeops_gen import load_catalog_text, metrics
from homeops_gen.catalog.model import Catalog
from homeops_gen.diagrams import mermaid_text
from homeops_gen.generators import dashboard
from homeops_gen.generators.alerts import drill_group_name, rule_group, rule_groups
from homeops_gen.generators.backup_jobs import cron_jobs
from homeops_gen.generators.dashboard import dashboard_texts, indented_json
from homeops_gen.generators.volsync import yaml_safe
from homeops_gen.metrics import Read, Source, catalog_metrics, dangling, metrics_read
from homeops_gen.plan import check_output_path
from homeops_gen.protection import restore_drill

sys.path.insert(0, str(REPO / "bench"))
from synthetic import synthetic_catalog

SMALL = load_catalog_text(SMALL_CATALOG, "services.yaml")

# --- yaml_safe: PyYAML reads the value back as itself -------------------------------------

#: What YAML 1.1's regular expressions for booleans and null match (the spec's
#: ``bool`` and ``null`` types), which Flux's reader takes for a boolean or null.
_YAML11 = re.compile(
    r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL"
)
#: Every spelling of those words in any case, most of them plain strings.
_CASINGS = sorted(
    "".join(chars)
    for word in ("y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf")
    for chars in itertools.product(*((c.lower(), c.upper()) for c in word))
)


def _reads_back(value: str) -> bool | str:
    """Whether ``key: <value>`` parses to the value (or the integer it spells); the name
    of the exception when the parser raises one that is no YAMLError."""
    if not value or value != value.strip() or "\n" in value or _YAML11.fullmatch(value):
        return False
    try:
        read = yaml.safe_load(f"key: {value}\n")
    except yaml.YAMLError:
        return False
    except ValueError as exc:  # PyYAML's int constructor on "0x", say
        return type(exc).__name__
    if not isinstance(read, dict) or list(read) != ["key"]:
        return False
    got = read["key"]
    return got == value or (type(got) is int and str(got) == value)


def _outcome(value: str) -> bool | str:
    try:
        return yaml_safe(value)
    except ValueError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("value", [*_CASINGS, "~", "0", "00", "01", "0x1F", "1_000", "1:30"])
def test_yaml_safe_spellings(value: str) -> None:
    assert _outcome(value) == _reads_back(value)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="nNuUlLyYeEsStTrRfFaAoOxX019_.-+:# *&!{[", min_size=1, max_size=6))
def test_yaml_safe_agrees_with_the_parser(value: str) -> None:
    assert _outcome(value) == _reads_back(value)


# --- metrics_read: the reading written out without shortcuts -----------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_TOKEN = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?")
_EQUALITY = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*")')
_OTHER_OPS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*\s*(!=|=~|!~)\s*"(?:[^"\\]|\\.)*"')
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"inf", "nan", "group_left", "group_right", "atan2"}


def _long_read(expr: str) -> list[tuple[str, tuple[tuple[str, str], ...]]] | str:
    def outside(match: re.Match[str]) -> str:
        before = expr[: match.start()]
        return match.group(0) if before.count("{") > before.count("}") else '""'

    masked = _STRING.sub(outside, expr)
    masked = _GROUPING.sub(" ", re.sub(r"\[[^\]]*\]", " ", masked))
    reads = []
    for match in _TOKEN.finditer(masked):
        name, braces, call = match.groups()
        start = match.start()
        if start and (masked[start - 1].isdigit() or masked[start - 1] == "."):
            continue
        if call or name.lower() in _KEYWORDS:
            if call and braces:
                return "ValueError"
            continue
        pairs = _EQUALITY.findall(_OTHER_OPS.sub(" ", braces or ""))
        reads.append((name, tuple((k, json.loads(v)) for k, v in pairs)))
    return reads


def _short_read(expr: str) -> list[tuple[str, tuple[tuple[str, str], ...]]] | str:
    try:
        return [(read.metric, read.labels) for read in metrics_read(expr)]
    except ValueError:
        return "ValueError"


_PIECES = [
    *"abyonBYONwithoutIGNORINGgroup_leftright(){}[]\"'`\\=!~, :.e13\t",
    *("\u0131", "\u017f", "\u212a", "\u00a0", "\x01", "\u0130gnoring (x)", "\u0130"),
    *("by (", "on(", '{a="b"}', '{a!="b",c=~"d"}', "x{", '"\\""', "Without (x)", "[5m]"),
    *('sum by(a) (m{x="1"})', 'label_replace(m, "d", "$1", "s", "(.*)")', "1e3", "time()"),
]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14).map("".join))
def test_metrics_read_agrees_with_the_long_reading(expr: str) -> None:
    assert _short_read(expr) == _long_read(expr)


def test_metrics_read_of_the_generated_alerts() -> None:
    exprs = [alert.expr for group in rule_groups(SMALL) for alert in group.alerts]
    assert len(exprs) > 5
    for expr in exprs:
        assert _short_read(expr) == _long_read(expr), expr


# --- dangling: the index against a join over every source ---------------------------------

_KEYS = ("job", "service", "sync")
_VALUES = ("a", "b", "c")
_labels = st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from(_VALUES)), max_size=3)
_sources = st.lists(
    st.builds(
        lambda metric, labels, generated: Source(metric, "p", generated, tuple(labels)),
        st.sampled_from(("m1", "m2")),
        _labels,
        st.booleans(),
    ),
    max_size=12,
)
_reads = st.lists(
    st.builds(
        lambda m, labels: Read(m, tuple(labels)), st.sampled_from(("m1", "m2", "m3")), _labels
    ),
    min_size=1,
    max_size=6,
)


def _joined(found: list[Source], read: Read) -> bool:
    wanted = dict(read.labels)
    return any(
        source.metric == read.metric
        and all(wanted.get(key, value) == value for key, value in source.labels)
        for source in found
    )


@settings(max_examples=500, deadline=None)
@given(found=_sources, reads=_reads)
def test_dangling_joins_as_every_source_would(found: list[Source], reads: list[Read]) -> None:
    exprs = []
    for index, read in enumerate(reads):
        selector = ",".join(f'{key}="{value}"' for key, value in read.labels)
        exprs.append((f"A{index}", f"{read.metric}{{{selector}}}"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "sources", lambda _catalog: found)
        problems = dangling(SMALL, exprs)
    pairs = zip(exprs, reads, strict=True)
    expected = [alert for (alert, _), read in pairs if not _joined(found, read)]
    assert [problem.split()[1] for problem in problems] == expected


# --- indented_json: json.dumps(indent=2, sort_keys=True) ----------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, min_size=1, max_size=2)
    ),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None)
@given(_json_values)
def test_indented_json_is_json_dumps(value: Any) -> None:
    try:
        expected = json.dumps(value, indent=2, sort_keys=True)
    except TypeError:  # int and str keys together do not sort: neither may write them
        with pytest.raises(TypeError):
            indented_json(value)
        return
    assert indented_json(value) == expected


def test_indented_json_of_non_finite_floats() -> None:
    value = {"b": [math.inf, -math.inf], "a": {"x": math.nan}}
    assert indented_json(value) == json.dumps(value, indent=2, sort_keys=True)


@settings(max_examples=500, deadline=None)
@given(_json_values)
def test_an_indented_item_is_json_dumps_of_its_list(value: Any) -> None:
    """A panel written at its own indent is what json.dumps writes inside the list."""
    try:
        expected = json.dumps({"panels": [value]}, indent=2, sort_keys=True)
    except TypeError:
        return  # int and str keys together: covered above
    item = dashboard._indented_at(value, "\n    ")
    assert '{\n  "panels": [\n    ' + item + "\n  ]\n}" == expected


# --- dashboard_texts: panel by panel, as the whole dashboard encoded at once -------------


class _Built:
    """A built panel or row, as the builder Grafana's SDK takes."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource

    def build(self) -> Any:
        return self.resource


def _whole_dashboard(catalog: Catalog) -> tuple[str, str]:
    """The SDK's dashboard builder holding every panel and row, encoded once; then
    ``json.dumps(indent=2, sort_keys=True)`` of it."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import RowPanel

    builder = dashboard._shell(catalog)
    for resource in dashboard._built_panels(catalog):
        if isinstance(resource, RowPanel):
            builder = builder.with_row(_Built(resource))
        else:
            builder = builder.with_panel(_Built(resource))
    compact = JSONEncoder(sort_keys=True, separators=(",", ":")).encode(builder.build())
    return compact, json.dumps(json.loads(compact), indent=2, sort_keys=True) + "\n"


def _first_difference(ours: str, whole: str) -> str:
    pairs = enumerate(zip(ours, whole, strict=False))  # the shorter may be a prefix
    at = next((i for i, (a, b) in pairs if a != b), min(len(ours), len(whole)))
    return f"differ at {at}: {ours[at - 40 : at + 40]!r} vs {whole[at - 40 : at + 40]!r}"


@pytest.mark.parametrize("which", ["small", "bundled", "synthetic-120"])
def test_dashboard_texts_are_the_whole_dashboard_encoded_at_once(which: str) -> None:
    text = {
        "small": SMALL_CATALOG,
        "bundled": (REPO / "services.yaml").read_text(encoding="utf-8"),
        "synthetic-120": synthetic_catalog(120),
    }[which]
    catalog = load_catalog_text(text, "services.yaml")
    compact, indented = dashboard_texts(catalog)
    whole_compact, whole_indented = _whole_dashboard(catalog)
    for ours, whole in ((compact, whole_compact), (indented, whole_indented)):
        # Compared apart: pytest's own diff of two megabyte strings takes minutes.
        same = ours == whole
        assert same, _first_difference(ours, whole)
    assert len(json.loads(compact)["panels"]) > 3


# --- mermaid_text: plain text passes through as the escaper would write it ----------------

_PLAIN = frozenset(string.ascii_letters + string.digits + " .,:/-_()+=@*'!?")
_NAMED = {'"': "quot", "&": "amp", "<": "lt", ">": "gt"}


def _escaped(text: str) -> str:
    """Every character of mermaid_text's docstring, one at a time."""
    collapsed = " ".join(text.split())
    printable = "".join(c if c.isprintable() else "\ufffd" for c in collapsed)
    marked = re.sub(
        r"(?<=\$)(?=\$)|(?<=:)(?=fa-)|(?<=\ufb02)(?=\xb0)|(?<=\xb6)(?=\xdf)", "\u2060", printable
    )
    return "".join(
        c if c in _PLAIN else f"#{_NAMED[c]};" if c in _NAMED else f"#{ord(c)};" for c in marked
    )


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([*"ab1 .:-_()'!?\n\t$#\"<", ":fa-", "$$", "\xe9"]), max_size=12))
def test_mermaid_text_shortcut_escapes_as_the_long_way(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert mermaid_text(text) == _escaped(text)


# --- check_output_path ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "//host/share", "/"])
def test_absolute_paths_are_refused(path: str) -> None:
    assert check_output_path(path) == "must be a relative POSIX path"


def test_relative_paths_are_accepted() -> None:
    assert check_output_path("docs/a.md") is None


# --- results remembered per catalog --------------------------------------------------------

_DRILLED = """\
  - name: notes
    namespace: notes
    storage: iscsi
    churn: low
    engine: sqlite
    cadence: CADENCE
    drill: {cadence: "DRILL"}
    sqlite: {claim: notes-data, database: /data/notes.db}
"""


def _drilled(cadence: str, drill: str) -> Catalog:
    text = MINIMAL_HEAD + _DRILLED.replace("CADENCE", cadence).replace("DRILL", drill)
    return load_catalog_text(text, "services.yaml")


def test_remembered_results_follow_the_catalog() -> None:
    """Two catalogs with a service of the same name: each is answered from its own."""
    first, second = _drilled("6h", "0 4 * * 0"), _drilled("12h", "0 5 * * 1")
    for catalog in (first, second, first):
        (service,) = catalog.services
        drill = restore_drill(catalog, service)
        assert drill is not None and drill.schedule is service.drill.schedule  # type: ignore[union-attr]
        assert cron_jobs(catalog, service)[0].schedule is service.schedule
        group = rule_group(catalog, drill_group_name(service))
        assert group is not None
        expected = next(g for g in rule_groups(catalog) if g.name == group.name)
        assert group == expected
    assert rule_group(first, "no-such-group") is None


def test_remembered_metric_names_are_what_each_expression_reads() -> None:
    """The names the alerts' check remembers (and docs/metrics.md reads) are those of the
    expression's reads, each once, in order: asked before the check, after it, and for a
    second catalog whose alert reads other series."""
    first, second = _drilled("6h", "0 4 * * 0"), load_catalog_text(SMALL_CATALOG, "s")
    for catalog in (first, second):
        exprs = [(a.name, a.expr) for group in rule_groups(catalog) for a in group.alerts]
        early = {expr: catalog_metrics(catalog, expr) for _, expr in exprs[::2]}
        dangling(catalog, exprs)
        remembered = metrics._known_metrics(catalog)
        assert all(expr in remembered for _, expr in exprs)  # the check filled the memo
        for _, expr in exprs:
            reads = _long_read(expr)
            assert not isinstance(reads, str), expr
            names = list(dict.fromkeys(metric for metric, _ in reads))
            assert list(catalog_metrics(catalog, expr)) == names, expr
            assert early.get(expr, catalog_metrics(catalog, expr)) == tuple(names)
    assert any(
        len(catalog_metrics(second, a.expr)) > 1 for g in rule_groups(second) for a in g.alerts
    )
