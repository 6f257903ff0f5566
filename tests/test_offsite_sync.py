"""The NAS's offsite sync, run for real: rclone against a loopback SFTP server, and zfs.

The destination is ``rclone serve sftp`` on 127.0.0.1 with an ed25519 key, reached through
the on-the-fly ``:sftp,...,key_file=`` backend the catalog derives (or a named remote of an
``RCLONE_CONFIG`` file). ``zfs`` is a stand-in modelling OpenZFS over plain directories:
each dataset is a directory (a child dataset is a directory inside its parent's, which the
parent's snapshots do not descend into); ``snapshot -r`` records every object of each
filesystem of the tree by inode; ``diff -F -H`` compares two snapshots of one filesystem
object by object, as libzfs_diff.c does: an object only in the new one is ``+``, only in the
old one ``-``, one whose name or folder changed ``R`` (old and new path), one whose content
changed ``M``; a file whose folder was renamed is not itself changed and is not listed;
paths are absolute, with every byte that is not > ' ' and < 0177, and the backslash, printed
as a backslash and four octal digits. ``destroy -r``, ``rename -r`` and ``list`` answer as
zfs does, missing snapshots included.
"""

from __future__ import annotations

import fcntl
import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import MINIMAL_HEAD, require_tool
from engines import FakePushgateway, parse_samples

from homeops_gen import build_plan, load_catalog_text
from homeops_gen.render import render_file

pytestmark = [pytest.mark.tool("rclone"), pytest.mark.tool("flock"), pytest.mark.tool("curl")]

