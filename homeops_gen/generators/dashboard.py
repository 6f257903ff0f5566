"""The backup dashboard (``grafana/homeops-backups.json`` and a ConfigMap for Grafana's
dashboard sidecar), built with Grafana's typed builder (``grafana-foundation-sdk``).

Every panel is read off the alerts (:func:`homeops_gen.generators.alerts.rule_groups`), so it
shows what they watch at their numbers: a stale alert ``time() - <metric> > N`` with
``for: F`` becomes a stat of the age of the last success, amber from ``N`` (the alert is
pending) and red from ``N + F`` (it fires); a VolSync source's out-of-sync flag is red at 1;
a drill's measured duration is red above the declared RTO. One row per layer (application
backups, PVC copies, CloudNativePG, restore drills, offsite, snapshots), each panel named
after its service, and a summary stat of the services within RPO: those with a layer whose
last success is younger than its alert's threshold (or, for VolSync, in sync). Sizes and
their trend come from the backup jobs' pushed ``backup_last_size_bytes``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from homeops_gen.catalog.model import Catalog
from homeops_gen.generators.alerts import Alert, RuleGroup, rule_groups
from homeops_gen.generators.backup_jobs import BACKUP_METRICS_JOB, DRILL_METRICS_JOB
from homeops_gen.generators.drills import NOT_SUBSTITUTED
from homeops_gen.plan import OutputFile, Text, YamlDocuments
from homeops_gen.registry import register_generator

__all__ = [
    "CONFIG_MAP",
    "DASHBOARD",
    "DASHBOARD_UID",
    "Panel",
    "compact_dashboard_json",
    "dashboard_json",
    "dashboard_texts",
    "indented_json",
    "panels",
]

DASHBOARD = "grafana/homeops-backups.json"
CONFIG_MAP = "kubernetes/monitoring/grafana-dashboard.yaml"
DASHBOARD_UID = "homeops-backups"
#: The rows, in order, and the alert groups (by name prefix) whose panels they hold.
ROWS = (
    ("Application backups", ("backup-",)),
    ("PVC copies (VolSync, kopiur)", ("volsync-", "kopiur-")),
    ("CloudNativePG", ("cnpg-",)),
    ("Restore drills", ("drill-",)),
    ("Offsite", ("offsite",)),
    ("Snapshots", ("snapshots",)),
)
_STALE = re.compile(r"^(?P<age>time\(\) - .+) > (?P<seconds>\d+)$")
_OUT_OF_SYNC = re.compile(r"^(?P<flag>volsync_volume_out_of_sync\{[^}]*\}) == 1$")
_RTO = re.compile(r"^(?P<duration>restore_drill_duration_seconds\{[^}]*\}) > (?P<seconds>\d+)$")
#: A comparison of two series that is true while something fails (CNPG's WAL archiving).
_FAILING = re.compile(r"^(?P<left>[a-z_]+\{[^}]*\}) > (?P<right>[a-z_]+\{[^}]*\})$")
#: Alerts whose panel belongs to another row than their group's.
_MOVED = {"KopiurVerification": "Restore drills", "KopiurOffsite": "Offsite"}
_GREEN, _AMBER, _RED = "green", "#EAB839", "red"
_WIDTH, _HEIGHT = 6, 4


@dataclass(frozen=True)
class Panel:
    """One stat of the dashboard: what it shows, its PromQL, and its colour steps."""

    row: str
    title: str
    description: str
    expr: str
    unit: str
    #: ``(value, colour)`` steps above the base green, in order.
    steps: tuple[tuple[float, str], ...]
    #: The service it watches (empty for a storage layer's).
    service: str = ""
    #: A Prometheus expression of 1 when the service is within its threshold here, else 0
    #: (empty: the panel does not count towards "within RPO").
    fresh: str = ""


def _seconds(span: dt.timedelta) -> int:
    return int(span.total_seconds())


def _panel(group: RuleGroup, alert: Alert) -> Panel | None:
    """The panel of one alert, or None for an alert that shows nothing a panel would."""
    row = next(r for r, prefixes in ROWS if group.name.startswith(prefixes))
    row = next((r for prefix, r in _MOVED.items() if alert.name.startswith(prefix)), row)
    who = group.subject or alert.labels.get("layer", group.name)
    what = " ".join(f"{k}={v}" for k, v in alert.labels.items() if k not in ("severity",))
    if match := _STALE.match(alert.expr):
        pending = int(match["seconds"])
        firing = pending + _seconds(alert.for_)
        title = alert.summary.split(":", 1)[0].removeprefix("the ")
        if alert.name == "CNPGBaseBackupStale":
            title = f"{title} base backup"
        return Panel(
            row,
            title,
            f"Age of the last success ({what}): amber once {alert.name} is pending "
            f"({pending} s), red once it fires ({firing} s).",
            match["age"],
            "s",
            ((pending, _AMBER), (firing, _RED)),
            group.subject,
            f"(({match['age']}) < bool {firing})",
        )
    if match := _OUT_OF_SYNC.match(alert.expr):
        source = alert.labels.get("replication_source", who)
        return Panel(
            row if not source.endswith("-r2") else "Offsite",
            f"{source}: VolSync in sync",
            f"volsync_volume_out_of_sync of ReplicationSource {source}: 0 in sync, 1 missed "
            f"its schedule ({alert.name} fires after {alert.for_}).",
            match["flag"],
            "none",
            ((1, _RED),),
            group.subject,
            f"({match['flag']} == bool 0)",
        )
    if match := _FAILING.match(alert.expr):
        return Panel(
            row,
            f"{alert.summary.split(':', 1)[0]} WAL archiving",
            f"1 while the last failed WAL archive is newer than the last archived one "
            f"({alert.name} fires after {alert.for_}), else 0.",
            f"max({match['left']}) > bool max({match['right']})",
            "none",
            ((1, _RED),),
            group.subject,
        )
    if match := _RTO.match(alert.expr):
        rto = int(match["seconds"])
        return Panel(
            row,
            f"{who}: measured RTO",
            f"How long the last successful restore drill took; red above the declared RTO "
            f"({rto} s, {alert.name}).",
            match["duration"],
            "s",
            ((rto + 1, _RED),),
            group.subject,
        )
    return None


def _duration(group: RuleGroup) -> Panel:
    """A drill's measured duration, for a service that declares no RTO (no red)."""
    return Panel(
        "Restore drills",
        f"{group.subject}: measured RTO",
        "How long the last successful restore drill took (the service declares no RTO).",
        f'restore_drill_duration_seconds{{job="{DRILL_METRICS_JOB}",service="{group.subject}"}}',
        "s",
        (),
        group.subject,
    )


