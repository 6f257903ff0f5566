"""Catalog values in every context they reach: each is refused at load or arrives as itself.

Read by the programs that read the outputs, not by the generator's own code:

* YAML as Kubernetes reads it: gopkg.in/yaml.v2 (what sigs.k8s.io/yaml wraps for kubectl, the
  API server and Flux), built from Debian's golang-gopkg-yaml.v2-dev (tests/runtimes/
  goyaml_oracle.go). Every scalar the generator means as a string must be a string there.
* Markdown as GitHub renders it: markdown-it-py (CommonMark, with GFM tables). Hostile text
  must come out as that text: no raw HTML, no code fence, no link, no extra table row.
* PromQL as Prometheus parses it: promtool checks the rules and runs their generated tests.
* Cron text: exactly five fields separated by single spaces, or a positioned catalog error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, require_tool, run_module, snapshot_of
from ruamel.yaml import YAML

from homeops_gen import build_plan, load_catalog, render_plan
from homeops_gen.errors import CatalogError

GOPATH = Path("/usr/share/gocode")
YAML_V2 = GOPATH / "src/gopkg.in/yaml.v2/yaml.go"
ORACLE = Path(__file__).parent / "runtimes" / "goyaml_oracle.go"

#: Text that is markup in markdown, a comment in HTML, a fence, a table separator.
HOSTILE_TEXT = (
    "<!-- hidden --> ```sh rm -rf / ``` [click](https://evil.example) | cell | "
    "*bold* _em_ ~~gone~~ $x$ &amp; <b>html</b> \\ end"
)
#: Strings YAML 1.1 (Kubernetes) reads as something else than a string.
YAML11_VALUES = ["y", "n", "yes", "on", "off", "true", "0x1f", "1e3", "017", "1_000", "null"]


def reference() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "services.yaml").read_text(encoding="utf-8"))
    return data


def write_catalog(data: dict[str, Any], folder: Path) -> Path:
    path = folder / "services.yaml"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def hostile_catalog(text: str = "") -> dict[str, Any]:
    """The reference catalog with YAML 1.1 words in every label map, hostile markdown in its
    free text (or ``text``), and a selector with regex and negative matchers."""
    text = text or HOSTILE_TEXT
    data = reference()
    settings = data["settings"]
    settings["alerts"]["rule_labels"] = {"release": "yes", "on": "off", "n": "1e3"}
    settings["backup_disk"]["selector"] = (
        'mountpoint=~"/mnt/(main|tank)",fstype!="tmpfs",device!~"/dev/loop[0-9]+"'
    )
    for index, service in enumerate(data["services"]):
        if service.get("storage") == "iscsi" and "volsync" not in service:
            labels = {f"k{i}": value for i, value in enumerate(YAML11_VALUES)}
            service.setdefault("job", {})["node_selector"] = labels
            service["job"]["app_labels"] = {"app.kubernetes.io/name": "on", "tier": "0x1f"}
        service["description"] = f"{text} #{index}"
        if isinstance(service.get("offsite"), dict) and "excluded" in service["offsite"]:
            service["offsite"]["excluded"] = f"{text} (excluded)"
    return data


def render_into(data: dict[str, Any], folder: Path) -> Any:
    folder.mkdir(parents=True)
    catalog = load_catalog(write_catalog(data, folder))
    for path, content in render_plan(build_plan(catalog)).items():
        target = folder / "out" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return catalog


@pytest.fixture(scope="module")
def hostile_out() -> Iterator[tuple[Path, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    catalog = render_into(hostile_catalog(), folder / "hostile")
    render_into(hostile_catalog("benign words only"), folder / "benign")
    yield folder / "hostile" / "out", catalog
    shutil.rmtree(folder)


# --- YAML as Kubernetes reads it -----------------------------------------------------------


@pytest.fixture(scope="module")
def goyaml() -> Path:
    go = shutil.which("go")
    if not (go and YAML_V2.exists()):
        why = "go (golang-go) and gopkg.in/yaml.v2 (golang-gopkg-yaml.v2-dev) are needed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} under CI=true (.ci/run installs them)")
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="goyaml-oracle-"))
    shutil.copy(ORACLE, folder / "main.go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": ""}
    env["GOCACHE"] = str(folder / "cache")
    subprocess.run([go, "build", "-o", "oracle", "main.go"], cwd=folder, env=env, check=True)
    return folder / "oracle"


def goyaml_kinds(oracle: Path, files: list[Path]) -> dict[tuple[str, int], dict[str, str]]:
    """{(file, document): {path: kind}} as yaml.v2 types every scalar."""
    shown = subprocess.run(
        [str(oracle)],
        input="".join(f"{f}\n" for f in files),
        capture_output=True,
        text=True,
        check=True,
    )
    kinds: dict[tuple[str, int], dict[str, str]] = {}
    for line in shown.stdout.splitlines():
        answer = json.loads(line)
        assert "error" not in answer, answer
        kinds[(answer["file"], answer["doc"])] = {p: k for p, k in answer["scalars"]}
    return kinds


def intended_kinds(file: Path) -> dict[tuple[str, int], dict[str, str]]:
    """The same, as YAML 1.2 (ruamel, the generator's own reading) types them."""
    kinds: dict[tuple[str, int], dict[str, str]] = {}

    def walk(path: str, node: Any, out: dict[str, str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    out[path] = "key:" + type(key).__name__
                walk(f"{path}/{key}", value, out)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(f"{path}/{index}", item, out)
        else:
            out[path] = {bool: "bool", int: "int", float: "float", type(None): "nil"}.get(
                type(node), "string"
            )

    loader = YAML(typ="safe", pure=True)
    for index, document in enumerate(loader.load_all(file.read_text(encoding="utf-8"))):
        out: dict[str, str] = {}
        walk("", document, out)
        kinds[(str(file), index)] = out
    return kinds


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def assert_kubernetes_reads_what_was_meant(oracle: Path, root: Path) -> int:
    files = yaml_files(root)
    seen = goyaml_kinds(oracle, files)
    compared = 0
    for file in files:
        for where, meant in intended_kinds(file).items():
            read = seen[where]
            wrong = {p: (k, read.get(p)) for p, k in meant.items() if read.get(p) != k}
            assert not wrong, f"{file.relative_to(root)} document {where[1]}: {wrong}"
            compared += len(meant)
    return compared


def test_kubernetes_reads_every_scalar_of_out_as_meant(goyaml: Path) -> None:
    assert assert_kubernetes_reads_what_was_meant(goyaml, REPO / "out") > 1000


def test_yaml11_words_reach_kubernetes_as_strings(
    goyaml: Path, hostile_out: tuple[Path, Any]
) -> None:
    root, _ = hostile_out
    assert_kubernetes_reads_what_was_meant(goyaml, root)
    rules = (root / "kubernetes/monitoring/prometheusrules").glob("*.yaml")
    labels = [yaml.safe_load(p.read_text())["metadata"]["labels"] for p in rules]
    assert labels and all(
        {"release": "yes", "on": "off", "n": "1e3"}.items() <= label.items() for label in labels
    )


def test_the_oracle_sees_what_plain_yaml11_words_become(goyaml: Path, tmp_path: Path) -> None:
    """The check is not vacuous: written plain, each word is no string to Kubernetes."""
    plain = tmp_path / "plain.yaml"
    plain.write_text("".join(f"k{i}: {v}\n" for i, v in enumerate(YAML11_VALUES)))
    kinds = goyaml_kinds(goyaml, [plain])[(str(plain), 0)]
    assert all(kind != "string" for kind in kinds.values()), kinds


@pytest.mark.parametrize("value", ["y", "on", "no", "true", "0x1f", "1e3", "017", "null"])
@pytest.mark.parametrize("field", ["name", "namespace"])
def test_names_yaml11_reads_as_another_type_are_refused(
    field: str, value: str, tmp_path: Path
) -> None:
    """Names reach the VolSync component through Flux's substitution (``name: ${APP}``),
    which no emitter can quote: they are refused, at their position."""
    data = reference()
    index = next(i for i, s in enumerate(data["services"]) if "volsync" in s)
    data["services"][index][field] = value
    path = write_catalog(data, tmp_path)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    (problem,) = [p for p in caught.value.problems if p.loc == ("services", index, field)]
    assert problem.line > 0 and "YAML 1.1" in problem.message


# --- markdown as GitHub renders it -----------------------------------------------------------


def markdown_tokens(text: str) -> list[Any]:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    tokens: list[Any] = []

    def flatten(items: list[Any]) -> None:
        for token in items:
            tokens.append(token)
            flatten(token.children or [])

    flatten(parser.parse(text))
    return tokens


def test_hostile_text_renders_as_itself(hostile_out: tuple[Path, Any]) -> None:
    root, _ = hostile_out
    pages = sorted(root.rglob("*.md"))
    shown = 0
    for page in pages:
        tokens = markdown_tokens(page.read_text(encoding="utf-8"))
        hrefs = [t.attrs.get("href", "") for t in tokens if t.type == "link_open"]
        assert not [h for h in hrefs if "evil" in str(h)], page.name
        # The same structure, token for token, and the same raw HTML (the generator's own
        # header comment, <details>, <br>) as with harmless words in the same places.
        benign = root.parent.parent / "benign" / "out" / page.relative_to(root)
        expected = markdown_tokens(benign.read_text(encoding="utf-8"))
        assert [t.type for t in tokens] == [t.type for t in expected], page.name
        html = [t.content for t in tokens if t.type in ("html_inline", "html_block")]
        assert html == [t.content for t in expected if t.type in ("html_inline", "html_block")]
        text = "".join(t.content for t in tokens if t.type == "text")
        shown += text.count(HOSTILE_TEXT)
    # Every service's runbook shows its description; the matrix and index the exclusions.
    runbooks = [p for p in pages if p.parent.name == "runbooks"]
    assert shown >= len(runbooks) > 5


def test_tables_keep_one_row_per_service(hostile_out: tuple[Path, Any]) -> None:
    root, catalog = hostile_out
    for page in (root / "docs/protection-matrix.md", root / "README.md"):
        tokens = markdown_tokens(page.read_text(encoding="utf-8"))
        cells: list[int] = []  # per table row (over the page's tables), its cell count
        for token in tokens:
            if token.type == "tr_open":
                cells.append(0)
            elif token.type in ("td_open", "th_open"):
                cells[-1] += 1
        # Both pages start with the per-service table: its header and a row per service,
        # every one with as many cells as the header.
        assert len(cells) >= len(catalog.services) + 1, page.name
        assert len(set(cells[: len(catalog.services) + 1])) == 1, (page.name, cells)


# --- PromQL as Prometheus parses it -----------------------------------------------------------


def test_regex_and_negative_matchers_pass_promtool(hostile_out: tuple[Path, Any]) -> None:
    root, _ = hostile_out
    promtool = require_tool("promtool")
    rules = root / "prometheus" / "rules"
    checked = subprocess.run(
        [promtool, "check", "rules", *sorted(p.name for p in rules.glob("*.yaml"))],
        cwd=rules,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = root / "prometheus" / "tests"
    (storage,) = [p for p in tests.glob("*.yaml") if "BackupDiskNearlyFull" in p.read_text()]
    ran = subprocess.run(
        [promtool, "test", "rules", storage.name],
        cwd=tests,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ('instance=~"("', "not a valid regex"),
        ('mountpoint="/mnt/main",', "expected a label matcher"),
        ('mountpoint="/mnt/main" fstype="xfs"', "expected ','"),
        ('a=~"x(?=y)"', "not RE2 syntax"),
        ('a=~".*"', "must not match the empty value"),
        ('a="\\\\x"', "expected a label matcher"),
        ('a="x"}or vector(1){', "expected ','"),
    ],
)
def test_bad_selectors_are_refused_at_their_position(
    selector: str, message: str, tmp_path: Path
) -> None:
    data = reference()
    data["settings"]["backup_disk"]["selector"] = selector
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(data, tmp_path))
    (problem,) = caught.value.problems
    assert problem.loc == ("settings", "backup_disk", "selector") and problem.line > 0
    assert message in problem.message


# --- cron text ---------------------------------------------------------------------------------


CADENCE_FIELDS = [
    ("settings", "snapshots", "lvm", "cadence"),
    ("settings", "snapshots", "zfs", 0, "cadence"),
    ("services", 0, "cadence"),
]


@pytest.mark.parametrize("bad", ["0 0,12 * * *\n*", "0\t0 * * *", "0 0 * * *\r", "0 0 * *\u2028*"])
@pytest.mark.parametrize("where", CADENCE_FIELDS, ids=lambda w: ".".join(map(str, w)))
def test_a_cadence_with_other_white_space_is_refused_and_out_untouched(
    where: tuple[Any, ...], bad: str, tmp_path: Path
) -> None:
    data = reference()
    node = data
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = bad
    catalog = write_catalog(data, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = snapshot_of(out)
    result = run_module("--catalog", str(catalog), "--out", str(out), cwd=tmp_path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    # U+2028 is refused by the reader already (not allowed anywhere in a catalog).
    assert "single spaces" in result.err or "U+2028" in result.err
    (line,) = [
        line
        for line in result.err.splitlines()
        if ": " + ".".join(f"[{s}]" if isinstance(s, int) else s for s in where).replace(".[", "[")
        in line
    ]
    assert line.startswith(f"{catalog}:") or line.startswith("services.yaml:"), line
    assert snapshot_of(out) == before


def test_runs_of_spaces_in_a_cadence_are_one_separator(tmp_path: Path) -> None:
    data = reference()
    data["settings"]["snapshots"]["lvm"]["cadence"] = "  0   0,12 *  * * "
    catalog = load_catalog(write_catalog(data, tmp_path))
    env = render_plan(build_plan(catalog))["snapshots/lvm-pvc-snapshot.env"].decode()
    assert "# Schedule: 0 0,12 * * * (the timer" in env


def test_label_values_in_expressions_are_promql_strings(tmp_path: Path) -> None:
    """promtool parses a selector whose values hold quotes, backslashes and line breaks."""
    from homeops_gen.generators.alerts import _selector

    value = 'a"b\\c\nd'
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [{"record": "r", "expr": f"up{_selector({'x': value})}"}],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    checked = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
