"""Policy lint: each rule, where it points, and how lint and generate react to its findings."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, REPO, RUNBOOKS_LINE, CliResult, run_module, snapshot_of

from homeops_gen.catalog import load_catalog, load_catalog_text
from homeops_gen.catalog.loader import CatalogPositions
from homeops_gen.catalog.model import Catalog
from homeops_gen.errors import CatalogError
from homeops_gen.lint import RULES, LintFinding, lint_catalog

Run = Callable[..., CliResult]


def _with_settings(lines: str) -> str:
    """MINIMAL_HEAD with ``lines`` (settings keys, two-space indented) before ``services:``."""
    return MINIMAL_HEAD.replace("services:\n", textwrap.indent(lines, "  ") + "services:\n")


GARAGE_HEAD = _with_settings(
    "object_stores:\n"
    "  garage: {provider: garage, endpoint: http://garage:3900, region: garage, bucket: cnpg}\n"
)
R2_HEAD = _with_settings(
    "object_stores:\n"
    "  r2: {provider: r2, endpoint: https://r2.example.com, region: auto, bucket: volsync}\n"
)
ZFS_HEAD = _with_settings(
    "snapshots:\n"
    '  zfs: [{pool: main, naming: auto-%Y-%m-%d_%H-%M, cadence: "0 0,12 * * *", '
    "retention: 24h}]\n"
)
OFFSITE_HEAD = _with_settings("offsite: {target: sftp://backup.lan/homelab}\n")
LONDON_HEAD = MINIMAL_HEAD.replace("Etc/UTC", "Europe/London")

SQLITE = "sqlite: {claim: data, database: /data/app.db}\n"
POSTGRES = "postgresql: {host: pg.db.svc}\n"
CNPG = "cnpg: {cluster: pg, object_store: garage}\n"


def catalog_text(fields: str, head: str = MINIMAL_HEAD) -> str:
    """A catalog whose only service, ``app`` (services[0]), has ``fields``."""
    item = "- name: app\n  namespace: app\n" + textwrap.indent(textwrap.dedent(fields), "  ")
    return head + textwrap.indent(item, "  ")


def lint_text(text: str) -> list[LintFinding]:
    return lint_catalog(load_catalog_text(text, "services.yaml"))


def of_rule(findings: list[LintFinding], rule: str) -> list[LintFinding]:
    return [f for f in findings if f.rule == rule]


def position(text: str, needle: str, value: str) -> tuple[int, int]:
    """1-based line and column of ``value`` on the one line of ``text`` containing ``needle``."""
    lines = text.splitlines()
    (index,) = [i for i, line in enumerate(lines) if needle in line]
    return index + 1, lines[index].index(value) + 1


# --- each rule: a catalog that triggers it ----------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    rule: str
    severity: str
    #: The service field the finding must point at.
    field: str
    fields: str
    head: str = MINIMAL_HEAD
    #: A part of the message (what the user is told).
    says: str = ""


TRIGGERS = {
    "iscsi-sqlite-without-methods": Trigger(
        "iscsi-without-dump",
        "error",
        "methods",
        f"storage: iscsi\nchurn: low\nengine: sqlite\nmethods: []\n{SQLITE}",
        says="add the dump method",
    ),
    "high-churn-in-lvm": Trigger(
        "high-churn-snapshot",
        "warning",
        "snapshots",
        "storage: proxmox-lvm\nchurn: high\nengine: files\nsnapshots: true\n",
    ),
    "rto-without-drill": Trigger(
        "rto-not-measured",
        "warning",
        "rto",
        "storage: local-disk\nchurn: low\nengine: etcd\nrto: 20m\ndrill: false\n",
        says="no restore drill to measure it",
    ),
    "offsite-false": Trigger(
        "offsite-without-reason",
        "error",
        "offsite",
        "storage: nfs\nchurn: low\nengine: files\noffsite: false\n",
    ),
    "daily-dump-rpo-6h": Trigger(
        "rpo-not-met",
        "error",
        "rpo",
        "storage: local-disk\nchurn: low\nengine: etcd\ncadence: daily\nrpo: 6h\n",
        says="can lose 1d",
    ),
    "daily-pg-dump-rpo-1h-without-cnpg": Trigger(
        "rpo-not-met",
        "error",
        "rpo",
        f"storage: iscsi\nchurn: high\nengine: postgresql\nrpo: 1h\n{POSTGRES}",
        GARAGE_HEAD,
        says="pg_dumpall",
    ),
    "zfs-every-12h-rpo-6h": Trigger(
        "rpo-not-met",
        "error",
        "rpo",
        "storage: nfs\nchurn: low\nengine: files\nrpo: 6h\n",
        ZFS_HEAD,
        says="can lose 12h",
    ),
    "rpo-without-any-layer": Trigger(
        "rpo-not-met",
        "error",
        "rpo",
        "storage: local-disk\nchurn: low\nengine: files\nrpo: 1d\n",
        says="nothing backs it up",
    ),
    "critical-snapshots-only": Trigger(
        "critical-without-integrity",
        "error",
        "criticality",
        "storage: nfs\nchurn: low\nengine: files\ncriticality: critical\n",
        says="give it a backup method",
    ),
    "critical-sqlite-without-integrity": Trigger(
        "critical-without-integrity",
        "error",
        "criticality",
        f"storage: iscsi\nchurn: low\nengine: sqlite\ncriticality: critical\n{SQLITE}",
        says="integrity: hourly",
    ),
    "volsync-app-default-offsite-no-r2": Trigger(
        "offsite-unreachable",
        "warning",
        "storage",
        "storage: local-hostpath\nchurn: low\nengine: files\nvolsync: {capacity: 1Gi}\n",
        OFFSITE_HEAD,
    ),
    "daily-dump-in-the-london-dst-hour": Trigger(
        "dst-shifted-cadence",
        "warning",
        "cadence",
        "storage: local-disk\nchurn: low\nengine: etcd\ncadence: '30 1 * * *'\n",
        LONDON_HEAD,
        says="the largest real gap between its runs is 1d23h, 23h more than on the calendar",
    ),
    "lvm-volume-offsite-true": Trigger(
        "offsite-unreachable",
        "warning",
        "offsite",
        "storage: proxmox-lvm\nchurn: low\nengine: files\noffsite: true\n",
        OFFSITE_HEAD,
    ),
}


@pytest.mark.parametrize("case", TRIGGERS.values(), ids=TRIGGERS.keys())
def test_rule_fires_at_the_field_responsible(case: Trigger) -> None:
    text = catalog_text(case.fields, case.head)
    found = of_rule(lint_text(text), case.rule)
    assert len(found) == 1, found
    (finding,) = found
    assert finding.severity == case.severity
    assert finding.loc == ("services", 0, case.field)
    assert CatalogPositions(text).has(finding.loc), "the finding points at a field not written"
    assert finding.message.startswith("app ")
    assert case.says in finding.message


#: Rules about the settings rather than one service, each with its own tests below.
SETTINGS_RULES = {"alerts-without-runbook-url"}


def test_every_rule_has_a_triggering_case() -> None:
    """A new rule in RULES needs its own case above (or, for a settings rule, below)."""
    assert len({case.rule for case in TRIGGERS.values()} | SETTINGS_RULES) == len(RULES)


# --- ... and a close variant that does not ----------------------------------------------------


@dataclass(frozen=True)
class Quiet:
    rule: str
    fields: str
    head: str = MINIMAL_HEAD


QUIET = {
    "rto-with-drill": Quiet(
        "rto-not-measured", f"storage: iscsi\nchurn: low\nengine: sqlite\nrto: 5m\n{SQLITE}"
    ),
    "iscsi-sqlite-derived-dump": Quiet(
        "iscsi-without-dump", f"storage: iscsi\nchurn: low\nengine: sqlite\n{SQLITE}"
    ),
    "iscsi-sqlite-explicit-dump": Quiet(
        "iscsi-without-dump",
        f"storage: iscsi\nchurn: low\nengine: sqlite\nmethods: [dump]\n{SQLITE}",
    ),
    "iscsi-postgres-cnpg-only": Quiet(
        "iscsi-without-dump",
        f"storage: iscsi\nchurn: low\nengine: postgresql\nmethods: [cnpg]\n{POSTGRES}{CNPG}",
        GARAGE_HEAD,
    ),
    "iscsi-files-without-methods": Quiet(
        "iscsi-without-dump", "storage: iscsi\nchurn: low\nengine: files\nmethods: []\n"
    ),
    "high-churn-lvm-by-policy": Quiet(
        "high-churn-snapshot", "storage: proxmox-lvm\nchurn: high\nengine: files\n"
    ),
    "low-churn-in-lvm": Quiet(
        "high-churn-snapshot", "storage: proxmox-lvm\nchurn: low\nengine: files\nsnapshots: true\n"
    ),
    "offsite-excluded-with-reason": Quiet(
        "offsite-without-reason",
        "storage: nfs\nchurn: low\nengine: files\noffsite: {excluded: Regenerable}\n",
    ),
    "offsite-true": Quiet(
        "offsite-without-reason", "storage: nfs\nchurn: low\nengine: files\noffsite: true\n"
    ),
    "dump-every-6h-rpo-6h": Quiet(
        "rpo-not-met", "storage: local-disk\nchurn: low\nengine: etcd\ncadence: 6h\nrpo: 6h\n"
    ),
    "cnpg-wal-meets-rpo-1h": Quiet(
        "rpo-not-met",
        f"storage: iscsi\nchurn: high\nengine: postgresql\nrpo: 1h\n{POSTGRES}{CNPG}",
        GARAGE_HEAD,
    ),
    "zfs-every-12h-rpo-1d": Quiet(
        "rpo-not-met", "storage: nfs\nchurn: low\nengine: files\nrpo: 1d\n", ZFS_HEAD
    ),
    "no-rpo-declared": Quiet("rpo-not-met", "storage: local-disk\nchurn: low\nengine: files\n"),
    "critical-sqlite-with-integrity": Quiet(
        "critical-without-integrity",
        f"storage: iscsi\nchurn: low\nengine: sqlite\ncriticality: critical\n"
        f"integrity: hourly\n{SQLITE}",
    ),
    "critical-etcd-dump": Quiet(
        "critical-without-integrity",
        "storage: local-disk\nchurn: low\nengine: etcd\ncriticality: critical\n",
    ),
    "high-snapshots-only": Quiet(
        "critical-without-integrity",
        "storage: nfs\nchurn: low\nengine: files\ncriticality: high\n",
    ),
    "nfs-data-carried-by-nas-sync": Quiet(
        "offsite-unreachable", "storage: nfs\nchurn: low\nengine: files\n", OFFSITE_HEAD
    ),
    "lvm-dump-folder-carried-by-nas-sync": Quiet(
        "offsite-unreachable", "storage: proxmox-lvm\nchurn: low\nengine: etcd\n", OFFSITE_HEAD
    ),
    "volsync-app-copied-to-r2": Quiet(
        "offsite-unreachable",
        "storage: local-hostpath\nchurn: low\nengine: files\nvolsync: {capacity: 1Gi}\n",
        R2_HEAD,
    ),
    "volsync-app-excluded": Quiet(
        "offsite-unreachable",
        "storage: local-hostpath\nchurn: low\nengine: files\nvolsync: {capacity: 1Gi}\n"
        "offsite: {excluded: Rebuilt from git}\n",
        OFFSITE_HEAD,
    ),
    "daily-dump-after-the-london-dst-hour": Quiet(
        "dst-shifted-cadence",
        "storage: local-disk\nchurn: low\nengine: etcd\ncadence: '30 2 * * *'\n",
        LONDON_HEAD,
    ),
    "hourly-integrity-check-in-london": Quiet(
        "dst-shifted-cadence",
        f"storage: iscsi\nchurn: low\nengine: sqlite\ncadence: '0 3 * * *'\n"
        f"integrity: hourly\n{SQLITE}",
        LONDON_HEAD,
    ),
    "no-offsite-layer-declared": Quiet(
        "offsite-unreachable",
        "storage: local-hostpath\nchurn: low\nengine: files\nvolsync: {capacity: 1Gi}\n",
    ),
}


@pytest.mark.parametrize("case", QUIET.values(), ids=QUIET.keys())
def test_close_variant_does_not_fire(case: Quiet) -> None:
    text = catalog_text(case.fields, case.head)
    load_catalog_text(text, "services.yaml")  # the variant itself is a valid catalog
    assert of_rule(lint_text(text), case.rule) == []


def test_every_rule_has_a_quiet_variant() -> None:
    assert {case.rule for case in QUIET.values()} == {c.rule for c in TRIGGERS.values()}


def test_alerts_without_a_runbook_url_are_reported_once_at_settings_alerts() -> None:
    unlinked = MINIMAL_HEAD.replace(RUNBOOKS_LINE, "")
    text = catalog_text("storage: local-disk\nchurn: low\nengine: etcd\n", unlinked)
    (finding,) = of_rule(lint_text(text), "alerts-without-runbook-url")
    assert finding.severity == "warning"
    assert finding.loc == ("settings", "alerts")
    assert "settings.alerts.runbook_base_url" in finding.message
    linked = catalog_text("storage: local-disk\nchurn: low\nengine: etcd\n")
    assert of_rule(lint_text(linked), "alerts-without-runbook-url") == []
    snapshots_only = catalog_text("storage: nfs\nchurn: low\nengine: files\n", unlinked)
    assert of_rule(lint_text(snapshots_only), "alerts-without-runbook-url") == []


@pytest.mark.parametrize(
    "url", ["out/docs/runbooks", "sftp://nas/runbooks", "https://user:pw@git.example.com/x"]
)
def test_a_runbook_base_url_a_browser_cannot_open_is_rejected(url: str) -> None:
    head = MINIMAL_HEAD.replace(RUNBOOKS_LINE, f"  alerts: {{runbook_base_url: '{url}'}}\n")
    with pytest.raises(CatalogError, match="runbook_base_url"):
        load_catalog_text(catalog_text("storage: nfs\nchurn: low\nengine: files\n", head))


# --- ordering and positions across services --------------------------------------------------


def _two_services(first: str, second: str) -> str:
    body = f"- name: zulu\n  namespace: z\n{first}- name: alpha\n  namespace: a\n{second}"
    return MINIMAL_HEAD + textwrap.indent(body, "  ")


def test_findings_point_at_the_catalog_index_not_the_sorted_one() -> None:
    """``zulu`` is listed first but sorts last; its finding still says services[0]."""
    text = _two_services(
        "  storage: nfs\n  churn: low\n  engine: files\n  offsite: false\n",
        "  storage: nfs\n  churn: low\n  engine: files\n",
    )
    catalog: Catalog = load_catalog_text(text, "services.yaml")
    assert [s.name for s in catalog.services] == ["alpha", "zulu"]
    (finding,) = lint_catalog(catalog)
    assert finding.loc == ("services", 0, "offsite")
    assert finding.message.startswith("zulu ")


def test_errors_come_before_warnings() -> None:
    text = _two_services(
        "  storage: proxmox-lvm\n  churn: high\n  engine: files\n  snapshots: true\n",
        "  storage: nfs\n  churn: low\n  engine: files\n  offsite: false\n",
    )
    findings = lint_catalog(load_catalog_text(text, "services.yaml"))
    assert [(f.severity, f.rule, f.loc) for f in findings] == [
        ("error", "offsite-without-reason", ("services", 1, "offsite")),
        ("warning", "high-churn-snapshot", ("services", 0, "snapshots")),
    ]


def test_reference_catalog_lints_clean() -> None:
    findings = lint_catalog(load_catalog(REPO / "services.yaml"))
    assert [f for f in findings if f.severity == "error"] == []
    assert [f for f in findings if f.severity == "warning"] == []


# --- the command line ----------------------------------------------------------------------

#: One lint error (rpo-not-met: a local-disk volume has no layer at all), nothing else.
ERROR_CATALOG = catalog_text("storage: local-disk\nchurn: low\nengine: files\nrpo: 6h\n")
ERROR_LINE, ERROR_COLUMN = position(ERROR_CATALOG, "rpo: 6h", "6h")
ERROR_PROBLEM = (
    f"services.yaml:{ERROR_LINE}:{ERROR_COLUMN}: services[0].rpo: error: "
    "app declares an RPO of 6h but nothing backs it up [rpo-not-met]"
)
#: The same service without the RPO: lints clean.
CLEAN_CATALOG = catalog_text("storage: local-disk\nchurn: low\nengine: files\n")
#: One lint warning (high-churn-snapshot), no error.
WARNING_CATALOG = catalog_text(
    "storage: proxmox-lvm\nchurn: high\nengine: files\nsnapshots: true\n"
)
WARNING_LINE, WARNING_COLUMN = position(WARNING_CATALOG, "snapshots: true", "true")
WARNING_PREFIX = f"services.yaml:{WARNING_LINE}:{WARNING_COLUMN}: services[0].snapshots: warning: "


def test_error_position_is_the_rpo_value() -> None:
    """The helper's arithmetic, checked once by hand: the service starts on line 8."""
    assert MINIMAL_HEAD.count("\n") == 7
    assert (ERROR_LINE, ERROR_COLUMN) == (13, 10)


