"""Test citations in the docs (``tests/shell/test_x.py::test_y``): find them, resolve them.

Pure Python (no Sphinx): the site build (:mod:`.testlinks`) and the default test suite
(tests/test_docs_citations.py) use the same rules.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

#: ``path``, ``path::name``, ``path::Class::method``, each maybe with ``[parameters]``.
CITATION = re.compile(r"tests/[\w/]+\.py(?:::\w+(?:::\w+)*)?(?:\[[^\]\s]*\])?")


@functools.cache
def definitions(path: Path) -> dict[str, int]:
    """{"name" or "Class::method": line} for the functions and classes of a test file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, int] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found[prefix + node.name] = node.lineno
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}::")

    visit(tree.body, "")
    return found


def resolve(root: Path, citation: str) -> tuple[str, int] | str:
    """(file, line) for a citation, or the reason it does not resolve."""
    text = citation.split("[", 1)[0]
    path, _, name = text.partition("::")
    file = root / path
    if not file.is_file():
        return f"no file {path}"
    if not name:
        return path, 1
    line = definitions(file).get(name)
    if line is None:
        return f"{path} has no test {name!r}"
    return path, line


def find(text: str) -> Iterator[str]:
    """Every citation in a page's text."""
    for match in CITATION.finditer(text):
        yield match.group(0)
