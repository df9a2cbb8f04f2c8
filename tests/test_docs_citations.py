"""Every test the documentation cites exists, so a page cannot point at a test that is gone.

A citation is ``tests/<path>.py::<name>`` (or ``::Class::method``, ``[params]``) anywhere in
docs/*.md or the README; docs/migration.md is made of them. The site build turns each into a
link to the test's source and fails on one that does not resolve; this is the same check
without building the site (docs/_ext/sitekit/citations.py holds the rules).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

from sitekit.citations import find, resolve  # noqa: E402

PAGES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_cited_test_exists(page: Path) -> None:
    broken = [
        f"{citation}: {found}"
        for citation in find(page.read_text())
        if isinstance(found := resolve(REPO, citation), str)
    ]
    assert not broken, f"{page.name} cites tests that do not exist:\n" + "\n".join(broken)


def test_the_migration_page_cites_a_test_on_every_row() -> None:
    rows = [
        line
        for line in (REPO / "docs" / "migration.md").read_text().splitlines()
        if line.startswith("| ")
        and not line.startswith(("| LanScape", "| SIP Endpoint", "| SipEndpoint", "| JAIN"))
    ]
    assert len(rows) >= 40
    missing = [row for row in rows if not list(find(row.rsplit("|", 2)[-2]))]
    assert not missing, "rows without a test:\n" + "\n".join(missing)


def test_a_citation_that_rots_is_caught(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "def test_here():\n    pass\n\n\n"
        "class TestGroup:\n    def test_method(self):\n        pass\n"
    )
    assert resolve(tmp_path, "tests/test_a.py::test_here") == ("tests/test_a.py", 1)
    assert resolve(tmp_path, "tests/test_a.py::TestGroup::test_method") == ("tests/test_a.py", 6)
    assert resolve(tmp_path, "tests/test_a.py::test_here[udp-1]") == ("tests/test_a.py", 1)
    assert resolve(tmp_path, "tests/test_a.py::test_gone") == (
        "tests/test_a.py has no test 'test_gone'"
    )
    assert resolve(tmp_path, "tests/test_b.py::test_here") == "no file tests/test_b.py"
    assert list(find("see (tests/test_a.py::test_here), then tests/x.py.")) == [
        "tests/test_a.py::test_here",
        "tests/x.py",
    ]
