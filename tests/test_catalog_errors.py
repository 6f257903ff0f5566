"""Bad catalogs: every problem reported at once as ``services.yaml:LINE:COL: path: message``.

Each inline catalog below is ``MINIMAL_HEAD`` (lines 1-6, ``services:`` on line 6) followed
by services, so the first service item starts on line 7. Columns are 1-based; a scalar value
is located at its first character (the opening quote when quoted), a mapping or sequence
value at its key.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MINIMAL_HEAD as LINKED_HEAD
from conftest import RUNBOOKS_LINE, SMALL_CATALOG, CliResult, run_module, snapshot_of

from homeops_gen.catalog import load_catalog_text
from homeops_gen.errors import CatalogError

SOURCE = "services.yaml"

#: A valid SQLite service; under ``services:`` its lines are 7-12, extra lines start at 13.
NOTES = """\
- name: notes
  namespace: notes
  storage: iscsi
  churn: low
  engine: sqlite
  sqlite: {claim: notes-data, database: /data/notes.db}
"""
#: A valid Redis service (lines 7-12 when first).
CACHE = """\
- name: cache
  namespace: cache
  storage: iscsi
  churn: high
  engine: redis
  redis: {host: redis.lan, claim: cache-data}
"""
#: A files service on NFS: no protection method beyond snapshots (lines 7-11 when first).
MEDIA = """\
- name: media
  namespace: media
  storage: nfs
  churn: low
  engine: files