@pytest.fixture
def chdir_project(
    project: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Path]:
    """``project``, made the working directory (so messages say ``services.yaml``)."""

    def make(text: str) -> Path:
        root = project(text)
        monkeypatch.chdir(root)
        return root

    return make


def test_lint_command_exits_2_on_an_error(project: Callable[[str], Path]) -> None:
    root = project(ERROR_CATALOG)
    result = run_module("lint", cwd=root)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.out == ""
    assert result.err.splitlines() == [
        ERROR_PROBLEM,
        "homeops_gen: lint: 1 error, 0 warnings; done",
    ]
    assert not (root / "out").exists()


def test_lint_command_exits_0_on_warnings(
    chdir_project: Callable[[str], Path], run_cli: Run
) -> None:
    root = chdir_project(WARNING_CATALOG)
    result = run_cli("lint")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(WARNING_PREFIX)
    assert lines[0].endswith("[high-churn-snapshot]")
    assert lines[1] == "homeops_gen: lint: 0 errors, 1 warning; done"
    assert not (root / "out").exists()


def test_lint_command_on_a_clean_catalog(
    chdir_project: Callable[[str], Path], run_cli: Run
) -> None:
    chdir_project(CLEAN_CATALOG)
    result = run_cli("lint")
    assert result.code == 0
    assert result.err.splitlines() == ["homeops_gen: lint: 0 errors, 0 warnings; done"]


