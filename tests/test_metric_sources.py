"""One source of truth for metrics: every metric a generated alert reads has a producer.

The alerts' expressions are read with Prometheus's own grammar (``promql-parser``, a port
of its parser), independently of the generator's small reader, and each selector is joined
to a producer: a generated program in the rendered tree that really names the metric (the
backup stacks' scripts through the ``lib.sh`` they source), or a program of the stack the
resolved catalog names in ``settings.alerts.external_metrics``. Series that two programs
could push (the offsite sync's ``sync="full"``) must have exactly one producer.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, REPO

from homeops_gen import PlanError, build_plan, load_catalog, load_catalog_text, render_plan
from homeops_gen.catalog.model import Catalog
from homeops_gen.metrics import dangling, metrics_read, sources

promql_parser = pytest.importorskip("promql_parser")

OFFSITE = """\
  offsite:
    target: sftp://backup.lan/volume1/nas
    exclude: [{pattern: "*.log", reason: Logs}]
"""
TRUENAS = """\
  truenas:
    api: wss://nas.lan/api/current
    api_key: {name: truenas-api-key, key: key}
"""
LAYERS = """\
  snapshots:
    lvm: {cadence: "0 */6 * * *", retention: 3d}
    zfs: [{pool: tank, naming: "auto-%Y-%m-%d_%H-%M", cadence: daily, retention: 2w}]
  backup_disk: {selector: 'mountpoint="/mnt/tank"'}
"""
SERVICES = textwrap.indent(
    textwrap.dedent(
        """\
        - name: notes
          namespace: notes
          storage: iscsi
          churn: low
          engine: sqlite
          integrity: hourly
          sqlite: {claim: notes-data, database: /data/notes.db}
        - name: wiki
          namespace: wiki
          storage: proxmox-lvm
          churn: low
          engine: files
        """
    ),
    "  ",
)


def _catalog(extra: str) -> str:
    head = MINIMAL_HEAD.split("services:\n")[0]
    return head + extra + "services:\n" + SERVICES


CATALOGS = {
    "script": _catalog(OFFSITE + LAYERS),
    "cloudsync": _catalog(
        OFFSITE.replace(
            "  offsite:\n",
            "  offsite:\n    full_sync_by: cloudsync\n    cloudsync_credential: backup-nas\n",
        )
        + TRUENAS
        + LAYERS
    ),
}


def _rendered(name: str) -> tuple[Catalog, dict[str, bytes]]:
    if name == "reference":
        catalog = load_catalog(REPO / "services.yaml")
    else:
        catalog = load_catalog_text(CATALOGS[name], "services.yaml")
    return catalog, render_plan(build_plan(catalog))


# --- Prometheus's grammar -----------------------------------------------------------------


def _selectors(node: Any) -> Iterator[tuple[str, dict[str, str]]]:
    """Every vector selector of a parsed expression: its name and its ``=`` matchers."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        equal = {m.name: m.value for m in node.matchers.matchers if str(m.op) == "MatchOp.Equal"}
        yield node.name, equal
        return
    if kind == "MatrixSelector":
        yield from _selectors(node.vector_selector)
        return
    children = {
        "BinaryExpr": ("lhs", "rhs"),
        "AggregateExpr": ("expr", "param"),
        "Call": ("args",),
        "ParenExpr": ("expr",),
        "UnaryExpr": ("expr",),
        "SubqueryExpr": ("expr",),
        "NumberLiteral": (),
        "StringLiteral": (),
    }
    assert kind in children, f"unmodelled PromQL node {kind}"
    for attribute in children[kind]:
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if item is not None:
                yield from _selectors(item)


def _alert_reads(rendered: dict[str, bytes]) -> list[tuple[str, str, dict[str, str]]]:
    reads = []
    for path, body in sorted(rendered.items()):
        if not (path.startswith("prometheus/rules/") and path.endswith(".rules.yaml")):
            continue
        for group in yaml.safe_load(body)["groups"]:
            for rule in group["rules"]:
                for metric, labels in _selectors(promql_parser.parse(rule["expr"])):
                    reads.append((rule["alert"], metric, labels))
    return reads


def test_the_grammar_walk_sees_every_selector() -> None:
    """Negative control of the walk itself: nested calls, aggregations and ranges."""
    expr = 'max by (a) (rate(x_total{a="1"}[5m])) > on() group_left absent(y{b="2"}) - z'
    names = [metric for metric, _ in _selectors(promql_parser.parse(expr))]
    assert names == ["x_total", "y", "z"]


