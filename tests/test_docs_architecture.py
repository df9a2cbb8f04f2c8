"""docs/architecture.md is the map a newcomer follows (issue #13): it cannot point at a module
that is gone, and a new module cannot stay off it.

* every module a backticked path names (`proto/timers.py`, `stack/_receive.py`, ...) exists;
* the Layout block names every top-level module and package of trio_sip, and every module and
  subpackage of the core (trio_sip/proto);
* the rule map has a row for each transaction timer, the way a reader looks one up.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "trio_sip"
PAGE = (REPO / "docs" / "architecture.md").read_text()


def _layout() -> str:
    section = PAGE.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def _exists(ref: str) -> bool:
    if (PACKAGE / ref).exists() or (REPO / ref).exists():
        return True
    return any(str(p.relative_to(PACKAGE)).endswith(ref) for p in PACKAGE.rglob("*.py"))


def test_every_module_the_page_names_exists() -> None:
    refs = set(re.findall(r"`((?:[\w]+/)*[\w]+\.py)`", PAGE))
    assert len(refs) > 40
    assert sorted(r for r in refs if not _exists(r)) == []


def test_the_layout_names_every_top_level_and_core_module() -> None:
    layout = _layout()
    names = [p.name for p in PACKAGE.glob("*.py")]
    names += [f"{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")]
    names += [p.name for p in (PACKAGE / "proto").glob("*.py")]
    names += [f"{p.parent.name}/" for p in (PACKAGE / "proto").glob("*/__init__.py")]
    missing = sorted({n for n in names if n != "__main__.py" and n not in layout})
    assert missing == [], f"docs/architecture.md's Layout does not name {missing}"


def test_the_rule_map_finds_every_transaction_timer() -> None:
    rows = PAGE.split("## Where each rule lives", 1)[1].split("\n## ", 1)[0]
    for timer in "ABDEFGHIJKLM":
        assert re.search(rf"Timer[s]? (?:[A-M], )*{timer}\b", rows), timer
    assert "§17.1.1.2 Timer A" in rows and "`proto/transaction/client_invite.py`" in rows
