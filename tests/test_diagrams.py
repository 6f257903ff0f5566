"""The Mermaid flowcharts of out/docs/, read by Mermaid itself and by a CommonMark reader.

Every ```mermaid block the generator writes (the reference catalog's, rendered in memory, and
those of every inline catalog of the golden tests, tests/pvc_catalogs.py's among them) is
parsed by Mermaid's own parser: tests/mermaid/check.mjs imports the npm ``mermaid`` pinned in
tests/mermaid/package.json (and its lock), calls ``mermaid.parse`` on each text under jsdom,
all of them in one Node process, and hands back what Mermaid's flowchart database then
holds: the vertices with their labels, shapes and classes, the edges, the config a
directive would have set. The same script draws the charts with ``mermaid.render`` in
Debian's Chromium (puppeteer-core, headless) and reports each label as the page shows it.
The checks read those answers, not the generator's text:

* each diagram parses, sets no config, and stays within the text size and edge count that
  Mermaid draws (past them it draws an error box);
* a runbook's chart has a vertex per layer ``protection_layers`` lists, each reached from
  the service, and the stores services.yaml names (NFS server and folder, the offsite
  target, Garage, R2) where the data goes; the matrix's chart holds every runbook's arrows;
* catalog text with quotes, brackets, ``<``, ``|``, ``;``, backticks, a Mermaid directive,
  an icon, a KaTeX formula, newlines and a bidi override parses to the same vertices and
  edges as plain words, and each label shows that text, nothing but text, in Chromium;
* markdown-it-py (CommonMark, as GitHub reads the page) sees each chart as one closed fenced
  block with the ``mermaid`` info string, in the section it belongs to.

Negative controls: broken diagrams (an unbalanced quote, a bad arrow) are parse errors for
the same checker; the hostile text written raw adds vertices and arrows, sets a config,
closes the fence early, draws an icon and a formula; a chart missing an arrow or a layer
fails the layer check.

Locally these tests skip when ``node`` (or, for drawing, ``chromium``) is missing, or when
tests/mermaid/node_modules is and ``npm ci`` cannot install it; under ``CI=true`` they fail
(.ci/run installs them).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import os
import random
import re
import shutil
import string
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO, require_tool
from markdown_it import MarkdownIt
from pvc_catalogs import KOPIUR_ONLY, MIXED_ENGINES, VOLSYNC_ONLY
from test_golden import INLINE_CATALOGS

import homeops_gen.diagrams
from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog, Offsite, Service
from homeops_gen.diagrams import (
    catalog_flowchart,
    mermaid_label,
    mermaid_text,
    service_flowchart,
)
from homeops_gen.generators.docs import generate_protection_matrix
from homeops_gen.generators.runbooks import generate_runbooks, has_runbook
from homeops_gen.protection import protection_layers
from homeops_gen.registry import Generator

pytestmark = pytest.mark.tool("node")

MERMAID_DIR = Path(__file__).parent / "mermaid"
CHECKER = MERMAID_DIR / "check.mjs"
PINNED = json.loads((MERMAID_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
MATRIX = "docs/protection-matrix.md"

#: Every catalog whose rendered markdown is checked: the reference and the golden tests' own
#: (tests/pvc_catalogs.py's among them).
CATALOGS = {"reference": (REPO / "services.yaml").read_text(encoding="utf-8"), **INLINE_CATALOGS}
assert {KOPIUR_ONLY, VOLSYNC_ONLY, MIXED_ENGINES} <= set(CATALOGS.values())

#: Catalog text that is syntax to Mermaid (quotes and brackets that end a label and start a
#: node, an arrow, a directive that sets the theme, ``;`` and ``|``, the style statement's
#: ``style ...:...#...;``, an icon's ``fa:fa-car``, KaTeX's ``$$...$$``), HTML (``<b>``, an
#: entity, Mermaid's own ``#quot;`` code and its internal entity markers) and markdown (a
#: fence, a link).
HOSTILE_LINE = (
    'q"uote" ] ) }} --> n99["pwn"] %%{init: {"theme": "dark"}}%% <b>bold</b> <br> '
    "&lt; &amp; #quot; #35; | pipe ; semi `tick` ``` [link](https://evil.example) "
    "lifestyle:a<b; classDef x fill:#f00; \\ back \ufb02\xb0lt\xb6\xdf caf\xe9 \u2014 "
    "fa:fa-car $$x^2$$ end"
)
#: The same with what the catalog loader refuses in free text (a newline that starts a fence,
#: a tab, a bidi override): only reachable past validation.
HOSTILE = HOSTILE_LINE + "\nnew line\n```\nafter the fence\ttab \u202e rtl"
BENIGN = "plain words"


def shown(text: str) -> str:
    """What a label must show for catalog ``text``: white space collapsed to single spaces,
    a character that is not printable as U+FFFD, an invisible word joiner (U+2060) inside
    each pair of characters Mermaid would read as markup even from entity codes: ``$$``
    (KaTeX), ``:fa-`` (an icon) and its own entity markers (see decode)."""
    collapsed = " ".join(text.split())
    printable = "".join(c if c.isprintable() else "\ufffd" for c in collapsed)
    return re.sub(
        r"(?<=\$)(?=\$)|(?<=:)(?=fa-)|(?<=\ufb02)(?=\xb0)|(?<=\xb6)(?=\xdf)", "\u2060", printable
    )


# --- the checker -----------------------------------------------------------------------------


def _installed() -> bool:
    modules = MERMAID_DIR / "node_modules"
    return all((modules / name / "package.json").is_file() for name in PINNED)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} under CI=true (.ci/run runs npm ci in tests/mermaid)")
    pytest.skip(reason)


@functools.cache
def _install() -> str:
    """Run ``npm ci`` in tests/mermaid unless its node_modules is there; why it could not."""
    if _installed():
        return ""
    npm = shutil.which("npm")
    if npm is None:
        return "tests/mermaid/node_modules is missing and npm is not installed"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=MERMAID_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not _installed():
        return f"npm ci in tests/mermaid failed: {done.stderr.strip()[-500:]}"
    return ""


def _checker(
    *args: str, env: dict[str, str] | None = None
) -> Callable[[list[str]], dict[str, Any]]:
    """``run(texts)``: tests/mermaid/check.mjs's answer for ``texts`` (npm ci first when
    tests/mermaid/node_modules is missing)."""
    node = require_tool("node")
    problem = _install()
    if problem:
        _unavailable(problem)

    def run(texts: list[str]) -> dict[str, Any]:
        done = subprocess.run(
            [node, str(CHECKER), *args],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        assert result["mermaid"] == PINNED["mermaid"]  # the lock installs the pinned Mermaid
        assert len(result["answers"]) == len(texts)
        return result

    return run


@pytest.fixture(scope="module")
def mermaid_parse() -> Callable[[list[str]], list[dict[str, Any]]]:
    """``parse(texts)``: Mermaid's parse of each text (see tests/mermaid/check.mjs)."""
    run = _checker()

    def parse(texts: list[str]) -> list[dict[str, Any]]:
        result = run(texts)
        answers: list[dict[str, Any]] = result["answers"]
        for answer in answers:
            answer["limits"] = result["limits"]
        return answers

    return parse


