"""Hatchling build hook: the optional mypyc-compiled core (off unless ``TRIO_SIP_COMPILE=1``).

``TRIO_SIP_COMPILE=1 pip install .`` (or ``pip wheel .``) compiles the hot core modules (the
message layer, validation and the transaction layer) listed in
``[tool.hatch.build.targets.wheel.hooks.custom] modules`` with mypyc and puts
the extension modules into a platform wheel *beside* the unchanged ``.py`` files; Python
imports the extension when there is one. Without the variable, and for every editable install,
this hook does nothing: the wheel is pure Python and no compiler dependency is installed.

Everything is compiled in a temporary directory holding a copy of the package, so a build
never writes into the source tree (no ``*.so`` left beside the sources to shadow them in an
editable install, no ``build/`` or ``.mypy_cache`` in the repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV_VAR = "TRIO_SIP_COMPILE"
# Pinned: the compiled core is tested (nox -s tests_compiled) with this mypyc.
COMPILE_REQUIRES = ["mypy==2.4.1", "setuptools>=70"]

_SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify

modules, out, temp = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
setup(
    name="trio_sip_compiled_core",
    ext_modules=mypycify(["--cache-dir", temp + "/mypy-cache", *modules], opt_level="3"),
    script_args=["build_ext", "--build-lib", out, "--build-temp", temp + "/obj"],
)
"""


def compile_requested() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


class CompiledCoreHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        if not compile_requested():
            return []
        # mypy type-checks what the compiled modules import, so it needs the runtime deps, and
        # the optional ones too: trio_sip/__init__.py reaches the Redis location store, whose
        # annotations name coredis (imported only when a redis:// store is opened).
        extras = self.metadata.core.optional_dependencies
        return [*COMPILE_REQUIRES, *self.metadata.core.dependencies, *extras.get("redis", [])]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not compile_requested() or self.target_name != "wheel" or version == "editable":
            return
        modules = self.config.get("modules", [])
        if not modules or not all(isinstance(m, str) for m in modules):
            raise TypeError("hooks.custom.modules must be a non-empty list of paths")
        self._workdir = tempfile.mkdtemp(prefix="trio-sip-mypyc-")
        work = Path(self._workdir)
        src, out, temp = work / "src", work / "out", work / "temp"
        # A copy of the package (sources only): mypyc names modules after their paths.
        shutil.copytree(
            Path(self.root) / "trio_sip",
            src / "trio_sip",
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.pyc"),
        )
        (work / "setup_mypyc.py").write_text(_SETUP)
        proc = subprocess.run(
            [sys.executable, str(work / "setup_mypyc.py"), ",".join(modules), str(out), str(temp)],
            cwd=src,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if proc.returncode:
            raise RuntimeError(f"{ENV_VAR}=1: compiling with mypyc failed:\n{proc.stdout}")
        built = sorted(p for p in out.rglob("*") if p.suffix in (".so", ".pyd"))
        expected = {Path(m).with_suffix("").as_posix() for m in modules}
        found = {p.relative_to(out).as_posix().split(".", 1)[0] for p in built}
        if not expected <= found:
            raise RuntimeError(f"mypyc did not build {sorted(expected - found)}:\n{proc.stdout}")
        for path in built:  # the modules' shims and the shared *__mypyc library
            build_data["force_include"][str(path)] = path.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        workdir = getattr(self, "_workdir", None)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
