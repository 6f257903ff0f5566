"""The wheel's build hook: the packaged templates compiled ahead of time.

Every template of ``templates/`` is compiled to a Python module by the same environment the
package renders with (:func:`homeops_gen.templating.compile_templates`) and shipped as
``homeops_gen/_compiled_templates``, so that an installed homeops_gen compiles no packaged
template when it starts. An editable install reads the source tree and compiles on demand.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        sys.path.insert(0, str(root))
        try:
            from homeops_gen.render import COMPILED_FOLDER
            from homeops_gen.templating import compile_templates
        finally:
            sys.path.remove(str(root))
        self._scratch = tempfile.mkdtemp(prefix="homeops_gen-templates-")
        compile_templates(root / "templates", Path(self._scratch))
        build_data["force_include"][self._scratch] = f"homeops_gen/{COMPILED_FOLDER}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