ZFS_STAND_IN = r'''
"""A stand-in for OpenZFS's zfs(8) over plain directories (see the test module's docstring)."""

import hashlib
import json
import os
import stat
import sys

STATE = os.environ["ZFS_STANDIN_STATE"]


def load():
    with open(STATE, encoding="utf-8") as f:
        return json.load(f)


def save(state):
    with open(STATE, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1, sort_keys=True)


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def tree(state, dataset):
    """The dataset and its descendants, parents first."""
    return sorted(d for d in state["datasets"] if d == dataset or d.startswith(dataset + "/"))


def require_dataset(state, name):
    if name not in state["datasets"]:
        fail(f"cannot open '{name}': dataset does not exist")


def split_snapshot(name):
    if name.count("@") != 1 or name.startswith("@") or name.endswith("@"):
        fail(f"cannot open '{name}': invalid character '@' in name" if "@" in name
             else f"'{name}' is not a snapshot", 2 if "@" not in name else 1)
    return name.split("@")


def record(state, dataset):
    """Every object of the dataset's filesystem, by inode: not descending into the
    mountpoints of other datasets (each is its own filesystem)."""
    mount = state["datasets"][dataset]
    others = {m for d, m in state["datasets"].items() if d != dataset}
    objects = {}

    def visit(path, rel, parent):
        st = os.lstat(path)
        kind = "/" if stat.S_ISDIR(st.st_mode) else "F" if stat.S_ISREG(st.st_mode) else (
            "@" if stat.S_ISLNK(st.st_mode) else "?")
        digest = ""
        if kind == "F":
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        name = os.path.basename(rel) if rel else ""
        objects.setdefault(str(st.st_ino), {
            "path": rel, "type": kind, "parent": parent, "name": name,
            "mtime": st.st_mtime_ns, "size": st.st_size, "digest": digest,
            "links": st.st_nlink,
        })
        if kind == "/" and (rel == "" or path not in others):
            for entry in sorted(os.listdir(path)):
                visit(os.path.join(path, entry), os.path.join(rel, entry) if rel else entry,
                      str(st.st_ino))

    visit(mount, "", "")
    return objects


def escaped(path):
    """libzfs_diff.c's stream_bytes: a byte that is not > ' ' and < 0177, or a backslash,
    is printed as a backslash and four octal digits."""
    out = []
    for byte in os.fsencode(path):
        if 0x20 < byte < 0x7F and byte != 0x5C:
            out.append(chr(byte))
        else:
            out.append("\\%04o" % byte)
    return "".join(out)


def cmd_snapshot(state, args):
    recursive = "-r" in args
    names = [a for a in args if not a.startswith("-")]
    (name,) = names
    dataset, snap = split_snapshot(name)
    require_dataset(state, dataset)
    targets = tree(state, dataset) if recursive else [dataset]
    for d in targets:
        if f"{d}@{snap}" in state["snapshots"]:
            fail(f"cannot create snapshot '{d}@{snap}': dataset already exists")
    for d in targets:
        state["counter"] += 1
        state["snapshots"][f"{d}@{snap}"] = {"txg": state["counter"], "objects": record(state, d)}
    save(state)


def cmd_destroy(state, args):
    recursive = "-r" in args
    (name,) = [a for a in args if not a.startswith("-")]
    dataset, snap = split_snapshot(name)
    require_dataset(state, dataset)
    targets = tree(state, dataset) if recursive else [dataset]
    found = [f"{d}@{snap}" for d in targets if f"{d}@{snap}" in state["snapshots"]]
    if not found:
        fail("could not find any snapshots to destroy; check snapshot names.")
    for s in found:
        del state["snapshots"][s]
    save(state)


def cmd_rename(state, args):
    recursive = "-r" in args
    old, new = [a for a in args if not a.startswith("-")]
    dataset, snap = split_snapshot(old)
    if new.startswith("@"):
        new = dataset + new
    new_dataset, new_snap = split_snapshot(new)
    if new_dataset != dataset:
        fail("cannot rename to '%s': snapshots must be part of same dataset" % new)
    if old not in state["snapshots"]:
        fail(f"cannot open '{old}': dataset does not exist")
    targets = tree(state, dataset) if recursive else [dataset]
    moving = [d for d in targets if f"{d}@{snap}" in state["snapshots"]]
    for d in moving:
        if f"{d}@{new_snap}" in state["snapshots"]:
            fail(f"cannot rename to '{d}@{new_snap}': dataset already exists")
    for d in moving:
        state["snapshots"][f"{d}@{new_snap}"] = state["snapshots"].pop(f"{d}@{snap}")
    save(state)


def cmd_list(state, args):
    scripted, recursive, fields, types, operands = False, False, ["name"], ["filesystem"], []
    it = iter(args)
    for a in it:
        if a == "-H":
            scripted = True
        elif a == "-r":
            recursive = True
        elif a == "-o":
            fields = next(it).split(",")
        elif a == "-t":
            types = next(it).split(",")
        elif a.startswith("-"):
            fail(f"invalid option '{a[1:]}'", 2)
        else:
            operands.append(a)
    rows = []
    for operand in operands:
        if "@" in operand:
            if operand not in state["snapshots"]:
                fail(f"cannot open '{operand}': dataset does not exist")
            rows.append((operand, "-"))
            continue
        require_dataset(state, operand)
        datasets = tree(state, operand) if recursive else [operand]
        for d in datasets:
            if "filesystem" in types or "all" in types:
                rows.append((d, state["datasets"][d]))
            if "snapshot" in types or "all" in types:
                snaps = [(v["txg"], s) for s, v in state["snapshots"].items()
                         if s.split("@")[0] == d]
                rows += [(s, "-") for _, s in sorted(snaps)]
    for name, mount in rows:
        mounted = "-" if "@" in name else "no" if name in state["unmounted"] else "yes"
        values = {"name": name, "mountpoint": mount, "mounted": mounted}
        print(("\t" if scripted else "  ").join(values[f] for f in fields))


def cmd_diff(state, args):
    flags = {a for a in args if a.startswith("-")}
    operands = [a for a in args if not a.startswith("-")]
    if len(operands) != 2:
        fail("usage: diff [-FHth] <snapshot> [snapshot|filesystem]", 2)
    old, new = operands
    for s in (old, new):
        if s not in state["snapshots"]:
            fail(f"cannot open '{s}': dataset does not exist")
    if old.split("@")[0] != new.split("@")[0]:
        fail("Unable to determine which snapshots to compare")
    if old.split("@")[0] in state["unmounted"]:
        fail("Cannot diff an unmounted snapshot")
    classify = "-F" in flags
    sep = "\t" if "-H" in flags else " -> "
    mount = state["datasets"][old.split("@")[0]]
    a = state["snapshots"][old]["objects"]
    b = state["snapshots"][new]["objects"]

    def full(rel):
        return escaped(os.path.join(mount, rel) if rel else mount + "/")

    lines = []
    for ino in sorted(set(a) | set(b), key=int):
        f, t = a.get(ino), b.get(ino)
        obj = t or f
        kind = (obj["type"] + "\t") if classify else ""
        if f is None:
            lines.append(f"+\t{kind}{full(t['path'])}")
        elif t is None:
            lines.append(f"-\t{kind}{full(f['path'])}")
        elif f["type"] != t["type"]:
            lines.append(f"-\t{f['type'] + chr(9) if classify else ''}{full(f['path'])}")
            lines.append(f"+\t{kind}{full(t['path'])}")
        elif f == t or {k: v for k, v in f.items() if k != "path"} == {
            k: v for k, v in t.items() if k != "path"
        }:
            continue  # the object itself did not change (maybe its folder was renamed)
        elif f["type"] != "/" and f["links"] != t["links"]:
            lines.append(f"M\t{kind}{full(f['path'])}\t({t['links'] - f['links']:+d})")
        elif f["path"] == t["path"]:
            lines.append(f"M\t{kind}{full(t['path'])}")
        else:
            lines.append(f"R\t{kind}{full(f['path'])}{sep}{full(t['path'])}")
    for line in lines:
        print(line)


def main():
    args = sys.argv[1:]
    if "ZFS_STANDIN_LOG" in os.environ:
        with open(os.environ["ZFS_STANDIN_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(args) + "\n")
    if not args:
        fail("usage: zfs command args ...", 2)
    state = load()
    command = {"snapshot": cmd_snapshot, "destroy": cmd_destroy, "rename": cmd_rename,
               "list": cmd_list, "diff": cmd_diff}.get(args[0])
    if command is None:
        fail(f"unrecognized command '{args[0]}'", 2)
    command(state, args[1:])


main()
'''

