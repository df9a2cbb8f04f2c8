"""The interop matrix: every runnable (peer, scenario) cell of tests/interop/matrix.py against
real third-party SIP software on loopback. Cells that do not apply ("n-a") are not collected
(a skip is a failure in CI); the report lists them with their reason. ``nox -s interop`` prints
the matrix at the end and writes docs/interop.md from it (tests/interop/matrix_report.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from .matrix import CELLS, Ctx

pytestmark = pytest.mark.interop

RUNNABLE = [key for key, cell in CELLS.items() if cell.run is not None]


@pytest.mark.parametrize(("peer", "scenario"), RUNNABLE, ids=[f"{p}-{s}" for p, s in RUNNABLE])
async def test_matrix(peer: str, scenario: str, tmp_path: Path) -> None:
    cell = CELLS[(peer, scenario)]
    assert cell.run is not None
    try:
        with trio.fail_after(90):
            await cell.run(Ctx(peer, tmp_path))
    except Exception as exc:
        if cell.xfail:  # a known failure, reported with its reason (and run every time)
            pytest.xfail(f"{cell.xfail} -- {type(exc).__name__}: {exc}")
        raise
    if cell.xfail:
        pytest.fail(f"expected to fail ({cell.xfail}) but passed: update matrix.py")
