"""The layers: the sans-I/O core imports with trio, socket, ssl and dns unavailable, and the
shell's layers import downwards only (transports -> stack -> failover -> ua -> endpoint /
proxy -> cli; LAYERS below)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
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


# ---------------------------------------------------------------------- the shell's order

PACKAGE = REPO / "trio_sip"

#: The layers, lowest first: a module may import its own layer and the layers below it, never
#: one above (issue #13: transports -> stack -> failover -> ua -> endpoint / proxy -> cli).
#: Keys are trio_sip's top-level modules and packages; every one must be placed here.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # The sans-I/O core, and the exception tree it raises (a leaf: test_exports.py).
    ("core", frozenset({"proto", "errors"})),
    # Shell services every layer may use: nurseries, fault counters, the timer queue, DNS,
    # the location stores.
    ("services", frozenset({"_groups", "_faults", "drivers", "dns", "location"})),
    # Flows, the connection pool, and the keep-alive loops that run on them.
    ("transports", frozenset({"transports", "keepalive"})),
    # The in-memory network and fake DNS: they implement the transports' interface.
    ("testing", frozenset({"testing"})),
    # Typed settings and the application's input checks (the stack validates its arguments
    # with them: stack -> _inputs -> config).
    ("settings", frozenset({"config", "_inputs"})),
    ("stack", frozenset({"stack"})),
    ("failover", frozenset({"failover"})),
    ("ua", frozenset({"ua"})),
    # Siblings: the geo-redundant endpoint, and the SIP site (proxy and its registrar).
    ("endpoint / proxy", frozenset({"endpoint", "proxy", "registrar"})),
    # N processes sharing the listening sockets (serve --workers): uses the transports only.
    ("workers", frozenset({"workers"})),
    # The public API (trio_sip/__init__.py re-exports every layer below).
    ("api", frozenset({"__init__"})),
    ("cli", frozenset({"cli", "__main__"})),
)

#: Imports that go up a layer on purpose: (importer, imported) -> why. Empty: there are none
#: (TYPE_CHECKING imports included). Add one only with its reason.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = REPO.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path, name: str | None = None) -> Iterator[tuple[str, int, bool]]:
    """(imported trio_sip module, line, under TYPE_CHECKING) for every import in ``path`` (the
    module ``name``, by default from its place in the package), at module level or inside
    functions."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(sub) for sub in ast.walk(node))
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            targets = [
                f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names
            ]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target == "trio_sip" or target.startswith("trio_sip."):
                yield target, node.lineno, id(node) in typing_only


def _top(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _rank(top: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"trio_sip.{top} is in no layer: add it to LAYERS in {__file__}")


def _violations() -> list[tuple[str, str, str]]:
    """(importer module, imported module, where) for every import that goes up a layer."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        for target, line, typing_only in _imports(path):
            if _rank(_top(target)) > _rank(_top(importer)):
                kind = "TYPE_CHECKING import" if typing_only else "import"
                found.append((importer, target, f"{path.relative_to(REPO)}:{line} ({kind})"))
    return found


def test_every_top_level_module_has_a_layer() -> None:
    tops = [p.stem for p in PACKAGE.glob("*.py")]
    tops += [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    assert "stack" in tops and "errors" in tops
    for top in tops:
        _rank(top)  # raises, naming the module, when it has no layer
    placed = [m for _, members in LAYERS for m in members]
    assert len(placed) == len(set(placed))


def test_a_lower_layer_never_imports_a_higher_one() -> None:
    """transports -> stack -> failover -> ua -> endpoint / proxy -> cli (LAYERS), every
    import counted: module level, inside functions, and under TYPE_CHECKING."""
    found = _violations()
    unexplained = [v for v in found if (v[0], v[1]) not in ALLOWED_UPWARD]
    assert unexplained == [], "\n".join(
        f"{where}: {a} ({LAYERS[_rank(_top(a))][0]}) imports {b} ({LAYERS[_rank(_top(b))][0]})"
        for a, b, where in unexplained
    )
    stale = set(ALLOWED_UPWARD) - {(a, b) for a, b, _ in found}
    assert not stale, f"ALLOWED_UPWARD lists imports that no longer exist: {sorted(stale)}"


def test_the_core_imports_only_the_core_and_the_exception_tree() -> None:
    """proto/ may import trio_sip.proto.* and trio_sip.errors (a leaf), nothing else of
    trio_sip, TYPE_CHECKING imports included."""
    bad = [
        f"{path.relative_to(REPO)}:{line} {target}"
        for path in sorted((PACKAGE / "proto").rglob("*.py"))
        for target, line, _ in _imports(path)
        if _top(target) not in ("proto", "errors")
    ]
    assert bad == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk resolves relative imports and sees imports under TYPE_CHECKING and inside
    functions (so the test above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..proto import message\n"
        "if TYPE_CHECKING:\n"
        "    from ..ua import UserAgent\n"
        "def f():\n"
        "    from trio_sip.endpoint import open_endpoint\n"
    )
    seen = [(t, tc) for t, _, tc in _imports(probe, "trio_sip.stack._probe")]
    assert seen == [
        ("trio_sip.proto.message", False),
        ("trio_sip.ua", True),
        ("trio_sip.endpoint", False),
    ]
    stack = _rank("stack")
    assert [t for t, _ in seen if _rank(_top(t)) > stack] == ["trio_sip.ua", "trio_sip.endpoint"]
