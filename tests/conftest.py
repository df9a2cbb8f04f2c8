"""Shared fixtures: where the conformance corpus lives."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent

# The shell tests' helper modules are not test modules (no test_ prefix): rewrite their asserts
# as pytest does for test modules, so a failing check inside a helper still explains itself.
pytest.register_assert_rewrite(
    *(f"tests.shell.{name}_support" for name in ("endpoint", "failover", "proxy", "retry", "stack"))
)

# The library's default resolver (trio_sip.dns.default_resolver) asks the system's DNS; tests
# send traffic to loopback only, so by default it asks a loopback port where nothing listens
# (a lookup fails at once). Tests of the default itself set or remove this.
os.environ.setdefault("TRIO_SIP_DNS_SERVER", "127.0.0.1:9")

# Hypothesis times each example (deadline, 200 ms) and the drawing of inputs (too_slow): both
# are wall-clock thresholds, which a loaded machine fails with no bug in the code (seen under
# stress-ng: "only generated 8 valid inputs after 1.13 seconds"). The properties are checked
# as written; how fast the code is, is benchmarks/' and tests/proto/test_linear.py's (CPU time).
settings.register_profile("trio-sip", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("trio-sip")


def corpus_root() -> Path:
    """The corpus folder: ``$TRIO_SIP_CORPUS`` or ``../shared/corpus`` beside the repository."""
    env = os.environ.get("TRIO_SIP_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def load_manifest() -> dict[str, Any]:
    root = corpus_root()
    path = root / "manifest.toml"
    if not path.exists():
        raise RuntimeError(
            f"conformance corpus not found at {root}: set TRIO_SIP_CORPUS or put shared/ beside"
            " the repository"
        )
    return tomllib.loads(path.read_text())


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_root()


#: Marks whose tests need real peers (Debian packages, root, nftables). With
#: ``TRIO_SIP_REQUIRE_PEERS=1`` (set by .ci/run) a skip among them is a failure: CI cannot be
#: green with a peer missing, an install failed or nftables unusable.
PEER_MARKS = ("interop", "attack", "soak", "cluster")


def peers_required() -> bool:
    return os.environ.get("TRIO_SIP_REQUIRE_PEERS", "") not in ("", "0")


def _peer_mark(item: pytest.Item) -> str | None:
    return next((m for m in PEER_MARKS if item.get_closest_marker(m) is not None), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and peers_required():
        mark = _peer_mark(item)
        if mark is not None:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = (
                f"{mark} test skipped with TRIO_SIP_REQUIRE_PEERS set (a skip is a failure "
                f"here): {reason}"
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per peer suite: ``interop: 33 passed, 0 failed, 0 skipped``."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            keywords = getattr(report, "keywords", {})
            mark = next((m for m in PEER_MARKS if m in keywords), None)
            if mark is not None:
                counts.setdefault(mark, {"passed": 0, "failed": 0, "skipped": 0})[outcome] += 1
    for mark, c in sorted(counts.items()):
        terminalreporter.write_line(
            f"{mark}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        )


# Strict mode for the whole suite (trio_sip/_faults.py): an exception that is not a SipError,
# caught by the fault isolation of a stack, a user agent or `trio-sip serve`, fails the test
# instead of being counted and logged. Subprocesses (`trio-sip serve`) inherit it.
os.environ.setdefault("TRIO_SIP_STRICT", "1")