DATASET = "tank"
PREFIX = "offsite"
PREV, NEW = f"{DATASET}@{PREFIX}-prev", f"{DATASET}@{PREFIX}-new"
#: The source tree: the dataset ``tank`` and its child ``tank/photos`` (mounted inside it).
TREE = {
    "docs/a.txt": "alpha\n",
    "docs/b.txt": "bravo\n",
    "docs/gone.txt": "to be deleted\n",
    "docs/untouched.txt": "never changes\n",
    "docs/with space.txt": "space\n",
    "docs/back\\slash.txt": "backslash\n",
    "docs/café ü.txt": "non-ASCII\n",
    "docs/sub/inner.txt": "in a folder that will be renamed\n",
    "app.log": "excluded by *.log\n",
    "tmp/scratch.bin": "excluded by tmp/**\n",
    "media/film.mkv": "excluded: the media service is kept out\n",
    "photos/p1.jpg": "in the child dataset\n",
}

TAMPERED = b"tampered at the destination, longer than the source\n"


def excluded(path: str) -> bool:
    """The catalog's exclusions, read as rclone's filter reads them (written by hand)."""
    parts = path.split("/")
    return parts[-1].endswith(".log") or parts[0] == "media" or "tmp" in parts[:-1]


def files_below(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SftpServer:
    """``rclone serve sftp`` of a local folder on 127.0.0.1, keys from an authorized_keys."""

    def __init__(self, served: Path, authorized: Path) -> None:
        self.served, self.authorized = served, authorized
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                require_tool("rclone"),
                "serve",
                "sftp",
                str(self.served),
                "--addr",
                f"127.0.0.1:{self.port}",
                "--authorized-keys",
                str(self.authorized),
                "--config",
                "/dev/null",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("rclone serve sftp did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Nas:
    """The NAS: the synced tree, the zfs stand-in's state, the installed script."""

    root: Path
    mount: Path
    dest: Path
    install: Path
    env: dict[str, str]
    pushgateway: FakePushgateway
    sftp: SftpServer
    files: dict[str, bytes] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_tool("bash"), str(self.install / "offsite-sync.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done

    def zfs(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / "bin" / "zfs"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def snapshots(self) -> list[str]:
        listed = self.zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r", DATASET)
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.splitlines()

    def snapshot_txgs(self) -> dict[str, int]:
        state = json.loads((self.root / "zfs.json").read_text())
        return {name: snap["txg"] for name, snap in state["snapshots"].items()}

    def add_dataset(self, name: str, mountpoint: Path) -> None:
        state_file = self.root / "zfs.json"
        state = json.loads(state_file.read_text())
        state["datasets"][name] = str(mountpoint)
        state_file.write_text(json.dumps(state))

    def write(self, rel: str, text: str) -> None:
        path = self.mount / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def tamper(self, rel: str) -> None:
        """Overwrite a destination file through the SFTP server (which caches what it saw),
        so that only a run that looks at that file again puts it right."""
        local = self.root / "tampered"
        local.write_text(TAMPERED.decode(), encoding="utf-8")
        destination = f":sftp,host=127.0.0.1,port={self.sftp.port},user=backup," + (
            f"key_file={self.root / 'id_ed25519'}:/Backup/nas/{rel}"
        )
        subprocess.run(
            [require_tool("rclone"), "copyto", str(local), destination, "-q"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        assert (self.dest / rel).read_bytes() == TAMPERED

    def expected(self) -> dict[str, bytes]:
        """What a full sync leaves at the destination: the tree minus the exclusions."""
        return {p: data for p, data in files_below(self.mount).items() if not excluded(p)}

    def pushes(self) -> list[tuple[str, str, dict[str, float], list[dict[str, str]]]]:
        """(method, path, {name: value}, [labels as the Pushgateway stores them]) per push."""
        found = []
        for push in self.pushgateway.pushes:
            grouping = push.path.removeprefix("/metrics/").split("/")
            labels = dict(zip(grouping[::2], grouping[1::2], strict=True))
            samples = parse_samples(push.body)
            values = {s.name: s.value for s in samples}
            stored = [{**labels, **s.labels} for s in samples]
            found.append((push.method, push.path, values, stored))
        return found


def catalog_text(nas_root: Path, port: int, pushgateway: str, **offsite: object) -> str:
    settings = {
        "host_pushgateway": pushgateway,
        "offsite": {
            "target": f"sftp://127.0.0.1:{port}/Backup/nas",
            "dataset": DATASET,
            "mountpoint": str(nas_root / "mnt" / DATASET),
            "snapshot_prefix": PREFIX,
            "sftp_user": "backup",
            "sftp_key_file": str(nas_root / "id_ed25519"),
            "install_dir": "/root/offsite",
            "exclude": [
                {"pattern": "*.log", "reason": "Log files are regenerable"},
                {"pattern": "tmp/**", "reason": "Scratch space"},
            ],
            **offsite,
        },
    }
    if offsite.get("full_sync_by") == "cloudsync":
        settings["truenas"] = {
            "api": "wss://nas.lan/api/current",
            "api_key": {"name": "truenas-api-key", "key": "key"},
        }
    extra = textwrap.indent(yaml.safe_dump(settings, sort_keys=False), "  ")
    services = textwrap.dedent(
        """\
          - {name: notes, namespace: notes, storage: nfs, churn: low, engine: files}
          - name: media
            namespace: media
            storage: nfs
            churn: low
            engine: files
            offsite: {excluded: Replaceable downloads}
        """
    )
    return MINIMAL_HEAD.replace("services:\n", extra + "services:\n") + services


OFFSITE_RULES = "prometheus/rules/offsite.rules.yaml"


def render(text: str, into: Path) -> dict[str, bytes]:
    """The offsite files and the offsite alert rules of the catalog, written below ``into``."""
    plan = build_plan(load_catalog_text(text, "services.yaml"))
    rendered = {}
    for output in plan.files:
        if output.path.startswith("offsite/") or output.path == OFFSITE_RULES:
            rendered[output.path] = render_file(output)
    for path, data in rendered.items():
        (into / Path(path).name).write_bytes(data)
    return rendered


@pytest.fixture
def make_nas(tmp_path: Path, pushgateway: FakePushgateway) -> Iterator[Callable[..., Nas]]:
    servers: list[SftpServer] = []

    def make(**offsite: object) -> Nas:
        root = tmp_path
        (root / "bin").mkdir()
        (root / "zfs_stand_in.py").write_text(ZFS_STAND_IN, encoding="utf-8")
        zfs = root / "bin" / "zfs"
        zfs.write_text(f'#!/bin/sh\nexec {sys.executable} {root / "zfs_stand_in.py"} "$@"\n')
        zfs.chmod(0o755)
        key = root / "id_ed25519"
        subprocess.run(
            [require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
        )
        served = root / "offsite-nas"
        served.mkdir()
        sftp = SftpServer(served, key.with_suffix(".pub"))
        sftp.start()
        servers.append(sftp)
        mount = root / "mnt" / DATASET
        for rel, text in TREE.items():
            path = mount / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (root / "zfs.json").write_text(
            json.dumps(
                {
                    "datasets": {DATASET: str(mount), f"{DATASET}/photos": str(mount / "photos")},
                    "snapshots": {},
                    "unmounted": [],
                    "counter": 0,
                }
            )
        )
        install = root / "install"
        install.mkdir()
        render(catalog_text(root, sftp.port, pushgateway.url, **offsite), install)
        env = {
            "PATH": f"{root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(root),
            "ZFS_STANDIN_STATE": str(root / "zfs.json"),
            "ZFS_STANDIN_LOG": str(root / "zfs.log"),
            "OFFSITE_SYNC_LOCK": str(root / "offsite-sync.lock"),
            "RCLONE_CONFIG": str(root / "rclone.conf"),
            "RCLONE_RETRIES": "1",
            "RCLONE_LOW_LEVEL_RETRIES": "1",
            "RCLONE_CONTIMEOUT": "5s",
        }
        return Nas(root, mount, served / "Backup" / "nas", install, env, pushgateway, sftp)

    yield make
    for server in servers:
        server.stop()


def zfs_calls(nas: Nas, command: str) -> list[list[str]]:
    log = nas.root / "zfs.log"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [c for c in calls if c[0] == command]


def test_the_stand_in_escapes_names_as_libzfs_does(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    assert nas.zfs("snapshot", "-r", f"{DATASET}@a").returncode == 0
    nas.write("docs/x y\\z\tä.txt", "new\n")
    (nas.mount / "docs" / "a.txt").rename(nas.mount / "docs" / "a2.txt")
    assert nas.zfs("snapshot", "-r", f"{DATASET}@b").returncode == 0
    diff = nas.zfs("diff", "-F", "-H", f"{DATASET}@a", f"{DATASET}@b").stdout.splitlines()
    docs = f"{nas.mount}/docs"
    assert f"+\tF\t{docs}/x\\0040y\\0134z\\0011\\0303\\0244.txt" in diff
    assert f"R\tF\t{docs}/a.txt\t{docs}/a2.txt" in diff
    missing = nas.zfs("diff", "-F", "-H", f"{DATASET}@nope", f"{DATASET}@b")
    assert missing.returncode == 1
    assert "cannot open 'tank@nope': dataset does not exist" in missing.stderr


def test_the_first_run_copies_the_whole_tree_and_keeps_prev(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    done = nas.ok("incremental")
    assert f"copying the whole tree: no {PREV} yet" in done.stderr
    assert files_below(nas.dest) == nas.expected()
    assert sorted(nas.snapshots()) == sorted([PREV, f"{DATASET}/photos@{PREFIX}-prev"])
    ((method, path, values, _),) = nas.pushes()
    assert (method, path) == ("PUT", "/metrics/job/offsite-sync/sync/incremental")
    assert values["offsite_sync_last_run_success"] == 1
    assert values["offsite_sync_files_copied"] == len(nas.expected())
    assert values["offsite_sync_bytes_copied"] == sum(len(d) for d in nas.expected().values())
    assert abs(values["offsite_sync_last_success_timestamp"] - time.time()) < 120
    assert 0 <= values["offsite_sync_duration_seconds"] < 120


def test_an_incremental_run_copies_exactly_the_changed_files(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    nas.ok("incremental")
    # A destination file no run should touch: a whole-tree copy would put it right again.
    nas.tamper("docs/untouched.txt")
    nas.write("docs/a.txt", "alpha, changed and longer\n")
    nas.write("docs/new file.txt", "new\n")
    nas.write("docs/tab\there \\ naïve.txt", "odd name\n")
    (nas.mount / "docs" / "b.txt").rename(nas.mount / "docs" / "b renamed.txt")
    (nas.mount / "docs" / "sub").rename(nas.mount / "docs" / "sub2")
    (nas.mount / "docs" / "gone.txt").unlink()
    nas.write("docs/new.log", "excluded\n")
    nas.write("docs/tmp/cache.bin", "excluded\n")
    nas.write("media/new.mkv", "excluded\n")
    nas.write("photos/p2.jpg", "new in the child dataset\n")
    first_prev = nas.snapshot_txgs()[PREV]
    done = nas.ok("incremental")
    assert "copying 6 changed files" in done.stderr, done.stderr
    copied = {
        "docs/a.txt",
        "docs/new file.txt",
        "docs/tab\there \\ naïve.txt",
        "docs/b renamed.txt",
        "docs/sub2/inner.txt",
        "photos/p2.jpg",
    }
    source, dest = files_below(nas.mount), files_below(nas.dest)
    for rel in copied:
        assert dest[rel] == source[rel], rel
    assert dest["docs/untouched.txt"] == TAMPERED
    # Deletions and the old names wait for the full sync; exclusions never arrive.
    assert "docs/gone.txt" in dest and "docs/b.txt" in dest and "docs/sub/inner.txt" in dest
    assert not any(excluded(p) for p in dest)
    assert [c[-2:] for c in zfs_calls(nas, "diff")][-2:] == [
        [PREV, NEW],
        [f"{DATASET}/photos@{PREFIX}-prev", f"{DATASET}/photos@{PREFIX}-new"],
    ]
    assert nas.snapshot_txgs()[PREV] > first_prev  # rotated: the new snapshot is prev now
    assert NEW not in nas.snapshots()
    values = nas.pushes()[-1][2]
    assert values["offsite_sync_files_copied"] == len(copied)
    assert values["offsite_sync_bytes_copied"] == sum(len(source[p]) for p in copied)


def test_the_full_sync_removes_what_was_deleted(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas(full_sync_by="script")
    nas.ok("incremental")
    (nas.mount / "docs" / "gone.txt").unlink()
    (nas.mount / "docs" / "sub").rename(nas.mount / "docs" / "sub2")
    nas.ok("incremental")
    assert "docs/gone.txt" in files_below(nas.dest)
    done = nas.ok("full")
    assert "deletions included" in done.stderr
    assert files_below(nas.dest) == nas.expected()
    method, path, values, _ = nas.pushes()[-1]
    assert (method, path) == ("PUT", "/metrics/job/offsite-sync/sync/full")
    assert values["offsite_sync_last_run_success"] == 1
    assert sorted(zfs_calls(nas, "snapshot")) == sorted(
        [["snapshot", "-r", NEW], ["snapshot", "-r", NEW]]
    )  # the full sync takes no snapshot


def test_a_new_child_dataset_makes_rclone_walk_the_tree(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    nas.ok("incremental")
    nas.write("music/song.flac", "in a new dataset\n")
    nas.add_dataset(f"{DATASET}/music", nas.mount / "music")
    done = nas.ok("incremental")
    assert f"{DATASET}/music has no @{PREFIX}-prev (a new dataset)" in done.stderr
    assert files_below(nas.dest) == nas.expected()
    assert f"{DATASET}/music@{PREFIX}-prev" in nas.snapshots()


def test_an_unmounted_child_dataset_is_skipped(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    nas.ok("incremental")
    state = json.loads((nas.root / "zfs.json").read_text())
    state["unmounted"] = [f"{DATASET}/photos"]  # e.g. a locked encrypted dataset
    (nas.root / "zfs.json").write_text(json.dumps(state))
    nas.write("docs/a.txt", "alpha, changed\n")
    done = nas.ok("incremental")
    assert f"skipping {DATASET}/photos: not mounted" in done.stderr
    assert "copying 1 changed files" in done.stderr
    assert files_below(nas.dest)["docs/a.txt"] == b"alpha, changed\n"


def test_more_changes_than_the_limit_make_rclone_walk_the_tree(
    make_nas: Callable[..., Nas],
) -> None:
    nas = make_nas(max_changes=2)
    nas.ok("incremental")
    nas.tamper("docs/untouched.txt")
    for n in range(3):
        nas.write(f"docs/many-{n}.txt", f"{n}\n")
    done = nas.ok("incremental")
    assert "copying the whole tree: 3 changed files, more than 2" in done.stderr
    assert files_below(nas.dest) == nas.expected()  # the tampered file was put right


def test_a_name_with_a_newline_makes_rclone_walk_the_tree(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    nas.ok("incremental")
    nas.write("docs/two\nlines.txt", "a name one line cannot hold\n")
    done = nas.ok("incremental")
    assert "holds a newline" in done.stderr
    assert files_below(nas.dest) == nas.expected()


def test_a_stale_new_snapshot_is_replaced(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    assert nas.zfs("snapshot", "-r", NEW).returncode == 0
    done = nas.ok("incremental")
    assert f"destroying {NEW}, left by a failed run" in done.stderr
    assert NEW not in nas.snapshots() and PREV in nas.snapshots()


def test_a_failed_copy_keeps_prev_and_reports_the_failure(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas()
    nas.ok("incremental")
    before = nas.snapshot_txgs()
    nas.write("docs/a.txt", "changed while the offsite NAS is down\n")
    nas.sftp.stop()
    done = nas.run("incremental")
    assert done.returncode != 0
    assert nas.snapshot_txgs() == before  # prev kept as it was, the stray new destroyed
    method, path, values, _ = nas.pushes()[-1]
    assert (method, path) == ("POST", "/metrics/job/offsite-sync/sync/incremental")
    assert values == {"offsite_sync_last_run_success": 0}
    assert len(nas.pushes()) == 2


def test_a_run_that_finds_the_lock_taken_exits_75_and_pushes_nothing(
    make_nas: Callable[..., Nas],
) -> None:
    nas = make_nas(full_sync_by="script")
    with open(nas.env["OFFSITE_SYNC_LOCK"], "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for mode in ("incremental", "full"):
            done = nas.run(mode)
            assert done.returncode == 75, done.stderr
            assert "holds" in done.stderr
    assert nas.pushgateway.pushes == []
    assert zfs_calls(nas, "snapshot") == [] and nas.snapshots() == []
    nas.ok("incremental")  # the lock released, the next run goes ahead


def test_with_a_cloud_sync_task_the_script_has_no_full_mode(
    make_nas: Callable[..., Nas],
) -> None:
    nas = make_nas(full_sync_by="cloudsync", cloudsync_credential="offsite")
    done = nas.run("full")
    assert done.returncode == 64
    assert "Cloud Sync task" in done.stderr
    assert "rclone sync" not in (nas.install / "offsite-sync.sh").read_text().split("set -eu")[1]
    assert nas.pushgateway.pushes == [] and nas.snapshots() == []
    cron = (nas.install / "offsite-sync.cron").read_text()
    entries = [line for line in cron.splitlines() if not line.startswith("#")]
    assert [e for e in entries if "offsite-sync.sh" in e] == [
        "57 4,10,16,22 * * * root /root/offsite/offsite-sync.sh incremental"
        " >> /var/log/offsite-sync.log 2>&1"
    ]
    assert "Cloud Sync task" in cron


def test_a_named_remote_of_the_rclone_config(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas(rclone_remote="offsite")
    Path(nas.env["RCLONE_CONFIG"]).write_text(
        "[offsite]\ntype = sftp\nhost = 127.0.0.1\n"
        f"port = {nas.sftp.port}\nuser = backup\nkey_file = {nas.root / 'id_ed25519'}\n"
    )
    assert "DESTINATION=offsite:/Backup/nas" in (nas.install / "offsite-sync.sh").read_text()
    nas.ok("incremental")
    assert files_below(nas.dest) == nas.expected()


def alert_series(rules: Path) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Each (metric, label matchers) an offsite alert expression selects."""
    found = set()
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            for name, matchers in re.findall(r"(offsite_sync_\w+)\{([^}]*)\}", rule["expr"]):
                pairs = re.findall(r'(\w+)="([^"]*)"', matchers)
                found.add((name, tuple(sorted(pairs))))
    return found


def test_the_pushed_series_are_what_the_alerts_read(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas(full_sync_by="script")
    nas.ok("incremental")
    nas.ok("full")
    pushed = [
        {"__name__": name, **labels}
        for (_, _, values, label_sets) in nas.pushes()
        for name, labels in zip(values, label_sets, strict=True)
    ]
    wanted = alert_series(nas.install / "offsite.rules.yaml")
    assert {name for name, _ in wanted} == {
        "offsite_sync_last_success_timestamp",
        "offsite_sync_last_run_success",
    }
    assert {dict(m).get("sync") for _, m in wanted} == {"incremental", "full"}
    for name, matchers in wanted:
        assert any(
            p["__name__"] == name and all(p.get(k) == v for k, v in matchers) for p in pushed
        ), (name, matchers)
    for sample in pushed:
        assert sample["job"] == "offsite-sync"


def test_the_cron_lines_run_both_modes_as_root(make_nas: Callable[..., Nas]) -> None:
    nas = make_nas(full_sync_by="script", full_sync="monthly-first-sunday")
    cron = (nas.install / "offsite-sync.cron").read_text()
    entries = [line.split() for line in cron.splitlines() if line and line[0].isdigit()]
    assert [e[5:8] for e in entries] == [
        ["root", "/root/offsite/offsite-sync.sh", "incremental"],
        ["root", "/root/offsite/offsite-sync.sh", "full"],
    ]
    assert entries[1][2] == "1-7" and entries[1][8:10] == ["--only-on-weekday", "0"]
    assert all(e[-3:] == [">>", "/var/log/offsite-sync.log", "2>&1"] for e in entries)
    assert "Etc/UTC" in cron and "%" not in cron
    done = nas.run("full", "--only-on-weekday", "7")
    assert done.returncode == 64
