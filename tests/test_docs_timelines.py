"""The failover timelines the site draws are recorded from real runs, and say what the policy
promises (docs/failover.md): checked here on the recording itself, in virtual time.

docs/_ext/sitekit/failover_runs.py runs the real FailoverClient over real stacks on
FakeNetwork (sip_transaction_timeout=4000, 10 ms one way); the site plots what it recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

from sitekit.failover_runs import SCENARIOS, record  # noqa: E402


def requests(run: dict[str, Any]) -> list[tuple[float, str, str]]:
    return [(e["time"], e["dst"], e["fate"]) for e in run["events"] if e["src"] == "UA"]


def test_refused_first_proxy_costs_one_round_trip() -> None:
    run = record("refused")
    assert run["outcome"] == "200 from P2"
    assert requests(run)[:2] == [(0.0, "P1", "refused"), (0.02, "P2", "delivered")]
    assert run["duration"] == pytest.approx(0.04)


def test_blackholed_first_proxy_costs_the_transaction_timeout() -> None:
    run = record("blackholed")
    assert run["outcome"] == "200 from P2"
    sent = requests(run)
    assert [t for t, dst, _ in sent if dst == "P1"] == [0.0, 0.5, 1.5, 3.5]  # Timer A
    assert [t for t, dst, _ in sent if dst == "P2"] == [4.0]
    assert {fate for _, dst, fate in sent if dst == "P1"} == {"blackholed"}


def test_503_moves_on_at_once() -> None:
    run = record("503")
    assert run["outcome"] == "200 from P2"
    answers = [(e["src"], e["what"]) for e in run["events"] if e["dst"] == "UA"]
    assert answers == [("P1", "503"), ("P2", "200")]


def test_bye_cycles_every_timeout_until_32_s() -> None:
    run = record("bye-cycling")
    assert run["outcome"].startswith("gave up at 32.0 s")
    firsts = []
    for t, dst, _ in requests(run):
        if not firsts or firsts[-1][1] != dst:
            firsts.append((t, dst))
    assert firsts == [(4.0 * i, f"P{i % 3 + 1}") for i in range(8)]


def test_every_scenario_is_recorded() -> None:
    assert set(SCENARIOS) == {"refused", "blackholed", "503", "bye-cycling"}