@pytest.mark.parametrize(
    "args", [(), ("generate",), ("check",)], ids=["default", "generate", "check"]
)
def test_generate_with_a_lint_error_writes_nothing(
    chdir_project: Callable[[str], Path], run_cli: Run, args: tuple[str, ...]
) -> None:
    root = chdir_project(ERROR_CATALOG)
    result = run_cli(*args)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert ERROR_PROBLEM in result.err.splitlines()
    assert not (root / "out").exists()


def test_generate_with_a_lint_error_leaves_out_unchanged(
    chdir_project: Callable[[str], Path], run_cli: Run
) -> None:
    root = chdir_project(CLEAN_CATALOG)
    first = run_cli()
    assert first.code == 0, first.err
    before = snapshot_of(root / "out")
    assert before

    (root / "services.yaml").write_text(ERROR_CATALOG, encoding="utf-8")
    result = run_cli()

    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.splitlines() == [
        ERROR_PROBLEM,
        "homeops_gen: lint: 1 error, 0 warnings; nothing was written",
    ]
    assert snapshot_of(root / "out") == before


def test_generate_with_only_warnings_writes_out(
    chdir_project: Callable[[str], Path], run_cli: Run
) -> None:
    root = chdir_project(WARNING_CATALOG)
    result = run_cli()
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert lines[0].startswith(WARNING_PREFIX)
    assert "homeops_gen: lint: 0 errors, 1 warning; done" in lines
    written = snapshot_of(root / "out")
    assert "README.md" in written
    assert "catalog/resolved.yaml" in written


def test_a_host_cadence_in_the_dst_hour_is_reported_at_its_setting() -> None:
    """cron on the NAS runs a skipped fixed-time job just after the jump and a repeated one
    once; the 12h gap over the fall-back night is 13h of real time."""
    head = LONDON_HEAD.replace(
        "services:\n",
        '  offsite: {target: "sftp://backup.lan/x", incremental: "30 1,13 * * *"}\nservices:\n',
    )
    text = catalog_text("storage: nfs\nchurn: low\nengine: files\n", head)
    (finding,) = of_rule(lint_text(text), "dst-shifted-cadence")
    assert finding.loc == ("settings", "offsite", "incremental")
    assert finding.message.startswith("the NAS runs its incremental sync (cron on the NAS")
    assert "at 01:30, inside a DST transition" in finding.message
    assert "the largest real gap between its runs is 13h, 1h more than" in finding.message
