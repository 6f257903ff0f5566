"""The real robfig/cron v3, built from Debian's golang-github-robfig-cron-dev, as a test oracle.

Independent of the generator's model: the runs come from the library's own ``Next``, walked
over the whole modelled range (no windows, no calendar shortcut).
"""

from __future__ import annotations

import concurrent.futures
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
        with concurrent.futures.ThreadPoolExecutor(len(halves)) as pool:
            outputs = list(pool.map(self._run, halves))
        return [json.loads(line) for output in outputs for line in output.splitlines()]

    def _run(self, requests: list[dict[str, Any]]) -> str:
        lines = "".join(json.dumps({"guard": -1, **r}) + "\n" for r in requests)
        proc = subprocess.run(
            [str(self.binary)], input=lines, capture_output=True, text=True, check=True
        )
        return proc.stdout


@pytest.fixture(scope="session")
def robfig() -> Oracle:
    go = _require()
    folder = Path(tempfile.mkdtemp(prefix="robfig-oracle-"))
    shutil.copy(SOURCE, folder / "main.go")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(folder / "cache"),
        "GOFLAGS": "",
    }
    subprocess.run([go, "build", "-o", "oracle", "main.go"], cwd=folder, env=env, check=True)
    return Oracle(folder / "oracle")
