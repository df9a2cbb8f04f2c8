"""The site's navigation: hidden toctrees appended to the index page at read time.

docs/index.md stays a plain Markdown page that reads well on its own; the sidebar comes from
:data:`NAV`. Pages in :data:`OPTIONAL` are listed only when they exist (others write them);
any other page of docs/ that :data:`NAV` does not name is listed under "More", so a page
added by someone else is in the site at once and the build (``-W``) never fails for it.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

NAV: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Start here", ("install", "quickstart", "tutorial", "cli", "migration")),
    (
        "Guides",
        (
            "calls",
            "registration",
            "endpoint",
            "configuration",
            "keepalive",
            "failover",
            "resolution",
            "testing",
        ),
    ),
    (
        "Protocol layers",
        (
            "architecture",
            "messages",
            "transactions",
            "stack",
            "transports",
            "dialogs",
            "sdp",
            "auth",
            "proxy",
        ),
    ),
    ("Reference", ("reference/index", "errors", "security")),
    ("Operations", ("interop", "scaling", "workers", "benchmarks")),
    ("Project", ("changelog", "site")),
)
#: Pages other work writes: in the navigation when present, left out (no stub) when not.
OPTIONAL = frozenset({"errors", "interop", "scaling"})
#: Pages reached from another page's toctree rather than from the sidebar's top level.
NESTED_PREFIXES = ("reference/",)


def top_level_pages(srcdir: Path) -> list[str]:
    return sorted(
        p.stem for p in srcdir.glob("*.md") if p.stem != "index" and not p.stem.startswith("_")
    )


def toctrees(srcdir: Path) -> str:
    """The MyST source of the hidden toctrees for ``srcdir``."""
    present = set(top_level_pages(srcdir))
    listed: set[str] = set()
    blocks = []
    for caption, pages in NAV:
        entries = []
        for page in pages:
            listed.add(page)
            exists = (srcdir / f"{page}.md").exists() or (srcdir / f"{page}.rst").exists()
            if exists:
                entries.append(page)
            elif page not in OPTIONAL:
                logger.warning("sitekit.nav: page %r is in NAV but docs/ has no such page", page)
        if entries:
            blocks.append(_toctree(caption, entries))
    extra = sorted(present - listed)
    if extra:
        blocks.append(_toctree("More", extra))
    return "\n".join(blocks)


def _toctree(caption: str, entries: list[str]) -> str:
    body = "\n".join(entries)
    return f"\n```{{toctree}}\n:caption: {caption}\n:hidden:\n:maxdepth: 2\n\n{body}\n```\n"


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if docname == "index":
        source[0] = source[0] + "\n" + toctrees(Path(app.srcdir))


def _always_outdated(
    app: Sphinx, env: object, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    # The index's toctrees depend on which pages exist; the changelog on git history.
    return [
        name
        for name in ("index", "changelog")
        if (Path(app.srcdir) / name).with_suffix(".md" if name == "index" else ".rst").exists()
    ]


def setup(app: Sphinx) -> None:
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _always_outdated)
