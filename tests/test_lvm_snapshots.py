"""The PVE host's LVM thin snapshots, run for real against stand-ins of LVM and kubectl.

The stand-ins keep one JSON state (the volume group's LVs, the cluster's objects) and record
every call. They answer as the real programs do, from their documentation:

- ``lvs --reportformat json [-o f1,f2] [--units b] VG|VG/LV`` prints LVM 2.03's JSON report,
  ``{"report": [{"lv": [{...}]}]}`` with every field a string (``data_percent`` ``""`` where
  it does not apply), only the ``-o`` fields, in their order; an unknown field or a missing
  VG/LV is an error (exit 5). ``lv_attr`` is the ten characters of lvs(8): type (``t`` thin
  pool, ``V`` thin volume), permissions, allocation, fixed minor, state (``a``), device open
  (``o``), target type, zeroing, health, activation skip (``k``).
- ``lvcreate -s -n NAME VG/ORIGIN`` of a thin LV without a size is a thin snapshot in the
  origin's pool, inactive with the activation-skip flag set (``-k n`` /
  ``--setactivationskip n`` clears it); an existing name is an error.
- ``lvremove VG/LV`` asks before removing an active LV unless ``-y``/``-f``; ``lvrename VG
  OLD NEW`` (or ``VG/OLD NEW``) renames, and the snapshots' ``origin`` follows; ``lvchange
  -ay`` does not activate an LV flagged to skip activation unless ``-K``.
- ``kubectl get pv | pods -n NS | replicaset|deployment|statefulset NAME -n NS -o json`` and
  ``kubectl scale KIND/NAME -n NS --replicas=N``; scaling to 0 deletes the workload's pods
  and, like the CSI driver detaching the disk, closes the LV unless the test keeps it open.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePushgateway, parse_samples

from homeops_gen import build_plan, render_plan
from homeops_gen.catalog import load_catalog_text
from homeops_gen.registry import registered_generators

KUBECONFIG = "/etc/homeops/kubeconfig"
NOTES = "vm-9999-pvc-0a1b2c3d-0000-4000-8000-000000000001"
CHAT = "vm-9999-pvc-0a1b2c3d-0000-4000-8000-000000000002"
LOGS = "vm-9999-pvc-0a1b2c3d-0000-4000-8000-000000000003"
ORPHAN = "vm-9999-pvc-0a1b2c3d-0000-4000-8000-000000000004"
ELSEWHERE = "vm-9999-pvc-0a1b2c3d-0000-4000-8000-000000000005"
STAMP = "%Y%m%dT%H%M%SZ"

STAND_IN = textwrap.dedent(
    r"""
    import json, os, sys
    state_path = os.environ["LVM_STATE"]
    state = json.load(open(state_path))
    tool, args = sys.argv[1], sys.argv[2:]
    state["calls"].append([tool, *args])

    def save():
        json.dump(state, open(state_path, "w"), indent=1)

    def fail(message, code=5):
        save()
        print(message, file=sys.stderr)
        sys.exit(code)

    def find(name):
        for lv in state["lvs"]:
            if lv["name"] == name:
                return lv
        return None

    def split_path(path):
        vg, _, name = path.partition("/")
        if vg != state["vg"]:
            fail(f'  Volume group "{vg}" not found')
        return name

    FIELDS = ("lv_name", "vg_name", "pool_lv", "origin", "lv_attr", "lv_size",
              "data_percent", "metadata_percent")

    def attr(lv):
        kind = "t" if lv["kind"] == "pool" else ("V" if lv["kind"] == "thin" else "-")
        thin_target = lv["kind"] in ("pool", "thin")
        return (kind + "wi-" + ("a" if lv["active"] else "-") + ("o" if lv["open"] else "-")
                + ("t" if thin_target else "-") + ("z" if lv["kind"] == "pool" else "-")
                + "-" + ("k" if lv["skip"] else "-"))

    def value(lv, field):
        if field == "lv_name": return lv["name"]
        if field == "vg_name": return state["vg"]
        if field == "pool_lv": return lv.get("pool", "")
        if field == "origin": return lv.get("origin", "")
        if field == "lv_attr": return attr(lv)
        if field == "lv_size": return f"{lv.get('size', 1073741824)}B"
        if field == "data_percent":
            return f"{lv['data']:.2f}" if lv["kind"] in ("pool", "thin") and lv["active"] else ""
        if field == "metadata_percent":
            return f"{lv['meta']:.2f}" if lv["kind"] == "pool" else ""

    def lvs():
        fields = ["lv_name", "vg_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent"]
        json_format, names, i = False, [], 0
        while i < len(args):
            a = args[i]
            if a == "-o": fields = args[i + 1].split(","); i += 2; continue
            if a in ("--reportformat",): json_format = args[i + 1] == "json"; i += 2; continue
            if a == "--units": i += 2; continue
            if a.startswith("-"): fail(f"lvs: unknown option {a}", 3)
            names.append(a); i += 1
        for f in fields:
            if f not in FIELDS: fail(f"  Unrecognised field: {f}", 5)
        if not json_format: fail("stand-in: only --reportformat json", 3)
        selected = []
        for n in names:
            name = split_path(n)
            if name:
                lv = find(name)
                if lv is None: fail(f'  Failed to find logical volume "{n}"')
                selected.append(lv)
            else:
                selected.extend(state["lvs"])
        rows = [", ".join(f'"{f}":{json.dumps(value(lv, f))}' for f in fields) for lv in selected]
        body = ",\n".join("                  {" + r + "}" for r in rows)
        print('  {\n      "report": [\n          {\n              "lv": [\n' + body
              + '\n              ]\n          }\n      ]\n  }')

    def lvcreate():
        name, origin, skip, i = None, None, True, 0
        while i < len(args):
            a = args[i]
            if a == "-n": name = args[i + 1]; i += 2; continue
            if a in ("-k", "--setactivationskip"): skip = args[i + 1] == "y"; i += 2; continue
            if a in ("-kn", "-ky"): skip = a == "-ky"; i += 1; continue
            if a == "-s": i += 1; continue
            if a.startswith("-"): fail(f"lvcreate stand-in: option {a} not modelled", 3)
            origin = split_path(a); i += 1
        source = find(origin)
        if source is None: fail(f'  Failed to find logical volume "{state["vg"]}/{origin}"')
        if source["kind"] != "thin": fail("stand-in: only thin snapshots are modelled", 3)
        if find(name) is not None:
            fail(f'  Logical Volume "{name}" already exists in volume group "{state["vg"]}"')
        if origin in state.get("fail_create", []): fail("  Failed to create thin snapshot")
        state["lvs"].append({"name": name, "kind": "thin", "pool": source["pool"],
                             "origin": origin, "active": not skip, "open": False,
                             "skip": skip, "data": source["data"]})
        save()
        print(f'  Logical volume "{name}" created.')

    def lvremove():
        force = any(a in ("-y", "-f", "--yes", "--force") for a in args)
        for a in args:
            if a.startswith("-"): continue
            lv = find(split_path(a))
            if lv is None: fail(f'  Failed to find logical volume "{a}"')
            if lv["open"]: fail(f'  Logical volume {a} in use.')
            if lv["active"] and not force:
                print(f"Do you really want to remove active logical volume {a}? [y/n]: ", end="")
                if sys.stdin.readline().strip() != "y": fail("  Logical volume not removed.")
            state["lvs"].remove(lv)
            for other in state["lvs"]:
                if other.get("origin") == lv["name"]: other["origin"] = ""
            print(f'  Logical volume "{lv["name"]}" successfully removed.')
        save()

    def lvrename():
        plain = [a for a in args if not a.startswith("-")]
        if len(plain) == 3: old, new = split_path(plain[0] + "/" + plain[1]), plain[2]
        else: old, new = split_path(plain[0]), plain[1].rpartition("/")[2]
        lv = find(old)
        vg = state["vg"]
        if lv is None: fail(f'  Existing logical volume "{old}" not found in volume group "{vg}"')
        if find(new) is not None:
            fail(f'  Logical Volume "{new}" already exists in volume group "{vg}"')
        lv["name"] = new
        for other in state["lvs"]:
            if other.get("origin") == old: other["origin"] = new
        save()
        print(f'  Renamed "{old}" to "{new}" in volume group "{state["vg"]}"')

    def lvchange():
        ignore_skip = "-K" in args or "--ignoreactivationskip" in args
        activate = "-ay" in args
        for a in args:
            if a.startswith("-"): continue
            lv = find(split_path(a))
            if lv is None: fail(f'  Failed to find logical volume "{a}"')
            if activate and (ignore_skip or not lv["skip"]): lv["active"] = True
        save()

    def kube_get(kind, namespace, name):
        plural = {"pv": "pv", "persistentvolumes": "pv", "pods": "pods", "pod": "pods",
                  "replicaset": "replicasets", "replicasets": "replicasets", "rs": "replicasets",
                  "deployment": "deployments", "deployments": "deployments",
                  "statefulset": "statefulsets", "statefulsets": "statefulsets"}[kind]
        objects = state["k8s"][plural]
        if plural != "pv": objects = [o for o in objects if o["metadata"]["namespace"] == namespace]
        if name is None:
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
            return
        for o in objects:
            if o["metadata"]["name"] == name:
                print(json.dumps(o)); return
        fail(f'Error from server (NotFound): {plural}.apps "{name}" not found', 1)

    def owned_pods(kind, name, namespace):
        owners = {(kind, name)}
        if kind == "Deployment":
            owners |= {("ReplicaSet", rs["metadata"]["name"]) for rs in state["k8s"]["replicasets"]
                       if any(r["name"] == name and r["kind"] == "Deployment"
                              for r in rs["metadata"].get("ownerReferences", []))}
        return [p for p in state["k8s"]["pods"] if p["metadata"]["namespace"] == namespace and any(
            (r["kind"], r["name"]) in owners for r in p["metadata"].get("ownerReferences", []))]

    def kubectl():
        rest, namespace, i = [], "default", 0
        while i < len(args):
            a = args[i]
            if a == "--kubeconfig": state["kubeconfigs"].append(args[i + 1]); i += 2; continue
            if a == "-n": namespace = args[i + 1]; i += 2; continue
            if a == "-o": assert args[i + 1] == "json"; i += 2; continue
            rest.append(a); i += 1
        if rest[0] == "get":
            save()
            kube_get(rest[1], namespace, rest[2] if len(rest) > 2 else None)
            return
        if rest[0] == "scale":
            kind, _, name = rest[1].partition("/")
            replicas = int(next(a for a in rest if a.startswith("--replicas=")).split("=")[1])
            if state.get("scale_fails"):
                fail(f'error: cannot scale {kind}/{name}: forbidden', 1)
            plural = {"deployment": "deployments", "statefulset": "statefulsets"}[kind]
            target = next(o for o in state["k8s"][plural] if o["metadata"]["name"] == name
                          and o["metadata"]["namespace"] == namespace)
            target["spec"]["replicas"] = replicas
            if replicas == 0:
                gone = owned_pods(target["kind"], name, namespace)
                state["k8s"]["pods"] = [p for p in state["k8s"]["pods"] if p not in gone]
                for lv in state["lvs"]:
                    if lv["name"] not in state.get("stays_open", []): lv["open"] = False
            save()
            print(f"{kind}.apps/{name} scaled")
            return
        fail(f"kubectl stand-in: {rest} not modelled", 1)

    {"lvs": lvs, "lvcreate": lvcreate, "lvremove": lvremove, "lvrename": lvrename,
     "lvchange": lvchange, "kubectl": kubectl}[tool]()
    save()
    """
)


def pv(lv: str, namespace: str, claim: str) -> dict[str, Any]:
    name = lv.split("-", 2)[2]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "csi": {
                "driver": "csi.proxmox.sinextra.dev",
                "volumeHandle": f"pve/pve1/local-lvm/{lv}",
            },
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim},
        },
    }


def owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}]


def pod(namespace: str, name: str, claim: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "ownerReferences": owners},
        "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
    }


def thin(name: str, *, pool: str = "data", origin: str = "", open_: bool = False) -> dict[str, Any]:
    snapshot = bool(origin)
    return {
        "name": name,
        "kind": "thin",
        "pool": pool,
        "origin": origin,
        "active": not snapshot,
        "open": open_,
        "skip": snapshot,
        "data": 12.5,
    }


def stamp(days_ago: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)).strftime(STAMP)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """The state of a PVE host and its cluster: the thin pool pve/data with two snapshotted
    volumes, an excluded one, one whose PV is gone, one in another pool, a VM disk."""
    return {
        "vg": "pve",
        "calls": [],
        "kubeconfigs": [],
        "lvs": [
            {"name": "root", "kind": "linear", "active": True, "open": True, "skip": False},
            {
                "name": "data",
                "kind": "pool",
                "active": True,
                "open": True,
                "skip": False,
                "data": 40.0,
                "meta": 10.0,
            },
            {
                "name": "other",
                "kind": "pool",
                "active": True,
                "open": True,
                "skip": False,
                "data": 5.0,
                "meta": 1.0,
            },
            thin("vm-100-disk-0", open_=True),
            thin(NOTES, open_=True),
            thin(CHAT, open_=True),
            thin(LOGS, open_=True),
            thin(ORPHAN),
            thin(ELSEWHERE, pool="other", open_=True),
        ],
        "k8s": {
            "pv": [
                pv(NOTES, "notes", "notes"),
                pv(CHAT, "chat", "chat-data"),
                pv(LOGS, "logs", "logs"),
                pv(ELSEWHERE, "misc", "misc"),
            ],
            "pods": [
                pod("notes", "notes-7d9f-abcde", "notes", owner("ReplicaSet", "notes-7d9f")),
                pod("chat", "chat-0", "chat-data", owner("StatefulSet", "chat")),
            ],
            "replicasets": [
                {
                    "kind": "ReplicaSet",
                    "metadata": {
                        "namespace": "notes",
                        "name": "notes-7d9f",
                        "ownerReferences": owner("Deployment", "notes"),
                    },
                }
            ],
            "deployments": [
                {
                    "kind": "Deployment",
                    "metadata": {"namespace": "notes", "name": "notes"},
                    "spec": {"replicas": 2},
                }
            ],
            "statefulsets": [
                {
                    "kind": "StatefulSet",
                    "metadata": {"namespace": "chat", "name": "chat"},
                    "spec": {"replicas": 1},
                }
            ],
        },
    }


def catalog_text(
    pushgateway: str, retention: str = "7d", cadence: str = "0 0,12 * * *", zone: str = "Etc/UTC"
) -> str:
    head = MINIMAL_HEAD.replace("timezone: Etc/UTC", f"timezone: {zone}").replace(
        "services:\n",
        f"  host_pushgateway: {pushgateway}\n"
        f"  snapshots: {{lvm: {{cadence: '{cadence}', retention: '{retention}',"
        f" min_free_percent: 15, kubeconfig: {KUBECONFIG}}}}}\n"
        "services:\n",
    )
    return head + textwrap.indent(
        textwrap.dedent(
            """\
            - {name: notes, namespace: notes, storage: proxmox-lvm, churn: low, engine: files}
            - {name: chat, namespace: chat, storage: proxmox-lvm, churn: low, engine: files}
            - {name: logs, namespace: logs, storage: proxmox-lvm, churn: high, engine: files}
            """
        ),
        "  ",
    )


def render(text: str, root: Path, *, names: tuple[str, ...] = ("lvm-snapshots",)) -> Path:
    catalog = load_catalog_text(text, "services.yaml")
    generators = [g for g in registered_generators() if g.name in names]
    for path, data in render_plan(build_plan(catalog, generators)).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


class Host:
    """The rendered script with the stand-ins on PATH and the state they share."""

    def __init__(self, tmp_path: Path, state: dict[str, Any], text: str) -> None:
        self.root = render(text, tmp_path / "out")
        self.script = self.root / "snapshots" / "lvm-pvc-snapshot.sh"
        self.state_path = tmp_path / "state.json"
        self.state_path.write_text(json.dumps(state), encoding="utf-8")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (tmp_path / "stand_in.py").write_text(STAND_IN, encoding="utf-8")
        for tool in ("lvs", "lvcreate", "lvremove", "lvrename", "lvchange", "kubectl"):
            program = bin_dir / tool
            program.write_text(
                f'#!/bin/sh\nexec {sys.executable} {tmp_path / "stand_in.py"} {tool} "$@"\n'
            )
            program.chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "LVM_STATE": str(self.state_path),
            "LVM_PVC_SNAPSHOT_LOCK": str(tmp_path / "lock"),
            "LVM_PVC_SNAPSHOT_WAIT": "3",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_tool("bash"), str(self.script), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def names(self) -> set[str]:
        return {lv["name"] for lv in self.state["lvs"]}

    def calls(self, *tools: str) -> list[list[str]]:
        return [c for c in self.state["calls"] if c[0] in tools]


@pytest.fixture
def make_host(tmp_path: Path, host: dict[str, Any], pushgateway: FakePushgateway) -> Iterator[Any]:
    require_tool("jq")
    require_tool("flock")
    require_tool("curl")

    def make(retention: str = "7d") -> Host:
        return Host(tmp_path, host, catalog_text(pushgateway.url, retention))

    yield make


def snapshots_of(names: set[str], lv: str) -> list[str]:
    return sorted(n for n in names if n.startswith(f"{lv}-snap-"))


def test_run_snapshots_the_claimed_volumes_of_the_pool_only(
    make_host: Any, pushgateway: FakePushgateway
) -> None:
    h = make_host()
    result = h.run()
    assert result.returncode == 0, result.stderr
    created = [c for c in h.calls("lvcreate")]
    assert [c[-1] for c in created] == [f"pve/{NOTES}", f"pve/{CHAT}"]  # sorted by name
    for call in created:
        assert call[1:3] == ["-s", "-n"] and re.fullmatch(
            rf"{call[-1][4:]}-snap-\d{{8}}T\d{{6}}Z", call[3]
        )
    new = [lv for lv in h.state["lvs"] if "-snap-" in lv["name"]]
    assert {lv["origin"] for lv in new} == {NOTES, CHAT}
    assert all(lv["skip"] and not lv["active"] for lv in new)  # LVM's default for thin snapshots
    assert f"skipped pve/{ORPHAN}: no PersistentVolume" in result.stdout
    assert f"skipped pve/{LOGS} (logs/logs): excluded" in result.stdout
    assert ELSEWHERE not in result.stdout and "vm-100-disk-0" not in result.stdout
    assert set(h.state["kubeconfigs"]) == {KUBECONFIG}
    (push,) = pushgateway.pushes
    assert push.method == "POST" and push.path == "/metrics/job/lvm-pvc-snapshot"
    metrics = pushgateway.metrics()
    assert metrics["lvm_snapshot_last_run_success"] == 1
    assert metrics["lvm_snapshot_created"] == 2 and metrics["lvm_snapshot_count"] == 2
    assert metrics["lvm_thin_pool_free_percent"] == 60


def test_the_exclusions_are_the_env_files(make_host: Any) -> None:
    """The script skips exactly the claims lvm-pvc-snapshot.env lists (one catalog list)."""
    h = make_host()
    env_text = (
        render(
            catalog_text("http://127.0.0.1:9"),
            h.root.parent / "env",
            names=("snapshot-exclusions",),
        )
        .joinpath("snapshots", "lvm-pvc-snapshot.env")
        .read_text()
    )
    (listed,) = re.findall(r'^EXCLUDE_PVCS="(.*)"$', env_text, re.MULTILINE)
    assert listed.split() == ["logs/logs"]
    assert "EXCLUDE_PVCS=(logs/logs)" in h.script.read_text()


def test_retention_deletes_old_snapshots_and_keeps_the_newest(
    make_host: Any, host: dict[str, Any]
) -> None:
    old, older, recent = stamp(8), stamp(9), stamp(6)
    host["lvs"] += [thin(f"{NOTES}-snap-{s}", origin=NOTES) for s in (older, old, recent)]
    # Snapshots of CHAT fail: all its snapshots are past the retention, the newest stays.
    host["lvs"] += [thin(f"{CHAT}-snap-{s}", origin=CHAT) for s in (older, old)]
    host["fail_create"] = [CHAT]
    h = make_host()
    result = h.run()
    assert result.returncode == 1, result.stdout
    names = h.names()
    notes = snapshots_of(names, NOTES)
    assert notes[:1] == [f"{NOTES}-snap-{recent}"] and len(notes) == 2  # the 8 and 9 days old gone
    assert snapshots_of(names, CHAT) == [f"{CHAT}-snap-{old}"]  # the newest, though old
    removed = [c[-1] for c in h.calls("lvremove")]
    assert sorted(removed) == sorted(
        [f"pve/{NOTES}-snap-{older}", f"pve/{NOTES}-snap-{old}", f"pve/{CHAT}-snap-{older}"]
    )


def test_retention_by_copies_keeps_the_newest_ones(make_host: Any, host: dict[str, Any]) -> None:
    stamps = [stamp(d) for d in (5, 4, 3, 2)]
    host["lvs"] += [thin(f"{NOTES}-snap-{s}", origin=NOTES) for s in stamps]
    h = make_host("2 copies")
    assert h.run().returncode == 0
    kept = snapshots_of(h.names(), NOTES)
    assert len(kept) == 2 and kept[0] == f"{NOTES}-snap-{stamps[-1]}"


@pytest.mark.parametrize(("data", "meta"), [(90.0, 10.0), (20.0, 95.5)])
def test_a_nearly_full_thin_pool_takes_no_snapshot_and_pushes_the_failure(
    make_host: Any, host: dict[str, Any], pushgateway: FakePushgateway, data: float, meta: float
) -> None:
    pool = next(lv for lv in host["lvs"] if lv["name"] == "data")
    pool.update(data=data, meta=meta)
    # Expired snapshots are what frees the pool: the retention still runs, the newest stays.
    old, older = stamp(8), stamp(9)
    host["lvs"] += [thin(f"{NOTES}-snap-{s}", origin=NOTES) for s in (older, old)]
    h = make_host()
    result = h.run()
    assert result.returncode == 1
    assert "no snapshot taken" in result.stderr
    assert h.calls("lvcreate") == []
    assert [c[-1] for c in h.calls("lvremove")] == [f"pve/{NOTES}-snap-{older}"]
    assert snapshots_of(h.names(), NOTES) == [f"{NOTES}-snap-{old}"]
    (push,) = pushgateway.pushes
    assert push.method == "POST"  # replaces these series only: the last success stays
    samples = {s.name: s.value for s in parse_samples(push.body)}
    assert samples == {
        "lvm_snapshot_last_run_success": 0,
        "lvm_thin_pool_free_percent": pytest.approx(100 - max(data, meta)),
    }


def lvm_alert_reads(root: Path) -> dict[str, str]:
    """{metric: selector text} of every series the generated LVM alerts read."""
    rules = yaml.safe_load((root / "prometheus" / "rules" / "snapshots.rules.yaml").read_text())
    reads: dict[str, str] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["labels"].get("layer") != "lvm":
                continue
            for name, selector in re.findall(r"\b(lvm_[a-z_]+)(\{[^}]*\})?", rule["expr"]):
                reads[name] = selector
    return reads


def test_the_pushed_samples_are_what_the_alerts_read(
    make_host: Any, pushgateway: FakePushgateway, tmp_path: Path
) -> None:
    h = make_host()
    assert h.run().returncode == 0
    samples = parse_samples(pushgateway.pushes[0].body)
    reads = lvm_alert_reads(
        render(catalog_text(pushgateway.url), tmp_path / "all", names=("alerts",))
    )
    assert set(reads) == {
        "lvm_snapshot_last_success_timestamp",
        "lvm_snapshot_last_run_success",
        "lvm_thin_pool_free_percent",
    }
    pushed = {s.name: s for s in samples}
    assert set(reads) <= set(pushed)
    # The alerts select no label; the series carry only the push's grouping key (job).
    assert set(reads.values()) <= {"", "{}"}
    assert all(s.labels == {} for s in samples)
    assert (
        abs(
            pushed["lvm_snapshot_last_success_timestamp"].value
            - dt.datetime.now(dt.UTC).timestamp()
        )
        < 120
    )


def restore_host(make_host: Any, host: dict[str, Any]) -> tuple[Host, str, str]:
    newer, older = f"{NOTES}-snap-{stamp(1)}", f"{NOTES}-snap-{stamp(2)}"
    host["lvs"] += [thin(older, origin=NOTES), thin(newer, origin=NOTES)]
    return make_host(), newer, older


def test_restore_swaps_the_volume_with_the_workload_scaled_down(
    make_host: Any, host: dict[str, Any], pushgateway: FakePushgateway
) -> None:
    h, newer, _ = restore_host(make_host, host)
    result = h.run("restore", "notes/notes", "--yes")
    assert result.returncode == 0, result.stderr
    calls = [c for c in h.state["calls"] if c[0] != "lvs" and "get" not in c]
    pre = next(c[3] for c in calls if c[0] == "lvrename")
    assert re.fullmatch(rf"{NOTES}-pre-restore-\d{{8}}T\d{{6}}Z", pre)
    assert calls == [
        [
            "kubectl",
            "--kubeconfig",
            KUBECONFIG,
            "scale",
            "deployment/notes",
            "-n",
            "notes",
            "--replicas=0",
        ],
        ["lvrename", "pve", NOTES, pre],
        ["lvcreate", "-s", "--setactivationskip", "n", "-n", NOTES, f"pve/{newer}"],
        ["lvchange", "-ay", "-K", f"pve/{NOTES}"],
        [
            "kubectl",
            "--kubeconfig",
            KUBECONFIG,
            "scale",
            "deployment/notes",
            "-n",
            "notes",
            "--replicas=2",
        ],
    ]
    live = next(lv for lv in h.state["lvs"] if lv["name"] == NOTES)
    assert live["origin"] == newer and live["active"] and not live["skip"]
    assert f"lvremove pve/{pre}" in result.stdout
    assert pushgateway.pushes == []


def test_restore_of_a_named_snapshot_and_a_statefulset(
    make_host: Any, host: dict[str, Any]
) -> None:
    chat_snap = f"{CHAT}-snap-{stamp(3)}"
    host["lvs"] += [thin(chat_snap, origin=CHAT), thin(f"{CHAT}-snap-{stamp(1)}", origin=CHAT)]
    h = make_host()
    result = h.run("restore", "chat/chat-data", chat_snap, "--yes")
    assert result.returncode == 0, result.stderr
    assert [
        "lvcreate",
        "-s",
        "--setactivationskip",
        "n",
        "-n",
        CHAT,
        f"pve/{chat_snap}",
    ] in h.calls("lvcreate")
    scales = [c[4:] for c in h.calls("kubectl") if "scale" in c]
    assert scales == [
        ["statefulset/chat", "-n", "chat", "--replicas=0"],
        ["statefulset/chat", "-n", "chat", "--replicas=1"],
    ]


def add_daemonset_pod(host: dict[str, Any]) -> None:
    host["k8s"]["pods"].append(
        pod("notes", "backup-agent-x1", "notes", owner("DaemonSet", "agent"))
    )


def add_second_deployment(host: dict[str, Any]) -> None:
    host["k8s"]["pods"].append(
        pod("notes", "viewer-55-q", "notes", owner("ReplicaSet", "viewer-55"))
    )
    host["k8s"]["replicasets"].append(
        {
            "kind": "ReplicaSet",
            "metadata": {
                "namespace": "notes",
                "name": "viewer-55",
                "ownerReferences": owner("Deployment", "viewer"),
            },
        }
    )


def add_bare_pod(host: dict[str, Any]) -> None:
    host["k8s"]["pods"] = [pod("notes", "debug", "notes", [])]


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        (add_daemonset_pod, ["--yes"], "belongs to a DaemonSet"),
        (
            add_second_deployment,
            ["--yes"],
            "more than one workload: deployment notes deployment viewer",
        ),
        (add_bare_pod, ["--yes"], "a bare pod cannot be scaled down"),
        (None, [f"{NOTES}-snap-20200101T000000Z", "--yes"], "is not a snapshot of"),
        (None, [], "run again with --yes"),
    ],
)
def test_restore_refuses_before_touching_anything(
    make_host: Any, host: dict[str, Any], change: Any, args: list[str], message: str
) -> None:
    if change is not None:
        change(host)
    h, _, _ = restore_host(make_host, host)
    before = h.names()
    result = h.run("restore", "notes/notes", *args)
    assert result.returncode == 1
    assert message in result.stderr and "refused" in result.stderr
    assert h.calls("lvcreate", "lvrename", "lvchange", "lvremove") == []
    assert [c for c in h.calls("kubectl") if "scale" in c] == []
    assert h.names() == before


def test_restore_refuses_a_claim_without_snapshots(make_host: Any) -> None:
    h = make_host()
    result = h.run("restore", "notes/notes", "--yes")
    assert result.returncode == 1 and f"pve/{NOTES} has no snapshot" in result.stderr
    assert h.calls("lvcreate", "lvrename") == []


def test_restore_refuses_a_workload_it_cannot_scale(make_host: Any, host: dict[str, Any]) -> None:
    host["scale_fails"] = True
    h, _, _ = restore_host(make_host, host)
    result = h.run("restore", "notes/notes", "--yes")
    assert result.returncode == 1
    assert "could not scale deployment/notes in notes to 0; nothing was changed" in result.stderr
    assert h.calls("lvcreate", "lvrename", "lvchange") == []
    assert next(lv for lv in h.state["lvs"] if lv["name"] == NOTES)["open"]


def test_restore_refuses_an_lv_still_open_and_says_what_it_left(
    make_host: Any, host: dict[str, Any]
) -> None:
    host["stays_open"] = [NOTES]  # the disk stays attached to the node's VM
    h, _, _ = restore_host(make_host, host)
    result = h.run("restore", "notes/notes", "--yes")
    assert result.returncode == 1
    assert f"pve/{NOTES} is still open" in result.stderr
    assert (
        "state: no LV was changed; deployment/notes in notes is scaled back to 2" in result.stderr
    )
    assert h.calls("lvcreate", "lvrename", "lvchange") == []
    scales = [c[-1] for c in h.calls("kubectl") if "scale" in c]
    assert scales == ["--replicas=0", "--replicas=2"]


# --- the timer -----------------------------------------------------------------------------


def cron_values(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(v) for v in base.split("-"))
        else:
            first = int(base)
            last = high if step else first
        values |= set(range(first, last + 1, int(step or 1)))
    return values


def cron_elapses(cron: str, zone: str, base: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` instants after ``base`` at which a clock in ``zone`` reads a time
    the cron expression names, each wall-clock reading once (the first time it occurs) and
    none that the zone skips: found by stepping every UTC minute."""
    minute, hour, dom, month, dow = cron.split()
    minutes, hours = cron_values(minute, 0, 59), cron_values(hour, 0, 23)
    days, months = cron_values(dom, 1, 31), cron_values(month, 1, 12)
    weekdays = cron_values(dow, 0, 6)
    tz = zoneinfo.ZoneInfo(zone)
    found: list[dt.datetime] = []
    t = base.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    last_wall = base.astimezone(tz).replace(tzinfo=None)
    while len(found) < count:
        wall = t.astimezone(tz)
        day_ok = (
            (wall.day in days) or (wall.isoweekday() % 7 in weekdays)
            if dom != "*" and dow != "*"
            else wall.day in days and wall.isoweekday() % 7 in weekdays
        )
        naive = wall.replace(tzinfo=None)
        if (
            day_ok
            and wall.month in months
            and wall.hour in hours
            and wall.minute in minutes
            and naive > last_wall
        ):
            found.append(t)
            last_wall = naive
        t += dt.timedelta(minutes=1)
    return found


