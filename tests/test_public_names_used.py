"""The public API has a test per name (issue #18).

Every name in ``__all__`` of ``trio_sip``, ``trio_sip.proto``, ``trio_sip.testing`` and
``trio_sip.errors`` must be *used* by at least one test: a static scan of tests/ (this file
left out) finds every object a test reaches through a ``trio_sip`` import, ``from trio_sip.x
import Name`` or ``module.Name``, in code (a call, an ``isinstance``, an attribute read, a
base class), not in an annotation, not in a string and not by the import alone: a type a test
only annotates with is not checked by it (an ``isinstance`` on the values a test receives
is). A name is checked by identity, so a re-export counts for the object it re-exports. The
few names that need no test of their own go in ``ALLOWED`` with the reason, reviewed like
code; an entry that a test does use is an error too, so the list cannot rot.
"""

from __future__ import annotations

import ast
import functools
import importlib
import types
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MODULES = ("trio_sip", "trio_sip.proto", "trio_sip.testing", "trio_sip.errors")

#: "module.Name" -> why no test needs to use it. Reviewed: keep it short.
ALLOWED: dict[str, str] = {}


def public_names() -> list[tuple[str, str]]:
    return [(m, n) for m in MODULES for n in importlib.import_module(m).__all__]


def _module(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _annotations(tree: ast.AST) -> set[int]:
    """ids of the nodes inside annotations (a type named there is not exercised)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        roots: list[ast.AST | None] = []
        if isinstance(node, (ast.arg, ast.AnnAssign)):
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.append(node.returns)
        for root in roots:
            if root is not None:
                inside.update(id(n) for n in ast.walk(root))
    return inside


def used_objects(path: Path) -> set[int]:
    """ids of the trio_sip objects the code of one test module uses."""
    tree = ast.parse(path.read_text(), str(path))
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "trio_sip":
                    if alias.asname:
                        names[alias.asname] = _module(alias.name)
                    else:
                        names["trio_sip"] = _module("trio_sip")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "trio_sip":
                continue
            module = _module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:  # a submodule not imported by its package
                    value = _module(f"{node.module}.{alias.name}")
                names[alias.asname or alias.name] = value

    def resolve(expr: ast.expr) -> object:
        if isinstance(expr, ast.Name):
            return names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = resolve(expr.value)
            if isinstance(base, types.ModuleType):
                return getattr(base, expr.attr, None)
        return None

    skip = _annotations(tree)
    used: set[int] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        loaded = isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load)
        if loaded and (value := resolve(node)) is not None:
            used.add(id(value))
    return used


@functools.cache
def exercised() -> frozenset[int]:
    found: set[int] = set()
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() != Path(__file__).resolve():
            found |= used_objects(path)
    return frozenset(found)


@pytest.mark.parametrize(("module", "name"), public_names(), ids=lambda v: v)
def test_public_name_is_used_by_a_test(module: str, name: str) -> None:
    value = getattr(importlib.import_module(module), name)  # every name in __all__ exists
    used = id(value) in exercised()
    qualified = f"{module}.{name}"
    if qualified in ALLOWED:
        assert not used, f"{qualified} is used by a test now: take it off ALLOWED"
    else:
        assert used, f"no test uses {qualified}: write one (or add it to ALLOWED, with why)"


def test_all_lists_have_no_duplicates_and_allowed_names_are_public() -> None:
    for module in MODULES:
        names = importlib.import_module(module).__all__
        assert len(names) == len(set(names)), module
    assert set(ALLOWED) <= {f"{m}.{n}" for m, n in public_names()}


def test_the_scan_sees_code_and_not_imports_annotations_or_strings(tmp_path: Path) -> None:
    """The measure itself: a name only imported, annotated or quoted is not used."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import trio_sip\n"
        "from trio_sip import Held, Retrieved, parse_uri as p\n"
        "from trio_sip.proto import Timers\n"
        "from trio_sip.location import LocationStore, MemoryLocationStore\n"
        "def f(x: Timers, s: 'MemoryLocationStore') -> Retrieved:\n"
        "    y: trio_sip.Target = x\n"
        "    'Held'\n"
        "    return isinstance(x, trio_sip.SipError) and p('sip:a@b')\n"
        "class S(LocationStore):\n"
        "    pass\n"
    )
    import trio_sip
    import trio_sip.proto

    used = used_objects(sample)
    for name in (trio_sip.SipError, trio_sip.parse_uri, trio_sip.LocationStore):
        assert id(name) in used
    unused_names = (trio_sip.Held, trio_sip.Retrieved, trio_sip.proto.Timers, trio_sip.Target,
                    trio_sip.MemoryLocationStore)  # fmt: skip
    for unused in unused_names:
        assert id(unused) not in used
