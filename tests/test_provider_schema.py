"""The generated Terraform against the hashicorp/kubernetes provider's own schema.

The schemas (tests/data/kubernetes-provider/*.json, see the README there) are committed, so
nothing here is skipped. The first tests validate every generated module; the others mutate
valid configurations to show that the validator does report each kind of mistake.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from conftest import REPO
from provider_schema import (
    SCHEMA_DIR,
    Problem,
    admits,
    available_schemas,
    parse_tf,
    validate_doc,
    validate_module,
    validate_text,
)

SCHEMAS = {schema.version: schema for schema in available_schemas()}
NEWEST_2X = "2.38.0"
OLDEST = "2.30.0"
NEWEST_3X = "3.4.0"

GENERATED_ROOTS = [
    REPO / "out" / "terraform",
    *sorted(REPO.glob("tests/snapshots/**/out/terraform")),
]
MODULES = sorted({path.parent for root in GENERATED_ROOTS for path in root.rglob("*.tf")})
POD = "spec[0].job_template[0].spec[0].template[0].spec[0]"
CONTAINER = f"{POD}.container[0]"


def _id(folder: Path) -> str:
    return str(folder.relative_to(REPO))


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


def test_schema_data_is_committed_for_both_major_versions() -> None:
    assert set(SCHEMAS) == {OLDEST, NEWEST_2X, NEWEST_3X}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        source = data["extracted_from"]
        assert path.stem == data["provider_version"]
        assert source["license"] == "MPL-2.0"
        assert source["package"] in ("cdktf-cdktf-provider-kubernetes", "cdktn-provider-kubernetes")
        assert "kubernetes_cron_job_v1" in data["resource_types"]
    assert (SCHEMA_DIR / "README.md").is_file() and (SCHEMA_DIR / "extract.py").is_file()


def test_every_kubernetes_type_the_repository_writes_is_in_the_data() -> None:
    used = set()
    for root in [*GENERATED_ROOTS, REPO / "templates"]:
        for path in [*root.rglob("*.tf"), *root.rglob("*.tf.j2")]:
            text = path.read_text(encoding="utf-8")
            used.update(re.findall(r'^\s*(resource|data)\s+"(kubernetes_\w+)"', text, re.M))
    assert ("resource", "kubernetes_cron_job_v1") in used
    for schema in SCHEMAS.values():
        for kind, type_ in sorted(used):
            block, _ = schema.lookup(kind, type_)
            assert block is not None, f"{kind} {type_} missing from {schema.version}: re-extract"


# --------------------------------------------------------------------------------------------
# (a) Every generated module validates
# --------------------------------------------------------------------------------------------


def test_the_generated_modules_are_found() -> None:
    names = {_id(folder) for folder in MODULES}
    assert "out/terraform/modules/nfs-backup-volume" in names
    assert any(name.startswith("tests/snapshots/") for name in names)
    assert sum(1 for folder in MODULES if (folder / "backup.tf").is_file()) >= 2


@pytest.mark.parametrize("folder", MODULES, ids=_id)
def test_generated_module_matches_the_provider_schema(folder: Path) -> None:
    problems = validate_module(folder, relative_to=REPO)
    assert problems == [], "\n".join(map(str, problems))


def test_generated_constraint_admits_the_extracted_2x_and_3x_schemas() -> None:
    """The stacks pin `>= 2.30`: the oldest and newest 2.x and the newest 3.x are checked."""
    doc = parse_tf((REPO / "out/terraform/modules/nfs-backup-volume/versions.tf").read_text())
    (required,) = doc["terraform"][0]["required_providers"]
    constraint = str(required["kubernetes"]["version"]).strip('"')
    assert [v for v in SCHEMAS if admits(constraint, v)] == [OLDEST, NEWEST_2X, NEWEST_3X]


# --------------------------------------------------------------------------------------------
# (b) The validator fails when it should
# --------------------------------------------------------------------------------------------

VALID = textwrap.dedent(
    """\
    resource "kubernetes_cron_job_v1" "backup" {
      metadata {
        name      = "notes-backup"
        namespace = "notes"
        labels = {
          "app.kubernetes.io/name" = "notes"
        }
      }
      spec {
        schedule                  = "48 2 * * *"
        concurrency_policy        = "Forbid"
        starting_deadline_seconds = 3600
        job_template {
          metadata {}
          spec {
            backoff_limit = 1
            template {
              metadata {}
              spec {
                restart_policy = "Never"
                container {
                  name    = "backup"
                  image   = "docker.io/library/busybox:1.37"
                  command = ["/bin/sh", "-c", "echo ok"]
                  env {
                    name  = "PORT"
                    value = "3306"
                  }
                  resources {
                    requests = {
                      cpu = "50m"
                    }
                  }
                  volume_mount {
                    name       = "backup"
                    mount_path = "/backup"
                    read_only  = false
                  }
                }
                volume {
                  name = "backup"
                  persistent_volume_claim {
                    claim_name = module.backup_volume.claim_name
                  }
                }
              }
            }
          }
        }
      }
    }
    """
)


def _problems(text: str, version: str = NEWEST_2X) -> list[Problem]:
    return validate_text(text, SCHEMAS[version], "main.tf")


def _mutate(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the text exactly once"
    return text.replace(old, new)


def _only(problems: list[Problem]) -> tuple[str, str]:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0].path, problems[0].message


@pytest.mark.parametrize("version", [OLDEST, NEWEST_2X, NEWEST_3X])
def test_the_valid_base_configuration_passes(version: str) -> None:
    assert _problems(VALID, version) == []


def test_a_misspelled_argument_is_reported() -> None:
    text = _mutate("concurrency_policy ", "concurency_policy ")
    path, message = _only(_problems(text))
    assert path == "spec[0].concurency_policy"
    assert message == "unknown argument concurency_policy (did you mean concurrency_policy?)"


def test_a_misspelled_block_is_reported() -> None:
    path, message = _only(_problems(_mutate("volume_mount {", "volume_mounts {")))
    assert (path, message) == (
        f"{CONTAINER}.volume_mounts",
        "unknown block volume_mounts (did you mean volume_mount?)",
    )


def test_a_removed_required_argument_is_reported() -> None:
    """container.name is required by the schema (image, for one, is optional)."""
    text = _mutate('  name    = "backup"\n', "")
    path, message = _only(_problems(text))
    assert (path, message) == (f"{CONTAINER}.name", "missing required argument name")
    assert _problems(_mutate('  image   = "docker.io/library/busybox:1.37"\n', "")) == []


def test_a_removed_required_block_is_reported() -> None:
    """job_template needs its (empty) metadata block: min_items = 1."""
    text = _mutate(
        "      metadata {}\n      spec {\n        backoff", "      spec {\n        backoff"
    )
    path, message = _only(_problems(text))
    assert (path, message) == (
        "spec[0].job_template[0].metadata",
        "missing required block metadata",
    )


def test_a_null_required_argument_is_reported() -> None:
    path, message = _only(
        _problems(_mutate('schedule                  = "48 2 * * *"', "schedule = null"))
    )
    assert (path, message) == ("spec[0].schedule", "required argument schedule is null")


def test_a_block_written_as_an_argument_is_reported() -> None:
    text = _mutate("persistent_volume_claim {", "persistent_volume_claim = {")
    path, message = _only(_problems(text))
    assert path == f"{POD}.volume[0].persistent_volume_claim"
    assert message == (
        "persistent_volume_claim is a block, written as an argument: "
        "write persistent_volume_claim { ... }"
    )


def test_an_argument_written_as_a_block_is_reported() -> None:
    path, message = _only(_problems(_mutate("requests = {", "requests {")))
    assert path == f"{CONTAINER}.resources[0].requests"
    assert message.startswith("requests is an argument (map(string)), written as a block")


def test_a_string_where_a_number_is_needed_is_reported() -> None:
    text = _mutate("starting_deadline_seconds = 3600", 'starting_deadline_seconds = "3600"')
    path, message = _only(_problems(text))
    assert path == "spec[0].starting_deadline_seconds"
    assert message == 'expected number, got string "3600" (Terraform would convert it)'
    text = _mutate("backoff_limit = 1", 'backoff_limit = "once"')
    assert "(not a number: Terraform rejects it)" in _only(_problems(text))[1]


def test_other_literal_type_mismatches_are_reported() -> None:
    cases = {
        ("read_only  = false", 'read_only  = "no"'): (
            f"{CONTAINER}.volume_mount[0].read_only",
            'expected bool, got string "no" (not a bool: Terraform rejects it)',
        ),
        ('value = "3306"', "value = 3306"): (
            f"{CONTAINER}.env[0].value",
            "expected string, got number 3306 (Terraform would convert it)",
        ),
        ('command = ["/bin/sh", "-c", "echo ok"]', 'command = "/bin/sh -c"'): (
            f"{CONTAINER}.command",
            'expected list(string), got string "/bin/sh -c"',
        ),
        ('cpu = "50m"', "cpu = 1"): (
            f'{CONTAINER}.resources[0].requests["cpu"]',
            "expected string, got number 1 (Terraform would convert it)",
        ),
        ('"app.kubernetes.io/name" = "notes"', '"app.kubernetes.io/name" = ["notes"]'): (
            'metadata[0].labels["app.kubernetes.io/name"]',
            'expected string, got tuple ["notes"] (Terraform rejects it)',
        ),
    }
    for (old, new), expected in cases.items():
        assert _only(_problems(_mutate(old, new))) == expected, new


def test_expressions_are_accepted_for_any_type() -> None:
    for new in [
        "starting_deadline_seconds = var.deadline",
        'starting_deadline_seconds = "${var.deadline}"',
        "starting_deadline_seconds = max(60, var.deadline)",
        "starting_deadline_seconds = var.fast ? 60 : 3600",
    ]:
        assert _problems(_mutate("starting_deadline_seconds = 3600", new)) == [], new
    text = _mutate('value = "3306"', 'value = "${var.port}/tcp"')
    assert _problems(text) == []


def test_too_many_blocks_and_computed_only_attributes_are_reported() -> None:
    text = _mutate(
        "      metadata {}\n      spec {", "      metadata {}\n      metadata {}\n      spec {"
    )
    assert _only(_problems(text)) == (
        "spec[0].job_template[0].metadata",
        "metadata: 2 blocks, at most 1 allowed",
    )
    text = _mutate('namespace = "notes"', 'namespace = "notes"\n    uid = "1234"')
    assert _only(_problems(text)) == ("metadata[0].uid", "uid is computed-only: it cannot be set")


def test_dynamic_blocks_are_checked_as_their_block_type() -> None:
    dynamic = """\
              dynamic "env" {
                for_each = var.env
                content {
                  name  = env.key
                  valeu = env.value
                }
              }
              resources {"""
    text = _mutate("              resources {", dynamic)
    assert _only(_problems(text)) == (
        f"{CONTAINER}.dynamic.env.content.valeu",
        "unknown argument valeu (did you mean value?)",
    )


def test_unknown_types_are_reported() -> None:
    text = VALID.replace("kubernetes_cron_job_v1", "kubernetes_cron_job_v9")
    assert _only(_problems(text))[1] == (
        "resource type kubernetes_cron_job_v9 does not exist in hashicorp/kubernetes"
    )
    secret = 'data "kubernetes_secret_v1" "x" {\n  metadata {\n    name = "x"\n  }\n}\n'
    assert "re-run tests/data/kubernetes-provider/extract.py" in _only(_problems(secret))[1]


def test_a_mutated_generated_file_reports_every_mistake() -> None:
    """The four mutations at once, in a real generated cron job."""
    paths = sorted(REPO.glob("out/terraform/stacks/*/backup.tf"))
    assert paths
    # Each mutation once, in the stack's first cron job (a stack holds its drill's too).
    text = paths[0].read_text(encoding="utf-8")
    mutated, count = re.subn(r"\bconcurrency_policy(\s+=)", r"concurrency_polcy\1", text, count=1)
    assert count == 1
    mutated, count = re.subn(r'(\n\s*container \{\n)\s*name\s*=\s*"[^"]*"\n', r"\1", mutated)
    assert count >= 1
    mutated, count = re.subn(r"(\n\s*)metadata \{\}", r"\1metadata = {}", mutated, count=1)
    assert count == 1
    mutated, count = re.subn(
        r"starting_deadline_seconds(\s+)= (\d+)",
        r'starting_deadline_seconds\1= "\2"',
        mutated,
        count=1,
    )
    assert count == 1
    doc = parse_tf(mutated)
    for schema in SCHEMAS.values():
        found = {(p.path, p.message.split(" (")[0]) for p in validate_doc(doc, schema, "x.tf")}
        assert found >= {
            ("spec[0].concurrency_polcy", "unknown argument concurrency_polcy"),
            (f"{CONTAINER}.name", "missing required argument name"),
            (
                "spec[0].job_template[0].metadata",
                "metadata is a block, written as an argument: write metadata { ... }",
            ),
            ("spec[0].starting_deadline_seconds", 'expected number, got string "3600"'),
        }, schema.version


# --------------------------------------------------------------------------------------------
# Versions: each module is checked against the schemas its constraint admits
# --------------------------------------------------------------------------------------------


def _module(tmp_path: Path, constraint: str | None, body: str) -> Path:
    (tmp_path / "main.tf").write_text(body, encoding="utf-8")
    if constraint is not None:
        (tmp_path / "versions.tf").write_text(
            "terraform {\n  required_providers {\n    kubernetes = {\n"
            f'      source  = "hashicorp/kubernetes"\n      version = "{constraint}"\n'
            "    }\n  }\n}\n",
            encoding="utf-8",
        )
    return tmp_path


def test_an_argument_newer_than_the_oldest_admitted_version_is_reported(tmp_path: Path) -> None:
    """volume_mount.sub_path_expr is in 2.38.0 and 3.4.0, not in 2.30.0."""
    body = _mutate('mount_path = "/backup"', 'mount_path = "/backup"\n sub_path_expr = "$(X)"')
    problems = validate_module(_module(tmp_path, ">= 2.30", body))
    assert [(p.provider_version, p.path.rsplit(".", 1)[1]) for p in problems] == [
        (OLDEST, "sub_path_expr")
    ]
    assert validate_module(_module(tmp_path, "~> 2.38", body)) == []


def test_a_module_without_a_provider_constraint_is_reported(tmp_path: Path) -> None:
    (problem,) = validate_module(_module(tmp_path, None, VALID))
    assert problem.message == (
        "kubernetes resources but no version constraint for hashicorp/kubernetes"
    )
    (problem,) = validate_module(_module(tmp_path, "~> 1.13", VALID))
    assert problem.message.startswith("~> 1.13 admits none of the extracted versions")


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        (">= 2.30", "2.30.0", True),
        (">= 2.30", "3.4.0", True),
        (">= 2.30", "2.29.9", False),
        ("~> 2.30", "2.38.0", True),
        ("~> 2.30", "3.4.0", False),
        ("~> 2.30.0", "2.38.0", False),
        ("~> 2.30.0", "2.30.4", True),
        (">= 2.30, < 3.0", "3.4.0", False),
        ("2.38.0", "2.38.0", True),
        ("!= 2.38.0", "2.38.0", False),
        ("~> 3", "3.4.0", True),
    ],
)
def test_version_constraints(constraint: str, version: str, expected: bool) -> None:
    assert admits(constraint, version) is expected
