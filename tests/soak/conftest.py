"""The soak runs only when asked for by marker (``-m soak``, as ``nox -s soak`` does): it takes
minutes and real peers, so ``pytest -m "not interop"`` (the default suite) must not collect it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.option.markexpr or ""):
        return
    keep = [item for item in items if item.get_closest_marker("soak") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
