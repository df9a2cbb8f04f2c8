"""The built site in a real browser: headless Chromium (Debian ``chromium``) driven by Playwright.

For the index, the quickstart, the migration page and the failover page: the page loads over
HTTP from a local server, its headings are the ones we wrote, and every picture on it loaded
(``naturalWidth > 0``, after scrolling it into view). The site's search finds
``sip_transaction_timeout``. A full-page screenshot of each is saved in
``$TRIO_SIP_DOCS_SHOTS`` (``nox -s docs``: docs/_build/screenshots/), for a person to look at.

Run by ``nox -s docs`` after it builds the site (``TRIO_SIP_DOCS_SITE``); the Chromium flags
are the ones this machine needs (no sandbox as root, no background networking: there is no
Internet to reach).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docs

SITE = Path(os.environ.get("TRIO_SIP_DOCS_SITE", "docs/_build/html"))
SHOTS = Path(os.environ.get("TRIO_SIP_DOCS_SHOTS", "docs/_build/screenshots"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: page -> (its h1, h2s it must have, least number of pictures)
PAGES: dict[str, tuple[str, list[str], int]] = {
    "index.html": ("trio-sip documentation", ["Start here", "High availability", "Project"], 0),
    "quickstart.html": (
        "Quickstart",
        ["The demo: one endpoint, two sites, one of them dies", "Ten lines of your own"],
        0,
    ),
    "migration.html": (
        "Migrating from the SDKs trio-sip replaces",
        [
            "LanScape VoIP Media Engine: SendSipKeepAlive",
            "SIP Endpoint SDK: the connection manager",
            "JAIN-SIP: javax.sip.Timeout",
        ],
        0,
    ),
    "failover.html": (
        "Failover across proxies: trio_sip.failover",
        ["Timelines recorded from runs"],
        4,
    ),
}


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian package chromium is not installed (nox -s docs installs it as root)")
    return found


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: build it first (nox -s docs)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def _texts(page: Any, selector: str) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(
        selector, "els => els.map(e => e.textContent.replace(/[\\u00b6#]/g, '').trim())"
    )
    return texts


@pytest.mark.parametrize("name", list(PAGES))
def test_page_headings_and_pictures(site_url: str, page: Any, name: str) -> None:
    h1, h2s, least_pictures = PAGES[name]
    response = page.goto(site_url + name, wait_until="load")
    assert response is not None and response.ok, f"{name}: HTTP {response and response.status}"
    assert _texts(page, "article h1") == [h1]
    headings = _texts(page, "article h2")
    for wanted in h2s:
        assert wanted in headings, f"{name}: no heading {wanted!r} in {headings}"
    # Every picture, scrolled into view (a lazy one loads then), decoded and with a size.
    count = page.evaluate("() => document.images.length")
    for i in range(count):
        image = page.locator("img").nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("i => document.images[i].complete", arg=i, timeout=15_000)
    sizes = page.evaluate(
        "() => Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    content = [(src, width) for src, width in sizes if "_static" not in (src or "")]
    assert len(content) >= least_pictures, f"{name}: pictures {content}"
    broken = [src for src, width in sizes if width <= 0]
    assert not broken, f"{name}: pictures that did not load: {broken}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{Path(name).stem}.png"), full_page=True)


def test_search_finds_sip_transaction_timeout(site_url: str, page: Any) -> None:
    page.goto(site_url + "search.html?q=sip_transaction_timeout", wait_until="load")
    # Results appear one by one; the status line says when the search has finished.
    page.wait_for_function(
        "() => /Search finished/.test(document.querySelector('#search-results')?.innerText)",
        timeout=30_000,
    )
    links = page.eval_on_selector_all(
        "#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))"
    )
    pages = {link.split("#")[0].split("?")[0] for link in links}
    assert "migration.html" in pages, links
    assert "configuration.html" in pages, links
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "search.png"), full_page=False)
