"""The real robfig/cron v3, built from Debian's golang-github-robfig-cron-dev, as a test oracle.

Independent of the generator's model: the runs come from the library's own ``Next``, walked
over the whole modelled range (no windows, no calendar shortcut).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).with_name("robfig_oracle.go")
GOPATH = Path("/usr/share/gocode")
LIBRARY = GOPATH / "src/github.com/robfig/cron/spec.go"


def _require() -> str:
    go = shutil.which("go")
    if go and LIBRARY.exists():
        return go
    why = "go (golang-go) and robfig/cron (golang-github-robfig-cron-dev) are needed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} under CI=true (.ci/run installs them)")
    pytest.skip(why)


class Oracle:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def ask(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per request, in order; two processes share the work (two cores)."""
        halves = [requests[: len(requests) // 2], requests[len(requests) // 2 :]]
        procs = [
            subprocess.Popen(
                [str(self.binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in halves
        ]
        outputs = []
        for proc, half in zip(procs, halves, strict=True):
            assert proc.stdin is not None
            proc.stdin.write("".join(json.dumps({"guard": -1, **r}) + "\n" for r in half))
            proc.stdin.close()
        for proc in procs:
            assert proc.stdout is not None
            outputs += proc.stdout.read().splitlines()
            assert proc.wait() == 0
        return [json.loads(line) for line in outputs]


@pytest.fixture(scope="session")
def robfig() -> Oracle:
    go = _require()
    folder = Path(tempfile.mkdtemp(prefix="robfig-oracle-"))
    shutil.copy(SOURCE, folder / "main.go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH),
           "GOCACHE": str(folder / "cache"), "GOFLAGS": ""}
    subprocess.run([go, "build", "-o", "oracle", "main.go"], cwd=folder, env=env, check=True)
    return Oracle(folder / "oracle")
