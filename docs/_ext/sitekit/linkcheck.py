"""The offline link check: every internal link, image and anchor of the built site resolves.

Runs when an HTML build finishes and reads the written pages, so it checks what a browser will
follow: ``href`` and ``src`` to other pages and files, and ``#fragment`` anchors (an ``id`` in
the target page). A broken one is a warning, so ``nox -s docs`` (``-W``) fails.

External links (``http:``, ``https:``) are never required to be online: they are listed in
``_external_links.txt`` beside the site and fetched only when ``TRIO_SIP_DOCS_EXTERNAL_LINKS=1``
(a failed fetch is then a warning too). CI has no general Internet, so it does not set it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link", "area")) or (
                name == "src" and tag in ("img", "script", "iframe", "source")
            ):
                self.links.append(value)


def parse_site(root: Path) -> dict[Path, _Page]:
    pages = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path] = page
    return pages


def check_site(root: Path) -> tuple[list[str], set[str]]:
    """(problems, external links) for the site built in ``root``."""
    pages = parse_site(root)
    problems: list[str] = []
    external: set[str] = set()
    for path, page in pages.items():
        where = path.relative_to(root)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                external.add(link)
                continue
            if parts.scheme or link.startswith("//"):  # mailto:, data:, javascript:
                continue
            target_path, fragment = urldefrag(link)
            target_path = urlsplit(target_path).path
            target = (path.parent / unquote(target_path)).resolve() if target_path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: link to missing {link}")
                continue
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(fragment) not in ids:
                    problems.append(f"{where}: link to missing anchor {link}")
    return problems, external


def fetch_external(links: set[str]) -> list[str]:
    problems = []
    for link in sorted(links):
        request = urllib.request.Request(link, method="HEAD", headers={"User-Agent": "linkcheck"})
        try:
            with urllib.request.urlopen(request, timeout=15):
                pass
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            problems.append(f"external link {link}: {exc}")
    return problems


def _build_finished(app: Sphinx, exception: BaseException | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.outdir)
    problems, external = check_site(root)
    (root / "_external_links.txt").write_text("".join(f"{link}\n" for link in sorted(external)))
    if os.environ.get("TRIO_SIP_DOCS_EXTERNAL_LINKS") == "1":
        problems += fetch_external(external)
    for problem in problems:
        logger.warning("link check: %s", problem)
    logger.info(
        "link check: %d pages, %d problems, %d external links listed (not fetched)",
        len(list(root.rglob("*.html"))),
        len(problems),
        len(external),
    )


def setup(app: Sphinx) -> None:
    app.connect("build-finished", _build_finished)