def panels(catalog: Catalog) -> list[Panel]:
    """Every panel, row by row, in the alerts' order."""
    found = []
    for group in rule_groups(catalog):
        own = [p for alert in group.alerts if (p := _panel(group, alert)) is not None]
        if group.name.startswith("drill-") and not any("RTO" in p.title for p in own):
            own.append(_duration(group))
        found += own
    order = [name for name, _ in ROWS]
    return sorted(found, key=lambda p: order.index(p.row))


def within_rpo(found: list[Panel]) -> tuple[str, int]:
    """The summary's expression (services with a fresh layer) and the number of services."""
    by_service: dict[str, list[str]] = {}
    for panel in found:
        if panel.fresh and panel.service:
            by_service.setdefault(panel.service, []).append(panel.fresh)
    terms = [
        f"clamp_max(sum({' or '.join(fresh)}) or vector(0), 1)"
        for _, fresh in sorted(by_service.items())
    ]
    return (" + ".join(terms) if terms else "vector(0)"), len(terms)


def _target(expr: str) -> Any:
    from grafana_foundation_sdk.builders import prometheus

    query = prometheus.Dataquery().expr(expr).ref_id("A").instant()
    return query


def _thresholds(steps: tuple[tuple[float, str], ...], base_colour: str = _GREEN) -> Any:
    from grafana_foundation_sdk.builders import dashboard
    from grafana_foundation_sdk.models.dashboard import Threshold, ThresholdsMode

    base = [Threshold(value=None, color=base_colour)]
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(base + [Threshold(value=v, color=c) for v, c in steps])
    )


def _datasource() -> Any:
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    return DataSourceRef(type_val="prometheus", uid="${datasource}")


def dashboard_json(catalog: Catalog) -> dict[str, Any]:
    """The dashboard, as the JSON Grafana imports."""
    encoded: dict[str, Any] = json.loads(compact_dashboard_json(catalog))
    return encoded


def compact_dashboard_json(catalog: Catalog) -> str:
    """:func:`dashboard_json` as compact JSON text, its keys sorted (what the ConfigMap
    holds)."""
    return dashboard_texts(catalog)[0]


