"""The interop matrix's report: peer x scenario -> pass / fail / xfail / n-a, with the failing
message lines, printed at the end of the run and written to docs/interop.md when
``TRIO_SIP_MATRIX_DOC`` names the page (``nox -s interop`` does), so the page always says what
was last proven. The hooks are in tests/interop/conftest.py."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any

import pytest

from .matrix import CELLS, SCENARIOS

#: (peer, scenario) -> (status, message lines) of this run.
RESULTS: dict[tuple[str, str], tuple[str, list[str]]] = {}

_INTRO = """\
# Interoperability: what was last proven against real peers

This page is written by `nox -s interop` (tests/interop/matrix_report.py) from the run of
tests/interop/test_matrix.py::test_matrix: every cell below is a test that ran against real
third-party SIP software started on loopback by the test (Debian packages), or the reason it
does not apply.
Do not edit it by hand; run `nox -s interop` and commit the page it writes.

Peers: **linphonec** (Debian `linphone-cli` 5.1, UDP only), **baresip** 1.0 (UDP, TCP),
**twinkle** (`twinkle-console` 1.10, UDP), **sipp** 3.6 (scripted tester), **Kamailio** 5.6
(registrar + proxy with digest, over UDP, TCP and TLS), **dnsmasq** 2.90 (DNS). How each is run
headless: tests/interop/linphonec.py, baresip.py, twinkle.py, sipp.py, kamailio.py (the facts
found are in each module's docstring). The phones share one small interface
(tests/interop/phone.py) and one implementation of each scenario (tests/interop/matrix.py).

Scenarios:

{scenarios}

`pass`: the test passed; `fail`: it failed (the message lines follow the table); `xfail`: a
known failure, with its reason; `n-a`: the scenario does not apply to that peer (reason below);
`-`: not run in this session (deselected).

"""


def _status(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfail"
    return {"passed": "pass", "failed": "fail", "skipped": "skip"}[report.outcome]


def _message(report: pytest.TestReport) -> list[str]:
    if hasattr(report, "wasxfail"):
        return [str(report.wasxfail)][:1]
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip(" |") for line in text.splitlines() if line.strip(" |")]
    return lines[:6]


def record(item: pytest.Item, report: pytest.TestReport) -> None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or item.originalname != "test_matrix":  # type: ignore[attr-defined]
        return
    key = (callspec.params["peer"], callspec.params["scenario"])
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        RESULTS[key] = (_status(report), _message(report) if report.outcome != "passed" else [])


def peers() -> list[str]:
    seen: list[str] = []
    for peer, _ in CELLS:
        if peer not in seen:
            seen.append(peer)
    return seen


def table() -> tuple[list[str], list[str]]:
    """The markdown table and the notes (failure lines, n-a reasons)."""
    names = list(SCENARIOS)
    lines = ["| peer | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    notes: list[str] = []
    for peer in peers():
        row = []
        for scenario in names:
            cell = CELLS.get((peer, scenario))
            if cell is None or cell.run is None:
                row.append("n-a")
                reason = cell.na if cell is not None else "not applicable"
                notes.append(f"- {peer} / {scenario}: n-a: {reason}")
                continue
            status, message = RESULTS.get((peer, scenario), ("-", []))
            row.append(status)
            if status in ("fail", "xfail"):
                detail = " / ".join(message) or "(no message)"
                notes.append(f"- {peer} / {scenario}: {status}: {detail}")
        lines.append(f"| {peer} | " + " | ".join(row) + " |")
    return lines, notes


def render() -> str:
    scenarios = "\n".join(f"- `{name}`: {text}" for name, text in SCENARIOS.items())
    lines, notes = table()
    counts: dict[str, int] = {}
    for status, _ in RESULTS.values():
        counts[status] = counts.get(status, 0) + 1
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return (
        _INTRO.format(scenarios=scenarios)
        + f"Last run: {stamp} on {platform.system()} {platform.release()} ({summary}).\n\n"
        + "\n".join(lines)
        + "\n\n## Notes\n\n"
        + ("\n".join(notes) if notes else "None.")
        + "\n\n## The chaos soak\n\nSee docs/soak.md (`nox -s soak`).\n"
    )


def finish(terminal: Any) -> None:
    if not RESULTS:
        return
    lines, notes = table()
    terminal.write_sep("=", "interop matrix")
    for line in lines:
        terminal.write_line(line)
    for note in notes:
        if ": n-a:" not in note:
            terminal.write_line(note)
    doc = os.environ.get("TRIO_SIP_MATRIX_DOC")
    if doc:
        Path(doc).write_text(render())
        terminal.write_line(f"matrix written to {doc}")