# --- the join -----------------------------------------------------------------------------


def _program_text(rendered: dict[str, bytes], path: str) -> str:
    """A generated program and what it sources: the backup stacks' shared lib.sh, or the
    lib.sh a manifest drill's folder carries beside its script."""
    text = rendered[path].decode()
    if path.startswith("terraform/stacks/"):
        text += rendered["terraform/modules/backup-shell/lib.sh"].decode()
    elif path.startswith("kubernetes/drills/"):
        text += rendered[path.rsplit("/", 1)[0] + "/lib.sh"].decode()
    return text


@pytest.mark.parametrize("name", ["reference", *CATALOGS])
def test_every_metric_an_alert_reads_has_one_producer(name: str) -> None:
    catalog, rendered = _rendered(name)
    external = {m for names in catalog.settings.external_metrics.values() for m in names}
    claimed = sources(catalog)
    reads = _alert_reads(rendered)
    assert reads, "no alert read anything"
    for alert, metric, labels in reads:
        if metric in external:
            continue
        producers = [
            s
            for s in claimed
            if s.generated
            and s.metric == metric
            and all(labels.get(k, v) == v for k, v in s.labels)
        ]
        assert producers, f"{alert} reads {metric}{labels}: no generated program pushes it"
        # One program pushes one series: the full sync's comes from the script or from the
        # NAS monitor, as the catalog says, never from both.
        assert len({p.producer for p in producers}) == 1, (alert, metric, labels, producers)
        for producer in producers:
            assert producer.producer in rendered, f"{producer.producer} is not generated"
            text = _program_text(rendered, producer.producer)
            assert re.search(rf"\b{metric}\b", text), f"{producer.producer} never names {metric}"


@pytest.mark.parametrize("name", ["reference", *CATALOGS])
def test_the_generators_reader_agrees_with_the_grammar(name: str) -> None:
    from homeops_gen.generators.alerts import rule_groups

    catalog, rendered = _rendered(name)
    ours = [
        (alert.name, read.metric, dict(read.labels))
        for group in rule_groups(catalog)
        for alert in group.alerts
        for read in metrics_read(alert.expr)
    ]
    assert sorted(ours, key=repr) == sorted(_alert_reads(rendered), key=repr)


def test_the_full_sync_series_has_exactly_the_producer_the_catalog_names() -> None:
    for name, producer in (
        ("script", "offsite/offsite-sync.sh"),
        ("cloudsync", "terraform/stacks/nas-monitor/nas_monitor.py"),
    ):
        catalog, _ = _rendered(name)
        full = {
            s.producer
            for s in sources(catalog)
            if s.metric == "offsite_sync_last_success_timestamp" and ("sync", "full") in s.labels
        }
        assert full == {producer}, name


def test_an_alert_on_a_metric_nothing_pushes_is_reported() -> None:
    catalog, _ = _rendered("script")
    problems = dangling(catalog, [("Made", 'time() - nothing_pushes_this{job="x"} > 60')])
    assert len(problems) == 1 and "nothing_pushes_this" in problems[0]
    # A label the producer does not push: the NAS monitor's full-sync series in script mode.
    assert dangling(catalog, [("Made", 'offsite_sync_running{sync="full"} == 1')])
    assert not dangling(catalog, [("Made", 'offsite_sync_last_run_success{sync="full"} == 0')])


def test_a_catalog_that_drops_an_exporter_the_alerts_need_is_refused() -> None:
    text = CATALOGS["script"].replace(
        "  alerts: {", "  alerts: {external_metrics: {node-exporter: [node_load1]}, "
    )
    catalog = load_catalog_text(text, "services.yaml")
    with pytest.raises(PlanError) as caught:
        build_plan(catalog)
    message = str(caught.value)
    assert "BackupDiskNearlyFull reads node_filesystem_avail_bytes" in message
    assert "settings.alerts.external_metrics" in message


def test_the_metric_doc_lists_every_read_metric() -> None:
    _, rendered = _rendered("reference")
    doc = rendered["docs/metrics.md"].decode()
    for alert, metric, _ in _alert_reads(rendered):
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{metric}` |"))
        assert alert in row