def systemd_elapses(events: list[str], base: dt.datetime, count: int) -> list[dt.datetime]:
    program = require_tool("systemd-analyze")
    found: set[dt.datetime] = set()
    for event in events:
        shown = subprocess.run(
            [
                program,
                "calendar",
                f"--iterations={count}",
                f"--base-time=@{int(base.timestamp())}",
                event,
            ],
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        for stamp_text in re.findall(
            r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", shown.stdout
        ):
            found.add(dt.datetime.fromisoformat(stamp_text).replace(tzinfo=dt.UTC))
    return sorted(found)[:count]


@pytest.mark.parametrize(
    ("cron", "zone", "base", "count"),
    [
        ("0 0,12 * * *", "Africa/Cairo", "2024-04-20", 20),  # 00:00 skipped on 26 April
        ("0 0,12 * * *", "Etc/UTC", "2024-04-20", 6),
        ("*/15 2-5 * * 1-5", "Asia/Jerusalem", "2024-03-27", 60),  # Friday 02:00 -> 03:00
        ("*/15 2-5 * * 1-5", "Europe/Berlin", "2024-10-24", 40),
        ("0 3 1 * 0", "Europe/Berlin", "2024-09-20", 12),  # the 1st or a Sunday
        ("30 2 * * *", "Europe/Berlin", "2024-10-25", 5),  # 02:30 occurs twice on the 27th
        ("30 2 * * *", "Europe/Berlin", "2024-03-29", 5),  # and not at all on 31 March
    ],
)
def test_the_timer_elapses_when_the_cron_fires_in_the_catalogs_zone(
    tmp_path: Path, cron: str, zone: str, base: str, count: int
) -> None:
    root = render(catalog_text("http://127.0.0.1:9", cadence=cron, zone=zone), tmp_path)
    timer = (root / "snapshots" / "lvm-pvc-snapshot.timer").read_text()
    events = re.findall(r"^OnCalendar=(.*)$", timer, re.MULTILINE)
    assert events and all(e.endswith(f" {zone}") for e in events)
    start = dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC)
    assert systemd_elapses(events, start, count) == cron_elapses(cron, zone, start, count)


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    program = require_tool("systemd-analyze")
    root = render(
        catalog_text("http://127.0.0.1:9", cadence="0 3 1 * 0", zone="Europe/Berlin"), tmp_path
    )
    folder = root / "snapshots"
    executable = folder / "lvm-pvc-snapshot"
    executable.write_bytes((folder / "lvm-pvc-snapshot.sh").read_bytes())
    executable.chmod(0o755)
    service = folder / "lvm-pvc-snapshot.service"
    text = service.read_text()
    assert "ExecStart=/usr/local/bin/lvm-pvc-snapshot run\n" in text and "Type=oneshot\n" in text
    service.write_text(text.replace("/usr/local/bin/lvm-pvc-snapshot", str(executable)))
    timer = (folder / "lvm-pvc-snapshot.timer").read_text()
    assert "Persistent=true\n" in timer and "AccuracySec=1min\n" in timer
    verified = subprocess.run(
        [program, "verify", "--man=no", str(service), str(folder / "lvm-pvc-snapshot.timer")],
        capture_output=True,
        text=True,
        check=False,
    )
    cannot = ("Failed to initialize manager", "Failed to connect to bus")
    if verified.returncode != 0 and any(reason in verified.stderr for reason in cannot):
        pytest.skip(f"systemd-analyze verify cannot run here: {verified.stderr.strip()}")
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""


def test_the_script_is_clean_under_shellcheck(tmp_path: Path) -> None:
    program = require_tool("shellcheck")
    root = render(catalog_text("http://127.0.0.1:9", retention="3 copies"), tmp_path)
    checked = subprocess.run(
        [program, "--severity=style", str(root / "snapshots" / "lvm-pvc-snapshot.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


def test_no_lvm_layer_no_files(tmp_path: Path) -> None:
    text = catalog_text("http://127.0.0.1:9").replace("churn: low", "churn: high")
    root = render(text, tmp_path)
    assert not (root / "snapshots").exists()
