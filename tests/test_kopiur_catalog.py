"""The catalog's choice of PVC engine: one block per app, a catalog-wide default, and every
mistake reported at its ``file:line:col`` (exit 2, no traceback, ``out/`` untouched)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD, RUNBOOKS_LINE, run_module, snapshot_of

from homeops_gen import load_catalog_text
from homeops_gen.errors import CatalogError

#: Lines 1-5 of MINIMAL_HEAD without its runbook line, then these settings (lines 6-...).
HEAD = MINIMAL_HEAD.replace(RUNBOOKS_LINE, "").removesuffix("services:\n")


def catalog(settings: str, *services: str) -> str:
    """HEAD, ``settings`` (indented below ``settings:``) and the service items."""
    body = "".join(textwrap.indent(textwrap.dedent(item), "  ") for item in services)
    return HEAD + textwrap.indent(textwrap.dedent(settings), "  ") + "services:\n" + body


def app(*lines: str, name: str = "wiki", storage: str = "local-hostpath") -> str:
    """A files app; ``lines`` are more keys of the item."""
    head = [
        f"- name: {name}",
        "  namespace: tools",
        f"  storage: {storage}",
        "  churn: low",
        "  engine: files",
    ]
    return "".join(f"{line}\n" for line in [*head, *(f"  {x}" for x in lines)])


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        load_catalog_text(text, "services.yaml")
    return list(exc.value.lines)


def at(line: int, column: int, path: str, message: str) -> str:
    return f"services.yaml:{line}:{column}: {path}: {message}"


# --- which engine ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "block", "engine"),
    [
        ("", "volsync: {capacity: 1Gi}", "volsync"),
        ("", "kopiur: {capacity: 1Gi}", "kopiur"),
        ("", "pvc: {capacity: 1Gi}", "volsync"),
        ("pvc_engine: kopiur\n", "pvc: {capacity: 1Gi}", "kopiur"),
        ("pvc_engine: kopiur\n", "pvc: {capacity: 1Gi, engine: volsync}", "volsync"),
        ("pvc_engine: kopiur\n", "volsync: {capacity: 1Gi}", "volsync"),
        ("", "pvc: {capacity: 1Gi, engine: kopiur}", "kopiur"),
    ],
)
def test_the_block_or_the_default_chooses_the_engine(
    settings: str, block: str, engine: str
) -> None:
    service = load_catalog_text(catalog(settings, app(block)), "services.yaml").service("wiki")
    assert service.methods == (engine,)
    assert (service.kopiur is not None) == (engine == "kopiur")
    assert (service.volsync is not None) == (engine == "volsync")
    app_values = service.kopiur or service.volsync
    assert app_values is not None and app_values.capacity == "1Gi"
    assert app_values.schedule.runtime == engine


def test_switching_an_app_is_one_line() -> None:
    """The same block under the other key: same claim, capacity, counts, local times."""
    volsync = load_catalog_text(catalog("", app("volsync: {capacity: 2Gi}")), "s.yaml")
    kopiur = load_catalog_text(catalog("", app("kopiur: {capacity: 2Gi}")), "s.yaml")
    a, b = volsync.service("wiki").volsync, kopiur.service("wiki").kopiur
    assert a is not None and b is not None
    assert (a.claim, a.capacity, dict(a.retain)) == (b.claim, b.capacity, dict(b.retain))
    assert a.schedule.cron == b.schedule.cron  # the catalog's local intent
    assert b.schedule.zone == kopiur.settings.timezone


def test_explicit_methods_name_kopiur() -> None:
    text = catalog("", app("methods: [kopiur]", "kopiur: {capacity: 1Gi}", storage="iscsi"))
    assert load_catalog_text(text, "s.yaml").service("wiki").methods == ("kopiur",)


# --- mistakes, where they are written ---------------------------------------------------------

#: The first service item starts on line 7 (HEAD is lines 1-5, ``services:`` line 6, with no
#: settings); its extra keys are lines 12, 13, ...
BAD = [
    pytest.param(
        catalog("", app("volsync: {capacity: 1Gi}", "kopiur: {capacity: 1Gi}")),
        [
            at(
                13,
                5,
                "services[0].kopiur",
                "blocks 'volsync' and 'kopiur' both describe the PVC copy: keep one",
            )
        ],
        id="two-blocks",
    ),
    pytest.param(
        catalog("", app("methods: [kopiur]", "volsync: {capacity: 1Gi}", storage="iscsi")),
        [
            at(
                12,
                5,
                "services[0].methods",
                "method 'kopiur' needs a kopiur block, or a pvc block with engine kopiur "
                "(capacity) (its volsync block is copied by volsync)",
            )
        ],
        id="method-without-its-block",
    ),
    pytest.param(
        catalog("", app("pvc: {capacity: 1Gi, engine: restic}")),
        [
            at(
                12,
                34,
                "services[0].pvc.engine",
                "'restic' is not one of 'volsync' or 'kopiur'",
            )
        ],
        id="unknown-engine",
    ),
    pytest.param(
        catalog(
            "",
            app("cadence: monthly-first-sunday", "retention: 2 copies", "kopiur: {capacity: 1Gi}"),
        ),
        [
            at(
                12,
                14,
                "services[0].cadence",
                "kopiur cannot run a first-<weekday> cadence: it cannot skip the days 1-7 that "
                "are not the weekday (only a job script can); give a cron or a plain cadence",
            )
        ],
        id="first-weekday",
    ),
    pytest.param(
        catalog("", app('cadence: "0 3 */2 * 1"', "kopiur: {capacity: 1Gi}")),
        [
            at(
                12,
                14,
                "services[0].cadence",
                "kopiur cannot run cron '0 3 */2 * 1' as meant: a day field starting with '*/' "
                "beside a restricted other day field reads differently in croner; list the "
                "days instead",
            )
        ],
        id="day-step-beside-weekday",
    ),
    pytest.param(
        catalog("", app("drill: {layer: kopiur}", "volsync: {capacity: 1Gi}")),
        [
            at(
                12,
                20,
                "services[0].drill.layer",
                "the service has no kopiur backup to drill (it has: volsync)",
            )
        ],
        id="kopiur-drill-of-a-volsync-app",
    ),
    pytest.param(
        catalog(
            "",
            app("drill:", "  checks: [{table: pages}]", "kopiur: {capacity: 1Gi}"),
        ),
        [
            at(
                13,
                7,
                "services[0].drill.checks",
                "checks are SQL, for mysql, postgresql, sqlite dumps and CNPG, not the kopiur "
                "drill of 'files'",
            )
        ],
        id="sql-checks-on-a-kopiur-drill",
    ),
    pytest.param(
        catalog("kopiur: {repository: nas, r2_repository: nas}\n", app("kopiur: {capacity: 1Gi}")),
        [
            at(
                6,
                44,
                "settings.kopiur.r2_repository",
                "the offsite ClusterRepository needs a name of its own, not 'nas'",
            )
        ],
        id="one-name-for-both-repositories",
    ),
    pytest.param(
        catalog("kopiur: {quick_verify_cadence: sometimes}\n", app("kopiur: {capacity: 1Gi}")),
        [
            at(
                6,
                34,
                "settings.kopiur.quick_verify_cadence",
                "'sometimes' is neither a shorthand (hourly, <N>h, daily, weekly, monthly, "
                "monthly-first-<weekday>) nor a valid cron expression: expected 5 fields "
                "(minute hour day-of-month month day-of-week), got 1",
            )
        ],
        id="bad-verify-cadence",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_mistakes_are_reported_where_written(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_the_cli_exits_2_with_no_traceback_and_leaves_out_alone(tmp_path: Path) -> None:
    good = catalog("", app("kopiur: {capacity: 1Gi}"))
    (tmp_path / "services.yaml").write_text(good)
    first = run_module(cwd=tmp_path)
    assert first.code == 0, first.err
    before = snapshot_of(tmp_path / "out")
    assert any(path.startswith("kubernetes/components/kopiur/") for path in before)
    bad = catalog("", app("volsync: {capacity: 1Gi}", "kopiur: {capacity: 1Gi}"))
    (tmp_path / "services.yaml").write_text(bad)
    result = run_module(cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "services.yaml:13:5: services[0].kopiur: blocks 'volsync' and 'kopiur'" in result.err
    assert snapshot_of(tmp_path / "out") == before
