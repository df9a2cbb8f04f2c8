"""Sphinx configuration of the trio-sip documentation site (``nox -s docs`` builds it).

Sphinx, as trio itself uses, with MyST so the pages stay Markdown; autodoc for the API
reference; the site's own extensions live in ``_ext/sitekit`` (see its package docstring).
Everything the build needs is local: no theme, font, script or picture is fetched at build or
read time, so the site builds and reads offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import trio_sip  # noqa: E402

project = "trio-sip"
author = "trio-sip developers"
copyright = "trio-sip developers"
release = version = trio_sip.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sitekit",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated/*.json", "**/.ipynb_checkpoints"]
templates_path: list[str] = []

# Markdown: heading anchors as GitHub makes them, so links written for GitHub work here too.
myst_heading_anchors = 6
myst_enable_extensions = ["colon_fence", "deflist"]

# API reference
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
add_module_names = False
python_display_short_literal_types = True

html_theme = "furo"
html_title = f"trio-sip {release}"
html_static_path = ["_static"]
html_css_files = ["sitekit.css"]
html_show_sourcelink = False
html_copy_source = False

# The offline link check (sitekit.linkcheck) runs after every HTML build; the external links it
# finds are listed in _build/html/_external_links.txt and only fetched with
# TRIO_SIP_DOCS_EXTERNAL_LINKS=1 (CI has no general Internet).
