"""Hooks of the interop suites: the matrix report (tests/interop/matrix_report.py)."""

from __future__ import annotations

from typing import Any

import pytest

from . import matrix_report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    matrix_report.record(item, outcome.get_result())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    matrix_report.finish(terminalreporter)
