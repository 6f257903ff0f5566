"""The nodes' iSCSI hardening, run for real against a node's files and a stand-in iscsiadm.

The stand-in keeps node records in a JSON file and answers as open-iscsi's iscsiadm does:
``-m node`` exits 21 with no records, ``-m node -o show`` prints each record between
``# BEGIN RECORD`` and ``# END RECORD`` as ``key = value`` lines, ``-o update -n K -v V``
sets a key in every record. The iscsid.conf is open-iscsi's shipped layout: the timeouts set
to their defaults, the digests commented out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import REPO, require_tool

ISCSI = REPO / "out" / "iscsi"
HARDENED = {
    "node.session.timeo.replacement_timeout": "300",
    "node.conn[0].timeo.noop_out_interval": "10",
    "node.conn[0].timeo.noop_out_timeout": "15",
    "node.conn[0].iscsi.HeaderDigest": "CRC32C,None",
    "node.conn[0].iscsi.DataDigest": "CRC32C,None",
}
SHIPPED = textwrap.dedent(
    """\
    # iscsid.conf as open-iscsi ships it (excerpt)
    node.startup = manual
    node.session.timeo.replacement_timeout = 120
    node.conn[0].timeo.login_timeout = 15
    node.conn[0].timeo.noop_out_interval = 5
    node.conn[0].timeo.noop_out_timeout = 5
    # To enable CRC32C digest checking for the header and/or data part of
    # iSCSI PDUs, uncomment the following lines:
    #node.conn[0].iscsi.HeaderDigest = CRC32C,None
    #node.conn[0].iscsi.DataDigest = CRC32C,None
    node.session.iscsi.FastAbort = Yes
    """
)
STAND_IN = textwrap.dedent(
    """\
    import json, sys
    store = sys.argv[1]
    args = sys.argv[2:]
    records = json.load(open(store))
    if args[:2] != ["-m", "node"]:
        sys.exit(7)
    if not records:
        print("iscsiadm: No records found", file=sys.stderr)
        sys.exit(21)
    if args[2:] == [] :
        for r in records:
            print(f"10.0.10.15:3260,1 {r['node.name']}")
    elif args[2:] == ["-o", "show"]:
        for r in records:
            print("# BEGIN RECORD 2.1.8")
            for k, v in r.items():
                print(f"{k} = {v}")
            print("# END RECORD")
    elif args[2:4] == ["-o", "update"] and args[4] == "-n" and args[6] == "-v":
        for r in records:
            r[args[5]] = args[7]
        json.dump(records, open(store, "w"))
    else:
        sys.exit(7)
    """
)


@pytest.fixture
def node(tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / "iscsid.conf"
    conf.write_text(SHIPPED, encoding="utf-8")
    store = tmp_path / "records.json"
    defaults = {
        "node.session.timeo.replacement_timeout": "120",
        "node.conn[0].timeo.noop_out_interval": "5",
        "node.conn[0].timeo.noop_out_timeout": "5",
        "node.conn[0].iscsi.HeaderDigest": "None",
        "node.conn[0].iscsi.DataDigest": "None",
    }
    records = [
        {"node.name": f"iqn.2005-10.org.freenas.ctl:{name}", **defaults}
        for name in ("vaultwarden", "redis")
    ]
    store.write_text(json.dumps(records), encoding="utf-8")
    program = tmp_path / "iscsiadm"
    program.write_text(
        f'#!/bin/sh\nexec {sys.executable} {tmp_path / "stand_in.py"} {store} "$@"\n'
    )
    program.chmod(0o755)
    (tmp_path / "stand_in.py").write_text(STAND_IN, encoding="utf-8")
    return {"ISCSID_CONF": str(conf), "ISCSIADM": str(program), "STORE": str(store)}


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("bash"), str(ISCSI / script)],
        env={"PATH": "/usr/bin:/bin", **{k: v for k, v in env.items() if k != "STORE"}},
        capture_output=True,
        text=True,
        check=False,
    )


def conf_values(path: Path) -> dict[str, str]:
    """iscsid's reading: the last uncommented ``key = value`` of each key."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_a_shipped_node_drifts_on_every_setting_and_record(node: dict[str, str]) -> None:
    checked = run("check-iscsi-hardening.sh", node)
    assert checked.returncode == 1, checked.stderr
    lines = checked.stdout.splitlines()
    assert len([line for line in lines if "iscsid.conf" in line]) == len(HARDENED)
    assert len([line for line in lines if "node record" in line]) == 2 * len(HARDENED)
    assert "drift: node record iqn.2005-10.org.freenas.ctl:redis: " in checked.stdout


def test_apply_hardens_the_file_and_the_records_and_the_check_agrees(
    node: dict[str, str],
) -> None:
    applied = run("apply-iscsi-hardening.sh", node)
    assert applied.returncode == 0, applied.stderr
    conf = Path(node["ISCSID_CONF"])
    values = conf_values(conf)
    assert {k: values[k] for k in HARDENED} == HARDENED
    assert values["node.startup"] == "manual" and values["node.session.iscsi.FastAbort"] == "Yes"
    for record in json.loads(Path(node["STORE"]).read_text()):
        assert {k: record[k] for k in HARDENED} == HARDENED
    checked = run("check-iscsi-hardening.sh", node)
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout == "iscsi hardening: no drift\n"
    before = conf.read_bytes()
    assert run("apply-iscsi-hardening.sh", node).returncode == 0
    assert conf.read_bytes() == before  # idempotent


def test_a_node_with_no_records_yet_is_hardened_in_its_file(node: dict[str, str]) -> None:
    Path(node["STORE"]).write_text("[]", encoding="utf-8")
    applied = run("apply-iscsi-hardening.sh", node)
    assert applied.returncode == 0, applied.stderr
    assert "no node records yet" in applied.stdout
    assert run("check-iscsi-hardening.sh", node).returncode == 0


def test_one_changed_record_is_reported(node: dict[str, str]) -> None:
    assert run("apply-iscsi-hardening.sh", node).returncode == 0
    store = Path(node["STORE"])
    records = json.loads(store.read_text())
    records[1]["node.conn[0].timeo.noop_out_timeout"] = "5"
    store.write_text(json.dumps(records))
    checked = run("check-iscsi-hardening.sh", node)
    assert checked.returncode == 1
    assert checked.stdout == (
        "drift: node record iqn.2005-10.org.freenas.ctl:redis: "
        "node.conn[0].timeo.noop_out_timeout is '5', want '15'\n"
    )


def test_cloud_init_installs_the_apply_script_and_runs_it() -> None:
    text = (ISCSI / "cloud-init.yaml").read_text()
    assert text.startswith("#cloud-config\n")  # cloud-init reads user-data by this line
    data = yaml.safe_load(text)
    (written,) = data["write_files"]
    assert written["content"] == (ISCSI / "apply-iscsi-hardening.sh").read_text()
    assert written["permissions"] == "0755"
    assert data["runcmd"] == [[written["path"]]]
    fragment = (ISCSI / "iscsid.conf.fragment").read_text()
    assert {
        k: v for k, v in (line.split(" = ") for line in fragment.splitlines() if " = " in line)
    } == HARDENED
