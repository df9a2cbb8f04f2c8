"""docs/transactions.md cannot drift from the code.

The state tables, diagrams, the timer table and the JAIN timeout table in the page are
generated from ``TRANSITIONS``, ``TimerConfig`` and ``TIMEOUT_TABLE``; this test regenerates
them and checks the page holds exactly that text. After changing a table, run
``python tests/proto/test_transaction_docs.py`` to rewrite the generated blocks in place.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trio_sip.proto.timers import TIMER_TABLE, TimerConfig
from trio_sip.proto.transaction import (
    TimeoutRole,
    Trigger,
    client_invite,
    client_non_invite,
    server_invite,
    server_non_invite,
    timeouts,
)
from trio_sip.proto.transaction.machine import render_markdown, render_mermaid

DOC = Path(__file__).resolve().parents[2] / "docs" / "transactions.md"
MACHINES: dict[str, Mapping[Any, Mapping[Trigger, Any]]] = {
    "client_invite": client_invite.TRANSITIONS,
    "client_non_invite": client_non_invite.TRANSITIONS,
    "server_invite": server_invite.TRANSITIONS,
    "server_non_invite": server_non_invite.TRANSITIONS,
}
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def timer_table() -> str:
    config = TimerConfig()
    udp, tcp = config.timers(reliable=False), config.timers(reliable=True)
    lines = [
        "| Timer | Default (UDP) | Default (TCP/TLS) | Meaning | Section |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field, meaning, section in TIMER_TABLE:
        a, b = getattr(udp, field), getattr(tcp, field)
        lines.append(f"| {name} | {_seconds(a)} | {_seconds(b)} | {meaning} | {section} |")
    return "\n".join(lines)


def generated() -> dict[str, str]:
    blocks = {"timers": timer_table(), "timeouts": timeouts.render_markdown()}
    for name, table in MACHINES.items():
        blocks[name] = f"```mermaid\n{render_mermaid(table)}\n```\n\n{render_markdown(table)}"
    return {name: text + "\n" for name, text in blocks.items()}


def test_generated_blocks_match_the_code() -> None:
    found = {m.group(2): m.group(3) for m in BLOCK.finditer(DOC.read_text())}
    assert found == generated()


def test_the_role_section_holds_the_generated_table_for_every_role() -> None:
    text = DOC.read_text()
    section = text.split("## Timeout semantics per role", 1)[1].split("\n## ", 1)[0]
    assert "<!-- generated: timeouts -->" in section
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert {row.split("`")[1] for row in rows} == {role.name for role in TimeoutRole}
    assert len(rows) == len(timeouts.TIMEOUT_TABLE)


def rewrite() -> None:
    blocks = generated()
    text = BLOCK.sub(lambda m: m.group(1) + blocks[m.group(2)] + m.group(4), DOC.read_text())
    DOC.write_text(text)


if __name__ == "__main__":
    rewrite()
    sys.exit(0)