def dashboard_texts(catalog: Catalog) -> tuple[str, str]:
    """The dashboard as compact JSON, its keys sorted (what the ConfigMap holds), and as
    ``json.dumps(indent=2, sort_keys=True)`` text and a line break (the file).

    Each panel is encoded as soon as it is built and its objects dropped, so a catalog of
    thousands of services never holds the builder objects of every panel at once: the
    panels' texts are put in place of the empty list of a dashboard encoded without them.
    JSON is written the same value by value, so the result is the text of the whole
    dashboard encoded at once.
    """
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    encoder = JSONEncoder(sort_keys=True, separators=(",", ":"))
    document: dict[str, Any] = json.loads(encoder.encode(_shell(catalog).build()))
    document["panels"] = []
    compact: list[str] = []
    indented: list[str] = []
    for panel in _built_panels(catalog):
        text = encoder.encode(panel)
        compact += (",", text)
        indented += (",", _PANEL_INDENT, _indented_at(json.loads(text), _PANEL_INDENT))
    compact[0:1], indented[0:1] = ["["], ["["]  # each list held one panel at least
    compact.append("]")
    indented.append("\n  ]")
    return (  # what json.dumps gives for a document with these panels
        _in_place(encoder.encode(document), '"panels":[]', compact),
        _in_place(indented_json(document), '"panels": []', indented, "\n"),
    )


#: A line break and the indent of a panel in the indented dashboard (``panels`` is a key
#: of the top-level object).
_PANEL_INDENT = "\n    "


def _in_place(text: str, empty: str, items: list[str], end: str = "") -> str:
    """``text`` with its one ``"panels"`` member ``empty`` given the list ``items`` joined
    (joined once, with the rest: the texts of thousands of panels are not copied twice).

    The dashboard encoded without panels holds ``empty`` once, as that member (a quote
    inside a string is escaped); anything else holding it is refused, not spliced."""
    if text.count(empty) != 1:
        raise AssertionError(f"the dashboard holds {text.count(empty)} members {empty!r}")
    before, after = text.split(empty)
    items[0:0] = (before, empty[:-2])
    items += (after, end)
    return "".join(items)


def _shell(catalog: Catalog) -> Any:
    """The dashboard's builder, without its panels."""
    from grafana_foundation_sdk.builders import dashboard

    from homeops_gen.render import HEADER

    return (
        dashboard.Dashboard("Backups (homeops_gen)")
        .uid(DASHBOARD_UID)
        .description(f"{HEADER} Every backup of the catalog against the thresholds its alerts use.")
        .tags(["backups", "homeops_gen"])
        .refresh("5m")
        .time("now-7d", "now")
        .timezone(catalog.settings.timezone)
        .editable()
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
    )


def _built_panels(catalog: Catalog) -> Iterator[Any]:
    """The dashboard's panels and rows, built, in order, each at its place on the grid.

    Each sets its own ``grid_pos``: built here rather than added to the dashboard's builder,
    none is placed by the builder's cursor (which moves a panel left at 0,0)."""
    from grafana_foundation_sdk.builders import dashboard, stat, timeseries
    from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueGraphMode

    found = panels(catalog)
    summary, total = within_rpo(found)
    datasource = _datasource()
    yield (
        stat.Panel()
        .title("Services within RPO")
        .description(
            f"Of the {total} services with a backup, those with a layer whose last success is "
            "younger than its alert's threshold (VolSync: in sync)."
        )
        .datasource(datasource)
        .with_target(_target(summary))
        .unit("none")
        .max(total)
        .min(0)
        # Red while any service is past its threshold, green when all are within.
        .thresholds(_thresholds(((total, _GREEN),), _RED))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(_last())
        .grid_pos(_grid(0, 0, 6))
        .build()
    )
    y = _HEIGHT
    for row, _ in ROWS:
        members = [p for p in found if p.row == row]
        if not members:
            continue
        yield dashboard.Row(row).grid_pos(_grid(0, y, 24, 1)).build()
        y += 1
        for index, panel in enumerate(members):
            x = (index * _WIDTH) % 24
            if index and x == 0:
                y += _HEIGHT
            yield (
                stat.Panel()
                .title(panel.title)
                .description(panel.description)
                .datasource(datasource)
                .with_target(_target(panel.expr))
                .unit(panel.unit)
                .thresholds(_thresholds(panel.steps))
                .color_mode(BigValueColorMode.BACKGROUND)
                .graph_mode(BigValueGraphMode.NONE)
                .reduce_options(_last())
                .no_value("no data")
                .grid_pos(_grid(x, y))
                .build()
            )
        y += _HEIGHT
        if row == "Application backups":
            yield (
                timeseries.Panel()
                .title("Backup size")
                .description("The size of each service's last backup, as its job pushed it.")
                .datasource(datasource)
                .with_target(_size_target())
                .unit("bytes")
                .grid_pos(_grid(0, y, 24, 8))
                .build()
            )
            y += 8


