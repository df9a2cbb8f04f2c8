"""The site's browser tests run in ``nox -s docs`` only, against the site it has just built.

They are marked ``docs`` and deselected unless ``TRIO_SIP_DOCS_SITE`` names a built site
(``nox -s docs`` sets it to docs/_build/html), so the default suite neither runs nor skips them.
"""

from __future__ import annotations

import os

import pytest

if not os.environ.get("TRIO_SIP_DOCS_SITE"):
    # Not even imported outside nox -s docs: they need the docs extra (Sphinx, playwright).
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TRIO_SIP_DOCS_SITE"):
        return
    deselected = [item for item in items if item.get_closest_marker("docs") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("docs") is None]
