"""The site's own Sphinx extensions (loaded by docs/conf.py).

* :mod:`.apiref`: the API reference, one entry per public object, from ``__all__``
  (:mod:`.public` decides where each object is documented; no Sphinx needed there).
* :mod:`.nav`: the navigation, with every page of docs/ in it.
* :mod:`.testlinks`: ``tests/...py::name`` citations become links to the test's source
  (:mod:`.citations` resolves them; no Sphinx needed there, the default test suite uses it).
* :mod:`.pictures`: diagrams and plots drawn at build time from the code and from real runs
  (:mod:`.failover_runs` records the failover timelines).
* :mod:`.changelog`: the changelog, from git history, grouped by issue.
* :mod:`.linkcheck`: every internal link and anchor of the built site resolves (offline).
"""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> dict[str, Any]:
    from . import apiref, changelog, linkcheck, nav, pictures, testlinks

    for module in (apiref, changelog, linkcheck, nav, pictures, testlinks):
        module.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
