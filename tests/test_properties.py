"""Property: for any catalog homeops_gen accepts, every output parses with its format's reader.

Hypothesis puts arbitrary text (a hostile alphabet: YAML, shell, HCL, PromQL and markdown
syntax, quotes, unicode, controls, YAML 1.1 words) into the string fields of a small catalog
cut from the reference one. Each example must either be refused with a catalog error (and
nothing else: no other exception) or render outputs that all parse:

* ``.tf``: python-hcl2, and every quoted string decodes by HCL's own escape rules;
* ``.yaml``: PyYAML (YAML 1.1) reads every scalar with the type ruamel (YAML 1.2) reads, and
  none of Kubernetes' extra 1.1 words (``y``, ``n``) stands plain;
* ``.sh``: ``bash -n``; ``.env`` also: only comments and assignments of unexpanded values;
* ``.md``: markdown-it-py, with no raw HTML but the generator's own and the per-service
  tables keeping one row per service;
* the rule files: ``promtool check rules`` (once per example, all files at once).

A value the catalog accepts into free text must reach the markdown as that text.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool
from hcl import load_tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from homeops_gen import build_plan, load_catalog_text, render_plan
from homeops_gen.errors import CatalogError

KEEP = {"postgresql", "vaultwarden", "redis", "sonarr", "calibre", "immich-postgres", "frigate"}
#: Pieces of every syntax the outputs hold, mixed with ordinary text.
ATOMS = [
    *"abcxyz019-_./:@+ ",
    *"'\"`$\\{}[]()<>|&;*?!#%=~^,",
    "\n",
    "\t",
    "\r",
    "\x00",
    "\x1b",
    "\u2028",
    "\u00a0",
    "é",
    "✓",
    "\U0001f600",
    "${x}",
    "$(id)",
    "`id`",
    "%{ if }",
    "<!--",
    "-->",
    "```",
    "[a](http://evil.example)",
    "y",
    "on",
    "no",
    "0x1f",
    "1e3",
    "017",
    "null",
    "~",
    "2020-01-01",
    "<<",
    "---",
    "...",
    "{{ x }}",
    '"); drop',
    "\\n",
    "EOT",
    "*/",
    "/*",
    ":\n ",
    "- ",
    "# ",
]
#: Values each field's own rules may well accept, edges included: the generated outputs
#: must hold them too.
PLAUSIBLE = [
    "a",
    "a-b",
    "x1",
    "nas.lan",
    "10.0.0.1",
    "daily",
    "weekly",
    "6h",
    " 0  3 * * 1-5 ",
    "/mnt/tank/a_b@c+d",
    "release-1.2",
    "Europe/London",
    "America/Argentina/Buenos_Aires",
    'mountpoint=~"/mnt/(a|b)[0-9]*",fstype!="tmpfs"',
    "db_1",
    "A.b-c_d",
]
TEXT = st.one_of(
    st.lists(st.sampled_from(ATOMS), min_size=0, max_size=12).map("".join),
    st.sampled_from(PLAUSIBLE),
    st.lists(st.sampled_from(PLAUSIBLE + ATOMS), min_size=1, max_size=3).map("".join),
)

#: (how to reach the field from the catalog, whether the field is free text shown as is).
FIELDS: list[tuple[tuple[Any, ...], bool]] = [
    (("services", "postgresql", "description"), True),
    (("services", "frigate", "offsite", "excluded"), True),
    (("services", "sonarr", "name"), False),
    (("services", "vaultwarden", "namespace"), False),
    (("services", "redis", "cadence"), False),
    (("services", "vaultwarden", "backup_path"), False),
    (("services", "redis", "redis", "claim"), False),
    (("services", "postgresql", "postgresql", "databases", 0), False),
    (("settings", "alerts", "rule_labels", "release"), False),
    (("settings", "snapshots", "lvm", "cadence"), False),
    (("settings", "backup_disk", "selector"), False),
    (("settings", "timezone"), False),
    (("settings", "nfs", "server"), False),
]


def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "services.yaml").read_text(encoding="utf-8"))
    data["services"] = [s for s in data["services"] if s["name"] in KEEP]
    return data


BASE = base()
#: Where each kept service stands (a field may rename it).
POSITION = {s["name"]: i for i, s in enumerate(BASE["services"])}


def put(data: dict[str, Any], where: tuple[Any, ...], value: str) -> None:
    node: Any = data
    steps = list(where)
    if steps[0] == "services":
        node = data["services"][POSITION[steps[1]]]
        steps = steps[2:]
    for step in steps[:-1]:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    node[steps[-1]] = value


def types_of(node: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            out[f"{path}/key:{key}"] = type(key).__name__
            types_of(value, f"{path}/{key}", out)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            types_of(item, f"{path}/{index}", out)
    else:
        out[path] = type(node).__name__


_PLAIN_YN = re.compile(r"^\s*(- )?([\w.\-/]+: )?[yYnN]\s*$", re.MULTILINE)


def check_yaml(path: str, text: str) -> None:
    meant: dict[str, str] = {}
    read: dict[str, str] = {}
    for index, doc in enumerate(YAML(typ="safe", pure=True).load_all(text)):
        types_of(doc, str(index), meant)
    for index, doc in enumerate(yaml.load_all(text, Loader=yaml.SafeLoader)):
        types_of(doc, str(index), read)
    assert read == meant, (
        path,
        {k: (v, read.get(k)) for k, v in meant.items() if read.get(k) != v},
    )
    assert not _PLAIN_YN.search(text), (path, _PLAIN_YN.search(text))


#: A line of an env file a shell may source: a comment, or one assignment of a value that
#: no shell expands (quoted without $, backticks or backslashes, or a plain word).
_ENV_LINE = re.compile(
    r"(#[^\n]*|[A-Z_][A-Z0-9_]*=(\"[^\"`$\\\n]*\"|'[^'\n]*'|[A-Za-z0-9_./:,@+-]*))?"
)


def check_env(path: str, text: str) -> None:
    for number, line in enumerate(text.split("\n"), 1):
        assert _ENV_LINE.fullmatch(line), f"{path}:{number}: {line!r}"


def check_markdown(path: str, text: str, services: int) -> None:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    tokens = []
    stack = parser.parse(text)
    while stack:
        token = stack.pop()
        tokens.append(token)
        stack.extend(token.children or [])
    allowed = re.compile(
        r"<!-- Code generated .* -->\n|<br>|<details><summary>.*</summary>\n|</details>\n"
    )
    html = [t.content for t in tokens if t.type in ("html_inline", "html_block")]
    assert all(allowed.fullmatch(h) for h in html), (path, html)
    if path in ("README.md", "docs/protection-matrix.md"):
        rows = [t for t in tokens if t.type == "tr_open"]
        assert len(rows) >= services + 1, path


def check_outputs(rendered: dict[str, bytes], services: int, shown: list[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="property-"))
    shells = []
    markdown = ""
    for path, data in rendered.items():
        text = data.decode("utf-8")
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if path.endswith(".tf"):
            load_tf(target)
        elif path.endswith(".yaml"):
            check_yaml(path, text)
        elif path.endswith(".sh"):
            shells.append(str(target))
        elif path.endswith(".env"):
            shells.append(str(target))
            check_env(path, text)
        elif path.endswith(".md"):
            check_markdown(path, text, services)
            markdown += text
    for script in shells:
        parsed = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
        assert parsed.returncode == 0, (script, parsed.stderr)
    rules = sorted((folder / "prometheus" / "rules").glob("*.yaml"))
    checked = subprocess.run(
        [require_tool("promtool"), "check", "rules", *map(str, rules)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout[-2000:]
    if shown:  # free text reaches the docs as itself, once markdown is rendered
        from markdown_it import MarkdownIt

        page = MarkdownIt("commonmark").enable("table").render(markdown)
        for text in shown:
            expected = html.escape(re.sub(" +", " ", text).strip(" "), quote=True)
            assert expected in page, text


@pytest.mark.tool("promtool")
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    choices=st.lists(st.tuples(st.sampled_from(range(len(FIELDS))), TEXT), min_size=1, max_size=3)
)
def test_every_accepted_catalog_renders_outputs_that_parse(choices: list[tuple[int, str]]) -> None:
    data = json.loads(json.dumps(BASE))
    shown: dict[int, str] = {}
    for index, value in choices:
        where, free_text = FIELDS[index]
        put(data, where, value)
        if free_text:
            shown[index] = value
    try:
        catalog = load_catalog_text(json.dumps(data), "services.yaml")
    except CatalogError as error:
        assert error.problems  # refused, with positions: the CLI exits 2
        event("refused")
        return
    event("accepted")
    rendered = render_plan(build_plan(catalog))
    check_outputs(rendered, len(catalog.services), [s for s in shown.values() if s.strip(" ")])
