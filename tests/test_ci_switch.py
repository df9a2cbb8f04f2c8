"""The CI switch: with TRIO_SIP_REQUIRE_PEERS=1 an interop test that skips fails the run."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest

@pytest.mark.interop
def test_needs_a_peer():
    pytest.skip("Debian package sip-tester is not installed")

@pytest.mark.interop
def test_runs():
    pass

def test_plain_skip():
    pytest.skip("not a peer test")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makeini("[pytest]\nmarkers =\n    interop: real peers\n")
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_skip_is_a_skip_without_the_switch(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIO_SIP_REQUIRE_PEERS", raising=False)
    result = suite.runpytest_inprocess()
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["interop: 1 passed, 0 failed, 1 skipped"])


def test_interop_skip_fails_with_the_switch(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIO_SIP_REQUIRE_PEERS", "1")
    result = suite.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*TRIO_SIP_REQUIRE_PEERS*sip-tester is not installed*",
            "interop: 1 passed, 1 failed, 0 skipped",
        ]
    )
