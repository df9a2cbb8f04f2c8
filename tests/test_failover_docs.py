"""docs/failover.md names the tests that show each timeline: every one of them exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_test_named_in_failover_md_exists() -> None:
    text = (ROOT / "docs" / "failover.md").read_text()
    cited: list[tuple[str, str]] = []
    path = ""
    for match in re.finditer(r"(tests/[\w/]+\.py)?::(\w+)", text):
        path = match.group(1) or path  # "::name" goes on with the file named last
        cited.append((path, match.group(2)))
    assert len(cited) > 30
    missing = []
    for path, name in cited:
        tree = ast.parse((ROOT / path).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)}
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert missing == []