"""

CRON_HELP = (
    "is neither a shorthand (hourly, <N>h, daily, weekly, monthly, monthly-first-<weekday>) "
    "nor a valid cron expression"
)
DNS_LABEL = (
    "a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter "
    "or digit, at most 63 characters)"
)
ABS_PATH = "an absolute path of letters, digits and ._@+- (no spaces, quotes or trailing '/')"
MOUNT_COLLISION = (
    "{0} collides with /{1}, where the backup job mounts its {1} volume; "
    "mount the claim elsewhere (the default is /data)"
)
URL = "a URL (http, https, sftp or s3) without credentials, query or spaces"
EXPIRE = "a backup would expire before the next one is taken; keep it longer or use '<n> copies'"
NO_METHOD = "the service has no protection method (set methods, or remove it)"

#: The tests' settings without the runbook link, so that positions stay as written here.
MINIMAL_HEAD = LINKED_HEAD.replace(RUNBOOKS_LINE, "")


def catalog(*services: str, head: str = MINIMAL_HEAD) -> str:
    """``head`` followed by the given service items, indented under ``services:``."""
    return head + "".join(textwrap.indent(textwrap.dedent(s), "  ") for s in services)


def plus(service: str, *lines: str) -> str:
    """``service`` with more ``key: value`` lines appended to its mapping."""
    return service + "".join(f"  {line}\n" for line in lines)


def errors_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        load_catalog_text(text, SOURCE)
    return list(exc.value.lines)


def at(line: int, column: int, path: str | None, message: str) -> str:
    """An expected problem line; ``path=None`` for problems about the whole file."""
    where = f"{SOURCE}:{line}:{column}"
    return f"{where}: {message}" if path is None else f"{where}: {path}: {message}"


def test_the_base_services_are_valid() -> None:
    """The cases below each break exactly one thing in these otherwise valid services."""
    catalog_ = load_catalog_text(catalog(NOTES, CACHE, MEDIA), SOURCE)
    assert [s.name for s in catalog_.services] == ["cache", "media", "notes"]


# --- one kind of mistake per case ----------------------------------------------------------

BAD_CATALOGS = [
    pytest.param(
        MINIMAL_HEAD.replace("services:", "service:") + textwrap.indent(NOTES, "  "),
        [at(6, 1, "service", "unknown field 'service'; did you mean 'services'?")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        catalog(plus(NOTES, "retension: 30d")),
        [
            at(  # an unknown key is located at the key, not its value
                13,
                5,
                "services[0].retension",
                "unknown field 'retension'; did you mean 'retention'?",
            )
        ],
        id="unknown-service-key",
    ),
    pytest.param(
        catalog(NOTES, head=MINIMAL_HEAD.replace("  timezone:", "  timezon:")),
        [at(3, 3, "settings.timezon", "unknown field 'timezon'; did you mean 'timezone'?")],
        id="unknown-settings-key",
    ),
    pytest.param(
        catalog(NOTES.replace("  namespace: notes\n", "")),
        [at(7, 5, "services[0].namespace", "required field 'namespace' is missing")],
        id="missing-required-field",
    ),
    pytest.param(
        catalog(NOTES, head=MINIMAL_HEAD.replace("homeops/v1", "homeops/v2")),
        [
            at(
                1,
                10,
                "version",
                "unsupported catalog version 'homeops/v2'; this homeops_gen reads 'homeops/v1'",
            )
        ],
        id="wrong-version",
    ),
    pytest.param(
        catalog(NOTES, head=MINIMAL_HEAD.replace("version: homeops/v1\n", "")),
        [at(1, 1, None, "required field 'version' is missing (use version: homeops/v1)")],
        id="missing-version",
    ),
    pytest.param(
        catalog(NOTES.replace("sqlite: {claim: notes-data, database: /data/notes.db}", "x: [a, b")),
        [
            at(  # the end of the file is past the last line: point where "[" opened
                12,
                8,
                None,
                "invalid YAML: while parsing a flow sequence; expected ',' or ']', "
                "but got '<stream end>'",
            )
        ],
        id="unclosed-flow-sequence",
    ),
    pytest.param(
        catalog(plus(NOTES, "churn: high")),
        [
            at(
                13,
                5,
                None,
                'invalid YAML: while constructing a mapping; found duplicate key "churn" '
                'with value "high" (original value: "low")',
            )
        ],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        catalog(NOTES.replace("name: notes", "name: Notes_DB")),
        [at(7, 11, "services[0].name", f"'Notes_DB' is not {DNS_LABEL}")],
        id="name-not-dns-1123",
    ),
    pytest.param(
        catalog(MEDIA, MEDIA),
        [
            at(
                12,
                11,
                "services[1].name",
                "duplicate service name 'media' (first defined at services[0])",
            )
        ],
        id="duplicate-service-names",
    ),
    pytest.param(
        # Two dump services with one name also share the derived backup path; the duplicate
        # name is the one mistake, so it should be the one line.
        catalog(NOTES, NOTES),
        [
            at(
                13,
                11,
                "services[1].name",
                "duplicate service name 'notes' (first defined at services[0])",
            )
        ],
        id="duplicate-dump-service-names",
    ),
    pytest.param(
        catalog(NOTES.replace("storage: iscsi", "storage: ceph")),
        [
            at(
                9,
                14,
                "services[0].storage",
                "'ceph' is not one of 'iscsi', 'nfs', 'local-hostpath', 'proxmox-lvm' or "
                "'local-disk'",
            )
        ],
        id="bad-storage-enum",
    ),
    pytest.param(
        catalog(plus(NOTES, 'cadence: "0 4 * *"')),
        [
            at(
                13,
                14,
                "services[0].cadence",
                f"'0 4 * *' {CRON_HELP}: expected 5 fields "
                "(minute hour day-of-month month day-of-week), got 4",
            )
        ],
        id="cron-field-count",
    ),
    pytest.param(
        catalog(plus(NOTES, 'cadence: "60 4 * * *"')),
        [
            at(
                13,
                14,
                "services[0].cadence",
                f"'60 4 * * *' {CRON_HELP}: minute field: 60 is outside 0-59",
            )
        ],
        id="cron-out-of-range",
    ),
    pytest.param(
        catalog(plus(NOTES, 'cadence: "0 4 * * 7"')),
        [
            at(
                13,
                14,
                "services[0].cadence",
                f"'0 4 * * 7' {CRON_HELP}: day-of-week field: 7 is outside 0-6",
            )
        ],
        id="cron-day-of-week-7",
    ),
    pytest.param(
        catalog(plus(NOTES, 'cadence: "*/0 4 * * *"')),
        [
            at(
                13,
                14,
                "services[0].cadence",
                f"'*/0 4 * * *' {CRON_HELP}: minute field: step '0' must be a positive number",
            )
        ],
        id="cron-step-zero",
    ),
    pytest.param(
        catalog(plus(NOTES, "cadence: 5h")),
        [
            at(
                13,
                14,
                "services[0].cadence",
                "'5h': every N hours needs N to divide 24 (1, 2, 3, 4, 6, 8, 12, 24)",
            )
        ],
        id="every-5h",
    ),
    pytest.param(
        catalog(plus(NOTES, 'cadence: "0 0 30 2 *"')),
        [
            at(
                13,
                14,
                "services[0].cadence",
                "the schedule never runs (or runs less than once in 28 years)",
            )
        ],
        id="schedule-never-runs",
    ),
    pytest.param(
        catalog(plus(NOTES, "cadence: monthly-first-sunday", "retention: 30d")),
        [
            at(
                14,
                16,
                "services[0].retention",
                "retention 30d is shorter than the largest gap between runs of cadence "
                "'monthly-first-sunday' (35d): " + EXPIRE,
            )
        ],
        id="retention-shorter-than-first-sunday-gap",
    ),
    pytest.param(
        # Low churn defaults to 30d retention; a monthly cadence can wait 31 days.
        catalog(plus(NOTES, "cadence: monthly")),
        [
            at(
                13,
                14,
                "services[0].cadence",
                "retention 30d (built-in default for low churn) is shorter than the largest "
                "gap between runs of cadence 'monthly' (31d): " + EXPIRE,
            )
        ],
        id="default-retention-shorter-than-cadence",
    ),
    pytest.param(
        catalog(plus(NOTES, "retention: 0 copies")),
        [at(13, 16, "services[0].retention", "retention must keep at least one backup")],
        id="retention-zero-copies",
    ),
    pytest.param(
        catalog(plus(CACHE, "integrity: daily")),
        [
            at(
                13,
                16,
                "services[0].integrity",
                "integrity checks are supported for sqlite, not 'redis'",
            )
        ],
        id="integrity-on-redis",
    ),
    pytest.param(
        catalog(
            plus(
                CACHE.replace("engine: redis", "engine: mysql").replace(
                    "redis: {host: redis.lan, claim: cache-data}", "mysql: {host: redis.lan}"
                ),
                "methods: [cnpg]",
            )
        ),
        [
            at(
                13,
                5,
                "services[0].methods",
                "method 'cnpg' needs engine 'postgresql' and a cnpg block",
            )
        ],
        id="cnpg-method-on-mysql",
    ),
    pytest.param(
        catalog(plus(NOTES, "redis: {host: redis.lan, claim: x}")),
        [
            at(
                13,
                5,
                "services[0].redis",
                "block 'redis' does not match the service's engine 'sqlite'",
            )
        ],
        id="engine-block-mismatch",
    ),
    pytest.param(
        catalog(plus(NOTES, "methods: [dump, dump]")),
        [at(13, 5, "services[0].methods", "a method is listed twice")],
        id="method-listed-twice",
    ),
    pytest.param(
        catalog(NOTES.replace("  sqlite: {claim: notes-data, database: /data/notes.db}\n", "")),
        [
            at(
                7,
                5,
                "services[0]",
                "engine 'sqlite' with method 'dump' needs a 'sqlite' block (claim, database)",
            )
        ],
        id="dump-without-engine-block",
    ),
    pytest.param(
        catalog(
            """\
            - name: pg
              namespace: db
              storage: local-hostpath
              churn: high
              engine: postgresql
              cnpg: {cluster: pg, object_store: garage}
            """
        ),
        [
            at(
                12,
                39,
                "services[0].cnpg.object_store",
                "object store 'garage' is not defined in settings.object_stores",
            )
        ],
        id="cnpg-object-store-undefined",
    ),
    pytest.param(
        catalog(plus(NOTES, "offsite: yes please")),
        [at(13, 14, "services[0].offsite", "expected true, false or {excluded: <reason>}")],
        id="offsite-string",
    ),
    pytest.param(
        catalog(plus(NOTES, 'offsite: "true"')),
        [at(13, 14, "services[0].offsite", "expected true, false or {excluded: <reason>}")],
        id="offsite-quoted-true",
    ),
    pytest.param(
        catalog(NOTES, head=MINIMAL_HEAD.replace("Etc/UTC", "Mars/Olympus_Mons")),
        [at(3, 13, "settings.timezone", "unknown IANA time zone 'Mars/Olympus_Mons'")],
        id="unknown-time-zone",
    ),
    pytest.param(
        catalog(NOTES.replace("/data/notes.db", "/data/../etc/shadow")),
        [
            at(
                12,
                43,
                "services[0].sqlite.database",
                "'/data/../etc/shadow' has a '.' or '..' segment",
            )
        ],
        id="path-dot-dot",
    ),
    pytest.param(
        catalog(NOTES.replace("/data/notes.db", '"/data/x;rm -rf /"')),
        [at(12, 43, "services[0].sqlite.database", f"'/data/x;rm -rf /' is not {ABS_PATH}")],
        id="path-shell-metacharacters",
    ),
    pytest.param(
        catalog(
            plus(NOTES, "backup_path: /mnt/tank/shared"),
            plus(NOTES.replace("notes", "wiki"), "backup_path: /mnt/tank/shared"),
        ),
        [
            at(
                20,
                18,
                "services[1].backup_path",
                "backup path /mnt/tank/shared is also used by 'notes'; "
                "their rotations would delete each other's backups",
            )
        ],
        id="shared-backup-path",
    ),
    pytest.param(
        catalog(plus(MEDIA.replace("storage: nfs", "storage: iscsi"), "cadence: daily")),
        [at(12, 14, "services[0].cadence", f"'cadence' applies to nothing: {NO_METHOD}")],
        id="cadence-without-method",
    ),
    pytest.param(
        catalog(plus(MEDIA.replace("storage: nfs", "storage: local-disk"), "snapshots: true")),
        [
            at(
                12,
                16,
                "services[0].snapshots",
                "storage 'local-disk' has no snapshot layer (zfs: nfs, iscsi; lvm: proxmox-lvm)",
            )
        ],
        id="snapshots-without-layer",
    ),
    pytest.param(
        catalog(
            NOTES.replace(
                "database: /data/notes.db}", "mount_path: /backup, database: /backup/notes.db}"
            )
        ),
        [at(12, 45, "services[0].sqlite.mount_path", MOUNT_COLLISION.format("/backup", "backup"))],
        id="claim-mounted-over-the-backup-volume",
    ),
    pytest.param(
        catalog(
            CACHE.replace("claim: cache-data}", "claim: cache-data, data_dir: /scripts/redis}")
        ),
        [
            at(
                12,
                59,
                "services[0].redis.data_dir",
                MOUNT_COLLISION.format("/scripts/redis", "scripts"),
            )
        ],
        id="claim-mounted-inside-the-scripts-volume",
    ),
    pytest.param(
        catalog(CACHE.replace("claim: cache-data}", "claim: cache-data, data_dir: /}")),
        [at(12, 59, "services[0].redis.data_dir", MOUNT_COLLISION.format("/", "backup"))],
        id="claim-mounted-at-the-root",
    ),
    pytest.param(
        "",
        [at(1, 1, None, "the catalog must be a mapping, not an empty document")],
        id="empty-document",
    ),
    pytest.param(
        "# only a comment\n",
        [at(1, 1, None, "the catalog must be a mapping, not an empty document")],
        id="comment-only-document",
    ),
    pytest.param(
        "- version: homeops/v1\n",
        [at(1, 1, None, "the catalog must be a mapping, not a list")],
        id="top-level-list",
    ),
    pytest.param(
        catalog(NOTES) + "---\nversion: homeops/v1\n",
        [
            at(
                13,
                1,
                None,
                "invalid YAML: expected a single document in the stream; "
                "but found another document",
            )
        ],
        id="two-documents",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CATALOGS)
def test_bad_catalog_is_reported_at_its_position(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


# --- strings that could reach a shell script or an HCL file --------------------------------

INJECTIONS = [
    pytest.param(
        catalog(
            CACHE.replace(
                "{host: redis.lan, claim: cache-data}",
                "{host: redis.lan, password: {name: redis, key: my key}, claim: cache-data}",
            )
        ),
        [
            at(
                12,
                59,
                "services[0].redis.password.key",
                "'my key' is not a Secret key (letters, digits, '-', '_', '.')",
            )
        ],
        id="secret-key-with-space",
    ),
    pytest.param(
        catalog(CACHE.replace("{host: redis.lan,", '{host: "$(reboot)",')),
        [at(12, 19, "services[0].redis.host", "'$(reboot)' is not a host name or IP address")],
        id="host-command-substitution",
    ),
    pytest.param(
        catalog(NOTES, head=MINIMAL_HEAD.replace("server: nas.lan", "server: 'nas.lan;reboot'")),
        [at(4, 17, "settings.nfs.server", "'nas.lan;reboot' is not a host name or IP address")],
        id="nfs-server-semicolon",
    ),
    pytest.param(
        catalog(
            NOTES,
            head=MINIMAL_HEAD.replace(
                "http://pushgateway.monitoring.svc:9091", '"http://pg.lan/\'x"'
            ),
        ),
        [at(5, 16, "settings.pushgateway", f'"http://pg.lan/\'x" is not {URL}')],
        id="url-single-quote",
    ),
    pytest.param(
        catalog(
            NOTES,
            head=MINIMAL_HEAD.replace(
                "http://pushgateway.monitoring.svc:9091", '"http://pg.lan/${var.token}"'
            ),
        ),
        [at(5, 16, "settings.pushgateway", f"'http://pg.lan/${{var.token}}' is not {URL}")],
        id="url-hcl-interpolation",
    ),
    pytest.param(
        catalog(
            NOTES,
            head=MINIMAL_HEAD.replace(
                "http://pushgateway.monitoring.svc:9091", "http://user:pw@pg.lan"
            ),
        ),
        [at(5, 16, "settings.pushgateway", f"'http://user:pw@pg.lan' is not {URL}")],
        id="url-credentials",
    ),
    pytest.param(
        catalog(NOTES.replace("claim: notes-data", 'claim: "`id`"')),
        [
            at(
                12,
                21,
                "services[0].sqlite.claim",
                "'`id`' is not a DNS-1123 subdomain (a Kubernetes object name)",
            )
        ],
        id="claim-backticks",
    ),
    pytest.param(
        catalog(
            CACHE.replace("engine: redis", "engine: mysql").replace(
                "redis: {host: redis.lan, claim: cache-data}",
                'mysql: {host: db.lan, databases: ["a;drop"]}',
            )
        ),
        [
            at(
                12,
                39,
                "services[0].mysql.databases[0]",
                "'a;drop' is not an identifier (a letter or '_', then letters, digits, '_' or '-')",
            )
        ],
        id="database-name-semicolon",
    ),
    pytest.param(
        catalog(plus(NOTES, r'description: "one\ntwo"')),
        [
            at(
                13,
                18,
                "services[0].description",
                "'one\\ntwo' is not single-line text without control or bidirectional characters",
            )
        ],
        id="description-newline",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INJECTIONS)
def test_values_that_could_reach_a_shell_or_hcl_are_rejected(
    text: str, expected: list[str]
) -> None:
    assert errors_of(text) == expected


# --- many problems at once -----------------------------------------------------------------


def test_schema_problems_are_all_reported_sorted_by_line() -> None:
    # `settings` comes last in the file but first in the model; `churn` precedes `storage`
    # in the file but follows it in the model: the report follows the file.
    text = catalog(
        """\
        - name: notes
          namespace: notes
          churn: extreme
          storage: ceph
          engine: sqlite
          sqlite: {claim: notes-data, database: /data/notes.db}
        - name: Wiki
          namespace: wiki
          storage: nfs
          churn: low
          engine: files
        """,
        head="version: homeops/v1\nservices:\n",
    ) + ("settings:\n  nfs: {server: nas.lan, backup_root: /mnt/tank}\n  pushgateway: ftp://x\n")
    assert errors_of(text) == [
        at(5, 12, "services[0].churn", "'extreme' is not one of 'low', 'medium' or 'high'"),
        at(
            6,
            14,
            "services[0].storage",
            "'ceph' is not one of 'iscsi', 'nfs', 'local-hostpath', 'proxmox-lvm' or 'local-disk'",
        ),
        at(9, 11, "services[1].name", f"'Wiki' is not {DNS_LABEL}"),
        at(16, 16, "settings.pushgateway", f"'ftp://x' is not {URL}"),
    ]


def test_policy_problems_are_all_reported_sorted_by_line() -> None:
    # Found in the order: time zone, services[0], services[1].retention, then the duplicate
    # name (checked last, across services) which sits between the two service lines.
    text = catalog(
        plus(NOTES, 'cadence: "0 0 30 2 *"'),
        plus(NOTES, "retention: 0 copies"),
        head=MINIMAL_HEAD.replace("Etc/UTC", "Europe/Atlantis"),
    )
    assert errors_of(text) == [
        at(3, 13, "settings.timezone", "unknown IANA time zone 'Europe/Atlantis'"),
        at(
            13,
            14,
            "services[0].cadence",
            "the schedule never runs (or runs less than once in 28 years)",
        ),
        at(
            14,
            11,
            "services[1].name",
            "duplicate service name 'notes' (first defined at services[0])",
        ),
        at(20, 16, "services[1].retention", "retention must keep at least one backup"),
    ]


def test_schema_and_policy_problems_are_reported_together() -> None:
    text = catalog(
        NOTES.replace("storage: iscsi", "storage: ceph"),
        plus(NOTES.replace("notes", "wiki"), 'cadence: "0 0 30 2 *"'),
    )
    assert errors_of(text) == [
        at(
            9,
            14,
            "services[0].storage",
            "'ceph' is not one of 'iscsi', 'nfs', 'local-hostpath', 'proxmox-lvm' or 'local-disk'",
        ),
        at(
            19,
            14,
            "services[1].cadence",
            "the schedule never runs (or runs less than once in 28 years)",
        ),
    ]


# --- known defects -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        pytest.param(
            catalog(NOTES.replace("name: notes", "name:")), 7, "services[0].name", id="name"
        ),
        pytest.param(
            catalog(NOTES.replace("namespace: notes", "namespace:")),
            8,
            "services[0].namespace",
            id="namespace",
        ),
    ],
)
def test_empty_value_is_located_on_its_own_line(text: str, line: int, path: str) -> None:
    [problem] = errors_of(text)
    assert problem.startswith(f"{SOURCE}:{line}:")
    assert f": {path}: " in problem


def test_offsite_exclusion_typo_gets_a_suggestion() -> None:
    lines = errors_of(catalog(plus(NOTES, "offsite: {exclude: scratch data}")))
    assert (
        at(  # the unknown key itself
            13,
            15,
            "services[0].offsite.exclude",
            "unknown field 'exclude'; did you mean 'excluded'?",
        )
        in lines
    )


def test_bad_default_cadence_is_reported_once() -> None:
    head = MINIMAL_HEAD.replace(
        "services:", "  defaults:\n    churn:\n      low: {cadence: 5h, retention: 30d}\nservices:"
    )
    assert errors_of(catalog(NOTES, head=head)) == [
        at(
            8,
            22,
            "settings.defaults.churn.low.cadence",
            "'5h': every N hours needs N to divide 24 (1, 2, 3, 4, 6, 8, 12, 24)",
        )
    ]


# --- the command line ----------------------------------------------------------------------

ONE_PROBLEM = catalog(NOTES.replace("storage: iscsi", "storage: ceph"))
TWO_PROBLEMS = catalog(plus(NOTES.replace("storage: iscsi", "storage: ceph"), "retension: 30d"))


@pytest.mark.parametrize("mode", [(), ("--check",)], ids=["write", "check"])
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            ONE_PROBLEM,
            [
                "services.yaml:9:14: services[0].storage: 'ceph' is not one of 'iscsi', 'nfs', "
                "'local-hostpath', 'proxmox-lvm' or 'local-disk'",
                "homeops_gen: 1 problem; nothing was written",
            ],
            id="one-problem",
        ),
        pytest.param(
            TWO_PROBLEMS,
            [
                "services.yaml:9:14: services[0].storage: 'ceph' is not one of 'iscsi', 'nfs', "
                "'local-hostpath', 'proxmox-lvm' or 'local-disk'",
                "services.yaml:13:5: services[0].retension: unknown field 'retension'; "
                "did you mean 'retention'?",
                "homeops_gen: 2 problems; nothing was written",
            ],
            id="two-problems",
        ),
    ],
)
def test_cli_rejects_bad_catalog_and_leaves_out_untouched(
    project: Callable[[str], Path],
    run_cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    bad: str,
    expected: list[str],
    mode: tuple[str, ...],
) -> None:
    folder = project(SMALL_CATALOG)
    monkeypatch.chdir(folder)
    assert run_cli().code == 0
    before = snapshot_of(folder / "out")
    assert before  # the valid catalog generated something to protect

    (folder / "services.yaml").write_text(bad, encoding="utf-8")
    result = run_cli(*mode)

    assert result.code == 2
    assert result.err.splitlines() == expected
    assert result.out == ""
    assert snapshot_of(folder / "out") == before


def test_cli_creates_no_out_folder_for_bad_catalog(
    project: Callable[[str], Path],
    run_cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = project(ONE_PROBLEM)
    monkeypatch.chdir(folder)
    assert run_cli().code == 2
    assert not (folder / "out").exists()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("version: homeops/v1\nsettings: [\n", id="yaml-error"),
        pytest.param(TWO_PROBLEMS, id="schema-error"),
        pytest.param(catalog(plus(NOTES, 'cadence: "0 0 30 2 *"')), id="policy-error"),
        pytest.param("- a\n- b\n", id="top-level-list"),
        pytest.param("", id="empty"),
        pytest.param(catalog(plus(NOTES, "? [a, b]", ": 1")), id="complex-key"),
        pytest.param(catalog(NOTES.replace("notes-data", "!!python/object:os.system x")), id="tag"),
    ],
)
def test_bad_input_exits_2_without_traceback(project: Callable[[str], Path], text: str) -> None:
    folder = project(text)
    result = run_module(cwd=folder)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err.startswith("services.yaml:")
    assert result.err.splitlines()[-1].endswith("; nothing was written")
    assert result.out == ""
    assert not (folder / "out").exists()


@pytest.mark.parametrize("bad", ["\u202e", "\u2066", "\u200f"])
def test_bidirectional_controls_in_free_text_are_refused(bad: str) -> None:
    """They would reorder what a reader of the generated docs sees (Trojan Source)."""
    text = catalog(
        NOTES.replace("  engine: sqlite\n", f'  engine: sqlite\n  description: "a{bad}b"\n')
    )
    (message,) = errors_of(text)
    assert "services[0].description" in message and "bidirectional" in message


def test_non_utf8_catalog_exits_2(project: Callable[[str], Path]) -> None:
    folder = project("")
    (folder / "services.yaml").write_bytes(b"version: homeops/v1\n\xff\xfe\n")
    result = run_module(cwd=folder)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.splitlines() == [
        "services.yaml:2:1: not UTF-8 text: byte 0xff",
        "homeops_gen: 1 problem; nothing was written",
    ]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda folder: None, "No such file or directory", id="missing"),
        pytest.param(
            lambda folder: (folder / "gone.yaml").mkdir(), "Is a directory", id="directory"
        ),
    ],
)
def test_unreadable_catalog_path_exits_2_naming_it(
    tmp_path: Path, make: Callable[[Path], object], reason: str
) -> None:
    make(tmp_path)
    result = run_module("--catalog", "gone.yaml", cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.splitlines() == [
        f"gone.yaml: cannot read: {reason}",
        "homeops_gen: 1 problem; nothing was written",
    ]
    assert not (tmp_path / "out").exists()