@pytest.fixture(scope="module")
def mermaid_render() -> Callable[[list[str]], list[dict[str, Any]]]:
    """``render(texts)``: each text drawn by Mermaid in Debian's Chromium, each node's label
    as the page shows it (see tests/mermaid/check.mjs)."""
    run = _checker("--render", env={"CHROMIUM": require_tool("chromium")})

    def render(texts: list[str]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = run(texts)["answers"]
        return answers

    return render


def _entities(text: str) -> str:
    """Mermaid's decodeEntities: its markers back to ``&#``, ``&`` and ``;``."""
    return text.replace("\ufb02\xb0\xb0", "&#").replace("\ufb02\xb0", "&").replace("\xb6\xdf", ";")


def decode(label: str) -> list[str]:
    """A parsed label as Mermaid draws it, line by line. Mermaid keeps ``#name;`` and
    ``#123;`` as markers (``\ufb02\xb0``, ``\ufb02\xb0\xb0``, ``\xb6\xdf``) while it parses, then
    writes them as ``&name;`` and ``&#123;`` into the HTML label, where ``<br>`` breaks a
    line; and it decodes the markers once more in the SVG it hands back (mermaidAPI's
    render), where the label's text is HTML-escaped. test_labels_render_as_decode_reads_them
    holds this against Chromium's rendering."""
    shown_once = [html.unescape(_entities(line)) for line in label.split("<br>")]
    return [html.unescape(_entities(html.escape(line, quote=False))) for line in shown_once]


@dataclass
class Chart:
    """A parsed flowchart: each vertex's label lines and class, the edges."""

    labels: dict[str, list[str]]
    kinds: dict[str, str]
    shapes: dict[str, str]
    edges: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Chart:
        assert answer["ok"], answer.get("error")
        vertices = answer["vertices"]
        return cls(
            {v: decode(info["text"]) for v, info in vertices.items()},
            {v: ",".join(info["classes"]) for v, info in vertices.items()},
            {v: str(info["type"]) for v, info in vertices.items()},
            {(e["start"], e["end"]) for e in answer["edges"]},
        )

    def matching(self, fragment: str) -> set[str]:
        return {v for v, lines in self.labels.items() if any(fragment in ln for ln in lines)}

    def has_path(self, *fragments: str) -> bool:
        """Whether arrows lead from a vertex showing the first fragment through ones showing
        each next fragment, in order."""
        current = self.matching(fragments[0])
        for fragment in fragments[1:]:
            current = {e for s, e in self.edges if s in current} & self.matching(fragment)
        return bool(current)

    def reachable(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for s, e in self.edges:
                if s == here and e not in seen:
                    seen.add(e)
                    todo.append(e)
        return seen - {start}

    def arrows(self) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The edges by the labels at their ends (ids differ from chart to chart)."""
        return {(tuple(self.labels[s]), tuple(self.labels[e])) for s, e in self.edges}


# --- the diagrams of every catalog, as the rendered markdown holds them ----------------------


@dataclass(frozen=True)
class Fence:
    catalog: str
    page: str
    #: The level-2 heading the fence is under.
    section: str
    #: The first level-2 heading of the page.
    first_section: str
    text: str
    #: Whether a closing fence line ends it (an unclosed fence runs to the end of the page).
    closed: bool


def mermaid_fences(catalog: str, page: str, markdown: str) -> list[Fence]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    lines = markdown.splitlines()
    sections: list[str] = []
    fences: list[Fence] = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            sections.append(tokens[index + 1].content)
        if token.type == "fence" and token.info.strip() == "mermaid":
            assert token.map is not None
            start, end = token.map
            closed = end - start >= 2 and lines[end - 1].strip() == token.markup
            section = sections[-1] if sections else ""
            first = sections[0] if sections else ""
            fences.append(Fence(catalog, page, section, first, token.content, closed))
    return fences


@pytest.fixture(scope="module")
def catalogs() -> dict[str, Catalog]:
    return {name: load_catalog_text(text, "services.yaml") for name, text in CATALOGS.items()}


@pytest.fixture(scope="module")
def pages(catalogs: dict[str, Catalog]) -> dict[tuple[str, str], str]:
    """Every markdown page of every catalog's output, rendered in memory."""
    return {
        (name, path): data.decode("utf-8")
        for name, catalog in catalogs.items()
        for path, data in sorted(render_plan(build_plan(catalog)).items())
        if path.endswith(".md")
    }


@pytest.fixture(scope="module")
def fences(pages: dict[tuple[str, str], str]) -> list[Fence]:
    found: list[Fence] = []
    for (name, path), text in pages.items():
        here = mermaid_fences(name, path, text)
        # Each line that opens a mermaid fence opens one (none inside a table or a block).
        assert len(here) == text.splitlines().count("```mermaid"), (name, path)
        found += here
    return found


def _hostile(catalog: Catalog, text: str) -> Catalog:
    """``catalog`` (the reference) with ``text`` where validation would refuse it: a backup
    folder, a namespace, the offsite target, an exclusion's reason, the Kopia repository's
    path."""
    settings = dataclasses.replace(
        catalog.settings,
        offsite_target=f"sftp://nas.example/{text}",
        volsync=dataclasses.replace(catalog.settings.volsync, kopia_nfs_path=f"/mnt/{text}"),
    )
    services = []
    for service in catalog.services:
        if service.name == "postgresql":
            service = dataclasses.replace(
                service, backup_path=f"/mnt/main/{text}", namespace=f"db {text}"
            )
        if service.name == "immich-postgres":
            service = dataclasses.replace(service, offsite=Offsite(False, text))
        services.append(service)
    return dataclasses.replace(catalog, settings=settings, services=tuple(services))


#: Raw in a service's box (a stadium), these close the label and the box and go on as
#: Mermaid: two more nodes and the arrows to them; a directive that sets the theme.
INJECTION = 'x"]) --> n99["pwn"] --> n98(["y'
DIRECTIVE = '%%{init: {"theme": "dark"}}%%'


def _namespaced(catalog: Catalog, namespace: str) -> Catalog:
    """The catalog with postgresql in ``namespace`` (which validation would refuse)."""
    services = tuple(
        dataclasses.replace(s, namespace=namespace) if s.name == "postgresql" else s
        for s in catalog.services
    )
    return dataclasses.replace(catalog, services=services)


def raw_chart(catalog: Catalog, name: str) -> str:
    """The service's chart with the catalog's text written as it is (no escaping)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(homeops_gen.diagrams, "mermaid_text", lambda text: text)
        return service_flowchart(catalog, catalog.service(name))


def _small_with_reason(reason: str) -> str:
    """An inline catalog (through the loader's validation) whose service with a runbook is
    kept out of the offsite copies for ``reason``."""
    data = yaml.safe_load(MINIMAL_HEAD + "  []\n")
    data["services"] = [
        {
            "name": "notes",
            "namespace": "notes",
            "storage": "iscsi",
            "churn": "low",
            "engine": "sqlite",
            "sqlite": {"claim": "notes-data", "database": "/data/notes.db"},
            "offsite": {"excluded": reason},
        }
    ]
    return json.dumps(data)


#: Labels (their lines) for the round trip through mermaid_label and Mermaid: every printable ASCII
#: character, white space of each kind, letters of other scripts, format characters.
_POOL = string.printable + "\u00a0\u2028\u202e\u200b\ufeff\xe9\u4e2d\U0001f600\ufb02\xb0\xb6\xdf"
_RNG = random.Random(20260323)


def _random_text() -> str:
    """Up to 40 characters of the pool, at least one of them not white space."""
    while True:
        text = "".join(_RNG.choice(_POOL) for _ in range(_RNG.randint(1, 40)))
        if text.split():
            return text


ROUND_TRIP: list[list[str]] = [
    [HOSTILE],
    ["style:a#b;c"],
    ["classDef k fill:#fff;"],
    # "style" on one line of a label, a colon and a "#" on another: one line to Mermaid.
    ["lifestyle", "fill:#f00; #quot;"],
    ["#quot; #35; #lt;", "%% comment", "end"],
    *([_random_text()] for _ in range(150)),
    *([_random_text(), _random_text()] for _ in range(30)),
]

#: A flowchart each negative control breaks.
BROKEN = {
    "unbalanced quote": 'flowchart LR\n    n1["a label\n    n1 --> n2\n',
    "bad arrow": 'flowchart LR\n    n1["a"]\n    n2["b"]\n    n1 -=> n2\n',
    "quote inside the label": 'flowchart LR\n    n1["say "hi" now"]\n',
}


@pytest.fixture(scope="module")
def parsed(
    mermaid_parse: Callable[[list[str]], list[dict[str, Any]]],
    fences: list[Fence],
    catalogs: dict[str, Catalog],
) -> dict[str, Any]:
    """Everything this module asks Mermaid, in one Node process."""
    reference = catalogs["reference"]
    hostile, benign = _hostile(reference, HOSTILE), _hostile(reference, BENIGN)
    inputs: dict[str, str] = {f"fence {i}": fence.text for i, fence in enumerate(fences)}
    for name in ("postgresql", "immich-postgres"):
        inputs[f"hostile {name}"] = service_flowchart(hostile, hostile.service(name))
        inputs[f"benign {name}"] = service_flowchart(benign, benign.service(name))
    inputs["hostile catalog"] = catalog_flowchart(hostile)
    inputs["benign catalog"] = catalog_flowchart(benign)
    # The negative controls: the same text unescaped.
    inputs["raw hostile"] = raw_chart(hostile, "postgresql")
    inputs["raw injection"] = raw_chart(_namespaced(reference, INJECTION), "postgresql")
    inputs["raw directive"] = raw_chart(_namespaced(reference, DIRECTIVE), "postgresql")
    injected = _namespaced(reference, INJECTION)
    inputs["escaped injection"] = service_flowchart(injected, injected.service("postgresql"))
    for index, lines in enumerate(ROUND_TRIP):
        inputs[f"round trip {index}"] = f'flowchart LR\n    n1["{mermaid_label(lines)}"]\n'
    for name, text in BROKEN.items():
        inputs[f"broken {name}"] = text
    # A generated chart with one arrow taken out, for the layer check's negative control.
    postgresql = service_flowchart(reference, reference.service("postgresql"))
    inputs["postgresql"] = postgresql
    inputs["missing arrow"] = postgresql.replace("    n1 --> n4\n", "")
    assert inputs["missing arrow"] != postgresql
    answers = mermaid_parse(list(inputs.values()))
    for answer, text in zip(answers, inputs.values(), strict=True):
        answer["source"] = text
    return dict(zip(inputs, answers, strict=True))


def _runbook_of(page: str) -> str:
    """The service of ``docs/runbooks/restore-<service>.md``."""
    return page.removeprefix("docs/runbooks/restore-").removesuffix(".md")


def fence_answers(parsed: dict[str, Any], fences: list[Fence]) -> Iterator[tuple[Fence, Any]]:
    for index, fence in enumerate(fences):
        yield fence, parsed[f"fence {index}"]


# --- every generated diagram parses ------------------------------------------------------------


def test_every_generated_diagram_parses(parsed: dict[str, Any], fences: list[Fence]) -> None:
    pages = {(f.catalog, f.page) for f in fences}
    assert len(pages) == len(fences)  # one chart per page that has one
    # Every catalog has charts but the one without services (its matrix says so instead).
    assert {f.catalog for f in fences} == set(CATALOGS) - {"no-services"}
    for fence, answer in fence_answers(parsed, fences):
        where = f"{fence.catalog}: {fence.page}"
        assert answer["ok"], f"{where}: {answer.get('error')}"
        assert answer["diagramType"] == "flowchart-v2", where
        assert answer["config"] == {} and answer["title"] == "", where
        assert not answer["subgraphs"], where
        # Past these, Mermaid draws an error box instead of the chart.
        assert len(fence.text) < answer["limits"]["maxTextSize"], where
        assert len(answer["edges"]) < answer["limits"]["maxEdges"], where
        assert not [v for v, info in answer["vertices"].items() if info["link"]], where
        # Ids are the generator's own, never catalog text.
        assert all(re.fullmatch(r"n[0-9]+", v) for v in answer["vertices"]), where


def test_broken_diagrams_are_parse_errors(parsed: dict[str, Any]) -> None:
    for name in BROKEN:
        answer = parsed[f"broken {name}"]
        assert not answer["ok"], name
        assert "Parse error" in answer["error"], (name, answer["error"])


# --- where the diagrams are, as markdown-it reads the pages ------------------------------------


def test_each_chart_is_a_closed_mermaid_fence_in_its_section(
    fences: list[Fence], catalogs: dict[str, Catalog], pages: dict[tuple[str, str], str]
) -> None:
    for name, catalog in catalogs.items():
        found = {f.page: f for f in fences if f.catalog == name}
        runbooks = {f"docs/runbooks/restore-{s.name}.md" for s in catalog.services if s.methods}
        matrix = {MATRIX} if catalog.services else set()
        assert set(found) == runbooks | matrix, name
        if not catalog.services:
            assert "The catalog has no service yet." in pages[(name, MATRIX)]
        for page, fence in found.items():
            assert fence.closed, (name, page)
            if page == MATRIX:
                assert fence.section == "Layers", name
                assert fence.text == catalog_flowchart(catalog)
            else:
                assert fence.section == fence.first_section == "Where its data goes", page
                service = catalog.service(_runbook_of(page))
                assert fence.text == service_flowchart(catalog, service)


def test_an_unescaped_backtick_fence_would_close_the_block_early(
    catalogs: dict[str, Catalog],
) -> None:
    """The negative control of the fence check: raw catalog text with a line of backticks
    ends the block inside the chart."""
    hostile = _hostile(catalogs["reference"], HOSTILE)
    escaped = service_flowchart(hostile, hostile.service("postgresql"))
    for chart, closes in ((escaped, False), (raw_chart(hostile, "postgresql"), True)):
        page = f"## Where its data goes\n\n```mermaid\n{chart}```\n"
        first = mermaid_fences("hostile", "page.md", page)[0]
        assert (first.text != chart) is closes


def test_hostile_runbook_keeps_one_closed_fence(catalogs: dict[str, Catalog]) -> None:
    """Whatever the rest of the page makes of it (the runbook prints the backup folder and
    the namespace as they are), the chart stays one closed block."""
    hostile = _hostile(catalogs["reference"], HOSTILE_LINE)
    generators = [
        Generator("runbooks", generate_runbooks),
        Generator("protection-matrix", generate_protection_matrix),
    ]
    rendered = render_plan(build_plan(hostile, generators))
    for page in ("docs/runbooks/restore-postgresql.md", "docs/runbooks/restore-immich-postgres.md"):
        (fence,) = mermaid_fences("hostile", page, rendered[page].decode("utf-8"))
        assert fence.closed and fence.section == "Where its data goes"
        assert fence.text == service_flowchart(hostile, hostile.service(_runbook_of(page)))
    (fence,) = mermaid_fences("hostile", MATRIX, rendered[MATRIX].decode("utf-8"))
    assert fence.closed and fence.text == catalog_flowchart(hostile)


# --- what the charts show ------------------------------------------------------------------------


def assert_shows_its_layers(chart: Chart, catalog: Catalog, service: Service) -> None:
    """A vertex per layer of the service, each reached from the service's vertex, each with
    its title, its schedules and what it keeps; no other layer; every path ends in a store."""
    (head,) = [v for v, kind in chart.kinds.items() if kind == "service"]
    assert chart.labels[head][0] == f"{service.namespace}/{service.name}"
    assert f"{service.storage} storage" in chart.labels[head]
    layers = protection_layers(catalog, service)
    boxes = {v for v, kind in chart.kinds.items() if kind in ("layer", "offsite")}
    assert len(boxes) == len(layers), (service.name, len(boxes), len(layers))
    reached = chart.reachable(head)
    for layer in layers:
        (vertex,) = [v for v in boxes if chart.labels[v][0] == layer.title]
        lines = chart.labels[vertex]
        assert f"keeps {layer.retention}" in lines, (layer.title, lines)
        assert all(run in lines for run in layer.when.split("; ")), (layer.title, lines)
        assert chart.kinds[vertex] == ("offsite" if layer.offsite else "layer")
        assert vertex in reached, (service.name, layer.title)
    ends = {v for v in chart.labels if not any(s == v for s, _ in chart.edges)}
    assert {chart.kinds[v] for v in ends} <= {"store", "remote"}, service.name
    assert reached == set(chart.labels) - {head}


def test_runbook_charts_show_every_layer_and_nothing_else(
    parsed: dict[str, Any], fences: list[Fence], catalogs: dict[str, Catalog]
) -> None:
    checked = 0
    for fence, answer in fence_answers(parsed, fences):
        if fence.page == MATRIX:
            continue
        catalog = catalogs[fence.catalog]
        service = catalog.service(_runbook_of(fence.page))
        assert has_runbook(service)
        assert_shows_its_layers(Chart.of(answer), catalog, service)
        checked += 1
    assert checked > 15


def test_a_chart_missing_an_arrow_or_a_layer_fails_the_layer_check(
    parsed: dict[str, Any], catalogs: dict[str, Catalog]
) -> None:
    reference = catalogs["reference"]
    postgresql = reference.service("postgresql")
    assert_shows_its_layers(Chart.of(parsed["postgresql"]), reference, postgresql)
    with pytest.raises(AssertionError):
        assert_shows_its_layers(Chart.of(parsed["missing arrow"]), reference, postgresql)
    chart = Chart.of(parsed["postgresql"])
    dropped = next(v for v, kind in chart.kinds.items() if kind == "layer")
    del chart.labels[dropped], chart.kinds[dropped]
    chart.edges = {(s, e) for s, e in chart.edges if dropped not in (s, e)}
    with pytest.raises(AssertionError):
        assert_shows_its_layers(chart, reference, postgresql)


def test_the_reference_charts_follow_the_data_to_the_catalogs_stores(
    parsed: dict[str, Any], fences: list[Fence]
) -> None:
    """Read against services.yaml itself: the NFS server and folders, the offsite target,
    Garage's and R2's endpoints and buckets, the ZFS pools and the exclusions."""
    raw = yaml.safe_load((REPO / "services.yaml").read_text(encoding="utf-8"))
    settings = raw["settings"]
    nfs, target = settings["nfs"]["server"], settings["offsite"]["target"]
    garage, r2 = settings["object_stores"]["garage"], settings["object_stores"]["r2"]
    pools = ", ".join(dict.fromkeys(task["pool"] for task in settings["snapshots"]["zfs"]))
    services = {s["name"]: s for s in raw["services"]}
    charts = {
        f.page: Chart.of(answer)
        for f, answer in fence_answers(parsed, fences)
        if f.catalog == "reference"
    }

    def runbook(name: str) -> Chart:
        return charts[f"docs/runbooks/restore-{name}.md"]

    postgresql = runbook("postgresql")
    folder = f"{nfs}:{services['postgresql']['backup_path']}"
    assert postgresql.has_path("dbaas/postgresql", "pg_dumpall + pg_dump", folder)
    assert postgresql.has_path(folder, "NAS sync of the dumps", target)
    assert postgresql.has_path("dbaas/postgresql", "ZFS snapshots", f"ZFS pools {pools}")
    for layer in ("CNPG WAL archive", "CNPG base backup"):
        assert postgresql.has_path("dbaas/postgresql", layer, garage["endpoint"])
    assert postgresql.matching(f"Garage bucket {garage['bucket']}")
    # The WAL archive is on site: no path from it leaves the site.
    immich = runbook("immich-postgres")
    assert immich.has_path("immich/immich-postgres", "CNPG WAL archive", garage["endpoint"])
    assert not immich.matching(target) and not {"remote", "offsite"} & set(immich.kinds.values())
    reason = services["immich-postgres"]["offsite"]["excluded"]
    assert immich.matching(f"not copied offsite: {reason}")
    for name, engine in (("dragonfly", "VolSync"), ("home-assistant", "VolSync")):
        chart = runbook(name)
        assert chart.has_path(name, f"{engine} Kopia (NFS)", "Kopia repository")
        assert chart.has_path(name, f"{engine} restic (R2)", r2["endpoint"])
        assert chart.matching(f"R2 bucket {r2['bucket']}")
    for name in ("radarr", "sonarr"):
        chart = runbook(name)
        assert chart.has_path(f"media/{name}", "kopiur Kopia (NFS", "Kopia repository")
        assert chart.has_path(f"media/{name}", "kopiur Kopia (R2", r2["endpoint"])
    assert runbook("vaultwarden").has_path("vaultwarden", "sqlite3 .backup", "vaultwarden-backup")
    assert runbook("vaultwarden").matching("integrity check")
    # The matrix's chart: every service once, the NFS datasets synced offsite as they are,
    # the LVM volumes to the PVE host's thin pool, loki on no layer at all.
    overview = charts[MATRIX]
    heads = [v for v, kind in overview.kinds.items() if kind == "service"]
    for service in raw["services"]:
        shown_in = [
            v for v in heads if f"{service['namespace']}/{service['name']}" in overview.labels[v]
        ]
        assert len(shown_in) == 1, service["name"]
    assert overview.has_path("forgejo/forgejo", "NAS sync of the dataset", target)
    assert overview.has_path("calibre/calibre", "LVM thin snapshots", "LVM thin pool pve/data")
    assert not overview.has_path("frigate/frigate", "NAS sync")
    (loki,) = overview.matching("monitoring/loki")
    assert "no protection layer" in overview.labels[loki] and not overview.reachable(loki)


def test_the_matrix_chart_holds_every_runbook_arrow(
    parsed: dict[str, Any], fences: list[Fence]
) -> None:
    """The overview is the union of the runbooks' charts: each arrow of a runbook is there
    (from the box of services the runbook's service shares, for the service's own)."""
    by_catalog: dict[str, dict[str, Chart]] = {}
    for fence, answer in fence_answers(parsed, fences):
        by_catalog.setdefault(fence.catalog, {})[fence.page] = Chart.of(answer)
    compared = 0
    for name, charts in by_catalog.items():
        overview = charts.pop(MATRIX, None)
        if overview is None:
            continue
        arrows = overview.arrows()
        for page, chart in charts.items():
            for start, end in chart.edges:
                head, tail = chart.labels[start], tuple(chart.labels[end])
                if chart.kinds[start] == "service":
                    boxes = {
                        v
                        for v in overview.matching(head[0])
                        if overview.kinds[v] == "service" and head[0] in overview.labels[v]
                    }
                    assert len(boxes) == 1, (name, page)
                    assert any(
                        s in boxes and tuple(overview.labels[e]) == tail for s, e in overview.edges
                    ), (name, page, tail)
                else:
                    assert (tuple(head), tail) in arrows, (name, page, head, tail)
                compared += 1
    assert compared > 100


# --- hostile catalog text ------------------------------------------------------------------------


def assert_same_chart(hostile: dict[str, Any], benign: dict[str, Any], text: str) -> int:
    """``hostile`` parses to ``benign``'s vertices, shapes, classes and edges, and each label
    shows ``text`` where the benign one shows BENIGN; returns how many labels show it."""
    assert hostile["ok"], hostile.get("error")
    assert hostile["config"] == {} and hostile["title"] == ""
    bad, good = Chart.of(hostile), Chart.of(benign)
    assert bad.kinds == good.kinds and bad.shapes == good.shapes
    assert bad.edges == good.edges
    expected = {
        v: [ln.replace(BENIGN, shown(text)) for ln in lines] for v, lines in good.labels.items()
    }
    assert bad.labels == expected
    return sum(shown(text) in ln for lines in bad.labels.values() for ln in lines)


def test_hostile_text_stays_inside_its_labels(parsed: dict[str, Any]) -> None:
    shows = 0
    for name in ("postgresql", "immich-postgres", "catalog"):
        shows += assert_same_chart(parsed[f"hostile {name}"], parsed[f"benign {name}"], HOSTILE)
    # The namespace, the backup folder and the offsite target (twice: the sync's title and
    # the target) in postgresql's chart, the reason in immich-postgres's, and all but the
    # reason in the overview.
    assert shows >= 8, shows


def test_raw_hostile_text_would_escape_its_labels(parsed: dict[str, Any]) -> None:
    """The negative control: the same charts with the catalog text written as it is."""
    raw, benign = parsed["raw hostile"], parsed["benign postgresql"]
    with pytest.raises(AssertionError):
        assert_same_chart(raw, benign, HOSTILE)
    # A quote and a bracket end the label: the text that follows is a node and an arrow.
    injection = parsed["raw injection"]
    assert injection["ok"], injection.get("error")
    assert {"n98", "n99"} <= set(injection["vertices"])
    assert {("n1", "n99"), ("n99", "n98")} <= {(e["start"], e["end"]) for e in injection["edges"]}
    escaped = parsed["escaped injection"]
    assert escaped["ok"] and not {"n98", "n99"} & set(escaped["vertices"])
    assert decode(escaped["vertices"]["n1"]["text"])[0] == f"{INJECTION}/postgresql"
    # A directive sets Mermaid's configuration (here, its theme).
    assert parsed["raw directive"]["config"] == {"theme": "dark"}


def test_hostile_text_through_the_catalog_loader(
    mermaid_parse: Callable[[list[str]], list[dict[str, Any]]],
) -> None:
    """What the loader lets through (one line, no control or bidi character) reaches the
    runbook's chart as the exclusion's reason, and shows as itself."""
    hostile = load_catalog_text(_small_with_reason(HOSTILE_LINE), "services.yaml")
    benign = load_catalog_text(_small_with_reason(BENIGN), "services.yaml")
    assert hostile.service("notes").offsite.reason == HOSTILE_LINE
    texts = [service_flowchart(c, c.service("notes")) for c in (hostile, benign)]
    answers = mermaid_parse(texts)
    assert assert_same_chart(answers[0], answers[1], HOSTILE_LINE) == 1
    page = render_plan(build_plan(hostile))["docs/runbooks/restore-notes.md"].decode("utf-8")
    (fence,) = mermaid_fences("loader", "restore-notes.md", page)
    assert fence.closed and fence.text == texts[0]


def test_labels_read_back_as_their_text_through_mermaid(parsed: dict[str, Any]) -> None:
    """mermaid_label, then Mermaid's parse and its entity codes, give back each line (white
    space collapsed, unprintable characters as U+FFFD) for every printable ASCII character,
    every kind of white space, other scripts and format characters."""
    plain = re.compile(r"(?:[A-Za-z0-9 .,:/\-_()+=@*'!?]|#[A-Za-z0-9]+;)*")
    for index, lines in enumerate(ROUND_TRIP):
        label = mermaid_label(lines)
        assert all(plain.fullmatch(part) for part in label.split("<br>")), label
        answer = parsed[f"round trip {index}"]
        assert answer["ok"], (lines, answer.get("error"))
        assert decode(answer["vertices"]["n1"]["text"]) == [shown(t) for t in lines], lines
        assert list(answer["vertices"]) == ["n1"] and not answer["edges"]
        assert answer["config"] == {}


def test_a_label_with_style_and_a_colour_keeps_its_entity_codes() -> None:
    """Mermaid strips the last ";" of a line where style...:...#...; matches: such a label
    has no raw colon (the round trip above proves the codes survive)."""
    lines = [ln for ln in catalog_flowchart_with("lifestyle:a<b") if "lifestyle" in ln]
    assert lines and all(":" not in ln.split('"', 1)[1] for ln in lines)


def catalog_flowchart_with(reason: str) -> list[str]:
    catalog = load_catalog_text(_small_with_reason(reason), "services.yaml")
    return service_flowchart(catalog, catalog.service("notes")).splitlines()


# --- the charts as Chromium draws them -----------------------------------------------------------

#: Raw, Font Awesome's car icon and a KaTeX formula; a label must show them as text.
ICON, FORMULA = "fa:fa-car", "$$x^2$$"
#: What a label may hold: its paragraph and line breaks, nothing drawn from the text.
LABEL_TAGS = {"p", "br"}


@pytest.fixture(scope="module")
def drawn(
    mermaid_render: Callable[[list[str]], list[dict[str, Any]]],
    parsed: dict[str, Any],
    catalogs: dict[str, Catalog],
) -> dict[str, Any]:
    """Every chart that parsed (the generated ones, the hostile and benign ones), the round
    trip's labels in one chart, and the markup control, drawn in one browser."""
    inputs = {
        name: answer["source"]
        for name, answer in parsed.items()
        if answer["ok"] and not name.startswith(("round trip", "broken", "raw", "missing"))
    }
    inputs["round trips"] = "flowchart LR\n" + "".join(
        f'    n{i + 1}["{mermaid_label(lines)}"]\n' for i, lines in enumerate(ROUND_TRIP)
    )
    for name, text in (("icon", ICON), ("formula", FORMULA)):
        raw = _namespaced(catalogs["reference"], text)
        inputs[f"raw {name}"] = raw_chart(raw, "postgresql")
        # Entity codes alone: a label of two lines gets the characters back (DOMPurify).
        codes = mermaid_text(text).replace("#8288;", "")
        inputs[f"codes {name}"] = f'flowchart LR\n    n1["{codes}<br>second line"]\n'
    marked = _namespaced(catalogs["reference"], f"{ICON} {FORMULA}")
    inputs["escaped markup"] = service_flowchart(marked, marked.service("postgresql"))
    return dict(zip(inputs, mermaid_render(list(inputs.values())), strict=True))


def test_labels_render_as_decode_reads_them(drawn: dict[str, Any], parsed: dict[str, Any]) -> None:
    """Chromium shows each label of every generated, hostile and benign chart as decode()
    reads Mermaid's parse, line for line, with nothing but text in it."""
    compared = 0
    for name, answer in drawn.items():
        if name not in parsed:
            continue
        assert answer["ok"], (name, answer.get("error"))
        vertices = parsed[name]["vertices"]
        assert set(answer["nodes"]) == set(vertices), name
        for vertex, node in answer["nodes"].items():
            assert node["lines"] == decode(vertices[vertex]["text"]), (name, vertex)
            assert set(node["tags"]) <= LABEL_TAGS, (name, vertex, node["tags"])
            compared += 1
    assert compared > 300


def test_round_trip_labels_render_as_their_text(drawn: dict[str, Any]) -> None:
    answer = drawn["round trips"]
    assert answer["ok"], answer.get("error")
    for index, lines in enumerate(ROUND_TRIP):
        node = answer["nodes"][f"n{index + 1}"]
        assert node["lines"] == [shown(text) for text in lines], lines
        assert set(node["tags"]) <= LABEL_TAGS, lines


def test_icon_and_formula_syntax_render_as_text_only_when_escaped(drawn: dict[str, Any]) -> None:
    """The negative control of the drawn labels: raw, or as entity codes alone in a label of
    two lines, Mermaid draws Font Awesome's icon (an <i>) and KaTeX's formula (MathML);
    escaped as the generator does, the label shows the characters."""
    for name, tag in (("icon", "i"), ("formula", "math")):
        for how in ("raw", "codes"):
            node = drawn[f"{how} {name}"]["nodes"]["n1"]
            assert tag in node["tags"], (how, name, node)
    escaped = drawn["escaped markup"]["nodes"]["n1"]
    assert set(escaped["tags"]) <= LABEL_TAGS
    assert escaped["lines"][0].replace("\u2060", "") == f"{ICON} {FORMULA}/postgresql"
