"""``.. changelog::``: the project's history from ``git log``, grouped by issue, at build time.

A commit belongs to an issue when (first rule that applies):

1. its message cites it: ``issue #N`` or ``(#N)``;
2. it came in with a merge of a helper branch (``Merge branch 'wp-...'``) that worked on it
   (:data:`BRANCH_ISSUES`);
3. it is from before issues were cited in messages and its subject names an area of one of the
   first issues (:data:`AREAS`, matched on the subject's first words);

and to "Other changes" otherwise. Merge commits themselves are not listed. Built without git
(an sdist), the page says so instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

#: Short titles of the issues (the issue tracker is not part of the repository).
ISSUES: dict[int, str] = {
    2: "Foundation: package, tooling, CI, the sans-I/O message layer",
    3: "Transaction layer and transports",
    4: "Proxy high availability: RFC 3263, the blacklist, failover",
    5: "User agent core: dialogs, calls, registration, subscriptions, digest, keep-alives",
    6: "Geo-redundant endpoint, configuration, the trio-sip command",
    10: "Safe to expose: fault isolation, no open relay, bounded resources",
    11: "The seeds on the wire: one NAT binding, every retry path, the JAIN timeout table",
    12: "The edges a Trio developer touches: exceptions, Ctrl-C, waits and streams",
    13: "One shape for the codebase",
    14: "Proof under fire: chaos soak and interop matrix",
    15: "Performance, round two",
    16: "Beyond one machine: clustering behind a dispatcher",
    17: "A documentation site",
    18: "A green CI that proves what it claims",
}

#: Helper branches and the issue each worked on.
BRANCH_ISSUES: dict[str, int] = {
    "wp-parser": 10,
    "wp-faults": 10,
    "wp-streams": 10,
    "wp-proxysec": 10,
    "wp-udpbind": 11,
    "wp-retry": 11,
    "wp-jain": 11,
    "wp-config": 11,
    "wp-edges": 12,
    "wp-chaos": 14,
    "wp-cluster": 16,
    "wp-docs": 17,
}

#: Subject openings of the first issues' commits (before messages cited issues).
AREAS: tuple[tuple[int, str], ...] = (
    (6, "endpoint|config|cli|demo|quickstart|trio-sip|docs/endpoint|docs/cli|export the endpoint"),
    (4, "rfc 3263|fading blacklist|blacklist|dns|failover|resolve|retry|export the failover"),
    (
        5,
        "ua|ua.call|dialog|digest|auth|sdp|subscription|subscriptions|registration|keep-alive"
        "|keepalive|proxy|registrar|interop|register/subscribe|uas copies|user agent"
        "|export the user agent|export dialog|test: an agent|docs/calls|docs/keepalive"
        "|docs/registration|docs/proxy|docs/tutorial",
    ),
    (
        3,
        "transaction|transactions|client transactions|server transactions|machine inputs"
        "|transports|transport|stack|timerconfig|timerqueue|timeout roles|outputs|drivers|keys"
        "|udp|tcp|tls|torture test|fakenetwork tests|testing|export the stack"
        "|export the transport|docs/stack|docs/transactions|docs/transports",
    ),
    (
        2,
        "scaffold|readme|message layer|parse|parser|benchmarks|bench|uas bench|memory"
        "|compiled core|optional mypyc|hatch_build|lint|nox|ci|tests|docs|core target|uri"
        "|headers|corpus|proto|streamframer|leaner reads|faster reads|fast paths|validate"
        "|hypothesis|public exports|export framer",
    ),
)

CITED = re.compile(r"(?:issue\s+#|\(#)(\d+)", re.I)
MERGE = re.compile(r"Merge branch '([^']+)'")


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None
    done = subprocess.run(
        [git, "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def _area_issue(subject: str) -> int | None:
    head = subject.lower()
    for issue, openings in AREAS:
        for opening in openings.split("|"):
            if re.match(re.escape(opening) + r"\b", head):
                return issue
    return None


def history(root: Path) -> dict[int | None, list[tuple[str, str, str]]] | None:
    """{issue or None: [(date, short hash, subject)]}, newest first; None without git."""
    log = _git(
        root, "log", "--no-merges", "--date=short", "--format=%H%x1f%h%x1f%ad%x1f%s%x1f%b%x1e"
    )
    merges = _git(root, "log", "--merges", "--format=%H %P%x1f%s%x1e")
    if log is None or merges is None:
        return None
    by_merge: dict[str, int] = {}
    for record in filter(None, (r.strip() for r in merges.split("\x1e"))):
        hashes, subject = record.split("\x1f", 1)
        parents = hashes.split()[1:]
        match = MERGE.search(subject)
        if len(parents) < 2 or match is None:
            continue
        branch = match.group(1)
        issue = BRANCH_ISSUES.get(branch)
        if issue is None:
            continue
        brought = _git(root, "rev-list", f"{parents[0]}..{parents[1]}") or ""
        for sha in brought.split():
            by_merge.setdefault(sha, issue)
    records = [
        (record.split("\x1f") + [""] * 5)[:5]
        for record in filter(None, (r.strip() for r in log.split("\x1e")))
    ]
    cites = [CITED.search(subject) or CITED.search(body) for _, _, _, subject, body in records]
    # Rule 3 only for the commits older than the oldest one that cites an issue.
    first_cite = max((i for i, cite in enumerate(cites) if cite), default=len(records))
    groups: dict[int | None, list[tuple[str, str, str]]] = {}
    for i, (sha, short, date, subject, _) in enumerate(records):
        cite = cites[i]
        if cite:
            issue: int | None = int(cite.group(1))
        elif sha in by_merge:
            issue = by_merge[sha]
        else:
            issue = _area_issue(subject) if i > first_cite else None
        groups.setdefault(issue, []).append((date, short, subject))
    return groups


def _order(keys: Iterable[int | None]) -> list[int | None]:
    numbered = sorted((k for k in keys if k is not None), reverse=True)
    return [*numbered, *([None] if None in keys else [])]


class Changelog(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir).parent
        groups = history(root)
        if groups is None:
            para = nodes.paragraph(
                text="This copy of the documentation was built without the "
                "git history, so it has no changelog."
            )
            return [para]
        out: list[nodes.Node] = []
        for issue in _order(groups):
            commits = groups[issue]
            title = (
                f"#{issue}: {ISSUES.get(issue, 'issue')}" if issue is not None else "Other changes"
            )
            section = nodes.section(ids=[f"issue-{issue}" if issue else "other-changes"])
            section += nodes.title(text=title)
            section += nodes.paragraph(
                text=f"{len(commits)} commits, {commits[-1][0]} to {commits[0][0]}."
            )
            items = nodes.bullet_list()
            for date, short, subject in commits:
                item = nodes.list_item()
                para = nodes.paragraph()
                para += nodes.literal(text=short)
                para += nodes.Text(f" {date}: {subject}")
                item += para
                items += item
            section += items
            out.append(section)
        return out


def setup(app: object) -> None:
    app.add_directive("changelog", Changelog)  # type: ignore[attr-defined]