def _size_target() -> Any:
    from grafana_foundation_sdk.builders import prometheus

    return (
        prometheus.Dataquery()
        .expr(f'backup_last_size_bytes{{job="{BACKUP_METRICS_JOB}"}}')
        .ref_id("A")
        .legend_format("{{service}}")
    )


def _last() -> Any:
    from grafana_foundation_sdk.builders import common

    return common.ReduceDataOptions().calcs(["lastNotNull"])


def _grid(x: int, y: int, w: int = _WIDTH, h: int = _HEIGHT) -> Any:
    from grafana_foundation_sdk.models.dashboard import GridPos

    return GridPos(h=h, w=w, x=x, y=y)


class _NotPlainJson(Exception):
    """A value :func:`indented_json` leaves to :func:`json.dumps`."""


def indented_json(document: Any) -> str:
    """``json.dumps(document, indent=2, sort_keys=True)``, character for character.

    The standard library writes indented JSON in Python, one generator per container; this
    writes the plain JSON values :func:`json.loads` gives (string keys, finite floats) about
    three times as fast, and hands anything else to :func:`json.dumps` itself.
    """
    return _indented_at(document, "\n")


def _indented_at(document: Any, newline: str) -> str:
    """:func:`indented_json` of a value written after ``newline`` (a line break and the
    indent of the value's own line), as the value of a member or item of an outer one."""
    parts: list[str] = []
    try:
        _write_json(document, parts, newline)
    except _NotPlainJson:
        return newline.join(json.dumps(document, indent=2, sort_keys=True).split("\n"))
    return "".join(parts)


def _write_json(value: Any, parts: list[str], newline: str) -> None:
    """Append ``value`` to ``parts``; ``newline`` is a line break and the current indent."""
    kind = type(value)
    if kind is str:
        parts.append(_json_string(value))
    elif kind is dict:
        if not value:
            parts.append("{}")
            return
        inner = newline + "  "
        opening = "{" + inner
        for key in sorted(value):
            if type(key) is not str:
                raise _NotPlainJson
            parts.append(opening)
            parts.append(_json_string(key))
            parts.append(": ")
            _write_json(value[key], parts, inner)
            opening = "," + inner
        parts.append(newline + "}")
    elif kind is list:
        if not value:
            parts.append("[]")
            return
        inner = newline + "  "
        opening = "[" + inner
        for item in value:
            parts.append(opening)
            _write_json(item, parts, inner)
            opening = "," + inner
        parts.append(newline + "]")
    elif value is None or value is True or value is False:
        parts.append(_JSON_CONSTANTS[value])
    elif kind is int:
        parts.append(int.__repr__(value))
    elif kind is float and math.isfinite(value):
        parts.append(float.__repr__(value))
    else:
        raise _NotPlainJson


_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}


@register_generator("dashboard", description="grafana/: the backup dashboard, and its ConfigMap")
def generate_dashboard(catalog: Catalog) -> Iterator[OutputFile]:
    if not any(s.methods for s in catalog.services):
        return
    texts = list(dashboard_texts(catalog))
    yield OutputFile(DASHBOARD, Text(texts.pop()))  # not held while the ConfigMap is made
    (compact,) = texts
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "homeops-backups-dashboard",
            "namespace": catalog.settings.alerts_namespace,
            # Grafana's dashboard sidecar loads every ConfigMap with this label.
            "labels": {"grafana_dashboard": "1"},
            # ${datasource} is Grafana's variable: Flux's substitution would empty it.
            "annotations": dict(NOT_SUBSTITUTED),
        },
        "data": {"homeops-backups.json": compact},
    }
    yield OutputFile(
        CONFIG_MAP,
        YamlDocuments(
            (config_map,), comment="The backup dashboard, for Grafana's dashboard sidecar."
        ),
    )
