"""The sans-I/O core must import with trio, socket, ssl and dns unavailable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import trio_sip.proto

REPO = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    root = Path(trio_sip.proto.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def test_core_imports_without_io_modules() -> None:
    modules = core_modules()
    assert "trio_sip.proto" in modules and len(modules) > 1
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc

        BLOCKED = ("trio", "socket", "ssl", "dns", "asyncio", "select", "selectors")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked in the core: " + name)
                return None

        for name in list(sys.modules):
            if name.split(".")[0] in BLOCKED:
                del sys.modules[name]
        sys.meta_path.insert(0, Block())
        # The core must stand alone: load it under a bare parent package, so the shell's
        # trio_sip/__init__.py (which imports trio) does not run.
        import types
        parent = types.ModuleType("trio_sip")
        parent.__path__ = [{str(REPO / "trio_sip")!r}]
        sys.modules["trio_sip"] = parent
        import importlib
        for mod in {modules!r}:
            importlib.import_module(mod)
        bad = [n for n in sys.modules if n.split(".")[0] in BLOCKED]
        assert not bad, bad
        print("ok", len({modules!r}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
