"""Every ```python block in docs/*.md runs, so the docs cannot drift from the code.

Blocks of one page share a namespace and run in order, as a reader would paste them; every
``async def main()`` a block defines is run under ``trio.run`` right after that block. Code
that is only a fragment (a signature, a sketch) is fenced as ```text or ```py instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if FENCE.search(p.read_text()))


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_page_examples_run(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(FENCE.findall(page.read_text()), 1):
        before = namespace.get("main")
        code = compile(block, f"{page.name} block {number}", "exec")
        exec(code, namespace)
        main = namespace.get("main")
        if callable(main) and main is not before:
            trio.run(main)  # every main a page defines runs, where it is defined


def test_readme_example_runs() -> None:
    """The README's Python example runs as written (it places, holds, retrieves and ends a call)."""
    (block,) = FENCE.findall((DOCS.parent / "README.md").read_text())
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)


def test_examples_type_check() -> None:
    """``mypy --strict`` is clean on every page's examples and the README's
    (tests/typecheck_docs.py; also a step of ``nox -s typecheck``, where mypy is installed)."""
    pytest.importorskip("mypy", reason="mypy is installed by nox -s typecheck, which runs this")
    from .typecheck_docs import ROOT, check

    pages = [p for p in [*DOCS.glob("*.md"), ROOT / "README.md"] if FENCE.search(p.read_text())]
    status, report = check(ROOT / ".mypy_cache")
    # Every page with examples is a module (and the package's __init__).
    assert (status, report) == (0, f"Success: no issues found in {len(pages) + 1} source files\n")
