"""Citations of tests become links to the test's source, and a citation that rots fails the build.

Pages name the test that shows a behaviour as ``tests/shell/test_x.py::test_y`` (also
``path::Class::method``, ``path::name[param]``, or just ``path``), in code or in plain text.
Each one becomes a link to a page of the site that shows that test file, highlighted, at the
line where the test is defined (``_tests/<path>.html#L-<line>``). A citation whose file or
name does not exist is a warning, so ``nox -s docs`` (``-W``) fails;
tests/test_docs_citations.py checks the same in the default test suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

from .citations import CITATION, resolve

logger = logging.getLogger(__name__)

PAGE_PREFIX = "_tests/"


def repository(app: Sphinx) -> Path:
    return Path(app.srcdir).parent


def page_name(path: str) -> str:
    return PAGE_PREFIX + path.removesuffix(".py")


def _link(app: Sphinx, docname: str, citation: str, child: nodes.Node) -> nodes.Node:
    found = resolve(repository(app), citation)
    if isinstance(found, str):
        logger.warning(
            "test citation %r does not resolve: %s",
            citation,
            found,
            location=(docname, getattr(child, "line", None)),
        )
        return child
    path, line = found
    cited: set[str] = app.env.sitekit_cited_tests  # type: ignore[attr-defined]
    cited.add(path)
    uri = app.builder.get_relative_uri(docname, page_name(path)) + f"#L-{line}"
    ref = nodes.reference("", "", internal=True, refuri=uri, classes=["test-citation"])
    ref += child
    return ref


def _skip(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.reference | nodes.literal_block | nodes.raw | nodes.comment):
            return True
        parent = parent.parent
    return False


def _doctree_read(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    if not hasattr(app.env, "sitekit_cited_tests"):
        app.env.sitekit_cited_tests = set()  # type: ignore[attr-defined]
    for literal in list(doctree.findall(nodes.literal)):
        text = literal.astext()
        if CITATION.fullmatch(text) and not _skip(literal):
            literal.parent.replace(literal, _link(app, docname, text, literal.deepcopy()))
    for text_node in list(doctree.findall(nodes.Text)):
        if _skip(text_node) or isinstance(text_node.parent, nodes.literal):
            continue
        text = str(text_node)
        if "tests/" not in text or not CITATION.search(text):
            continue
        pieces: list[nodes.Node] = []
        at = 0
        for match in CITATION.finditer(text):
            if match.start() > at:
                pieces.append(nodes.Text(text[at : match.start()]))
            pieces.append(_link(app, docname, match.group(0), nodes.Text(match.group(0))))
            at = match.end()
        if at < len(text):
            pieces.append(nodes.Text(text[at:]))
        text_node.parent.replace(text_node, pieces)


def _merge(app: Sphinx, env: Any, docnames: set[str], other: Any) -> None:
    env.sitekit_cited_tests = getattr(env, "sitekit_cited_tests", set()) | getattr(
        other, "sitekit_cited_tests", set()
    )


def _pages(app: Sphinx) -> Iterator[tuple[str, dict[str, Any], str]]:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    root = repository(app)
    cited = sorted(getattr(app.env, "sitekit_cited_tests", set()))
    formatter = HtmlFormatter(
        linenos="inline", lineanchors="L", anchorlinenos=True, cssclass="highlight"
    )
    for path in cited:
        if not (root / path).is_file():
            continue
        code = highlight((root / path).read_text(), PythonLexer(), formatter)
        body = (
            f"<h1>{path}</h1>\n<p>A test that the documentation cites, as it is in the "
            "repository. Run it with <code>pytest " + path + "</code>.</p>\n"
            f'<div class="highlight-python notranslate">{code}</div>'
        )
        yield page_name(path), {"title": path, "body": body}, "page.html"


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", _doctree_read)
    app.connect("env-merge-info", _merge)
    app.connect("html-collect-pages", _pages)
